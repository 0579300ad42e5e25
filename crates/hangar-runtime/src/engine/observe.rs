//! The engine's observability side: metrics read from its current state,
//! the history sampler, and the alerter.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use crate::alerts::{ALERT_RAISED, ALERTS_STREAM, Alert, AlertLevel, AlertSettings};
use crate::error::RuntimeError;
use crate::metrics::{Metrics, Readings, Sample};

use super::{Engine, Shared};

/// Counts live MCP sessions per era (in [`crate::metrics::ERAS`] order);
/// the HTTP layer, which owns the sessions, provides it.
pub type SessionCounter = Box<dyn Fn() -> [u64; 2] + Send + Sync>;

impl Engine {
    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Sets how live MCP sessions are counted.
    pub fn set_session_counter(&self, counter: SessionCounter) {
        self.shared.sessions.store(Some(Arc::new(counter)));
    }

    /// What the gauges show now.
    pub fn readings(&self) -> Readings {
        let providers = self
            .providers()
            .iter()
            .map(|(id, p)| (id.clone(), p.state().as_str()))
            .collect();
        let mut breakers = Vec::new();
        let mut groups = Vec::new();
        for g in self.group_statuses() {
            groups.push(health_of(&g));
            for m in g.members {
                breakers.push((
                    g.group_id.clone(),
                    m.member_id,
                    m.circuit_breaker_state.as_str(),
                ));
            }
        }
        let sessions = self
            .shared
            .sessions
            .load()
            .as_ref()
            .map_or([0, 0], |count| count());
        let gate = &self.shared.gate;
        Readings {
            providers,
            breakers,
            groups,
            sessions,
            approvals_pending: gate.approvals.list().len() as u64,
            questions_pending: gate.questions.list().len() as u64,
            writer: self.shared.events.writer_reading(),
            event_subscribers: self.shared.events.subscribers() as u64,
            uptime_s: self.uptime_seconds(),
            alerts_active: crate::lock(&self.shared.alerts_active).len() as u64,
        }
    }

    /// Every metric as OpenMetrics text.
    pub async fn render_metrics(&self) -> String {
        let r = self.readings();
        self.shared.metrics.render(&r).await
    }

    /// The headline numbers (`tool_calls_total`, `providers_ready`, ...).
    pub fn metrics_summary(&self) -> BTreeMap<&'static str, f64> {
        self.shared.metrics.summary(&self.readings())
    }

    /// Samples of the summary over the last `minutes`, oldest first.
    pub fn metrics_history(&self, minutes: u32) -> Vec<Sample> {
        self.shared.metrics.history(minutes)
    }

    /// Alerts, newest first, at most `limit`, of `level` if given; plus how
    /// many there are in all.
    pub async fn alerts(
        &self,
        level: Option<AlertLevel>,
        limit: usize,
    ) -> Result<(Vec<Alert>, u64), RuntimeError> {
        let Some(store) = self.store() else {
            let recent = crate::lock(&self.shared.alerts_active).recent(level, limit);
            return Ok(recent);
        };
        self.shared.events.flush().await;
        let (rows, total) = store
            .events_by_types(
                ALERTS_STREAM,
                vec![ALERT_RAISED.to_owned()],
                level.map(|l| ("level", l.as_str().to_owned())),
                limit,
            )
            .await?;
        let alerts = rows
            .into_iter()
            .filter_map(|(_, e)| serde_json::from_value(e.payload).ok())
            .collect();
        Ok((alerts, total))
    }

    /// Starts the alerter and the metrics sampler; both stop with the engine.
    pub(super) fn start_observers(&self, settings: AlertSettings) {
        let weak = Arc::downgrade(&self.shared);
        let groups: crate::alerts::GroupReader = Box::new(move || {
            let shared = weak.upgrade()?;
            let engine = Engine { shared };
            Some(engine.group_statuses().iter().map(health_of).collect())
        });
        crate::alerts::spawn(
            self.shared.events.clone(),
            self.shared.metrics.clone(),
            settings,
            groups,
            self.shared.alerts_active.clone(),
        );
        tokio::spawn(sample(Arc::downgrade(&self.shared)));
    }
}

/// (group, healthy members, min_healthy).
fn health_of(g: &crate::group::GroupStatus) -> (String, u32, u32) {
    let healthy = g.members.iter().filter(|m| m.healthy).count();
    (
        g.group_id.clone(),
        u32::try_from(healthy).unwrap_or(u32::MAX),
        g.min_healthy,
    )
}

async fn sample(weak: Weak<Shared>) {
    let mut tick = tokio::time::interval(crate::metrics::SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let engine = Engine { shared };
        engine.shared.metrics.sample(&engine.readings());
    }
}
