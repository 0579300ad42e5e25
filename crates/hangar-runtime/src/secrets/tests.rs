use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

/// A value distinctive enough to be searched for in files and messages.
const VALUE: &str = "s3cr3t-VALUE-4b1d9e7c0a5f-do-not-leak";

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes([byte; KEY_LEN], "test")
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn in_memory() -> Secrets {
    Secrets::new(None, key(7)).await.unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---- crypto ----

#[test]
fn derived_keys_are_stable_per_label_and_not_the_master_key() {
    let a = key(1).derive("hangar/audit-digest/v1");
    assert_eq!(a, key(1).derive("hangar/audit-digest/v1"));
    assert_ne!(a, key(1).derive("another purpose"));
    assert_ne!(a, key(2).derive("hangar/audit-digest/v1"));
    assert_ne!(a, [1u8; KEY_LEN]);
}

#[test]
fn encrypt_decrypt_round_trip() {
    let cipher = key(1).cipher().unwrap();
    let sealed = encrypt(&cipher, "API_TOKEN", VALUE.as_bytes()).unwrap();
    assert_eq!(sealed.len(), NONCE_LEN + VALUE.len() + TAG_LEN);
    assert!(!contains(&sealed, VALUE.as_bytes()));
    assert_eq!(
        decrypt(&cipher, "API_TOKEN", &sealed).unwrap().as_str(),
        VALUE
    );
    // Empty values are fine too.
    let empty = encrypt(&cipher, "E", b"").unwrap();
    assert_eq!(decrypt(&cipher, "E", &empty).unwrap().as_str(), "");
}

#[test]
fn every_write_uses_a_fresh_nonce() {
    let cipher = key(1).cipher().unwrap();
    let a = encrypt(&cipher, "N", VALUE.as_bytes()).unwrap();
    let b = encrypt(&cipher, "N", VALUE.as_bytes()).unwrap();
    assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
    assert_ne!(a, b);
}

#[test]
fn a_wrong_key_does_not_decrypt() {
    let sealed = encrypt(&key(1).cipher().unwrap(), "N", VALUE.as_bytes()).unwrap();
    let err = decrypt(&key(2).cipher().unwrap(), "N", &sealed).unwrap_err();
    assert!(matches!(err, SecretError::Decrypt { ref name } if name == "N"));
    assert!(!err.to_string().contains(VALUE));
}

#[test]
fn tampering_anywhere_is_detected() {
    let cipher = key(1).cipher().unwrap();
    let sealed = encrypt(&cipher, "N", VALUE.as_bytes()).unwrap();
    // Nonce, ciphertext body, tag.
    for i in [0, NONCE_LEN + 3, sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert!(decrypt(&cipher, "N", &bad).is_err(), "byte {i} flipped");
    }
    // Truncated and too short.
    assert!(decrypt(&cipher, "N", &sealed[..sealed.len() - 1]).is_err());
    assert!(decrypt(&cipher, "N", &sealed[..NONCE_LEN]).is_err());
    assert!(decrypt(&cipher, "N", &[]).is_err());
}

#[test]
fn associated_data_binds_the_name() {
    let cipher = key(1).cipher().unwrap();
    let sealed = encrypt(&cipher, "FIRST", VALUE.as_bytes()).unwrap();
    assert!(decrypt(&cipher, "FIRST", &sealed).is_ok());
    let err = decrypt(&cipher, "SECOND", &sealed).unwrap_err();
    assert!(matches!(err, SecretError::Decrypt { ref name } if name == "SECOND"));
}

#[tokio::test]
async fn a_ciphertext_copied_to_another_name_does_not_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hangar.db")).unwrap();
    let secrets = Secrets::new(Some(store.clone()), key(3)).await.unwrap();
    secrets.put("REAL", VALUE, None).await.unwrap();
    secrets.put("OTHER", "other", None).await.unwrap();
    let copied = store.secret_ciphertext("REAL").await.unwrap().unwrap();
    let now = crate::now_rfc3339();
    store
        .put_secret(StoredSecret {
            name: "OTHER".into(),
            scope: None,
            ciphertext: copied,
            created_at: now.clone(),
            updated_at: now,
        })
        .await
        .unwrap();
    drop(secrets);
    // One of two secrets is broken: the service starts and names it on use.
    let secrets = Secrets::new(Some(store), key(3)).await.unwrap();
    let err = secrets
        .resolve_env(&env(&[("X", "${secret:OTHER}")]), None)
        .unwrap_err();
    assert!(matches!(err, SecretError::Decrypt { ref name } if name == "OTHER"));
    assert!(!err.to_string().contains(VALUE));
    let ok = secrets
        .resolve_env(&env(&[("X", "${secret:REAL}")]), None)
        .unwrap();
    assert_eq!(ok["X"], VALUE);
}

