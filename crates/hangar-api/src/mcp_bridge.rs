//! The era bridge for stateless 2026-07-28 clients: a provider's requests to
//! the client (a 2025-era provider's `sampling/createMessage`,
//! `elicitation/create`, `roots/list`) become an `InputRequiredResult`.
//!
//! A 2026-07-28 client takes no requests from the server: it gets the
//! requests as `inputRequests` of the call's result, fulfils them and retries
//! the call with `inputResponses` and the `requestState` it was given. A
//! 2025-era provider, though, sends a request and waits for the answer in the
//! middle of the call. So the call is *parked*: its forwarding keeps running
//! in a task of its own, holding the provider's pending request; the first
//! reply is the `InputRequiredResult`, and each retry hands the client's
//! answers to the provider and waits for what comes next, another round of
//! requests or the result.
//!
//! `requestState` is `hangar1.<id>.<mac>`: a random id and an HMAC (the
//! server's digest key) over it, the principal and the tool, so a retry is
//! taken only from the principal that made the call, for the same tool, and
//! a changed state is refused. A parked call is this process's: a retry that
//! reaches another replica is told so. Parked calls are bounded in number and
//! time ([`PARK_TTL`]): one left unanswered is cancelled at the provider.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use hangar_mcp::rmcp::ErrorData;
use hangar_mcp::rmcp::model::{
    ErrorCode, InputRequiredResult, InputResponses, ProgressNotificationParam, ServerResult,
};
use hangar_mcp::{Backend as _, ClientRequests};
use hangar_runtime::Engine;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::authz::lock;

/// How long a parked call waits for the client's retry.
pub(crate) const PARK_TTL: Duration = Duration::from_secs(300);
/// Parked calls held at once, and by one principal.
const MAX_PARKED: usize = 4096;
const MAX_PARKED_PER_PRINCIPAL: usize = 256;
/// Requests from the provider queued for the client.
const ASK_QUEUE: usize = 16;
/// The prefix of Hangar's own `requestState`.
const STATE_PREFIX: &str = "hangar1.";

/// One request of the provider to the client, with where its answer goes.
pub(crate) struct Ask {
    method: &'static str,
    params: serde_json::Value,
    answer: oneshot::Sender<Result<serde_json::Value, ErrorData>>,
}

/// The `ClientPeer` of a stateless call: the provider's requests go to the
/// call's front task (which parks the call) instead of to a client stream.
pub(crate) struct Bridge {
    tx: mpsc::Sender<Ask>,
}

impl Bridge {
    /// A bridge and where its requests arrive.
    pub(crate) fn new() -> (Self, mpsc::Receiver<Ask>) {
        let (tx, rx) = mpsc::channel(ASK_QUEUE);
        (Self { tx }, rx)
    }
}

impl ClientRequests for Bridge {
    fn request(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> BoxFuture<'static, Result<serde_json::Value, ErrorData>> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let gone = || ErrorData::internal_error("the client's call is no longer waiting", None);
            let (answer, rx) = oneshot::channel();
            tx.send(Ask {
                method,
                params,
                answer,
            })
            .await
            .map_err(|_| gone())?;
            rx.await.map_err(|_| gone())?
        })
    }
}

/// What a parked call's task reports.
enum Event {
    Ask(Ask),
    Done(Box<Result<ServerResult, ErrorData>>),
}

/// One parked call.
struct Parked {
    principal: String,
    created: Instant,
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    /// The provider's requests not answered yet: key → (the request as
    /// `inputRequests` shows it, where the answer goes).
    pending: Mutex<BTreeMap<String, (serde_json::Value, oneshot::Sender<AskAnswer>)>>,
    next_key: AtomicU64,
    /// Ends the call's task (the forwarding future is dropped, which cancels
    /// the request at the provider).
    cancel: CancellationToken,
}

type AskAnswer = Result<serde_json::Value, ErrorData>;

