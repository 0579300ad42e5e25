//! Questions: an elicitation from a provider that the calling
//! client cannot answer waits here until an operator replies over REST (or it
//! expires, which the provider sees as `cancel`).
//!
//! A question shows the elicitation's message and requested schema, and the
//! same as multiple-choice prompts (one per schema field, in schema order):
//! the reply's `answers` has one inner list per field, mapped onto the field's
//! type. Events on stream `approvals`: `QuestionAsked`, `QuestionAnswered`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use hangar_mcp::rmcp::ErrorData;
use hangar_mcp::rmcp::model::{
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
};
use hangar_mcp::{ElicitationAsk, Questioner};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::approvals::{APPROVALS_STREAM, AnsweredIds, new_id, rfc3339_after};
use crate::events::EventBus;
use crate::policies::GateError;

/// One choice of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuestionOption {
    /// What to send back.
    pub label: String,
    /// Shown with it.
    pub description: String,
}

/// One prompt of a question: one field of the requested schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuestionItem {
    /// The field's description (or title, or name).
    pub question: String,
    /// The field name.
    pub header: String,
    /// Choices, when the field is an enum or a boolean (empty: free text).
    pub options: Vec<QuestionOption>,
    /// Several choices may be picked (an array field).
    #[serde(rename = "multiSelect")]
    pub multi_select: bool,
    /// Whether the field must be answered.
    pub required: bool,
}

/// A pending question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Question {
    /// `q_<hex>`.
    pub id: String,
    /// The provider that asks.
    pub provider: String,
    /// The provider's own tool name of the call it belongs to, when known.
    pub tool: Option<String>,
    /// The caller of that tool, when known.
    pub principal: Option<String>,
    /// The elicitation's message.
    pub message: String,
    /// The elicitation's requested schema (JSON Schema), or a URL elicitation's `{"url"}`.
    pub requested_schema: Value,
    /// The schema's fields as prompts, in order.
    pub questions: Vec<QuestionItem>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; the provider gets `cancel` when nobody answered by then.
    pub expires_at: String,
}

/// A reply to a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuestionReply {
    /// Accept with one inner list per field, in order.
    Answers(Vec<Vec<String>>),
    /// Decline.
    Decline,
    /// Cancel.
    Cancel,
}

struct Field {
    name: String,
    schema: Value,
    required: bool,
}

struct Pending {
    question: Question,
    fields: Vec<Field>,
    tx: oneshot::Sender<ElicitResult>,
}

#[derive(Default)]
struct State {
    pending: BTreeMap<String, Pending>,
    answered: AnsweredIds,
}

struct Inner {
    state: Mutex<State>,
    timeout: Duration,
    events: EventBus,
}

/// The pending questions; cheap to clone.
#[derive(Clone)]
pub struct Questions {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Questions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Questions").finish_non_exhaustive()
    }
}

fn fields_of(schema: &ElicitationSchema) -> Vec<Field> {
    let required = schema.required.clone().unwrap_or_default();
    let order: Vec<String> = schema
        .property_order
        .clone()
        .unwrap_or_else(|| schema.properties.keys().cloned().collect());
    order
        .into_iter()
        .filter_map(|name| {
            let def = schema.properties.get(&name)?;
            Some(Field {
                required: required.contains(&name),
                schema: serde_json::to_value(def).unwrap_or_default(),
                name,
            })
        })
        .collect()
}

/// The allowed values of a field (or of an array field's items).
fn choices(schema: &Value) -> Vec<QuestionOption> {
    let from_enum = |s: &Value| -> Option<Vec<QuestionOption>> {
        let values = s.get("enum")?.as_array()?;
        let names = s.get("enumNames").and_then(Value::as_array);
        Some(
            values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let label = v.as_str()?.to_owned();
                    let description = names
                        .and_then(|n| n.get(i))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    Some(QuestionOption { label, description })
                })
                .collect(),
        )
    };
    let from_one_of = |s: &Value| -> Option<Vec<QuestionOption>> {
        let list = s.get("oneOf").or_else(|| s.get("anyOf"))?.as_array()?;
        Some(
            list.iter()
                .filter_map(|o| {
                    Some(QuestionOption {
                        label: o.get("const")?.as_str()?.to_owned(),
                        description: o
                            .get("title")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    })
                })
                .collect(),
        )
    };
    let target = schema.get("items").unwrap_or(schema);
    if let Some(c) = from_enum(target).or_else(|| from_one_of(target)) {
        return c;
    }
    if schema.get("type").and_then(Value::as_str) == Some("boolean") {
        return ["true", "false"]
            .iter()
            .map(|l| QuestionOption {
                label: (*l).to_owned(),
                description: String::new(),
            })
            .collect();
    }
    Vec::new()
}

