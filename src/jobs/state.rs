//! The closed sets of words a job's state is stored and answered in: its [`JobStatus`] and its
//! events' [`EventKind`]s. Each word is spelled here and nowhere else in the Rust code: the SQL
//! statements that compare or set a status are built from `status_text!`, rows are parsed back
//! with `FromStr`, and serde writes the same words on the wire.
//!
//! No sqlx `Type`/`Decode` impls on purpose: a value is bound as its `as_str` text, and read as
//! a `String` then parsed by `store::rows`, because a word this build does not know must be an
//! error naming the job's id, which a column decoder never sees. This module must not guess: an
//! unknown word is [`UnknownWord`], never mapped to a neighbour.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A status's text as a literal, for SQL statements built with `concat!` or `format!`: byte for
/// byte the statements once written by hand, so the database plans them as before (the claim is
/// a hot path: no status becomes a bound parameter there), and a constant stays a constant.
macro_rules! status_text {
    (Queued) => {
        "queued"
    };
    (Processing) => {
        "processing"
    };
    (Succeeded) => {
        "succeeded"
    };
    (Failed) => {
        "failed"
    };
    (Canceled) => {
        "canceled"
    };
}
pub(crate) use status_text;

/// Where a job is. `queued` and `processing` move on; the other three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for a worker (new, retrying after a failure, or released by a shutdown).
    Queued,
    /// Claimed by a worker.
    Processing,
    /// Ended with an output.
    Succeeded,
    /// Ended with an error (its kind is the row's error code).
    Failed,
    /// Ended by a cancel.
    Canceled,
}

impl JobStatus {
    /// Every status, in the order a job moves through them.
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Queued, JobStatus::Processing, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Canceled];

    /// The stored and wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => status_text!(Queued),
            JobStatus::Processing => status_text!(Processing),
            JobStatus::Succeeded => status_text!(Succeeded),
            JobStatus::Failed => status_text!(Failed),
            JobStatus::Canceled => status_text!(Canceled),
        }
    }

    /// Succeeded, failed or canceled: nothing changes it any more.
    pub const fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Canceled)
    }
}

/// What a job's event says happened; the SSE event's name. An event that moves the job to a status
/// is named after that status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Stored (written by the insert itself; on SQLite by the `jobs_queued_event` trigger).
    Queued,
    /// Claimed by a worker (a takeover included).
    Processing,
    /// An upstream run was saved.
    Upstream,
    /// A progress step of the run.
    Progress,
    /// A cancel was asked for while a worker runs the job.
    CancelRequested,
    /// A retryable failure: queued again for a later attempt.
    Retrying,
    /// Released to the queue by a shutdown.
    Released,
    /// The final event of a job that succeeded.
    Succeeded,
    /// The final event of a job that failed.
    Failed,
    /// The final event of a job that was canceled.
    Canceled,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        EventKind::Queued,
        EventKind::Processing,
        EventKind::Upstream,
        EventKind::Progress,
        EventKind::CancelRequested,
        EventKind::Retrying,
        EventKind::Released,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::Canceled,
    ];

    /// The stored text and SSE event name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => status_text!(Queued),
            EventKind::Processing => status_text!(Processing),
            EventKind::Upstream => "upstream",
            EventKind::Progress => "progress",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::Retrying => "retrying",
            EventKind::Released => "released",
            EventKind::Succeeded => status_text!(Succeeded),
            EventKind::Failed => status_text!(Failed),
            EventKind::Canceled => status_text!(Canceled),
        }
    }

    /// The job's last event: its stream ends after it.
    pub const fn is_final(self) -> bool {
        matches!(self, EventKind::Succeeded | EventKind::Failed | EventKind::Canceled)
    }
}

/// A stored or sent word that is none of its set's (a newer build's status, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownWord {
    /// Which set: `status` or `event kind`.
    pub what: &'static str,
    /// The word as found.
    pub value: String,
}

/// `Display`, `FromStr`, serde and a test comparison with the wire text, all through `as_str`.
macro_rules! words {
    ($type:ty, $what:literal) => {
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = UnknownWord;

            fn from_str(text: &str) -> Result<Self, UnknownWord> {
                <$type>::ALL
                    .into_iter()
                    .find(|word| word.as_str() == text)
                    .ok_or_else(|| UnknownWord { what: $what, value: text.to_owned() })
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        /// So a test can compare with the wire text (as `ErrorKind` can).
        impl PartialEq<&str> for $type {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

words!(JobStatus, "status");
words!(EventKind, "event kind");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_through_its_text_serde_and_parsing() {
        for status in JobStatus::ALL {
            let text = status.as_str();
            assert_eq!(text.parse::<JobStatus>(), Ok(status));
            assert_eq!(status.to_string(), text);
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::json!(text)));
            assert_eq!(serde_json::from_value::<JobStatus>(serde_json::json!(text)).ok(), Some(status));
        }
        for kind in EventKind::ALL {
            let text = kind.as_str();
            assert_eq!(text.parse::<EventKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).ok(), Some(serde_json::json!(text)));
            assert_eq!(serde_json::from_value::<EventKind>(serde_json::json!(text)).ok(), Some(kind));
        }
        let texts: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts, ["queued", "processing", "succeeded", "failed", "canceled"], "the wire spellings");
        let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "queued",
                "processing",
                "upstream",
                "progress",
                "cancel_requested",
                "retrying",
                "released",
                "succeeded",
                "failed",
                "canceled"
            ]
        );
    }

    #[test]
    fn an_unknown_word_is_an_error_never_a_neighbour() {
        assert_eq!("paused".parse::<JobStatus>(), Err(UnknownWord { what: "status", value: "paused".into() }));
        assert!("Queued".parse::<JobStatus>().is_err(), "spellings are exact");
        assert!("paused".parse::<EventKind>().is_err());
        assert!(serde_json::from_value::<JobStatus>(serde_json::json!("paused")).is_err());
    }

    #[test]
    fn the_final_statuses_and_events_are_the_same_three() {
        let statuses: Vec<&str> = JobStatus::ALL.into_iter().filter(|s| s.is_final()).map(JobStatus::as_str).collect();
        let events: Vec<&str> = EventKind::ALL.into_iter().filter(|k| k.is_final()).map(EventKind::as_str).collect();
        assert_eq!(statuses, ["succeeded", "failed", "canceled"]);
        assert_eq!(events, statuses);
    }
}
