//! The SQLite store (`<data-dir>/hangar.db`, WAL mode): providers created over
//! the API and API keys (hashes only).
//!
//! Invariant: every write is committed before the API acknowledges it, so a
//! `kill -9` loses nothing that was acknowledged. Calls run on tokio's
//! blocking pool, never on the async workers.

use std::path::Path;
use std::sync::{Arc, Mutex};

use hangar_core::{GroupSpec, ProviderSpec};
use rusqlite::{Connection, params};

use crate::error::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS providers (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    time TEXT NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_by_type ON events (stream_id, event_type, position);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
";

/// A stored API key (never the raw key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Public id.
    pub key_id: String,
    /// Who the key authenticates as.
    pub principal_id: String,
    /// Human-readable name.
    pub name: String,
    /// Hex SHA-256 of the raw key.
    pub key_hash: String,
    /// First characters of the raw key, for display.
    pub prefix: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, if the key expires.
    pub expires_at: Option<String>,
    /// RFC 3339, if revoked.
    pub revoked_at: Option<String>,
}

const KEY_COLUMNS: &str =
    "key_id, principal_id, name, key_hash, prefix, created_at, expires_at, revoked_at";

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredKey> {
    Ok(StoredKey {
        key_id: r.get(0)?,
        principal_id: r.get(1)?,
        name: r.get(2)?,
        key_hash: r.get(3)?,
        prefix: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

/// An event read back from the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredEvent {
    /// Global store position.
    pub position: u64,
    /// Version within its stream.
    pub version: u64,
    /// RFC 3339.
    pub time: String,
    /// The event's data.
    pub payload: serde_json::Value,
}

/// Tables holding specs as JSON (never user input in the SQL text).
#[derive(Clone, Copy)]
enum Table {
    Providers,
    Groups,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Providers => "providers",
            Self::Groups => "groups",
        }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = crate::lock(&conn);
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    async fn put_spec<T: serde::Serialize>(
        &self,
        table: Table,
        id: &str,
        spec: &T,
    ) -> Result<(), StoreError> {
        let id = id.to_owned();
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.run(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO {} (id, spec, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(id) DO UPDATE SET spec = excluded.spec",
                    table.name()
                ),
                params![id, json, crate::now_rfc3339()],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_spec(&self, table: Table, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            Ok(c.execute(
                &format!("DELETE FROM {} WHERE id = ?1", table.name()),
                params![id],
            )? > 0)
        })
        .await
    }

    async fn specs<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        table: Table,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.run(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT id, spec FROM {} ORDER BY id",
                table.name()
            ))?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, json) = row?;
                let spec = serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("{} {id}: {e}", table.name())))?;
                out.push((id, spec));
            }
            Ok(out)
        })
        .await
    }

    /// Saves (inserts or replaces) a provider created over the API.
    pub async fn put_provider(&self, id: &str, spec: &ProviderSpec) -> Result<(), StoreError> {
        self.put_spec(Table::Providers, id, spec).await
    }

    /// Deletes a stored provider; true if it existed.
    pub async fn delete_provider(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_spec(Table::Providers, id).await
    }

    /// All stored providers, by id.
    pub async fn providers(&self) -> Result<Vec<(String, ProviderSpec)>, StoreError> {
        self.specs(Table::Providers).await
    }

    /// Saves (inserts or replaces) a group created or changed over the API.
    pub async fn put_group(&self, id: &str, spec: &GroupSpec) -> Result<(), StoreError> {
        self.put_spec(Table::Groups, id, spec).await
    }

    /// Deletes a stored group; true if it existed.
    pub async fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_spec(Table::Groups, id).await
    }

    /// All stored groups, by id.
    pub async fn groups(&self) -> Result<Vec<(String, GroupSpec)>, StoreError> {
        self.specs(Table::Groups).await
    }

    /// Appends events in one transaction (append-only; never updated).
    pub async fn append_events(
        &self,
        events: Vec<crate::events::DomainEvent>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO events (stream_id, version, event_type, payload, time)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for e in &events {
                    stmt.execute(params![
                        e.stream_id,
                        i64::try_from(e.version).unwrap_or(i64::MAX),
                        e.event_type,
                        e.payload.to_string(),
                        e.time
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Events of `event_type` on `stream_id` after `from_position`, oldest
    /// first, at most `limit`; plus how many such events the stream holds.
    pub async fn events_of(
        &self,
        stream_id: &str,
        event_type: &'static str,
        from_position: u64,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, u64), StoreError> {
        let stream_id = stream_id.to_owned();
        self.run(move |c| {
            let from = i64::try_from(from_position).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut stmt = c.prepare_cached(
                "SELECT position, version, time, payload FROM events
                 WHERE stream_id = ?1 AND event_type = ?2 AND position > ?3
                 ORDER BY position LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![stream_id, event_type, from, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (position, version, time, payload) = row?;
                out.push(StoredEvent {
                    position: u64::try_from(position).unwrap_or(0),
                    version: u64::try_from(version).unwrap_or(0),
                    time,
                    payload: serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Corrupt(format!("event {position}: {e}")))?,
                });
            }
            let total: i64 = c.query_row(
                "SELECT COUNT(*) FROM events WHERE stream_id = ?1 AND event_type = ?2",
                params![stream_id, event_type],
                |r| r.get(0),
            )?;
            Ok((out, u64::try_from(total).unwrap_or(0)))
        })
        .await
    }

    /// Keeps only the newest `keep` events of `event_type` on each of
    /// `streams` (bounded history).
    pub async fn prune_events(
        &self,
        streams: Vec<String>,
        event_type: &'static str,
        keep: u64,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            let mut stmt = c.prepare_cached(
                "DELETE FROM events WHERE stream_id = ?1 AND event_type = ?2 AND position <= (
                     SELECT position FROM events WHERE stream_id = ?1 AND event_type = ?2
                     ORDER BY position DESC LIMIT 1 OFFSET ?3)",
            )?;
            for s in &streams {
                stmt.execute(params![s, event_type, keep])?;
            }
            Ok(())
        })
        .await
    }

    /// The latest version of every stream.
    pub async fn stream_versions(
        &self,
    ) -> Result<std::collections::HashMap<String, u64>, StoreError> {
        self.run(|c| {
            let mut stmt =
                c.prepare("SELECT stream_id, MAX(version) FROM events GROUP BY stream_id")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut out = std::collections::HashMap::new();
            for row in rows {
                let (id, v) = row?;
                out.insert(id, u64::try_from(v).unwrap_or(0));
            }
            Ok(out)
        })
        .await
    }

    /// Stores a new API key.
    pub async fn put_key(&self, key: StoredKey) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO api_keys ({KEY_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    key.key_id,
                    key.principal_id,
                    key.name,
                    key.key_hash,
                    key.prefix,
                    key.created_at,
                    key.expires_at,
                    key.revoked_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// All keys, revoked ones included.
    pub async fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([], key_from_row)?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)
        })
        .await
    }

    /// Number of keys ever created.
    pub async fn key_count(&self) -> Result<u64, StoreError> {
        self.run(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn providers_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.db");
        let spec: ProviderSpec =
            serde_json::from_str(r#"{"mode":"subprocess","command":["x"]}"#).expect("spec");
        {
            let s = Store::open(&path).expect("open");
            s.put_provider("a", &spec).await.expect("put");
            s.put_provider("b", &spec).await.expect("put");
            assert!(s.delete_provider("b").await.expect("delete"));
        }
        let s = Store::open(&path).expect("reopen");
        let all = s.providers().await.expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, "a");
        assert_eq!(all[0].1, spec);
    }
}
