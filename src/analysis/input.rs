//! What the analysis reads: a lean, allow-listed view of the cluster objects, parsed
//! straight from `kubectl get -o json` bytes (or moved out of a typed snapshot).
//!
//! # Why a second shape
//! The typed [`ClusterSnapshot`] (k8s-openapi objects, sanitized) is what crossguard
//! stores. The analysis needs far less of it: names, labels, owner references, resource
//! requests, scheduling constraints, volume kinds, PodDisruptionBudgets and node
//! capacity. [`AnalysisInput`] holds exactly that, so `crossguard analyze` can read a
//! dump in one pass: a custom serde visitor looks at each object's `kind` and hands the
//! rest of the object to the lean type of that kind; every other field — and every
//! object of a kind the analysis does not use — is skipped by the parser without being
//! copied or allocated.
//!
//! # Sanitizing
//! The allow-list is the sanitizer on this path, and it is stricter than the stored
//! path's redaction: environment variables, `envFrom`, commands, arguments, probes,
//! lifecycle hooks, CSI attributes, termination messages and all annotations but the few
//! scheduling ones in [`KEPT_ANNOTATIONS`] are skipped over in the input bytes, never
//! copied out of them, so
//! no rule has to recognise them. What is kept goes through the same value rules as
//! [`Sanitizer`]: label values (of objects, pod templates and PodDisruptionBudgets'
//! `spec.selector`) and the kept annotations are redacted when
//! they look like secrets, exactly as in the stored snapshot, so both paths give the
//! same analysis.
//!
//! The lean types keep the Kubernetes API's field names (camelCase on the wire) and
//! meanings, and reuse k8s-openapi's types for small leaves (label selectors, taints,
//! tolerations, owner references, quantities).
//!
//! # Document shapes
//! A JSON object or `List` (nested lists and typed lists such as `PodList`, whose items
//! may omit `kind`), a JSON stream, a top-level JSON array of objects, or multi-document
//! YAML. `kind` normally precedes `metadata`/`spec`/`status` (kubectl and the API server
//! write it first); when it does not, the parts seen before it are buffered and decoded
//! once the kind is known.

use std::collections::HashMap;

use compact_str::CompactString;
use std::fmt;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, PodAffinityTerm, Taint, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde_json::Value;

use crate::cluster::snapshot::{ClusterSnapshot, Object};

mod split;
use crate::sanitize::{AnnotationRule, REDACTED, Sanitizer};

/// Annotations the analysis reads; every other annotation is skipped unread.
pub(crate) const KEPT_ANNOTATIONS: [&str; 6] = [
    "cluster-autoscaler.kubernetes.io/safe-to-evict",
    "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes",
    "cluster-autoscaler.kubernetes.io/scale-down-disabled",
    "karpenter.sh/do-not-disrupt",
    "kubernetes.io/config.mirror",
    // What a Fargate pod is billed for, e.g. "0.5vCPU 1GB" (set by EKS).
    "CapacityProvisioned",
];

/// A small string-keyed map as the analysis input keeps it (labels, kept annotations,
/// resource requests, capacity): its entries in one `Vec`, sorted by key, looked up by
/// binary search. Objects carry several of these with a handful of entries each, where a
/// `BTreeMap` would allocate a 544-byte node for even one entry; on a 5,000-node dump that
/// was most of the analysis input's memory (BENCHMARKS.md, "Streaming `crossguard
/// analyze`"). Duplicate keys in the input keep the last value, as a `BTreeMap` would.
pub type SmallMap<V> = litemap::LiteMap<CompactString, V>;

/// The objects the analysis reads, reduced to the fields it uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalysisInput {
    /// When the snapshot was taken (RFC 3339); empty for dumps.
    pub taken_at: String,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Pods of all namespaces.
    pub pods: Vec<Pod>,
    /// Deployments (spot eligibility).
    pub deployments: Vec<Deployment>,
    /// ReplicaSets (to map pods to their Deployments).
    pub replica_sets: Vec<ReplicaSet>,
    /// PodDisruptionBudgets.
    pub pod_disruption_budgets: Vec<PodDisruptionBudget>,
    /// Objects of kinds the analysis does not use (Services, StatefulSets, Events…).
    pub skipped: usize,
}

/// Object metadata: identity, labels, owners and the annotations in [`KEPT_ANNOTATIONS`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: Option<CompactString>,
    pub namespace: Option<CompactString>,
    pub uid: Option<CompactString>,
    pub labels: Option<SmallMap<CompactString>>,
    #[serde(default, deserialize_with = "kept_annotations")]
    pub annotations: Option<SmallMap<CompactString>>,
    pub owner_references: Option<Vec<OwnerReference>>,
    /// When the object was created; `None` when absent or not an RFC 3339 time (only
    /// automation reads it, for a node's age).
    #[serde(default, deserialize_with = "lenient_time")]
    pub creation_timestamp: Option<jiff::Timestamp>,
}

/// An RFC 3339 time, or `None` when the value is absent, null or no such time.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<jiff::Timestamp>, D::Error> {
    let text = Option::<CompactString>::deserialize(d)?;
    Ok(text.and_then(|t| t.parse().ok()))
}

/// An owner reference: which object, and whether it is the managing controller.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct OwnerReference {
    #[serde(default)]
    pub kind: CompactString,
    #[serde(default)]
    pub name: CompactString,
    #[serde(default)]
    pub uid: CompactString,
    pub controller: Option<bool>,
}

/// A Node: labels, providerID, taints, schedulability, capacity and readiness.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Node {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<NodeSpec>,
    pub status: Option<NodeStatus>,
}

/// The part of a Node's spec the analysis reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(rename = "providerID")]
    pub provider_id: Option<CompactString>,
    pub taints: Option<Vec<Taint>>,
    pub unschedulable: Option<bool>,
}

/// The part of a Node's status the analysis reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct NodeStatus {
    pub allocatable: Option<SmallMap<CompactString>>,
    pub capacity: Option<SmallMap<CompactString>>,
    pub conditions: Option<Vec<Condition>>,
}

/// A status condition: its type and status only.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Condition {
    #[serde(rename = "type", default)]
    pub type_: CompactString,
    #[serde(default)]
    pub status: CompactString,
}

/// A Pod: identity, owners, scheduling constraints, requests and phase.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
    pub status: Option<PodStatus>,
}

/// The part of a Pod's status the analysis reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PodStatus {
    pub phase: Option<CompactString>,
}

/// A pod spec without anything a container runs with (env, command, probes…).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub node_name: Option<CompactString>,
    pub node_selector: Option<SmallMap<CompactString>>,
    #[serde(default)]
    pub containers: Vec<Container>,
    pub init_containers: Option<Vec<Container>>,
    pub resources: Option<Resources>,
    pub overhead: Option<SmallMap<CompactString>>,
    pub volumes: Option<Vec<Volume>>,
    pub affinity: Option<Affinity>,
    pub tolerations: Option<Vec<Toleration>>,
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

/// A container: its requests and (for init containers) whether it is a sidecar.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub resources: Option<Resources>,
    pub restart_policy: Option<CompactString>,
}

/// Resource requirements: the requests only (limits do not affect scheduling).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Resources {
    pub requests: Option<SmallMap<CompactString>>,
}

/// A volume: its name and which kinds of source it has (their contents are not read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    #[serde(default)]
    pub name: CompactString,
    #[serde(default, deserialize_with = "present")]
    pub host_path: Option<Present>,
    pub empty_dir: Option<EmptyDir>,
    #[serde(default, deserialize_with = "present")]
    pub persistent_volume_claim: Option<Present>,
    #[serde(default, deserialize_with = "present")]
    pub ephemeral: Option<Present>,
}

/// Marks a field that exists; its content was skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Present;

/// An emptyDir volume source: its medium only.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EmptyDir {
    pub medium: Option<CompactString>,
}

/// The required parts of a pod's affinity.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    pub node_affinity: Option<NodeAffinity>,
    pub pod_affinity: Option<PodAffinity>,
    pub pod_anti_affinity: Option<PodAffinity>,
}

/// Required node affinity only (preferences do not constrain placement).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinity {
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
}

/// Required node affinity: OR of its terms.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    #[serde(default)]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// One node selector term: AND of its requirements.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    pub match_expressions: Option<Vec<NodeSelectorRequirement>>,
    pub match_fields: Option<Vec<NodeSelectorRequirement>>,
}

/// Required pod (anti-)affinity terms only.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinity {
    pub required_during_scheduling_ignored_during_execution: Option<Vec<PodAffinityTerm>>,
}

/// A Deployment: replicas and pod template (spot eligibility).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Deployment {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<DeploymentSpec>,
}

/// The part of a Deployment's spec the analysis reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DeploymentSpec {
    pub replicas: Option<i32>,
    #[serde(default)]
    pub template: PodTemplateSpec,
}

/// A pod template: its labels and pod spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PodTemplateSpec {
    pub metadata: Option<ObjectMeta>,
    pub spec: Option<PodSpec>,
}

/// A ReplicaSet: identity and owners are all the analysis needs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ReplicaSet {
    #[serde(default)]
    pub metadata: ObjectMeta,
}

/// A PodDisruptionBudget: selector, budget and the disruption controller's verdict.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PodDisruptionBudget {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<PdbSpec>,
    pub status: Option<PdbStatus>,
}

impl PodDisruptionBudget {
    /// `spec.selector`, if the PDB has a spec and a selector. Without one it selects no
    /// pod (policy/v1), and the analysis's selector matching answers `false` for `None`.
    pub fn selector(&self) -> Option<&LabelSelector> {
        self.spec.as_ref().and_then(|s| s.selector.as_ref())
    }
}

/// The budget of a PodDisruptionBudget.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbSpec {
    pub selector: Option<LabelSelector>,
    pub max_unavailable: Option<IntOrString>,
    pub min_available: Option<IntOrString>,
}

/// What the disruption controller computed for a PodDisruptionBudget.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbStatus {
    #[serde(default)]
    pub expected_pods: i32,
    #[serde(default)]
    pub disruptions_allowed: i32,
}

/// `Some(Present)` when the field is there and not null, without reading its content.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Present>, D::Error> {
    Ok(Option::<IgnoredAny>::deserialize(d)?.map(|_| Present))
}

