//! Authentication: `hgr_` keys (API keys and personal tokens), stored as
//! SHA-256 hashes, compared in constant time, expiring and revocable; the
//! bootstrap admin key; and [`require_key`], the middleware in front of `/api`
//! and `/mcp`, which also slows down clients that keep presenting bad keys
//! ([`hangar_core::AuthBackoff`], by peer IP) and records each failure as a
//! `SecurityEvent` on the `audit` stream.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hangar_runtime::{Store, StoreError, StoredKey};
use http::StatusCode;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::authz::{Access, SecurityKind};
use crate::error::ApiError;

/// Prefix of every Hangar key.
pub const KEY_PREFIX: &str = "hgr_";

/// `kind` of an API key (managed over `/api/auth/keys`).
pub const KIND_KEY: &str = "key";

/// `kind` of a personal token (managed by its principal over `/api/tokens`).
pub const KIND_TOKEN: &str = "token";

/// Characters of a key shown in listings (`hgr_` and 8 more).
const SHOWN_PREFIX_LEN: usize = 12;

/// The caller, attached to each authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Principal id (e.g. `admin`).
    pub id: String,
    /// The key that authenticated it.
    pub key_id: String,
}

#[derive(Debug, Clone)]
struct KeyEntry {
    hash: [u8; 32],
    expires: Option<time::OffsetDateTime>,
    meta: StoredKey,
}

/// The in-memory set of keys (hashes and metadata), loaded from the store;
/// changes are written to the store before they apply.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Arc<RwLock<Vec<KeyEntry>>>,
    store: Option<Store>,
}

fn hash_key(raw: &str) -> [u8; 32] {
    Sha256::digest(raw.as_bytes()).into()
}

/// A fresh random key: `hgr_` + 64 hex characters (256 bits).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What is asked for a new key or token.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// Who it authenticates as.
    pub principal_id: &'a str,
    /// Human-readable name.
    pub name: &'a str,
    /// [`KIND_KEY`] or [`KIND_TOKEN`].
    pub kind: &'a str,
    /// When it stops working.
    pub expires_at: Option<time::OffsetDateTime>,
}

