//! Secrets: values encrypted at rest, listed by name only, injected into
//! provider environments when a provider starts.
//!
//! - **Master key**: 32 bytes from `HANGAR_MASTER_KEY` (base64 or hex) or
//!   from `<data-dir>/master.key` (base64), which [`MasterKey::load_or_create`]
//!   creates with mode 0600 on first start. Anything else is refused.
//! - **At rest**: AES-256-GCM with a fresh random 96-bit nonce per write; the
//!   store keeps `nonce || ciphertext || tag`. The associated data binds the
//!   ciphertext to the secret's name, so a ciphertext copied under another
//!   name does not decrypt. Only ciphertext is kept in memory; a value is
//!   decrypted when a provider's env is resolved and wiped after use.
//! - **References**: a provider's env value may contain `${secret:NAME}`,
//!   as the whole value or inside a longer string, any number of times.
//!   `$${secret:NAME}` stands for the literal text `${secret:NAME}`; any other
//!   `$` is kept as it is. Names match `^[A-Za-z_][A-Za-z0-9_]{0,127}$`.
//! - **Scopes**: a scope is a free label stored with a secret (e.g. a scope
//!   id). An unscoped secret may be used by every provider; a scoped one only
//!   where [`Secrets::resolve_env`] is asked for that same scope (the
//!   [`EnvResolver`] given to the engine decides each provider's scope).
//! - **Never shown**: values appear in no log, error, `Debug` output, event,
//!   listing or export; specs keep the `${secret:...}` references, the
//!   resolved env exists only while the process is spawned.
//! - **Refresh**: [`Engine::refresh_secrets`] restarts the providers that
//!   reference a secret, so they start again with the current values.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use crate::engine::Engine;
use crate::error::StoreError;
use crate::store::{Store, StoredSecret};

#[cfg(test)]
mod tests;

/// Environment variable holding the master key (base64 or hex of 32 bytes).
pub const MASTER_KEY_ENV: &str = "HANGAR_MASTER_KEY";
/// The master key file inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";
/// Longest secret name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest scope label.
pub const MAX_SCOPE_LEN: usize = 128;
/// Largest secret value, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const OPEN: &str = "${secret:";

/// A failure around secrets. Messages name secrets, never their values.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The master key is unusable (wrong encoding or length, or it does not
    /// decrypt the stored secrets).
    #[error("bad master key from {origin}: {reason}")]
    BadMasterKey {
        /// Where the key came from (`HANGAR_MASTER_KEY` or a file path).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored ciphertext did not decrypt.
    #[error("secret '{name}' could not be decrypted (wrong master key or corrupted data)")]
    Decrypt {
        /// The secret.
        name: String,
    },
    /// Encryption failed (should not happen for valid input).
    #[error("secret '{name}' could not be encrypted")]
    Encrypt {
        /// The secret.
        name: String,
    },
    /// A provider's env references a secret that does not exist.
    #[error("secret '{name}' is not defined (referenced by env.{var})")]
    Missing {
        /// The secret.
        name: String,
        /// The env variable that references it.
        var: String,
    },
    /// A secret name that does not match `^[A-Za-z_][A-Za-z0-9_]{0,127}$`.
    #[error(
        "invalid secret name {name:?}: use letters, digits and '_', not starting with a digit, at most 128 characters"
    )]
    InvalidName {
        /// The rejected name (cut to 64 characters).
        name: String,
    },
    /// A scope label that is empty, too long or holds control characters.
    #[error("invalid secret scope: {reason}")]
    InvalidScope {
        /// What is wrong with it.
        reason: String,
    },
    /// A value that cannot be a secret (too long, or holds NUL).
    #[error("invalid secret value: {reason}")]
    InvalidValue {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A malformed `${secret:...}` reference in a provider's env.
    #[error("env.{var}: {reason}")]
    BadReference {
        /// The env variable holding it.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret referenced from outside its scope: a provider in a scope gets
    /// only that scope's secrets, an unscoped provider only unscoped ones.
    #[error(
        "secret '{name}' is {} and not available {} (referenced by env.{var})",
        match scope { Some(s) => format!("in scope '{s}'"), None => "unscoped".to_owned() },
        match requested { Some(s) => format!("to providers in scope '{s}'"), None => "to unscoped providers".to_owned() }
    )]
    OutOfScope {
        /// The secret.
        name: String,
        /// The secret's scope.
        scope: Option<String>,
        /// The provider's scope.
        requested: Option<String>,
        /// The env variable that references it.
        var: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Filesystem trouble around the master key file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::Io {
        path: path.to_owned(),
        source,
    }
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Checks a secret name against `^[A-Za-z_][A-Za-z0-9_]{0,127}$`.
pub fn validate_name(name: &str) -> Result<(), SecretError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok
        && name.len() <= MAX_NAME_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        Err(SecretError::InvalidName {
            name: cut(name, 64),
        })
    }
}

