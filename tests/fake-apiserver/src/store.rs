//! In-memory object storage with one global resourceVersion counter (like
//! etcd's revision), a bounded change history for watch replay, live
//! watch subscriptions, list snapshots for pagination, and the per-manager
//! records server-side apply needs.
//!
//! Everything sits behind one mutex (see `lib.rs`): every write takes the
//! next resourceVersion and publishes its change while holding it, so watch
//! streams see changes in resourceVersion order without gaps.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::meta::{self, name_of, namespace_of, uid_of};
use crate::registry::{Registry, StorageKey};

/// How many changes are kept for replay before the oldest are compacted.
const MAX_HISTORY: usize = 50_000;
/// How many paginated list snapshots are kept for `continue` tokens.
const MAX_SNAPSHOTS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One committed write, in storage form.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub storage: StorageKey,
    pub kind: ChangeKind,
    /// New state; for deletions the last state stamped with the deletion rv.
    pub object: Value,
    /// Previous state (modifications), so watches can turn selector
    /// transitions into ADDED/DELETED like kube-apiserver's watch cache.
    pub old: Option<Value>,
}

struct Subscriber {
    storage: StorageKey,
    tx: mpsc::UnboundedSender<Arc<Change>>,
}

/// A consistent list result kept for `continue` tokens.
pub struct Snapshot {
    pub rv: u64,
    pub items: Arc<Vec<Value>>,
}

/// `(storage, namespace, name)` of one object.
pub type ObjKey = (StorageKey, String, String);

/// Server-side apply records: `(manager, status subresource?)` -> the
/// configuration that manager last applied.
pub type ManagerRecords = BTreeMap<(String, bool), Value>;

/// The whole server state.
pub struct State {
    pub registry: Registry,
    pub rv: u64,
    pub compacted_rv: u64,
    objects: HashMap<StorageKey, BTreeMap<(String, String), Value>>,
    uids: HashMap<String, ObjKey>,
    history: VecDeque<Arc<Change>>,
    subscribers: Vec<Subscriber>,
    snapshots: BTreeMap<u64, Snapshot>,
    next_snapshot: u64,
    pub managers: HashMap<ObjKey, ManagerRecords>,
}

