//! Tool policies at run time: those written in the providers'
//! specs (`policies:`, held in memory) and those set over the API (stored in
//! SQLite before they apply). The call path reads both through `ArcSwap`
//! snapshots, without locks or IO; [`hangar_core::evaluate`] decides (deny >
//! ask > allow), and when nothing matches the call is allowed (the caller
//! already holds `tools:call`). One exception: a stored allow for a principal
//! on exactly one provider and tool (what replying `always` creates) answers
//! that principal's asks there, so it is not asked again; deny still wins.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hangar_core::{Effect, PolicyError, PolicyKind, Subject, ToolPolicy, evaluate_kind};
use serde::Serialize;

use crate::error::StoreError;
use crate::store::Store;

/// Where a policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicySource {
    /// A provider spec's `policies:` (config file or API-created provider).
    Config,
    /// `PUT /api/auth/policies/...` (stored).
    Api,
}

/// A failure of the policy, approval or question services.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The policy is invalid.
    #[error("invalid policy: {0}")]
    InvalidPolicy(#[from] PolicyError),
    /// No pending request or question with this id (or it expired).
    #[error("{what} '{id}' not found (unknown or expired)")]
    NotFound {
        /// `permission request` or `question`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// It was answered already.
    #[error("{what} '{id}' was already answered")]
    AlreadyAnswered {
        /// `permission request` or `question`.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// The answer does not fit what was asked.
    #[error("invalid answer: {0}")]
    InvalidAnswer(String),
    /// The one answering may not give this answer.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The tool policies in force; cheap to share.
pub struct Policies {
    from_specs: ArcSwap<Vec<ToolPolicy>>,
    stored: ArcSwap<Vec<ToolPolicy>>,
    writes: tokio::sync::Mutex<()>,
    store: Option<Store>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies").finish_non_exhaustive()
    }
}

impl Policies {
    /// No policies; API ones persist to `store` (none: memory only).
    pub fn new(store: Option<Store>) -> Self {
        Self {
            from_specs: ArcSwap::from_pointee(Vec::new()),
            stored: ArcSwap::from_pointee(Vec::new()),
            writes: tokio::sync::Mutex::new(()),
            store,
        }
    }

    /// Whether no policy is in force (every verdict is allow).
    pub fn is_empty(&self) -> bool {
        self.from_specs.load().is_empty() && self.stored.load().is_empty()
    }

    /// Replaces the policies that come from provider specs.
    pub fn set_from_specs(&self, policies: Vec<ToolPolicy>) {
        self.from_specs.store(Arc::new(policies));
    }

    /// Loads the stored policies (at start).
    pub async fn load(&self) -> Result<usize, StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let _w = self.writes.lock().await;
        let list = store.tool_policies().await?;
        let n = list.len();
        self.stored.store(Arc::new(list));
        Ok(n)
    }

    /// The effect for `principal` (with `roles`) on `name` (a tool, resource
    /// URI or prompt, by `kind`) of `providers[0]`: deny > ask > allow among
    /// matching policies, allow when none matches. The other `providers` are
    /// a group's members: their policies apply too (the strictest effect
    /// wins), so a group never lifts what a member's policy says.
    pub fn verdict(
        &self,
        kind: PolicyKind,
        principal: Option<&str>,
        roles: &[String],
        providers: &[&str],
        name: &str,
    ) -> Effect {
        let specs = self.from_specs.load();
        let stored = self.stored.load();
        if specs.is_empty() && stored.is_empty() {
            return Effect::Allow;
        }
        let principal = principal.unwrap_or_default();
        let effect = providers
            .iter()
            .map(|provider| {
                evaluate_kind(
                    specs.iter().chain(stored.iter()),
                    kind,
                    principal,
                    roles,
                    provider,
                    name,
                    Effect::Allow,
                )
                .effect
            })
            .max()
            .unwrap_or(Effect::Allow);
        // An approval remembered with `always` (this principal allowed on
        // exactly this provider and name) answers the asks that follow; a
        // deny still wins.
        if effect == Effect::Ask
            && !principal.is_empty()
            && let Some(asked) = providers.first()
            && stored.iter().any(|p| {
                p.effect == Effect::Allow
                    && p.kind == kind
                    && p.provider_glob == *asked
                    && p.tool_glob == name
                    && matches!(&p.subject, Subject::Principal(id) if id == principal)
            })
        {
            return Effect::Allow;
        }
        effect
    }

    /// The policies of `kind` written for exactly this glob pair, spec ones first.
    pub fn for_pair(
        &self,
        kind: PolicyKind,
        provider_glob: &str,
        tool_glob: &str,
    ) -> Vec<(ToolPolicy, PolicySource)> {
        let same = |p: &&ToolPolicy| {
            p.kind == kind && p.provider_glob == provider_glob && p.tool_glob == tool_glob
        };
        let specs = self.from_specs.load();
        let stored = self.stored.load();
        specs
            .iter()
            .filter(same)
            .map(|p| (p.clone(), PolicySource::Config))
            .chain(
                stored
                    .iter()
                    .filter(same)
                    .map(|p| (p.clone(), PolicySource::Api)),
            )
            .collect()
    }

    /// Sets one API policy (keyed by globs and subject), stored before it
    /// applies; true when it is new.
    pub async fn put(&self, policy: ToolPolicy) -> Result<bool, GateError> {
        policy.validate()?;
        let _w = self.writes.lock().await;
        let created = match &self.store {
            Some(store) => store.put_tool_policy(&policy).await?,
            None => !self.stored.load().iter().any(|p| same_key(p, &policy)),
        };
        let mut list: Vec<ToolPolicy> = self
            .stored
            .load()
            .iter()
            .filter(|p| !same_key(p, &policy))
            .cloned()
            .collect();
        list.push(policy);
        self.stored.store(Arc::new(list));
        Ok(created)
    }

    /// Deletes the API policies of `kind` of a glob pair (only `subject`'s
    /// when given); returns how many.
    pub async fn delete(
        &self,
        kind: PolicyKind,
        provider_glob: &str,
        tool_glob: &str,
        subject: Option<&Subject>,
    ) -> Result<u64, GateError> {
        let _w = self.writes.lock().await;
        let gone = |p: &ToolPolicy| {
            p.kind == kind
                && p.provider_glob == provider_glob
                && p.tool_glob == tool_glob
                && subject.is_none_or(|s| &p.subject == s)
        };
        let current = self.stored.load_full();
        let n = match &self.store {
            Some(store) => {
                store
                    .delete_tool_policies(kind, provider_glob, tool_glob, subject)
                    .await?
            }
            None => current.iter().filter(|p| gone(p)).count() as u64,
        };
        let list: Vec<ToolPolicy> = current.iter().filter(|p| !gone(p)).cloned().collect();
        self.stored.store(Arc::new(list));
        Ok(n)
    }
}

fn same_key(a: &ToolPolicy, b: &ToolPolicy) -> bool {
    a.kind == b.kind
        && a.provider_glob == b.provider_glob
        && a.tool_glob == b.tool_glob
        && a.subject == b.subject
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(provider: &str, tool: &str, subject: Subject, effect: Effect) -> ToolPolicy {
        ToolPolicy::new(provider, tool, subject, effect)
    }

    #[tokio::test]
    async fn api_and_spec_policies_combine_deny_wins() {
        let policies = Policies::new(None);
        let roles = vec!["dev".to_owned()];
        assert_eq!(
            policies.verdict(PolicyKind::Tool, Some("a"), &roles, &["fx"], "echo"),
            Effect::Allow
        );
        policies.set_from_specs(vec![p(
            "fx",
            "e*",
            Subject::Role("dev".into()),
            Effect::Ask,
        )]);
        assert_eq!(
            policies.verdict(PolicyKind::Tool, Some("a"), &roles, &["fx"], "echo"),
            Effect::Ask
        );
        assert_eq!(
            policies.verdict(
                PolicyKind::Tool,
                Some("a"),
                &[] as &[String],
                &["fx"],
                "echo"
            ),
            Effect::Allow
        );
        assert!(
            policies
                .put(p("*", "echo", Subject::Principal("a".into()), Effect::Deny))
                .await
                .unwrap()
        );
        assert!(
            !policies
                .put(p("*", "echo", Subject::Principal("a".into()), Effect::Deny))
                .await
                .unwrap()
        );
        assert_eq!(
            policies.verdict(PolicyKind::Tool, Some("a"), &roles, &["fx"], "echo"),
            Effect::Deny
        );
        assert_eq!(policies.for_pair(PolicyKind::Tool, "*", "echo").len(), 1);
        assert!(
            policies
                .for_pair(PolicyKind::Resource, "*", "echo")
                .is_empty()
        );
        assert_eq!(
            policies
                .delete(PolicyKind::Resource, "*", "echo", None)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            policies
                .delete(PolicyKind::Tool, "*", "echo", None)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            policies.verdict(PolicyKind::Tool, Some("a"), &roles, &["fx"], "echo"),
            Effect::Ask
        );
        assert!(
            policies
                .put(p("", "echo", Subject::Principal("a".into()), Effect::Deny))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_group_never_lifts_a_member_policy_and_kinds_stay_apart() {
        let policies = Policies::new(None);
        let dev = vec!["developer".to_owned()];
        policies.set_from_specs(vec![
            p(
                "member",
                "echo",
                Subject::Role("developer".into()),
                Effect::Deny,
            ),
            p(
                "*",
                "file:///etc/*",
                Subject::Role("developer".into()),
                Effect::Deny,
            )
            .with_kind(PolicyKind::Resource),
        ]);
        // The group itself says nothing; its member denies.
        let group = ["pool", "member", "other"];
        assert_eq!(
            policies.verdict(PolicyKind::Tool, Some("d"), &dev, &group, "echo"),
            Effect::Deny
        );
        assert_eq!(
            policies.verdict(
                PolicyKind::Tool,
                Some("d"),
                &dev,
                &["pool", "other"],
                "echo"
            ),
            Effect::Allow
        );
        // A resource policy does not touch tools of the same name, and back.
        assert_eq!(
            policies.verdict(
                PolicyKind::Resource,
                Some("d"),
                &dev,
                &["fs"],
                "file:///etc/passwd"
            ),
            Effect::Deny
        );
        assert_eq!(
            policies.verdict(
                PolicyKind::Tool,
                Some("d"),
                &dev,
                &["fs"],
                "file:///etc/passwd"
            ),
            Effect::Allow
        );
        assert_eq!(
            policies.verdict(PolicyKind::Resource, Some("d"), &dev, &["member"], "echo"),
            Effect::Allow
        );
    }
}
