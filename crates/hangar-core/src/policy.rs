//! Tool policies: who may call which tool, decided per call.
//!
//! A [`ToolPolicy`] gives a principal or a role an [`Effect`] on the tools matching a provider
//! glob and a tool glob. The tool is the provider's own tool name (`write_file`), not the
//! name clients see (`fs__write_file`), which may be shortened or disambiguated. Globs know
//! two wildcards, `*` (any run of characters, also none) and `?` (exactly one character);
//! everything else matches itself, with no escapes.
//!
//! [`evaluate`] looks at every policy whose subject is the caller (its principal id, or one of
//! its roles) and whose globs match the tool. The strongest effect wins: **deny** over
//! **ask** over **allow**, whatever the order or specificity of the policies. When none
//! matches, the caller's default applies: allow for principals holding `tools:call`, deny
//! otherwise ([`Effect::default_for`], [`Grants::default_tool_effect`]). The permission a
//! request itself needs (`tools:call` for MCP `tools/call`) is checked separately, before.
//!
//! ```yaml
//! - { role_id: developer, provider: "*", tool: "delete_*", effect: deny }
//! - { role_id: developer, provider: fs, tool: "write_*", effect: ask }
//! - { principal_id: ci-bot, provider: fs, tool: "*", effect: allow }
//! ```
//!
//! [`Grants::default_tool_effect`]: crate::Grants::default_tool_effect

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::rbac::validate_role_id;

mod glob;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use glob::glob_match;

/// Longest glob or principal id accepted in a policy.
pub const MAX_POLICY_FIELD_LEN: usize = 256;

/// What a policy does to the calls it matches, weakest first (the derived order is strength).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The call goes through.
    Allow,
    /// The call is held as a pending permission request until someone answers it.
    Ask,
    /// The call is refused.
    Deny,
}

impl Effect {
    /// All three effects, weakest first.
    pub const ALL: [Effect; 3] = [Self::Allow, Self::Ask, Self::Deny];

    /// The lower-case name used in config, API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Ask => "ask",
            Self::Deny => "deny",
        }
    }

    /// The effect when no policy matches: allow for a principal holding `tools:call`, deny
    /// otherwise.
    pub fn default_for(holds_tools_call: bool) -> Self {
        if holds_tools_call {
            Self::Allow
        } else {
            Self::Deny
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an effect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown effect `{0}` (expected allow, ask or deny)")]
pub struct ParseEffectError(pub String);

impl FromStr for Effect {
    type Err = ParseEffectError;

    /// Accepts `allow`, `ask` and `deny`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "allow" => Ok(Self::Allow),
            "ask" => Ok(Self::Ask),
            "deny" => Ok(Self::Deny),
            _ => Err(ParseEffectError(s.to_owned())),
        }
    }
}

/// What a policy governs: tool calls (the default), resource reads (its glob matches resource
/// URIs) or prompt gets (its glob matches prompt names). Listings are filtered the same way.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// `tools/call` and `tools/list`; the glob matches the provider's own tool names.
    #[default]
    Tool,
    /// `resources/read` and the resource listings; the glob matches resource URIs (and
    /// template URIs in listings).
    Resource,
    /// `prompts/get` and `prompts/list`; the glob matches the provider's own prompt names.
    Prompt,
}

impl PolicyKind {
    /// `tool`, `resource` or `prompt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Resource => "resource",
            Self::Prompt => "prompt",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyKind {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tool" => Ok(Self::Tool),
            "resource" => Ok(Self::Resource),
            "prompt" => Ok(Self::Prompt),
            other => Err(PolicyError::new(
                "kind",
                format!("unknown kind `{other}` (expected tool, resource or prompt)"),
            )),
        }
    }
}

/// Whom a policy is about. In JSON and YAML: `{"principal_id": "…"}` or `{"role_id": "…"}`
/// (inside a [`ToolPolicy`], the key sits beside the policy's other fields).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Subject {
    /// One principal, by id.
    #[serde(rename = "principal_id")]
    Principal(String),
    /// Every principal holding this role.
    #[serde(rename = "role_id")]
    Role(String),
}

/// Why a wire policy has no subject.
pub(crate) const SUBJECT_REQUIRED: &str = "exactly one of `principal_id` and `role_id` is required";

impl Subject {
    /// The subject of a wire policy's `principal_id` / `role_id` pair; `None`
    /// unless exactly one is set.
    pub(crate) fn from_ids(principal_id: Option<String>, role_id: Option<String>) -> Option<Self> {
        match (principal_id, role_id) {
            (Some(id), None) => Some(Self::Principal(id)),
            (None, Some(id)) => Some(Self::Role(id)),
            (Some(_), Some(_)) | (None, None) => None,
        }
    }

