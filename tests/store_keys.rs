//! Rotating the store's local key-encryption key with the real binary: objects sealed
//! under data keys that KEK 1 wrapped, then KEK 2 made `current` in the key Secret,
//! `crossguard store-rewrap-keys` re-wraps the keyring without touching an object, and
//! after KEK 1 is removed from the Secret `crossguard store-get` still opens them
//! (docs/data-protection.md "Rotation").

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};

use crossguard::store::keys::{LocalKek, local_kek_from_secret};
use crossguard::store::{KeyPolicy, Kind, S3Options, Store};

const NS: &str = "crossguard";
const SECRET: &str = "crossguard-store-kek";

fn crossguard(kubeconfig: &Path, store_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .args(args)
        .args(["--operator-namespace", NS])
        .env("KUBECONFIG", kubeconfig)
        .env("CROSSGUARD_STORE_URL", store_url)
        .output()
        .expect("run crossguard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `kek` field of every keyring entry, by file.
fn keyring_keks(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for tenant in std::fs::read_dir(dir.join("keyring")).unwrap().flatten() {
        for entry in std::fs::read_dir(tenant.path()).unwrap().flatten() {
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
            out.insert(
                entry.path().display().to_string(),
                record["kek"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

async fn set_secret_data(client: &kube::Client, data: serde_json::Value) {
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), NS);
    api.patch(
        SECRET,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "data": data })),
    )
    .await
    .expect("patch the key Secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_kek_rotates_without_rewriting_any_object() {
    crossguard::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = fake_apiserver::FakeApiServer::start().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .unwrap();
    let store_dir = dir.path().join("store");
    let store_url = format!("file://{}", store_dir.display());

    // The operator's first start: it creates the Secret (KEK 1) and seals two tenants'
    // objects under data keys KEK 1 wraps.
    let kek = local_kek_from_secret(&client, NS, SECRET, true)
        .await
        .unwrap();
    let store = Store::open(&store_url, &S3Options::default())
        .unwrap()
        .with_encryption(std::sync::Arc::new(kek), KeyPolicy::default());
    let at = jiff::Timestamp::from_second(1_780_000_000).unwrap();
    let mut objects = Vec::new();
    for tenant in ["uid-a", "uid-b"] {
        let body = format!("{{\"tenant\":\"{tenant}\",\"note\":\"kek-rotation-marker\"}}");
        let key = store
            .put(
                tenant,
                Kind::Report,
                "ns",
                "prod",
                at,
                body.clone().into_bytes(),
            )
            .await
            .unwrap();
        objects.push((key, body));
    }
    let before: Vec<Vec<u8>> = objects
        .iter()
        .map(|(k, _)| std::fs::read(store_dir.join(k)).unwrap())
        .collect();
    assert!(keyring_keks(&store_dir).values().all(|k| k == "local:1"));

    // The administrator adds KEK 2 and makes it current.
    let kek2 = LocalKek::random_key().unwrap();
    set_secret_data(
        &client,
        serde_json::json!({
            "current": ByteString(b"2".to_vec()),
            "kek-2": ByteString(kek2.to_vec()),
        }),
    )
    .await;
    let (ok, out, err) = crossguard(&kubeconfig, &store_url, &["store-rewrap-keys"]);
    assert!(ok, "store-rewrap-keys: {err}");
    assert!(
        out.contains("2 data key(s) of 2 tenant(s) re-wrapped"),
        "{out}"
    );
    let keks = keyring_keks(&store_dir);
    assert_eq!(keks.len(), 2, "{keks:?}");
    assert!(keks.values().all(|k| k == "local:2"), "{keks:?}");
    // Not one object was rewritten.
    for ((key, _), bytes) in objects.iter().zip(&before) {
        assert_eq!(&std::fs::read(store_dir.join(key)).unwrap(), bytes, "{key}");
    }
    // Repeating it is harmless.
    let (ok, out, err) = crossguard(&kubeconfig, &store_url, &["store-rewrap-keys"]);
    assert!(ok, "{err}");
    assert!(out.contains("0 data key(s) of 2 tenant(s)"), "{out}");

    // KEK 1 removed: the objects still open, through KEK 2 alone.
    set_secret_data(&client, serde_json::json!({ "kek-1": null })).await;
    for (key, body) in &objects {
        let (ok, out, err) = crossguard(&kubeconfig, &store_url, &["store-get", key]);
        assert!(ok, "store-get {key}: {err}");
        assert_eq!(&out, body);
    }

    // Without the rewrap, removing the old KEK would have been a clear error, not garbage:
    // a third tenant's key wrapped by a KEK the Secret no longer holds.
    let old = LocalKek::new(
        "9",
        [("9".to_string(), LocalKek::random_key().unwrap())].into(),
    )
    .unwrap();
    let orphan = Store::open(&store_url, &S3Options::default())
        .unwrap()
        .with_encryption(std::sync::Arc::new(old), KeyPolicy::default());
    let key = orphan
        .put("uid-c", Kind::Report, "ns", "prod", at, b"{}".to_vec())
        .await
        .unwrap();
    let (ok, _, err) = crossguard(&kubeconfig, &store_url, &["store-get", &key]);
    assert!(!ok, "a key wrapped by an unknown KEK must not open");
    assert!(err.contains("uid-c") && err.contains('9'), "{err}");
}
