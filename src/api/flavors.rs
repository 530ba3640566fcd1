//! `GET /api/mv/get_config_flavors`: the embedded flavors, for pickers.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::compiler::DEFAULT_FLAVOR;
use crate::flavor;

/// The flavors a request may name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlavorList {
    /// Every flavor name, sorted.
    pub flavors: Vec<&'static str>,
    /// The flavor used when a request names none.
    pub default: &'static str,
    pub details: Vec<FlavorDetails>,
}

/// A flavor's metadata from its `flavor.yaml`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlavorDetails {
    pub name: &'static str,
    pub label: Option<&'static str>,
    pub description: Option<&'static str>,
    /// The parent it inherits from; null for default.
    pub extends: Option<&'static str>,
    /// The content hash of its resolved settings (12 hex digits).
    pub hash: &'static str,
}

#[utoipa::path(
    get,
    path = "/api/mv/get_config_flavors",
    tag = "flavors",
    responses((status = 200, description = "The embedded config flavors", body = FlavorList))
)]
pub async fn get_config_flavors() -> Response {
    // The embedded flavors never change while the process runs, so the answer is serialized once.
    static BODY: LazyLock<Bytes> =
        LazyLock::new(|| serde_json::to_vec(&flavor_list()).expect("the flavor list serializes").into());
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], BODY.clone()).into_response()
}

fn flavor_list() -> FlavorList {
    let details = flavor::names()
        .iter()
        .filter_map(|name| flavor::lookup(name))
        .map(|f| FlavorDetails {
            name: as_static(&f.name),
            label: f.label.as_ref().map(as_static),
            description: f.description.as_ref().map(as_static),
            extends: f.extends.as_ref().map(as_static),
            hash: as_static(&f.hash),
        })
        .collect();
    FlavorList { flavors: flavor::names().to_vec(), default: DEFAULT_FLAVOR, details }
}

/// Embedded flavors hold only borrowed `'static` text; this avoids copying it per request.
fn as_static(text: &'static crate::compiler::Text) -> &'static str {
    text.as_ref()
}