/// Read only the annotations in [`KEPT_ANNOTATIONS`]; the others are skipped unread.
fn kept_annotations<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SmallMap<CompactString>>, D::Error> {
    struct Kept;
    impl<'de> Visitor<'de> for Kept {
        type Value = Option<SmallMap<CompactString>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of annotations")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kept = SmallMap::new();
            while let Some(key) = map.next_key_seed(KeyOf(&KEPT_ANNOTATIONS))? {
                match key {
                    Some(i) => {
                        let value: CompactString = map.next_value()?;
                        kept.insert(KEPT_ANNOTATIONS[i].into(), value);
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(Some(kept))
        }
    }
    d.deserialize_option(Kept)
}

/// A map key compared against a fixed list without allocating: `Some(position)` or `None`.
struct KeyOf<'k>(&'k [&'static str]);

impl<'de> DeserializeSeed<'de> for KeyOf<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyOf<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|k| *k == v))
    }
}

// ------------------------------------------------------------------ reading a dump

/// Reading a dump for offline analysis failed. Messages carry the document, the object's
/// position and kind, line and column; a type error may quote the offending value of a
/// field the analysis reads, never of a skipped one (env values are never looked at).
/// Each message names the document and object; the parser's error is the `source()`, so
/// `crossguard analyze`'s error chain prints it once, after them.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The input looked like JSON but is not valid JSON (nor valid YAML), or an object
    /// is not a valid instance of its kind.
    #[error("reading JSON document {index} failed{at}")]
    Json {
        /// 0-based position of the top-level document.
        index: usize,
        /// Which object of the document, when one was being decoded (` at object 3 (Pod)`).
        at: String,
        /// The parser error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The input is not valid YAML, or an object is not a valid instance of its kind.
    #[error("reading YAML document {index} failed{at}")]
    Yaml {
        /// 0-based position of the YAML document.
        index: usize,
        /// Which object of the document, when one was being decoded (` at object 3 (Pod)`).
        at: String,
        /// The parser error (with line and column).
        #[source]
        source: serde_yaml::Error,
    },
    /// A CPU or memory quantity the analysis needs is not a Kubernetes quantity
    /// (`cpu: "lots"`): refused rather than read as zero. The API server never stores
    /// one, so it comes from an edited or generated dump.
    #[error("{kind} {name}: {field} {value:?} is not a Kubernetes quantity (e.g. 250m, 2, 512Mi)")]
    Quantity {
        /// Node or Pod.
        kind: &'static str,
        /// `namespace/name` or `name`.
        name: String,
        /// Where, e.g. `spec.containers[web].resources.requests.cpu`.
        field: String,
        /// The value found.
        value: String,
    },
    /// Reading the input itself failed (an I/O error from the file or pipe, not bad
    /// content); the caller's context names the file.
    #[error("reading the input failed")]
    Read {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A document is a scalar or an array of scalars: refused rather than passed over.
    #[error("document {index} is {found}, not a Kubernetes object")]
    NotAnObject {
        /// 0-based position of the document.
        index: usize,
        /// What was found instead.
        found: &'static str,
    },
}

impl InputError {
    /// Label for metrics and Event reasons: every variant is bad input.
    pub fn category(&self) -> &'static str {
        "InvalidInput"
    }

    /// The input is not JSON at all (as opposed to JSON with a wrong value).
    fn is_json_syntax(&self) -> bool {
        matches!(self, InputError::Json { source, .. }
            if source.classify() == serde_json::error::Category::Syntax)
    }

    /// An I/O error met while parsing a stream is a [`Read`](Self::Read) error, not bad
    /// JSON: serde_json wraps it, this unwraps it.
    fn from_json(index: usize, at: String, source: serde_json::Error) -> Self {
        if source.classify() == serde_json::error::Category::Io {
            InputError::Read {
                source: source.into(),
            }
        } else {
            InputError::Json { index, at, source }
        }
    }
}

/// Capacity of the buffer a streamed dump is read through (1 MiB: few system calls, and
/// nothing next to a dump of hundreds of MiB).
const READ_BUFFER: usize = 1 << 20;

/// How much of a stream starting with `{` is kept for reading it again as YAML when it
/// turns out not to be JSON (`{kind: Pod}` is YAML flow syntax). A stream that was valid
/// JSON for longer than this is JSON: its syntax error is reported as such.
const YAML_RETRY_LIMIT: usize = READ_BUFFER;

/// A reader that keeps what it has read, up to a limit, so that the start of a stream can
/// be read again.
struct Replay<R> {
    source: R,
    /// Everything read so far, or `None` once that exceeded the limit.
    seen: Option<Vec<u8>>,
    limit: usize,
}

impl<R: std::io::Read> Replay<R> {
    fn new(source: R, limit: usize) -> Self {
        Replay {
            source,
            seen: Some(Vec::new()),
            limit,
        }
    }

    /// The whole input, when all that was read so far was kept: the kept bytes, then the
    /// rest of the source.
    fn into_whole(mut self) -> Result<Option<Vec<u8>>, InputError> {
        let Some(mut all) = self.seen.take() else {
            return Ok(None);
        };
        std::io::Read::read_to_end(&mut self.source, &mut all)
            .map_err(|source| InputError::Read { source })?;
        Ok(Some(all))
    }
}

impl<R: std::io::Read> std::io::Read for Replay<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.source.read(buf)?;
        if let Some(seen) = &mut self.seen {
            if seen.len() + n <= self.limit {
                seen.extend_from_slice(&buf[..n]);
            } else {
                self.seen = None;
            }
        }
        Ok(n)
    }
}

impl AnalysisInput {
    /// Read a `kubectl get -o json` (or YAML) dump: objects, Lists, JSON streams, arrays,
    /// multi-document YAML. Kinds the analysis does not use are counted in
    /// [`skipped`](Self::skipped); what is kept is redacted by `sanitizer`'s value rules.
    pub fn from_dump(input: &[u8], sanitizer: &Sanitizer) -> Result<Self, InputError> {
        let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
        let out = match input.iter().find(|b| !b.is_ascii_whitespace()) {
            None => AnalysisInput::default(),
            Some(b'{' | b'[') => match read_json(serde_json::Deserializer::from_slice(input)) {
                // `{a: 1}` is YAML flow syntax, not JSON; report the JSON error if it is
                // neither. Valid JSON with a wrong value is not retried: YAML would read
                // `null` or `5` as strings and so accept what JSON rightly refused.
                Err(json_err) if json_err.is_json_syntax() => {
                    read_yaml(input).map_err(|_| json_err)?
                }
                result => result?,
            },
            Some(_) => read_yaml(input)?,
        };
        out.settle_all(sanitizer)
    }

    /// [`from_dump`](Self::from_dump) from a stream (a file, stdin), without reading it
    /// into memory first: JSON is read through a window of a few MiB, and the `items` of
    /// a top-level List are cut out of it, decoded, checked and redacted on every core,
    /// in batches of about 4 MiB merged back in document order (`split`); the memory
    /// needed is what the analysis keeps plus the batches in flight, not the dump's size.
    /// Gives the same result and the same errors as `from_dump` on the same bytes, with
    /// these exceptions: YAML is read whole first (serde_yaml parses from memory); input
    /// that starts with `{` but is no JSON is only retried as YAML flow syntax when no
    /// more than its first MiB had been read as the error was found (the List reader
    /// reads ahead a few MiB, and how a pipe hands the bytes out can matter); a comma
    /// after a List's last item is reported as `expected value` where the whole buffer
    /// says `trailing comma`; and serde_json's nesting limit counts from each List item
    /// rather than from the document, so items may nest two levels deeper. An I/O error
    /// is [`InputError::Read`].
    pub fn from_reader(
        reader: impl std::io::Read,
        sanitizer: &Sanitizer,
    ) -> Result<Self, InputError> {
        use std::io::{BufRead, Read};
        let io = |source| InputError::Read { source };
        let mut source = Replay::new(reader, YAML_RETRY_LIMIT);
        // A byte-order mark is dropped even when the first reads hand out fewer than its
        // three bytes (a pipe may).
        let mut head = Vec::with_capacity(3);
        (&mut source).take(3).read_to_end(&mut head).map_err(io)?;
        let rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
        let mut input = std::io::BufReader::with_capacity(READ_BUFFER, rest.chain(&mut source));
        // The first byte that is not whitespace says JSON or YAML; the whitespace before
        // it is kept for YAML, where indentation matters.
        let mut lead = Vec::new();
        let first = loop {
            let buf = input.fill_buf().map_err(io)?;
            if buf.is_empty() {
                break None;
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    let first = buf[i];
                    lead.extend_from_slice(&buf[..i]);
                    input.consume(i);
                    break Some(first);
                }
                None => {
                    let n = buf.len();
                    lead.extend_from_slice(buf);
                    input.consume(n);
                }
            }
        };
        match first {
            None => Ok(AnalysisInput::default()),
            Some(b'{' | b'[') => {
                // Checked and redacted as it is read, batch by batch on the workers.
                let json = split::read_json_stream(input, &lead, sanitizer);
                match json {
                    Err(json_err) if json_err.is_json_syntax() => match source.into_whole()? {
                        Some(all) => {
                            let all = all.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&all);
                            read_yaml(all).map_err(|_| json_err)?.settle_all(sanitizer)
                        }
                        None => Err(json_err),
                    },
                    result => result,
                }
            }
            Some(_) => {
                let mut all = lead;
                input.read_to_end(&mut all).map_err(io)?;
                read_yaml(&all)?.settle_all(sanitizer)
            }
        }
    }

    /// Check and redact everything read ([`settle`](Self::settle) from the start); the
    /// first bad quantity is the error.
    fn settle_all(mut self, sanitizer: &Sanitizer) -> Result<Self, InputError> {
        let mut bad = BadQuantities::default();
        self.settle(
            Settled::default(),
            sanitizer,
            &mut Verdicts::new(),
            &mut bad,
        );
        bad.into_result().map(|()| self)
    }

    /// Check the quantities of the objects after those `from` counts (recording in `bad`
    /// the first bad node and pod, unless it holds earlier ones) and redact them; returns
    /// the counts after. Read in pieces, a dump is settled piece by piece in document
    /// order, which finds the same first bad node and pod as one pass over the whole.
    fn settle(
        &mut self,
        from: Settled,
        sanitizer: &Sanitizer,
        verdicts: &mut Verdicts,
        bad: &mut BadQuantities,
    ) -> Settled {
        self.check_quantities(from, bad);
        self.redact(from, sanitizer, verdicts);
        Settled::of(self)
    }

    /// Every CPU and memory quantity the analysis reads must parse: node allocatable and
    /// capacity, and pod, container and init-container requests and overhead. Looks at
    /// the nodes and pods after `from`, and only for a kind `bad` holds no error of yet.
    fn check_quantities(&self, from: Settled, bad: &mut BadQuantities) {
        if bad.node.is_none() {
            bad.node = self.nodes[from.nodes..]
                .iter()
                .find_map(|n| Self::check_node(n).err());
        }
        if bad.pod.is_none() {
            bad.pod = self.pods[from.pods..]
                .iter()
                .find_map(|p| Self::check_pod(p).err());
        }
    }

    /// The quantities of one node: its first bad one is the error.
    fn check_node(n: &Node) -> Result<(), InputError> {
        let name = || n.metadata.name.as_deref().unwrap_or_default().to_string();
        let status = n.status.as_ref();
        check_quantity_map(
            "Node",
            &name,
            &|r| format!("status.allocatable.{r}"),
            status.and_then(|s| s.allocatable.as_ref()),
        )?;
        check_quantity_map(
            "Node",
            &name,
            &|r| format!("status.capacity.{r}"),
            status.and_then(|s| s.capacity.as_ref()),
        )
    }

    /// The quantities of one pod: its first bad one is the error.
    fn check_pod(p: &Pod) -> Result<(), InputError> {
        let name = || {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default()
            )
        };
        let Some(spec) = &p.spec else { return Ok(()) };
        check_quantity_map(
            "Pod",
            &name,
            &|r| format!("spec.overhead.{r}"),
            spec.overhead.as_ref(),
        )?;
        check_quantity_map(
            "Pod",
            &name,
            &|r| format!("spec.resources.requests.{r}"),
            spec.resources.as_ref().and_then(|r| r.requests.as_ref()),
        )?;
        for (list, containers) in [
            ("containers", Some(&spec.containers)),
            ("initContainers", spec.init_containers.as_ref()),
        ] {
            for (i, c) in containers.into_iter().flatten().enumerate() {
                check_quantity_map(
                    "Pod",
                    &name,
                    &|r| format!("spec.{list}[{i}].resources.requests.{r}"),
                    c.resources.as_ref().and_then(|r| r.requests.as_ref()),
                )?;
            }
        }
        Ok(())
    }

    /// Apply the sanitizer's rules to what the analysis keeps that the sanitizer would
    /// change: label values of objects and templates, `spec.selector` of
    /// PodDisruptionBudgets, and the kept annotations. Label values repeat across
    /// replicas, so each distinct value is judged once (`verdicts` remembers them).
    /// Redacts the objects after those `from` counts.
    fn redact(&mut self, from: Settled, sanitizer: &Sanitizer, verdicts: &mut Verdicts) {
        let mut judge = |v: &str| match verdicts.get(v) {
            Some(&secret) => secret,
            None => {
                let secret = sanitizer.looks_like_secret(v);
                verdicts.insert(v.to_string(), secret);
                secret
            }
        };
        let meta = |m: &mut ObjectMeta, judge: &mut dyn FnMut(&str) -> bool| {
            for (_, v) in m.labels.iter_mut().flatten() {
                if judge(v) {
                    *v = REDACTED.into();
                }
            }
            // Few and rare (only the kept ones): the sanitizer's own rule, name included.
            if let Some(annotations) = &mut m.annotations {
                let kept = std::mem::take(annotations)
                    .into_iter()
                    .filter_map(|(k, v)| match sanitizer.annotation_rule(&k, &v) {
                        AnnotationRule::Keep => Some((k, v)),
                        AnnotationRule::Redact => Some((k, REDACTED.into())),
                        AnnotationRule::Remove => None,
                    });
                *annotations = kept.collect();
            }
        };
        for n in &mut self.nodes[from.nodes..] {
            meta(&mut n.metadata, &mut judge);
        }
        for p in &mut self.pods[from.pods..] {
            meta(&mut p.metadata, &mut judge);
        }
        for d in &mut self.deployments[from.deployments..] {
            meta(&mut d.metadata, &mut judge);
            if let Some(m) = d.spec.as_mut().and_then(|s| s.template.metadata.as_mut()) {
                meta(m, &mut judge);
            }
        }
        for r in &mut self.replica_sets[from.replica_sets..] {
            meta(&mut r.metadata, &mut judge);
        }
        for p in &mut self.pod_disruption_budgets[from.pod_disruption_budgets..] {
            meta(&mut p.metadata, &mut judge);
            if let Some(sel) = p.spec.as_mut().and_then(|s| s.selector.as_mut()) {
                let values = sel.match_labels.iter_mut().flatten().map(|(_, v)| v);
                let listed = sel.match_expressions.iter_mut().flatten();
                for v in values.chain(listed.flat_map(|e| e.values.iter_mut().flatten())) {
                    if judge(v) {
                        *v = REDACTED.to_string();
                    }
                }
            }
        }
    }
}

