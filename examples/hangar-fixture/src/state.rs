//! Integrity-protected `requestState` for the MRTR flows (SEP-2322).
//!
//! The client echoes `requestState` back verbatim, so on a retry it is
//! untrusted input. The fixture seals its state as
//! `fx1.<hex(payload)>.<hex(tag)>`, where `payload` is JSON naming the flow,
//! an expiry and the flow's own state, and `tag` is a 128-bit keyed MAC over
//! the payload. The MAC is two SipHash runs (std's `RandomState`, whose keys
//! are drawn from the OS at random once per process), so only this process
//! can produce a valid tag: a state that was forged, tampered with, replayed
//! into another flow, expired, or issued by an earlier process fails to open.
//!
//! This is a test fixture, not a production scheme: it avoids new
//! dependencies and is strong enough to tell tampering from honest echoes.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Version prefix of sealed states.
const PREFIX: &str = "fx1";
/// Domain separation, so the MAC cannot be confused with any other hash.
const DOMAIN: &str = "hangar-fixture/request-state/v1";
/// How long a sealed state stays valid.
const TTL: Duration = Duration::from_secs(10 * 60);

/// Why a `requestState` was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// Not of the form `fx1.<hex>.<hex>`.
    Malformed,
    /// The tag does not match the payload.
    IntegrityCheckFailed,
    /// Sealed for a different flow.
    WrongFlow,
    /// Older than [`TTL`].
    Expired,
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "requestState is malformed",
            Self::IntegrityCheckFailed => "requestState failed integrity verification",
            Self::WrongFlow => "requestState belongs to another request",
            Self::Expired => "requestState has expired",
        })
    }
}

impl std::error::Error for StateError {}

/// Seals and opens `requestState` values with a per-process random key.
#[derive(Debug, Clone, Default)]
pub struct StateCodec {
    keys: [RandomState; 2],
}

impl StateCodec {
    /// A codec with fresh random keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seal `state` for `flow` (the tool or prompt that issued it).
    pub fn seal(&self, flow: &str, state: &Value) -> String {
        let expires = now_ms().saturating_add(TTL.as_millis() as u64);
        let payload =
            serde_json::json!({ "flow": flow, "exp": expires, "state": state }).to_string();
        let tag = self.tag(payload.as_bytes());
        format!("{PREFIX}.{}.{}", hex(payload.as_bytes()), hex(&tag))
    }

    /// Verify and open a state sealed by [`Self::seal`] for `flow`.
    pub fn open(&self, flow: &str, sealed: &str) -> Result<Value, StateError> {
        let mut parts = sealed.split('.');
        let (Some(PREFIX), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(StateError::Malformed);
        };
        let payload = unhex(payload).ok_or(StateError::Malformed)?;
        let tag = unhex(tag).ok_or(StateError::Malformed)?;
        if !constant_time_eq(&tag, &self.tag(&payload)) {
            return Err(StateError::IntegrityCheckFailed);
        }
        let mut opened: Value =
            serde_json::from_slice(&payload).map_err(|_| StateError::Malformed)?;
        if opened.get("flow").and_then(Value::as_str) != Some(flow) {
            return Err(StateError::WrongFlow);
        }
        let expires = opened.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if now_ms() > expires {
            return Err(StateError::Expired);
        }
        Ok(opened
            .get_mut("state")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    fn tag(&self, payload: &[u8]) -> [u8; 16] {
        let mut tag = [0u8; 16];
        for (chunk, key) in tag.chunks_exact_mut(8).zip(&self.keys) {
            chunk.copy_from_slice(&key.hash_one((DOMAIN, payload)).to_be_bytes());
        }
        tag
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_tampering() {
        let codec = StateCodec::new();
        let state = serde_json::json!({"step": 2, "name": "Alice"});
        let sealed = codec.seal("flow", &state);
        assert_eq!(codec.open("flow", &sealed), Ok(state));

        assert_eq!(
            codec.open("other", &sealed),
            Err(StateError::WrongFlow),
            "bound to its flow"
        );
        assert_eq!(
            codec.open("flow", &format!("{sealed}-TAMPERED")),
            Err(StateError::Malformed)
        );
        // Flip one payload nibble: still well-formed, but the tag fails.
        let mut bytes = sealed.clone().into_bytes();
        let i = PREFIX.len() + 2;
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(
            codec.open("flow", &flipped),
            Err(StateError::IntegrityCheckFailed)
        );
        // Another process (another key) cannot open it.
        assert_eq!(
            StateCodec::new().open("flow", &sealed),
            Err(StateError::IntegrityCheckFailed)
        );
        assert_eq!(codec.open("flow", "garbage"), Err(StateError::Malformed));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