    /// The wire pair `(principal_id, role_id)`.
    pub(crate) fn into_ids(self) -> (Option<String>, Option<String>) {
        match self {
            Self::Principal(id) => (Some(id), None),
            Self::Role(id) => (None, Some(id)),
        }
    }

    /// Whether the subject is this principal or one of these roles.
    pub fn applies_to<S: AsRef<str>>(&self, principal_id: &str, roles: &[S]) -> bool {
        match self {
            Self::Principal(id) => id == principal_id,
            Self::Role(id) => roles.iter().any(|role| role.as_ref() == id),
        }
    }

    /// The principal or role id.
    pub fn id(&self) -> &str {
        match self {
            Self::Principal(id) | Self::Role(id) => id,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Principal(id) => write!(f, "principal `{id}`"),
            Self::Role(id) => write!(f, "role `{id}`"),
        }
    }
}

/// One policy. In JSON and YAML:
/// `{"provider": "fs", "tool": "write_*", "role_id": "developer", "effect": "ask"}`, with
/// exactly one of `principal_id` and `role_id`; `provider` and `tool` default to `*`.
/// `resource: "file:///etc/*"` or `prompt: "admin_*"` instead of `tool` makes it a policy on
/// resource reads or prompt gets ([`PolicyKind`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "PolicyFields", into = "PolicyFields")]
pub struct ToolPolicy {
    /// Glob over provider (or group) ids.
    pub provider_glob: String,
    /// Glob over the provider's own tool names, resource URIs or prompt names (by `kind`).
    pub tool_glob: String,
    /// Whom the policy is about.
    pub subject: Subject,
    /// What it does.
    pub effect: Effect,
    /// What it governs.
    pub kind: PolicyKind,
}

impl ToolPolicy {
    /// A policy for `subject` on the tools matching the globs.
    pub fn new(
        provider_glob: impl Into<String>,
        tool_glob: impl Into<String>,
        subject: Subject,
        effect: Effect,
    ) -> Self {
        Self {
            provider_glob: provider_glob.into(),
            tool_glob: tool_glob.into(),
            subject,
            effect,
            kind: PolicyKind::Tool,
        }
    }

    /// The same policy governing `kind` instead.
    pub fn with_kind(mut self, kind: PolicyKind) -> Self {
        self.kind = kind;
        self
    }

    /// Whether the policy is about this principal or one of its roles.
    pub fn applies_to<S: AsRef<str>>(&self, principal_id: &str, roles: &[S]) -> bool {
        self.subject.applies_to(principal_id, roles)
    }

    /// Whether the globs match this tool of this provider.
    pub fn matches_tool(&self, provider: &str, tool: &str) -> bool {
        glob_match(&self.provider_glob, provider) && glob_match(&self.tool_glob, tool)
    }

    /// Whether the policy applies to this call.
    pub fn matches<S: AsRef<str>>(
        &self,
        principal_id: &str,
        roles: &[S],
        provider: &str,
        tool: &str,
    ) -> bool {
        self.applies_to(principal_id, roles) && self.matches_tool(provider, tool)
    }

    /// Checks the fields: non-empty globs and principal id of at most 256 characters without
    /// control characters, and a valid role id.
    pub fn validate(&self) -> Result<(), PolicyError> {
        check_text("provider", &self.provider_glob)?;
        check_text(self.kind.as_str(), &self.tool_glob)?;
        match &self.subject {
            Subject::Principal(id) => check_text("principal_id", id),
            Subject::Role(id) => {
                validate_role_id(id).map_err(|e| PolicyError::new("role_id", e.to_string()))
            }
        }
    }

    /// How specific the policy is; among matching policies with the winning effect, the most
    /// specific one is reported: a principal's before a role's, then more literal
    /// characters in the tool glob, then in the provider glob.
    fn specificity(&self) -> (bool, usize, usize) {
        (
            matches!(self.subject, Subject::Principal(_)),
            literal_len(&self.tool_glob),
            literal_len(&self.provider_glob),
        )
    }
}

fn literal_len(glob: &str) -> usize {
    glob.chars().filter(|c| !matches!(c, '*' | '?')).count()
}