fn item_of(field: &Field) -> QuestionItem {
    let text = |k: &str| {
        field
            .schema
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    QuestionItem {
        question: text("description")
            .or_else(|| text("title"))
            .unwrap_or_else(|| field.name.clone()),
        header: field.name.clone(),
        options: choices(&field.schema),
        multi_select: field.schema.get("type").and_then(Value::as_str) == Some("array"),
        required: field.required,
    }
}

/// Maps answers (one inner list per field, in order) onto the fields' types.
fn content_of(fields: &[Field], answers: &[Vec<String>]) -> Result<Value, GateError> {
    if answers.len() > fields.len() {
        return Err(GateError::InvalidAnswer(format!(
            "{} answers for {} fields",
            answers.len(),
            fields.len()
        )));
    }
    let mut content = Map::new();
    for (i, field) in fields.iter().enumerate() {
        let answer = answers.get(i).map(Vec::as_slice).unwrap_or_default();
        let bad = |why: String| GateError::InvalidAnswer(format!("{}: {why}", field.name));
        if answer.is_empty() {
            if field.required {
                return Err(bad("required".into()));
            }
            continue;
        }
        let kind = field
            .schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string");
        let allowed: Vec<String> = choices(&field.schema)
            .into_iter()
            .map(|o| o.label)
            .collect();
        let check = |v: &String| -> Result<(), GateError> {
            if kind != "boolean" && !allowed.is_empty() && !allowed.contains(v) {
                return Err(bad(format!("`{v}` is not one of {allowed:?}")));
            }
            Ok(())
        };
        let value = if kind == "array" {
            answer.iter().try_for_each(check)?;
            Value::Array(answer.iter().cloned().map(Value::String).collect())
        } else {
            let [one] = answer else {
                return Err(bad(format!("expects one answer, got {}", answer.len())));
            };
            check(one)?;
            match kind {
                "integer" => one
                    .trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| bad(format!("`{one}` is not an integer")))?,
                "number" => one
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| bad(format!("`{one}` is not a number")))?,
                "boolean" => match one.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" => Value::Bool(true),
                    "false" | "no" => Value::Bool(false),
                    _ => return Err(bad(format!("`{one}` is not true or false"))),
                },
                _ => Value::String(one.clone()),
            }
        };
        content.insert(field.name.clone(), value);
    }
    Ok(Value::Object(content))
}

impl Questions {
    /// Questions wait at most `timeout`; events go to `events`.
    pub fn new(timeout: Duration, events: EventBus) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                timeout,
                events,
            }),
        }
    }

    /// The pending questions, oldest first.
    pub fn list(&self) -> Vec<Question> {
        let mut list: Vec<Question> = crate::lock(&self.inner.state)
            .pending
            .values()
            .map(|p| p.question.clone())
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        list
    }

    /// Answers a pending question; the provider's elicitation completes.
    pub fn reply(&self, id: &str, reply: QuestionReply) -> Result<Question, GateError> {
        let mut state = crate::lock(&self.inner.state);
        let Some(pending) = state.pending.get(id) else {
            return Err(state.answered.not_pending("question", id));
        };
        let result = match &reply {
            QuestionReply::Answers(answers) => {
                let mut r = ElicitResult::new(ElicitationAction::Accept);
                if pending.question.requested_schema.get("url").is_none() {
                    r.content = Some(content_of(&pending.fields, answers)?);
                }
                r
            }
            QuestionReply::Decline => ElicitResult::new(ElicitationAction::Decline),
            QuestionReply::Cancel => ElicitResult::new(ElicitationAction::Cancel),
        };
        let Some(pending) = state.pending.remove(id) else {
            return Err(GateError::NotFound {
                what: "question",
                id: id.to_owned(),
            });
        };
        state.answered.remember(id);
        drop(state);
        let action = match reply {
            QuestionReply::Answers(_) => "accept",
            QuestionReply::Decline => "decline",
            QuestionReply::Cancel => "cancel",
        };
        self.emit_answered(&pending.question, action);
        let _ = pending.tx.send(result);
        Ok(pending.question)
    }

    fn emit_answered(&self, q: &Question, action: &str) {
        self.inner.events.emit(
            APPROVALS_STREAM.to_owned(),
            "QuestionAnswered",
            serde_json::json!({
                "id": q.id,
                "provider": q.provider,
                "tool": q.tool,
                "principal": q.principal,
                "action": action,
            }),
        );
    }

    /// Registers a question now and returns what the provider's request awaits.
    pub fn wait(&self, ask: ElicitationAsk) -> BoxFuture<'static, ElicitResult> {
        let (message, requested_schema, fields) = match &ask.params {
            ElicitRequestParams::FormElicitationParams {
                message,
                requested_schema,
                ..
            } => (
                message.clone(),
                serde_json::to_value(requested_schema).unwrap_or_default(),
                fields_of(requested_schema),
            ),
            ElicitRequestParams::UrlElicitationParams { message, url, .. } => (
                message.clone(),
                serde_json::json!({ "url": url }),
                Vec::new(),
            ),
            other => (
                String::new(),
                serde_json::to_value(other).unwrap_or_default(),
                Vec::new(),
            ),
        };
        let id = new_id("q");
        let question = Question {
            id: id.clone(),
            provider: ask.provider,
            tool: ask.tool,
            principal: ask.principal,
            message,
            requested_schema,
            questions: fields.iter().map(item_of).collect(),
            created_at: crate::now_rfc3339(),
            expires_at: rfc3339_after(self.inner.timeout),
        };
        self.inner.events.emit(
            APPROVALS_STREAM.to_owned(),
            "QuestionAsked",
            serde_json::json!({
                "id": question.id,
                "provider": question.provider,
                "tool": question.tool,
                "principal": question.principal,
            }),
        );
        let (tx, rx) = oneshot::channel();
        crate::lock(&self.inner.state).pending.insert(
            id.clone(),
            Pending {
                question,
                fields,
                tx,
            },
        );
        let guard = Unask {
            questions: self.clone(),
            id,
        };
        let timeout = self.inner.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => result,
                _ => {
                    guard.finish("expired");
                    ElicitResult::new(ElicitationAction::Cancel)
                }
            }
        })
    }
}

