//! The HTTP side of remote providers: an MCP client transport (rmcp's
//! Streamable HTTP client on reqwest) to a provider's endpoint, with the
//! provider's own headers and nothing of the caller's.
//!
//! Invariant: every address connected to is checked against
//! [`hangar_core::net::forbidden_ip`] (link-local and cloud-metadata
//! ranges) unless the spec allows it: IP literals when the transport is
//! built, host names in the resolver, for every new connection (so a name
//! that later resolves elsewhere is caught too). No proxy from the
//! environment and no redirects are followed, so nothing routes around it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::ExponentialBackoff;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use crate::error::UpstreamError;

/// The transport type of a remote provider.
pub type RemoteTransport = StreamableHttpClientTransport<reqwest::Client>;

/// How to reach one remote provider.
#[derive(Debug, Clone)]
pub struct RemoteOptions<'a> {
    /// The provider's id (for errors).
    pub provider: &'a str,
    /// `http(s)://host[:port]/path`.
    pub endpoint: &'a str,
    /// Headers sent with every request, values already resolved (secrets).
    pub headers: &'a BTreeMap<String, String>,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// Whether link-local and metadata addresses may be connected to.
    pub allow_link_local: bool,
}

/// Refuses host names that resolve to forbidden addresses.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some((addr, why)) = addrs
                .iter()
                .find_map(|a| hangar_core::net::forbidden_ip(a.ip()).map(|why| (a, why)))
            {
                return Err(format!(
                    "{host} resolves to {}, {why}; set allow_link_local: true to allow it on purpose",
                    addr.ip()
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Builds the client transport for a remote provider. Fails (naming why)
/// on an invalid endpoint or header, or a forbidden IP literal.
pub fn transport(opts: &RemoteOptions<'_>) -> Result<RemoteTransport, UpstreamError> {
    let fail = |message: String| UpstreamError::Handshake {
        provider: opts.provider.to_owned(),
        message,
    };
    let url = reqwest::Url::parse(opts.endpoint)
        .map_err(|e| fail(format!("endpoint {}: {e}", opts.endpoint)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail(format!(
            "endpoint {}: only http and https are supported",
            opts.endpoint
        )));
    }
    // The URL parser normalizes every spelling of an address (decimal,
    // hex, IPv4-mapped) to the literal checked here; literals never reach
    // the resolver.
    let literal = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
        _ => None,
    };
    if !opts.allow_link_local
        && let Some(ip) = literal
        && let Some(why) = hangar_core::net::forbidden_ip(ip)
    {
        return Err(fail(format!(
            "endpoint {} points at {ip}, {why}; set allow_link_local: true to allow it on purpose",
            opts.endpoint
        )));
    }
    let mut headers = HashMap::new();
    for (name, value) in opts.headers {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| fail(format!("header {name}: {e}")))?;
        if hangar_core::spec::RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(fail(format!("header {name} is set by Hangar itself")));
        }
        // The value may be a secret: never shown, never logged.
        let mut value = http::HeaderValue::from_str(value)
            .map_err(|_| fail(format!("header {name}: invalid value")))?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    let mut client = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if !opts.allow_link_local {
        client = client.dns_resolver(Arc::new(GuardedResolver));
    }
    let client = client
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    let mut retry = ExponentialBackoff::default();
    retry.max_times = Some(3);
    retry.max_delay = Some(Duration::from_secs(5));
    let mut config = StreamableHttpClientTransportConfig::with_uri(opts.endpoint.to_owned())
        .custom_headers(headers)
        // A 2025-era session the remote forgot (404) is re-initialized once,
        // transparently, and the request retried.
        .reinit_on_expired_session(true);
    config.retry_config = Arc::new(retry);
    Ok(StreamableHttpClientTransport::with_client(client, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts<'a>(endpoint: &'a str, headers: &'a BTreeMap<String, String>) -> RemoteOptions<'a> {
        RemoteOptions {
            provider: "r",
            endpoint,
            headers,
            connect_timeout: Duration::from_secs(1),
            allow_link_local: false,
        }
    }

    #[tokio::test]
    async fn forbidden_literals_in_every_spelling_are_refused() {
        let none = BTreeMap::new();
        for endpoint in [
            "http://169.254.169.254/latest",
            "http://2852039166/latest",
            "http://0xA9.0xFE.0xA9.0xFE/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fe80::1]/mcp",
        ] {
            let err = transport(&opts(endpoint, &none))
                .err()
                .map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains("allow_link_local")),
                "{endpoint}: {err:?}"
            );
        }
        assert!(transport(&opts("http://127.0.0.1:1/mcp", &none)).is_ok());
        let mut allowed = opts("http://169.254.169.254/", &none);
        allowed.allow_link_local = true;
        assert!(transport(&allowed).is_ok());
        assert!(transport(&opts("ftp://example.com/", &none)).is_err());
    }

    #[tokio::test]
    async fn reserved_and_invalid_headers_are_refused() {
        for (name, value) in [
            ("Mcp-Session-Id", "x"),
            ("accept", "x"),
            ("bad header", "x"),
            ("x-ok", "line\nbreak"),
        ] {
            let headers = BTreeMap::from([(name.to_owned(), value.to_owned())]);
            assert!(
                transport(&opts("http://127.0.0.1:1/mcp", &headers)).is_err(),
                "{name}"
            );
        }
        let headers = BTreeMap::from([("Authorization".to_owned(), "Bearer x".to_owned())]);
        assert!(transport(&opts("http://127.0.0.1:1/mcp", &headers)).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_link_local_are_refused() {
        use reqwest::dns::Resolve;
        // A literal resolves to itself through lookup_host.
        let name: reqwest::dns::Name = "169.254.169.254".parse().expect("a name");
        let err = GuardedResolver
            .resolve(name)
            .await
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("link-local")));
        let name: reqwest::dns::Name = "localhost".parse().expect("a name");
        assert!(GuardedResolver.resolve(name).await.is_ok());
    }
}
