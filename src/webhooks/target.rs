//! A job's `webhook` and `webhook_events_filter`, checked at submit, and where a delivery may
//! connect when it is sent.
//!
//! A webhook URL is the caller's choice, so mvgen would otherwise POST wherever a caller says:
//! to a loopback admin port, the private network, or the cloud metadata endpoint. So the URL
//! must be https, and its host must resolve only to public addresses, unless the operator set
//! `MVGEN_WEBHOOK_ALLOW_PRIVATE=true` (receivers inside the cluster, tests), which also allows
//! plain http. The sender resolves through [`Reach`] again at send time, so a name that resolved
//! to a public address at submit and to a private one later (DNS rebinding) is still refused.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorKind};
use crate::jobs::store::deliveries::{HookEvent, HookEvents, WebhookPolicy, WebhookTarget};
use crate::providers::outbound::{AddressClass, classify};

/// The longest webhook URL accepted (a common URL limit; longer is no receiver's address).
pub const MAX_URL_LEN: usize = 2048;

/// How long resolving a webhook's host may take at submit.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The webhook fields of a submission, as sent (not yet checked against the network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub url: String,
    pub events: HookEvents,
}

fn refused(field: &str, message: String) -> ApiError {
    ApiError::new(ErrorKind::ValidationError, format!("{field}: {message}"), json!(field))
}

/// Reads `webhook` (a string) and `webhook_events_filter` (a list of `start`, `progress`,
/// `completed`; default `["completed"]`). `Ok(None)`: neither was sent (or `webhook` was null).
pub fn requested(webhook: Option<&Value>, filter: Option<&Value>) -> Result<Option<Requested>, ApiError> {
    let url = match webhook {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => Some(url.trim().to_owned()),
        Some(_) => return Err(refused("webhook", "expected a URL string".into())),
    };
    let events = match filter {
        None | Some(Value::Null) => None,
        Some(Value::Array(words)) => {
            let known = HookEvent::ALL.map(HookEvent::as_str).join(", ");
            let mut events = HookEvents::default();
            for (i, word) in words.iter().enumerate() {
                let event = word.as_str().and_then(|w| w.parse().ok()).ok_or_else(|| {
                    refused(&format!("webhook_events_filter[{i}]"), format!("{word} is not one of {known}"))
                })?;
                events = events.with(event);
            }
            if events.is_empty() {
                return Err(refused("webhook_events_filter", format!("list at least one of {known}")));
            }
            Some(events)
        }
        Some(_) => return Err(refused("webhook_events_filter", "expected a list of event names".into())),
    };
    match (url, events) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(refused("webhook_events_filter", "given without a `webhook` to send them to".into())),
        (Some(url), events) => Ok(Some(Requested { url, events: events.unwrap_or(HookEvents::COMPLETED) })),
    }
}

/// Checks a requested webhook against the server's policy: webhooks on (a signing secret is
/// set), the URL's form, and every address its host resolves to.
pub async fn check(requested: Requested, policy: WebhookPolicy) -> Result<WebhookTarget, ApiError> {
    if !policy.enabled {
        return Err(refused(
            "webhook",
            "webhooks are off on this server (its operator has not set MVGEN_WEBHOOK_SECRET)".into(),
        ));
    }
    let url = form(&requested.url, policy.allow_private).map_err(|m| refused("webhook", m))?;
    let reach = Reach { allow_private: policy.allow_private };
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, 0)],
        Err(_) => {
            let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0))).await;
            match lookup {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(e)) => return Err(refused("webhook", format!("cannot resolve {host}: {e}"))),
                Err(_) => return Err(refused("webhook", format!("resolving {host} took over 5 s"))),
            }
        }
    };
    if addrs.is_empty() {
        return Err(refused("webhook", format!("{host} has no address")));
    }
    // Every address, not just one: the sender may connect to any of them.
    if let Some(bad) = addrs.iter().find(|a| !reach.allows(a.ip())) {
        return Err(refused("webhook", reach.refusal(&host, bad.ip())));
    }
    Ok(WebhookTarget { url: url.to_string(), events: requested.events })
}

