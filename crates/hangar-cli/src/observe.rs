//! Watching a running server: `hangar events` (the SSE stream),
//! `hangar providers logs -f` (the log WebSocket), `hangar status`,
//! `hangar metrics`, `hangar alerts`.

use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::args::Cli;
use crate::client::Client;
use crate::commands::connect;
use crate::error::CliError;
use crate::output::{cell, print, print_json, render_table};
use crate::sse::SseParser;

/// `hangar events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events about this provider.
    #[arg(long)]
    pub provider_id: Option<String>,
    /// Only events of this type (repeatable), e.g. ProviderStateChanged.
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// Start after this event position (what a stopped `hangar events` printed last):
    /// stored events after it come first, then live ones.
    #[arg(long)]
    pub since: Option<u64>,
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

/// `hangar status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Redraw every INTERVAL seconds until interrupted.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<u64>,
}

/// `hangar alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Only this level: critical, warning or info.
    #[arg(long)]
    pub level: Option<String>,
    /// At most this many (1-1000).
    #[arg(long)]
    pub limit: Option<u32>,
}

/// One event as a line for people: time, type, stream, then the payload's
/// scalar fields as `key=value`.
pub fn event_line(event: &Value) -> String {
    let field = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("-");
    let mut details = Vec::new();
    if let Some(Value::Object(payload)) = event.get("payload") {
        for (k, v) in payload {
            match v {
                Value::Null | Value::Object(_) | Value::Array(_) => {}
                v => details.push(format!("{k}={}", cell(Some(v)))),
            }
        }
    }
    let mut details = details.join(" ");
    if details.chars().count() > 160 {
        details = details.chars().take(159).collect::<String>() + "…";
    }
    let position = event.get("position").and_then(Value::as_u64).unwrap_or(0);
    format!(
        "{position:>6}  {}  {:<28}  {:<22}  {details}",
        field("time"),
        field("event_type"),
        field("stream_id"),
    )
    .trim_end()
    .replace(['\n', '\r'], " ")
}

/// `text` and a newline on stdout, flushed at once (a follower shows each
/// line as it comes).
fn emit_line(text: &str) -> Result<(), CliError> {
    crate::output::print(&format!("{text}\n"))?;
    Ok(())
}

/// Follows `/api/events`, reconnecting (with `Last-Event-ID`) when the
/// connection drops; stops after `--count` events, on an API error, or when
/// interrupted.
pub(crate) async fn events(cli: &Cli, args: &EventsArgs, table: bool) -> Result<(), CliError> {
    let client = connect(cli)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(p) = &args.provider_id {
        query.push(("provider_id", p.clone()));
    }
    if !args.event_types.is_empty() {
        query.push(("event_type", args.event_types.join(",")));
    }
    let mut last = args.since.map(|p| p.to_string());
    let mut seen = 0u64;
    let mut backoff = FIRST_RETRY;
    loop {
        let before = seen;
        let outcome = follow_once(&client, &query, &mut last, &mut seen, args.count, table).await;
        // A connection that delivered events was a working one: the waits
        // start over.
        if seen > before {
            backoff = FIRST_RETRY;
        }
        match outcome {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            // Refused (bad key, permission, bad filter): retrying won't help.
            Err(e @ CliError::Api { .. }) => return Err(e),
            Err(e) => eprintln!("{e}; reconnecting in {} ms", backoff.as_millis()),
        }
        tokio::time::sleep(backoff).await;
        backoff = next_backoff(backoff);
    }
}

/// The first wait before reconnecting (and the wait after a connection that
/// delivered events).
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The wait after `last` when the connection failed again: doubled, up to 10 s.
fn next_backoff(last: Duration) -> Duration {
    (last * 2).min(Duration::from_secs(10))
}