// ---- storage ----

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn db_files(dir: &Path) -> Vec<PathBuf> {
    ["hangar.db", "hangar.db-wal", "hangar.db-shm"]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

#[tokio::test]
async fn the_database_file_never_holds_the_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hangar.db");
    {
        let store = Store::open(&path).unwrap();
        let secrets = Secrets::new(Some(store.clone()), key(9)).await.unwrap();
        secrets
            .put("API_TOKEN", VALUE, Some("prod".into()))
            .await
            .unwrap();
        // Replaced, then another one deleted: no old page keeps a plaintext.
        secrets
            .put("API_TOKEN", &format!("{VALUE}-v2"), None)
            .await
            .unwrap();
        secrets.put("GONE", VALUE, None).await.unwrap();
        assert!(secrets.delete("GONE").await.unwrap());
        // While open: the main file and the WAL.
        let wal = file_bytes(&dir.path().join("hangar.db-wal"));
        assert!(!wal.is_empty(), "the writes went through the WAL");
        for f in db_files(dir.path()) {
            assert!(!contains(&file_bytes(&f), VALUE.as_bytes()), "{f:?}");
        }
        assert!(
            store
                .secret_ciphertext("API_TOKEN")
                .await
                .unwrap()
                .is_some()
        );
    }
    // Closed (the last connection checkpoints the WAL into the main file).
    let db = file_bytes(&path);
    assert!(contains(&db, b"API_TOKEN"), "the name is stored in clear");
    for f in db_files(dir.path()) {
        assert!(!contains(&file_bytes(&f), VALUE.as_bytes()), "{f:?}");
    }
    // And it all comes back with the same key.
    let secrets = Secrets::new(Some(Store::open(&path).unwrap()), key(9))
        .await
        .unwrap();
    let names: Vec<String> = secrets.list().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["API_TOKEN"]);
    let resolved = secrets
        .resolve_env(&env(&[("T", "${secret:API_TOKEN}")]), None)
        .unwrap();
    assert_eq!(resolved["T"], format!("{VALUE}-v2"));
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hangar.db")).unwrap();
    let secrets = Secrets::new(Some(store.clone()), key(1)).await.unwrap();
    secrets.put("A", VALUE, None).await.unwrap();
    secrets.put("B", VALUE, None).await.unwrap();
    let err = Secrets::new(Some(store.clone()), key(2)).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SecretError::BadMasterKey { .. }), "{msg}");
    assert!(
        msg.contains("decrypts none of the 2 stored secrets (A, B)"),
        "{msg}"
    );
    assert!(!msg.contains(VALUE));
    // An empty store accepts any key.
    let empty = Store::open(&dir.path().join("other.db")).unwrap();
    Secrets::new(Some(empty), key(2)).await.unwrap();
}

#[tokio::test]
async fn put_list_get_delete() {
    let secrets = in_memory().await;
    let (info, created) = secrets
        .put("API_TOKEN", VALUE, Some("prod".into()))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(info.scope.as_deref(), Some("prod"));
    assert_eq!(info.created_at, info.updated_at);
    let (again, created) = secrets.put("API_TOKEN", "v2", None).await.unwrap();
    assert!(!created);
    assert_eq!(again.created_at, info.created_at);
    assert_eq!(again.scope, None, "a replace sets the new scope");
    secrets.put("B", "b", None).await.unwrap();
    let names: Vec<String> = secrets.list().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["API_TOKEN", "B"]);
    assert_eq!(secrets.get("B").unwrap().name, "B");
    assert!(secrets.delete("B").await.unwrap());
    assert!(!secrets.delete("B").await.unwrap());
    assert!(!secrets.delete("not a name").await.unwrap());
    assert!(secrets.get("B").is_none());
    // Nothing shown about a secret carries its value.
    secrets.put("SHOWN", VALUE, None).await.unwrap();
    let shown = format!(
        "{:?} {:?} {}",
        secrets,
        secrets.list(),
        serde_json::to_string(&secrets.list()).unwrap()
    );
    assert!(!shown.contains(VALUE), "{shown}");
}