fn validate_scope(scope: &str) -> Result<(), SecretError> {
    let reason = if scope.trim().is_empty() {
        "it must not be empty"
    } else if scope.chars().count() > MAX_SCOPE_LEN {
        "it must be at most 128 characters"
    } else if scope.chars().any(char::is_control) {
        "it must not contain control characters"
    } else {
        return Ok(());
    };
    Err(SecretError::InvalidScope {
        reason: reason.to_owned(),
    })
}

fn validate_value(value: &str) -> Result<(), SecretError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(SecretError::InvalidValue {
            reason: "it must be at most 64 KiB",
        });
    }
    if value.contains('\0') {
        return Err(SecretError::InvalidValue {
            reason: "it must not contain NUL (it is passed as an environment variable)",
        });
    }
    Ok(())
}

/// The 256-bit key that encrypts every secret. `Debug` never shows it; it
/// is wiped from memory on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    origin: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A key from raw bytes; `origin` names where it came from in messages.
    pub fn from_bytes(bytes: [u8; KEY_LEN], origin: impl Into<String>) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
            origin: origin.into(),
        }
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate(origin: impl Into<String>) -> Result<Self, SecretError> {
        use rand::TryRngCore;
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes[..])
            .map_err(|e| SecretError::BadMasterKey {
                origin: "the system random generator".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            bytes,
            origin: origin.into(),
        })
    }

    /// Where the key came from (`HANGAR_MASTER_KEY` or the file's path).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A key for another purpose, derived from this one (HMAC-SHA256 of
    /// `label`): the same on every start and every replica sharing the
    /// master key, unrelated to the encryption key itself.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        use hmac::Mac;
        match <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.bytes[..]) {
            Ok(mut mac) => {
                mac.update(label.as_bytes());
                mac.finalize().into_bytes().into()
            }
            // HMAC takes keys of every length; unreachable in practice, and
            // a zero key would only weaken what the label keys, never leak
            // the master key.
            Err(_) => [0u8; 32],
        }
    }

    /// Parses 32 bytes written as 64 hex digits or as base64 (standard or
    /// URL-safe alphabet, padding optional). Surrounding whitespace is
    /// ignored; anything else is refused.
    pub fn parse(text: &str, origin: impl Into<String>) -> Result<Self, SecretError> {
        let origin = origin.into();
        let bad = |reason: String| SecretError::BadMasterKey {
            origin: origin.clone(),
            reason: format!("{reason}; expected 32 bytes as base64 or as 64 hex digits"),
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let (bytes, encoding) = if t.bytes().all(|b| b.is_ascii_hexdigit()) {
            if !t.len().is_multiple_of(2) {
                return Err(bad("it is hex with an odd number of digits".into()));
            }
            let decoded = hex::decode(t).map_err(|_| bad("it is not valid hex".into()))?;
            (Zeroizing::new(decoded), "hex")
        } else {
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            let decoded = engines
                .iter()
                .find_map(|e| e.decode(t).ok())
                .ok_or_else(|| bad("it is neither base64 nor hex".into()))?;
            (Zeroizing::new(decoded), "base64")
        };
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            bad(format!(
                "it is {encoding} of {} bytes, not {KEY_LEN}",
                bytes.len()
            ))
        })?;
        Ok(Self::from_bytes(key, origin))
    }

    /// The key from `env_value` (the value of `HANGAR_MASTER_KEY`) when set,
    /// else from `<data_dir>/master.key`, which is created (mode 0600, 32
    /// random bytes in base64) if it does not exist. Returns the key and, when
    /// the file was created now, its path.
    pub fn load_or_create(
        data_dir: &Path,
        env_value: Option<String>,
    ) -> Result<(Self, Option<PathBuf>), SecretError> {
        if let Some(value) = env_value {
            let value = Zeroizing::new(value);
            return Ok((Self::parse(&value, MASTER_KEY_ENV)?, None));
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        if let Some(key) = Self::read_file(&path)? {
            return Ok((key, None));
        }
        std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
        let key = Self::generate(path.display().to_string())?;
        if key.create_file(&path)? {
            Ok((key, Some(path)))
        } else {
            // Another process created it first: use theirs.
            let key = Self::read_file(&path)?.ok_or_else(|| SecretError::Io {
                path: path.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
            Ok((key, None))
        }
    }

    /// [`Self::load_or_create`] with `HANGAR_MASTER_KEY` read from this
    /// process's environment (a value that is not UTF-8 is refused).
    pub fn from_environment(data_dir: &Path) -> Result<(Self, Option<PathBuf>), SecretError> {
        let env_value = match std::env::var_os(MASTER_KEY_ENV) {
            None => None,
            Some(v) => Some(v.into_string().map_err(|_| SecretError::BadMasterKey {
                origin: MASTER_KEY_ENV.into(),
                reason: "it is not valid UTF-8".into(),
            })?),
        };
        Self::load_or_create(data_dir, env_value)
    }

    fn read_file(path: &Path) -> Result<Option<Self>, SecretError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path)(e)),
        };
        warn_if_exposed(path);
        Self::parse(&text, path.display().to_string()).map(Some)
    }

    /// Writes the key to `path` unless it exists: a temporary file (0600,
    /// synced) is linked into place, so the key file is never seen half
    /// written. False if `path` existed already.
    fn create_file(&self, path: &Path) -> Result<bool, SecretError> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension(format!(
            "key.tmp-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(*self.bytes));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(encoded.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        };
        let result = write().and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match result {
            Ok(()) => {
                if let Some(dir) = path.parent()
                    && let Ok(d) = std::fs::File::open(dir)
                {
                    let _ = d.sync_all();
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_error(path)(e)),
        }
    }

    fn cipher(&self) -> Result<Aes256Gcm, SecretError> {
        Aes256Gcm::new_from_slice(&self.bytes[..]).map_err(|_| SecretError::BadMasterKey {
            origin: self.origin.clone(),
            reason: "not a 256-bit key".into(),
        })
    }
}

fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = %format!("{mode:o}"), "master key file is readable by others; chmod 600 it");
        }
    }
}

