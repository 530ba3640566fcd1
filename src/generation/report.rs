//! `FlavorReport`: which flavor served a request, as every generation's `metadata.config_flavor`
//! reports it. Made once when the flavor is chosen; after planning, code sees this, never the
//! flavor itself.

use serde::{Deserialize, Serialize};

use crate::flavor::Chosen;

/// Which flavor served a request, as reported in `metadata.config_flavor`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlavorReport {
    /// The flavor the request named, or null.
    pub requested: Option<String>,
    /// The flavor actually used.
    pub used: String,
    /// The content hash of the flavor used (12 hex digits): equal hashes, equal settings.
    pub hash: String,
    /// True when the requested flavor does not exist and the default was used.
    pub fallback: bool,
    /// Why it fell back.
    pub reason: Option<String>,
    /// For a project's generation: why the flavor the request named was not used (a project's
    /// generations use the flavor it pinned at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl From<&Chosen> for FlavorReport {
    fn from(c: &Chosen) -> Self {
        FlavorReport {
            requested: c.requested.clone(),
            used: c.flavor.name.to_string(),
            hash: c.flavor.hash.to_string(),
            fallback: c.fell_back(),
            reason: c.fallback_reason.clone(),
            warning: None,
        }
    }
}