/// The URL's form: absolute, https (or http when private targets are allowed), a host, no
/// credentials, at most [`MAX_URL_LEN`] bytes.
fn form(text: &str, allow_private: bool) -> Result<Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("longer than {MAX_URL_LEN} bytes"));
    }
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not an absolute URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("must be https (http only with MVGEN_WEBHOOK_ALLOW_PRIVATE=true)".into()),
        other => return Err(format!("must be https, not {other}")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (user:password@); put a token in the path or query".into());
    }
    Ok(url)
}

/// Which addresses a delivery may connect to: public ones, and with `allow_private` loopback,
/// private and link-local ones too; never multicast, broadcast or reserved ranges.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    pub allow_private: bool,
}

impl Reach {
    pub fn allows(self, ip: IpAddr) -> bool {
        match classify(ip) {
            AddressClass::Public => true,
            AddressClass::Loopback | AddressClass::Private | AddressClass::LinkLocal => self.allow_private,
            AddressClass::Reserved => false,
        }
    }

    fn refusal(self, host: &str, ip: IpAddr) -> String {
        let class = match classify(ip) {
            AddressClass::Loopback => "a loopback",
            AddressClass::Private => "a private",
            AddressClass::LinkLocal => "a link-local",
            AddressClass::Reserved => "a reserved",
            AddressClass::Public => "a public",
        };
        // The flag opens loopback, private and link-local targets, never reserved ones.
        let unless = match classify(ip) {
            AddressClass::Loopback | AddressClass::Private | AddressClass::LinkLocal if !self.allow_private => {
                " (allowed with MVGEN_WEBHOOK_ALLOW_PRIVATE=true)"
            }
            _ => "",
        };
        if host == ip.to_string() {
            format!("{ip} is {class} address, which webhooks may not reach{unless}")
        } else {
            format!("{host} resolves to {ip}, {class} address, which webhooks may not reach{unless}")
        }
    }

    /// Refuses a URL whose host is an IP literal this reach does not allow (the resolver below
    /// never sees literals).
    pub fn check_literal(self, url: &str) -> Result<(), String> {
        let Ok(url) = Url::parse(url) else { return Err(format!("{url:?} is not a URL")) };
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) if !self.allows(ip) => Err(self.refusal(host, ip)),
            _ => Ok(()),
        }
    }
}

