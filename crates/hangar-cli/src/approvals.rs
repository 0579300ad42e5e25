//! `hangar approvals list|approve|reject|watch` (`/api/permissions`: calls
//! held by an `ask` policy) and `hangar questions list|answer`
//! (`/api/questions`: provider elicitations waiting for an operator).

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::args::Cli;
use crate::commands::connect;
use crate::error::CliError;
use crate::output::{print, render_table, rows, show};

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List pending permission requests.
    List,
    /// Approve a held call (`--always`: and allow this principal on this tool from now on).
    Approve {
        /// Permission request id.
        id: String,
        /// Also store an allow policy for the caller on this provider and tool.
        #[arg(long)]
        always: bool,
    },
    /// Reject a held call; the caller gets a tool error with the message.
    Reject {
        /// Permission request id.
        id: String,
        /// Told to the caller.
        #[arg(long, short)]
        message: Option<String>,
    },
    /// Print new permission requests as they come, until Ctrl-C.
    Watch {
        /// Seconds between polls.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuestionsCommand {
    /// List pending questions with their fields.
    List,
    /// Answer a question: one ANSWER per field, in the listed order ("" skips an optional one).
    Answer {
        /// Question id.
        id: String,
        /// One answer per field.
        answers: Vec<String>,
        /// All answers as JSON, one list per field: '[["a","b"],["c"]]' (for multi-select fields).
        #[arg(long, conflicts_with_all = ["answers", "decline", "cancel"])]
        json: Option<String>,
        /// Decline instead of answering.
        #[arg(long, conflicts_with_all = ["answers", "cancel"])]
        decline: bool,
        /// Cancel instead of answering.
        #[arg(long, conflicts_with = "answers")]
        cancel: bool,
    },
}

fn items(response: &Value, key: &str) -> Vec<Value> {
    response
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn permissions_table(list: &[Value]) -> String {
    if list.is_empty() {
        return "no pending permission requests\n".into();
    }
    render_table(
        &["ID", "PRINCIPAL", "PROVIDER", "TOOL", "EXPIRES"],
        &rows(list, &["id", "principal", "provider", "tool", "expires_at"]),
    )
}

/// Run an `approvals` subcommand.
pub(crate) async fn approvals(
    cli: &Cli,
    command: &ApprovalsCommand,
    table: bool,
) -> Result<(), CliError> {
    if let ApprovalsCommand::Watch { interval } = command
        && !(interval.is_finite() && *interval > 0.0)
    {
        return Err(CliError::Usage(
            "--interval must be a positive number of seconds".into(),
        ));
    }
    let client = connect(cli)?;
    let (response, human) = match command {
        ApprovalsCommand::List => {
            let r = client.get(&["permissions"], &[]).await?;
            let human = permissions_table(&items(&r, "permissions"));
            (r, human)
        }
        ApprovalsCommand::Approve { id, always } => {
            let reply = if *always { "always" } else { "once" };
            let r = client
                .post(
                    &["permissions", id, "reply"],
                    Some(&json!({ "reply": reply })),
                )
                .await?;
            (r, format!("{id} approved ({reply})\n"))
        }
        ApprovalsCommand::Reject { id, message } => {
            let mut body = json!({ "reply": "reject" });
            if let Some(m) = message {
                body["message"] = json!(m);
            }
            let r = client
                .post(&["permissions", id, "reply"], Some(&body))
                .await?;
            (r, format!("{id} rejected\n"))
        }
        ApprovalsCommand::Watch { interval } => {
            let mut seen: BTreeSet<String> = BTreeSet::new();
            let bar = crate::output::spinner("waiting for permission requests", table);
            loop {
                let r = client.get(&["permissions"], &[]).await?;
                for p in items(&r, "permissions") {
                    let id = p.get("id").and_then(Value::as_str).unwrap_or_default();
                    if id.is_empty() || !seen.insert(id.to_owned()) {
                        continue;
                    }
                    let line = if table {
                        let field =
                            |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
                        format!(
                            "{id}  {} wants {}/{} (expires {}); hangar approvals approve {id}\n",
                            field("principal"),
                            field("provider"),
                            field("tool"),
                            field("expires_at")
                        )
                    } else {
                        format!("{p}\n")
                    };
                    bar.suspend(|| print(&line))?;
                }
                tokio::time::sleep(Duration::from_secs_f64(*interval)).await;
            }
        }
    };
    show(&response, table, |_| human)?;
    Ok(())
}

fn questions_text(list: &[Value]) -> String {
    if list.is_empty() {
        return "no pending questions\n".into();
    }
    let mut out = render_table(
        &["ID", "PROVIDER", "TOOL", "PRINCIPAL", "MESSAGE"],
        &rows(list, &["id", "provider", "tool", "principal", "message"]),
    );
    for q in list {
        let id = q.get("id").and_then(Value::as_str).unwrap_or_default();
        out.push_str(&format!("\n{id}: answer in this order:\n"));
        for (i, item) in items(q, "questions").iter().enumerate() {
            let header = item.get("header").and_then(Value::as_str).unwrap_or("");
            let question = item.get("question").and_then(Value::as_str).unwrap_or("");
            let required = item.get("required").and_then(Value::as_bool) == Some(true);
            let labels: Vec<String> = items(item, "options")
                .iter()
                .filter_map(|o| o.get("label").and_then(Value::as_str).map(str::to_owned))
                .collect();
            out.push_str(&format!(
                "  {}. {header}{}: {question}{}\n",
                i + 1,
                if required { " (required)" } else { "" },
                if labels.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", labels.join(", "))
                }
            ));
        }
    }
    out
}

