//! The keys `API_KEY` accepts: literal keys, and `hash:<sha256 hex>` entries that match a key by its
//! SHA-256 digest (so a deployment's environment need not hold the key itself, as in the service
//! mvgen replaces). Every comparison runs in constant time and every entry is always compared, so
//! timing says neither how much of a key matched nor which entry did.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One `API_KEY` entry.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiKey {
    Literal(Vec<u8>),
    Sha256([u8; 32]),
}

// Keys must never reach a log line, even through Debug.
impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApiKey::Literal(_) => "ApiKey::Literal(redacted)",
            ApiKey::Sha256(_) => "ApiKey::Sha256(redacted)",
        })
    }
}

impl ApiKey {
    /// Reads one entry: `hash:` followed by 64 hex digits (any case) is a digest, anything else a key.
    pub fn parse(entry: &str) -> Result<ApiKey, String> {
        let Some(hex) = entry.strip_prefix("hash:") else {
            return Ok(ApiKey::Literal(entry.as_bytes().to_vec()));
        };
        let hex = hex.trim();
        let digit = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
        let mut digest = [0u8; 32];
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(format!("a `hash:` entry needs 64 hex digits (a SHA-256), found {}", bytes.len()));
        }
        for (i, pair) in bytes.chunks(2).enumerate() {
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => digest[i] = hi << 4 | lo,
                _ => return Err("a `hash:` entry holds only hex digits after `hash:`".into()),
            }
        }
        Ok(ApiKey::Sha256(digest))
    }
}

/// Every configured key.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(Vec<ApiKey>);

impl ApiKeys {
    /// The keys of `entries`; a malformed `hash:` entry (refused by `Settings` at startup) is left
    /// out rather than compared literally.
    pub fn from_entries(entries: &[String]) -> ApiKeys {
        ApiKeys(entries.iter().filter_map(|e| ApiKey::parse(e).ok()).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the keys.
    pub fn accepts(&self, presented: &str) -> bool {
        self.identify(presented).is_some()
    }

    /// The scope of `presented` when it is one of the keys (the digest is computed once for both).
    pub fn identify(&self, presented: &str) -> Option<KeyScope> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let matched = self.0.iter().fold(0u8, |acc, key| {
            let hit = match key {
                ApiKey::Literal(k) => k.as_slice().ct_eq(presented.as_bytes()),
                ApiKey::Sha256(d) => d.ct_eq(&digest),
            };
            acc | hit.unwrap_u8()
        });
        (matched == 1).then(|| KeyScope::of_digest(&digest))
    }
}

/// Which API key a request came with, as the job store keeps it: the first 16 hex digits (64 bits)
/// of the key's SHA-256, never the key. A literal entry and a `hash:` entry for the same key give
/// the same scope. Idempotency keys and the per-key queue limit (`MVGEN_MAX_QUEUED_PER_KEY`) are
/// scoped by it, so one caller can neither replay another's job nor fill another's quota. Set as a
/// request extension by the key check; absent when no API keys are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScope(String);

impl KeyScope {
    fn of_digest(digest: &[u8; 32]) -> KeyScope {
        KeyScope(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The scope as stored (16 lowercase hex digits).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-256 of "abc" (the FIPS 180-2 test vector), as `printf abc | sha256sum` prints it.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn sha256_hex(s: &str) -> String {
        Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hash_entries_match_by_digest_and_literal_entries_literally() {
        let hex = sha256_hex("s3cret");
        let keys = ApiKeys::from_entries(&[format!("hash:{}", hex.to_uppercase()), "plain-key".into()]);
        assert!(keys.accepts("s3cret") && keys.accepts("plain-key"));
        assert!(!keys.accepts(&format!("hash:{hex}")), "the entry itself is not a key");
        assert!(!keys.accepts("s3cret ") && !keys.accepts("") && !keys.accepts("plain"));
        let abc = ApiKeys::from_entries(&[format!("hash:{ABC}")]);
        assert!(abc.accepts("abc") && !abc.accepts("abd") && !abc.accepts(ABC));
    }

    #[test]
    fn a_key_is_scoped_by_its_digest_whichever_entry_matched_it() {
        let hex = sha256_hex("s3cret");
        let by_hash = ApiKeys::from_entries(&[format!("hash:{hex}")]).identify("s3cret").expect("accepted");
        let literal = ApiKeys::from_entries(&["s3cret".into()]).identify("s3cret").expect("accepted");
        assert_eq!(by_hash, literal);
        assert_eq!(by_hash.as_str(), &hex[..16], "the first 64 bits of the SHA-256, never the key");
        let other = ApiKeys::from_entries(&["other".into()]).identify("other").expect("accepted");
        assert_ne!(other, literal);
        assert!(ApiKeys::from_entries(&["s3cret".into()]).identify("nope").is_none());
    }

    #[test]
    fn malformed_hash_entries_are_refused_with_a_reason() {
        assert!(ApiKey::parse("hash:abc").expect_err("short").contains("64 hex digits"));
        assert!(ApiKey::parse(&format!("hash:{}", "z".repeat(64))).expect_err("not hex").contains("hex"));
        assert!(ApiKeys::from_entries(&["hash:abc".into()]).is_empty());
        assert_eq!(format!("{:?}", ApiKey::parse("k").expect("literal")), "ApiKey::Literal(redacted)");
    }
}