fn check_text(field: &str, value: &str) -> Result<(), PolicyError> {
    if value.is_empty() {
        return Err(PolicyError::new(field, "must not be empty"));
    }
    if value.chars().count() > MAX_POLICY_FIELD_LEN {
        return Err(PolicyError::new(
            field,
            format!("is longer than {MAX_POLICY_FIELD_LEN} characters"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| c.is_control()) {
        return Err(PolicyError::new(
            field,
            format!("contains the control character {bad:?}"),
        ));
    }
    Ok(())
}

/// A validation error in one tool policy; `field` is `provider`, `tool`, `principal_id`,
/// `role_id` or `subject`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    /// The offending field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl PolicyError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The wire form of [`ToolPolicy`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a tool policy")]
struct PolicyFields {
    #[serde(default = "any")]
    provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role_id: Option<String>,
    effect: Effect,
}

/// The default provider or tool glob of a wire policy: everything.
pub(crate) fn any() -> String {
    "*".to_owned()
}

impl TryFrom<PolicyFields> for ToolPolicy {
    type Error = PolicyError;

    fn try_from(fields: PolicyFields) -> Result<Self, Self::Error> {
        let subject = Subject::from_ids(fields.principal_id, fields.role_id)
            .ok_or_else(|| PolicyError::new("subject", SUBJECT_REQUIRED))?;
        let (kind, glob) = match (fields.tool, fields.resource, fields.prompt) {
            (tool, None, None) => (PolicyKind::Tool, tool.unwrap_or_else(any)),
            (None, Some(uri), None) => (PolicyKind::Resource, uri),
            (None, None, Some(name)) => (PolicyKind::Prompt, name),
            _ => {
                return Err(PolicyError::new(
                    "tool",
                    "at most one of `tool`, `resource` and `prompt` may be given",
                ));
            }
        };
        Ok(Self {
            provider_glob: fields.provider,
            tool_glob: glob,
            subject,
            effect: fields.effect,
            kind,
        })
    }
}

impl From<ToolPolicy> for PolicyFields {
    fn from(policy: ToolPolicy) -> Self {
        let (principal_id, role_id) = policy.subject.into_ids();
        let glob = Some(policy.tool_glob);
        let (tool, resource, prompt) = match policy.kind {
            PolicyKind::Tool => (glob, None, None),
            PolicyKind::Resource => (None, glob, None),
            PolicyKind::Prompt => (None, None, glob),
        };
        Self {
            provider: policy.provider_glob,
            tool,
            resource,
            prompt,
            principal_id,
            role_id,
            effect: policy.effect,
        }
    }
}

/// The outcome of [`evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// What happens to the call.
    pub effect: Effect,
    /// The position (in the evaluated sequence) of the policy that decided; `None` when no
    /// policy matched and the default applied.
    pub matched: Option<usize>,
}

impl Verdict {
    /// Whether no policy matched.
    pub fn is_default(&self) -> bool {
        self.matched.is_none()
    }
}

/// Decides a call of `tool` on `provider` by the principal `principal_id` holding `roles`
/// (tool policies only; see [`evaluate_kind`]).
pub fn evaluate<'a, S: AsRef<str>>(
    policies: impl IntoIterator<Item = &'a ToolPolicy>,
    principal_id: &str,
    roles: &[S],
    provider: &str,
    tool: &str,
    default: Effect,
) -> Verdict {
    evaluate_kind(
        policies,
        PolicyKind::Tool,
        principal_id,
        roles,
        provider,
        tool,
        default,
    )
}

/// Decides access of `kind` to `name` (a tool name, resource URI or prompt name) on
/// `provider` by the principal `principal_id` holding `roles`; only policies of that kind
/// take part.
///
/// The strongest effect among matching policies wins (deny > ask > allow); `default` applies
/// when none matches. The result does not depend on the order of `policies`: among matching
/// policies with the winning effect, the one reported is the most specific (a principal's
/// before a role's, then the one with more literal characters in its tool glob, then in its
/// provider glob), then the least by value; of equal policies, the first.
pub fn evaluate_kind<'a, S: AsRef<str>>(
    policies: impl IntoIterator<Item = &'a ToolPolicy>,
    kind: PolicyKind,
    principal_id: &str,
    roles: &[S],
    provider: &str,
    name: &str,
    default: Effect,
) -> Verdict {
    let mut best: Option<(usize, &ToolPolicy)> = None;
    for (index, policy) in policies.into_iter().enumerate() {
        if policy.kind != kind || !policy.matches(principal_id, roles, provider, name) {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, current)) => decides_over(policy, current),
        };
        if better {
            best = Some((index, policy));
        }
    }
    match best {
        Some((index, policy)) => Verdict {
            effect: policy.effect,
            matched: Some(index),
        },
        None => Verdict {
            effect: default,
            matched: None,
        },
    }
}

/// Whether `candidate` should be reported instead of `current` (both match): a stronger
/// effect, then more specific, then smaller by value. Equal policies keep the first.
fn decides_over(candidate: &ToolPolicy, current: &ToolPolicy) -> bool {
    candidate
        .effect
        .cmp(&current.effect)
        .then_with(|| candidate.specificity().cmp(&current.specificity()))
        .then_with(|| current.cmp(candidate))
        .is_gt()
}
