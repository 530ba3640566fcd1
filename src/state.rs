//! `AppState`: what every handler shares.

use std::sync::Arc;

use crate::live_configs::FlavorSource;
use crate::providers::Providers;
use crate::storage::Storage;

/// What handlers share. Embedded flavors are `static` data and live ones immutable snapshots, so
/// requests with different flavors share no mutable config state at all. The router holds it in an
/// `Arc` (`server::app_with_jobs`): axum clones the state for every request, and one pointer is
/// one atomic increment where this struct's fields are six.
#[derive(Clone)]
pub struct AppState {
    pub providers: Providers,
    pub storage: Arc<dyn Storage>,
    /// `MV_DEBUG_MODE`: log every config value a request consumes and the final prompt.
    pub debug: bool,
    /// `MV_STRICT_FLAVORS`: answer 400 for an unknown flavor instead of falling back to default.
    pub strict_flavors: bool,
    /// `MV_MAX_CONCURRENT_GENERATIONS`: generation requests running at once.
    pub generations: crate::limits::GenerationSlots,
    /// Where flavors come from: the embedded table, or a watched directory (`serve --configs`).
    pub flavors: FlavorSource,
}

impl axum::extract::FromRef<Arc<AppState>> for FlavorSource {
    fn from_ref(state: &Arc<AppState>) -> FlavorSource {
        state.flavors.clone()
    }
}