#[tokio::test]
async fn invalid_input_is_refused_without_echoing_values() {
    let secrets = in_memory().await;
    for bad in ["", "1ABC", "A-B", "A B", "é", &"A".repeat(129)] {
        let err = secrets.put(bad, VALUE, None).await.unwrap_err();
        assert!(matches!(err, SecretError::InvalidName { .. }), "{bad:?}");
        assert!(!err.to_string().contains(VALUE));
    }
    for good in ["A", "_", "_a1", "github", &"A".repeat(128)] {
        secrets.put(good, "v", None).await.unwrap();
    }
    let nul = format!("{VALUE}\0");
    let err = secrets.put("N", &nul, None).await.unwrap_err();
    assert!(matches!(err, SecretError::InvalidValue { .. }));
    assert!(!err.to_string().contains(VALUE));
    let huge = "x".repeat(MAX_VALUE_LEN + 1);
    assert!(secrets.put("N", &huge, None).await.is_err());
    for scope in ["", " ", "a\nb", &"s".repeat(129)] {
        let err = secrets.put("N", "v", Some(scope.into())).await.unwrap_err();
        assert!(matches!(err, SecretError::InvalidScope { .. }), "{scope:?}");
    }
    assert!(secrets.get("N").is_none());
}

// ---- master key ----

const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn key_bytes() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

#[test]
fn master_key_formats() {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let bytes = key_bytes();
    let mut high = [0xfbu8; 32];
    high[0] = 0xff;
    let cases = [
        (HEX.to_owned(), bytes),
        (HEX.to_uppercase(), bytes),
        (format!("  {HEX}\n"), bytes),
        (STANDARD.encode(bytes), bytes),
        (format!("{}\n", STANDARD.encode(bytes)), bytes),
        (STANDARD_NO_PAD.encode(bytes), bytes),
        (STANDARD.encode(high), high),
        (URL_SAFE_NO_PAD.encode(high), high),
    ];
    for (text, expected) in cases {
        let k = MasterKey::parse(&text, MASTER_KEY_ENV).unwrap();
        assert_eq!(*k.bytes, expected, "{text:?}");
    }
}

#[test]
fn master_key_bad_formats_are_refused_clearly() {
    use base64::engine::general_purpose::STANDARD;
    let cases = [
        ("", "it is empty"),
        ("   \n", "it is empty"),
        (&HEX[..62], "it is hex of 31 bytes, not 32"),
        (&format!("{HEX}00"), "it is hex of 33 bytes, not 32"),
        (
            &STANDARD.encode([1u8; 31]),
            "it is base64 of 31 bytes, not 32",
        ),
        (
            &STANDARD.encode([1u8; 64]),
            "it is base64 of 64 bytes, not 32",
        ),
        ("not a key!", "it is neither base64 nor hex"),
        (&HEX[..63], "it is hex with an odd number of digits"),
        (
            "correct horse battery staple",
            "it is neither base64 nor hex",
        ),
    ];
    for (text, reason) in cases {
        let err = MasterKey::parse(text, MASTER_KEY_ENV).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("bad master key from HANGAR_MASTER_KEY: "),
            "{msg}"
        );
        assert!(msg.contains(reason), "{text:?}: {msg}");
        assert!(msg.contains("expected 32 bytes as base64 or as 64 hex digits"));
        if !text.trim().is_empty() {
            assert!(!msg.contains(text.trim()), "the key is echoed: {msg}");
        }
    }
}

#[test]
fn master_key_debug_never_shows_the_key() {
    let k = MasterKey::parse(HEX, MASTER_KEY_ENV).unwrap();
    let shown = format!("{k:?} {k:#?}");
    assert!(shown.contains("HANGAR_MASTER_KEY"));
    assert!(!shown.contains(HEX));
    assert!(!shown.contains("[0, 1, 2"));
    assert!(!shown.contains("0, 1, 2, 3"));
    let b64 = base64::engine::general_purpose::STANDARD.encode(key_bytes());
    assert!(!shown.contains(&b64));
}

