//! REST client for Hangar's `/api` routes: URL building, auth, and turning failures into one line.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde_json::Value;

use crate::error::{CliError, describe_transport_error};

/// The key to use: `--key`/`HANGAR_KEY` when given, else `<data-dir>/admin.key`, trimmed.
pub fn resolve_key(key: Option<&str>, data_dir: &Path) -> Result<String, CliError> {
    if let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) {
        return Ok(key.to_owned());
    }
    let path = data_dir.join("admin.key");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Ok(_) => Err(CliError::NoKey { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::NoKey { path }),
        Err(e) => Err(CliError::KeyFile {
            path,
            reason: e.to_string(),
        }),
    }
}

/// A connection to one Hangar server with one API key.
pub struct Client {
    pub(crate) http: reqwest::Client,
    base: Url,
    key: String,
}

impl Client {
    pub fn new(url: &str, key: String) -> Result<Self, CliError> {
        let base =
            Url::parse(url).map_err(|e| CliError::Usage(format!("invalid --url '{url}': {e}")))?;
        if base.scheme() != "http" {
            return Err(CliError::Usage(format!(
                "invalid --url '{url}': only http:// URLs are supported"
            )));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(CliError::Usage(format!("invalid --url '{url}': no host")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("hangar-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build HTTP client: {e}")))?;
        Ok(Self { http, base, key })
    }

    /// `base` + the given path segments (each percent-encoded).
    pub fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The base URL as the user gave it, for messages.
    pub fn base_display(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_owned()
    }

    pub(crate) fn authorized(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.key)
    }

    pub(crate) fn transport_error(&self, err: &reqwest::Error) -> CliError {
        CliError::Connect {
            url: self.base_display(),
            reason: describe_transport_error(err),
        }
    }

    /// `GET /api/<segments>?<query>`.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, CliError> {
        let mut url = self.endpoint(&api_path(segments));
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        self.send(self.authorized(Method::GET, url)).await
    }

    /// `POST /api/<segments>` with an optional JSON body.
    pub async fn post(&self, segments: &[&str], body: Option<&Value>) -> Result<Value, CliError> {
        let mut request = self.authorized(Method::POST, self.endpoint(&api_path(segments)));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    /// `PUT /api/<segments>` with a JSON body.
    pub async fn put(&self, segments: &[&str], body: &Value) -> Result<Value, CliError> {
        let request = self.authorized(Method::PUT, self.endpoint(&api_path(segments)));
        self.send(request.json(body)).await
    }

    /// `DELETE /api/<segments>`.
    pub async fn delete(&self, segments: &[&str]) -> Result<Value, CliError> {
        self.send(self.authorized(Method::DELETE, self.endpoint(&api_path(segments))))
            .await
    }

    /// `DELETE /api/<segments>?<query>`.
    pub async fn delete_query(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, CliError> {
        let mut url = self.endpoint(&api_path(segments));
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        self.send(self.authorized(Method::DELETE, url)).await
    }

    /// `DELETE /api/<segments>` with a JSON body.
    pub async fn delete_with_body(
        &self,
        segments: &[&str],
        body: &Value,
    ) -> Result<Value, CliError> {
        let request = self.authorized(Method::DELETE, self.endpoint(&api_path(segments)));
        self.send(request.json(body)).await
    }

    /// `GET /<segments>` (outside `/api`) as text, e.g. `/metrics`.
    pub async fn get_text(&self, segments: &[&str]) -> Result<String, CliError> {
        self.text_of(self.authorized(Method::GET, self.endpoint(segments)))
            .await
    }

    /// Sends `request`; its body as text, or the server's error.
    async fn text_of(&self, request: RequestBuilder) -> Result<String, CliError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(api_error(status, &text));
        }
        Ok(text)
    }

    /// Opens `GET /api/<segments>?<query>` as a stream (e.g. Server-Sent
    /// Events), resuming after `last_event_id` if given. A non-2xx answer is
    /// an error.
    pub async fn open_stream(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, CliError> {
        let mut url = self.endpoint(&api_path(segments));
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        let mut request = self
            .authorized(Method::GET, url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(api_error(status, &text));
        }
        Ok(response)
    }

    /// The `ws://` URL of `/api/<segments>?<query>`.
    pub fn ws_url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.endpoint(&api_path(segments));
        // Only http:// bases are accepted, so this can't fail.
        let _ = url.set_scheme("ws");
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        url
    }

    /// The API key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    async fn send(&self, request: RequestBuilder) -> Result<Value, CliError> {
        let text = self.text_of(request).await?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| {
            CliError::Protocol(format!(
                "a success answer with a body that is not JSON ({e})"
            ))
        })
    }
}