/// One quantity map of an object (`requests`, `allocatable`, ...): its first CPU or
/// memory quantity that does not parse is the error, named by `kind`, `name()` and
/// `field(resource)`.
fn check_quantity_map(
    kind: &'static str,
    name: &dyn Fn() -> String,
    field: &dyn Fn(&str) -> String,
    map: Option<&SmallMap<CompactString>>,
) -> Result<(), InputError> {
    for (resource, q) in map.into_iter().flatten() {
        let ok = match resource.as_str() {
            "cpu" => super::quantity::parse_cpu_millis(q).is_some(),
            "memory" => super::quantity::parse_memory_bytes(q).is_some(),
            _ => true,
        };
        if !ok {
            return Err(InputError::Quantity {
                kind,
                name: name(),
                field: field(resource),
                value: q.to_string(),
            });
        }
    }
    Ok(())
}

/// The sanitizer's verdict on each distinct label value met (`true`: looks like a secret).
type Verdicts = HashMap<String, bool>;

/// How many objects of each kind, from the front of an [`AnalysisInput`], are settled:
/// their quantities checked and their labels and annotations redacted.
#[derive(Debug, Default, Clone, Copy)]
struct Settled {
    nodes: usize,
    pods: usize,
    deployments: usize,
    replica_sets: usize,
    pod_disruption_budgets: usize,
}

impl Settled {
    /// Everything `input` holds.
    fn of(input: &AnalysisInput) -> Settled {
        Settled {
            nodes: input.nodes.len(),
            pods: input.pods.len(),
            deployments: input.deployments.len(),
            replica_sets: input.replica_sets.len(),
            pod_disruption_budgets: input.pod_disruption_budgets.len(),
        }
    }
}

/// The first node and the first pod with a CPU or memory quantity that does not parse,
/// in the order the objects are kept (document order, except that items without a kind
/// follow the other items of their List, as in every reading). A bad node is reported
/// before a bad pod, wherever each is.
#[derive(Debug, Default)]
struct BadQuantities {
    node: Option<InputError>,
    pod: Option<InputError>,
}

impl BadQuantities {
    /// Add what a later part of the document found.
    fn then(&mut self, later: BadQuantities) {
        if self.node.is_none() {
            self.node = later.node;
        }
        if self.pod.is_none() {
            self.pod = later.pod;
        }
    }

    fn into_result(self) -> Result<(), InputError> {
        match self.node.or(self.pod) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Read a JSON document or stream of documents, from a slice or a reader.
fn read_json<'de, R: serde_json::de::Read<'de>>(
    de: serde_json::Deserializer<R>,
) -> Result<AnalysisInput, InputError> {
    let mut out = AnalysisInput::default();
    read_json_into(de, 0, &mut out)?;
    Ok(out)
}

/// [`read_json`] into `out`, the first document being document `index` of the input.
fn read_json_into<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    mut index: usize,
    out: &mut AnalysisInput,
) -> Result<(), InputError> {
    loop {
        let mut sink = Sink::new(out);
        let outcome = TopSeed {
            sink: &mut sink,
            injected: None,
        }
        .deserialize(&mut de)
        .map_err(|source| InputError::from_json(index, sink.failed_at(), source))?;
        if let Top::Scalar(found) = outcome {
            return Err(InputError::NotAnObject { index, found });
        }
        index += 1;
        // Only whitespace left: done. Otherwise another document of the stream follows.
        match de.end() {
            Ok(()) => return Ok(()),
            Err(e) if e.classify() == serde_json::error::Category::Io => {
                return Err(InputError::Read { source: e.into() });
            }
            Err(_) => {}
        }
    }
}

fn read_yaml(input: &[u8]) -> Result<AnalysisInput, InputError> {
    let mut out = AnalysisInput::default();
    for (index, doc) in serde_yaml::Deserializer::from_slice(input).enumerate() {
        let mut sink = Sink::new(&mut out);
        let outcome = TopSeed {
            sink: &mut sink,
            injected: None,
        }
        .deserialize(doc)
        .map_err(|source| InputError::Yaml {
            index,
            at: sink.failed_at(),
            source,
        })?;
        if let Top::Scalar(found) = outcome {
            return Err(InputError::NotAnObject { index, found });
        }
    }
    Ok(out)
}

/// Where parsed objects go.
struct Sink<'o> {
    out: &'o mut AnalysisInput,
    /// Objects begun in the current document, Lists included, in document order (for
    /// error messages).
    objects: usize,
    /// The object being decoded when decoding failed.
    failed: Option<(usize, Kind)>,
}

/// Kinds the analysis reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    Pod,
    Deployment,
    ReplicaSet,
    PodDisruptionBudget,
}

impl Kind {
    fn of(kind: &str) -> Option<Kind> {
        Some(match kind {
            "Node" => Kind::Node,
            "Pod" => Kind::Pod,
            "Deployment" => Kind::Deployment,
            "ReplicaSet" => Kind::ReplicaSet,
            "PodDisruptionBudget" => Kind::PodDisruptionBudget,
            _ => return None,
        })
    }
}

/// What an object's `kind` says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Said {
    /// No `kind` (yet).
    Nothing,
    /// A kind the analysis reads.
    Read(Kind),
    /// `List` or `…List`: its items are objects; typed lists name their items' kind.
    List(Option<String>),
    /// Anything else.
    Other,
}

impl Said {
    fn of(kind: &str) -> Said {
        if let Some(k) = Kind::of(kind) {
            Said::Read(k)
        } else if kind == "List" {
            Said::List(None)
        } else if let Some(item) = kind.strip_suffix("List") {
            Said::List(Some(item.to_string()))
        } else {
            Said::Other
        }
    }
}

impl<'o> Sink<'o> {
    fn new(out: &'o mut AnalysisInput) -> Self {
        Sink {
            out,
            objects: 0,
            failed: None,
        }
    }

    fn failed_at(&self) -> String {
        self.failed
            .map(|(i, kind)| format!(" at object {i} ({kind:?})"))
            .unwrap_or_default()
    }

