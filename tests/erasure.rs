//! Retention and erasure against S3 (the emulator): the operator stores into an S3 bucket
//! with SSE-KMS and, on top, client-side envelope encryption whose data keys KMS wraps
//! (docs/data-protection.md); deleting the CustomerAccount erases the tenant's prefix before the
//! finalizer goes, and when erasure fails the finalizer stays and status says why.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Moto, kubectl_ok, python, wait_for};

const BUCKET: &str = "crossguard-reports";

/// Run a short boto3 script against the emulator; returns its stdout.
fn boto(moto: &Moto, script: &str) -> String {
    let prelude = format!(
        "import boto3, json\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\nkms = boto3.client('kms', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n",
        moto.url, moto.url
    );
    let out = Command::new(python())
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn keys(moto: &Moto) -> Vec<String> {
    let out = boto(
        moto,
        &format!(
            "r = s3.list_objects_v2(Bucket='{BUCKET}')\nprint(json.dumps([o['Key'] for o in r.get('Contents', [])]))"
        ),
    );
    serde_json::from_str(out.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_is_encrypted_and_erased_with_the_account() {
    let env = support::Env::start().await;
    let (moto, kubeconfig) = (&env.moto, &env.kubeconfig);
    let key_id = boto(
        moto,
        &format!(
            "s3.create_bucket(Bucket='{BUCKET}')\nprint(kms.create_key()['KeyMetadata']['KeyId'])"
        ),
    );
    let key_id = key_id.trim().to_string();

    env.apply_examples();
    let store_url = format!("s3://{BUCKET}/crossguard");
    let mut operator = env.operator(&[
        ("CROSSGUARD_STORE_URL", store_url.as_str()),
        ("CROSSGUARD_STORE_ENDPOINT", moto.url.as_str()),
        ("CROSSGUARD_STORE_SSE_KMS_KEY_ID", key_id.as_str()),
        ("CROSSGUARD_STORE_KMS_KEY_ID", key_id.as_str()),
    ]);
    let get = |kind: &str, name: &str, path: &str| jsonpath(kubeconfig, kind, name, path);

    // Reports, snapshots and audit logs land in the bucket under the tenant's prefix, encrypted.
    let uid = get("customeraccount", "acme", "{.metadata.uid}");
    wait_for("report in S3", Duration::from_secs(90), || async {
        let ks = keys(moto);
        ks.iter()
            .any(|k| k.contains("/reports/acme/acme-prod/"))
            .then_some(())
    })
    .await;
    let (keyring, stored): (Vec<String>, Vec<String>) = keys(moto)
        .into_iter()
        .partition(|k| k.starts_with("crossguard/keyring/"));
    assert!(
        stored
            .iter()
            .all(|k| k.starts_with(&format!("crossguard/tenants/{uid}/"))),
        "{stored:?}"
    );
    let report_ref = get("managedcluster", "acme-prod", "{.status.reportRef}");
    assert!(
        report_ref.starts_with(&format!("s3://{BUCKET}/crossguard/tenants/{uid}/reports/")),
        "{report_ref}"
    );
    // One data key for the tenant, wrapped by KMS, beside its data; every object is sealed
    // with it (header CGSE) and also SSE-KMS encrypted by S3.
    assert_eq!(keyring.len(), 1, "{keyring:?}");
    assert!(keyring[0].starts_with(&format!("crossguard/keyring/{uid}/")));
    let record: serde_json::Value = serde_json::from_str(
        boto(
            moto,
            &format!(
                "print(s3.get_object(Bucket='{BUCKET}', Key='{}')['Body'].read().decode())",
                keyring[0]
            ),
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(record["kek"], format!("kms:{key_id}"));
    assert_eq!(record["tenant"], uid.as_str());
    for key in &stored {
        let head = boto(
            moto,
            &format!(
                "print(s3.get_object(Bucket='{BUCKET}', Key='{key}')['Body'].read()[:4].decode('latin-1'))"
            ),
        );
        assert_eq!(head.trim(), "CGSE", "{key} is not sealed");
    }
    // The report reads back through crossguard with the operator's identity (KMS Decrypt).
    let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args(["store-get", &report_ref])
        .env("CROSSGUARD_STORE_URL", &store_url)
        .env("CROSSGUARD_STORE_ENDPOINT", &moto.url)
        .env("CROSSGUARD_STORE_KMS_KEY_ID", &key_id)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["currentMonthlyCost"].is_number(), "{report}");
    let sse = boto(
        moto,
        &format!(
            "h = s3.head_object(Bucket='{BUCKET}', Key='{}')\nprint(h.get('ServerSideEncryption'), h.get('SSEKMSKeyId'))",
            stored[0]
        ),
    );
    assert!(sse.starts_with("aws:kms") && sse.contains(&key_id), "{sse}");

    // Retention: an object older than dataRetentionDays (365) is swept at the next
    // reconcile of the account; a recent one stays.
    let old = format!("crossguard/tenants/{uid}/reports/acme/acme-prod/20200101T000000Z.json");
    boto(
        moto,
        &format!("s3.put_object(Bucket='{BUCKET}', Key='{old}', Body=b'old')"),
    );
    kubectl_ok(
        kubeconfig,
        &[
            "annotate",
            "customeraccount",
            "acme",
            "-n",
            "acme",
            "example.com/touch=1",
        ],
    );
    wait_for("old report swept", Duration::from_secs(60), || async {
        (!keys(moto).contains(&old)).then_some(())
    })
    .await;
    assert!(
        keys(moto)
            .iter()
            .any(|k| k.contains("/reports/acme/acme-prod/")),
        "recent reports stay"
    );

    // Erasure fails (the bucket is gone): the finalizer stays and status says why.
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
    boto(
        moto,
        &format!(
            "b = boto3.resource('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing').Bucket('{BUCKET}')\nb.objects.all().delete()\nb.delete()",
            moto.url
        ),
    );
    kubectl_ok(
        kubeconfig,
        &[
            "delete",
            "customeraccount",
            "acme",
            "-n",
            "acme",
            "--wait=false",
        ],
    );
    let message = wait_for("ErasureFailed", Duration::from_secs(60), || async {
        (get(
            "customeraccount",
            "acme",
            "{.status.conditions[?(@.type==\"Ready\")].reason}",
        ) == "ErasureFailed")
            .then(|| {
                get(
                    "customeraccount",
                    "acme",
                    "{.status.conditions[?(@.type==\"Ready\")].message}",
                )
            })
    })
    .await;
    assert!(
        message.contains("erasing this account's stored data failed"),
        "{message}"
    );
    assert!(
        !get("customeraccount", "acme", "{.metadata.finalizers}").is_empty(),
        "the finalizer must stay"
    );

    // Once the store works again, erasure completes and the account goes away.
    // (That erasure deletes what is there is checked race-free with the file store in e2e.rs.)
    boto(moto, &format!("s3.create_bucket(Bucket='{BUCKET}')"));
    wait_for(
        "account deleted after erasure",
        Duration::from_secs(120),
        || async {
            let (_, out, err) = support::kubectl(
                kubeconfig,
                &["get", "customeraccount", "acme", "-n", "acme", "-o", "name"],
            );
            (out.trim().is_empty() && err.contains("NotFound")).then_some(())
        },
    )
    .await;
    // The deletion record stays as evidence; the tenant's keyring is gone.
    let left = keys(moto);
    assert!(
        left.contains(&format!("crossguard/erasures/{uid}.json")),
        "{left:?}"
    );
    assert!(
        !left
            .iter()
            .any(|k| k.contains("/keyring/") || k.contains("/tenants/")),
        "{left:?}"
    );
    operator.stop();
}

/// Every file under `dir` (staging files of unfinished writes included).
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    support::files_under(dir, &mut out);
    out
}

/// The race found driving the real binary: an analysis in flight when its CustomerAccount
/// is deleted must not write a snapshot, report or audit log under the erased prefix, and
/// the ManagedCluster must stop pointing at the erased report. The customer cluster's API
/// answers each request 2 s late, so the analysis that a spec change starts is still
/// reading when the account is deleted 4 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_in_flight_writes_nothing_after_its_account_is_erased() {
    let env = support::Env::start().await;
    let kubeconfig = &env.kubeconfig;
    env.apply_examples();
    let mut operator = env.operator(&[]);
    let store = env.dir.path().join("store");
    let get = |kind: &str, name: &str, path: &str| jsonpath(kubeconfig, kind, name, path);
    let uid = get("customeraccount", "acme", "{.metadata.uid}");
    let tenant = store.join("tenants").join(&uid);
    wait_for("first report", Duration::from_secs(90), || async {
        let r = get("managedcluster", "acme-prod", "{.status.reportRef}");
        (!r.is_empty()).then_some(r)
    })
    .await;

    // A slow customer API, then a spec change that starts a new analysis.
    env.customer.set_latency(Duration::from_secs(2));
    env.customer.clear_requests();
    support::patch_acme_prod(
        kubeconfig,
        r#"{"spec":{"sanitizer":{"extraSensitiveNames":["RACE_TEST"]}}}"#,
    );
    wait_for(
        "the analysis reads the customer cluster",
        Duration::from_secs(30),
        || async { (!env.customer.requests().is_empty()).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    kubectl_ok(
        kubeconfig,
        &[
            "delete",
            "customeraccount",
            "acme",
            "-n",
            "acme",
            "--wait=false",
        ],
    );
    wait_for("account erased", Duration::from_secs(60), || async {
        let (_, out, err) = support::kubectl(
            kubeconfig,
            &["get", "customeraccount", "acme", "-n", "acme", "-o", "name"],
        );
        (out.trim().is_empty() && err.contains("NotFound")).then_some(())
    })
    .await;
    // Long enough for the uncancelled analysis (about 30 s at 2 s a request) to finish
    // and write; its writes would land under the erased prefix.
    tokio::time::sleep(Duration::from_secs(40)).await;
    let left = files(&tenant);
    assert!(left.is_empty(), "written after erasure: {left:?}");
    assert!(
        store.join("erasures").join(format!("{uid}.json")).exists(),
        "the deletion record records the erasure"
    );
    let report_ref = get("managedcluster", "acme-prod", "{.status.reportRef}");
    assert!(
        report_ref.is_empty(),
        "reportRef still points at erased data: {report_ref}"
    );
    let reason = get(
        "managedcluster",
        "acme-prod",
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
    );
    assert!(
        reason == "AccountDeleting" || reason == "AccountNotFound",
        "{reason}"
    );
    let log = operator.log_text();
    assert!(!log.contains("panicked"), "operator panicked:\n{log}");
    operator.stop();
}

/// `kubectl get KIND NAME -n acme -o jsonpath=PATH`: what it printed (empty when the object
/// or the field is not there).
fn jsonpath(kubeconfig: &std::path::Path, kind: &str, name: &str, path: &str) -> String {
    let path = format!("jsonpath={path}");
    support::kubectl(kubeconfig, &["get", kind, name, "-n", "acme", "-o", &path]).1
}