impl KeyRing {
    /// Loads every key from the store; later changes are stored there.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let ring = Self {
            keys: Arc::default(),
            store: Some(store.clone()),
        };
        for k in store.keys().await? {
            ring.insert(&k);
        }
        Ok(ring)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<KeyEntry>> {
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<KeyEntry>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, k: &StoredKey) {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(&k.key_hash, &mut hash).is_err() {
            tracing::warn!(key_id = %k.key_id, "skipping stored key with a malformed hash");
            return;
        }
        self.write().push(KeyEntry {
            hash,
            expires: k.expires_at.as_deref().and_then(parse_time),
            meta: k.clone(),
        });
    }

    /// Creates, stores and returns a new key; `raw` is the key to use (else
    /// one is generated). The raw key is returned once and kept nowhere.
    pub async fn create(
        &self,
        new: NewKey<'_>,
        raw: Option<String>,
    ) -> Result<(StoredKey, String), StoreError> {
        let raw = raw.unwrap_or_else(generate_key);
        let mut id = [0u8; 8];
        rand::rng().fill_bytes(&mut id);
        let stored = StoredKey {
            key_id: hex::encode(id),
            principal_id: new.principal_id.to_owned(),
            name: new.name.to_owned(),
            key_hash: hex::encode(hash_key(&raw)),
            prefix: raw.chars().take(SHOWN_PREFIX_LEN).collect(),
            created_at: hangar_runtime::now_rfc3339(),
            expires_at: new.expires_at.map(format_time),
            revoked_at: None,
            kind: new.kind.to_owned(),
        };
        if let Some(store) = &self.store {
            store.put_key(stored.clone()).await?;
        }
        self.insert(&stored);
        Ok((stored, raw))
    }

    /// The key with this id.
    pub fn get(&self, key_id: &str) -> Option<StoredKey> {
        self.read()
            .iter()
            .find(|k| k.meta.key_id == key_id)
            .map(|k| k.meta.clone())
    }

    /// Revokes a key (stored first). `None` if there is no such key; a key
    /// revoked before is returned as it is.
    pub async fn revoke(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError> {
        let Some(current) = self.get(key_id) else {
            return Ok(None);
        };
        if current.revoked_at.is_some() {
            return Ok(Some(current));
        }
        let now = hangar_runtime::now_rfc3339();
        if let Some(store) = &self.store {
            store.revoke_key(key_id, &now).await?;
        }
        let mut keys = self.write();
        let entry = keys.iter_mut().find(|k| k.meta.key_id == key_id);
        Ok(entry.map(|k| {
            k.meta.revoked_at.get_or_insert(now);
            k.meta.clone()
        }))
    }

    /// Keys (metadata only) of `principal_id` (every principal if `None`) of
    /// `kind` (every kind if `None`), oldest first.
    pub fn list(&self, principal_id: Option<&str>, kind: Option<&str>) -> Vec<StoredKey> {
        self.read()
            .iter()
            .filter(|k| principal_id.is_none_or(|p| k.meta.principal_id == p))
            .filter(|k| kind.is_none_or(|kind| k.meta.kind == kind))
            .map(|k| k.meta.clone())
            .collect()
    }

    /// Every principal that has a key, with how many keys are active (not
    /// revoked, not expired).
    pub fn principals(&self) -> BTreeMap<String, usize> {
        let now = time::OffsetDateTime::now_utc();
        let mut out = BTreeMap::new();
        for k in self.read().iter() {
            let active = k.meta.revoked_at.is_none() && k.expires.is_none_or(|t| t > now);
            *out.entry(k.meta.principal_id.clone()).or_insert(0) += usize::from(active);
        }
        out
    }

    /// The principal for a presented key. Every stored hash is compared in
    /// constant time, so timing does not reveal how much of a key matched.
    pub fn authenticate(&self, raw: &str) -> Result<Principal, &'static str> {
        let presented = hash_key(raw);
        let keys = self.read();
        let mut found: Option<&KeyEntry> = None;
        for k in keys.iter() {
            if bool::from(k.hash.ct_eq(&presented)) {
                found = Some(k);
            }
        }
        let k = found.ok_or("invalid API key")?;
        if k.meta.revoked_at.is_some() {
            return Err("API key revoked");
        }
        if k.expires
            .is_some_and(|t| t <= time::OffsetDateTime::now_utc())
        {
            return Err("API key expired");
        }
        Ok(Principal {
            id: k.meta.principal_id.clone(),
            key_id: k.meta.key_id.clone(),
        })
    }
}

/// The principal of the bootstrap admin key.
pub const ADMIN_PRINCIPAL: &str = "admin";

/// At first start with an empty store, creates the admin key: the value of
/// `HANGAR_ADMIN_KEY` if set, otherwise a generated one written to
/// `<data-dir>/admin.key` with mode 0600.
pub async fn bootstrap_admin_key(
    ring: &KeyRing,
    store: &Store,
    data_dir: &Path,
    from_env: Option<String>,
) -> Result<Option<std::path::PathBuf>, StoreError> {
    if store.key_count().await? > 0 {
        return Ok(None);
    }
    let new = |name| NewKey {
        principal_id: ADMIN_PRINCIPAL,
        name,
        kind: KIND_KEY,
        expires_at: None,
    };
    if let Some(raw) = from_env.filter(|k| !k.trim().is_empty()) {
        ring.create(
            new("bootstrap admin key (HANGAR_ADMIN_KEY)"),
            Some(raw.trim().to_owned()),
        )
        .await?;
        tracing::info!("admin key taken from HANGAR_ADMIN_KEY");
        return Ok(None);
    }
    let (_, raw) = ring.create(new("bootstrap admin key"), None).await?;
    let path = data_dir.join("admin.key");
    write_private(&path, &raw)?;
    tracing::info!(path = %path.display(), "generated the admin API key");
    Ok(Some(path))
}

