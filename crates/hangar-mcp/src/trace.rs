//! W3C trace context across Hangar (MCP's SEP-414: `traceparent` and
//! `tracestate` in a request's `_meta`).
//!
//! A client's trace context always reaches the provider, so a trace that
//! starts in the client continues in the provider even when Hangar exports
//! nothing. When a [`Tracer`] is installed (the OpenTelemetry export of
//! `hangar-api`'s `otlp` feature), Hangar's own `tools/call` span joins the
//! client's trace as its child, and the provider gets Hangar's span as its
//! parent instead. `baggage` is not passed on: it is free-form data of the
//! client's, and a provider is on the other side of a trust boundary.
//!
//! Values are checked before they are trusted: a malformed `traceparent` is
//! dropped (with its `tracestate`), never forwarded or parsed further.

use std::sync::{Arc, OnceLock};

use rmcp::model::{MetaObject, RequestMetaObject};

/// The longest `tracestate` passed on (W3C: 32 members of at most 256
/// characters; implementations may cut at 512).
const MAX_TRACESTATE: usize = 512;

/// A request's trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `version-traceid-parentid-flags`, checked.
    pub traceparent: String,
    /// Vendor state, passed on as is when short enough.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The trace context of a request's `_meta`, if it holds a well-formed
    /// `traceparent`.
    pub fn from_meta(meta: &MetaObject) -> Option<Self> {
        Self::new(meta.get_traceparent()?, meta.get_tracestate())
    }

    /// A context from the two header values, if `traceparent` is well formed.
    pub fn new(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        valid_traceparent(traceparent).then(|| Self {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate
                .filter(|s| s.len() <= MAX_TRACESTATE && s.is_ascii())
                .map(str::to_owned),
        })
    }

    /// The trace id (32 hex digits).
    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or_default()
    }

    /// `_meta` carrying this context, for a request to a provider.
    pub fn to_meta(&self) -> RequestMetaObject {
        let mut meta = RequestMetaObject::new();
        meta.set_traceparent(self.traceparent.clone());
        if let Some(state) = &self.tracestate {
            meta.set_tracestate(state.clone());
        }
        meta
    }
}

/// `traceparent` as W3C Trace Context level 1 writes it: `00-` + 32 lower
/// hex digits (not all zero) + `-` + 16 (not all zero) + `-` + 2. A later
/// version may append fields after the flags; version `ff` is invalid.
fn valid_traceparent(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| {
        b.get(r).is_some_and(|p| {
            p.iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        })
    };
    let nonzero =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|p| p.iter().any(|c| *c != b'0'));
    let version_ok = match b.get(0..2) {
        Some(b"00") => b.len() == 55,
        Some(b"ff") | None => false,
        Some(_) => b.len() == 55 || (b.len() > 55 && b.get(55) == Some(&b'-')),
    };
    version_ok
        && hex(0..2)
        && b.get(2) == Some(&b'-')
        && hex(3..35)
        && nonzero(3..35)
        && b.get(35) == Some(&b'-')
        && hex(36..52)
        && nonzero(36..52)
        && b.get(52) == Some(&b'-')
        && hex(53..55)
}

/// What joins Hangar's spans to traces: installed once by the program that
/// exports them.
pub trait Tracer: Send + Sync {
    /// Makes `span` a child of the client's context.
    fn adopt(&self, span: &tracing::Span, parent: &TraceContext);
    /// The context to send from inside `span` (its trace, its span id), if
    /// the span is recorded.
    fn context_of(&self, span: &tracing::Span) -> Option<TraceContext>;
}

static TRACER: OnceLock<Arc<dyn Tracer>> = OnceLock::new();

/// Installs the process's [`Tracer`]; the first one stays.
pub fn install(tracer: Arc<dyn Tracer>) {
    let _ = TRACER.set(tracer);
}

/// The context a request made inside `span` passes on: `span`'s own when a
/// tracer records it (joined to `incoming`), else the client's unchanged.
pub fn propagate(span: &tracing::Span, incoming: Option<TraceContext>) -> Option<TraceContext> {
    let Some(tracer) = TRACER.get() else {
        return incoming;
    };
    if span.is_disabled() {
        return incoming;
    }
    if let Some(parent) = &incoming {
        tracer.adopt(span, parent);
    }
    tracer.context_of(span).or(incoming)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn well_formed_traceparents_pass_and_others_are_dropped() {
        assert!(valid_traceparent(TP));
        assert!(valid_traceparent(
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"
        ));
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00-0af7651916cd43dd8448eb211c80319\u{e9}-b7ad6b716920333-01",
        ] {
            assert!(!valid_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn meta_round_trip_keeps_only_the_trace_keys() {
        let mut meta = MetaObject::new();
        meta.set_traceparent(TP);
        meta.set_tracestate("congo=t61rcWkgMzE");
        meta.set_baggage("user=alice");
        let ctx = TraceContext::from_meta(&meta).unwrap();
        assert_eq!(ctx.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        let out = ctx.to_meta();
        assert_eq!(out.get_traceparent(), Some(TP));
        assert_eq!(out.get_tracestate(), Some("congo=t61rcWkgMzE"));
        assert_eq!(out.get_baggage(), None);
        // A tracestate too long to be real is not passed on.
        let long = "a=".to_owned() + &"b".repeat(600);
        assert_eq!(TraceContext::new(TP, Some(&long)).unwrap().tracestate, None);
    }

    #[test]
    fn without_a_tracer_the_clients_context_passes_through() {
        let ctx = TraceContext::new(TP, None);
        assert_eq!(propagate(&tracing::Span::none(), ctx.clone()), ctx);
    }
}
