//! Cross-crate error vocabulary.
//!
//! Each module keeps its own error type beside the code that returns it
//! ([`SpecError`](crate::SpecError), [`TransitionError`](crate::TransitionError),
//! [`ConfigError`](crate::ConfigError)); all are re-exported at the crate root. This module
//! holds what the other crates share when they tag their own errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an error came from. Other crates tag their errors with it so the edge can map them to
/// HTTP statuses and JSON-RPC codes, and so circuit breakers count only provider failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorOrigin {
    /// The provider side: an MCP server failed, crashed, timed out or answered with an error.
    /// Only these count towards health checks and circuit breakers.
    Upstream,
    /// The client side: a bad request, missing permission, unknown tool or invalid arguments.
    /// Retrying the same request will fail the same way.
    Downstream,
    /// Hangar itself: a bug, storage failure or exhausted resource inside the gateway.
    Hangar,
}

impl ErrorOrigin {
    /// The lower-case name used in logs and JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
            Self::Hangar => "hangar",
        }
    }
}

impl fmt::Display for ErrorOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorOrigin;

    #[test]
    fn origin_names_are_lowercase() {
        for (origin, name) in [
            (ErrorOrigin::Upstream, "upstream"),
            (ErrorOrigin::Downstream, "downstream"),
            (ErrorOrigin::Hangar, "hangar"),
        ] {
            assert_eq!(origin.to_string(), name);
            assert_eq!(
                serde_json::to_string(&origin).ok(),
                Some(format!("\"{name}\""))
            );
        }
    }
}
