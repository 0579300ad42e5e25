//! The SQLite store (`<data-dir>/hangar.db`, WAL mode): providers created over
//! the API and API keys (hashes only).
//!
//! Invariant: every write is committed before the API acknowledges it, so a
//! `kill -9` loses nothing that was acknowledged. Calls run on tokio's
//! blocking pool, never on the async workers.

use std::path::Path;
use std::sync::{Arc, Mutex};

use hangar_core::{GroupSpec, ProviderSpec};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StoreError;
use crate::secrets::Sealer;

mod policies;

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
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    time TEXT NOT NULL,
    PRIMARY KEY (stream_id, version)
);
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
CREATE TABLE IF NOT EXISTS catalog (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scopes (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    scope TEXT,
    ciphertext BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS roles (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS process_groups (
    pgid INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    start_ticks INTEGER NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS principal_roles (
    principal_id TEXT NOT NULL,
    role_id TEXT NOT NULL,
    PRIMARY KEY (principal_id, role_id)
);
";

/// The policies table (kept apart from [`SCHEMA`]: older databases get it
/// by a rebuild in [`migrate`]).
const TOOL_POLICIES: &str = "
CREATE TABLE IF NOT EXISTS tool_policies (
    provider_glob TEXT NOT NULL,
    tool_glob TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    effect TEXT NOT NULL,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'tool',
    PRIMARY KEY (kind, provider_glob, tool_glob, subject_kind, subject_id)
);";

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
    /// `key` (an API key managed over `/api/auth/keys`) or `token` (a personal
    /// token its principal manages over `/api/tokens`); both authenticate alike.
    pub kind: String,
    /// For a token: the key that minted it. The token works only while that
    /// key does, and revoking the key revokes the token.
    pub parent_key_id: Option<String>,
}

const KEY_COLUMNS: &str = "key_id, principal_id, name, key_hash, prefix, created_at, expires_at, \
                           revoked_at, kind, parent_key_id";

/// Adds columns that databases created by older versions lack.
fn migrate(c: &Connection) -> Result<(), StoreError> {
    let columns = |table: &str| -> Result<Vec<String>, StoreError> {
        let mut stmt = c.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(names.collect::<Result<Vec<_>, _>>()?)
    };
    let keys = columns("api_keys")?;
    if !keys.iter().any(|n| n == "kind") {
        c.execute_batch("ALTER TABLE api_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'key'")?;
    }
    if !keys.iter().any(|n| n == "parent_key_id") {
        c.execute_batch("ALTER TABLE api_keys ADD COLUMN parent_key_id TEXT")?;
    }
    let policies = columns("tool_policies")?;
    if !policies.is_empty() && !policies.iter().any(|n| n == "kind") {
        // The primary key gains the kind: rebuild the table.
        c.execute_batch(&format!(
            "BEGIN;
             ALTER TABLE tool_policies RENAME TO tool_policies_old;
             {TOOL_POLICIES}
             INSERT INTO tool_policies
                 (provider_glob, tool_glob, subject_kind, subject_id, effect, created_at)
                 SELECT provider_glob, tool_glob, subject_kind, subject_id, effect, created_at
                 FROM tool_policies_old;
             DROP TABLE tool_policies_old;
             COMMIT;"
        ))?;
    }
    c.execute_batch(TOOL_POLICIES)?;
    Ok(())
}

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
        kind: r.get(8)?,
        parent_key_id: r.get(9)?,
    })
}

/// A stored secret: its ciphertext (`nonce || AES-256-GCM output`), never
/// the value. `Debug` shows the ciphertext's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// The name used in `${secret:NAME}`.
    pub name: String,
    /// The scope label, if the secret is scoped.
    pub scope: Option<String>,
    /// 12-byte nonce followed by the ciphertext and its tag.
    pub ciphertext: Vec<u8>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("ciphertext_len", &self.ciphertext.len())
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
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

impl StoredEvent {
    /// An `events` row's columns as an event (a payload that is not JSON is
    /// a corrupt row).
    fn decode(
        position: i64,
        version: i64,
        time: String,
        payload: &str,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            position: u64::try_from(position).unwrap_or(0),
            version: u64::try_from(version).unwrap_or(0),
            time,
            payload: serde_json::from_str(payload)
                .map_err(|e| StoreError::Corrupt(format!("event {position}: {e}")))?,
        })
    }
}