/// The `POST /api/questions/{id}/reply` body of `questions answer`.
pub fn answer_body(
    answers: &[String],
    json: Option<&str>,
    decline: bool,
    cancel: bool,
) -> Result<Value, CliError> {
    if decline {
        return Ok(json!({ "action": "decline" }));
    }
    if cancel {
        return Ok(json!({ "action": "cancel" }));
    }
    if let Some(text) = json {
        let parsed: Vec<Vec<String>> = serde_json::from_str(text).map_err(|e| {
            CliError::Usage(format!(
                "--json must be a list of lists of strings, e.g. '[[\"a\"],[\"b\",\"c\"]]': {e}"
            ))
        })?;
        return Ok(json!({ "answers": parsed }));
    }
    let lists: Vec<Vec<String>> = answers
        .iter()
        .map(|a| {
            if a.is_empty() {
                Vec::new()
            } else {
                vec![a.clone()]
            }
        })
        .collect();
    Ok(json!({ "answers": lists }))
}

/// Run a `questions` subcommand.
pub(crate) async fn questions(
    cli: &Cli,
    command: &QuestionsCommand,
    table: bool,
) -> Result<(), CliError> {
    let body = match command {
        QuestionsCommand::Answer {
            answers,
            json,
            decline,
            cancel,
            ..
        } => Some(answer_body(answers, json.as_deref(), *decline, *cancel)?),
        QuestionsCommand::List => None,
    };
    let client = connect(cli)?;
    let (response, human) = match command {
        QuestionsCommand::List => {
            let r = client.get(&["questions"], &[]).await?;
            let human = questions_text(&items(&r, "questions"));
            (r, human)
        }
        QuestionsCommand::Answer { id, .. } => {
            let r = client
                .post(&["questions", id, "reply"], body.as_ref())
                .await?;
            (r, format!("{id} answered\n"))
        }
    };
    show(&response, table, |_| human)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_bodies() {
        let a = vec!["alice".to_owned(), String::new()];
        assert_eq!(
            answer_body(&a, None, false, false).unwrap(),
            json!({"answers": [["alice"], []]})
        );
        assert_eq!(
            answer_body(&[], None, true, false).unwrap(),
            json!({"action": "decline"})
        );
        assert_eq!(
            answer_body(&[], Some(r#"[["a","b"]]"#), false, false).unwrap(),
            json!({"answers": [["a", "b"]]})
        );
        assert!(answer_body(&[], Some("{}"), false, false).is_err());
    }
}
