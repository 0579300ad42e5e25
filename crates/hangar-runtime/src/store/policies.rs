//! Policies set over the API (`tool_policies`), keyed by kind (tool,
//! resource, prompt), provider glob, tool glob and subject.

use hangar_core::{Effect, PolicyKind, Subject, ToolPolicy};
use rusqlite::params;

use super::Store;
use crate::error::StoreError;

fn subject_parts(subject: &Subject) -> (&'static str, &str) {
    match subject {
        Subject::Principal(id) => ("principal", id),
        Subject::Role(id) => ("role", id),
    }
}

impl Store {
    /// Inserts or replaces the policy for its globs and subject; true when it
    /// did not exist.
    pub async fn put_tool_policy(&self, policy: &ToolPolicy) -> Result<bool, StoreError> {
        let policy = policy.clone();
        self.run(move |c| {
            let (kind, id) = subject_parts(&policy.subject);
            let tx = c.transaction()?;
            let existed = tx.query_row(
                "SELECT COUNT(*) FROM tool_policies WHERE provider_glob = ?1 AND tool_glob = ?2
                 AND subject_kind = ?3 AND subject_id = ?4 AND kind = ?5",
                params![
                    policy.provider_glob,
                    policy.tool_glob,
                    kind,
                    id,
                    policy.kind.as_str()
                ],
                |r| r.get::<_, i64>(0),
            )? > 0;
            tx.execute(
                "INSERT INTO tool_policies
                 (provider_glob, tool_glob, subject_kind, subject_id, effect, created_at, kind)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(kind, provider_glob, tool_glob, subject_kind, subject_id)
                 DO UPDATE SET effect = excluded.effect",
                params![
                    policy.provider_glob,
                    policy.tool_glob,
                    kind,
                    id,
                    policy.effect.as_str(),
                    crate::now_rfc3339(),
                    policy.kind.as_str()
                ],
            )?;
            tx.commit()?;
            Ok(!existed)
        })
        .await
    }

    /// Deletes the policies of `kind` of a glob pair (only `subject`'s when
    /// given); returns how many.
    pub async fn delete_tool_policies(
        &self,
        kind: PolicyKind,
        provider_glob: &str,
        tool_glob: &str,
        subject: Option<&Subject>,
    ) -> Result<u64, StoreError> {
        let provider_glob = provider_glob.to_owned();
        let tool_glob = tool_glob.to_owned();
        let subject = subject.map(|s| {
            let (kind, id) = subject_parts(s);
            (kind, id.to_owned())
        });
        let policy_kind = kind.as_str();
        self.run(move |c| {
            let n = match subject {
                Some((kind, id)) => c.execute(
                    "DELETE FROM tool_policies WHERE provider_glob = ?1 AND tool_glob = ?2
                     AND subject_kind = ?3 AND subject_id = ?4 AND kind = ?5",
                    params![provider_glob, tool_glob, kind, id, policy_kind],
                )?,
                None => c.execute(
                    "DELETE FROM tool_policies WHERE provider_glob = ?1 AND tool_glob = ?2
                     AND kind = ?3",
                    params![provider_glob, tool_glob, policy_kind],
                )?,
            };
            Ok(n as u64)
        })
        .await
    }

    /// Every stored tool policy.
    pub async fn tool_policies(&self) -> Result<Vec<ToolPolicy>, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare(
                "SELECT provider_glob, tool_glob, subject_kind, subject_id, effect, kind
                 FROM tool_policies
                 ORDER BY kind, provider_glob, tool_glob, subject_kind, subject_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let ((provider, tool), kind, id, effect, policy_kind) = row?;
                let policy_kind: PolicyKind = policy_kind
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("tool policy: {e}")))?;
                let subject = match kind.as_str() {
                    "principal" => Subject::Principal(id),
                    "role" => Subject::Role(id),
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "tool policy subject kind `{other}`"
                        )));
                    }
                };
                let effect: Effect = effect
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("tool policy: {e}")))?;
                out.push(ToolPolicy::new(provider, tool, subject, effect).with_kind(policy_kind));
            }
            Ok(out)
        })
        .await
    }
}
