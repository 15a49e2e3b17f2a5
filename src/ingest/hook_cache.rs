//! Webhook targets (project and secret) by hook id, kept in memory so that receiving a push
//! needs no database read. Entries can go stale when another process rotates a secret or
//! deletes a project: the ingest writer re-checks the secret inside the commit, and the webhook
//! pipeline ([`super::Ingest`]) re-reads the database before refusing a delivery on a cached secret.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::db::HookTarget;

#[derive(Default)]
pub struct HookCache(RwLock<HashMap<String, HookTarget>>);

impl HookCache {
    pub fn get(&self, hook_id: &str) -> Option<HookTarget> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(hook_id)
            .cloned()
    }

    /// Only hook ids found in the database are cached, so unknown ids cannot grow the map.
    pub fn insert(&self, hook_id: &str, target: HookTarget) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hook_id.to_owned(), target);
    }

    pub fn forget(&self, hook_id: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hook_id);
    }
}
