//! Scopes: named groups of providers and secrets. A provider in a scope gets
//! only that scope's secrets; unscoped providers get unscoped secrets.
//! Deleting a scope makes its providers and secrets unscoped.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::Engine;
use crate::error::StoreError;
use crate::secrets::{SecretError, Secrets};
use crate::store::Store;

/// One scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Id (`[a-z0-9_-]`, also its name).
    pub scope_id: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// Why a scope operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// Not a valid scope id.
    #[error("{0}")]
    InvalidId(String),
    /// The description is too long or has control characters.
    #[error("description: at most 1024 characters without control characters")]
    InvalidDescription,
    /// The id is taken.
    #[error("scope '{0}' already exists")]
    AlreadyExists(String),
    /// No such scope.
    #[error("scope '{0}' not found")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Unscoping the scope's secrets failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Unscoping the scope's providers failed.
    #[error("provider '{provider}': {message}")]
    Provider {
        /// The provider.
        provider: String,
        /// What failed.
        message: String,
    },
}

/// What deleting a scope changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScopeDeletion {
    /// Providers now unscoped.
    pub providers: Vec<String>,
    /// Secrets now unscoped.
    pub secrets: Vec<String>,
}

/// The scopes, persisted when there is a store. Cheap to clone.
#[derive(Clone, Default)]
pub struct Scopes {
    store: Option<Store>,
    map: Arc<RwLock<BTreeMap<String, Scope>>>,
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scopes").finish_non_exhaustive()
    }
}

impl Scopes {
    /// Loads the stored scopes.
    pub async fn new(store: Option<Store>) -> Result<Self, ScopeError> {
        let mut map = BTreeMap::new();
        if let Some(s) = &store {
            for (id, scope) in s.scopes().await? {
                map.insert(id, scope);
            }
        }
        Ok(Self {
            store,
            map: Arc::new(RwLock::new(map)),
            writes: Arc::default(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Scope>> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Scope>> {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every scope, by id.
    pub fn list(&self) -> Vec<Scope> {
        self.read().values().cloned().collect()
    }

    /// One scope.
    pub fn get(&self, id: &str) -> Option<Scope> {
        self.read().get(id).cloned()
    }

    /// Creates a scope (persisted before it returns).
    pub async fn create(&self, id: &str, description: Option<String>) -> Result<Scope, ScopeError> {
        hangar_core::validate_scope_id(id).map_err(ScopeError::InvalidId)?;
        if description
            .as_deref()
            .is_some_and(|d| d.chars().count() > 1024 || d.chars().any(char::is_control))
        {
            return Err(ScopeError::InvalidDescription);
        }
        let _one = self.writes.lock().await;
        if self.read().contains_key(id) {
            return Err(ScopeError::AlreadyExists(id.to_owned()));
        }
        let scope = Scope {
            scope_id: id.to_owned(),
            description,
            created_at: crate::now_rfc3339(),
        };
        if let Some(s) = &self.store {
            s.put_scope(id, &scope).await?;
        }
        self.write().insert(id.to_owned(), scope.clone());
        Ok(scope)
    }

    /// Deletes a scope: its providers and secrets become unscoped (running
    /// providers keep their process until they restart).
    pub async fn delete(
        &self,
        id: &str,
        engine: &Engine,
        secrets: &Secrets,
    ) -> Result<ScopeDeletion, ScopeError> {
        let _one = self.writes.lock().await;
        if !self.read().contains_key(id) {
            return Err(ScopeError::NotFound(id.to_owned()));
        }
        let mut done = ScopeDeletion::default();
        for p in engine.providers_snapshot() {
            let spec = p.spec();
            if spec.scope.as_deref() == Some(id) {
                let mut unscoped = (*spec).clone();
                unscoped.scope = None;
                engine
                    .update_provider(p.id(), unscoped)
                    .await
                    .map_err(|e| ScopeError::Provider {
                        provider: p.id().to_owned(),
                        message: e.to_string(),
                    })?;
                done.providers.push(p.id().to_owned());
            }
        }
        done.secrets = secrets.unscope(id).await?;
        if let Some(s) = &self.store {
            s.delete_scope(id).await?;
        }
        self.write().remove(id);
        Ok(done)
    }
}