/// What is shown about a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    /// The name used in `${secret:NAME}`.
    pub name: String,
    /// The scope, if the secret is scoped.
    pub scope: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

struct Entry {
    info: SecretInfo,
    ciphertext: Vec<u8>,
}

struct Inner {
    cipher: Aes256Gcm,
    store: Option<Store>,
    entries: RwLock<BTreeMap<String, Entry>>,
    /// Serializes writes so the store and the map change in the same order.
    writes: tokio::sync::Mutex<()>,
}

/// The secrets service: encrypted values (in the store when there is one,
/// else in memory only), listing by name, env resolution. Cheap to clone.
#[derive(Clone)]
pub struct Secrets {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("count", &self.entries().len())
            .finish_non_exhaustive()
    }
}

fn aad(name: &str) -> Vec<u8> {
    format!("hangar/secret/v1/{name}").into_bytes()
}

/// What a sealed row starts with.
const SEALED_PREFIX: &str = "enc1:";

/// Encrypts stored rows that may hold credentials written as literal values
/// (provider specs with env and headers, catalog entries), under a key derived
/// from the master key; each row's ciphertext is bound to its table and id.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// The sealer of rows at rest for `master`.
    pub fn new(master: &MasterKey) -> Result<Self, SecretError> {
        let key = Zeroizing::new(master.derive("hangar/rows-at-rest/v1"));
        let cipher =
            Aes256Gcm::new_from_slice(&key[..]).map_err(|_| SecretError::BadMasterKey {
                origin: master.origin.clone(),
                reason: "not a 256-bit key".into(),
            })?;
        Ok(Self { cipher })
    }

    /// `enc1:` and the base64 of nonce and ciphertext of `plain`, bound to `row`.
    pub fn seal(&self, row: &str, plain: &str) -> Result<String, SecretError> {
        let sealed = encrypt(&self.cipher, row, plain.as_bytes())?;
        Ok(format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(sealed)
        ))
    }

    /// Whether stored text is sealed.
    pub fn is_sealed(text: &str) -> bool {
        text.starts_with(SEALED_PREFIX)
    }

    /// The plain text of a row [`Sealer::seal`] made (bound to the same `row`).
    pub fn open(&self, row: &str, text: &str) -> Result<Zeroizing<String>, SecretError> {
        let fail = || SecretError::Decrypt {
            name: row.to_owned(),
        };
        let body = text.strip_prefix(SEALED_PREFIX).ok_or_else(fail)?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| fail())?;
        decrypt(&self.cipher, row, &data)
    }
}

