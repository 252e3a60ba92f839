//! The AWS fake against the real adapter: the same calls, made through the SDK adapter
//! against the emulator (moto) and through `crossguard::testing::aws::FakeAws` seeded with
//! what the emulator holds, give the same answers and tell the audit observer the same
//! service, operation, target and outcome. Tests that build on the fake (reconcile tests
//! asserting on the audit log) rely on this; it fails when the adapter's reporting changes
//! and the fake's does not.

mod support;

use std::fmt::Debug;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use crossguard::audit::NoAudit;
use crossguard::automation::guard::{self, Approval, Evidence, Mutation};
use crossguard::aws::sdk::SdkFactory;
use crossguard::aws::{AssumeRoleRequest, AwsError, ClientFactory, CustomerClients};
use crossguard::clock::SystemClock;
use crossguard::metrics::Metrics;
use crossguard::testing::aws::FakeAws;
use serde_json::Value;
use support::{Moto, Recorder};

/// A result as the transcript shows it: the value, or the error's kind and code.
fn shown<T: Debug>(r: Result<T, AwsError>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("error {:?} {:?}", e.kind, e.code),
    }
}

/// The names the seed created (see tests/harness/seed.py).
struct Seeded {
    cluster: String,
    managed_ng: String,
    managed_asg: String,
    legacy_asg: String,
    managed_instances: Vec<String>,
}

impl Seeded {
    fn of(seed: &Value) -> Seeded {
        let ng = |name: &str, field: &str| seed["nodegroups"][name][field].clone();
        Seeded {
            cluster: seed["cluster"].as_str().unwrap().into(),
            managed_ng: "managed-ng".into(),
            managed_asg: ng("managed-ng", "asg").as_str().unwrap().into(),
            legacy_asg: ng("legacy-ng", "asg").as_str().unwrap().into(),
            managed_instances: serde_json::from_value(ng("managed-ng", "instances")).unwrap(),
        }
    }
}

