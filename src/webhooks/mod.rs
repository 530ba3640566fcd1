//! Outbound webhooks (issue 26): a job may carry a `webhook` URL and a `webhook_events_filter`;
//! what it asked for is sent there, signed as the Standard Webhooks specification says.
//!
//! - `signature`: the `whsec_` secrets and the `webhook-signature` header (sending and checking);
//! - `target`: the fields read and checked at submit, and the addresses a delivery may reach;
//! - `sender`: each process's loop that claims due deliveries from the jobs database, sends them
//!   and records each attempt, retrying on the spec's schedule.
//!
//! The deliveries themselves are rows of the jobs database (`jobs::store::deliveries`), written
//! with the job state they tell of, so any replica sends them and a crash loses none.

pub mod sender;
pub mod signature;
pub mod target;

use std::time::Duration;

use anyhow::{anyhow, bail};

use crate::jobs::store::deliveries::WebhookPolicy;
use signature::Secret;

/// The webhook settings, read once at startup.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `MVGEN_WEBHOOK_SECRET`: signs every delivery; unset, webhooks are off (a `webhook` is
    /// refused at submit).
    pub secret: Option<Secret>,
    /// `MVGEN_WEBHOOK_SECRET_NEXT`: the secret being rotated to; each delivery is signed with both.
    pub secret_next: Option<Secret>,
    /// `MVGEN_WEBHOOK_RETRY_SCALE`: the retry schedule's waits multiplied by this (tests shrink it).
    pub retry_scale: f64,
    /// `MVGEN_WEBHOOK_ALLOW_PRIVATE=true`: loopback, private and link-local targets, and http.
    pub allow_private: bool,
    /// `REPLICATE_WEBHOOK_SECRET`: checks the webhooks Replicate sends (`MVGEN_PUBLIC_URL`).
    pub replicate_secret: Option<Secret>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { secret: None, secret_next: None, retry_scale: 1.0, allow_private: false, replicate_secret: None }
    }
}

/// The waits before each attempt, as the Standard Webhooks specification suggests them: at once,
/// then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h after the attempt before (ten
/// attempts over about three days).
pub const SCHEDULE: [Duration; 10] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];

impl Settings {
    /// Reads the environment through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let read_secret = |name: &str| -> anyhow::Result<Option<Secret>> {
            match var(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                // Never the value itself in the message: it is a secret.
                Some(v) => Secret::parse(&v).map(Some).map_err(|e| anyhow!("{name}: {e}")),
            }
        };
        let (secret, secret_next) = (read_secret("MVGEN_WEBHOOK_SECRET")?, read_secret("MVGEN_WEBHOOK_SECRET_NEXT")?);
        if secret.is_none() && secret_next.is_some() {
            bail!("MVGEN_WEBHOOK_SECRET_NEXT is set without MVGEN_WEBHOOK_SECRET: set the current secret too");
        }
        // At least 0.0001 (24 h becomes under 9 s, 5 s half a millisecond); at most 1: the
        // schedule is the spec's, a setting may only shorten it.
        let retry_scale = match var("MVGEN_WEBHOOK_RETRY_SCALE") {
            None => 1.0,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0001..=1.0).contains(s))
                .ok_or_else(|| anyhow!("MVGEN_WEBHOOK_RETRY_SCALE={v:?}: expected a number from 0.0001 to 1"))?,
        };
        let allow_private = match var("MVGEN_WEBHOOK_ALLOW_PRIVATE") {
            None => false,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" | "" => false,
                _ => bail!("MVGEN_WEBHOOK_ALLOW_PRIVATE={v:?}: expected true or false"),
            },
        };
        let replicate_secret = read_secret("REPLICATE_WEBHOOK_SECRET")?;
        // Webhooks asked for but not checkable would be refused one by one while every render
        // waited for its backstop poll: a start-up error instead.
        if var("MVGEN_PUBLIC_URL").is_some_and(|v| !v.trim().is_empty()) && replicate_secret.is_none() {
            bail!(
                "MVGEN_PUBLIC_URL is set without REPLICATE_WEBHOOK_SECRET: Replicate's webhooks could not be \
                 verified (its secret is at GET https://api.replicate.com/v1/webhooks/default/secret)"
            );
        }
        Ok(Settings { secret, secret_next, retry_scale, allow_private, replicate_secret })
    }

    /// What the submit path needs to know.
    pub fn policy(&self) -> WebhookPolicy {
        WebhookPolicy { enabled: self.secret.is_some(), allow_private: self.allow_private }
    }

    /// The secrets each delivery is signed with, current first.
    pub fn secrets(&self) -> Vec<Secret> {
        self.secret.iter().chain(self.secret_next.iter()).cloned().collect()
    }

    /// The wait before attempt `attempt` (1-based; the first is at once), scaled; `None` past
    /// the schedule's end.
    pub fn wait_before(&self, attempt: usize) -> Option<Duration> {
        let wait = SCHEDULE.get(attempt.checked_sub(1)?)?;
        Some(wait.mul_f64(self.retry_scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_vars(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn off_by_default_and_on_with_a_secret() {
        let off = settings(&[]).expect("defaults");
        assert!(!off.policy().enabled && !off.policy().allow_private);
        assert_eq!(off.wait_before(2), Some(Duration::from_secs(5)));
        let on = settings(&[("MVGEN_WEBHOOK_SECRET", SECRET), ("MVGEN_WEBHOOK_RETRY_SCALE", "0.001")]).expect("on");
        assert!(on.policy().enabled);
        assert_eq!(on.secrets().len(), 1);
        assert_eq!(on.wait_before(1), Some(Duration::ZERO));
        assert_eq!(on.wait_before(3), Some(Duration::from_millis(300)));
        assert_eq!(on.wait_before(10), Some(Duration::from_secs(24 * 36) / 10));
        assert_eq!(on.wait_before(11), None, "ten attempts in all");
    }

    #[test]
    fn bad_values_are_refused_without_printing_the_secret() {
        let e = settings(&[("MVGEN_WEBHOOK_SECRET", "whsec_c2hvcnQ=")]).unwrap_err().to_string();
        assert!(e.starts_with("MVGEN_WEBHOOK_SECRET:") && !e.contains("c2hvcnQ"), "{e}");
        let e = settings(&[("MVGEN_WEBHOOK_SECRET_NEXT", SECRET)]).unwrap_err().to_string();
        assert!(e.contains("without MVGEN_WEBHOOK_SECRET"), "{e}");
        for scale in ["0", "2", "-1", "x", "NaN"] {
            let e = settings(&[("MVGEN_WEBHOOK_RETRY_SCALE", scale)]).unwrap_err().to_string();
            assert!(e.contains("0.0001 to 1"), "{scale}: {e}");
        }
        assert!(settings(&[("MVGEN_WEBHOOK_RETRY_SCALE", "0.0001")]).is_ok());
        assert!(settings(&[("MVGEN_WEBHOOK_ALLOW_PRIVATE", "ture")]).is_err());
    }
}