fn encrypt(cipher: &Aes256Gcm, name: &str, value: &[u8]) -> Result<Vec<u8>, SecretError> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let aad = aad(name);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: value,
                aad: &aad,
            },
        )
        .map_err(|_| SecretError::Encrypt {
            name: name.to_owned(),
        })?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn decrypt(cipher: &Aes256Gcm, name: &str, data: &[u8]) -> Result<Zeroizing<String>, SecretError> {
    let fail = || SecretError::Decrypt {
        name: name.to_owned(),
    };
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(fail());
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let aad = aad(name);
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| fail())?;
    String::from_utf8(plain).map(Zeroizing::new).map_err(|e| {
        let mut bytes = e.into_bytes();
        bytes.zeroize();
        fail()
    })
}

/// One part of an env value.
enum Piece<'a> {
    Text(&'a str),
    Secret(&'a str),
}

/// A resolved part of an env value; decrypted values are wiped on drop.
enum Part<'a> {
    Text(&'a str),
    Value(Zeroizing<String>),
}

impl Part<'_> {
    fn as_str(&self) -> &str {
        match self {
            Self::Text(t) => t,
            Self::Value(v) => v,
        }
    }
}

/// Splits an env value into text and `${secret:NAME}` references.
fn parse<'a>(var: &str, value: &'a str) -> Result<Vec<Piece<'a>>, SecretError> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find(OPEN) {
        if i > 0 && rest.as_bytes()[i - 1] == b'$' {
            // `$${secret:` is the escape for a literal `${secret:`.
            out.push(Piece::Text(&rest[..i - 1]));
            out.push(Piece::Text(OPEN));
            rest = &rest[i + OPEN.len()..];
            continue;
        }
        out.push(Piece::Text(&rest[..i]));
        let after = &rest[i + OPEN.len()..];
        let end = after.find('}').ok_or_else(|| SecretError::BadReference {
            var: var.to_owned(),
            reason: "unterminated `${secret:` reference (missing `}`)".into(),
        })?;
        let name = &after[..end];
        validate_name(name).map_err(|e| SecretError::BadReference {
            var: var.to_owned(),
            reason: e.to_string(),
        })?;
        out.push(Piece::Secret(name));
        rest = &after[end + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// The secret names an env references (sorted, each once). Malformed
/// references are skipped: [`Secrets::resolve_env`] reports them.
pub fn references(env: &BTreeMap<String, String>) -> Vec<String> {
    let mut names = BTreeSet::new();
    for (var, value) in env {
        if let Ok(pieces) = parse(var, value) {
            for p in pieces {
                if let Piece::Secret(name) = p {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    names.into_iter().collect()
}

/// Overwrites every value of a resolved env before it is dropped.
pub(crate) fn wipe(env: &mut BTreeMap<String, String>) {
    for v in env.values_mut() {
        v.zeroize();
    }
}

impl Secrets {
    /// The service over `store` (none: in memory only), loading the stored
    /// secrets. Fails if the key decrypts none of them (a wrong master key);
    /// secrets that alone do not decrypt are reported in the log by name.
    pub async fn new(store: Option<Store>, key: MasterKey) -> Result<Self, SecretError> {
        let cipher = key.cipher()?;
        let stored = match &store {
            Some(s) => s.secrets().await?,
            None => Vec::new(),
        };
        let broken: Vec<&str> = stored
            .iter()
            .filter(|s| decrypt(&cipher, &s.name, &s.ciphertext).is_err())
            .map(|s| s.name.as_str())
            .collect();
        if !stored.is_empty() && broken.len() == stored.len() {
            return Err(SecretError::BadMasterKey {
                origin: key.origin.clone(),
                reason: format!(
                    "it decrypts none of the {} stored secrets ({}); use the key they were written with",
                    stored.len(),
                    cut(&broken.join(", "), 200)
                ),
            });
        }
        if !broken.is_empty() {
            tracing::warn!(secrets = ?broken, "stored secrets that do not decrypt with the master key");
        }
        let entries = stored
            .into_iter()
            .map(|s| {
                (
                    s.name.clone(),
                    Entry {
                        info: SecretInfo {
                            name: s.name,
                            scope: s.scope,
                            created_at: s.created_at,
                            updated_at: s.updated_at,
                        },
                        ciphertext: s.ciphertext,
                    },
                )
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                cipher,
                store,
                entries: RwLock::new(entries),
                writes: tokio::sync::Mutex::new(()),
            }),
        })
    }

    fn entries(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn entries_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates or replaces a secret (a replaced secret takes the new scope,
    /// `None` making it unscoped). Committed to the store before it returns.
    /// Returns what is shown about it and whether it was created.
    pub async fn put(
        &self,
        name: &str,
        value: &str,
        scope: Option<String>,
    ) -> Result<(SecretInfo, bool), SecretError> {
        validate_name(name)?;
        if let Some(s) = &scope {
            validate_scope(s)?;
        }
        validate_value(value)?;
        let _writing = self.inner.writes.lock().await;
        let ciphertext = encrypt(&self.inner.cipher, name, value.as_bytes())?;
        let now = crate::now_rfc3339();
        let existing = self.entries().get(name).map(|e| e.info.created_at.clone());
        let created = existing.is_none();
        let info = SecretInfo {
            name: name.to_owned(),
            scope,
            created_at: existing.unwrap_or_else(|| now.clone()),
            updated_at: now,
        };
        if let Some(store) = &self.inner.store {
            store
                .put_secret(StoredSecret {
                    name: info.name.clone(),
                    scope: info.scope.clone(),
                    ciphertext: ciphertext.clone(),
                    created_at: info.created_at.clone(),
                    updated_at: info.updated_at.clone(),
                })
                .await?;
        }
        self.entries_mut().insert(
            name.to_owned(),
            Entry {
                info: info.clone(),
                ciphertext,
            },
        );
        tracing::info!(secret = %name, created, "secret stored");
        Ok((info, created))
    }

    /// Makes every secret of `scope` unscoped (the scope is being deleted);
    /// returns their names. Values are untouched (same ciphertext).
    pub async fn unscope(&self, scope: &str) -> Result<Vec<String>, SecretError> {
        let _writing = self.inner.writes.lock().await;
        let scoped: Vec<(SecretInfo, Vec<u8>)> = self
            .entries()
            .values()
            .filter(|e| e.info.scope.as_deref() == Some(scope))
            .map(|e| (e.info.clone(), e.ciphertext.clone()))
            .collect();
        let mut names = Vec::with_capacity(scoped.len());
        for (mut info, ciphertext) in scoped {
            info.scope = None;
            info.updated_at = crate::now_rfc3339();
            if let Some(store) = &self.inner.store {
                store
                    .put_secret(StoredSecret {
                        name: info.name.clone(),
                        scope: None,
                        ciphertext: ciphertext.clone(),
                        created_at: info.created_at.clone(),
                        updated_at: info.updated_at.clone(),
                    })
                    .await?;
            }
            names.push(info.name.clone());
            self.entries_mut()
                .insert(info.name.clone(), Entry { info, ciphertext });
        }
        Ok(names)
    }

    /// Deletes a secret; true if it existed. Running providers keep the value
    /// they were started with until they restart.
    pub async fn delete(&self, name: &str) -> Result<bool, SecretError> {
        let _writing = self.inner.writes.lock().await;
        let mut existed = self.entries().contains_key(name);
        if let Some(store) = &self.inner.store {
            existed |= store.delete_secret(name).await?;
        }
        self.entries_mut().remove(name);
        if existed {
            tracing::info!(secret = %name, "secret deleted");
        }
        Ok(existed)
    }

    /// Every secret, by name (never values).
    pub fn list(&self) -> Vec<SecretInfo> {
        self.entries().values().map(|e| e.info.clone()).collect()
    }

    /// One secret (never its value).
    pub fn get(&self, name: &str) -> Option<SecretInfo> {
        self.entries().get(name).map(|e| e.info.clone())
    }

    /// The secret names `env` references (see [`references`]).
    pub fn references(env: &BTreeMap<String, String>) -> Vec<String> {
        references(env)
    }

    /// `env` with every `${secret:NAME}` replaced by the secret's value (and
    /// `$${secret:` by `${secret:`), for a provider in `scope` (`None`:
    /// unscoped). Unscoped secrets are available everywhere; a scoped one
    /// only for the same scope. The first missing, out-of-scope or
    /// undecryptable secret, or malformed reference, fails the whole env.
    pub fn resolve_env(
        &self,
        env: &BTreeMap<String, String>,
        scope: Option<&str>,
    ) -> Result<BTreeMap<String, String>, SecretError> {
        let entries = self.entries();
        let mut out = BTreeMap::new();
        for (var, value) in env {
            if !value.contains(OPEN) {
                out.insert(var.clone(), value.clone());
                continue;
            }
            match self.resolve_value(&entries, var, value, scope) {
                Ok(v) => {
                    out.insert(var.clone(), v);
                }
                Err(e) => {
                    wipe(&mut out);
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    fn resolve_value(
        &self,
        entries: &BTreeMap<String, Entry>,
        var: &str,
        value: &str,
        scope: Option<&str>,
    ) -> Result<String, SecretError> {
        // Decrypted values are wiped on drop; the result is allocated once at
        // its final size, so no partial copy is left behind by a reallocation.
        let mut parts: Vec<Part<'_>> = Vec::new();
        for piece in parse(var, value)? {
            match piece {
                Piece::Text(t) => parts.push(Part::Text(t)),
                Piece::Secret(name) => {
                    let entry = entries.get(name).ok_or_else(|| SecretError::Missing {
                        name: name.to_owned(),
                        var: var.to_owned(),
                    })?;
                    if entry.info.scope.as_deref() != scope {
                        return Err(SecretError::OutOfScope {
                            name: name.to_owned(),
                            scope: entry.info.scope.clone(),
                            requested: scope.map(str::to_owned),
                            var: var.to_owned(),
                        });
                    }
                    parts.push(Part::Value(decrypt(
                        &self.inner.cipher,
                        name,
                        &entry.ciphertext,
                    )?));
                }
            }
        }
        let mut resolved = String::with_capacity(parts.iter().map(|p| p.as_str().len()).sum());
        for p in &parts {
            resolved.push_str(p.as_str());
        }
        Ok(resolved)
    }

    /// An [`EnvResolver`] for the engine: each provider gets the secrets of
    /// its own scope (unscoped providers: unscoped secrets).
    pub fn env_resolver(&self) -> EnvResolver {
        let secrets = self.clone();
        EnvResolver::new(move |_provider, scope, env| secrets.resolve_env(env, scope))
    }
}

type ResolveFn = dyn Fn(
        &str,
        Option<&str>,
        &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, SecretError>
    + Send
    + Sync;

/// Turns a provider's env (with `${secret:...}` references) into the env its
/// process gets, given the provider id and scope. Called on every start; a failure
/// fails the start. See [`Engine::set_env_resolver`].
#[derive(Clone)]
pub struct EnvResolver(Arc<ResolveFn>);

impl std::fmt::Debug for EnvResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvResolver(..)")
    }
}

impl EnvResolver {
    /// Wraps a resolving function.
    pub fn new(
        f: impl Fn(
            &str,
            Option<&str>,
            &BTreeMap<String, String>,
        ) -> Result<BTreeMap<String, String>, SecretError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }

    /// Resolves `env` for `provider` in `scope`.
    pub fn resolve(
        &self,
        provider: &str,
        scope: Option<&str>,
        env: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, SecretError> {
        (self.0)(provider, scope, env)
    }
}

/// What [`Engine::refresh_secrets`] did to one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshOutcome {
    /// The provider.
    pub provider: String,
    /// Whether it was restarted (false: not started, it picks up the values
    /// at its next start).
    pub restarted: bool,
    /// Why the restart failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Engine {
    /// Re-injects secrets: every provider whose env references `secret` (any
    /// secret when `None`) and that is not cold is restarted, so its process
    /// gets the current values; cold ones get them at their next start.
    /// Returns one outcome per referencing provider, by id.
    pub async fn refresh_secrets(&self, secret: Option<&str>) -> Vec<RefreshOutcome> {
        let targets: Vec<_> = self
            .providers_snapshot()
            .into_iter()
            .filter(|p| {
                let refs = references(&p.spec().env);
                match secret {
                    Some(name) => refs.iter().any(|r| r == name),
                    None => !refs.is_empty(),
                }
            })
            .collect();
        let restarts = targets.iter().map(|p| async move {
            if p.state() == hangar_core::ProviderState::Cold {
                return RefreshOutcome {
                    provider: p.id().to_owned(),
                    restarted: false,
                    error: None,
                };
            }
            let result = p.restart().await;
            if let Err(e) = &result {
                tracing::warn!(provider = %p.id(), error = %e, "restart after secret refresh failed");
            }
            RefreshOutcome {
                provider: p.id().to_owned(),
                restarted: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
            }
        });
        futures::future::join_all(restarts).await
    }
}