impl State {
    pub fn new() -> Self {
        let mut s = State {
            registry: Registry::with_builtins(),
            rv: 0,
            compacted_rv: 0,
            objects: HashMap::new(),
            uids: HashMap::new(),
            history: VecDeque::new(),
            subscribers: Vec::new(),
            snapshots: BTreeMap::new(),
            next_snapshot: 1,
            managers: HashMap::new(),
        };
        let ns_key: StorageKey = (String::new(), "namespaces".into());
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "uid": meta::new_uid(),
                    "creationTimestamp": meta::now_rfc3339(),
                    "labels": {"kubernetes.io/metadata.name": ns},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            s.insert(&ns_key, obj);
        }
        s
    }

    /// A copy for `dryRun=All`: same objects, no watchers, no history.
    pub fn dry_clone(&self) -> State {
        State {
            registry: self.registry.clone(),
            rv: self.rv,
            compacted_rv: self.compacted_rv,
            objects: self.objects.clone(),
            uids: self.uids.clone(),
            history: VecDeque::new(),
            subscribers: Vec::new(),
            snapshots: BTreeMap::new(),
            next_snapshot: 1,
            managers: self.managers.clone(),
        }
    }

    pub fn get(&self, storage: &StorageKey, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(storage)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of one resource, ordered by (namespace, name) like etcd keys.
    pub fn list(&self, storage: &StorageKey, ns: Option<&str>) -> Vec<&Value> {
        let Some(m) = self.objects.get(storage) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => m
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v)
                .collect(),
            None => m.values().collect(),
        }
    }

    /// Every stored object (GC and namespace scans).
    pub fn all_objects(&self) -> impl Iterator<Item = (&StorageKey, &Value)> {
        self.objects
            .iter()
            .flat_map(|(k, m)| m.values().map(move |v| (k, v)))
    }

    pub fn uid_exists(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn stamp(&mut self, obj: &mut Value) -> u64 {
        let rv = self.next_rv();
        meta::meta_mut(obj).insert("resourceVersion".into(), json!(rv.to_string()));
        rv
    }

    /// Stores a new object (caller has filled metadata) and emits ADDED.
    pub fn insert(&mut self, storage: &StorageKey, mut obj: Value) -> Value {
        let rv = self.stamp(&mut obj);
        let key = (namespace_of(&obj).to_string(), name_of(&obj).to_string());
        self.uids.insert(
            uid_of(&obj).to_string(),
            (storage.clone(), key.0.clone(), key.1.clone()),
        );
        self.objects
            .entry(storage.clone())
            .or_default()
            .insert(key, obj.clone());
        self.publish(Change {
            rv,
            storage: storage.clone(),
            kind: ChangeKind::Added,
            object: obj.clone(),
            old: None,
        });
        obj
    }

    /// Replaces an existing object and emits MODIFIED.
    pub fn replace(&mut self, storage: &StorageKey, mut obj: Value) -> Value {
        let rv = self.stamp(&mut obj);
        let key = (namespace_of(&obj).to_string(), name_of(&obj).to_string());
        let old = self
            .objects
            .entry(storage.clone())
            .or_default()
            .insert(key, obj.clone());
        self.publish(Change {
            rv,
            storage: storage.clone(),
            kind: ChangeKind::Modified,
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Physically removes an object and emits DELETED (no cascades here).
    pub fn remove_raw(&mut self, storage: &StorageKey, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(storage)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.uids.remove(uid_of(&obj));
        self.managers
            .remove(&(storage.clone(), ns.to_string(), name.to_string()));
        let rv = self.stamp(&mut obj);
        self.publish(Change {
            rv,
            storage: storage.clone(),
            kind: ChangeKind::Deleted,
            object: obj.clone(),
            old: None,
        });
        Some(obj)
    }

    fn publish(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > MAX_HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        self.subscribers.retain(|s| {
            if s.storage == change.storage {
                s.tx.send(change.clone()).is_ok()
            } else {
                !s.tx.is_closed()
            }
        });
    }

    /// Live changes of one resource from now on.
    pub fn subscribe(&mut self, storage: &StorageKey) -> mpsc::UnboundedReceiver<Arc<Change>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push(Subscriber {
            storage: storage.clone(),
            tx,
        });
        rx
    }

    /// Recorded changes of one resource after `rv`, or `Err(compacted_rv)`
    /// when that part of history is gone.
    pub fn history_since(&self, storage: &StorageKey, rv: u64) -> Result<Vec<Arc<Change>>, u64> {
        if rv < self.compacted_rv {
            return Err(self.compacted_rv);
        }
        Ok(self
            .history
            .iter()
            .filter(|c| c.rv > rv && &c.storage == storage)
            .cloned()
            .collect())
    }

    /// Forgets all history: every resourceVersion handed out so far becomes
    /// too old to watch from or continue a list with, and open watches end
    /// (clients re-watch, get 410 Gone and re-list).
    pub fn compact(&mut self) {
        let rv = self.next_rv();
        self.compacted_rv = rv;
        self.history.clear();
        self.snapshots.clear();
        self.subscribers.clear();
    }

    /// Ends every open watch stream (shutdown).
    pub fn close_watches(&mut self) {
        self.subscribers.clear();
    }

    /// Ends the watch streams of one resource (its CRD went away).
    pub fn close_watches_for(&mut self, storage: &StorageKey) {
        self.subscribers.retain(|s| &s.storage != storage);
    }

    pub fn save_snapshot(&mut self, rv: u64, items: Arc<Vec<Value>>) -> u64 {
        let id = self.next_snapshot;
        self.next_snapshot += 1;
        self.snapshots.insert(id, Snapshot { rv, items });
        while self.snapshots.len() > MAX_SNAPSHOTS {
            self.snapshots.pop_first();
        }
        id
    }

    pub fn snapshot(&self, id: u64) -> Option<&Snapshot> {
        self.snapshots.get(&id)
    }

    /// Whether any object lives in namespace `ns`.
    pub fn namespace_has_objects(&self, ns: &str) -> bool {
        self.objects
            .values()
            .any(|m| m.keys().any(|(n, _)| n == ns))
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "uid": meta::new_uid()}})
    }

    #[test]
    fn resource_versions_come_from_one_counter() {
        let mut s = State::new();
        let key: StorageKey = (String::new(), "configmaps".into());
        let start = s.rv;
        let a = s.insert(&key, cm("a"));
        let b = s.insert(&key, cm("b"));
        assert_eq!(meta::resource_version(&a), (start + 1).to_string());
        assert_eq!(meta::resource_version(&b), (start + 2).to_string());
        let gone = s.remove_raw(&key, "default", "a").unwrap();
        assert_eq!(meta::resource_version(&gone), (start + 3).to_string());
        assert_eq!(s.list(&key, Some("default")).len(), 1);
    }

    #[test]
    fn history_replays_and_compacts() {
        let mut s = State::new();
        let key: StorageKey = (String::new(), "configmaps".into());
        let from = s.rv;
        s.insert(&key, cm("a"));
        s.insert(&key, cm("b"));
        assert_eq!(s.history_since(&key, from).unwrap().len(), 2);
        s.compact();
        assert!(s.history_since(&key, from).is_err());
        assert!(s.history_since(&key, s.rv).unwrap().is_empty());
    }

    #[test]
    fn subscribers_get_only_their_resource() {
        let mut s = State::new();
        let key: StorageKey = (String::new(), "configmaps".into());
        let other: StorageKey = (String::new(), "secrets".into());
        let mut rx = s.subscribe(&key);
        s.insert(&other, cm("x"));
        s.insert(&key, cm("a"));
        let c = rx.try_recv().unwrap();
        assert_eq!(name_of(&c.object), "a");
        assert!(rx.try_recv().is_err());
        s.compact();
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