/// One connection. `Ok(true)`: done (`--count` reached); `Ok(false)`: the
/// stream ended, reconnect.
async fn follow_once(
    client: &Client,
    query: &[(&str, String)],
    last: &mut Option<String>,
    seen: &mut u64,
    count: Option<u64>,
    table: bool,
) -> Result<bool, CliError> {
    if count.is_some_and(|c| *seen >= c) {
        return Ok(true);
    }
    let mut response = client
        .open_stream(&["events"], query, last.as_deref())
        .await?;
    let mut parser = SseParser::default();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| client.transport_error(&e))?
    {
        for event in parser.push(&chunk) {
            if event.event == "lagged" {
                eprintln!(
                    "warning: events were skipped (the stream lagged): {}",
                    event.data
                );
                continue;
            }
            if event.data.is_empty() {
                continue;
            }
            if let Some(id) = event.id {
                *last = Some(id);
            }
            if table {
                let value: Value = serde_json::from_str(&event.data)
                    .map_err(|e| CliError::Protocol(format!("an event that is not JSON ({e})")))?;
                emit_line(&event_line(&value))?;
            } else {
                emit_line(&event.data)?;
            }
            *seen += 1;
            if count.is_some_and(|c| *seen >= c) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// `hangar providers logs ID --follow`: the recent lines, then each new one
/// (over `/api/ws/providers/{id}/logs`), until the provider is removed or
/// the command is interrupted.
pub(crate) async fn follow_logs(
    cli: &Cli,
    id: &str,
    lines: Option<u32>,
    table: bool,
) -> Result<(), CliError> {
    let client = connect(cli)?;
    let query: Vec<(&str, String)> = lines.iter().map(|n| ("lines", n.to_string())).collect();
    let url = client.ws_url(&["ws", "providers", id, "logs"], &query);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| CliError::Usage(format!("bad URL {url}: {e}")))?;
    let bearer = format!("Bearer {}", client.key())
        .parse()
        .map_err(|_| CliError::Usage("the API key is not a valid header value".into()))?;
    request
        .headers_mut()
        .insert(reqwest::header::AUTHORIZATION, bearer);
    let (mut socket, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            return Err(crate::client::api_error(status, &body));
        }
        Err(e) => {
            return Err(CliError::Connect {
                url: client.base_display(),
                reason: e.to_string(),
            });
        }
    };
    while let Some(message) = socket.next().await {
        let message = message.map_err(|e| CliError::Connect {
            url: client.base_display(),
            reason: e.to_string(),
        })?;
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Protocol(format!("a log frame that is not JSON ({e})")))?;
        if value.get("type").and_then(Value::as_str) == Some("lagged") {
            eprintln!("warning: log lines were skipped: {value}");
            continue;
        }
        if table {
            emit_line(crate::commands::logs_text(std::slice::from_ref(&value)).trim_end())?;
        } else {
            emit_line(&text)?;
        }
    }
    Ok(())
}

/// `hangar metrics`: the Prometheus text (table mode) or the JSON of
/// `/api/observability/metrics`.
pub(crate) async fn metrics(cli: &Cli, table: bool) -> Result<(), CliError> {
    let client = connect(cli)?;
    if table {
        print(&client.get_text(&["metrics"]).await?)?;
    } else {
        print_json(&client.get(&["observability", "metrics"], &[]).await?)?;
    }
    Ok(())
}

fn alert_rows(alerts: &[Value]) -> Vec<Vec<String>> {
    alerts
        .iter()
        .map(|a| {
            ["time", "level", "kind", "subject", "message", "cause"]
                .iter()
                .map(|f| cell(a.get(*f)))
                .collect()
        })
        .collect()
}

const ALERT_HEADERS: [&str; 6] = ["TIME", "LEVEL", "KIND", "SUBJECT", "MESSAGE", "CAUSE"];