/// A stream's state folded from its events up to `version`: how many
/// events of each type it had and the latest payload of each type. Events up
/// to `version` may be deleted by compaction; the snapshot keeps their sum.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The stream.
    pub stream_id: String,
    /// The last event version folded in.
    pub version: u64,
    /// Events per type folded into this stream's snapshots (invocation
    /// records pruned by retention before a snapshot are not counted).
    pub event_counts: std::collections::BTreeMap<String, u64>,
    /// Latest payload per event type.
    pub last: std::collections::BTreeMap<String, serde_json::Value>,
    /// RFC 3339.
    pub time: String,
}

fn latest_snapshot(c: &Connection, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
    let row: Option<String> = c
        .query_row(
            "SELECT state FROM snapshots WHERE stream_id = ?1 ORDER BY version DESC LIMIT 1",
            params![stream_id],
            |r| r.get(0),
        )
        .optional()?;
    row.map(|json| {
        serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("snapshot of {stream_id}: {e}")))
    })
    .transpose()
}

fn snapshot_stream(c: &mut Connection, stream_id: &str) -> Result<Option<u64>, StoreError> {
    let tx = c.transaction()?;
    let mut snap = latest_snapshot(&tx, stream_id)?.unwrap_or_else(|| Snapshot {
        stream_id: stream_id.to_owned(),
        version: 0,
        event_counts: Default::default(),
        last: Default::default(),
        time: String::new(),
    });
    let before = snap.version;
    {
        let mut stmt = tx.prepare_cached(
            "SELECT version, event_type, payload FROM events
             WHERE stream_id = ?1 AND version > ?2 ORDER BY version",
        )?;
        let rows = stmt.query_map(
            params![stream_id, i64::try_from(before).unwrap_or(i64::MAX)],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )?;
        for row in rows {
            let (version, event_type, payload) = row?;
            let payload: serde_json::Value = serde_json::from_str(&payload)
                .map_err(|e| StoreError::Corrupt(format!("event {stream_id}/{version}: {e}")))?;
            *snap.event_counts.entry(event_type.clone()).or_default() += 1;
            snap.last.insert(event_type, payload);
            snap.version = u64::try_from(version).unwrap_or(0);
        }
    }
    if snap.version == before {
        return Ok(None);
    }
    snap.time = crate::now_rfc3339();
    let json = serde_json::to_string(&snap).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.execute(
        "INSERT OR REPLACE INTO snapshots (stream_id, version, state, time) VALUES (?1, ?2, ?3, ?4)",
        params![
            stream_id,
            i64::try_from(snap.version).unwrap_or(i64::MAX),
            json,
            snap.time
        ],
    )?;
    tx.commit()?;
    Ok(Some(snap.version))
}