fn api_path<'a>(segments: &[&'a str]) -> Vec<&'a str> {
    let mut path = Vec::with_capacity(segments.len() + 1);
    path.push("api");
    path.extend_from_slice(segments);
    path
}

/// Turn a non-2xx answer into one line: the server's `message` (or `error`), else the body text,
/// else the status reason.
pub fn api_error(status: StatusCode, body: &str) -> CliError {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|value| {
        ["message", "error"]
            .iter()
            .find_map(|field| value.get(*field).and_then(Value::as_str).map(str::to_owned))
            .filter(|m| !m.trim().is_empty())
    });
    let message = from_json.unwrap_or_else(|| {
        let text = body.trim();
        if text.is_empty() || text.starts_with('<') {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_lowercase()
        } else {
            first_line_truncated(text, 200)
        }
    });
    CliError::Api {
        status: status.as_u16(),
        message,
    }
}

/// First line of `text`, cut to at most `max` characters (with an ellipsis when cut).
pub fn first_line_truncated(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim_end();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_use_the_server_message() {
        let body =
            r#"{"error":"ProviderNotFound","message":"provider 'x' not found","status_code":404}"#;
        let err = api_error(StatusCode::NOT_FOUND, body);
        assert_eq!(err.to_string(), "provider 'x' not found (404)");
        assert_eq!(err.exit_code(), crate::error::EXIT_SERVER);
        let err = api_error(StatusCode::UNAUTHORIZED, r#"{"error":"Unauthorized"}"#);
        assert_eq!(err.to_string(), "Unauthorized (401)");
        let err = api_error(
            StatusCode::FORBIDDEN,
            "Forbidden: Host header is not allowed\nmore",
        );
        assert_eq!(
            err.to_string(),
            "Forbidden: Host header is not allowed (403)"
        );
        let err = api_error(StatusCode::BAD_GATEWAY, "");
        assert_eq!(err.to_string(), "bad gateway (502)");
    }

    #[test]
    fn endpoints_are_encoded_and_keep_a_base_path() {
        let client =
            Client::new("http://127.0.0.1:8000/", "k".into()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            client.endpoint(&["api", "providers", "a b/c"]).as_str(),
            "http://127.0.0.1:8000/api/providers/a%20b%2Fc"
        );
        let client = Client::new("http://h:1/prefix", "k".into()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.endpoint(&["mcp"]).as_str(), "http://h:1/prefix/mcp");
        assert_eq!(client.base_display(), "http://h:1/prefix");
        assert!(matches!(
            Client::new("localhost:8000", "k".into()),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            Client::new("ftp://h", "k".into()),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn key_comes_from_flag_then_file() {
        let dir = std::env::temp_dir().join(format!("hangar-cli-key-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        assert!(matches!(
            resolve_key(None, &dir),
            Err(CliError::NoKey { .. })
        ));
        assert_eq!(
            resolve_key(Some(" hgr_flag \n"), &dir).ok().as_deref(),
            Some("hgr_flag")
        );
        let _ = std::fs::write(dir.join("admin.key"), "hgr_file\n");
        assert_eq!(resolve_key(None, &dir).ok().as_deref(), Some("hgr_file"));
        assert_eq!(
            resolve_key(Some("  "), &dir).ok().as_deref(),
            Some("hgr_file")
        );
        let _ = std::fs::remove_dir_all(&dir);
        let msg = CliError::NoKey {
            path: Path::new("./.hangar").join("admin.key"),
        }
        .to_string();
        assert_eq!(
            msg,
            "no API key: pass --key, set HANGAR_KEY, or run the server so ./.hangar/admin.key exists"
        );
    }
}