    /// Decode the rest of object `index` (of kind `kind`) from `map` and keep it.
    fn take<'de, A: MapAccess<'de>>(
        &mut self,
        index: usize,
        kind: Kind,
        map: A,
    ) -> Result<(), A::Error> {
        let de = de::value::MapAccessDeserializer::new(map);
        let failed = &mut self.failed;
        let context = |e: A::Error| {
            *failed = Some((index, kind));
            e
        };
        match kind {
            Kind::Node => self.out.nodes.push(Node::deserialize(de).map_err(context)?),
            Kind::Pod => self.out.pods.push(Pod::deserialize(de).map_err(context)?),
            Kind::Deployment => self
                .out
                .deployments
                .push(Deployment::deserialize(de).map_err(context)?),
            Kind::ReplicaSet => self
                .out
                .replica_sets
                .push(ReplicaSet::deserialize(de).map_err(context)?),
            Kind::PodDisruptionBudget => self
                .out
                .pod_disruption_budgets
                .push(PodDisruptionBudget::deserialize(de).map_err(context)?),
        }
        Ok(())
    }
}

/// A top-level document: an object, or an array of objects.
struct TopSeed<'s, 'o> {
    sink: &'s mut Sink<'o>,
    /// The items of this document's List, when they were read apart (see [`Injected`]).
    injected: Option<Injected>,
}

/// The `items` of a top-level List that the parallel reader ([`split`]) has already
/// decoded into the output: the List's own visit takes these in place of its `items`
/// value (which it then only skips), so that everything else about the List — its kind,
/// items without a kind resolved by it, object numbering — stays the code above.
#[derive(Debug, Clone)]
struct Injected {
    /// Items that did not say their kind, by their object index in the document.
    orphans: Vec<Unresolved>,
    /// How many objects the items held (Lists among them count their own items).
    objects: usize,
}

/// What a top-level document was.
enum Top {
    Read,
    Scalar(&'static str),
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes object, a List, or an array of objects")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top, A::Error> {
        let sink = self.sink;
        // An object without a kind, even after its List said nothing: not ours.
        let seed = ObjectSeed {
            sink: &mut *sink,
            hint: None,
            injected: self.injected,
        };
        if seed.visit_map(map)?.is_some() {
            sink.out.skipped += 1;
        }
        Ok(Top::Read)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while let Some(unresolved) = seq.next_element_seed(ObjectSeed {
            sink: &mut *self.sink,
            hint: None,
            injected: None,
        })? {
            if unresolved.is_some() {
                self.sink.out.skipped += 1;
            }
        }
        Ok(Top::Read)
    }
    // A YAML document that is empty or only a comment.
    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::Read)
    }
    fn visit_none<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::Read)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Scalar("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Scalar("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Scalar("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Scalar("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Scalar("a string"))
    }
}

/// An object found without a kind (its position in the document and its
/// `metadata`/`spec`/`status`), kept until a List around it says what its items are.
type Unresolved = (usize, serde_json::Map<String, Value>);

