//! All fixture tools: the MCP conformance set plus Hangar's own test tools.

// Logging is deprecated by SEP-2577 but the conformance surface requires it.
#![allow(deprecated)]

use std::time::Duration;

use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, LoggingLevel, ProgressNotificationParam,
    ProgressToken, ResourceContents,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;

use crate::interactive::{self, Retry};
use crate::media::{PNG_1X1_BASE64, PNG_MIME, WAV_MIME, WAV_SILENCE_BASE64};
use crate::server::FixtureServer;

pub const SIMPLE_TEXT: &str = "This is a simple text response for testing.";
pub const ERROR_TEXT: &str = "This tool intentionally returns an error for testing";
const EMBEDDED_URI: &str = "test://embedded-resource";
const EMBEDDED_TEXT: &str = "This is an embedded resource content.";
/// Interval between `sleep` progress notifications.
const SLEEP_TICK: Duration = Duration::from_millis(100);
/// Pause between the steps of the logging/progress conformance tools.
const STEP_DELAY: Duration = Duration::from_millis(50);

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PromptArgs {
    /// The prompt to send to the client's LLM
    pub prompt: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MessageArgs {
    /// The message to show the user
    pub message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// Text returned verbatim
    pub text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddArgs {
    /// First addend
    pub a: f64,
    /// Second addend
    pub b: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// How long to sleep, in milliseconds
    pub ms: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EnvArgs {
    /// Name of the environment variable to read
    pub name: String,
}

fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn error_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

fn embedded_resource() -> ContentBlock {
    ContentBlock::resource(ResourceContents::text(EMBEDDED_TEXT, EMBEDDED_URI))
}

async fn notify_progress(
    context: &RequestContext<RoleServer>,
    token: &ProgressToken,
    progress: f64,
    total: f64,
) {
    let param = ProgressNotificationParam::new(token.clone(), progress).with_total(total);
    if let Err(error) = context.peer.notify_progress(param).await {
        tracing::warn!(%error, "failed to send progress notification");
    }
}

/// Render a sum without a trailing `.0` for integral values.
fn format_number(value: f64) -> String {
    // `Display` for f64 already prints `5` rather than `5.0`.
    value.to_string()
}

/// JSON number for `value`, as an integer when it is integral and exact.
fn json_number(value: f64) -> serde_json::Value {
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() <= MAX_EXACT {
        // Exact: integral and within the f64 integer range.
        #[allow(clippy::cast_possible_truncation)]
        return serde_json::Value::from(value as i64);
    }
    serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[tool_router(vis = "pub(crate)")]
impl FixtureServer {
    #[tool(description = "Returns a simple text response")]
    async fn test_simple_text(&self) -> CallToolResult {
        text_result(SIMPLE_TEXT)
    }

    #[tool(description = "Returns a small PNG image")]
    async fn test_image_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::image(PNG_1X1_BASE64, PNG_MIME)])
    }

    #[tool(description = "Returns a small WAV audio clip")]
    async fn test_audio_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::audio(WAV_SILENCE_BASE64, WAV_MIME)])
    }

    #[tool(description = "Returns an embedded text resource")]
    async fn test_embedded_resource(&self) -> CallToolResult {
        CallToolResult::success(vec![embedded_resource()])
    }

    #[tool(description = "Returns text, image and embedded resource content together")]
    async fn test_multiple_content_types(&self) -> CallToolResult {
        CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG_1X1_BASE64, PNG_MIME),
            embedded_resource(),
        ])
    }

    #[tool(description = "Sends three log notifications while running")]
    async fn test_tool_with_logging(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let steps = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ];
        for (i, step) in steps.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(STEP_DELAY).await;
            }
            self.log(
                &context,
                LoggingLevel::Info,
                "test_tool_with_logging",
                serde_json::Value::String(step.to_owned()),
            )
            .await;
        }
        text_result("Tool with logging executed successfully")
    }

    #[tool(description = "Reports progress 0, 50 and 100 of 100")]
    async fn test_tool_with_progress(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        if let Some(token) = context.meta.get_progress_token() {
            for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(STEP_DELAY).await;
                }
                notify_progress(&context, &token, progress, 100.0).await;
            }
        }
        text_result("Tool with progress executed successfully")
    }

    #[tool(description = "Always returns a tool error (isError: true)")]
    async fn test_error_handling(&self) -> CallToolResult {
        error_result(ERROR_TEXT)
    }

    #[tool(description = "Asks the client's LLM to complete a prompt (sampling)")]
    async fn test_sampling(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(PromptArgs { prompt }): Parameters<PromptArgs>,
        RequestState(request_state): RequestState,
        InputResponses(input_responses): InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        let retry = Retry {
            request_state,
            input_responses,
        };
        interactive::sampling(&context, prompt, retry).await
    }

    #[tool(description = "Asks the user for a username and email (elicitation)")]
    async fn test_elicitation(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(MessageArgs { message }): Parameters<MessageArgs>,
        RequestState(request_state): RequestState,
        InputResponses(input_responses): InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        let retry = Retry {
            request_state,
            input_responses,
        };
        interactive::elicitation(&context, message, retry).await
    }

    #[tool(description = "Returns the given text unchanged")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> CallToolResult {
        text_result(text)
    }

    #[tool(description = "Adds two numbers")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> CallToolResult {
        let sum = a + b;
        if !sum.is_finite() {
            return error_result("sum is not a finite number");
        }
        let mut result = text_result(format_number(sum));
        result.structured_content = Some(serde_json::json!({ "sum": json_number(sum) }));
        result
    }

    #[tool(
        description = "Sleeps for `ms` milliseconds, reporting progress every 100 ms; cancellable"
    )]
    async fn sleep(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(SleepArgs { ms }): Parameters<SleepArgs>,
    ) -> CallToolResult {
        let token = context.meta.get_progress_token();
        let start = Instant::now();
        // Saturate absurd durations instead of overflowing `Instant`.
        let deadline = start
            .checked_add(Duration::from_millis(ms))
            .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
        let mut ticker = tokio::time::interval_at(start + SLEEP_TICK, SLEEP_TICK);
        let total = ms as f64;
        let mut last_sent = -1.0;
        loop {
            tokio::select! {
                () = context.ct.cancelled() => {
                    let elapsed = start.elapsed().as_millis();
                    tracing::info!(elapsed, "sleep cancelled");
                    return error_result(format!("cancelled after {elapsed} ms"));
                }
                () = tokio::time::sleep_until(deadline) => break,
                _ = ticker.tick() => {
                    if let Some(token) = &token {
                        let elapsed = (start.elapsed().as_millis() as f64).min(total);
                        if elapsed > last_sent {
                            notify_progress(&context, token, elapsed, total).await;
                            last_sent = elapsed;
                        }
                    }
                }
            }
        }
        if let Some(token) = &token
            && total > last_sent
        {
            notify_progress(&context, token, total, total).await;
        }
        text_result(format!("slept {ms} ms"))
    }

    #[tool(description = "Returns the value of an environment variable of the server process")]
    async fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> CallToolResult {
        if name.is_empty() || name.contains(['=', '\0']) {
            return error_result(format!("invalid environment variable name {name:?}"));
        }
        match std::env::var(&name) {
            Ok(value) => text_result(value),
            Err(std::env::VarError::NotPresent) => error_result("not set"),
            Err(std::env::VarError::NotUnicode(_)) => error_result("value is not valid UTF-8"),
        }
    }

    #[tool(
        description = "Returns the W3C trace context of its request's _meta (traceparent, tracestate, baggage) as JSON"
    )]
    async fn trace_context(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let meta = &context.meta;
        text_result(
            serde_json::json!({
                "traceparent": meta.get_traceparent(),
                "tracestate": meta.get_tracestate(),
                "baggage": meta.get_baggage(),
            })
            .to_string(),
        )
    }

    #[tool(description = "Exits the server process immediately with code 3, without replying")]
    async fn crash(&self) -> CallToolResult {
        eprintln!("hangar-fixture: crash tool called, exiting with code 3");
        std::process::exit(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_without_trailing_zero() {
        assert_eq!(format_number(2.0 + 3.0), "5");
        assert_eq!(format_number(-1.5), "-1.5");
        assert_eq!(json_number(5.0), serde_json::json!(5));
        assert_eq!(json_number(0.25), serde_json::json!(0.25));
    }

    #[test]
    fn router_has_all_tools() {
        let names: Vec<String> = FixtureServer::tool_router()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect();
        assert_eq!(names.len(), 16, "{names:?}");
    }
}
