//! Errors of the MCP layer, tagged with where they came from.

use std::time::Duration;

use hangar_core::ErrorOrigin;
use rmcp::ErrorData;
use rmcp::service::ServiceError;

/// A failure talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The MCP handshake (`server/discover` or `initialize`) failed.
    #[error("provider '{provider}': MCP handshake failed: {message}")]
    Handshake {
        /// The provider's id.
        provider: String,
        /// What went wrong.
        message: String,
    },
    /// The provider answered with a JSON-RPC error; passed through unchanged.
    #[error("provider '{provider}' returned error {}: {}", .error.code.0, .error.message)]
    Rpc {
        /// The provider's id.
        provider: String,
        /// The provider's JSON-RPC error, unchanged.
        error: ErrorData,
    },
    /// The request could not be sent: the provider never saw it, so it may be
    /// retried on another provider.
    #[error("request could not be delivered to provider '{provider}'")]
    NotDelivered {
        /// The provider's id.
        provider: String,
    },
    /// The connection is gone (the process exited or the stream closed).
    #[error("provider '{provider}' closed the connection")]
    Closed {
        /// The provider's id.
        provider: String,
    },
    /// No answer in time.
    #[error("provider '{provider}' did not answer within {after:?}")]
    Timeout {
        /// The provider's id.
        provider: String,
        /// The time allowed.
        after: Duration,
    },
    /// The downstream client cancelled the request.
    #[error("request to provider '{provider}' was cancelled")]
    Cancelled {
        /// The provider's id.
        provider: String,
    },
    /// The provider broke the protocol.
    #[error("provider '{provider}' broke the protocol: {message}")]
    Protocol {
        /// The provider's id.
        provider: String,
        /// What went wrong.
        message: String,
    },
}

impl UpstreamError {
    pub(crate) fn from_service(provider: &str, e: ServiceError) -> Self {
        let provider = provider.to_owned();
        match e {
            ServiceError::McpError(error) => Self::Rpc { provider, error },
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                Self::Closed { provider }
            }
            ServiceError::Timeout { timeout } => Self::Timeout {
                provider,
                after: timeout,
            },
            ServiceError::Cancelled { .. } => Self::Cancelled { provider },
            other => Self::Protocol {
                provider,
                message: other.to_string(),
            },
        }
    }

    /// Where the failure came from.
    pub fn origin(&self) -> ErrorOrigin {
        match self {
            Self::Cancelled { .. } => ErrorOrigin::Downstream,
            _ => ErrorOrigin::Upstream,
        }
    }

    /// True when the provider itself failed (counts against its health); a
    /// JSON-RPC error answer or a cancellation does not.
    pub fn is_provider_failure(&self) -> bool {
        matches!(
            self,
            Self::Handshake { .. }
                | Self::NotDelivered { .. }
                | Self::Closed { .. }
                | Self::Timeout { .. }
                | Self::Protocol { .. }
        )
    }

    /// The JSON-RPC error a downstream client sees. Provider errors pass
    /// through unchanged.
    pub fn to_error_data(&self) -> ErrorData {
        match self {
            Self::Rpc { error, .. } => error.clone(),
            other => ErrorData::internal_error(
                other.to_string(),
                Some(serde_json::json!({ "origin": "upstream" })),
            ),
        }
    }
}

/// `e` and its chain of sources, `: `-separated (the root cause, e.g.
/// "Connection refused", is often only in a source).
pub(crate) fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
