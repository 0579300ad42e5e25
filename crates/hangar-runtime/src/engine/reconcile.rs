//! Config reload: apply only the difference between a new config file and
//! the live engine. Unchanged providers keep running (and their clients'
//! sessions); providers and groups created over the API are never touched.

use std::collections::BTreeMap;

use hangar_core::HangarConfig;
use serde::Serialize;

use super::Engine;
use crate::provider::ProviderSource;

/// What a reload did to one kind of object (providers or groups).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileSet {
    /// In the file, not live before: created.
    pub added: Vec<String>,
    /// Live from the old file, gone from the new one: stopped and removed.
    pub removed: Vec<String>,
    /// Changed in the file: new spec applied (a running provider is stopped
    /// and starts with it on the next call).
    pub updated: Vec<String>,
    /// Same as before: left alone.
    pub unchanged: Vec<String>,
    /// Created over the API: kept (a file entry with the same id is
    /// ignored while the API one exists).
    pub kept: Vec<String>,
    /// Could not be applied, with the reason.
    pub failed: BTreeMap<String, String>,
}

/// The outcome of [`Engine::reconcile`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Providers: `added`, `removed`, `updated`, `unchanged`, `kept`, `failed`.
    #[serde(flatten)]
    pub providers: ReconcileSet,
    /// The same for groups.
    pub groups: ReconcileSet,
}

impl ReconcileReport {
    /// Whether anything was added, removed or updated.
    pub fn changed(&self) -> bool {
        [&self.providers, &self.groups]
            .iter()
            .any(|s| !s.added.is_empty() || !s.removed.is_empty() || !s.updated.is_empty())
    }
}

impl Engine {
    /// Applies `config`'s providers and groups to the live engine, touching
    /// only what differs from the config-file objects now live. Groups that
    /// go away are removed before providers (a member can't be removed
    /// while its group exists); new providers are added before new groups.
    pub async fn reconcile(&self, config: &HangarConfig) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let live_groups: BTreeMap<String, _> = self
            .groups()
            .iter()
            .map(|(id, g)| (id.clone(), (g.source(), g.spec())))
            .collect();
        let live_providers: BTreeMap<String, _> = self
            .providers()
            .iter()
            .map(|(id, p)| (id.clone(), (p.source(), p.spec())))
            .collect();

        // 1. Groups from the old file that the new one drops or changes
        //    membership of are handled first: removal frees their members.
        for (id, (source, _)) in &live_groups {
            if *source == ProviderSource::Config && !config.groups.contains_key(id) {
                match self.remove_group(id).await {
                    Ok(()) => report.groups.removed.push(id.clone()),
                    Err(e) => {
                        report.groups.failed.insert(id.clone(), e.to_string());
                    }
                }
            }
        }

        // 2. Providers.
        for (id, (source, _)) in &live_providers {
            if *source == ProviderSource::Config && !config.providers.contains_key(id) {
                match self.remove_provider(id).await {
                    Ok(()) => report.providers.removed.push(id.clone()),
                    Err(e) => {
                        report.providers.failed.insert(id.clone(), e.to_string());
                    }
                }
            }
        }
        for (id, spec) in &config.providers {
            match live_providers.get(id) {
                None => match self
                    .add_provider(id, spec.clone(), ProviderSource::Config)
                    .await
                {
                    Ok(()) => report.providers.added.push(id.clone()),
                    Err(e) => {
                        report.providers.failed.insert(id.clone(), e.to_string());
                    }
                },
                Some((ProviderSource::Api, _)) => report.providers.kept.push(id.clone()),
                Some((ProviderSource::Config, old)) if **old == *spec => {
                    report.providers.unchanged.push(id.clone());
                }
                Some((ProviderSource::Config, _)) => {
                    match self.update_provider(id, spec.clone()).await {
                        Ok(restart) => {
                            if restart && let Ok(p) = self.provider(id) {
                                p.stop(false).await;
                            }
                            report.providers.updated.push(id.clone());
                        }
                        Err(e) => {
                            report.providers.failed.insert(id.clone(), e.to_string());
                        }
                    }
                }
            }
        }
        for (id, (source, _)) in &live_providers {
            if *source == ProviderSource::Api && !config.providers.contains_key(id) {
                report.providers.kept.push(id.clone());
            }
        }

        // 3. Groups added or changed.
        for (id, spec) in &config.groups {
            match live_groups.get(id) {
                None => match self
                    .add_group(id, spec.clone(), ProviderSource::Config)
                    .await
                {
                    Ok(()) => report.groups.added.push(id.clone()),
                    Err(e) => {
                        report.groups.failed.insert(id.clone(), e.to_string());
                    }
                },
                Some((ProviderSource::Api, _)) => report.groups.kept.push(id.clone()),
                Some((ProviderSource::Config, old)) if **old == *spec => {
                    report.groups.unchanged.push(id.clone());
                }
                Some((ProviderSource::Config, _)) => {
                    match self.update_group(id, spec.clone()).await {
                        Ok(()) => report.groups.updated.push(id.clone()),
                        Err(e) => {
                            report.groups.failed.insert(id.clone(), e.to_string());
                        }
                    }
                }
            }
        }
        for (id, (source, _)) in &live_groups {
            if *source == ProviderSource::Api && !config.groups.contains_key(id) {
                report.groups.kept.push(id.clone());
            }
        }
        report.providers.kept.sort();
        report.groups.kept.sort();
        report
    }

    /// The live providers and groups (from the file and the API) as a
    /// config, with `server` as its settings: what `export` writes.
    pub fn live_config(&self, server: hangar_core::ServerSettings) -> HangarConfig {
        HangarConfig {
            providers: self
                .providers()
                .iter()
                .map(|(id, p)| (id.clone(), (*p.spec()).clone()))
                .collect(),
            groups: self
                .groups()
                .iter()
                .map(|(id, g)| (id.clone(), (*g.spec()).clone()))
                .collect(),
            server,
        }
    }
}