/// Tables holding specs as JSON (never user input in the SQL text).
#[derive(Clone, Copy)]
enum Table {
    Providers,
    Groups,
    Catalog,
    Scopes,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Providers => "providers",
            Self::Groups => "groups",
            Self::Catalog => "catalog",
            Self::Scopes => "scopes",
        }
    }

    /// Whether rows may hold credentials as literal values (env, headers):
    /// those are sealed when a [`Sealer`] is set.
    fn sealed(self) -> bool {
        matches!(self, Self::Providers | Self::Catalog)
    }

    fn row(self, id: &str) -> String {
        format!("{}/{id}", self.name())
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// Encrypts provider and catalog rows (set once, at start).
    sealer: Arc<std::sync::OnceLock<Sealer>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the database file. The file and its WAL
    /// and shared-memory files are 0600 (SQLite gives the latter the main
    /// file's mode; older databases are fixed up here).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(crate::files::PRIVATE_FILE_MODE)
                .open(path);
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            crate::files::restrict_file(Path::new(&file))?;
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Deleted and overwritten content is zeroed, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            sealer: Arc::default(),
        })
    }

    /// From now on, provider and catalog rows are written encrypted with
    /// `sealer` (and read back through it); rows written in the clear by
    /// older versions are sealed now, and the WAL is truncated so their
    /// plaintext does not linger there. Set once; later calls are ignored.
    pub async fn seal_rows(&self, sealer: Sealer) -> Result<usize, StoreError> {
        if self.sealer.set(sealer).is_err() {
            return Ok(0);
        }
        let Some(sealer) = self.sealer.get().cloned() else {
            return Ok(0);
        };
        self.run(move |c| {
            let tx = c.transaction()?;
            let mut sealed = 0;
            for table in [Table::Providers, Table::Catalog] {
                let plain: Vec<(String, String)> = {
                    let mut stmt = tx.prepare(&format!("SELECT id, spec FROM {}", table.name()))?;
                    let rows = stmt
                        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                    rows.filter_map(Result::ok)
                        .filter(|(_, spec)| !Sealer::is_sealed(spec))
                        .collect()
                };
                for (id, spec) in plain {
                    let text = sealer
                        .seal(&table.row(&id), &spec)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    tx.execute(
                        &format!("UPDATE {} SET spec = ?2 WHERE id = ?1", table.name()),
                        params![id, text],
                    )?;
                    sealed += 1;
                }
            }
            tx.commit()?;
            if sealed > 0 {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            Ok(sealed)
        })
        .await
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
        let mut json =
            serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if table.sealed()
            && let Some(sealer) = self.sealer.get()
        {
            json = sealer
                .seal(&table.row(&id), &json)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
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
        let sealer = self.sealer.get().cloned();
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
                let spec = if Sealer::is_sealed(&json) {
                    let sealer = sealer.as_ref().ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "{} {id}: encrypted, and no master key is loaded",
                            table.name()
                        ))
                    })?;
                    let plain = sealer
                        .open(&table.row(&id), &json)
                        .map_err(|e| StoreError::Corrupt(format!("{} {id}: {e}", table.name())))?;
                    serde_json::from_str(&plain)
                } else {
                    serde_json::from_str(&json)
                }
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

    /// Saves (inserts or replaces) a user catalog entry.
    pub async fn put_catalog_entry(
        &self,
        id: &str,
        entry: &crate::catalog::CatalogEntry,
    ) -> Result<(), StoreError> {
        self.put_spec(Table::Catalog, id, entry).await
    }

    /// Deletes a stored catalog entry; true if it existed.
    pub async fn delete_catalog_entry(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_spec(Table::Catalog, id).await
    }

    /// Saves (inserts or replaces) a scope.
    pub async fn put_scope(
        &self,
        id: &str,
        scope: &crate::scopes::Scope,
    ) -> Result<(), StoreError> {
        self.put_spec(Table::Scopes, id, scope).await
    }

    /// Deletes a scope; true if it existed.
    pub async fn delete_scope(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_spec(Table::Scopes, id).await
    }

    /// All scopes, by id.
    pub async fn scopes(&self) -> Result<Vec<(String, crate::scopes::Scope)>, StoreError> {
        self.specs(Table::Scopes).await
    }

    /// All stored user catalog entries, by id.
    pub async fn catalog_entries(
        &self,
    ) -> Result<Vec<(String, crate::catalog::CatalogEntry)>, StoreError> {
        self.specs(Table::Catalog).await
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
                    "INSERT INTO events (position, stream_id, version, event_type, payload, time)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for e in &events {
                    stmt.execute(params![
                        i64::try_from(e.position).unwrap_or(i64::MAX),
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

    /// The highest position any event ever had (positions are never
    /// reused, even after compaction deleted the events).
    pub async fn last_position(&self) -> Result<u64, StoreError> {
        self.run(|c| {
            let seq: i64 = c.query_row(
                "SELECT MAX(
                     COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                     COALESCE((SELECT MAX(position) FROM events), 0))",
                [],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(seq).unwrap_or(0))
        })
        .await
    }

    /// Every event after `from_position`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        from_position: u64,
        limit: u32,
    ) -> Result<Vec<crate::events::DomainEvent>, StoreError> {
        self.run(move |c| {
            let from = i64::try_from(from_position).unwrap_or(i64::MAX);
            let mut stmt = c.prepare_cached(
                "SELECT position, stream_id, version, event_type, payload, time FROM events
                 WHERE position > ?1 ORDER BY position LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![from, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (position, stream_id, version, event_type, payload, time) = row?;
                let e = StoredEvent::decode(position, version, time, &payload)?;
                out.push(crate::events::DomainEvent {
                    position: e.position,
                    stream_id,
                    version: e.version,
                    event_type: event_type.into(),
                    payload: e.payload,
                    time: e.time,
                });
            }
            Ok(out)
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
                out.push(StoredEvent::decode(position, version, time, &payload)?);
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
    /// `streams` (bounded history); returns how many were deleted.
    pub async fn prune_events(
        &self,
        streams: Vec<String>,
        event_type: &'static str,
        keep: u64,
    ) -> Result<u64, StoreError> {
        self.run(move |c| {
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            let mut stmt = c.prepare_cached(
                "DELETE FROM events WHERE stream_id = ?1 AND event_type = ?2 AND position <= (
                     SELECT position FROM events WHERE stream_id = ?1 AND event_type = ?2
                     ORDER BY position DESC LIMIT 1 OFFSET ?3)",
            )?;
            let mut deleted = 0u64;
            for s in &streams {
                deleted += stmt.execute(params![s, event_type, keep])? as u64;
            }
            Ok(deleted)
        })
        .await
    }

    /// Folds the events of `stream_id` since its latest snapshot into a new
    /// snapshot at the stream's current version (see [`Snapshot`]). Returns
    /// the new snapshot's version, or `None` if there was nothing new.
    pub async fn take_snapshot(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.run(move |c| snapshot_stream(c, &stream_id)).await
    }

    /// The latest snapshot of `stream_id`, if any.
    pub async fn latest_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.run(move |c| latest_snapshot(c, &stream_id)).await
    }

    /// Deletes the events of `stream_id` that its latest snapshot covers (and
    /// older snapshots). `None` if the stream has no snapshot; else the
    /// number of events deleted.
    pub async fn compact(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.run(move |c| {
            let tx = c.transaction()?;
            let Some(snap) = latest_snapshot(&tx, &stream_id)? else {
                return Ok(None);
            };
            let v = i64::try_from(snap.version).unwrap_or(i64::MAX);
            let deleted = tx.execute(
                "DELETE FROM events WHERE stream_id = ?1 AND version <= ?2",
                params![stream_id, v],
            )?;
            tx.execute(
                "DELETE FROM snapshots WHERE stream_id = ?1 AND version < ?2",
                params![stream_id, v],
            )?;
            tx.commit()?;
            Ok(Some(deleted as u64))
        })
        .await
    }

    /// The latest version of every stream.
    pub async fn stream_versions(
        &self,
    ) -> Result<std::collections::HashMap<String, u64>, StoreError> {
        self.run(|c| {
            // A compacted stream may keep no events: its snapshot holds the version.
            let mut stmt = c.prepare(
                "SELECT stream_id, MAX(v) FROM (
                     SELECT stream_id, MAX(version) AS v FROM events GROUP BY stream_id
                     UNION ALL
                     SELECT stream_id, MAX(version) AS v FROM snapshots GROUP BY stream_id)
                 GROUP BY stream_id",
            )?;
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

    /// This data directory's server instance id, made at first use: it
    /// labels the containers the server runs.
    pub async fn instance_id(&self) -> Result<String, StoreError> {
        let fresh = format!("{:016x}", rand::random::<u64>());
        self.run(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('instance_id', ?1)
                 ON CONFLICT(key) DO NOTHING",
                params![fresh],
            )?;
            Ok(c.query_row(
                "SELECT value FROM meta WHERE key = 'instance_id'",
                [],
                |r| r.get::<_, String>(0),
            )?)
        })
        .await
    }

    /// Records a running provider's process group (until it is stopped).
    pub async fn record_process_group(
        &self,
        provider: &str,
        record: crate::process::GroupRecord,
    ) -> Result<(), StoreError> {
        let provider = provider.to_owned();
        self.run(move |c| {
            c.execute(
                "INSERT INTO process_groups (pgid, provider, start_ticks, recorded_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(pgid) DO UPDATE SET provider = excluded.provider,
                     start_ticks = excluded.start_ticks, recorded_at = excluded.recorded_at",
                params![
                    record.pgid,
                    provider,
                    i64::try_from(record.start_ticks).unwrap_or(i64::MAX),
                    crate::now_rfc3339()
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Drops a process group's record (it was stopped).
    pub async fn forget_process_group(&self, pgid: i32) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute("DELETE FROM process_groups WHERE pgid = ?1", params![pgid])?;
            Ok(())
        })
        .await
    }

    /// Every recorded process group, with its provider.
    pub async fn process_groups(
        &self,
    ) -> Result<Vec<(String, crate::process::GroupRecord)>, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare("SELECT provider, pgid, start_ticks FROM process_groups")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    crate::process::GroupRecord {
                        pgid: r.get(1)?,
                        start_ticks: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    },
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Stores a new API key.
    pub async fn put_key(&self, key: StoredKey) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO api_keys ({KEY_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    key.key_id,
                    key.principal_id,
                    key.name,
                    key.key_hash,
                    key.prefix,
                    key.created_at,
                    key.expires_at,
                    key.revoked_at,
                    key.kind,
                    key.parent_key_id
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

    /// Marks a key revoked at `revoked_at` (RFC 3339); true if it existed and
    /// was not revoked yet.
    pub async fn revoke_key(&self, key_id: &str, revoked_at: &str) -> Result<bool, StoreError> {
        let (key_id, revoked_at) = (key_id.to_owned(), revoked_at.to_owned());
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL",
                params![key_id, revoked_at],
            )? > 0)
        })
        .await
    }

    /// Saves (inserts or replaces) a custom role as JSON.
    pub async fn put_role(&self, role: &hangar_core::Role) -> Result<(), StoreError> {
        let id = role.id.clone();
        let json = serde_json::to_string(role).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.run(move |c| {
            c.execute(
                "INSERT INTO roles (id, spec) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET spec = excluded.spec",
                params![id, json],
            )?;
            Ok(())
        })
        .await
    }

    /// Deletes a custom role and its assignments; true if it existed.
    pub async fn delete_role(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute("DELETE FROM roles WHERE id = ?1", params![id])?;
            tx.execute(
                "DELETE FROM principal_roles WHERE role_id = ?1",
                params![id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    /// All stored custom roles, by id.
    pub async fn roles(&self) -> Result<Vec<hangar_core::Role>, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare("SELECT id, spec FROM roles ORDER BY id")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, json) = row?;
                out.push(
                    serde_json::from_str(&json)
                        .map_err(|e| StoreError::Corrupt(format!("role {id}: {e}")))?,
                );
            }
            Ok(out)
        })
        .await
    }

    /// Gives `principal_id` the role `role_id`; true if it did not hold it.
    pub async fn assign_role(&self, principal_id: &str, role_id: &str) -> Result<bool, StoreError> {
        let (p, r) = (principal_id.to_owned(), role_id.to_owned());
        self.run(move |c| {
            Ok(c.execute(
                "INSERT OR IGNORE INTO principal_roles (principal_id, role_id) VALUES (?1, ?2)",
                params![p, r],
            )? > 0)
        })
        .await
    }

    /// Takes `role_id` from `principal_id`; true if it held it.
    pub async fn unassign_role(
        &self,
        principal_id: &str,
        role_id: &str,
    ) -> Result<bool, StoreError> {
        let (p, r) = (principal_id.to_owned(), role_id.to_owned());
        self.run(move |c| {
            Ok(c.execute(
                "DELETE FROM principal_roles WHERE principal_id = ?1 AND role_id = ?2",
                params![p, r],
            )? > 0)
        })
        .await
    }

    /// Every role assignment as `(principal_id, role_id)`, sorted.
    pub async fn role_assignments(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare(
                "SELECT principal_id, role_id FROM principal_roles ORDER BY principal_id, role_id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)
        })
        .await
    }

    /// Events on `stream_id` whose type is one of `event_types` (and, with
    /// `field = Some((name, value))`, whose payload's top-level `name` is
    /// `value`), newest first, at most `limit`; each with its type. Plus how
    /// many match in all.
    pub async fn events_by_types(
        &self,
        stream_id: &str,
        event_types: Vec<String>,
        field: Option<(&'static str, String)>,
        limit: usize,
    ) -> Result<(Vec<(String, StoredEvent)>, u64), StoreError> {
        let stream_id = stream_id.to_owned();
        let (path, provider) = match field {
            Some((name, value)) => (format!("$.{name}"), Some(value)),
            None => ("$.provider".to_owned(), None),
        };
        self.run(move |c| {
            let types = serde_json::to_string(&event_types)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let filter = "WHERE stream_id = ?1
                 AND event_type IN (SELECT value FROM json_each(?2))
                 AND (?3 IS NULL OR json_extract(payload, ?5) = ?3)";
            let mut stmt = c.prepare_cached(&format!(
                "SELECT position, version, time, payload, event_type FROM events {filter}
                 ORDER BY position DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map(params![stream_id, types, provider, limit, path], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (position, version, time, payload, event_type) = row?;
                out.push((
                    event_type,
                    StoredEvent::decode(position, version, time, &payload)?,
                ));
            }
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM events {filter} AND ?4 IS NOT NULL"),
                params![stream_id, types, provider, 0, path],
                |r| r.get(0),
            )?;
            Ok((out, u64::try_from(total).unwrap_or(0)))
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

    /// Saves (inserts or replaces) an encrypted secret; `created_at` is kept
    /// when the name exists already.
    pub async fn put_secret(&self, secret: StoredSecret) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO secrets (name, scope, ciphertext, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET scope = excluded.scope,
                     ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                params![
                    secret.name,
                    secret.scope,
                    secret.ciphertext,
                    secret.created_at,
                    secret.updated_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Deletes a secret; true if it existed.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.run(move |c| Ok(c.execute("DELETE FROM secrets WHERE name = ?1", params![name])? > 0))
            .await
    }

    /// All secrets (ciphertext included), by name.
    pub async fn secrets(&self) -> Result<Vec<StoredSecret>, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare(
                "SELECT name, scope, ciphertext, created_at, updated_at FROM secrets ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredSecret {
                    name: r.get(0)?,
                    scope: r.get(1)?,
                    ciphertext: r.get(2)?,
                    created_at: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)
        })
        .await
    }

    /// The ciphertext of one secret, if it exists.
    pub async fn secret_ciphertext(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT ciphertext FROM secrets WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
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

    #[tokio::test]
    async fn keys_get_a_kind_column_on_old_databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.db");
        {
            let c = Connection::open(&path).expect("open");
            c.execute_batch(
                "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, principal_id TEXT NOT NULL,
                 name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
                 created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT);
                 INSERT INTO api_keys VALUES ('k1', 'admin', 'n', 'h', 'hgr_', 't', NULL, NULL);",
            )
            .expect("old schema");
        }
        let s = Store::open(&path).expect("migrate");
        let keys = s.keys().await.expect("keys");
        assert_eq!(keys[0].kind, "key");
        assert!(
            s.revoke_key("k1", "2030-01-01T00:00:00Z")
                .await
                .expect("revoke")
        );
        assert!(
            !s.revoke_key("k1", "2030-01-01T00:00:00Z")
                .await
                .expect("again")
        );
        drop(s);
        let s = Store::open(&path).expect("reopen twice");
        assert!(s.keys().await.expect("keys")[0].revoked_at.is_some());
    }

    #[tokio::test]
    async fn old_tool_policies_become_tool_kind_policies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.db");
        {
            let c = Connection::open(&path).expect("open");
            c.execute_batch(
                "CREATE TABLE tool_policies (provider_glob TEXT NOT NULL, tool_glob TEXT NOT NULL,
                 subject_kind TEXT NOT NULL, subject_id TEXT NOT NULL, effect TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 PRIMARY KEY (provider_glob, tool_glob, subject_kind, subject_id));
                 INSERT INTO tool_policies VALUES ('fs', 'write_*', 'role', 'dev', 'deny', 't');",
            )
            .expect("old schema");
        }
        let s = Store::open(&path).expect("migrate");
        let policies = s.tool_policies().await.expect("policies");
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0].kind, hangar_core::PolicyKind::Tool);
        assert_eq!(policies[0].tool_glob, "write_*");
        // A resource policy of the same globs is another row.
        let resource = hangar_core::ToolPolicy::new(
            "fs",
            "write_*",
            hangar_core::Subject::Role("dev".into()),
            hangar_core::Effect::Deny,
        )
        .with_kind(hangar_core::PolicyKind::Resource);
        assert!(s.put_tool_policy(&resource).await.expect("put"));
        drop(s);
        let s = Store::open(&path).expect("reopen");
        assert_eq!(s.tool_policies().await.expect("policies").len(), 2);
    }

    #[tokio::test]
    async fn roles_and_assignments_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("hangar.db")).expect("open");
        let role: hangar_core::Role =
            serde_json::from_str(r#"{"id":"deployer","permissions":["catalog:read"]}"#)
                .expect("role");
        s.put_role(&role).await.expect("put");
        assert!(s.assign_role("alice", "deployer").await.expect("assign"));
        assert!(!s.assign_role("alice", "deployer").await.expect("again"));
        assert_eq!(s.roles().await.expect("roles"), vec![role]);
        assert!(s.delete_role("deployer").await.expect("delete"));
        assert!(s.role_assignments().await.expect("list").is_empty());
    }
}
