//! Which addresses an output download may reach.
//!
//! Output URLs come from the upstream's answer, so they are not ours to trust: a hostile or
//! compromised upstream could point them at loopback services, the private network or the cloud
//! metadata endpoint (169.254.169.254). Downloads may reach public addresses, plus the class of
//! address the configured provider base URL itself is (the tests' fakes live on 127.0.0.1, an
//! operator's proxy may live on the private network).
//!
//! IP literals are checked before any request ([`OutboundPolicy::check_url`]); host names are
//! checked where they are resolved ([`OutboundPolicy`] is the client's DNS resolver), so the
//! address checked is the address connected to, and DNS rebinding cannot slip past. The
//! configured API hosts resolve unchecked: they are the operator's choice.

use std::net::{IpAddr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What kind of network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    /// 127.0.0.0/8, ::1, and the unspecified address (which connects to this host).
    Loopback,
    /// RFC 1918, shared address space (100.64.0.0/10), IPv6 unique local (fc00::/7).
    Private,
    /// 169.254.0.0/16 (where cloud metadata lives), fe80::/10.
    LinkLocal,
    /// Multicast, broadcast, documentation, benchmarking and other ranges IANA lists as not
    /// globally reachable: never a file host or a webhook receiver.
    Reserved,
}

/// The class of `ip`. IPv6 forms that carry an IPv4 address are classed as that address
/// (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`), so a
/// private address cannot pass wrapped in a public-looking one.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_loopback() || v4.is_unspecified() {
                AddressClass::Loopback
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                AddressClass::Private
            } else if v4.is_link_local() {
                AddressClass::LinkLocal
            } else if v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                // 192.0.0.0/24 IETF protocol assignments, 192.88.99.0/24 the retired 6to4 relays,
                // 198.18.0.0/15 benchmarking.
                || (a, b, c) == (192, 0, 0)
                || (a, b, c) == (192, 88, 99)
                || (a == 198 && (b & 0xfe) == 18)
            {
                AddressClass::Reserved
            } else {
                AddressClass::Public
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                classify(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
            };
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return embedded(s[6], s[7]);
            }
            if s[0] == 0x2002 {
                return embedded(s[1], s[2]);
            }
            let first = s[0];
            if v6.is_loopback() || v6.is_unspecified() {
                AddressClass::Loopback
            } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 || (first, s[1]) == (0x64, 0xff9b) {
                // Unique local, the retired site-local fec0::/10, local-use NAT64 64:ff9b:1::/48.
                AddressClass::Private
            } else if first & 0xffc0 == 0xfe80 {
                AddressClass::LinkLocal
            } else if v6.is_multicast()
                // IPv4-compatible ::a.b.c.d (retired), the discard prefix 100::/64, IETF protocol
                // assignments 2001::/23 (Teredo, benchmarking, ORCHID), documentation 2001:db8::/32
                // and 3fff::/20.
                || s[..6] == [0; 6]
                || s[..4] == [0x100, 0, 0, 0]
                || (first == 0x2001 && s[1] < 0x200)
                || (first, s[1]) == (0x2001, 0x0db8)
                || first & 0xfff0 == 0x3ff0
            {
                AddressClass::Reserved
            } else {
                AddressClass::Public
            }
        }
    }
}

/// Where one provider's downloads may connect: public addresses, and the class of that provider's
/// own configured base URL (so a private Gemini proxy opens the private network to Gemini's
/// downloads only, never to Replicate's outputs).
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    allowed: Vec<AddressClass>,
    /// The configured API host name, resolved without checks.
    api_hosts: Vec<String>,
}

impl OutboundPolicy {
    pub fn new(base_url: &str) -> Self {
        let base = Url::parse(base_url).ok();
        let mut allowed = vec![AddressClass::Public];
        allowed.extend(base.iter().filter_map(base_class));
        let api_hosts = base.iter().filter_map(|url| url.host_str().map(str::to_ascii_lowercase)).collect();
        OutboundPolicy { allowed, api_hosts }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.contains(&classify(ip))
    }