impl Resolve for Reach {
    fn resolve(&self, name: Name) -> Resolving {
        let reach = *self;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| !reach.allows(a.ip())) {
                return Err(reach.refusal(&host, bad.ip()).into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_private: bool) -> WebhookPolicy {
        WebhookPolicy { enabled: true, allow_private }
    }

    fn field(e: &ApiError) -> &str {
        e.details.as_str().unwrap_or_default()
    }

    #[test]
    fn fields_are_read_with_completed_by_default() {
        let url = json!("https://hooks.example/x");
        let got = requested(Some(&url), None).expect("ok").expect("some");
        assert_eq!(got.events, HookEvents::COMPLETED);
        let filter = json!(["start", "completed"]);
        let got = requested(Some(&url), Some(&filter)).expect("ok").expect("some");
        assert!(got.events.contains(HookEvent::Start) && !got.events.contains(HookEvent::Progress));
        assert_eq!(requested(None, None).expect("ok"), None);
        assert_eq!(requested(Some(&Value::Null), None).expect("ok"), None);
    }

    #[test]
    fn bad_fields_name_themselves() {
        let url = json!("https://hooks.example/x");
        let e = requested(Some(&url), Some(&json!(["start", "output"]))).unwrap_err();
        assert_eq!((e.kind, field(&e)), (ErrorKind::ValidationError, "webhook_events_filter[1]"));
        assert_eq!(field(&requested(Some(&url), Some(&json!([]))).unwrap_err()), "webhook_events_filter");
        assert_eq!(field(&requested(Some(&url), Some(&json!("completed"))).unwrap_err()), "webhook_events_filter");
        assert_eq!(field(&requested(None, Some(&json!(["completed"]))).unwrap_err()), "webhook_events_filter");
        assert_eq!(field(&requested(Some(&json!(42)), None).unwrap_err()), "webhook");
    }

    #[tokio::test]
    async fn private_loopback_and_link_local_targets_are_refused_unless_allowed() {
        let ask = |url: &str| Requested { url: url.to_owned(), events: HookEvents::COMPLETED };
        for url in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://10.0.0.8/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[fe80::1]/hook",
            "https://localhost/hook",
        ] {
            let e = check(ask(url), policy(false)).await.expect_err(url);
            assert!(e.message.contains("MVGEN_WEBHOOK_ALLOW_PRIVATE"), "{url}: {}", e.message);
            assert!(check(ask(url), policy(true)).await.is_ok(), "{url} allowed with the flag");
        }
        let e = check(ask("http://8.8.8.8/hook"), policy(false)).await.expect_err("http");
        assert!(e.message.contains("https"), "{}", e.message);
        assert!(check(ask("http://127.0.0.1:9/hook"), policy(true)).await.is_ok());
        assert!(check(ask("https://8.8.8.8/hook"), policy(false)).await.is_ok(), "public literal");
        for url in ["ftp://8.8.8.8/x", "https://user:pw@8.8.8.8/x", "/relative", "https://224.0.0.1/x"] {
            assert!(check(ask(url), policy(true)).await.is_err(), "{url}");
        }
        let off = WebhookPolicy { enabled: false, allow_private: true };
        let e = check(ask("https://8.8.8.8/hook"), off).await.expect_err("off");
        assert!(e.message.contains("MVGEN_WEBHOOK_SECRET"), "{}", e.message);
    }

    /// Ranges that are no public receiver's, and IPv6 forms that carry an IPv4 address, are
    /// refused as what they are; a reserved range is never offered the flag that cannot open it.
    /// Before: 198.18.0.1, 192.0.0.1, [::127.0.0.1], [2002:7f00:1::] (6to4 of 127.0.0.1),
    /// [64:ff9b::a00:1] (NAT64 of 10.0.0.1), [fec0::1], [100::1] and [2001:2::1] were all taken
    /// as public targets, and 224.0.0.1's refusal said MVGEN_WEBHOOK_ALLOW_PRIVATE would allow it.
    #[tokio::test]
    async fn reserved_ranges_and_embedded_ipv4_addresses_are_refused() {
        let ask = |url: &str| Requested { url: url.to_owned(), events: HookEvents::COMPLETED };
        for (url, class) in [
            ("https://198.18.0.1/hook", "reserved"),
            ("https://192.0.0.1/hook", "reserved"),
            ("https://[::127.0.0.1]/hook", "reserved"),
            ("https://[100::1]/hook", "reserved"),
            ("https://[2001:2::1]/hook", "reserved"),
            ("https://224.0.0.1/hook", "reserved"),
            ("https://[2002:7f00:1::]/hook", "loopback"),
            ("https://[64:ff9b::a00:1]/hook", "private"),
            ("https://[fec0::1]/hook", "private"),
        ] {
            let e = check(ask(url), policy(false)).await.expect_err(url);
            assert!(e.message.contains(&format!("a {class} address")), "{url}: {}", e.message);
            let flag = e.message.contains("MVGEN_WEBHOOK_ALLOW_PRIVATE");
            assert_eq!(flag, class != "reserved", "{url}: {}", e.message);
        }
        // A public IPv4 address reached through NAT64 or 6to4 is still public.
        for url in ["https://[64:ff9b::808:808]/hook", "https://[2002:808:808::1]/hook"] {
            assert!(check(ask(url), policy(false)).await.is_ok(), "{url}");
        }
    }
}
