//! A blocking HTTP client for tests that drive a `ServerProcess` step by step: its own runtime,
//! a `reqwest::Client`, and the server's base URL.

use reqwest::header::HeaderMap;

use super::server_process::ServerProcess;

pub struct Client {
    pub rt: tokio::runtime::Runtime,
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(server: &ServerProcess) -> Client {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        Client { rt, http: crate::support::http_client(), base: server.base.clone() }
    }

    /// Sends `request`; status, headers and body text.
    pub fn send(&self, request: reqwest::RequestBuilder) -> (u16, HeaderMap, String) {
        self.rt.block_on(async {
            let resp = request.send().await.expect("request");
            let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
            (status, headers, resp.text().await.expect("body"))
        })
    }

    /// `POST /api/mv/create_scenes` for `flavor`; status and JSON body (null when not JSON).
    pub fn scenes(&self, flavor: &str) -> (u16, serde_json::Value) {
        let body =
            serde_json::json!({"idea": "a lighthouse", "character_description": "a keeper", "config_flavor": flavor});
        let (status, _, text) = self.send(self.http.post(format!("{}/api/mv/create_scenes", self.base)).json(&body));
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }
}

/// Copies the directory tree `from` to `to` (created).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy");
        }
    }
}