    /// Refuses a URL whose host is an IP literal outside the allowed classes, before any request.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        let Some(ip) = literal_ip(url) else { return Ok(()) };
        if self.allows(ip) { Ok(()) } else { Err(refusal(&ip.to_string(), classify(ip))) }
    }

    /// The resolved addresses of `host` a download may use; an error when none is left.
    fn filter(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
        if self.api_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Ok(addrs);
        }
        let first_class = addrs.first().map(|a| classify(a.ip()));
        let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| self.allows(a.ip())).collect();
        match (allowed.is_empty(), first_class) {
            (false, _) => Ok(allowed),
            (true, Some(class)) => Err(refusal(host, class)),
            (true, None) => Err(format!("{host} has no address")),
        }
    }
}

/// The class of a base URL's host when it is an IP literal or `localhost`; a public name adds none.
fn base_class(url: &Url) -> Option<AddressClass> {
    if let Some(ip) = literal_ip(url) {
        return Some(classify(ip));
    }
    let name = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    (name == "localhost" || name.ends_with(".localhost")).then_some(AddressClass::Loopback)
}

/// The URL's host when it is an IP literal (`127.0.0.1`, `[::1]`).
fn literal_ip(url: &Url) -> Option<IpAddr> {
    url.host_str()?.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

fn refusal(host: &str, class: AddressClass) -> String {
    format!("output host {host} is a {class:?} address, which downloads may not reach")
}

impl Resolve for OutboundPolicy {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.filter(&host, addrs)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn addresses_are_classed() {
        for (addr, class) in [
            ("8.8.8.8", AddressClass::Public),
            ("2606:4700::1111", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("0.0.0.0", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::Private),
            ("fd00::1", AddressClass::Private),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("224.0.0.1", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Reserved),
            ("198.19.255.1", AddressClass::Reserved),
            ("192.0.0.8", AddressClass::Reserved),
            ("::7f00:1", AddressClass::Reserved),
            ("3fff::1", AddressClass::Reserved),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("64:ff9b::808:808", AddressClass::Public),
            ("2002:c0a8:101::1", AddressClass::Private),
            ("2002:808:808::1", AddressClass::Public),
            ("fec0::1", AddressClass::Private),
            ("199.0.0.1", AddressClass::Public),
            ("2001:4860::8888", AddressClass::Public),
        ] {
            assert_eq!(classify(ip(addr)), class, "{addr}");
        }
    }

    fn policy(base_url: &str) -> OutboundPolicy {
        OutboundPolicy::new(base_url)
    }

    #[test]
    fn only_public_addresses_unless_the_base_url_is_in_the_same_class() {
        let public = policy("https://api.replicate.com");
        let url = |s: &str| Url::parse(s).expect("url");
        assert!(public.check_url(&url("https://replicate.delivery/x.png")).is_ok(), "names are checked on resolve");
        assert!(public.check_url(&url("http://8.8.8.8/x.png")).is_ok());
        for refused in ["http://127.0.0.1/x", "http://[::1]/x", "http://169.254.169.254/latest", "http://10.0.0.1/x"] {
            assert!(public.check_url(&url(refused)).is_err(), "{refused}");
        }
        let local = policy("http://127.0.0.1:8080");
        assert!(local.check_url(&url("http://127.0.0.1:9/x")).is_ok());
        assert!(local.check_url(&url("http://169.254.169.254/latest")).is_err(), "loopback does not open link-local");
        assert!(policy("http://localhost:8080").check_url(&url("http://[::1]/x")).is_ok());
        // Each provider's policy opens only its own base URL's class.
        let private_proxy = policy("http://10.0.0.2:8080");
        assert!(private_proxy.check_url(&url("http://10.0.0.9/x.mp4")).is_ok());
        assert!(public.check_url(&url("http://10.0.0.9/x.mp4")).is_err(), "another provider's base opens nothing here");
    }

    #[test]
    fn resolved_names_keep_only_allowed_addresses() {
        let public = policy("https://api.replicate.com");
        let sock = |s: &str| SocketAddr::new(ip(s), 0);
        let mixed = vec![sock("10.0.0.5"), sock("93.184.215.14")];
        assert_eq!(public.filter("cdn.example", mixed), Ok(vec![sock("93.184.215.14")]));
        let err = public.filter("rebind.example", vec![sock("127.0.0.1")]).expect_err("loopback only");
        assert!(err.contains("Loopback"), "{err}");
        assert_eq!(public.filter("API.replicate.com", vec![sock("10.0.0.5")]), Ok(vec![sock("10.0.0.5")]));
    }
}