fn write_private(path: &Path, contents: &str) -> Result<(), std::io::Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// What [`require_key`] needs: the keys, and the failed-auth backoff and event
/// sink of [`Access`].
#[derive(Clone)]
pub struct Gate {
    /// The keys.
    pub keys: KeyRing,
    /// Roles, limits, backoff, audit.
    pub access: Access,
}

/// The peer address of a request: from axum's `ConnectInfo` when the server
/// was started with it (`hangar-server` is), else `unknown` (e.g. the router
/// driven directly, or embedded without connect info: all such clients then
/// share one backoff entry).
pub fn client_of(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// Middleware: requires `Authorization: Bearer <key>`.
///
/// A client (peer IP) that presented bad keys more than the backoff's free
/// failures is answered 429 with `Retry-After` until its delay has passed,
/// without its key being looked at or the attempt counted. A request without
/// the header is answered 401 and not counted (it guesses nothing).
pub async fn require_key(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let client = client_of(&req);
    if let Some(wait) = gate.access.auth_blocked(&client) {
        let secs = wait.as_millis().div_ceil(1_000).max(1);
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!("too many failed authentication attempts; retry in {secs} s"),
        )
        .into_response();
        if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        return resp;
    }
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = header.and_then(|h| {
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
    }) else {
        return ApiError::unauthorized("missing Authorization: Bearer <key> header")
            .into_response();
    };
    match gate.keys.authenticate(token.trim()) {
        Ok(principal) => {
            gate.access.auth_succeeded(&client);
            req.extensions_mut()
                .insert(hangar_mcp::CallerId(principal.id.clone()));
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(why) => {
            let delay = gate.access.auth_failed(&client);
            tracing::warn!(reason = why, %client, delay_s = delay.as_secs(), "authentication failed");
            gate.access.security_event(
                SecurityKind::AuthFailed,
                None,
                &client,
                req.method().as_str(),
                req.uri().path(),
                why,
            );
            ApiError::unauthorized(why).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(key_id: &str, principal: &str, raw: &str, expires: Option<&str>) -> StoredKey {
        StoredKey {
            key_id: key_id.into(),
            principal_id: principal.into(),
            name: "n".into(),
            key_hash: hex::encode(hash_key(raw)),
            prefix: "hgr_".into(),
            created_at: String::new(),
            expires_at: expires.map(str::to_owned),
            revoked_at: None,
            kind: KIND_KEY.into(),
        }
    }

    #[test]
    fn keys_look_right_and_authenticate() {
        let k = generate_key();
        assert!(k.starts_with(KEY_PREFIX));
        assert_eq!(k.len(), 4 + 64);
        let ring = KeyRing::default();
        ring.insert(&stored("k1", "alice", &k, None));
        assert_eq!(ring.authenticate(&k).map(|p| p.id), Ok("alice".to_owned()));
        assert!(ring.authenticate("hgr_nope").is_err());
        ring.insert(&stored(
            "k2",
            "bob",
            "hgr_old",
            Some("2000-01-01T00:00:00Z"),
        ));
        assert_eq!(ring.authenticate("hgr_old"), Err("API key expired"));
    }

    #[tokio::test]
    async fn revoked_keys_fail_and_listings_hide_secrets() {
        let ring = KeyRing::default();
        let (key, raw) = ring
            .create(
                NewKey {
                    principal_id: "carol",
                    name: "ci",
                    kind: KIND_TOKEN,
                    expires_at: None,
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(key.prefix.len(), SHOWN_PREFIX_LEN);
        assert!(ring.authenticate(&raw).is_ok());
        assert_eq!(ring.list(Some("carol"), Some(KIND_TOKEN)).len(), 1);
        assert!(ring.list(Some("carol"), Some(KIND_KEY)).is_empty());
        assert_eq!(ring.principals().get("carol"), Some(&1));
        let revoked = ring.revoke(&key.key_id).await.unwrap().unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(ring.authenticate(&raw), Err("API key revoked"));
        assert_eq!(ring.principals().get("carol"), Some(&0));
        assert!(ring.revoke("nope").await.unwrap().is_none());
    }
}
