//! OpenTelemetry export (cargo feature `otlp`, on by default).
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. Then the spans Hangar records
//! (`request`, `tools/call` with provider, tool, principal, session and
//! protocol era, and what happens inside them) go to that collector over
//! OTLP/HTTP, protobuf or JSON (`OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf`
//! or `http/json`; gRPC is not built in), batched on a thread of their own
//! with a bounded queue (a collector that is down costs dropped spans, never
//! memory or call latency). The other standard variables apply:
//! `OTEL_SERVICE_NAME` (default `hangar`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`.
//! `HANGAR_OTEL_FILTER` chooses which spans are exported (an `EnvFilter`;
//! default `warn,hangar_api=debug,hangar_mcp=debug`), apart from what
//! `RUST_LOG` prints.
//!
//! A `tools/call` span joins the client's trace (`_meta.traceparent`, else
//! the HTTP `traceparent` header) and the provider gets that span as its
//! parent in `_meta` ([`hangar_mcp::trace`]).

/// Keeps the exporter; [`Telemetry::shutdown`] sends what is still queued.
#[derive(Default)]
#[must_use = "dropping it stops the export; shut it down before exiting"]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still queued (bounded by the exporter's timeout) and
    /// stops the export.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A layer exporting spans, boxed.
pub(crate) type ExportLayer<S> = Box<dyn tracing_subscriber::Layer<S> + Send + Sync>;

/// The export layer and its guard when an endpoint is configured; otherwise
/// (or when the configuration is unusable, with the reason) none.
pub(crate) fn export<S>() -> (Option<(ExportLayer<S>, Telemetry)>, Option<String>)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    #[cfg(feature = "otlp")]
    {
        otlp::export()
    }
    #[cfg(not(feature = "otlp"))]
    {
        let configured = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
        let problem =
            configured.then(|| "this build has no OTLP export (cargo feature `otlp`)".to_owned());
        (None, problem)
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::collections::HashMap;
    use std::sync::Arc;

    use hangar_mcp::trace::{TraceContext, Tracer};
    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::Layer as _;

    use super::{ExportLayer, Telemetry};

    const DEFAULT_FILTER: &str = "warn,hangar_api=debug,hangar_mcp=debug";

    pub(super) fn export<S>() -> (Option<(ExportLayer<S>, Telemetry)>, Option<String>)
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        let configured = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        if !configured {
            return (None, None);
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(e) => e,
            Err(e) => return (None, Some(format!("the OTLP exporter: {e}"))),
        };
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("hangar");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("hangar");
        let spec = std::env::var("HANGAR_OTEL_FILTER").unwrap_or_else(|_| DEFAULT_FILTER.into());
        let filter = tracing_subscriber::EnvFilter::try_new(&spec)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(filter)
            .boxed();
        hangar_mcp::trace::install(Arc::new(W3c));
        (
            Some((
                layer,
                Telemetry {
                    provider: Some(provider),
                },
            )),
            None,
        )
    }

    /// Joins spans to W3C trace contexts through the OpenTelemetry layer.
    struct W3c;

    impl Tracer for W3c {
        fn adopt(&self, span: &tracing::Span, parent: &TraceContext) {
            let mut carrier = HashMap::with_capacity(2);
            carrier.insert("traceparent".to_owned(), parent.traceparent.clone());
            if let Some(state) = &parent.tracestate {
                carrier.insert("tracestate".to_owned(), state.clone());
            }
            let cx = TraceContextPropagator::new().extract(&carrier);
            if let Err(e) = span.set_parent(cx) {
                tracing::debug!(error = %e, "span not joined to the client's trace");
            }
        }

        fn context_of(&self, span: &tracing::Span) -> Option<TraceContext> {
            let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
            TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
            TraceContext::new(
                carrier.get("traceparent")?,
                carrier.get("tracestate").map(String::as_str),
            )
        }
    }
}