/// Removes a question nobody waits for any more.
struct Unask {
    questions: Questions,
    id: String,
}

impl Unask {
    fn finish(&self, action: &str) {
        let removed = crate::lock(&self.questions.inner.state)
            .pending
            .remove(&self.id);
        if let Some(p) = removed {
            self.questions.emit_answered(&p.question, action);
        }
    }
}

impl Drop for Unask {
    fn drop(&mut self) {
        self.finish("withdrawn");
    }
}

impl Questioner for Questions {
    fn ask(&self, ask: ElicitationAsk) -> BoxFuture<'static, Result<ElicitResult, ErrorData>> {
        let wait = self.wait(ask);
        Box::pin(async move { Ok(wait.await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask() -> ElicitationAsk {
        let schema = ElicitationSchema::builder()
            .required_string_property("username", |s| s.description("Your username"))
            .optional_bool("subscribe", false)
            .build()
            .unwrap_or_else(|_| panic!("schema"));
        ElicitationAsk {
            provider: "fx".into(),
            tool: Some("test_elicitation".into()),
            principal: Some("alice".into()),
            params: ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: "Who are you?".into(),
                requested_schema: schema,
            },
        }
    }

    #[tokio::test]
    async fn answers_map_onto_the_schema_in_order() {
        let q = Questions::new(Duration::from_secs(60), EventBus::in_memory());
        let wait = q.wait(ask());
        let list = q.list();
        assert_eq!(list.len(), 1);
        let question = &list[0];
        // Built from a map: fields in name order (from the wire: wire order).
        assert_eq!(question.questions[1].header, "username");
        assert_eq!(question.questions[1].question, "Your username");
        assert_eq!(question.questions[0].options.len(), 2);
        let err = q.reply(&question.id, QuestionReply::Answers(vec![]));
        assert!(matches!(err, Err(GateError::InvalidAnswer(_))), "{err:?}");
        q.reply(
            &question.id,
            QuestionReply::Answers(vec![vec!["yes".into()], vec!["bob".into()]]),
        )
        .unwrap();
        let r = wait.await;
        assert_eq!(r.action, ElicitationAction::Accept);
        assert_eq!(
            r.content,
            Some(serde_json::json!({"username": "bob", "subscribe": true}))
        );
        assert!(matches!(
            q.reply(&question.id, QuestionReply::Decline),
            Err(GateError::AlreadyAnswered { .. })
        ));
    }

    #[tokio::test]
    async fn decline_and_withdraw() {
        let q = Questions::new(Duration::from_secs(60), EventBus::in_memory());
        let wait = q.wait(ask());
        let id = q.list()[0].id.clone();
        q.reply(&id, QuestionReply::Decline).unwrap();
        assert_eq!(wait.await.action, ElicitationAction::Decline);
        let wait = q.wait(ask());
        drop(wait);
        assert!(q.list().is_empty());
    }
}