/// Every call crossguard makes with customer clients, on success and on the usual
/// failures, including both mutating calls behind the guard; returns what each answered
/// (orders normalised where AWS promises none).
async fn script(c: &CustomerClients, s: &Seeded) -> Vec<String> {
    let cluster = s.cluster.as_str();
    let mut out = Vec::new();
    out.push(shown(c.identity.caller_identity().await.map(|i| i.account)));
    out.push(shown(c.eks.describe_cluster(cluster).await.map(|c| c.name)));
    out.push(shown(c.eks.describe_cluster("no-such-cluster").await));
    out.push(shown(c.eks.list_nodegroups(cluster).await.map(|mut n| {
        n.sort();
        n
    })));
    // (Not ListNodegroups of an unknown cluster: moto answers a server error where EKS
    // answers ResourceNotFoundException, as the fake does.)
    let ng = c.eks.describe_nodegroup(cluster, &s.managed_ng).await;
    out.push(shown(ng.clone().map(|n| (n.name, n.desired_size))));
    out.push(shown(c.eks.describe_nodegroup(cluster, "no-such-ng").await));
    let names = [
        s.managed_asg.clone(),
        s.legacy_asg.clone(),
        "no-such-group".into(),
    ];
    out.push(shown(c.autoscaling.describe_groups(&names).await.map(
        |g| {
            let mut g: Vec<_> = g
                .into_iter()
                .map(|g| (g.name, g.desired_capacity, g.instance_ids.len()))
                .collect();
            g.sort();
            g
        },
    )));
    out.push(shown(c.autoscaling.describe_groups(&[]).await));
    out.push(shown(c.ec2.describe_cluster_instances(cluster).await.map(
        |i| {
            let mut ids: Vec<_> = i.into_iter().map(|i| i.id).collect();
            ids.sort();
            ids
        },
    )));
    let victim = s.managed_instances[0].as_str();
    let instance = c.ec2.describe_instance(victim).await;
    out.push(shown(instance.clone().map(|i| i.map(|i| (i.id, i.state)))));
    out.push(shown(c.ec2.describe_instance("i-0123456789abcdef0").await));
    let types = ["m5.large".to_string(), "t3.large".to_string()];
    out.push(shown(c.ec2.describe_instance_types(&types).await.map(
        |t| {
            let mut t: Vec<_> = t
                .into_iter()
                .map(|t| (t.name, t.vcpus, t.memory_mib, t.max_pods))
                .collect();
            t.sort();
            t
        },
    )));
    out.push(shown(c.ec2.describe_instance_types(&[]).await));

    // A nodegroup scale-in, then a termination, each approved by the guard on fresh reads.
    let group = || async {
        c.autoscaling
            .describe_groups(std::slice::from_ref(&s.managed_asg))
            .await
            .unwrap()
            .pop()
    };
    let ng = ng.unwrap();
    let from = ng.desired_size.unwrap();
    let scale = Mutation::ScaleNodegroup {
        nodegroup: s.managed_ng.clone(),
        from,
        to: from - 1,
        because_of: victim.into(),
    };
    let evidence = Evidence {
        group: group().await,
        nodegroup: Some(ng),
        group_has_nodegroup: true,
        ..Default::default()
    };
    let Ok(Approval::ScaleNodegroup(approval)) = guard::check(cluster, &scale, &evidence) else {
        panic!("the guard approves the scale-in: {evidence:?}");
    };
    out.push(shown(c.eks.update_nodegroup_size(approval).await));
    let ng = c.eks.describe_nodegroup(cluster, &s.managed_ng).await;
    out.push(shown(ng.clone().map(|n| n.desired_size)));

    let terminate = Mutation::TerminateInstance {
        group: s.managed_asg.clone(),
        instance_id: victim.into(),
    };
    let evidence = Evidence {
        group: group().await,
        instance: instance.unwrap(),
        nodegroup: ng.ok(),
        group_has_nodegroup: true,
    };
    let Ok(Approval::Terminate(approval)) = guard::check(cluster, &terminate, &evidence) else {
        panic!("the guard approves the termination: {evidence:?}");
    };
    out.push(shown(c.autoscaling.terminate_instance(approval).await));
    let after = group().await.unwrap();
    out.push(format!(
        "{} wants {} and has {:?}",
        after.name,
        after.desired_capacity,
        after.instance_ids.contains(&victim.to_string())
    ));
    // Real AWS shows the instance shutting-down, moto already terminated: either way, not
    // running and still known.
    let gone = c.ec2.describe_instance(victim).await;
    out.push(shown(
        gone.map(|i| i.map(|i| i.state.as_deref() != Some("running"))),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_answers_and_reports_as_the_sdk_adapter_does_against_the_emulator() {
    crossguard::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let external_id = "parity-external-id-0123456789abcdefgh";
    let seed = moto.seed(&["--external-id", external_id, "--quiet"]);
    let seeded = Seeded::of(&seed);
    let (account, region) = (
        seed["account_id"].as_str().unwrap(),
        seed["region"].as_str().unwrap(),
    );
    let request = AssumeRoleRequest {
        role_arn: seed["role_arn"].as_str().unwrap().into(),
        external_id: external_id.into(),
        session_name: "crossguard@ns.parity".into(),
        source_identity: "crossguard-test".into(),
        duration_seconds: 900,
    };

    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let sdk = SdkFactory::from_config(config, Arc::new(Metrics::new()));
    let credentials = sdk.operator_sts().assume_role(&request).await.unwrap();

    // The fake holds what the emulator holds before the script changes anything.
    let aws = FakeAws::new(Arc::new(SystemClock));
    aws.add_role(&request.role_arn, external_id);
    let read = sdk.customer(account, &credentials, region, Arc::new(NoAudit));
    let cluster = read.eks.describe_cluster(&seeded.cluster).await.unwrap();
    aws.put_cluster(account, region, cluster);
    let mut types = Vec::new();
    let mut groups = Vec::new();
    for name in read.eks.list_nodegroups(&seeded.cluster).await.unwrap() {
        let ng = read
            .eks
            .describe_nodegroup(&seeded.cluster, &name)
            .await
            .unwrap();
        types.extend(ng.instance_types.clone());
        groups.extend(ng.auto_scaling_groups.clone());
        aws.put_nodegroup(account, region, ng);
    }
    for group in read.autoscaling.describe_groups(&groups).await.unwrap() {
        aws.put_group(account, region, group);
    }
    for instance in read
        .ec2
        .describe_cluster_instances(&seeded.cluster)
        .await
        .unwrap()
    {
        aws.put_instance(account, region, instance);
    }
    for shape in read.ec2.describe_instance_types(&types).await.unwrap() {
        aws.put_instance_type(shape);
    }

    let heard_sdk = Arc::new(Recorder::default());
    let sdk_clients = sdk.customer(account, &credentials, region, heard_sdk.clone());
    let sdk_said = script(&sdk_clients, &seeded).await;

    let fake_credentials = aws.operator_sts().assume_role(&request).await.unwrap();
    let heard_fake = Arc::new(Recorder::default());
    let fake_clients = aws.customer(account, &fake_credentials, region, heard_fake.clone());
    let fake_said = script(&fake_clients, &seeded).await;

    assert_eq!(fake_said, sdk_said, "the answers differ");
    let heard_sdk = heard_sdk.0.lock().unwrap().clone();
    let heard_fake = heard_fake.0.lock().unwrap().clone();
    for (i, (f, s)) in heard_fake.iter().zip(&heard_sdk).enumerate() {
        assert_eq!(
            f, s,
            "call {i}: the fake reports differently from the adapter"
        );
    }
    assert_eq!(
        heard_fake.len(),
        heard_sdk.len(),
        "{heard_fake:#?}\n{heard_sdk:#?}"
    );
    // The script covered failures and both mutating calls.
    for outcome in ["not_found", "other"] {
        assert!(heard_sdk.iter().any(|h| h.3 == outcome), "{outcome}");
    }
    assert_eq!(heard_sdk.iter().filter(|h| h.4).count(), 2);
}
