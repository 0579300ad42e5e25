//! API keys: `hgr_<random>`, stored as SHA-256 hashes, compared in constant
//! time, bootstrapped at first start.

use std::path::Path;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hangar_runtime::{Store, StoreError, StoredKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Prefix of every Hangar key.
pub const KEY_PREFIX: &str = "hgr_";

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
    key_id: String,
    principal_id: String,
    expires_at: Option<time::OffsetDateTime>,
    revoked: bool,
}

/// The in-memory set of key hashes, loaded from the store.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Arc<RwLock<Vec<KeyEntry>>>,
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

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

impl KeyRing {
    /// Loads every key from the store.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let ring = Self::default();
        for k in store.keys().await? {
            ring.insert(&k);
        }
        Ok(ring)
    }

    fn insert(&self, k: &StoredKey) {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(&k.key_hash, &mut hash).is_err() {
            tracing::warn!(key_id = %k.key_id, "skipping stored key with a malformed hash");
            return;
        }
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(KeyEntry {
                hash,
                key_id: k.key_id.clone(),
                principal_id: k.principal_id.clone(),
                expires_at: k.expires_at.as_deref().and_then(parse_time),
                revoked: k.revoked_at.is_some(),
            });
    }

    /// Creates, stores and returns a new key for `principal_id`.
    pub async fn create(
        &self,
        store: &Store,
        principal_id: &str,
        name: &str,
        raw: Option<String>,
    ) -> Result<(StoredKey, String), StoreError> {
        let raw = raw.unwrap_or_else(generate_key);
        let mut id = [0u8; 8];
        rand::rng().fill_bytes(&mut id);
        let stored = StoredKey {
            key_id: hex::encode(id),
            principal_id: principal_id.to_owned(),
            name: name.to_owned(),
            key_hash: hex::encode(hash_key(&raw)),
            prefix: raw.chars().take(8).collect(),
            created_at: hangar_runtime::now_rfc3339(),
            expires_at: None,
            revoked_at: None,
        };
        store.put_key(stored.clone()).await?;
        self.insert(&stored);
        Ok((stored, raw))
    }

    /// The principal for a presented key. Every stored hash is compared in
    /// constant time, so timing does not reveal how much of a key matched.
    pub fn authenticate(&self, raw: &str) -> Result<Principal, &'static str> {
        let presented = hash_key(raw);
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut found: Option<&KeyEntry> = None;
        for k in keys.iter() {
            if bool::from(k.hash.ct_eq(&presented)) {
                found = Some(k);
            }
        }
        let k = found.ok_or("invalid API key")?;
        if k.revoked {
            return Err("API key revoked");
        }
        if k.expires_at
            .is_some_and(|t| t <= time::OffsetDateTime::now_utc())
        {
            return Err("API key expired");
        }
        Ok(Principal {
            id: k.principal_id.clone(),
            key_id: k.key_id.clone(),
        })
    }
}

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
    if let Some(raw) = from_env.filter(|k| !k.trim().is_empty()) {
        ring.create(
            store,
            "admin",
            "bootstrap admin key (HANGAR_ADMIN_KEY)",
            Some(raw.trim().to_owned()),
        )
        .await?;
        tracing::info!("admin key taken from HANGAR_ADMIN_KEY");
        return Ok(None);
    }
    let (_, raw) = ring
        .create(store, "admin", "bootstrap admin key", None)
        .await?;
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

/// Middleware: requires `Authorization: Bearer <key>`.
pub async fn require_key(State(ring): State<KeyRing>, mut req: Request, next: Next) -> Response {
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
    match ring.authenticate(token.trim()) {
        Ok(principal) => {
            req.extensions_mut()
                .insert(hangar_mcp::CallerId(principal.id.clone()));
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(why) => {
            tracing::warn!(reason = why, "authentication failed");
            ApiError::unauthorized(why).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_right_and_authenticate() {
        let k = generate_key();
        assert!(k.starts_with(KEY_PREFIX));
        assert_eq!(k.len(), 4 + 64);
        let ring = KeyRing::default();
        ring.insert(&StoredKey {
            key_id: "k1".into(),
            principal_id: "alice".into(),
            name: "n".into(),
            key_hash: hex::encode(hash_key(&k)),
            prefix: "hgr_".into(),
            created_at: String::new(),
            expires_at: None,
            revoked_at: None,
        });
        assert_eq!(ring.authenticate(&k).map(|p| p.id), Ok("alice".to_owned()));
        assert!(ring.authenticate("hgr_nope").is_err());
        ring.insert(&StoredKey {
            key_id: "k2".into(),
            principal_id: "bob".into(),
            name: "n".into(),
            key_hash: hex::encode(hash_key("hgr_old")),
            prefix: "hgr_".into(),
            created_at: String::new(),
            expires_at: Some("2000-01-01T00:00:00Z".into()),
            revoked_at: None,
        });
        assert_eq!(ring.authenticate("hgr_old"), Err("API key expired"));
    }
}