#[test]
fn master_key_file_is_created_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (first, created) = MasterKey::load_or_create(&data, None).unwrap();
    let path = data.join(MASTER_KEY_FILE);
    assert_eq!(created.as_deref(), Some(path.as_path()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap();
    assert_eq!(decoded.as_slice(), &first.bytes[..]);
    // No temporary file is left next to it.
    let names: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [MASTER_KEY_FILE]);

    let (second, created) = MasterKey::load_or_create(&data, None).unwrap();
    assert_eq!(created, None);
    assert_eq!(*second.bytes, *first.bytes);
    assert_eq!(second.origin(), path.display().to_string());

    // The environment variable wins and leaves the file alone.
    let (from_env, created) = MasterKey::load_or_create(&data, Some(HEX.into())).unwrap();
    assert_eq!(created, None);
    assert_eq!(*from_env.bytes, key_bytes());
    assert_eq!(from_env.origin(), MASTER_KEY_ENV);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn concurrent_first_starts_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let keys: Vec<[u8; KEY_LEN]> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| *MasterKey::load_or_create(&data, None).unwrap().0.bytes))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let on_disk = MasterKey::load_or_create(&data, None).unwrap().0;
    assert!(keys.iter().all(|k| k == &*on_disk.bytes));
}

#[test]
fn master_key_from_env_never_creates_a_file() {
    let dir = tempfile::tempdir().unwrap();
    MasterKey::load_or_create(dir.path(), Some(HEX.into())).unwrap();
    assert!(!dir.path().join(MASTER_KEY_FILE).exists());
    let err = MasterKey::load_or_create(dir.path(), Some("short".into())).unwrap_err();
    assert!(matches!(err, SecretError::BadMasterKey { .. }));
    assert!(!dir.path().join(MASTER_KEY_FILE).exists());
}

#[test]
fn a_bad_master_key_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(MASTER_KEY_FILE);
    std::fs::write(&path, "garbage\n").unwrap();
    let err = MasterKey::load_or_create(dir.path(), None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("neither base64 nor hex"), "{msg}");
    // Left as it was.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage\n");
}

// ---- references and resolution ----

#[tokio::test]
async fn resolve_whole_embedded_and_several() {
    let secrets = in_memory().await;
    secrets.put("API_TOKEN", VALUE, None).await.unwrap();
    secrets.put("user", "alice", None).await.unwrap();
    let input = env(&[
        ("WHOLE", "${secret:API_TOKEN}"),
        ("EMBEDDED", "Bearer ${secret:API_TOKEN}!"),
        (
            "SEVERAL",
            "${secret:user}:${secret:API_TOKEN}@${secret:user}",
        ),
        ("PLAIN", "no reference, $HOME, ${HOME}, $$ and ${secret"),
        ("UNICODE", "é${secret:user}ü"),
    ]);
    let out = secrets.resolve_env(&input, None).unwrap();
    assert_eq!(out["WHOLE"], VALUE);
    assert_eq!(out["EMBEDDED"], format!("Bearer {VALUE}!"));
    assert_eq!(out["SEVERAL"], format!("alice:{VALUE}@alice"));
    assert_eq!(
        out["PLAIN"],
        "no reference, $HOME, ${HOME}, $$ and ${secret"
    );
    assert_eq!(out["UNICODE"], "éaliceü");
    assert_eq!(out.len(), input.len());
    // The input is untouched.
    assert_eq!(input["WHOLE"], "${secret:API_TOKEN}");
}

#[tokio::test]
async fn double_dollar_escapes_a_reference() {
    let secrets = in_memory().await;
    secrets.put("X", VALUE, None).await.unwrap();
    let out = secrets
        .resolve_env(
            &env(&[
                ("LITERAL", "$${secret:X}"),
                ("MIXED", "a $${secret:X} b ${secret:X}"),
                ("MISSING_IS_FINE", "$${secret:NOPE}"),
                ("TRIPLE", "$$${secret:X}"),
            ]),
            None,
        )
        .unwrap();
    assert_eq!(out["LITERAL"], "${secret:X}");
    assert_eq!(out["MIXED"], format!("a ${{secret:X}} b {VALUE}"));
    assert_eq!(out["MISSING_IS_FINE"], "${secret:NOPE}");
    assert_eq!(out["TRIPLE"], "$${secret:X}");
}

