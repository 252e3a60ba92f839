//! Typed snapshot <-> `kubectl get -o json` `List`, for tests and benchmarks (test support:
//! not in release builds, see [`crate::testing`]).
//!
//! [`snapshot_to_list`] and [`write_snapshot_list`] print a [`ClusterSnapshot`] as the
//! `List` kubectl would; [`snapshot_from_dump`] and [`snapshot_from_documents`] sort such a
//! dump back into typed objects. Tests use the pair to compare the offline reader with the
//! stored-snapshot path on the same objects, and benchmarks to produce large inputs.
//! `crossguard analyze` does not use this module: it streams dumps with
//! [`AnalysisInput::from_reader`](crate::analysis::AnalysisInput::from_reader).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cluster::snapshot::ClusterSnapshot;
use crate::sanitize::{SanitizeError, Sanitizer, sanitize_documents};

/// Reading a dump into a typed snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadDumpError {
    /// The bytes are not JSON/YAML Kubernetes objects.
    #[error(transparent)]
    Sanitize(#[from] SanitizeError),
    /// An object is not a valid instance of its kind.
    #[error(transparent)]
    Dump(#[from] DumpError),
}

/// Parse, sanitize and sort a `kubectl get -o json` (or YAML) dump into a typed snapshot,
/// as the operator's stored-snapshot path would hold the same objects.
pub fn snapshot_from_dump(
    input: &[u8],
    sanitizer: &Sanitizer,
) -> Result<ClusterSnapshot, ReadDumpError> {
    Ok(snapshot_from_documents(sanitize_documents(
        input, sanitizer,
    )?)?)
}

/// A document of the dump could not be read as the kind it claims to be.
#[derive(Debug, thiserror::Error)]
#[error("item {index} ({kind} {name}) is not a valid {kind}")]
pub struct DumpError {
    /// Position of the item in the flattened dump.
    pub index: usize,
    /// Its `kind`.
    pub kind: String,
    /// Its `metadata.name`, if any.
    pub name: String,
    /// What serde said (the `source()`, not repeated in the message).
    #[source]
    pub source: serde_json::Error,
}

/// What was read from a dump besides the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Objects sorted into the snapshot.
    pub used: usize,
    /// Objects of kinds the analysis does not use (Services, Events…), skipped.
    pub skipped: usize,
}

/// Sort sanitized documents into a snapshot. Lists (kind `List` or `…List` with `items`)
/// are flattened; kinds the analysis does not use are skipped. Nodes carry their own
/// instance type and nodegroup labels, so no AWS inventory is needed offline.
pub fn snapshot_from_documents(docs: Vec<Value>) -> Result<ClusterSnapshot, DumpError> {
    snapshot_from_documents_with_stats(docs).map(|(s, _)| s)
}

/// [`snapshot_from_documents`], also saying how many objects were used and skipped.
pub fn snapshot_from_documents_with_stats(
    docs: Vec<Value>,
) -> Result<(ClusterSnapshot, DumpStats), DumpError> {
    let mut snap = ClusterSnapshot::default();
    let mut stats = DumpStats::default();
    let mut stack: Vec<Value> = docs;
    stack.reverse();
    let mut index = 0;
    while let Some(doc) = stack.pop() {
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if (kind == "List" || kind.ends_with("List"))
            && let Value::Object(mut map) = doc
        {
            if let Some(Value::Array(items)) = map.remove("items") {
                // Items of a typed list (PodList) may omit their kind.
                let item_kind = kind
                    .strip_suffix("List")
                    .filter(|k| !k.is_empty())
                    .map(str::to_string);
                stack.extend(items.into_iter().rev().map(|mut item| {
                    if let (Some(k), Value::Object(m)) = (&item_kind, &mut item) {
                        m.entry("kind").or_insert_with(|| Value::String(k.clone()));
                    }
                    item
                }));
            }
            continue;
        }
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        fn take<T: DeserializeOwned>(
            doc: Value,
            index: usize,
            kind: &str,
            name: &str,
        ) -> Result<T, DumpError> {
            serde_json::from_value(doc).map_err(|source| DumpError {
                index,
                kind: kind.to_string(),
                name: name.to_string(),
                source,
            })
        }
        match kind.as_str() {
            "Node" => snap.nodes.push(take(doc, index, &kind, &name)?),
            "Pod" => snap.pods.push(take(doc, index, &kind, &name)?),
            "Deployment" => snap.deployments.push(take(doc, index, &kind, &name)?),
            "ReplicaSet" => snap.replica_sets.push(take(doc, index, &kind, &name)?),
            "StatefulSet" => snap.stateful_sets.push(take(doc, index, &kind, &name)?),
            "DaemonSet" => snap.daemon_sets.push(take(doc, index, &kind, &name)?),
            "Job" => snap.jobs.push(take(doc, index, &kind, &name)?),
            "CronJob" => snap.cron_jobs.push(take(doc, index, &kind, &name)?),
            "PodDisruptionBudget" => snap
                .pod_disruption_budgets
                .push(take(doc, index, &kind, &name)?),
            _ => {
                stats.skipped += 1;
                index += 1;
                continue;
            }
        }
        stats.used += 1;
        index += 1;
    }
    Ok((snap, stats))
}

/// Serialize a snapshot as one `kubectl get -o json`-style `List` (what
/// [`snapshot_from_documents`] reads back).
pub fn snapshot_to_list(snap: &ClusterSnapshot) -> Value {
    let mut items: Vec<Value> = Vec::new();
    fn push<T: serde::Serialize>(items: &mut Vec<Value>, objs: &[T]) {
        items.extend(
            objs.iter()
                .map(|o| serde_json::to_value(o).expect("k8s objects serialize")),
        );
    }
    push(&mut items, &snap.nodes);
    push(&mut items, &snap.deployments);
    push(&mut items, &snap.replica_sets);
    push(&mut items, &snap.stateful_sets);
    push(&mut items, &snap.daemon_sets);
    push(&mut items, &snap.jobs);
    push(&mut items, &snap.cron_jobs);
    push(&mut items, &snap.pod_disruption_budgets);
    push(&mut items, &snap.pods);
    serde_json::json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "" }, "items": items })
}

/// Write a snapshot as one `kubectl get -o json`-style `List`, streaming (no
/// intermediate [`Value`]; used to produce large benchmark inputs).
pub fn write_snapshot_list(
    snap: &ClusterSnapshot,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    out.write_all(
        br#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":["#,
    )?;
    let mut first = true;
    let mut item = |out: &mut dyn std::io::Write, v: &dyn erased::Item| -> std::io::Result<()> {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        v.write(out)
    };
    for o in &snap.nodes {
        item(out, o)?;
    }
    for o in &snap.deployments {
        item(out, o)?;
    }
    for o in &snap.replica_sets {
        item(out, o)?;
    }
    for o in &snap.stateful_sets {
        item(out, o)?;
    }
    for o in &snap.daemon_sets {
        item(out, o)?;
    }
    for o in &snap.jobs {
        item(out, o)?;
    }
    for o in &snap.cron_jobs {
        item(out, o)?;
    }
    for o in &snap.pod_disruption_budgets {
        item(out, o)?;
    }
    for o in &snap.pods {
        item(out, o)?;
    }
    out.write_all(b"]}")
}

mod erased {
    /// Any serializable object, written as compact JSON.
    pub trait Item {
        fn write(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;
    }
    impl<T: serde::Serialize> Item for T {
        fn write(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
            serde_json::to_writer(out, self).map_err(std::io::Error::other)
        }
    }
}
