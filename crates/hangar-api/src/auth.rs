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
    /// Whether that key is a personal token (tokens never mint tokens).
    pub via_token: bool,
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
    /// For a token: the key that mints it (the token dies with it).
    pub parent_key_id: Option<&'a str>,
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
            parent_key_id: new.parent_key_id.map(str::to_owned),
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

    /// Revokes a key and every token minted from it (stored first). `None`
    /// if there is no such key; a key revoked before is returned as it is
    /// (its tokens are revoked all the same).
    pub async fn revoke(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError> {
        let Some(current) = self.get(key_id) else {
            return Ok(None);
        };
        let now = hangar_runtime::now_rfc3339();
        for id in &self.minted_from(key_id) {
            let live = self
                .read()
                .iter()
                .any(|k| &k.meta.key_id == id && k.meta.revoked_at.is_none());
            if !live {
                continue;
            }
            if let Some(store) = &self.store {
                store.revoke_key(id, &now).await?;
            }
            let mut keys = self.write();
            if let Some(k) = keys.iter_mut().find(|k| &k.meta.key_id == id) {
                k.meta.revoked_at.get_or_insert_with(|| now.clone());
            }
        }
        Ok(self.get(key_id).or(Some(current)))
    }

    /// Ids of the keys revoked with `key_id`: it, then what it minted (and
    /// what those minted, for tokens stored before minting from tokens was
    /// refused).
    pub fn minted_from(&self, key_id: &str) -> Vec<String> {
        let keys = self.read();
        let mut out = vec![key_id.to_owned()];
        let mut i = 0;
        while let Some(id) = out.get(i).cloned() {
            out.extend(
                keys.iter()
                    .filter(|k| k.meta.parent_key_id.as_deref() == Some(id.as_str()))
                    .map(|k| k.meta.key_id.clone()),
            );
            i += 1;
        }
        out
    }

    /// Tokens of `principal_id` that still work (not revoked, not expired).
    pub fn active_tokens(&self, principal_id: &str) -> usize {
        let now = time::OffsetDateTime::now_utc();
        self.read()
            .iter()
            .filter(|k| {
                k.meta.kind == KIND_TOKEN
                    && k.meta.principal_id == principal_id
                    && k.meta.revoked_at.is_none()
                    && k.expires.is_none_or(|t| t > now)
            })
            .count()
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

    /// Whether `raw` is a stored key (working or not).
    pub fn knows(&self, raw: &str) -> bool {
        let presented = hash_key(raw);
        self.read().iter().fold(false, |found, k| {
            found | bool::from(k.hash.ct_eq(&presented))
        })
    }

    /// Whether the key with this id still works (not revoked or expired, nor
    /// the keys that minted it): long-lived streams check it as they go.
    pub fn still_valid(&self, key_id: &str) -> bool {
        let keys = self.read();
        keys.iter()
            .find(|k| k.meta.key_id == key_id)
            .is_some_and(|k| usable(k, &keys).is_ok())
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
        usable(k, &keys)?;
        Ok(Principal {
            id: k.meta.principal_id.clone(),
            key_id: k.meta.key_id.clone(),
            via_token: k.meta.kind == KIND_TOKEN,
        })
    }
}

/// The principal of the bootstrap admin key.
pub const ADMIN_PRINCIPAL: &str = "admin";

/// Shortest `HANGAR_ADMIN_KEY` accepted.
pub const MIN_ADMIN_KEY_LEN: usize = 32;
/// Fewest distinct characters in `HANGAR_ADMIN_KEY` (refuses `aaaa…`).
const MIN_ADMIN_KEY_DISTINCT: usize = 10;
/// Name of the key created from `HANGAR_ADMIN_KEY`.
const ENV_KEY_NAME: &str = "bootstrap admin key (HANGAR_ADMIN_KEY)";

/// Why the admin key could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `HANGAR_ADMIN_KEY` is too easy to guess.
    #[error(
        "HANGAR_ADMIN_KEY is too weak: use at least {MIN_ADMIN_KEY_LEN} random characters \
         (e.g. `echo hgr_$(openssl rand -hex 32)`)"
    )]
    Weak,
    /// `HANGAR_ADMIN_KEY` is a key that was revoked or expired.
    #[error("HANGAR_ADMIN_KEY is a revoked or expired key: {0}; choose a new value")]
    Dead(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sets up the admin key.
///
/// With `HANGAR_ADMIN_KEY` (at least 32 characters, not repetitive): that
/// value is the admin principal's key. When it differs from the value of the
/// previous start, the new value becomes the key and the previous
/// `HANGAR_ADMIN_KEY` key is revoked (a rotation, logged). Without it, at
/// first start with an empty store, a generated key is written to
/// `<data-dir>/admin.key` with mode 0600 (its path is returned).
pub async fn bootstrap_admin_key(
    ring: &KeyRing,
    store: &Store,
    data_dir: &Path,
    from_env: Option<String>,
) -> Result<Option<std::path::PathBuf>, BootstrapError> {
    let new = |name| NewKey {
        principal_id: ADMIN_PRINCIPAL,
        name,
        kind: KIND_KEY,
        expires_at: None,
        parent_key_id: None,
    };
    if let Some(raw) = from_env
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
    {
        let distinct: std::collections::BTreeSet<char> = raw.chars().collect();
        if raw.chars().count() < MIN_ADMIN_KEY_LEN || distinct.len() < MIN_ADMIN_KEY_DISTINCT {
            return Err(BootstrapError::Weak);
        }
        match ring.authenticate(&raw) {
            Ok(_) => return Ok(None),
            Err(why) if ring.knows(&raw) => return Err(BootstrapError::Dead(why)),
            Err(_) => {}
        }
        let previous: Vec<StoredKey> = ring
            .list(Some(ADMIN_PRINCIPAL), Some(KIND_KEY))
            .into_iter()
            .filter(|k| k.name == ENV_KEY_NAME && k.revoked_at.is_none())
            .collect();
        ring.create(new(ENV_KEY_NAME), Some(raw)).await?;
        for old in &previous {
            ring.revoke(&old.key_id).await?;
        }
        if previous.is_empty() {
            tracing::info!("admin key taken from HANGAR_ADMIN_KEY");
        } else {
            tracing::warn!(
                revoked = previous.len(),
                "HANGAR_ADMIN_KEY changed: the new value is the admin key, the previous one is revoked"
            );
        }
        return Ok(None);
    }
    if store.key_count().await? > 0 {
        return Ok(None);
    }
    let (_, raw) = ring.create(new("bootstrap admin key"), None).await?;
    let path = data_dir.join("admin.key");
    hangar_runtime::files::write_private_atomic(&path, format!("{raw}\n").as_bytes())
        .map_err(StoreError::from)?;
    tracing::info!(path = %path.display(), "generated the admin API key");
    Ok(Some(path))
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
/// The key is always checked first: a valid key works whatever happened
/// before from the same address (another client's bad keys cannot lock it
/// out), and a success does not clear that address's failures (a valid key
/// cannot be used to reset the count between guesses); only time does. A
/// bad key from a client (peer IP) past the backoff's free failures is
/// answered 429 with `Retry-After` while its delay runs. A request without
/// the header is answered 401 and not counted (it guesses nothing).
pub async fn require_key(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(req.headers()).map(str::to_owned) else {
        return ApiError::unauthorized("missing Authorization: Bearer <key> header")
            .into_response();
    };
    let client = client_of(&req);
    match gate.keys.authenticate(token.trim()) {
        Ok(principal) => {
            req.extensions_mut()
                .insert(hangar_mcp::CallerId(principal.id.clone()));
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(why) => {
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

/// The subprotocol prefix that carries a key on a WebSocket handshake
/// (`Sec-WebSocket-Protocol: hangar.v1, bearer.hgr_...`): browsers can't
/// set `Authorization` on a WebSocket.
pub const WS_BEARER_PREFIX: &str = "bearer.";

/// The presented key: `Authorization: Bearer <key>`, or on a WebSocket
/// upgrade a `bearer.<key>` subprotocol.
fn bearer(h: &http::HeaderMap) -> Option<&str> {
    if let Some(v) = h
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "));
    }
    let upgrade = h
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return None;
    }
    h.get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(WS_BEARER_PREFIX))
}

/// Why `k` can't be used now, if it can't: revoked or expired, itself or
/// a key in its minting chain.
fn usable(k: &KeyEntry, keys: &[KeyEntry]) -> Result<(), &'static str> {
    let now = time::OffsetDateTime::now_utc();
    if k.meta.revoked_at.is_some() {
        return Err("API key revoked");
    }
    if k.expires.is_some_and(|t| t <= now) {
        return Err("API key expired");
    }
    // A token works only while the key that minted it does (and that
    // key's own parent, for chains stored by older versions).
    let mut parent = k.meta.parent_key_id.as_deref();
    let mut depth = 0;
    while let Some(id) = parent {
        let Some(p) = keys.iter().find(|p| p.meta.key_id == id) else {
            return Err("API key revoked: the key that minted it is gone");
        };
        if p.meta.revoked_at.is_some() {
            return Err("API key revoked: the key that minted it was revoked");
        }
        if p.expires.is_some_and(|t| t <= now) {
            return Err("API key expired: the key that minted it expired");
        }
        parent = p.meta.parent_key_id.as_deref();
        depth += 1;
        if depth > 16 {
            return Err("API key revoked: its chain of minting keys is too long");
        }
    }
    Ok(())
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
            parent_key_id: None,
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
                    parent_key_id: None,
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
