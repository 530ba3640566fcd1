//! The create page: `page/*.html|css|js`, embedded in the binary with include_dir and served as is.
//!
//! This module owns static files only. It knows nothing about the API or the app state: the page
//! finds the API by path (`/api/mv/*`, same origin), so [`router`] can be merged into any app.

use std::hash::{DefaultHasher, Hasher};

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, include_dir};

static PAGE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/page");

/// The file answered at `/` and `/create`.
const ENTRY: &str = "create.html";

/// Asset URLs are not versioned, so a cached copy must be revalidated every time or a new binary
/// could run its HTML with an old script. The ETag keeps that revalidation to a bodiless 304.
const CACHE_CONTROL: &str = "no-cache";

/// Only the API on the same origin, no inline code, no third-party anything. `blob:` is for media
/// fetched with an API key (elements cannot send headers), `data:` for the inline favicon.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `/` and `/create`: the create page.
pub async fn create_page(request: HeaderMap) -> Response {
    serve(ENTRY, &request)
}

/// `/assets/{file}`: the page's other files.
pub async fn asset(Path(file): Path<String>, request: HeaderMap) -> Response {
    serve(&file, &request)
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    // Lookups only ever hit the embedded tree, but a name with a separator is never one of ours.
    let file = if name.contains(['/', '\\']) { None } else { PAGE.get_file(name) };
    let Some(file) = file else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n")
            .into_response();
    };
    let body = file.contents();
    let etag = etag(body);
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if not_modified(request, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let content_type = content_type(name);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if content_type.starts_with("text/html") {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    }
    (StatusCode::OK, headers, body).into_response()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// A strong validator from the bytes. `DefaultHasher::new()` is fixed within one build, which is
/// all an ETag needs: a new binary may change it, and then clients simply fetch again.
fn etag(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    hasher.write(body);
    format!("\"{:016x}\"", hasher.finish())
}

fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    /// The page's routes as `api::routes` serves them.
    fn router() -> axum::Router {
        use axum::routing::get;
        axum::Router::new()
            .route("/", get(create_page))
            .route("/create", get(create_page))
            .route("/assets/{file}", get(asset))
    }

    async fn get(uri: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::get(uri);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        let response =
            router().oneshot(request.body(Body::empty()).expect("request")).await.expect("infallible router");
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn root_and_create_serve_the_page_as_html() {
        for uri in ["/", "/create"] {
            let (status, headers, body) = get(uri, None).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8", "{uri}");
            assert_eq!(headers[header::CACHE_CONTROL], CACHE_CONTROL, "{uri}");
            assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY), "{uri}");
            assert!(body.contains(r#"id="config-flavor""#), "{uri}");
        }
    }

    #[tokio::test]
    async fn assets_have_their_content_types() {
        // A module script is refused unless it is served as JavaScript.
        let (status, headers, body) = get("/assets/flavors.js", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert!(body.contains("get_config_flavors"));
        let (status, headers, _) = get("/assets/create.css", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[tokio::test]
    async fn unknown_and_traversing_names_are_not_found() {
        for uri in ["/assets/nope.js", "/assets/..%2FCargo.toml", "/assets/%2E%2E%2Fsrc%2Fpage.rs"] {
            let (status, _, _) = get(uri, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        }
    }

    #[tokio::test]
    async fn a_matching_etag_gets_304_and_a_stale_one_gets_the_body() {
        let (_, headers, body) = get("/assets/create.css", None).await;
        let tag = headers[header::ETAG].to_str().expect("ascii etag").to_owned();
        let (status, headers, empty) = get("/assets/create.css", Some(&tag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(headers[header::ETAG], tag.as_str());
        assert!(empty.is_empty());
        let (status, _, again) = get("/assets/create.css", Some("\"0000000000000000\", W/\"x\"")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, body);
    }

    /// Every `/assets/...` the HTML asks for must be embedded, or the page loads without its script.
    #[test]
    fn every_asset_the_html_references_is_embedded() {
        let html = PAGE.get_file(ENTRY).and_then(|f| f.contents_utf8()).expect("create.html is embedded");
        let referenced: Vec<&str> =
            html.split("\"/assets/").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        assert!(referenced.contains(&"create.js") && referenced.contains(&"create.css"), "{referenced:?}");
        for name in referenced {
            assert!(PAGE.get_file(name).is_some(), "create.html references /assets/{name}, which is not in page/");
        }
    }

    /// Every module a script imports (`from './x.js'`) is embedded, from the entry script down.
    #[test]
    fn every_module_the_scripts_import_is_embedded() {
        let mut seen = vec!["create.js".to_string()];
        let mut next = 0;
        while let Some(name) = seen.get(next).cloned() {
            next += 1;
            let script = PAGE.get_file(&name).and_then(|f| f.contents_utf8());
            let script = script.unwrap_or_else(|| panic!("a script imports ./{name}, which is not in page/"));
            for import in script.split(" from './").skip(1).filter_map(|rest| rest.split('\'').next()) {
                if !seen.iter().any(|s| s == import) {
                    seen.push(import.to_string());
                }
            }
        }
        assert!(seen.len() > 5, "the page is split into modules: {seen:?}");
    }
}
