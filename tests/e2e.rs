//! End to end: the real `crossguard` binary against the fake Kubernetes API server and the
//! AWS emulator, driven with the real kubectl, the way a user runs it.

mod support;

use std::time::Duration;

use kube::api::{Api, DeleteParams, ListParams};
use serde_json::Value;

use crossguard::api::{CustomerAccount, ManagedCluster};
use support::{kubectl, kubectl_ok, wait_for};

const ACCOUNT: &str = "111111111111";
const TIMEOUT: Duration = Duration::from_secs(90);

fn ready(conditions: Option<&Vec<crossguard::api::Condition>>) -> Option<(bool, String, String)> {
    let c = conditions?.iter().find(|c| c.type_ == "Ready")?;
    Some((c.is_true(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reconciles_accounts_and_clusters_end_to_end() {
    // Install the CRDs and resources exactly as a user would (support::Env), plus a
    // second namespace for the cross-namespace case.
    let env = support::Env::start().await;
    env.apply_examples();
    env.kubectl(&["create", "namespace", "other"]);
    let (dir, server, kubeconfig, moto) = (
        env.dir.path(),
        &env.server,
        env.kubeconfig.as_path(),
        &env.moto,
    );
    let (seeded, customer) = (&env.seeded, &env.customer);
    // A role in another account than spec.accountId is rejected at `kubectl apply` by the
    // schema's CEL rule, with its message...
    let wrong_role = dir.join("wrong-role.yaml");
    std::fs::write(
        &wrong_role,
        r#"apiVersion: crossguard.dev/v1alpha1
kind: CustomerAccount
metadata: {name: wrong-role, namespace: acme}
spec:
  accountId: "222222222222"
  roleArn: arn:aws:iam::111111111111:role/crossguard-access
  regions: [us-east-1]
"#,
    )
    .unwrap();
    let (ok, _, err) = kubectl(
        kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            wrong_role.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && err.contains("roleArn must be an IAM role in the account given by accountId"),
        "{err}"
    );
    // ...and when the schema is bypassed (an older CRD, a direct write to storage), the
    // reconciler refuses it too.
    server
        .seed(serde_json::json!({
            "apiVersion": "crossguard.dev/v1alpha1", "kind": "CustomerAccount",
            "metadata": {"name": "wrong-role", "namespace": "acme", "uid": "seeded-wrong-role", "generation": 1},
            "spec": {"accountId": "222222222222", "roleArn": "arn:aws:iam::111111111111:role/crossguard-access", "regions": ["us-east-1"]},
        }))
        .expect("seed bypassing validation");
    let borrowed = dir.join("borrowed.yaml");
    std::fs::write(
        &borrowed,
        r#"apiVersion: crossguard.dev/v1alpha1
kind: ManagedCluster
metadata: {name: borrowed, namespace: other}
spec:
  accountRef: {name: acme, namespace: acme}
  region: us-east-1
  clusterName: prod
"#,
    )
    .unwrap();
    kubectl_ok(
        kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            borrowed.to_str().unwrap(),
        ],
    );
    // The customer's role is the read-only template's (the operator reads it for the
    // role-posture check, so its policies must be there to be read).
    let template = support::onboarding_template(&[
        "--account-id",
        ACCOUNT,
        "--mode",
        "read-only",
        "--cluster",
        "prod",
        "--external-id",
        "x".repeat(40).as_str(),
        "--operator-principal",
        "arn:aws:iam::123456789012:role/crossguard-operator",
    ]);
    support::customer_deploys(moto, dir, &template);
    moto.clear_calls();
    let mut operator = env.operator(&[]);
    let client = env.client().await;
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), "acme");
    let clusters: Api<ManagedCluster> = Api::namespaced(client.clone(), "acme");

    // The account becomes Ready with a verified identity in the customer's account.
    let account = wait_for("CustomerAccount acme Ready", TIMEOUT, || async {
        let a = accounts.get("acme").await.ok()?;
        matches!(
            ready(a.status.as_ref().map(|s| &s.conditions)),
            Some((true, _, _))
        )
        .then_some(a)
    })
    .await;
    let status = account.status.clone().unwrap();
    let identity = status.verified_identity.clone().expect("verified identity");
    assert_eq!(identity.account, ACCOUNT);
    assert!(
        identity
            .arn
            .contains("assumed-role/crossguard-access/crossguard@acme.acme"),
        "{}",
        identity.arn
    );
    assert!(status.credentials_expire_at.is_some() && status.last_verified_at.is_some());
    assert_eq!(
        status.observed_generation,
        account.metadata.generation.unwrap()
    );
    let external_id = status.external_id.clone().expect("externalId in status");
    assert!(external_id.len() >= 32);
    // The ExternalId lives in a Secret owned by the account.
    let secret = server
        .get_object("v1", "secrets", Some("acme"), "crossguard-externalid-acme")
        .expect("ExternalId secret");
    let stored = secret["data"]["externalId"]
        .as_str()
        .expect("data.externalId");
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(stored)
            .unwrap(),
        external_id.as_bytes()
    );
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        Value::from(account.metadata.uid.clone().unwrap())
    );
    let finalizers = account.metadata.finalizers.clone().unwrap_or_default();
    assert!(
        finalizers.contains(&"crossguard.dev/cleanup".to_string()),
        "{finalizers:?}"
    );

    // The cluster becomes Ready with the inventory that was seeded, and nothing else.
    let cluster = wait_for("ManagedCluster acme-prod Ready", TIMEOUT, || async {
        let c = clusters.get("acme-prod").await.ok()?;
        matches!(
            ready(c.status.as_ref().map(|s| &s.conditions)),
            Some((true, _, _))
        )
        .then_some(c)
    })
    .await;
    let inventory = cluster
        .status
        .as_ref()
        .and_then(|s| s.inventory.clone())
        .expect("inventory");
    let ngs = seeded["nodegroups"].as_object().expect("seeded nodegroups");
    let instances: usize = ngs
        .values()
        .map(|ng| ng["instances"].as_array().map_or(0, Vec::len))
        .sum();
    let managed_instances = ngs["managed-ng"]["instances"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(inventory.nodegroups as usize, ngs.len(), "{inventory:?}");
    assert_eq!(inventory.managed_nodegroups, 1, "{inventory:?}");
    assert_eq!(
        inventory.auto_scaling_groups as usize,
        ngs.len(),
        "{inventory:?}"
    );
    assert_eq!(inventory.managed_auto_scaling_groups, 1, "{inventory:?}");
    assert_eq!(
        inventory.instances as usize, instances,
        "unrelated instances must not count: {inventory:?}"
    );
    assert_eq!(
        inventory.managed_instances as usize, managed_instances,
        "{inventory:?}"
    );

    // The cluster was read, analysed and the report stored; status carries the summary.
    let status = cluster.status.clone().unwrap();
    let cost = status.monthly_cost.expect("monthlyCost");
    let savings = status.potential_savings.expect("potentialSavings");
    assert_eq!(status.currency.as_deref(), Some("USD"));
    assert!(cost > 0, "{cost}");
    assert!(savings > 0, "a lightly used cluster can save: {savings}");
    let report_ref = status.report_ref.clone().expect("reportRef");
    let report_path = report_ref
        .strip_prefix("file://")
        .expect("file store")
        .to_string();
    let report: Value =
        serde_json::from_str(&support::read_stored(std::path::Path::new(&report_path))).unwrap();
    assert!(
        report_path.contains(&format!(
            "/tenants/{}/reports/acme/acme-prod/",
            account.metadata.uid.clone().unwrap()
        )),
        "{report_path}"
    );
    assert!(report.to_string().contains("consolidation"), "{report}");
    // Status carries the report's own totals, in whole dollars.
    let whole = |v: &Value| v.as_f64().unwrap().round() as i64;
    assert_eq!(cost, whole(&report["currentMonthlyCost"]), "{report}");
    assert_eq!(savings, whole(&report["savings"]["total"]), "{report}");
    // Commitments as support::seed_billing set them in the shim: the zonal RI covers one
    // m5.large in full, the Savings Plan the other two at $0.06/h (60% of $0.20/h), the
    // expired RI is listed but not applied, and the t3.large nodes pay on demand.
    let commitments = &report["commitments"];
    let line = |id: &str| {
        commitments["commitments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {commitments}"))
            .clone()
    };
    let ri = line("ri-zonal-m5");
    assert_eq!(ri["utilizationPercent"], 100.0, "{ri}");
    assert_eq!(ri["scope"], "us-east-1a");
    assert!(
        (263..=265).contains(&ri["daysToExpiry"].as_i64().unwrap()),
        "{ri}"
    );
    let sp = line("sp-ec2-m5");
    assert_eq!(sp["utilizationPercent"], 60.0, "{sp}");
    assert_eq!(sp["nodes"].as_array().unwrap().len(), 2, "{sp}");
    let expired = line("ri-expired-t3");
    assert_eq!(expired["state"], "expired");
    assert_eq!(expired["utilizationPercent"], 0.0);
    assert_eq!(commitments["coveredNodes"], 3, "{commitments}");
    let nodes = report["nodes"].as_array().unwrap();
    for n in nodes {
        let cost = n["monthlyCost"].as_f64().unwrap();
        if n["instanceType"] == "m5.large" {
            // $0.06/h under the RI or the plan, 730 hours.
            assert_eq!(cost, 43.8, "{n}");
            assert_eq!(n["commitment"]["uncoveredFraction"], 0.0, "{n}");
        } else {
            assert_eq!(cost, 60.74, "t3.large on demand: {n}");
            assert!(n.get("commitment").is_none(), "{n}");
        }
    }
    assert_eq!(
        commitments["effectiveMonthlyCost"],
        3.0 * 43.8 + 2.0 * 60.74
    );
    // Removing a covered m5.large saves nothing; only removed t3.large nodes save money.
    let removed_t3: f64 = report["consolidation"]["removableNodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["instanceType"] == "t3.large")
        .map(|n| n["monthlyCost"].as_f64().unwrap())
        .sum();
    let saved = report["savings"]["consolidation"].as_f64().unwrap();
    assert!((saved - removed_t3).abs() < 0.02, "{saved} vs {removed_t3}");
    // Read-only toward the customer cluster: only GETs (lists), with an EKS token, and
    // never Secrets or ConfigMaps.
    let customer_requests = customer.requests();
    assert!(!customer_requests.is_empty());
    for r in &customer_requests {
        assert_eq!(
            r.method, "GET",
            "write to the customer cluster: {} {}",
            r.method, r.path
        );
        assert!(
            !r.path.contains("/secrets") && !r.path.contains("/configmaps"),
            "read {}",
            r.path
        );
        assert!(r.authorized, "no bearer token on {}", r.path);
        // Everything read is covered by the RBAC `crossguard onboarding-rbac` generates.
        let resource = r.path.rsplit('/').next().unwrap_or_default();
        let granted = crossguard::cluster::rbac::READ_RESOURCES
            .iter()
            .any(|(_, rs)| rs.contains(&resource));
        assert!(granted, "{} is not in the read-only RBAC", r.path);
    }
    for kind in [
        "nodes",
        "pods",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
        "poddisruptionbudgets",
    ] {
        assert!(
            customer_requests
                .iter()
                .any(|r| r.path.ends_with(&format!("/{kind}"))),
            "{kind} not listed"
        );
    }
    // The report carries the AWS inventory it used; `crossguard analyze` on a kubectl dump
    // of the same objects, given that report, computes the same figures. Without it, the
    // figures may differ and the report says why.
    assert!(
        report["awsInventory"]["nodegroups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["minSize"].is_i64())),
        "{}",
        report["awsInventory"]
    );
    let analyze = |extra: &[&str]| support::analyze_customer_dump(customer, dir, extra);
    // The stored report is sealed: `analyze` gets its decrypted copy, as a user would
    // (`crossguard store-get`).
    let report_copy = dir.join("report.json");
    std::fs::write(
        &report_copy,
        support::read_stored(std::path::Path::new(&report_path)),
    )
    .unwrap();
    let offline = analyze(&["--inventory", report_copy.to_str().unwrap()]);
    support::assert_same_figures(&offline, &report);
    let without = analyze(&[]);
    assert!(without.get("awsInventory").is_none());
    assert!(
        without["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("No AWS inventory")),
        "{}",
        without["notes"]
    );
    // The planted workload secret never reaches the store.
    let mut stored = Vec::new();
    support::files_under(&dir.join("store"), &mut stored);
    assert!(
        stored
            .iter()
            .any(|p| p.to_string_lossy().contains("/snapshots/")),
        "{stored:?}"
    );
    assert!(
        stored
            .iter()
            .any(|p| p.to_string_lossy().contains("/audit/")),
        "{stored:?}"
    );
    for path in &stored {
        let text = support::read_stored(path);
        assert!(
            !text.contains(support::WORKLOAD_CANARY),
            "workload secret stored in {}",
            path.display()
        );
    }
    let audit: String = stored
        .iter()
        .filter(|p| p.to_string_lossy().contains("/audit/acme/acme-prod/"))
        .map(|p| support::read_stored(p))
        .collect();
    assert!(
        audit.contains(r#""operation":"DescribeCluster""#)
            && audit.contains(r#""service":"kubernetes""#),
        "{audit}"
    );

    // Bad input: clear, actionable conditions instead of crashes.
    let wrong = wait_for("wrong-role refused", TIMEOUT, || async {
        let a = accounts.get("wrong-role").await.ok()?;
        ready(a.status.as_ref().map(|s| &s.conditions)).filter(|(ok, _, _)| !ok)
    })
    .await;
    assert_eq!(wrong.1, "InvalidSpec");
    assert!(
        wrong.2.contains("222222222222") && wrong.2.contains("111111111111"),
        "{}",
        wrong.2
    );
    let other: Api<ManagedCluster> = Api::namespaced(client.clone(), "other");
    let borrowed = wait_for("cross-namespace reference refused", TIMEOUT, || async {
        let c = other.get("borrowed").await.ok()?;
        ready(c.status.as_ref().map(|s| &s.conditions)).filter(|(ok, _, _)| !ok)
    })
    .await;
    assert_eq!(borrowed.1, "CrossNamespaceReference", "{}", borrowed.2);

    // What a user sees with kubectl: printer columns and Events.
    let table = kubectl_ok(kubeconfig, &["get", "customeraccounts", "-n", "acme"]);
    assert!(
        table.contains("ACCOUNT") && table.contains("READY") && table.contains("EXPIRES"),
        "{table}"
    );
    let acme_row = table
        .lines()
        .find(|l| l.starts_with("acme "))
        .expect("acme row");
    assert!(
        acme_row.contains(ACCOUNT) && acme_row.contains("ReadOnly") && acme_row.contains("True"),
        "{table}"
    );
    let table = kubectl_ok(kubeconfig, &["get", "managedclusters", "-n", "acme"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("acme-prod"))
        .expect("acme-prod row");
    assert!(
        row.contains("prod") && row.contains(&instances.to_string()) && row.contains("True"),
        "{table}"
    );
    kubectl_ok(
        kubeconfig,
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=10s",
            "-n",
            "acme",
            "customeraccount/acme",
            "managedcluster/acme-prod",
        ],
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "acme");
    let events = events.list(&ListParams::default()).await.expect("events");
    let reasons: Vec<(String, String)> = events
        .items
        .iter()
        .map(|e| {
            (
                e.regarding
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        reasons.contains(&("acme".into(), "Verified".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("acme-prod".into(), "Observed".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("wrong-role".into(), "InvalidSpec".into())),
        "{reasons:?}"
    );

    // Every AWS call after AssumeRole ran inside the customer's account, and ReadOnly
    // mode made only reads.
    let calls = moto.calls();
    let customer_calls: Vec<&Value> = calls
        .iter()
        .filter(|c| c["action"] != "AssumeRole")
        .collect();
    assert!(!customer_calls.is_empty());
    for call in &customer_calls {
        assert_eq!(
            call["account_id"], ACCOUNT,
            "call outside the customer account: {call}"
        );
        let action = call["action"].as_str().unwrap_or_default();
        assert!(
            ["Describe", "List", "Get"]
                .iter()
                .any(|p| action.starts_with(p)),
            "mutating call in ReadOnly mode: {call}"
        );
    }
    // Least privilege for ReadOnly: the actions called with the customer's session are
    // exactly what the read-only onboarding template grants (GetCallerIdentity needs no
    // grant): none missing from the policy, none granted but unused.
    let called: std::collections::BTreeSet<String> = customer_calls
        .iter()
        .filter(|c| c["action"] != "GetCallerIdentity")
        .map(|c| {
            format!(
                "{}:{}",
                c["service"].as_str().unwrap_or_default(),
                c["action"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let granted = support::granted_actions(&template);
    assert_eq!(
        called, granted,
        "actions called vs granted by the read-only template"
    );
    // The operator never lists or watches Secrets (it reads its own by name).
    for r in server.requests() {
        if r.path.contains("/secrets")
            && !r
                .user_agent
                .as_deref()
                .unwrap_or_default()
                .contains("kubectl")
        {
            assert!(
                r.path.ends_with("/crossguard-externalid-acme")
                    || r.path.ends_with("/crossguard-store-kek")
                    || r.method == "POST",
                "unexpected secret access: {} {}",
                r.method,
                r.path
            );
        }
    }
    let metrics = support::http_get(&operator.http, "/metrics");
    assert!(
        metrics.contains(
            r#"crossguard_aws_calls_total{service="sts",operation="AssumeRole",outcome="success"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"crossguard_reconciles_total{kind="ManagedCluster",outcome="ok"}"#),
        "{metrics}"
    );

    // Deletion: finalizers complete, and the owned Secret goes with the account.
    kubectl_ok(
        kubeconfig,
        &[
            "delete",
            "managedcluster",
            "acme-prod",
            "-n",
            "acme",
            "--timeout=30s",
        ],
    );
    kubectl_ok(
        kubeconfig,
        &[
            "delete",
            "customeraccount",
            "acme",
            "-n",
            "acme",
            "--timeout=30s",
        ],
    );
    assert!(clusters.get_opt("acme-prod").await.unwrap().is_none());
    assert!(accounts.get_opt("acme").await.unwrap().is_none());
    assert!(
        server
            .get_object("v1", "secrets", Some("acme"), "crossguard-externalid-acme")
            .is_none()
    );
    let (_, out, _) = kubectl(
        kubeconfig,
        &["get", "customeraccounts", "-n", "acme", "-o", "name"],
    );
    assert!(
        !out.contains("customeraccount.crossguard.dev/acme\n"),
        "{out}"
    );
    // Deleting through the API (not kubectl) works the same.
    other
        .delete("borrowed", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("borrowed deleted", TIMEOUT, || async {
        other
            .get_opt("borrowed")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    let log = operator.log_text();
    assert!(!log.contains("panicked"), "operator panicked:\n{log}");
    operator.stop();
}
