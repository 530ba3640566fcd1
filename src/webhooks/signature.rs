//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): a secret written `whsec_` +
//! base64, and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, several
//! space-separated while a secret is being rotated. The same scheme signs what mvgen sends and
//! checks what Replicate sends it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use hmac::digest::KeyInit;
use sha2::Sha256;

/// A webhook signing secret. Never printed: `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret([{} bytes redacted])", self.0.len())
    }
}

impl Secret {
    /// `whsec_` + base64 of 24 to 64 bytes (the spec's recommended size).
    pub fn parse(text: &str) -> Result<Secret, String> {
        let encoded = text.trim().strip_prefix("whsec_").ok_or("expected whsec_ followed by base64")?;
        let key = STANDARD.decode(encoded).map_err(|e| format!("the part after whsec_ is not base64 ({e})"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!("the key is {} bytes; Standard Webhooks secrets are 24 to 64", key.len()));
        }
        Ok(Secret(key))
    }

    /// `v1,` + base64 of HMAC-SHA256(`{id}.{timestamp}.{body}`).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes()))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> hmac::Hmac<Sha256> {
        // Any key length is a valid HMAC key, so this never fails.
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac
    }

    /// Whether one of the space-separated `v1,` signatures in `header` is this secret's, compared
    /// in constant time.
    pub fn verifies(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header
            .split(' ')
            .filter_map(|sig| sig.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .any(|expected| self.mac(id, timestamp, body).verify_slice(&expected).is_ok())
    }
}

/// The `webhook-signature` header: one signature per secret, space-separated (the current secret
/// first, then the one being rotated to), so a receiver holding either accepts the message.
pub fn header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|s| s.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example (its reference libraries test the same values).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_specifications_test_vector() {
        let secret = Secret::parse(SPEC_SECRET).expect("the spec's secret");
        assert_eq!(secret.sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()), SPEC_SIGNATURE);
        assert!(secret.verifies(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes(), SPEC_SIGNATURE));
    }

    #[test]
    fn a_changed_id_timestamp_or_body_does_not_verify() {
        let secret = Secret::parse(SPEC_SECRET).expect("the spec's secret");
        let body = SPEC_BODY.as_bytes();
        assert!(!secret.verifies("msg_other", SPEC_TIMESTAMP, body, SPEC_SIGNATURE));
        assert!(!secret.verifies(SPEC_ID, SPEC_TIMESTAMP + 1, body, SPEC_SIGNATURE));
        assert!(!secret.verifies(SPEC_ID, SPEC_TIMESTAMP, br#"{"test": 2432232315}"#, SPEC_SIGNATURE));
        assert!(!secret.verifies(SPEC_ID, SPEC_TIMESTAMP, body, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_and_either_verifies() {
        let old = Secret::parse(SPEC_SECRET).expect("old");
        let new = Secret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 32]))).expect("new");
        let header = header(&[old.clone(), new.clone()], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes());
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2, "{header}");
        assert_eq!(parts[0], SPEC_SIGNATURE);
        assert!(new.verifies(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes(), &header));
        assert!(old.verifies(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes(), &header));
    }

    #[test]
    fn secrets_must_be_whsec_and_base64_of_a_sensible_size() {
        assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err().contains("whsec_"));
        assert!(Secret::parse("whsec_not base64!").unwrap_err().contains("base64"));
        assert!(Secret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 8]))).unwrap_err().contains("8 bytes"));
        assert!(!format!("{:?}", Secret::parse(SPEC_SECRET).expect("secret")).contains("MfKQ"));
    }
}
