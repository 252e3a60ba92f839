//! Deterministic synthetic clusters for tests and benchmarks (test support: not in release
//! builds, see [`crate::testing`]).
//!
//! A cluster has several nodegroups (general purpose amd64 and arm64, compute, a tainted
//! memory group, a spot batch group) spread over three zones; on every node three
//! DaemonSets; and a workload mix of Deployments (some with PDBs — a few forbidding
//! disruption —, hostname anti-affinity, node selectors), StatefulSets with PVCs, Jobs
//! (running and finished), a few bare pods, hostPath pods and pending pods. Pod requests
//! are scaled so that requested CPU is `target_cpu_utilization` of allocatable. Every
//! bound pod is placed where the scheduler could have put it (selectors, taints, zone,
//! capacity). Pods carry env vars, probes and status like real ones, so the JSON size
//! per pod is realistic for parse benchmarks.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec, StatefulSet,
    StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, ContainerStatus, EmptyDirVolumeSource, EnvVar,
    HTTPGetAction, HostPathVolumeSource, Node, NodeAffinity, NodeCondition, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus,
    PersistentVolumeClaimVolumeSource, Pod, PodAffinityTerm, PodAntiAffinity, PodCondition,
    PodSpec, PodStatus, PodTemplateSpec, Probe, ResourceRequirements, Taint, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::analysis::AwsInventory;
use crate::analysis::prices::PriceTable;
use crate::analysis::rightsizing::estimated_allocatable;
use crate::aws::{Instance, Nodegroup};
use crate::cluster::snapshot::ClusterSnapshot;

/// Shape of a synthetic cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// RNG seed: same spec, same cluster.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of pods, DaemonSet pods included.
    pub pods: usize,
    /// Requested CPU as a fraction of allocatable CPU (0.13 = 13%).
    pub target_cpu_utilization: f64,
    /// Region of the cluster.
    pub region: String,
    /// Cluster name.
    pub cluster: String,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            seed: 42,
            nodes: 100,
            pods: 3000,
            target_cpu_utilization: 0.13,
            region: "us-east-1".into(),
            cluster: "synthetic".into(),
        }
    }
}

/// A generated cluster: the snapshot and the matching AWS inventory.
#[derive(Debug, Clone)]
pub struct SyntheticCluster {
    /// Kubernetes objects.
    pub snapshot: ClusterSnapshot,
    /// Nodegroups and instances.
    pub aws: AwsInventory,
}

struct GroupSpec {
    name: &'static str,
    instance_type: &'static str,
    share: f64,
    taint: Option<(&'static str, &'static str)>,
    spot: bool,
}

const GROUPS: &[GroupSpec] = &[
    GroupSpec {
        name: "general-m5",
        instance_type: "m5.xlarge",
        share: 0.30,
        taint: None,
        spot: false,
    },
    GroupSpec {
        name: "general-m6i",
        instance_type: "m6i.2xlarge",
        share: 0.20,
        taint: None,
        spot: false,
    },
    GroupSpec {
        name: "arm-m7g",
        instance_type: "m7g.xlarge",
        share: 0.15,
        taint: None,
        spot: false,
    },
    GroupSpec {
        name: "compute-c6i",
        instance_type: "c6i.2xlarge",
        share: 0.15,
        taint: None,
        spot: false,
    },
    GroupSpec {
        name: "memory-r6i",
        instance_type: "r6i.xlarge",
        share: 0.10,
        taint: Some(("dedicated", "memory")),
        spot: false,
    },
    GroupSpec {
        name: "batch-spot",
        instance_type: "m5.2xlarge",
        share: 0.10,
        taint: Some(("capacity", "spot")),
        spot: true,
    },
];

const ZONES: &[&str] = &["a", "b", "c"];