/// `hangar alerts`.
pub(crate) async fn alerts(cli: &Cli, args: &AlertsArgs, table: bool) -> Result<(), CliError> {
    let client = connect(cli)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(l) = &args.level {
        query.push(("level", l.clone()));
    }
    if let Some(n) = args.limit {
        query.push(("limit", n.to_string()));
    }
    let response = client.get(&["observability", "alerts"], &query).await?;
    if !table {
        return Ok(print_json(&response)?);
    }
    let alerts = response
        .get("alerts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    print(&render_table(&ALERT_HEADERS, &alert_rows(alerts)))?;
    Ok(())
}

/// The figures `hangar status` shows.
struct Snapshot {
    summary: Value,
    alerts: Vec<Value>,
    calls_per_s: Option<f64>,
}

async fn snapshot(client: &Client) -> Result<Snapshot, CliError> {
    let metrics = client.get(&["observability", "metrics"], &[]).await?;
    let alerts = client
        .get(&["observability", "alerts"], &[("limit", "5".to_owned())])
        .await?;
    let history = client
        .get(
            &["observability", "metrics", "history"],
            &[("minutes", "1".to_owned())],
        )
        .await?;
    let calls_per_s = history
        .get("samples")
        .and_then(Value::as_array)
        .and_then(|s| s.last())
        .and_then(|s| s.pointer("/values/calls_per_s"))
        .and_then(Value::as_f64);
    Ok(Snapshot {
        summary: metrics.get("summary").cloned().unwrap_or(Value::Null),
        alerts: alerts
            .get("alerts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        calls_per_s,
    })
}

/// `status` for people.
pub fn status_text(summary: &Value, alerts: &[Value], calls_per_s: Option<f64>) -> String {
    let n = |k: &str| summary.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let int = |k: &str| format!("{}", n(k).round() as i64);
    let rate = calls_per_s.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}/s"));
    let mut out = String::new();
    let mut line = |label: &str, text: String| {
        out.push_str(&format!("{label:<11}{text}\n"));
    };
    line(
        "providers",
        format!(
            "{} (ready {}, degraded {}, dead {}, initializing {}, cold {})",
            int("providers_total"),
            int("providers_ready"),
            int("providers_degraded"),
            int("providers_dead"),
            int("providers_initializing"),
            int("providers_cold"),
        ),
    );
    line(
        "groups",
        format!(
            "{} ({} below min_healthy, {} breakers open)",
            int("groups_total"),
            int("groups_below_min_healthy"),
            int("breakers_open"),
        ),
    );
    line(
        "calls",
        format!(
            "{} total, {rate}, {} failed",
            int("tool_calls_total"),
            int("tool_call_errors_total")
        ),
    );
    line("sessions", int("sessions_active"));
    line(
        "waiting",
        format!(
            "{} approvals, {} questions",
            int("approvals_pending"),
            int("questions_pending")
        ),
    );
    line(
        "alerts",
        format!(
            "{} active; auth failures {}, rate limited {}",
            int("alerts_active"),
            int("auth_failures_total"),
            int("rate_limited_total"),
        ),
    );
    let up = n("uptime_seconds").max(0.0) as u64;
    line(
        "uptime",
        format!("{}h{:02}m{:02}s", up / 3600, up / 60 % 60, up % 60),
    );
    if !alerts.is_empty() {
        out.push_str("\nrecent alerts\n");
        out.push_str(&render_table(&ALERT_HEADERS, &alert_rows(alerts)));
    }
    out
}

/// `hangar status`: once, or redrawn every `--watch` seconds (calls per
/// second then come from the difference between two readings).
pub(crate) async fn status(cli: &Cli, args: &StatusArgs, table: bool) -> Result<(), CliError> {
    let client = connect(cli)?;
    let mut previous: Option<(f64, std::time::Instant)> = None;
    loop {
        let mut snap = snapshot(&client).await?;
        let calls = snap
            .summary
            .get("tool_calls_total")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let now = std::time::Instant::now();
        if let Some((before, at)) = previous {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                snap.calls_per_s = Some((calls - before).max(0.0) / secs);
            }
        }
        previous = Some((calls, now));
        if table {
            let text = status_text(&snap.summary, &snap.alerts, snap.calls_per_s);
            if args.watch.is_some() {
                // Clear the screen and home the cursor.
                print(&format!("\x1b[2J\x1b[H{text}"))?;
            } else {
                print(&text)?;
            }
        } else {
            emit_line(
                &json!({
                    "summary": snap.summary,
                    "calls_per_s": snap.calls_per_s,
                    "alerts": snap.alerts,
                })
                .to_string(),
            )?;
        }
        let Some(every) = args.watch else {
            return Ok(());
        };
        tokio::time::sleep(Duration::from_secs(every.max(1))).await;
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn reconnect_waits_double_up_to_ten_seconds() {
        let mut wait = super::FIRST_RETRY;
        wait = super::next_backoff(wait);
        assert_eq!(wait, Duration::from_secs(1));
        for _ in 0..10 {
            wait = super::next_backoff(wait);
        }
        assert_eq!(wait, Duration::from_secs(10));
    }

    use super::*;

    #[test]
    fn an_event_is_one_line() {
        let e = json!({
            "position": 42, "time": "2026-11-27T10:00:00Z", "event_type": "ProviderStateChanged",
            "stream_id": "provider:fx", "version": 3,
            "payload": {"provider_id": "fx", "from": "cold", "to": "initializing", "reason": "a\nb"},
        });
        let line = event_line(&e);
        assert!(line.contains("ProviderStateChanged"));
        assert!(line.contains("from=cold"));
        assert!(line.contains("to=initializing"));
        assert!(!line.contains('\n'));
    }

    #[test]
    fn status_shows_the_headline_numbers() {
        let summary = json!({"providers_total": 3.0, "providers_ready": 2.0, "tool_calls_total": 10.0,
                             "alerts_active": 1.0, "uptime_seconds": 3725.0});
        let alerts = vec![
            json!({"time": "t", "level": "critical", "kind": "restart_loop",
                                  "subject": "provider:fx", "message": "m", "cause": null}),
        ];
        let text = status_text(&summary, &alerts, Some(1.5));
        assert!(text.contains("3 (ready 2,"));
        assert!(text.contains("10 total, 1.5/s"));
        assert!(text.contains("1h02m05s"));
        assert!(text.contains("restart_loop"));
    }
}
