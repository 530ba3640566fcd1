//! `GET /api/mv/get_config_flavors`: the flavors a request may name, for pickers; with
//! `serve --configs DIR`, also what the live directory's last compile said.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::flavor;
use crate::live_configs::{FlavorSource, LiveConfigs};
use crate::model::{DEFAULT_FLAVOR, Flavor};

/// The flavors a request may name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlavorList<'a> {
    /// Every flavor name, sorted.
    pub flavors: Vec<&'a str>,
    /// The flavor used when a request names none.
    pub default: &'a str,
    pub details: Vec<FlavorDetails<'a>>,
    /// Present only when the server compiles a watched directory (`mvgen serve --configs DIR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveStatus>,
}

/// A flavor's metadata from its `flavor.yaml`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlavorDetails<'a> {
    pub name: &'a str,
    pub label: Option<&'a str>,
    pub description: Option<&'a str>,
    /// The parent it inherits from; null for default.
    pub extends: Option<&'a str>,
    /// The content hash of its resolved settings (12 hex digits).
    pub hash: &'a str,
}

/// Live configs: which directory is served and whether its current content compiles.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveStatus {
    /// The watched configs directory, as given on the command line.
    pub dir: String,
    /// 1 for the table compiled at start, +1 for every edit that compiled to something different.
    pub generation: u64,
    /// Empty when the directory's content is what is served; otherwise why not, one
    /// `file:line:col: message` per fault, and the last good flavors are still served.
    pub diagnostics: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/mv/get_config_flavors",
    tag = "flavors",
    responses((status = 200, description = "The config flavors (embedded, or live from a watched directory)", body = FlavorList))
)]
pub async fn get_config_flavors(State(source): State<FlavorSource>) -> Response {
    let body = match source {
        FlavorSource::Embedded => {
            // The embedded flavors never change while the process runs, so the answer is serialized once.
            static BODY: LazyLock<Bytes> = LazyLock::new(|| {
                let list = flavor_list(&flavor::all(), None);
                serde_json::to_vec(&list).expect("the flavor list serializes").into()
            });
            BODY.clone()
        }
        FlavorSource::Live(live) => live_body(&live),
    };
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// The current live table, serialized per request: a prompt author's server, not a hot path.
fn live_body(live: &LiveConfigs) -> Bytes {
    let snapshot = live.snapshot();
    let flavors: Vec<&Flavor> = snapshot.table.flavors().iter().collect();
    let status = LiveStatus {
        dir: live.dir().display().to_string(),
        generation: snapshot.generation,
        diagnostics: snapshot.diagnostics.clone(),
    };
    // Only plain strings and numbers: serializing cannot fail.
    serde_json::to_vec(&flavor_list(&flavors, Some(status))).unwrap_or_default().into()
}

/// The answer for `flavors` (any order): names sorted, details in the same order.
fn flavor_list<'a>(flavors: &[&'a Flavor], live: Option<LiveStatus>) -> FlavorList<'a> {
    let mut sorted = flavors.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let details = sorted
        .iter()
        .map(|f| FlavorDetails {
            name: &f.name,
            label: f.label.as_deref(),
            description: f.description.as_deref(),
            extends: f.extends.as_deref(),
            hash: &f.hash,
        })
        .collect();
    FlavorList { flavors: sorted.iter().map(|f| f.name.as_ref()).collect(), default: DEFAULT_FLAVOR, details, live }
}