impl Parked {
    /// Takes a provider request as a new `inputRequests` entry.
    fn take(&self, ask: Ask) {
        let n = self.next_key.fetch_add(1, Ordering::Relaxed);
        let key = format!("hangar-{n}");
        let shown = serde_json::json!({"method": ask.method, "params": ask.params});
        lock(&self.pending).insert(key, (shown, ask.answer));
    }

    /// The `InputRequiredResult` of every request not answered yet.
    fn input_required(&self, state: &str) -> Result<ServerResult, ErrorData> {
        let requests: serde_json::Map<String, serde_json::Value> = lock(&self.pending)
            .iter()
            .map(|(k, (shown, _))| (k.clone(), shown.clone()))
            .collect();
        let value = serde_json::json!({
            "resultType": "input_required",
            "inputRequests": requests,
            "requestState": state,
        });
        serde_json::from_value::<InputRequiredResult>(value)
            .map(ServerResult::InputRequiredResult)
            .map_err(|e| {
                ErrorData::internal_error(format!("could not build the input request: {e}"), None)
            })
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The parked calls of this process.
#[derive(Default)]
pub(crate) struct Parking {
    entries: Mutex<HashMap<String, Arc<Parked>>>,
}

/// A call's running work, as the front hands it over to be parked.
pub(crate) struct Running {
    pub(crate) work: BoxFuture<'static, Result<ServerResult, ErrorData>>,
    pub(crate) asks: mpsc::Receiver<Ask>,
    pub(crate) progress: Option<mpsc::Receiver<ProgressNotificationParam>>,
}

impl Parking {
    /// Parks `running` after its provider sent `first` (and whatever else is
    /// queued): the reply is the `InputRequiredResult` the client retries
    /// with. Past the limits, the provider's request is refused and the call
    /// goes on unparked: `Err` gives `running` back.
    pub(crate) fn park(
        &self,
        engine: &Engine,
        principal: &str,
        tool: &str,
        first: Ask,
        running: Running,
    ) -> Result<Result<ServerResult, ErrorData>, Running> {
        let mut entries = lock(&self.entries);
        let held = entries
            .values()
            .filter(|p| p.principal == principal)
            .count();
        if entries.len() >= MAX_PARKED || held >= MAX_PARKED_PER_PRINCIPAL {
            drop(entries);
            let _ = first.answer.send(Err(ErrorData::internal_error(
                "too many calls are waiting for client input on this server",
                None,
            )));
            return Err(running);
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        let (events_tx, events_rx) = mpsc::channel(ASK_QUEUE);
        let parked = Arc::new(Parked {
            principal: principal.to_owned(),
            created: Instant::now(),
            events: tokio::sync::Mutex::new(events_rx),
            pending: Mutex::default(),
            next_key: AtomicU64::new(1),
            cancel: CancellationToken::new(),
        });
        let Running {
            work,
            mut asks,
            progress,
        } = running;
        parked.take(first);
        while let Ok(ask) = asks.try_recv() {
            parked.take(ask);
        }
        entries.insert(id.clone(), parked.clone());
        drop(entries);
        tokio::spawn(drive(
            work,
            asks,
            progress,
            events_tx,
            parked.cancel.clone(),
        ));
        let state = state_of(engine, &id, principal, tool);
        Ok(parked.input_required(&state))
    }

    /// A retry with Hangar's `requestState`: the client's answers go to the
    /// provider, then the next round or the result. `None`: the state is not
    /// Hangar's (a provider's own, passed through).
    pub(crate) async fn resume(
        &self,
        engine: &Engine,
        principal: &str,
        tool: &str,
        state: &str,
        responses: Option<InputResponses>,
    ) -> Option<Result<ServerResult, ErrorData>> {
        let id = parse_state(state)?;
        Some(
            self.resume_parked(engine, principal, tool, state, id, responses)
                .await,
        )
    }

    async fn resume_parked(
        &self,
        engine: &Engine,
        principal: &str,
        tool: &str,
        state: &str,
        id: &str,
        responses: Option<InputResponses>,
    ) -> Result<ServerResult, ErrorData> {
        if state_of(engine, id, principal, tool) != state {
            return Err(ErrorData::invalid_params(
                "requestState was not issued for this call (changed, another caller's, or another tool's)",
                None,
            ));
        }
        let parked = lock(&self.entries).get(id).cloned().ok_or_else(|| {
            ErrorData::invalid_params(
                "the call waiting for this input is gone (it expired, ended, or another server holds it); call the tool again",
                None,
            )
        })?;
        {
            let mut pending = lock(&parked.pending);
            for (key, value) in responses.unwrap_or_default() {
                if let Some((_, answer)) = pending.remove(&key) {
                    let _ = answer.send(Ok(value));
                }
            }
            if !pending.is_empty() {
                // Every request needs its answer: ask again for what is missing.
                drop(pending);
                return parked.input_required(state);
            }
        }
        let mut events = parked.events.lock().await;
        let event = tokio::time::timeout(
            PARK_TTL.saturating_sub(parked.created.elapsed()),
            events.recv(),
        )
        .await;
        match event {
            Ok(Some(Event::Ask(ask))) => {
                parked.take(ask);
                drop(events);
                parked.input_required(state)
            }
            Ok(Some(Event::Done(result))) => {
                lock(&self.entries).remove(id);
                *result
            }
            Ok(None) | Err(_) => {
                lock(&self.entries).remove(id);
                Err(ErrorData::new(
                    ErrorCode::INTERNAL_ERROR,
                    "the call waiting for this input ended without a result",
                    None,
                ))
            }
        }
    }

    /// Drops parked calls older than [`PARK_TTL`] (their provider requests are
    /// cancelled).
    pub(crate) fn sweep(&self) {
        lock(&self.entries).retain(|_, p| p.created.elapsed() < PARK_TTL);
    }

    /// Drops every parked call (shutdown).
    pub(crate) fn clear(&self) {
        lock(&self.entries).clear();
    }
}

/// Runs a parked call: reports the provider's requests and the result, until
/// the result or `cancel`.
async fn drive(
    mut work: BoxFuture<'static, Result<ServerResult, ErrorData>>,
    mut asks: mpsc::Receiver<Ask>,
    mut progress: Option<mpsc::Receiver<ProgressNotificationParam>>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) {
    let mut queued: VecDeque<Event> = VecDeque::new();
    loop {
        // Reported in order; the result last.
        while let Some(event) = queued.pop_front() {
            let done = matches!(event, Event::Done(_));
            tokio::select! {
                sent = events.send(event) => if sent.is_err() { return },
                () = cancel.cancelled() => return,
            }
            if done {
                return;
            }
        }
        tokio::select! {
            result = &mut work => queued.push_back(Event::Done(Box::new(result))),
            Some(ask) = asks.recv() => queued.push_back(Event::Ask(ask)),
            // The reply that asked for progress has ended: progress has
            // nowhere to go, but must not hold the call back.
            Some(_) = async {
                match progress.as_mut() {
                    Some(p) => p.recv().await,
                    None => std::future::pending().await,
                }
            } => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// Hangar's `requestState` for parked call `id` of `principal` on `tool`.
fn state_of(engine: &Engine, id: &str, principal: &str, tool: &str) -> String {
    let bound = serde_json::json!({"bridge": id, "principal": principal, "tool": tool});
    let mac = engine.arguments_digest(bound.as_object());
    format!("{STATE_PREFIX}{id}.{}", mac.get(..32).unwrap_or(&mac))
}

/// The parked call id of a Hangar `requestState`.
fn parse_state(state: &str) -> Option<&str> {
    let rest = state.strip_prefix(STATE_PREFIX)?;
    let (id, _) = rest.split_once('.')?;
    Some(id)
}