#[tokio::test]
async fn missing_and_malformed_references_fail_by_name() {
    let secrets = in_memory().await;
    secrets.put("THERE", VALUE, None).await.unwrap();
    let err = secrets
        .resolve_env(
            &env(&[("A", "${secret:THERE}"), ("B", "x${secret:NOT_THERE}")]),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, SecretError::Missing { name, var } if name == "NOT_THERE" && var == "B")
    );
    assert_eq!(
        err.to_string(),
        "secret 'NOT_THERE' is not defined (referenced by env.B)"
    );
    for (value, reason) in [
        ("${secret:THERE", "unterminated"),
        ("${secret:}", "invalid secret name \"\""),
        ("${secret:A-B}", "invalid secret name \"A-B\""),
    ] {
        let err = secrets
            .resolve_env(&env(&[("V", value)]), None)
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SecretError::BadReference { .. }), "{msg}");
        assert!(msg.starts_with("env.V: "), "{msg}");
        assert!(msg.contains(reason), "{msg}");
        assert!(!msg.contains(VALUE));
    }
}

#[tokio::test]
async fn scopes_limit_where_a_secret_is_usable() {
    let secrets = in_memory().await;
    secrets
        .put("PROD_KEY", VALUE, Some("production".into()))
        .await
        .unwrap();
    secrets.put("SHARED", "shared", None).await.unwrap();
    let prod = env(&[("K", "${secret:PROD_KEY}")]);
    let shared = env(&[("S", "${secret:SHARED}")]);
    // A provider in a scope gets that scope's secrets only.
    let out = secrets.resolve_env(&prod, Some("production")).unwrap();
    assert_eq!(out["K"], VALUE);
    let err = secrets
        .resolve_env(&shared, Some("production"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret 'SHARED' is unscoped and not available to providers in scope 'production' (referenced by env.S)"
    );
    // Another scope, or none, does not get the scoped one.
    let err = secrets.resolve_env(&prod, Some("staging")).unwrap_err();
    assert!(
        matches!(&err, SecretError::OutOfScope { name, scope, requested, var }
        if name == "PROD_KEY" && scope.as_deref() == Some("production") && requested.as_deref() == Some("staging") && var == "K")
    );
    assert_eq!(
        err.to_string(),
        "secret 'PROD_KEY' is in scope 'production' and not available to providers in scope 'staging' (referenced by env.K)"
    );
    let err = secrets.resolve_env(&prod, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("not available to unscoped providers"),
        "{err}"
    );
    // Unscoped providers get unscoped secrets.
    assert_eq!(secrets.resolve_env(&shared, None).unwrap()["S"], "shared");
}

#[test]
fn references_are_listed_once_and_sorted() {
    let e = env(&[
        ("A", "${secret:B_NAME} and ${secret:A_NAME}"),
        ("B", "${secret:B_NAME}"),
        ("C", "$${secret:ESCAPED} ${secret:bad-name} plain"),
    ]);
    assert_eq!(Secrets::references(&e), ["A_NAME", "B_NAME"]);
    assert!(references(&env(&[("X", "plain")])).is_empty());
}

#[tokio::test]
async fn env_resolver_uses_the_scope_of_each_provider() {
    let secrets = in_memory().await;
    secrets
        .put("K", VALUE, Some("team-a".into()))
        .await
        .unwrap();
    let resolver = secrets.env_resolver();
    let input = env(&[("K", "${secret:K}")]);
    assert_eq!(
        resolver.resolve("a1", Some("team-a"), &input).unwrap()["K"],
        VALUE
    );
    assert!(matches!(
        resolver.resolve("b1", None, &input),
        Err(SecretError::OutOfScope { .. })
    ));
    assert_eq!(format!("{resolver:?}"), "EnvResolver(..)");
}

// ---- end to end: an engine starting a real provider ----

fn fixture() -> PathBuf {
    let dir = match std::env::var("HANGAR_BIN_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
            .join("debug"),
    };
    let p = dir.join("hangar-fixture");
    assert!(
        p.exists(),
        "{} not found: run `cargo build -p hangar-fixture` (or `cargo build --workspace`) first, or set HANGAR_BIN_DIR",
        p.display()
    );
    p
}

type Client = hangar_mcp::rmcp::service::RunningService<hangar_mcp::rmcp::RoleClient, ()>;

/// An in-process MCP client of the engine (the same server handler `/mcp` uses).
async fn connect(engine: &Engine) -> Client {
    use hangar_mcp::rmcp::ServiceExt;
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = hangar_mcp::AggregatingServer::new(std::sync::Arc::new(engine.clone()));
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.unwrap()
}

/// Calls `<provider>__env` and returns the text, or the tool error.
async fn env_var(client: &Client, provider: &str, name: &str) -> Result<String, String> {
    use hangar_mcp::rmcp::model::CallToolRequestParams;
    let args = serde_json::json!({ "name": name })
        .as_object()
        .cloned()
        .unwrap();
    let r = client
        .call_tool(CallToolRequestParams::new(format!("{provider}__env")).with_arguments(args))
        .await
        .map_err(|e| e.to_string())?;
    let text: String = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    if r.is_error == Some(true) {
        Err(text)
    } else {
        Ok(text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_a_real_provider_and_refresh_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hangar.db")).unwrap();
    let secrets = Secrets::new(Some(store.clone()), key(5)).await.unwrap();
    secrets.put("API_TOKEN", VALUE, None).await.unwrap();

    let engine = Engine::new(crate::EngineConfig {
        store: Some(store),
        ..Default::default()
    });
    engine.set_env_resolver(Some(secrets.env_resolver()));
    let mut spec = hangar_core::ProviderSpec::subprocess([fixture().display().to_string()]);
    spec.env = env(&[
        ("SECRET_THING", "${secret:API_TOKEN}"),
        ("EMBEDDED", "token=${secret:API_TOKEN};"),
        ("LITERAL", "$${secret:API_TOKEN}"),
    ]);
    engine
        .add_provider("fx", spec.clone(), crate::ProviderSource::Api)
        .await
        .unwrap();

    let client = connect(&engine).await;
    assert_eq!(env_var(&client, "fx", "SECRET_THING").await.unwrap(), VALUE);
    assert_eq!(
        env_var(&client, "fx", "EMBEDDED").await.unwrap(),
        format!("token={VALUE};")
    );
    assert_eq!(
        env_var(&client, "fx", "LITERAL").await.unwrap(),
        "${secret:API_TOKEN}"
    );

    // The spec (in memory and in the store), status and logs keep the reference.
    let provider = engine.provider("fx").unwrap();
    assert_eq!(provider.spec().env["SECRET_THING"], "${secret:API_TOKEN}");
    let stored = engine.store().unwrap().providers().await.unwrap();
    assert_eq!(stored[0].1.env, spec.env);
    let shown = format!(
        "{} {:?} {:?}",
        serde_json::to_string(&provider.status()).unwrap(),
        provider.logs(1000),
        *provider.spec()
    );
    assert!(!shown.contains(VALUE), "{shown}");

    // A new value reaches the process only after a refresh (restart).
    secrets
        .put("API_TOKEN", "second-value", None)
        .await
        .unwrap();
    assert_eq!(env_var(&client, "fx", "SECRET_THING").await.unwrap(), VALUE);
    let pid_before = provider.status().pid;
    let outcomes = engine.refresh_secrets(Some("API_TOKEN")).await;
    assert_eq!(
        outcomes,
        [RefreshOutcome {
            provider: "fx".into(),
            restarted: true,
            error: None
        }]
    );
    assert_ne!(provider.status().pid, pid_before);
    assert_eq!(
        env_var(&client, "fx", "SECRET_THING").await.unwrap(),
        "second-value"
    );
    // Providers that do not reference the secret are left alone.
    assert!(engine.refresh_secrets(Some("OTHER")).await.is_empty());

    // A missing secret fails the start, naming the secret and not any value.
    assert!(secrets.delete("API_TOKEN").await.unwrap());
    provider.stop(false).await;
    let err = provider.start().await.unwrap_err().to_string();
    assert_eq!(
        err,
        "provider 'fx' could not be started: secret 'API_TOKEN' is not defined (referenced by env.EMBEDDED)"
    );
    let logs: String = provider
        .logs(1000)
        .into_iter()
        .map(|l| format!("{l:?}\n"))
        .collect();
    assert!(logs.contains("secret 'API_TOKEN' is not defined"), "{logs}");
    assert!(!logs.contains(VALUE) && !logs.contains("second-value"));

    client.cancel().await.unwrap();
    engine.shutdown().await;
}
