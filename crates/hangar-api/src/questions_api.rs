//! Questions: `GET /api/questions` (elicitations from providers that the
//! calling client could not answer) and `POST /api/questions/{id}/reply`.

use axum::Json;
use axum::extract::State;
use hangar_runtime::Engine;
use hangar_runtime::questions::{Question, QuestionReply};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};

/// One choice.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionOptionView {
    /// What to send back.
    pub label: String,
    /// Shown with it.
    pub description: String,
}

/// One prompt: one field of the requested schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionItemView {
    /// The field's description (or title, or name).
    pub question: String,
    /// The field name.
    pub header: String,
    /// Choices (empty: free text).
    pub options: Vec<QuestionOptionView>,
    /// Several choices may be given.
    #[serde(rename = "multiSelect")]
    pub multi_select: bool,
    /// Must be answered.
    pub required: bool,
}

/// A pending question.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Question)]
pub struct QuestionView {
    /// Pass this to the reply route.
    pub id: String,
    /// The provider that asks.
    pub provider: String,
    /// The provider's own tool name of the call, when known.
    #[schema(required = true)]
    pub tool: Option<String>,
    /// Who made that call, when known.
    #[schema(required = true)]
    pub principal: Option<String>,
    /// The provider's message.
    pub message: String,
    /// The requested JSON Schema (or `{"url"}` for a URL elicitation).
    #[schema(value_type = Object)]
    pub requested_schema: serde_json::Value,
    /// The schema's fields as prompts, in order: `answers` follows this order.
    pub questions: Vec<QuestionItemView>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; the provider gets `cancel` when nobody replied by then.
    pub expires_at: String,
}

impl From<Question> for QuestionView {
    fn from(q: Question) -> Self {
        Self {
            id: q.id,
            provider: q.provider,
            tool: q.tool,
            principal: q.principal,
            message: q.message,
            requested_schema: q.requested_schema,
            questions: q
                .questions
                .into_iter()
                .map(|i| QuestionItemView {
                    question: i.question,
                    header: i.header,
                    options: i
                        .options
                        .into_iter()
                        .map(|o| QuestionOptionView {
                            label: o.label,
                            description: o.description,
                        })
                        .collect(),
                    multi_select: i.multi_select,
                    required: i.required,
                })
                .collect(),
            created_at: q.created_at,
            expires_at: q.expires_at,
        }
    }
}

/// `GET /api/questions` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionList {
    /// Pending questions, oldest first.
    pub questions: Vec<QuestionView>,
    /// How many.
    pub total: usize,
}

/// Lists the pending questions.
#[utoipa::path(
    get,
    path = "/questions",
    tag = "approvals",
    operation_id = "list_questions",
    responses((status = 200, description = "Pending questions", body = QuestionList)),
    security(("bearer" = ["approvals:read"]))
)]
pub async fn list_questions(State(engine): State<Engine>) -> Json<QuestionList> {
    let questions: Vec<QuestionView> = engine
        .questions()
        .list()
        .into_iter()
        .map(Into::into)
        .collect();
    Json(QuestionList {
        total: questions.len(),
        questions,
    })
}

/// Declining or cancelling instead of answering.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuestionAction {
    /// Accept with `answers` (the default when `answers` is given).
    Accept,
    /// Refuse to answer.
    Decline,
    /// Dismiss.
    Cancel,
}

/// `POST /api/questions/{id}/reply` body: `answers` (one inner list per
/// field of `questions`, in order), or `action` `decline`/`cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionReplyBody {
    /// One inner list per field; several labels for a multi-select field.
    #[serde(default)]
    pub answers: Option<Vec<Vec<String>>>,
    /// `decline` or `cancel` instead of answers.
    #[serde(default)]
    pub action: Option<QuestionAction>,
}

/// `POST /api/questions/{id}/reply` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionReplied {
    /// Always true.
    pub replied: bool,
}

/// Answers a pending question: the provider's elicitation completes.
#[utoipa::path(
    post,
    path = "/questions/{id}/reply",
    tag = "approvals",
    operation_id = "reply_question",
    params(("id" = String, Path, description = "Question id")),
    request_body = QuestionReplyBody,
    responses(
        (status = 200, description = "Replied", body = QuestionReplied),
        (status = 400, description = "Malformed JSON body", body = ErrorBody),
        (status = 404, description = "Unknown or expired question", body = ErrorBody),
        (status = 409, description = "Already answered", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Answers that do not fit the schema", body = ErrorBody),
    ),
    security(("bearer" = ["approvals:write"]))
)]
pub async fn reply_question(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<QuestionReplyBody>,
) -> Result<Json<QuestionReplied>, ApiError> {
    let reply = match (body.action, body.answers) {
        (Some(QuestionAction::Decline), None) => QuestionReply::Decline,
        (Some(QuestionAction::Cancel), None) => QuestionReply::Cancel,
        (None | Some(QuestionAction::Accept), Some(answers)) => QuestionReply::Answers(answers),
        (Some(QuestionAction::Accept), None) => QuestionReply::Answers(Vec::new()),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ValidationError",
                "give `answers`, or `action` decline or cancel",
            ));
        }
    };
    let q = engine.questions().reply(&id, reply)?;
    tracing::info!(id = %q.id, provider = %q.provider, "question answered");
    Ok(Json(QuestionReplied { replied: true }))
}

/// The question routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list_questions))
        .routes(routes!(reply_question))
}