fn q(s: impl Into<String>) -> Quantity {
    Quantity(s.into())
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Ready EKS-looking node.
pub(crate) fn make_node(
    name: &str,
    labels: BTreeMap<String, String>,
    alloc: (i64, i64, i64),
    taints: Vec<Taint>,
    provider_id: Option<String>,
) -> Node {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), q(format!("{}m", alloc.0))),
        ("memory".to_string(), q(format!("{}Ki", alloc.1 / 1024))),
        ("pods".to_string(), q(alloc.2.to_string())),
    ]
    .into();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id,
            taints: (!taints.is_empty()).then_some(taints),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: if kind == "Job" { "batch/v1" } else { "apps/v1" }.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn container(name: &str, cpu_m: i64, mem_mi: i64, rng: &mut StdRng) -> Container {
    Container {
        name: name.into(),
        image: Some(format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}:v1.{}.{}",
            rng.random_range(0..30),
            rng.random_range(0..9)
        )),
        resources: Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_string(), q(format!("{cpu_m}m"))),
                    ("memory".to_string(), q(format!("{mem_mi}Mi"))),
                ]
                .into(),
            ),
            limits: Some([("memory".to_string(), q(format!("{}Mi", mem_mi * 2)))].into()),
            ..Default::default()
        }),
        env: Some(vec![
            EnvVar {
                name: "LOG_LEVEL".into(),
                value: Some("info".into()),
                ..Default::default()
            },
            EnvVar {
                name: "SERVICE_NAME".into(),
                value: Some(name.into()),
                ..Default::default()
            },
            EnvVar {
                name: "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                value: Some("http://otel-collector.observability:4317".into()),
                ..Default::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            container_port: 8080,
            name: Some("http".into()),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::Int(8080),
                ..Default::default()
            }),
            period_seconds: Some(10),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "kube-api-access".into(),
            mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn running_status(node_ip: &str, pod_ip: &str, containers: &[Container]) -> PodStatus {
    let t = Time(jiff::Timestamp::from_second(1_763_900_000).expect("valid timestamp"));
    PodStatus {
        phase: Some("Running".into()),
        host_ip: Some(node_ip.into()),
        pod_ip: Some(pod_ip.into()),
        qos_class: Some("Burstable".into()),
        start_time: Some(t.clone()),
        conditions: Some(
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ]
            .iter()
            .map(|c| PodCondition {
                type_: (*c).into(),
                status: "True".into(),
                last_transition_time: Some(t.clone()),
                ..Default::default()
            })
            .collect(),
        ),
        container_statuses: Some(
            containers
                .iter()
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    image_id: format!(
                        "{}@sha256:{:064x}",
                        c.image.clone().unwrap_or_default(),
                        c.name.len()
                    ),
                    container_id: Some(format!("containerd://{:064x}", pod_ip.len() * 7919)),
                    ready: true,
                    started: Some(true),
                    restart_count: 0,
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// Generate a cluster; see the module documentation.
pub fn generate(spec: &SyntheticSpec) -> SyntheticCluster {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let prices = PriceTable::bundled();
    let mut snap = ClusterSnapshot {
        taken_at: "2026-01-01T00:00:00Z".into(),
        ..Default::default()
    };
    let mut aws = AwsInventory {
        region: spec.region.clone(),
        ..Default::default()
    };

    // Nodes per group (largest remainder so the total is exact).
    let n = spec.nodes.max(1);
    let mut counts: Vec<usize> = GROUPS
        .iter()
        .map(|g| (g.share * n as f64).floor() as usize)
        .collect();
    let mut k = 0;
    while counts.iter().sum::<usize>() < n {
        counts[k % GROUPS.len()] += 1;
        k += 1;
    }
    // Node free capacity for placement: (cpu, mem, pods).
    let mut free: Vec<(i64, i64, i64)> = Vec::with_capacity(n);
    let mut group_nodes: Vec<Vec<usize>> = vec![Vec::new(); GROUPS.len()];
    let mut node_ip: Vec<String> = Vec::with_capacity(n);
    for (g, group) in GROUPS.iter().enumerate() {
        let info = prices
            .catalog
            .get(group.instance_type)
            .expect("synthetic types are in the bundled table");
        let alloc = estimated_allocatable(info);
        let mut ng = Nodegroup {
            name: group.name.into(),
            cluster_name: spec.cluster.clone(),
            status: Some("ACTIVE".into()),
            auto_scaling_groups: vec![format!("eks-{}-asg", group.name)],
            min_size: Some(if counts[g] >= 3 { 2 } else { 0 }),
            max_size: Some((counts[g] * 2) as i32),
            desired_size: Some(counts[g] as i32),
            instance_types: vec![group.instance_type.into()],
            ..Default::default()
        };
        ng.tags
            .insert("eks:cluster-name".into(), spec.cluster.clone());
        aws.nodegroups.push(ng);
        for i in 0..counts[g] {
            let idx = free.len();
            let zone = format!("{}{}", spec.region, ZONES[idx % ZONES.len()]);
            let ip = format!("10.{}.{}.{}", g, (i / 250) % 250, i % 250 + 1);
            let name = format!("ip-{}.ec2.internal", ip.replace('.', "-"));
            let id = format!(
                "i-{:017x}",
                spec.seed.wrapping_mul(1_000_003) ^ (idx as u64 * 7_919 + 1)
            );
            let labels = map(&[
                ("kubernetes.io/hostname", &name),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", &info.architecture),
                ("node.kubernetes.io/instance-type", group.instance_type),
                ("topology.kubernetes.io/region", &spec.region),
                ("topology.kubernetes.io/zone", &zone),
                ("eks.amazonaws.com/nodegroup", group.name),
                (
                    "eks.amazonaws.com/capacityType",
                    if group.spot { "SPOT" } else { "ON_DEMAND" },
                ),
                ("eks.amazonaws.com/nodegroup-image", "ami-0abcdef1234567890"),
            ]);
            let taints = group
                .taint
                .map(|(k, v)| {
                    vec![Taint {
                        key: k.into(),
                        value: Some(v.into()),
                        effect: "NoSchedule".into(),
                        time_added: None,
                    }]
                })
                .unwrap_or_default();
            snap.nodes.push(make_node(
                &name,
                labels,
                (alloc.cpu, alloc.mem, alloc.pods),
                taints,
                Some(format!("aws:///{zone}/{id}")),
            ));
            aws.instances.push(Instance {
                id,
                instance_type: Some(group.instance_type.into()),
                state: Some("running".into()),
                tags: [("eks:nodegroup-name".to_string(), group.name.to_string())].into(),
            });
            free.push((alloc.cpu, alloc.mem, alloc.pods));
            group_nodes[g].push(idx);
            node_ip.push(ip);
        }
    }
    let total_cpu: i64 = free.iter().map(|f| f.0).sum();

    // DaemonSets on every node.
    let daemonsets: [(&str, &str, i64, i64); 3] = [
        ("kube-system", "aws-node", 25, 40),
        ("kube-system", "kube-proxy", 100, 64),
        ("kube-system", "ebs-csi-node", 10, 40),
    ];
    let mut pod_seq = 0u64;
    let mut ds_cpu = 0;
    for (ns, name, cpu, mem) in daemonsets {
        let uid = format!("ds-{name}");
        let labels = map(&[("app.kubernetes.io/name", name)]);
        snap.daemon_sets.push(DaemonSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                uid: Some(uid.clone()),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec::default(),
                ..Default::default()
            }),
            status: None,
        });
        for (i, f) in free.iter_mut().enumerate() {
            let c = container(name, cpu, mem, &mut rng);
            pod_seq += 1;
            let pod_ip = node_ip[i].clone();
            snap.pods.push(Pod {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-{pod_seq:05x}")),
                    namespace: Some(ns.into()),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![owner("DaemonSet", name, &uid)]),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: Some(snap.nodes[i].metadata.name.clone().expect("named")),
                    // What the DaemonSet controller sets on every pod it creates.
                    affinity: Some(Affinity {
                        node_affinity: Some(NodeAffinity {
                            required_during_scheduling_ignored_during_execution: Some(
                                NodeSelector {
                                    node_selector_terms: vec![NodeSelectorTerm {
                                        match_expressions: None,
                                        match_fields: Some(vec![NodeSelectorRequirement {
                                            key: "metadata.name".into(),
                                            operator: "In".into(),
                                            values: Some(vec![
                                                snap.nodes[i].metadata.name.clone().expect("named"),
                                            ]),
                                        }]),
                                    }],
                                },
                            ),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Default::default()
                    }]),
                    volumes: Some(vec![Volume {
                        name: "host-run".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: "/run".into(),
                            type_: None,
                        }),
                        ..Default::default()
                    }]),
                    containers: vec![c.clone()],
                    ..Default::default()
                }),
                status: Some(running_status(&node_ip[i], &pod_ip, &[c])),
            });
            f.0 -= cpu;
            f.1 -= mem << 20;
            f.2 -= 1;
            ds_cpu += cpu;
        }
    }

    // Workload pods: scale requests so requested CPU hits the target.
    let workload_pods = spec.pods.saturating_sub(snap.pods.len());
    let target_cpu = (spec.target_cpu_utilization * total_cpu as f64 - ds_cpu as f64).max(0.0);
    let mean_cpu = if workload_pods > 0 {
        (target_cpu / workload_pods as f64).max(5.0)
    } else {
        0.0
    };
    let namespaces = (workload_pods / 3000).clamp(3, 60);
    let mut remaining = workload_pods;
    let mut w = 0usize;
    while remaining > 0 {
        w += 1;
        let ns = format!("team-{}", w % namespaces);
        let roll: f64 = rng.random();
        let kind = if remaining < 3 || roll < 0.002 {
            "Pod"
        } else if roll < 0.72 {
            "Deployment"
        } else if roll < 0.87 {
            "StatefulSet"
        } else {
            "Job"
        };
        let replicas = match kind {
            "Pod" => 1,
            "Job" => rng.random_range(1..=6),
            "StatefulSet" => rng.random_range(1..=5),
            _ => *[1, 2, 2, 3, 3, 4, 6, 8, 12, 20]
                .get(rng.random_range(0..10))
                .expect("in range"),
        }
        .min(remaining);
        remaining -= replicas;
        let name = format!(
            "{}-{w}",
            [
                "api", "web", "worker", "cache", "search", "billing", "auth", "feed"
            ][w % 8]
        );
        // Relative size; memory roughly 2–4 GiB per CPU, like services are sized.
        let rel: f64 = [0.25, 0.5, 0.5, 1.0, 1.0, 1.0, 2.0, 4.0][rng.random_range(0..8)];
        let cpu_m = ((mean_cpu * rel / 1.28).round() as i64).max(5);
        let mem_mi = (cpu_m * rng.random_range(2..=4) * 1024 / 1000).max(16);
        let app = map(&[
            ("app.kubernetes.io/name", &name),
            ("app.kubernetes.io/part-of", &ns),
        ]);
        let uid = format!("{kind}-{w}");
        // Constraints.
        let target_group = match rng.random_range(0..20) {
            0..=1 => Some(4usize), // memory group (tolerates its taint)
            2..=3 => Some(5),      // spot batch group (tolerates)
            4..=6 => Some(rng.random_range(0..4)),
            _ => None,
        };
        let amd64_only = target_group.is_none() && rng.random_bool(0.3);
        let anti = kind == "Deployment" && replicas >= 2 && rng.random_bool(0.1);
        let host_path = kind == "Deployment" && rng.random_bool(0.003);
        let memory_scratch = kind == "Deployment" && rng.random_bool(0.003);
        let mut node_selector = BTreeMap::new();
        let mut tolerations = Vec::new();
        if let Some(g) = target_group {
            node_selector.insert(
                "eks.amazonaws.com/nodegroup".to_string(),
                GROUPS[g].name.to_string(),
            );
            if let Some((k, v)) = GROUPS[g].taint {
                tolerations.push(Toleration {
                    key: Some(k.into()),
                    value: Some(v.into()),
                    effect: Some("NoSchedule".into()),
                    operator: Some("Equal".into()),
                    ..Default::default()
                });
            }
        }
        if amd64_only {
            node_selector.insert("kubernetes.io/arch".to_string(), "amd64".to_string());
        }
        let affinity = anti.then(|| Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(map(&[("app.kubernetes.io/name", &name)])),
                        ..Default::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let allowed: Vec<usize> = match target_group {
            Some(g) => group_nodes[g].clone(),
            None => (0..4)
                .filter(|&g| !(amd64_only && g == 2))
                .flat_map(|g| group_nodes[g].iter().copied())
                .collect(),
        };

        // The controller objects.
        let pod_spec_template = PodSpec {
            node_selector: (!node_selector.is_empty()).then(|| node_selector.clone()),
            tolerations: (!tolerations.is_empty()).then(|| tolerations.clone()),
            affinity: affinity.clone(),
            containers: vec![container(&name, cpu_m, mem_mi, &mut rng)],
            ..Default::default()
        };
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(app.clone()),
                ..Default::default()
            }),
            spec: Some(pod_spec_template.clone()),
        };
        let meta = |n: &str, uid: &str| ObjectMeta {
            name: Some(n.into()),
            namespace: Some(ns.clone()),
            uid: Some(uid.into()),
            labels: Some(app.clone()),
            ..Default::default()
        };
        let selector = LabelSelector {
            match_labels: Some(app.clone()),
            ..Default::default()
        };
        let (owner_ref, stateful) = match kind {
            "Deployment" => {
                snap.deployments.push(Deployment {
                    metadata: meta(&name, &uid),
                    spec: Some(DeploymentSpec {
                        replicas: Some(replicas as i32),
                        selector: selector.clone(),
                        template: template.clone(),
                        ..Default::default()
                    }),
                    status: None,
                });
                let rs_name = format!("{name}-{:08x}", w * 2_654_435_761 % 0xffff_ffff);
                let rs_uid = format!("rs-{w}");
                let mut rs_meta = meta(&rs_name, &rs_uid);
                rs_meta.owner_references = Some(vec![owner("Deployment", &name, &uid)]);
                snap.replica_sets.push(ReplicaSet {
                    metadata: rs_meta,
                    spec: Some(ReplicaSetSpec {
                        replicas: Some(replicas as i32),
                        selector: selector.clone(),
                        template: Some(template.clone()),
                        ..Default::default()
                    }),
                    status: None,
                });
                if replicas >= 2 && rng.random_bool(0.4) {
                    let forbid = rng.random_bool(0.03);
                    let (max_unavailable, allowed_disruptions) =
                        if forbid { (0, 0) } else { (1, 1) };
                    snap.pod_disruption_budgets.push(PodDisruptionBudget {
                        metadata: ObjectMeta {
                            name: Some(format!("{name}-pdb")),
                            namespace: Some(ns.clone()),
                            ..Default::default()
                        },
                        spec: Some(PodDisruptionBudgetSpec {
                            max_unavailable: Some(IntOrString::Int(max_unavailable)),
                            selector: Some(selector.clone()),
                            ..Default::default()
                        }),
                        status: Some(PodDisruptionBudgetStatus {
                            current_healthy: replicas as i32,
                            desired_healthy: replicas as i32 - max_unavailable,
                            disruptions_allowed: allowed_disruptions,
                            expected_pods: replicas as i32,
                            ..Default::default()
                        }),
                    });
                }
                (Some(owner("ReplicaSet", &rs_name, &rs_uid)), false)
            }
            "StatefulSet" => {
                snap.stateful_sets.push(StatefulSet {
                    metadata: meta(&name, &uid),
                    spec: Some(StatefulSetSpec {
                        replicas: Some(replicas as i32),
                        selector: selector.clone(),
                        template: template.clone(),
                        service_name: Some(name.clone()),
                        ..Default::default()
                    }),
                    status: None,
                });
                (Some(owner("StatefulSet", &name, &uid)), true)
            }
            "Job" => {
                snap.jobs.push(Job {
                    metadata: meta(&name, &uid),
                    spec: Some(JobSpec {
                        parallelism: Some(replicas as i32),
                        template: template.clone(),
                        ..Default::default()
                    }),
                    status: None,
                });
                (Some(owner("Job", &name, &uid)), false)
            }
            _ => (None, false),
        };

        let mut taken_by_this: Vec<usize> = Vec::new();
        for r in 0..replicas {
            pod_seq += 1;
            let pod_name = match kind {
                "StatefulSet" => format!("{name}-{r}"),
                "Pod" => name.clone(),
                _ => format!("{name}-{pod_seq:06x}"),
            };
            let mut volumes = vec![Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }];
            if stateful {
                volumes.push(Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: format!("data-{pod_name}"),
                        read_only: None,
                    }),
                    ..Default::default()
                });
            }
            if host_path {
                volumes.push(Volume {
                    name: "docker-sock".into(),
                    host_path: Some(HostPathVolumeSource {
                        path: "/var/run/docker.sock".into(),
                        type_: None,
                    }),
                    ..Default::default()
                });
            }
            if memory_scratch {
                volumes.push(Volume {
                    name: "shm".into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".into()),
                        size_limit: None,
                    }),
                    ..Default::default()
                });
            }
            let mut labels = app.clone();
            if stateful {
                labels.insert(
                    "statefulset.kubernetes.io/pod-name".into(),
                    pod_name.clone(),
                );
            }
            let finished = kind == "Job" && rng.random_bool(0.3);
            let pending = !finished && rng.random_bool(0.001);
            // Place: random allowed nodes with room (and no anti-affinity clash), else first fit.
            let fits = |i: usize, free: &[(i64, i64, i64)], taken: &[usize]| {
                free[i].0 >= cpu_m
                    && free[i].1 >= mem_mi << 20
                    && free[i].2 >= 1
                    && !(anti && taken.contains(&i))
            };
            let node = if finished || pending || allowed.is_empty() {
                None
            } else {
                let mut pick = None;
                for _ in 0..8 {
                    let i = allowed[rng.random_range(0..allowed.len())];
                    if fits(i, &free, &taken_by_this) {
                        pick = Some(i);
                        break;
                    }
                }
                pick.or_else(|| {
                    allowed
                        .iter()
                        .copied()
                        .find(|&i| fits(i, &free, &taken_by_this))
                })
            };
            if let Some(i) = node {
                free[i].0 -= cpu_m;
                free[i].1 -= mem_mi << 20;
                free[i].2 -= 1;
                taken_by_this.push(i);
            }
            let c = pod_spec_template.containers[0].clone();
            let pod_ip = format!(
                "10.{}.{}.{}",
                100 + pod_seq / 65_000 % 100,
                pod_seq / 250 % 250,
                pod_seq % 250 + 1
            );
            let status = match node {
                Some(i) => running_status(&node_ip[i], &pod_ip, std::slice::from_ref(&c)),
                None if finished => PodStatus {
                    phase: Some("Succeeded".into()),
                    ..Default::default()
                },
                None => PodStatus {
                    phase: Some("Pending".into()),
                    ..Default::default()
                },
            };
            snap.pods.push(Pod {
                metadata: ObjectMeta {
                    name: Some(pod_name),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    owner_references: owner_ref.clone().map(|o| vec![o]),
                    // Its scratch `tmp` emptyDir is disposable, as charts that run under
                    // cluster-autoscaler declare (else it would keep every node).
                    annotations: Some(BTreeMap::from([(
                        "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes".into(),
                        "tmp".into(),
                    )])),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: node
                        .or(if finished {
                            Some(allowed.first().copied().unwrap_or(0))
                        } else {
                            None
                        })
                        .and_then(|i| snap.nodes.get(i))
                        .and_then(|nd| nd.metadata.name.clone()),
                    volumes: Some(volumes),
                    ..pod_spec_template.clone()
                }),
                status: Some(status),
            });
        }
    }
    SyntheticCluster {
        snapshot: snap,
        aws,
    }
}