/// One object (or List). Its value is `Some` when the object had no kind and no hint.
struct ObjectSeed<'s, 'o> {
    sink: &'s mut Sink<'o>,
    /// The item kind of the typed List around it, if known.
    hint: Option<Kind>,
    /// Its List's items, already read (only for a top-level document).
    injected: Option<Injected>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_> {
    type Value = Option<Unresolved>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

const KEYS: [&str; 5] = ["kind", "items", "metadata", "spec", "status"];

impl<'de> Visitor<'de> for ObjectSeed<'_, '_> {
    type Value = Option<Unresolved>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let sink = self.sink;
        let mut injected = self.injected;
        let index = sink.objects;
        sink.objects += 1;
        let mut said = Said::Nothing;
        // Parts seen before the kind (rare: kubectl and the API server write it first).
        let mut early: Vec<(&'static str, Value)> = Vec::new();
        // Items of a List whose kind came after them and that did not say their own.
        let mut orphans: Vec<Unresolved> = Vec::new();
        while let Some(key) = map.next_key_seed(KeyOf(&KEYS))? {
            match key.map(|i| KEYS[i]) {
                Some("kind") => {
                    if let Some(kind) = map.next_value::<Option<String>>()? {
                        said = Said::of(&kind);
                    }
                }
                // Only a List has items (or an object that has not said its kind yet).
                Some("items") if matches!(said, Said::List(_) | Said::Nothing) => {
                    if let Some(read) = injected.take() {
                        map.next_value::<IgnoredAny>()?;
                        sink.objects += read.objects;
                        orphans.extend(read.orphans);
                        continue;
                    }
                    let hint = match &said {
                        Said::List(Some(item)) => Kind::of(item),
                        _ => None,
                    };
                    orphans.extend(map.next_value_seed(ItemsSeed {
                        sink: &mut *sink,
                        hint,
                    })?);
                }
                Some("items") => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(part) => {
                    let kind = match &said {
                        Said::Read(k) => Some(*k),
                        Said::Nothing => self.hint,
                        Said::List(_) | Said::Other => None,
                    };
                    if let Some(kind) = kind {
                        sink.take(
                            index,
                            kind,
                            Rest {
                                early: early.into_iter(),
                                early_value: None,
                                pending: Some(part),
                                map: &mut map,
                            },
                        )?;
                        return Ok(None);
                    }
                    if said == Said::Nothing {
                        early.push((part, map.next_value()?));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // Items without a kind belong to the kind a typed List names; anywhere else
        // (a plain List, or items of something that was no List) they are not ours.
        let item_kind = match &said {
            Said::List(item) => item.as_deref().and_then(Kind::of),
            _ => None,
        };
        for (at, orphan) in orphans {
            match item_kind {
                Some(kind) => {
                    let parts =
                        de::value::MapDeserializer::<_, serde_json::Error>::new(orphan.into_iter());
                    sink.take(at, kind, parts).map_err(de::Error::custom)?;
                }
                None => sink.out.skipped += 1,
            }
        }
        let kind = match said {
            Said::Read(k) => k,
            Said::Nothing => match self.hint {
                Some(k) => k,
                None => {
                    let parts = early.into_iter().map(|(k, v)| (k.to_string(), v));
                    return Ok(Some((index, parts.collect())));
                }
            },
            Said::List(_) => return Ok(None),
            Said::Other => {
                sink.out.skipped += 1;
                return Ok(None);
            }
        };
        // Every part came before the kind (or the object has none of them).
        let parts = de::value::MapDeserializer::<_, serde_json::Error>::new(
            early.into_iter().map(|(k, v)| (k.to_string(), v)),
        );
        sink.take(index, kind, parts).map_err(de::Error::custom)?;
        Ok(None)
    }
}

/// The `items` of a List.
struct ItemsSeed<'s, 'o> {
    sink: &'s mut Sink<'o>,
    hint: Option<Kind>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_, '_> {
    type Value = Vec<Unresolved>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_, '_> {
    type Value = Vec<Unresolved>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of Kubernetes objects")
    }
    // `"items": null` is how Go writes an empty list; an object that is no List may have
    // `items` of any shape before it says its kind. Neither holds objects.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut orphans = Vec::new();
        while let Some(o) = seq.next_element_seed(ObjectSeed {
            sink: &mut *self.sink,
            hint: self.hint,
            injected: None,
        })? {
            orphans.extend(o);
        }
        Ok(orphans)
    }
}

/// The rest of an object's map, handed to a derived `Deserialize`: first the parts
/// buffered before the kind, then the key just read, then whatever the map still holds.
struct Rest<'m, A> {
    early: std::vec::IntoIter<(&'static str, Value)>,
    early_value: Option<Value>,
    pending: Option<&'static str>,
    map: &'m mut A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Rest<'_, A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if let Some((key, value)) = self.early.next() {
            self.early_value = Some(value);
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        if let Some(key) = self.pending.take() {
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        self.map.next_key_seed(seed)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.early_value.take() {
            Some(value) => seed.deserialize(value).map_err(de::Error::custom),
            None => self.map.next_value_seed(seed),
        }
    }
}

// ------------------------------------------------------------------ from a typed snapshot
//
// By value: the fields the analysis keeps are moved out of the typed objects, the rest
// is dropped with them, so converting costs no copies (the operator stores the snapshot
// before it converts it).

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

/// A typed object's map (labels, or quantities, whose text is all the analysis reads).
/// `v` mapped by `f` into a new, exactly sized vector. Not `into_iter().map(f).collect()`:
/// that reuses `v`'s allocation when `U` is no larger than `T`, so a lean `Vec<Container>`
/// would keep the whole allocation of the k8s-openapi containers it came from (over a KiB
/// each), for as long as the analysis input lives.
fn remap<T, U>(v: Vec<T>, f: impl FnMut(T) -> U) -> Vec<U> {
    let mut out = Vec::with_capacity(v.len());
    out.extend(v.into_iter().map(f));
    out
}

fn small_map<V: Into<TextOf>>(m: std::collections::BTreeMap<String, V>) -> SmallMap<CompactString> {
    m.into_iter().map(|(k, v)| (k.into(), v.into().0)).collect()
}

/// The text of a typed map value.
struct TextOf(CompactString);

impl From<String> for TextOf {
    fn from(s: String) -> Self {
        TextOf(s.into())
    }
}

impl From<Quantity> for TextOf {
    fn from(q: Quantity) -> Self {
        TextOf(q.0.into())
    }
}

impl From<meta::ObjectMeta> for ObjectMeta {
    fn from(m: meta::ObjectMeta) -> Self {
        ObjectMeta {
            name: m.name.map(Into::into),
            namespace: m.namespace.map(Into::into),
            uid: m.uid.map(Into::into),
            labels: m.labels.map(small_map),
            annotations: m.annotations.map(|mut a| {
                KEPT_ANNOTATIONS
                    .iter()
                    .filter_map(|k| a.remove_entry(*k))
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect()
            }),
            owner_references: m.owner_references.map(|refs| {
                remap(refs, |o| OwnerReference {
                    kind: o.kind.into(),
                    name: o.name.into(),
                    uid: o.uid.into(),
                    controller: o.controller,
                })
            }),
            creation_timestamp: m.creation_timestamp.map(|t| t.0),
        }
    }
}

fn resources(r: Option<core::ResourceRequirements>) -> Option<Resources> {
    r.map(|r| Resources {
        requests: r.requests.map(small_map),
    })
}

impl From<core::Container> for Container {
    fn from(c: core::Container) -> Self {
        Container {
            resources: resources(c.resources),
            restart_policy: c.restart_policy.map(Into::into),
        }
    }
}

impl From<core::Volume> for Volume {
    fn from(v: core::Volume) -> Self {
        Volume {
            name: v.name.into(),
            host_path: v.host_path.map(|_| Present),
            empty_dir: v.empty_dir.map(|e| EmptyDir {
                medium: e.medium.map(Into::into),
            }),
            persistent_volume_claim: v.persistent_volume_claim.map(|_| Present),
            ephemeral: v.ephemeral.map(|_| Present),
        }
    }
}

impl From<core::Affinity> for Affinity {
    fn from(a: core::Affinity) -> Self {
        Affinity {
            node_affinity: a.node_affinity.map(|n| NodeAffinity {
                required_during_scheduling_ignored_during_execution: n
                    .required_during_scheduling_ignored_during_execution
                    .map(|sel| NodeSelector {
                        node_selector_terms: remap(sel.node_selector_terms, |t| NodeSelectorTerm {
                            match_expressions: t.match_expressions,
                            match_fields: t.match_fields,
                        }),
                    }),
            }),
            pod_affinity: a.pod_affinity.map(|p| PodAffinity {
                required_during_scheduling_ignored_during_execution: p
                    .required_during_scheduling_ignored_during_execution,
            }),
            pod_anti_affinity: a.pod_anti_affinity.map(|p| PodAffinity {
                required_during_scheduling_ignored_during_execution: p
                    .required_during_scheduling_ignored_during_execution,
            }),
        }
    }
}

impl From<core::PodSpec> for PodSpec {
    fn from(s: core::PodSpec) -> Self {
        fn all<T, U: From<T>>(v: Option<Vec<T>>) -> Option<Vec<U>> {
            v.map(|v| remap(v, U::from))
        }
        PodSpec {
            node_name: s.node_name.map(Into::into),
            node_selector: s.node_selector.map(small_map),
            containers: remap(s.containers, Container::from),
            init_containers: all(s.init_containers),
            resources: resources(s.resources),
            overhead: s.overhead.map(small_map),
            volumes: all(s.volumes),
            affinity: s.affinity.map(Affinity::from),
            tolerations: s.tolerations,
            topology_spread_constraints: s.topology_spread_constraints,
        }
    }
}

impl From<core::Node> for Node {
    fn from(n: core::Node) -> Self {
        Node {
            metadata: n.metadata.into(),
            spec: n.spec.map(|s| NodeSpec {
                provider_id: s.provider_id.map(Into::into),
                taints: s.taints,
                unschedulable: s.unschedulable,
            }),
            status: n.status.map(|s| NodeStatus {
                allocatable: s.allocatable.map(small_map),
                capacity: s.capacity.map(small_map),
                conditions: s.conditions.map(|cs| {
                    remap(cs, |c| Condition {
                        type_: c.type_.into(),
                        status: c.status.into(),
                    })
                }),
            }),
        }
    }
}

impl From<core::Pod> for Pod {
    fn from(p: core::Pod) -> Self {
        Pod {
            metadata: p.metadata.into(),
            spec: p.spec.map(PodSpec::from),
            status: p.status.map(|s| PodStatus {
                phase: s.phase.map(Into::into),
            }),
        }
    }
}

impl From<k8s_openapi::api::apps::v1::Deployment> for Deployment {
    fn from(d: k8s_openapi::api::apps::v1::Deployment) -> Self {
        Deployment {
            metadata: d.metadata.into(),
            spec: d.spec.map(|s| DeploymentSpec {
                replicas: s.replicas,
                template: PodTemplateSpec {
                    metadata: s.template.metadata.map(ObjectMeta::from),
                    spec: s.template.spec.map(PodSpec::from),
                },
            }),
        }
    }
}

impl From<k8s_openapi::api::apps::v1::ReplicaSet> for ReplicaSet {
    fn from(r: k8s_openapi::api::apps::v1::ReplicaSet) -> Self {
        ReplicaSet {
            metadata: r.metadata.into(),
        }
    }
}

impl From<k8s_openapi::api::policy::v1::PodDisruptionBudget> for PodDisruptionBudget {
    fn from(p: k8s_openapi::api::policy::v1::PodDisruptionBudget) -> Self {
        PodDisruptionBudget {
            metadata: p.metadata.into(),
            spec: p.spec.map(|s| PdbSpec {
                selector: s.selector,
                max_unavailable: s.max_unavailable,
                min_available: s.min_available,
            }),
            status: p.status.map(|s| PdbStatus {
                expected_pods: s.expected_pods,
                disruptions_allowed: s.disruptions_allowed,
            }),
        }
    }
}

impl From<ClusterSnapshot> for AnalysisInput {
    fn from(s: ClusterSnapshot) -> Self {
        fn all<T, U: From<T>>(v: Vec<T>) -> Vec<U> {
            remap(v, U::from)
        }
        AnalysisInput {
            taken_at: s.taken_at,
            skipped: s.stateful_sets.len() + s.daemon_sets.len() + s.jobs.len() + s.cron_jobs.len(),
            nodes: all(s.nodes),
            pods: all(s.pods),
            deployments: all(s.deployments),
            replica_sets: all(s.replica_sets),
            pod_disruption_budgets: all(s.pod_disruption_budgets),
        }
    }
}

impl AnalysisInput {
    /// Keep what the analysis reads of one object the operator's reader listed (already
    /// sanitized): the lean form of Nodes, Pods, Deployments, ReplicaSets and
    /// PodDisruptionBudgets; other kinds are counted in [`skipped`](Self::skipped). The
    /// same as converting a [`ClusterSnapshot`] holding these objects.
    pub fn keep(&mut self, object: Object) {
        match object {
            Object::Node(o) => self.nodes.push(o.into()),
            Object::Pod(o) => self.pods.push(o.into()),
            Object::Deployment(o) => self.deployments.push(o.into()),
            Object::ReplicaSet(o) => self.replica_sets.push(o.into()),
            Object::PodDisruptionBudget(o) => self.pod_disruption_budgets.push(o.into()),
            Object::StatefulSet(_) | Object::DaemonSet(_) | Object::Job(_) | Object::CronJob(_) => {
                self.skipped += 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::analysis::{AnalysisSettings, AwsInventory, PriceTable, analyze};
    use crate::testing::dump;
    use crate::testing::synthetic::{SyntheticSpec, generate};

    fn read(v: &Value) -> AnalysisInput {
        AnalysisInput::from_dump(&serde_json::to_vec(v).unwrap(), &Sanitizer::default()).unwrap()
    }

    /// Equal, or a panic naming the first object that differs (the whole input is huge).
    fn assert_same(a: &AnalysisInput, b: &AnalysisInput) {
        fn first<T: PartialEq + fmt::Debug>(what: &str, a: &[T], b: &[T]) {
            assert_eq!(a.len(), b.len(), "number of {what}");
            if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
                panic!("{what}[{i}] differs:\n{:?}\n{:?}", a[i], b[i]);
            }
        }
        first("nodes", &a.nodes, &b.nodes);
        first("pods", &a.pods, &b.pods);
        first("deployments", &a.deployments, &b.deployments);
        first("replica sets", &a.replica_sets, &b.replica_sets);
        first("PDBs", &a.pod_disruption_budgets, &b.pod_disruption_budgets);
        assert_eq!((&a.taken_at, a.skipped), (&b.taken_at, b.skipped));
    }

    fn names<T>(objs: &[T], meta: impl Fn(&T) -> &ObjectMeta) -> Vec<String> {
        objs.iter()
            .map(|o| meta(o).name.as_deref().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn a_dump_reads_as_the_conversion_of_its_typed_snapshot() {
        let c = generate(&SyntheticSpec {
            nodes: 40,
            pods: 1200,
            seed: 5,
            ..Default::default()
        });
        let mut bytes = Vec::new();
        dump::write_snapshot_list(&c.snapshot, &mut bytes).unwrap();
        let from_dump = AnalysisInput::from_dump(&bytes, &Sanitizer::default()).unwrap();
        let mut converted = AnalysisInput::from(c.snapshot.clone());
        // A dump does not say when it was taken.
        assert!(!converted.taken_at.is_empty());
        converted.taken_at.clear();
        assert!(!from_dump.pods.is_empty() && from_dump.skipped > 0);
        assert_same(&from_dump, &converted);
        // The same bytes as pretty-printed YAML read the same.
        let yaml = serde_yaml::to_string(&dump::snapshot_to_list(&c.snapshot)).unwrap();
        let from_yaml = AnalysisInput::from_dump(yaml.as_bytes(), &Sanitizer::default()).unwrap();
        assert_same(&from_yaml, &converted);
        let settings = AnalysisSettings::default();
        let prices = PriceTable::bundled();
        let offline = analyze(&from_dump, &AwsInventory::default(), &prices, &settings);
        let typed = analyze(
            &AnalysisInput::from(c.snapshot.clone()),
            &AwsInventory::default(),
            &prices,
            &settings,
        );
        let mut typed = serde_json::to_value(&typed).unwrap();
        typed["snapshotTakenAt"] = json!("");
        assert_eq!(serde_json::to_value(&offline).unwrap(), typed);
    }

    #[test]
    fn every_document_shape_is_read() {
        let pod = |name: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"nodeName": "n"}});
        // A JSON stream of a List (nested List inside), an object and an array of objects.
        let mut stream = Vec::new();
        for doc in [
            json!({"apiVersion": "v1", "kind": "List", "items": [
                pod("a"),
                {"kind": "List", "items": [pod("b")]},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}},
                {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"containers": "not a list", "template": 7}},
            ]}),
            pod("c"),
            json!([pod("d"), {"kind": "Node", "metadata": {"name": "n"}}]),
        ] {
            serde_json::to_writer(&mut stream, &doc).unwrap();
            stream.push(b'\n');
        }
        let input = AnalysisInput::from_dump(&stream, &Sanitizer::default()).unwrap();
        assert_eq!(names(&input.pods, |p| &p.metadata), ["a", "b", "c", "d"]);
        assert_eq!(names(&input.nodes, |n| &n.metadata), ["n"]);
        assert_eq!(input.skipped, 2, "the Service and the Widget");

        // A typed list, written by the API server (kind first, items without kind), and
        // the same with `items` before `kind` (alphabetical, as kubectl orders keys).
        let typed = br#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"p1"},"spec":{"nodeName":"n"}}]}"#;
        let input = AnalysisInput::from_dump(typed, &Sanitizer::default()).unwrap();
        assert_eq!(names(&input.pods, |p| &p.metadata), ["p1"]);
        let late = br#"{"apiVersion":"v1","items":[{"metadata":{"name":"p2"},"spec":{"nodeName":"n"}}],"kind":"PodList"}"#;
        let input = AnalysisInput::from_dump(late, &Sanitizer::default()).unwrap();
        assert_eq!(names(&input.pods, |p| &p.metadata), ["p2"]);
        assert_eq!(
            input.pods[0].spec.as_ref().unwrap().node_name.as_deref(),
            Some("n")
        );
        // Parts before the kind, and parts on both sides of it.
        let early = br#"{"spec":{"nodeName":"n"},"metadata":{"name":"p3"},"kind":"Pod"}
            {"metadata":{"name":"p4"},"kind":"Pod","status":{"phase":"Running"},"spec":{"nodeName":"m"}}"#;
        let input = AnalysisInput::from_dump(early, &Sanitizer::default()).unwrap();
        assert_eq!(names(&input.pods, |p| &p.metadata), ["p3", "p4"]);
        assert_eq!(
            input.pods[0].spec.as_ref().unwrap().node_name.as_deref(),
            Some("n")
        );
        let p4 = &input.pods[1];
        assert_eq!(p4.spec.as_ref().unwrap().node_name.as_deref(), Some("m"));
        assert_eq!(
            p4.status.as_ref().unwrap().phase.as_deref(),
            Some("Running")
        );
        // Items of a plain List without a kind, and objects without one, are not ours.
        let input = AnalysisInput::from_dump(
            br#"{"kind":"List","items":[{"metadata":{"name":"x"}}]} {"metadata":{}} {"kind":null}"#,
            &Sanitizer::default(),
        )
        .unwrap();
        assert!(input.pods.is_empty());
        assert_eq!(input.skipped, 3);

        // `items: null` (Go's empty list) holds nothing; `items` of objects that are no
        // List is not looked into, whatever its shape.
        let input = AnalysisInput::from_dump(
            br#"{"kind":"PodList","items":null}
                {"kind":"Widget","items":[{"kind":"Pod","metadata":{"name":"w"}}]}
                {"kind":"Gadget","items":"x"} {"items":{"a":1},"kind":"Gizmo"}"#,
            &Sanitizer::default(),
        )
        .unwrap();
        assert!(input.pods.is_empty());
        assert_eq!(input.skipped, 3);
        // Kindless items of a kindless wrapper are counted too.
        let input =
            AnalysisInput::from_dump(br#"{"items":[{},{},{}]}"#, &Sanitizer::default()).unwrap();
        assert_eq!(input.skipped, 4);

        // Multi-document YAML with an empty document and a comment-only one.
        let yaml = b"kind: Pod\nmetadata:\n  name: y1\nspec:\n  nodeName: n\n---\n---\n# nothing\n---\nkind: PodList\nitems:\n- metadata:\n    name: y2\n";
        let input = AnalysisInput::from_dump(yaml, &Sanitizer::default()).unwrap();
        assert_eq!(names(&input.pods, |p| &p.metadata), ["y1", "y2"]);
        // `{a: 1}` is YAML flow syntax.
        let input =
            AnalysisInput::from_dump(b"{kind: Node, metadata: {name: f}}", &Sanitizer::default())
                .unwrap();
        assert_eq!(names(&input.nodes, |n| &n.metadata), ["f"]);
        assert_eq!(
            AnalysisInput::from_dump(b"  \n", &Sanitizer::default()).unwrap(),
            AnalysisInput::default()
        );
    }

    #[test]
    fn bad_input_is_refused_with_where_it_went_wrong() {
        // As `crossguard analyze` prints it: the message, then the parser's error once.
        let err = |bytes: &[u8]| {
            let e = AnalysisInput::from_dump(bytes, &Sanitizer::default()).unwrap_err();
            format!("{:#}", anyhow::Error::from(e))
        };
        let e = err(
            br#"{"kind":"List","items":[{"kind":"Node"},{"kind":"Pod","spec":{"containers":5}}]}"#,
        );
        assert!(
            e.starts_with("reading JSON document 0 failed at object 2 (Pod): "),
            "{e}"
        );
        assert!(e.contains("line 1 column"), "{e}");
        let e = err(b"{\"kind\":\"Pod\"}\n{\"kind\":\"PodDisruptionBudget\",\"spec\":{\"minAvailable\":[]}}");
        assert!(
            e.starts_with("reading JSON document 1 failed at object 0 (PodDisruptionBudget)"),
            "{e}"
        );
        let e = err(br#"{"kind":"Pod","#);
        assert!(e.starts_with("reading JSON document 0 failed: "), "{e}");
        assert_eq!(
            err(b"[1]"),
            "reading JSON document 0 failed: invalid type: integer `1`, expected a Kubernetes object at line 1 column 2"
        );
        assert_eq!(
            err(b"\"text\""),
            "document 0 is a string, not a Kubernetes object"
        );
        assert_eq!(
            err(b"kind: Pod\n---\n42\n"),
            "document 1 is a number, not a Kubernetes object"
        );
        // Objects are numbered in document order (Lists too), so that one can count.
        let e = err(br#"[{"kind":"Service"},{"metadata":{}},{"kind":"List","items":[]},{"kind":"Pod","spec":{"containers":5}}]"#);
        assert!(e.contains("at object 3 (Pod)"), "{e}");
        // Items without a kind are decoded when the List's kind comes; they keep their number.
        let e = err(br#"{"items":[{"metadata":{"name":"a"}},{"spec":{"containers":5}},{"kind":"Node"}],"kind":"PodList"}"#);
        assert!(e.contains("at object 2 (Pod)"), "{e}");
        // Valid JSON with a wrong value is refused as JSON, not re-read as YAML (which would
        // take `null` for the string "null").
        let e = err(br#"{"kind":"Pod","metadata":{"labels":{"a":null}}}"#);
        assert!(
            e.starts_with("reading JSON document 0 failed at object 0 (Pod): "),
            "{e}"
        );
        let e = err(b"kind: Pod\nspec:\n  containers: {}\n");
        assert!(
            e.starts_with("reading YAML document 0 failed at object 0 (Pod): "),
            "{e}"
        );
    }

    /// Planted secrets in every place a pod can carry one: none may reach the input the
    /// analysis works on, nor its report.
    #[test]
    fn secrets_never_reach_the_analysis() {
        const CANARY: &str = "cAnArY-7f3a9c2e41d84b6b";
        let token = format!("ghp_{CANARY}0000000000000");
        let container = json!({
            "name": "app",
            "image": "app:1",
            "command": ["/bin/sh", "-c", format!("export DB_PASSWORD={CANARY}")],
            "args": [format!("--token={CANARY}")],
            "env": [
                {"name": "PLAIN", "value": CANARY},
                {"name": "API_KEY", "value": CANARY},
                {"name": "REF", "valueFrom": {"secretKeyRef": {"name": CANARY, "key": "k"}}}
            ],
            "envFrom": [{"secretRef": {"name": CANARY}}],
            "livenessProbe": {"exec": {"command": [CANARY]}},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}
        });
        let dump = json!({"kind": "List", "items": [
            {"kind": "Node", "metadata": {"name": "n", "labels": {"node.kubernetes.io/instance-type": "m5.large"},
                "annotations": {"note": CANARY}},
             "status": {"allocatable": {"cpu": "2", "memory": "8Gi", "pods": "29"}}},
            {"kind": "Pod", "metadata": {
                "name": "p", "namespace": "default",
                "labels": {"app": "web", "build": token},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": format!("{{\"env\":\"{CANARY}\"}}"),
                    "vault.hashicorp.com/agent-inject-token": CANARY,
                    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]},
             "spec": {"nodeName": "n", "containers": [container.clone()], "initContainers": [container],
                      "volumes": [{"name": "v", "csi": {"driver": "d", "volumeAttributes": {"secret": CANARY}}}]},
             "status": {"phase": "Running", "containerStatuses": [{"name": "app", "lastState": {"terminated": {"message": CANARY}}}]}},
            {"kind": "PodDisruptionBudget", "metadata": {"name": "pdb", "namespace": "default"},
             "spec": {"selector": {"matchLabels": {"build": token}}, "maxUnavailable": 1}}
        ]});
        let input = read(&dump);
        let everything = format!("{input:?}");
        assert!(!everything.contains(CANARY), "{everything}");
        // What the analysis needs is still there: requests, the kept annotation, and a
        // selector that still matches the pod it selected (both values redacted alike).
        let pod = &input.pods[0];
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get("build").unwrap(), REDACTED);
        assert_eq!(labels.get("app").unwrap(), "web");
        assert_eq!(
            pod.metadata
                .annotations
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["cluster-autoscaler.kubernetes.io/safe-to-evict"]
        );
        let sel = input.pod_disruption_budgets[0]
            .spec
            .as_ref()
            .unwrap()
            .selector
            .as_ref()
            .unwrap();
        assert_eq!(sel.match_labels.as_ref().unwrap()["build"], REDACTED);
        let report = analyze(
            &input,
            &AwsInventory::default(),
            &PriceTable::bundled(),
            &AnalysisSettings::default(),
        );
        let report = serde_json::to_string(&report).unwrap() + &report.render_text();
        assert!(!report.contains(CANARY));
        assert_eq!(
            input.pods[0].spec.as_ref().unwrap().containers[0]
                .resources
                .as_ref()
                .unwrap()
                .requests
                .as_ref()
                .unwrap()
                .get("cpu")
                .unwrap()
                .as_str(),
            "100m"
        );
    }

    /// A reader handing out at most `chunk` bytes per read, as a pipe may, then failing
    /// with `fail` (if any) where the bytes end.
    struct Chunked<'a> {
        bytes: &'a [u8],
        chunk: usize,
        fail: Option<&'static str>,
    }

    impl std::io::Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.bytes.is_empty()
                && let Some(message) = self.fail
            {
                return Err(std::io::Error::other(message));
            }
            let n = self.chunk.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn streamed(bytes: &[u8], chunk: usize) -> Result<AnalysisInput, InputError> {
        let reader = Chunked {
            bytes,
            chunk,
            fail: None,
        };
        AnalysisInput::from_reader(reader, &Sanitizer::default())
    }

    /// As `crossguard analyze` prints an error: the message, then its sources.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut source = e.source();
        while let Some(e) = source {
            out = format!("{out}: {e}");
            source = e.source();
        }
        out
    }

    /// The stream reads every input exactly as the whole buffer does, whatever the size
    /// of the reads: same objects, or the same error message.
    fn assert_streams_alike(name: &str, bytes: &[u8], chunks: &[usize]) {
        let whole = AnalysisInput::from_dump(bytes, &Sanitizer::default());
        for &chunk in chunks {
            match (&whole, streamed(bytes, chunk)) {
                (Ok(whole), Ok(stream)) => assert_same(&stream, whole),
                (Err(whole), Err(stream)) => {
                    // serde_json's reader may place a type error one column later than
                    // its slice reader (it has read one byte further); all else is equal.
                    let (stream, whole) = (chain(&stream), chain(whole));
                    let split = |e: &str| match e.rsplit_once(" at line ") {
                        Some((message, at)) => {
                            let (line, column) = at.split_once(" column ").expect(e);
                            let number = |n: &str| n.parse::<i64>().expect(e);
                            (message.to_string(), Some((number(line), number(column))))
                        }
                        None => (e.to_string(), None),
                    };
                    let ((a, at_a), (b, at_b)) = (split(&stream), split(&whole));
                    let alike = a == b
                        && match (at_a, at_b) {
                            (Some((la, ca)), Some((lb, cb))) => la == lb && (ca - cb).abs() <= 1,
                            (None, None) => true,
                            _ => false,
                        };
                    assert!(alike, "{name}, reads of {chunk} bytes:\n{stream}\n{whole}");
                }
                (whole, stream) => panic!(
                    "{name}, reads of {chunk} bytes: whole buffer {:?}, stream {:?}",
                    whole.as_ref().map(|_| "ok"),
                    stream.map(|_| "ok")
                ),
            }
        }
    }

    #[test]
    fn a_stream_reads_as_the_whole_buffer() {
        let c = generate(&SyntheticSpec {
            nodes: 40,
            pods: 1200,
            seed: 5,
            ..Default::default()
        });
        let mut compact = Vec::new();
        dump::write_snapshot_list(&c.snapshot, &mut compact).unwrap();
        let list = dump::snapshot_to_list(&c.snapshot);
        let pretty = serde_json::to_vec_pretty(&list).unwrap();
        let yaml = serde_yaml::to_string(&list).unwrap().into_bytes();
        // More than the 1 MiB read buffer each: reads cross buffer refills everywhere.
        assert!(compact.len() > READ_BUFFER && pretty.len() > READ_BUFFER);
        for (name, bytes) in [("compact", &compact), ("pretty", &pretty), ("yaml", &yaml)] {
            assert_streams_alike(name, bytes, &[7, 4096, usize::MAX]);
        }
        // The same report, too.
        let settings = AnalysisSettings::default();
        let prices = PriceTable::bundled();
        let report = |input: &AnalysisInput| {
            serde_json::to_value(analyze(input, &AwsInventory::default(), &prices, &settings))
                .unwrap()
        };
        assert_eq!(
            report(&streamed(&pretty, 4096).unwrap()),
            report(&AnalysisInput::from_dump(&pretty, &Sanitizer::default()).unwrap())
        );

        // The fault cases the binary is tested on.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
        let mut cases = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).unwrap();
                assert_streams_alike(&path.display().to_string(), &bytes, &[1, 4096]);
                cases += 1;
            }
        }
        assert!(cases >= 5, "the cases in {}", dir.display());

        // Every document shape, odd starts (BOM, whitespace, flow YAML), and bad input.
        let small: &[&[u8]] = &[
            b"",
            b"  \n\t ",
            b"\xEF\xBB\xBF{\"kind\":\"Node\",\"metadata\":{\"name\":\"bom\"}}",
            // JSON that YAML cannot read (a surrogate pair): the mark split across reads
            // must not send it down the YAML path.
            b"\xEF\xBB\xBF{\"kind\":\"Node\",\"metadata\":{\"name\":\"bom\",\"labels\":{\"x\":\"\\ud83d\\ude00\"}}}",
            b"\n\n  {\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}} [{\"kind\":\"Node\"}]\n",
            br#"{"apiVersion":"v1","items":[{"metadata":{"name":"p2"},"spec":{"nodeName":"n"}}],"kind":"PodList"}"#,
            br#"{"spec":{"nodeName":"n"},"metadata":{"name":"p3"},"kind":"Pod"}"#,
            br#"{"kind":"PodList","items":null} {"kind":"Gadget","items":"x"} {"items":[{},{}]}"#,
            b"{kind: Node, metadata: {name: f}}",
            b"kind: Pod\nmetadata:\n  name: y1\n---\n---\n# nothing\n---\nkind: PodList\nitems:\n- metadata:\n    name: y2\n",
            b"\n  \nkind: Node\nmetadata:\n  name: indented-after-blank-lines\n",
            br#"{"kind":"List","items":[{"kind":"Node"},{"kind":"Pod","spec":{"containers":5}}]}"#,
            br#"{"kind":"Pod","#,
            br#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"cut"#,
            b"[1]",
            b"\"text\"",
            b"42",
            b"kind: Pod\n---\n42\n",
            br#"{"kind":"Pod","metadata":{"labels":{"a":null}}}"#,
            b"kind: Pod\nspec:\n  containers: {}\n",
            br#"{"kind":"Pod","spec":{"containers":[{"resources":{"requests":{"cpu":"lots"}}}]}}"#,
        ];
        for bytes in small {
            assert_streams_alike(&String::from_utf8_lossy(bytes), bytes, &[1, 2, 5, 4096]);
        }
    }

    /// Items are checked and redacted on the workers, batch by batch, and what the
    /// reading thread reads itself as it merges: the first bad node still wins over any
    /// bad pod, the first bad pod in document order over later ones, and a secret label
    /// value in any batch is redacted, as when the whole buffer is read in one piece.
    #[test]
    fn batches_are_checked_and_redacted_as_the_whole_buffer_is() {
        const CANARY: &str = "cAnArY-7f3a9c2e41d84b6b";
        let token = format!("ghp_{CANARY}0000000000000");
        let pod = |i: usize, cpu: &str, build: &str| {
            json!({"kind": "Pod", "metadata": {"name": format!("p{i}"), "namespace": "default",
                "labels": {"app": "web", "build": build}},
             "spec": {"nodeName": "n", "containers": [{"name": "app",
                "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}})
        };
        let node = |cpu: &str| {
            json!({"kind": "Node", "metadata": {"name": "n"},
             "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "29"}}})
        };
        // A List of ~1,500 pods: about 40 batches of the tests' 64 KiB. `bad` and
        // `secret` place a bad CPU request and the canary at item indices.
        let list = |bad: &[usize], secret: usize, node_cpu: &str| {
            let mut items: Vec<Value> = (0..1500)
                .map(|i| {
                    let cpu = if bad.contains(&i) {
                        format!("lots-{i}")
                    } else {
                        "100m".into()
                    };
                    let build = if i == secret { token.as_str() } else { "v1" };
                    pod(i, &cpu, build)
                })
                .collect();
            items.push(node(node_cpu));
            serde_json::to_vec(&json!({"kind": "List", "items": items})).unwrap()
        };
        let lone = |cpu: &str| serde_json::to_vec(&pod(9999, cpu, "v1")).unwrap();
        let stream = |docs: &[Vec<u8>]| docs.join(&b"\n"[..]);
        let err = |bytes: &[u8]| {
            let whole = AnalysisInput::from_dump(bytes, &Sanitizer::default()).unwrap_err();
            let streamed = streamed(bytes, 1 << 16).unwrap_err();
            assert_eq!(chain(&streamed), chain(&whole));
            streamed.to_string()
        };
        let cases: &[(Vec<u8>, &str)] = &[
            // A bad node after bad pods in earlier batches: the node is named.
            (
                list(&[3, 700], 1400, "many"),
                "Node n: status.allocatable.cpu \"many\"",
            ),
            // The first bad pod in document order, not the batch that finished first.
            (list(&[40, 1300], 5, "2"), "Pod default/p40:"),
            // Read on the merging thread, before and after the List's batches.
            (
                stream(&[lone("x"), list(&[10], 0, "2")]),
                "Pod default/p9999:",
            ),
            (
                stream(&[list(&[1200], 0, "2"), lone("x")]),
                "Pod default/p1200:",
            ),
            (
                stream(&[list(&[], 0, "2"), lone("x"), list(&[0], 0, "bad")]),
                "Node n:",
            ),
        ];
        for (bytes, want) in cases {
            let got = err(bytes);
            assert!(got.starts_with(want), "{got} (wanted {want})");
        }
        for secret in [0, 700, 1499] {
            let bytes = stream(&[lone("1"), list(&[], secret, "2")]);
            let input = streamed(&bytes, 1 << 16).unwrap();
            assert_same(
                &input,
                &AnalysisInput::from_dump(&bytes, &Sanitizer::default()).unwrap(),
            );
            let everything = format!("{input:?}");
            assert!(!everything.contains(CANARY), "canary at item {secret}");
            let labels = input.pods[secret + 1].metadata.labels.as_ref().unwrap();
            assert_eq!(labels.get("build").unwrap(), REDACTED);
        }
    }

    /// A streamed read redacts what a read of the whole buffer redacts, wherever an
    /// object is read: on the workers (List items), or on the reading thread (lone
    /// documents, a top-level array handed to the sequential reader, and items without a
    /// kind, which a typed List names only after its items).
    #[test]
    fn secrets_never_survive_a_streamed_read() {
        const CANARY: &str = "cAnArY-5d1e8b3f90a24c67";
        let token = format!("ghp_{CANARY}0000000000000");
        let meta = |name: &str| {
            json!({"name": name, "namespace": "default",
                "labels": {"app": "web", "build": token},
                "annotations": {"vault.hashicorp.com/agent-inject-token": CANARY}})
        };
        let pod = |name: &str| {
            json!({"kind": "Pod", "metadata": meta(name),
                "spec": {"nodeName": "n", "containers": [{"name": "app",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
        };
        let mut objects = vec![
            json!({"kind": "Node", "metadata": meta("n"),
                "status": {"allocatable": {"cpu": "2", "memory": "8Gi", "pods": "29"}}}),
            json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": meta("d"),
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": meta("t"), "spec": {"containers": []}}}}),
            json!({"kind": "PodDisruptionBudget", "metadata": meta("pdb"),
                "spec": {"selector": {"matchLabels": {"build": token}, "matchExpressions":
                    [{"key": "build", "operator": "In", "values": [token]}]},
                    "maxUnavailable": 1}}),
        ];
        // Enough pods for several of the tests' 64 KiB batches.
        objects.extend((0..400).map(|i| pod(&format!("p{i}"))));
        let json = |v: &Value| serde_json::to_vec(v).unwrap();
        let kindless: Vec<Value> = (0..400)
            .map(|i| {
                let mut p = pod(&format!("k{i}"));
                p.as_object_mut().unwrap().remove("kind");
                p
            })
            .collect();
        let shapes: Vec<(&str, Vec<u8>)> = vec![
            ("a List", json(&json!({"kind": "List", "items": objects}))),
            (
                "lone documents",
                objects
                    .iter()
                    .map(json)
                    .collect::<Vec<_>>()
                    .join(&b"\n"[..]),
            ),
            ("a top-level array", json(&Value::Array(objects.clone()))),
            (
                "a PodList named after its items",
                json(&json!({"items": kindless, "kind": "PodList"})),
            ),
        ];
        for (shape, bytes) in &shapes {
            let input = streamed(bytes, 1 << 16).unwrap();
            assert!(!input.pods.is_empty(), "{shape}");
            let everything = format!("{input:?}");
            assert!(!everything.contains(CANARY), "a secret survived {shape}");
            assert_same(
                &input,
                &AnalysisInput::from_dump(bytes, &Sanitizer::default()).unwrap(),
            );
        }
    }

    /// The one documented difference: a stream that was valid JSON for more than its
    /// first MiB is not read again as YAML, while the whole buffer is.
    #[test]
    fn a_stream_is_retried_as_yaml_only_within_its_first_mib() {
        let pod = br#"{"kind":"Pod","metadata":{"name":"p"},"spec":{"nodeName":"n"}},"#;
        let mut flow = br#"{"kind":"List","items":["#.to_vec();
        while flow.len() <= YAML_RETRY_LIMIT {
            flow.extend_from_slice(pod);
        }
        flow.extend_from_slice(b"{kind: Pod, metadata: {name: late}}]}");
        let whole = AnalysisInput::from_dump(&flow, &Sanitizer::default()).unwrap();
        assert_eq!(
            whole.pods.last().unwrap().metadata.name.as_deref(),
            Some("late")
        );
        let e = chain(&streamed(&flow, usize::MAX).unwrap_err());
        assert!(
            e.starts_with("reading JSON document 0 failed: key must be a string at line 1 column"),
            "{e}"
        );
    }

    /// The splitter finds where a value ends whatever its strings hold (braces,
    /// brackets, escaped quotes and backslashes) and however its bytes arrive.
    #[test]
    fn the_splitter_ends_values_where_json_does() {
        use super::split::ValueEnd;
        let cases: &[&[u8]] = &[
            br#"{"a":"}{]["}"#,
            br#"{"a":"say \"}\" and \\","b":{"c":[1,{"d":"\""}]}}"#,
            br#"{"nested":{"deeper":{"deepest":[[],{}]}},"s":"}"}"#,
            br#""a string with } and \" inside""#,
            br#"[{"x":"]"},"}\\"]"#,
            br#"{"k\"}":"\\\\\"]","v":[]}"#,
        ];
        for &value in cases {
            let tail = b" , {\"next\":1}";
            let bytes = [value, tail].concat();
            // The same end as serde_json's own, in one piece or byte by byte.
            let mut values =
                serde_json::Deserializer::from_slice(&bytes).into_iter::<serde::de::IgnoredAny>();
            values.next().expect("a value").expect("valid JSON");
            assert_eq!(
                values.byte_offset(),
                value.len(),
                "{}",
                String::from_utf8_lossy(value)
            );
            assert_eq!(ValueEnd::default().scan(&bytes), Some(value.len()));
            let mut scan = ValueEnd::default();
            let ends: Vec<usize> = (0..bytes.len())
                .filter_map(|i| scan.scan(&bytes[i..i + 1]).map(|n| i + n))
                .take(1)
                .collect();
            assert_eq!(ends, [value.len()], "{}", String::from_utf8_lossy(value));
            // Cut short, it has no end.
            assert_eq!(ValueEnd::default().scan(&value[..value.len() - 1]), None);
        }
    }

    /// A List cut anywhere (inside an item, between items, after them) gives the
    /// sequential reader's error, and an item that is not a valid object gives its error,
    /// whatever the reads' sizes; items cross the splitter's buffers and batches.
    #[test]
    fn a_cut_or_broken_list_reads_as_the_whole_buffer() {
        let c = generate(&SyntheticSpec {
            nodes: 3,
            pods: 40,
            seed: 9,
            ..Default::default()
        });
        let list = dump::snapshot_to_list(&c.snapshot);
        let pretty = serde_json::to_vec_pretty(&list).unwrap();
        let mut compact = Vec::new();
        dump::write_snapshot_list(&c.snapshot, &mut compact).unwrap();
        for bytes in [&pretty, &compact] {
            let step = (bytes.len() / 150).max(1);
            for cut in (1..bytes.len())
                .step_by(step)
                .chain(bytes.len() - 3..bytes.len())
            {
                assert_streams_alike(&format!("cut at {cut}"), &bytes[..cut], &[4096, usize::MAX]);
            }
        }
        let broken: &[&[u8]] = &[
            br#"{"kind":"List","items":[{"kind":"Node"},]}"#,
            br#"{"kind":"List","items":[{"kind":"Node"} {"kind":"Pod"}]}"#,
            br#"{"kind":"List","items":[{"kind":"Node"},"text"]}"#,
            br#"{"kind":"List","items":[{"kind":"Node"},tru]}"#,
            br#"{"kind":"List","items":[{"kind":"Node"},[1]]}"#,
            br#"{"kind":"List","items":[{"kind":"Node","metadata":{"name":"a"}"}}]"#,
            br#"{"kind":"List","items":[{"kind":"Node"}],"metadata":{}"#,
            br#"{"kind":"List","items":[{"kind":"Node"}],"kind":5}"#,
            br#"{"kind":"List","items":[{"kind":"Node"}]} x"#,
            br#"{"items":[{"metadata":{"name":"o"},"spec":{"containers":7}}],"kind":"PodList"}"#,
            br#"{"items":[{"metadata":{"name":"o"}}],"kind":"PodList"}{"kind":"List","items":[{"kind":"Pod","spec":5}]}"#,
            br#"{"kind":"PodList","items":[{"metadata":{"name":"o","labels":{"a":1}}}]}"#,
            b"{\"kind\":\"List\",\n\"items\":[\n{\"kind\":\"Node\"},\n  {\"kind\":\"Pod\",\"spec\":{\"nodeName\":3}}]}",
        ];
        for bytes in broken {
            assert_streams_alike(&String::from_utf8_lossy(bytes), bytes, &[1, 3, 4096]);
        }
    }

    /// Items whose kind a List names only after them, across many batches: the same
    /// objects in the same order as the sequential reader.
    #[test]
    fn items_read_apart_keep_their_order_and_kind() {
        let mut bytes = br#"{"apiVersion":"v1","items":["#.to_vec();
        for i in 0..5000 {
            if i > 0 {
                bytes.push(b',');
            }
            bytes.extend_from_slice(
                format!(r#"{{"metadata":{{"name":"p{i}","labels":{{"app":"a{}"}}}},"spec":{{"nodeName":"n{}"}}}}"#, i % 7, i % 3)
                    .as_bytes(),
            );
        }
        bytes.extend_from_slice(br#"],"kind":"PodList","metadata":{}}"#);
        let stream = streamed(&bytes, 4096).unwrap();
        assert_eq!(stream.pods.len(), 5000);
        assert_eq!(stream.pods[4321].metadata.name.as_deref(), Some("p4321"));
        assert_streams_alike("late kind", &bytes, &[7, 4096, usize::MAX]);
    }

    /// Items whose strings hold brackets, braces, escaped quotes and backslashes, across
    /// many of the splitter's batches: the same objects as the whole buffer.
    #[test]
    fn items_with_brackets_and_escapes_in_strings_read_alike() {
        let mut bytes = br#"{"kind":"List","items":["#.to_vec();
        for i in 0..3000 {
            if i > 0 {
                bytes.extend_from_slice(b",\n ");
            }
            bytes.extend_from_slice(
                format!(
                    r#"{{"kind":"Pod","metadata":{{"name":"p{i}","namespace":"n]}}{{[","labels":{{"a\"]}}":"v\\\"}}{i}","b":"[{{\u0022"}}}},"spec":{{"nodeName":"n{}","containers":[{{"name":"c","args":["}}]","\\","{{\"x\":[1]}}"]}}]}}}}"#,
                    i % 3
                )
                .as_bytes(),
            );
        }
        bytes.extend_from_slice(br#"]}"#);
        let whole = AnalysisInput::from_dump(&bytes, &Sanitizer::default()).unwrap();
        assert_eq!(whole.pods.len(), 3000);
        let label = |i: usize| {
            let labels = whole.pods[i].metadata.labels.as_ref().unwrap();
            labels.get("a\"]}").map(|v| v.to_string())
        };
        assert_eq!(label(1234).as_deref(), Some("v\\\"}1234"));
        assert_streams_alike("escapes", &bytes, &[7, 4096, usize::MAX]);
    }

    /// An I/O error while reading is reported as one, wherever it happens.
    #[test]
    fn a_failing_stream_is_a_read_error() {
        let json = br#"{"kind":"List","items":[{"kind":"Node","metadata":{"name":"n"}},"#;
        for bytes in [&b""[..], b"  ", json, b"kind: List\nitems:\n"] {
            for chunk in [1, 4096] {
                let reader = Chunked {
                    bytes,
                    chunk,
                    fail: Some("disk on fire"),
                };
                let e = AnalysisInput::from_reader(reader, &Sanitizer::default()).unwrap_err();
                assert!(matches!(e, InputError::Read { .. }), "{e:?}");
                assert_eq!(chain(&e), "reading the input failed: disk on fire");
            }
        }
    }

    /// Kept annotations get exactly the sanitizer's rule, name-based part included.
    #[test]
    fn kept_annotations_follow_the_sanitizers_rule() {
        let dump = br#"{"kind":"Pod","metadata":{"name":"p","annotations":{
            "kubernetes.io/config.mirror":"{\"spec\":{\"containers\":[]}}",
            "cluster-autoscaler.kubernetes.io/safe-to-evict":"false",
            "karpenter.sh/do-not-disrupt":"true"}}}"#;
        let kept = |sanitizer: &Sanitizer| {
            let input = AnalysisInput::from_dump(dump, sanitizer).unwrap();
            let annotations = input.pods[0].metadata.annotations.clone().unwrap();
            // The stored path (sanitize, then typed objects) keeps the same.
            let typed = crate::testing::dump::snapshot_from_dump(dump, sanitizer).unwrap();
            let stored = AnalysisInput::from(typed).pods[0]
                .metadata
                .annotations
                .clone();
            assert_eq!(stored.as_ref(), Some(&annotations));
            annotations
        };
        let default = kept(&Sanitizer::default());
        // A value embedding a spec is removed, as the stored snapshot's sanitizer does.
        assert!(!default.contains_key("kubernetes.io/config.mirror"));
        assert_eq!(
            default
                .get("cluster-autoscaler.kubernetes.io/safe-to-evict")
                .unwrap(),
            "false"
        );
        // A configured extra sensitive name applies to annotation names too.
        let strict = kept(&Sanitizer::new(&["evict".to_string()]));
        assert_eq!(
            strict
                .get("cluster-autoscaler.kubernetes.io/safe-to-evict")
                .unwrap(),
            REDACTED
        );
        assert_eq!(strict.get("karpenter.sh/do-not-disrupt").unwrap(), "true");
    }
}
