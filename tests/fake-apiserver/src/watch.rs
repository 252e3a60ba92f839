//! Watch streams: newline-delimited JSON `{"type": ..., "object": ...}`
//! events over a chunked response.
//!
//! A watch is set up under the state lock (initial state or history replay
//! and the live subscription are taken atomically), then a task forwards live changes,
//! filtered by namespace/labels/fields, interleaved with periodic bookmarks,
//! until the client goes away, timeoutSeconds passes, or the server closes
//! watches (compaction, shutdown).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Shared;
use crate::error::ApiError;
use crate::meta::namespace_of;
use crate::ops::to_served;
use crate::registry::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeKind};
use crate::table::{self, IncludeObject};

/// Everything a watch request asked for.
pub struct WatchParams {
    pub info: ResourceInfo,
    pub namespace: Option<String>,
    pub label: LabelSelector,
    pub field: FieldSelector,
    pub resource_version: Option<String>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    /// Render objects as Tables (`kubectl get -w`).
    pub table: Option<IncludeObject>,
}

impl WatchParams {
    fn matches(&self, served: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && self.info.namespaced
            && namespace_of(served) != ns
        {
            return false;
        }
        self.label.matches(served) && self.field.matches(served)
    }

    fn event(&self, kind: &str, served: Value) -> Bytes {
        let object = match self.table {
            Some(include) => {
                let rv = served
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(json!(""));
                table::render(
                    &self.info,
                    &[served],
                    json!({"resourceVersion": rv}),
                    include,
                )
            }
            None => served,
        };
        line(&json!({"type": kind, "object": object}))
    }

    /// Turns a stored change into this watcher's event, if it sees one.
    /// Selector transitions become ADDED/DELETED, as in kube-apiserver.
    fn render(&self, change: &Change) -> Option<Bytes> {
        let new = to_served(&self.info, &change.object);
        let new_match = self.matches(&new);
        let kind = match change.kind {
            ChangeKind::Added | ChangeKind::Deleted => new_match.then_some(change.kind.as_str()),
            ChangeKind::Modified => {
                let old_match = change
                    .old
                    .as_ref()
                    .is_some_and(|o| self.matches(&to_served(&self.info, o)));
                match (old_match, new_match) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(self.event(kind, new))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(&json!({"type": "BOOKMARK", "object": {
            "apiVersion": self.info.api_version(),
            "kind": self.info.kind,
            "metadata": metadata,
        }}))
    }
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).expect("json");
    b.push(b'\n');
    Bytes::from(b)
}

/// Starts a watch; the returned stream is the response body.
pub fn start(
    shared: Arc<Shared>,
    p: WatchParams,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ApiError> {
    let start_rv = match p.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{s}\"")))?,
        ),
    };
    let mut first: Vec<Bytes> = Vec::new();
    let mut close_after_first = false;
    let rx = {
        let mut st = shared.state.lock().expect("state lock");
        if p.send_initial_events || start_rv.is_none() {
            let ns = p.namespace.as_deref().filter(|_| p.info.namespaced);
            for o in st.list(&p.info.storage, ns) {
                let served = to_served(&p.info, o);
                if p.matches(&served) {
                    first.push(p.event("ADDED", served));
                }
            }
            if p.send_initial_events {
                first.push(p.bookmark(st.rv, true));
            }
        } else if let Some(rv) = start_rv {
            match st.history_since(&p.info.storage, rv) {
                Ok(changes) => first.extend(changes.iter().filter_map(|c| p.render(c))),
                Err(compacted) => {
                    let status =
                        ApiError::expired(format!("too old resource version: {rv} ({compacted})"))
                            .to_status();
                    first.push(line(&json!({"type": "ERROR", "object": status})));
                    close_after_first = true;
                }
            }
        }
        st.subscribe(&p.info.storage)
    };

    let (tx, out) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if close_after_first {
            return;
        }
        forward(shared, p, rx, tx).await;
    });
    Ok(futures::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|b| (Ok(b), out))
    }))
}

async fn forward(
    shared: Arc<Shared>,
    p: WatchParams,
    mut rx: mpsc::UnboundedReceiver<Arc<Change>>,
    tx: mpsc::Sender<Bytes>,
) {
    let deadline = p.timeout.map(|t| tokio::time::Instant::now() + t);
    let sleep_until = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => futures::future::pending::<()>().await,
        }
    };
    tokio::pin!(sleep_until);
    let period = shared.bookmark_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            biased;
            _ = &mut sleep_until => return,
            _ = tx.closed() => return,
            msg = rx.recv() => {
                let Some(change) = msg else { return };
                if let Some(b) = p.render(&change)
                    && tx.send(b).await.is_err()
                {
                    return;
                }
            }
            _ = ticker.tick(), if p.bookmarks => {
                // Drain under the lock so the bookmark's resourceVersion
                // covers every change this watcher could still be sent.
                let (pending, rv, closed) = {
                    let st = shared.state.lock().expect("state lock");
                    let mut pending = Vec::new();
                    let closed = loop {
                        match rx.try_recv() {
                            Ok(c) => pending.push(c),
                            Err(mpsc::error::TryRecvError::Empty) => break false,
                            Err(mpsc::error::TryRecvError::Disconnected) => break true,
                        }
                    };
                    (pending, st.rv, closed)
                };
                for c in pending {
                    if let Some(b) = p.render(&c)
                        && tx.send(b).await.is_err()
                    {
                        return;
                    }
                }
                // A closed subscription (compaction, shutdown) must not hand
                // out a fresh resourceVersion: the client has to see 410.
                if closed || tx.send(p.bookmark(rv, false)).await.is_err() {
                    return;
                }
            }
        }
    }
}
