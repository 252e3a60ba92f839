//! Object lifecycle: metadata, resourceVersion/generation, conflicts,
//! status isolation, finalizers, garbage collection, namespaces, errors,
//! discovery and request recording.

use serde_json::{Value, json};

use crate::common::*;

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "img:1"}]}}},
        "status": {"replicas": 5}})
}

#[tokio::test]
async fn create_fills_server_metadata_from_one_counter() {
    let ctx = setup().await;
    let a = ctx.create_cm("default", "a", json!({})).await;
    let uid = a["metadata"]["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 36);
    assert!(
        a["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(
        a["metadata"].get("generation").is_none(),
        "configmaps have no generation"
    );
    assert_eq!(a["metadata"]["namespace"], "default");

    let s = ctx
        .post(
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "s"}, "stringData": {"a": "b"}}),
        )
        .await;
    assert_eq!(s.status, 201);
    assert_eq!(
        rv(&s.body),
        rv(&a) + 1,
        "one global counter across resources"
    );
    assert_eq!(s.body["apiVersion"], "v1");
    assert_eq!(s.body["kind"], "Secret");
    assert_eq!(
        s.body["data"]["a"], "Yg==",
        "stringData is stored base64-encoded under data"
    );
    assert!(
        s.body.get("stringData").is_none(),
        "stringData is write-only"
    );

    let d = ctx.post(DEPLOYS, deployment("web")).await;
    assert_eq!(d.status, 201);
    assert_eq!(d.body["metadata"]["generation"], 1);
    assert!(
        d.body.get("status").is_none(),
        "status is reset on create for status-subresource resources"
    );
}

#[tokio::test]
async fn generate_name_and_create_errors() {
    let ctx = setup().await;
    let r = ctx
        .post(CMS, json!({"metadata": {"generateName": "job-"}}))
        .await;
    assert_eq!(r.status, 201);
    let name = r.body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("job-") && name.len() == 9, "{name}");

    let dup = ctx.post(CMS, json!({"metadata": {"name": name}})).await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["kind"], "Status");
    assert_eq!(dup.body["status"], "Failure");
    assert_eq!(dup.body["reason"], "AlreadyExists");
    assert_eq!(dup.body["details"]["kind"], "configmaps");
    assert_eq!(
        dup.body["message"],
        format!("configmaps \"{name}\" already exists")
    );

    let missing_ns = ctx
        .post(
            "/api/v1/namespaces/nope/configmaps",
            json!({"metadata": {"name": "x"}}),
        )
        .await;
    assert_eq!(missing_ns.status, 404);
    assert_eq!(missing_ns.body["reason"], "NotFound");
    assert_eq!(missing_ns.body["details"]["kind"], "namespaces");
    assert_eq!(missing_ns.body["details"]["name"], "nope");

    let no_name = ctx.post(CMS, json!({"metadata": {}})).await;
    assert_eq!(no_name.status, 422);
    assert_eq!(no_name.body["reason"], "Invalid");

    let bad_name = ctx
        .post(CMS, json!({"metadata": {"name": "Bad_Name"}}))
        .await;
    assert_eq!(bad_name.status, 422);
    assert_eq!(
        bad_name.body["details"]["causes"][0]["field"],
        "metadata.name"
    );

    let bad_label = ctx
        .post(
            CMS,
            json!({"metadata": {"name": "ok", "labels": {"a": "not valid!"}}}),
        )
        .await;
    assert_eq!(bad_label.status, 422);

    let with_rv = ctx
        .post(
            CMS,
            json!({"metadata": {"name": "x", "resourceVersion": "3"}}),
        )
        .await;
    assert_eq!(with_rv.status, 500);

    let wrong_ns = ctx
        .post(
            CMS,
            json!({"metadata": {"name": "x", "namespace": "kube-system"}}),
        )
        .await;
    assert_eq!(wrong_ns.status, 400);
    assert_eq!(wrong_ns.body["reason"], "BadRequest");

    let wrong_kind = ctx
        .post(CMS, json!({"kind": "Secret", "metadata": {"name": "x"}}))
        .await;
    assert_eq!(wrong_kind.status, 400);

    let not_found = ctx.get(&format!("{CMS}/ghost")).await;
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.body["message"], "configmaps \"ghost\" not found");
    assert_eq!(not_found.body["code"], 404);
    assert_eq!(not_found.body["details"]["name"], "ghost");

    let apps = ctx.get(&format!("{DEPLOYS}/ghost")).await;
    assert_eq!(apps.body["message"], "deployments.apps \"ghost\" not found");
    assert_eq!(apps.body["details"]["group"], "apps");

    let unknown = ctx.get("/apis/nothing.dev/v1/things").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["kind"], "Status");

    let wrong_verb = ctx.post(&format!("{CMS}/x"), json!({})).await;
    assert_eq!(wrong_verb.status, 405);
    assert_eq!(wrong_verb.body["reason"], "MethodNotAllowed");
}

#[tokio::test]
async fn update_conflicts_on_stale_resource_version() {
    let ctx = setup().await;
    let a = ctx.create_cm("default", "a", json!({})).await;
    let mut v1 = a.clone();
    v1["data"] = json!({"k": "v2"});
    let ok = ctx.put(&format!("{CMS}/a"), v1.clone()).await;
    assert_eq!(ok.status, 200);
    assert!(rv(&ok.body) > rv(&a));

    // Same body again: its resourceVersion is now stale.
    v1["data"] = json!({"k": "v3"});
    let stale = ctx.put(&format!("{CMS}/a"), v1.clone()).await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.body["reason"], "Conflict");
    assert_eq!(
        stale.body["message"],
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Built-ins allow unconditional updates (no resourceVersion).
    let mut unconditional = v1.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let r = ctx.put(&format!("{CMS}/a"), unconditional).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["k"], "v3");

    let renamed = ctx
        .put(&format!("{CMS}/a"), json!({"metadata": {"name": "b"}}))
        .await;
    assert_eq!(renamed.status, 400);
    let missing = ctx
        .put(&format!("{CMS}/zz"), json!({"metadata": {"name": "zz"}}))
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn no_op_writes_keep_resource_version_and_emit_nothing() {
    let ctx = setup().await;
    let a = ctx.create_cm("default", "a", json!({"x": "1"})).await;
    let mut w = ctx
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&a)))
        .await;

    let same = ctx.put(&format!("{CMS}/a"), a.clone()).await;
    assert_eq!(same.status, 200);
    assert_eq!(rv(&same.body), rv(&a));
    let p = ctx
        .patch(&format!("{CMS}/a"), MERGE, r#"{"data":{"k":"v"}}"#)
        .await;
    assert_eq!(rv(&p.body), rv(&a));
    let p = ctx
        .patch(
            &format!("{CMS}/a?fieldManager=m"),
            APPLY,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels:\n    x: \"1\"\n",
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        rv(&p.body),
        rv(&a),
        "applying what is already there is a no-op"
    );

    let changed = ctx
        .patch(&format!("{CMS}/a"), MERGE, r#"{"data":{"k":"v2"}}"#)
        .await;
    assert_eq!(rv(&changed.body), rv(&a) + 1, "{}", changed.body);
    let ev = w.next_change(SECS).await.expect("event");
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(
        ev["object"]["data"]["k"], "v2",
        "no event for the no-op writes"
    );
}

#[tokio::test]
async fn generation_tracks_spec_only() {
    let ctx = setup().await;
    let d = ctx.post(DEPLOYS, deployment("web")).await.body;
    let path = format!("{DEPLOYS}/web");
    let labels = ctx
        .patch(&path, MERGE, r#"{"metadata":{"labels":{"extra":"1"}}}"#)
        .await;
    assert_eq!(labels.body["metadata"]["generation"], 1);
    assert!(rv(&labels.body) > rv(&d));
    let status = ctx
        .patch(
            &format!("{path}/status"),
            MERGE,
            r#"{"status":{"replicas":1}}"#,
        )
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["metadata"]["generation"], 1);
    let spec = ctx.patch(&path, MERGE, r#"{"spec":{"replicas":3}}"#).await;
    assert_eq!(spec.body["metadata"]["generation"], 2);
    let same_spec = ctx.patch(&path, MERGE, r#"{"spec":{"replicas":3}}"#).await;
    assert_eq!(same_spec.body["metadata"]["generation"], 2);
    assert_eq!(rv(&same_spec.body), rv(&spec.body));
}

#[tokio::test]
async fn status_subresource_is_isolated() {
    let ctx = setup().await;
    ctx.post(DEPLOYS, deployment("web")).await;
    let path = format!("{DEPLOYS}/web");

    let st = ctx
        .put(
            &format!("{path}/status"),
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 9}, "status": {"replicas": 2}}),
        )
        .await;
    assert_eq!(st.status, 200, "{}", st.body);
    assert_eq!(st.body["status"]["replicas"], 2);
    assert_eq!(st.body["spec"]["replicas"], 1, "status writes ignore spec");

    let mut main = st.body.clone();
    main["status"] = json!({"replicas": 100});
    main["spec"]["replicas"] = json!(4);
    let m = ctx.put(&path, main).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body["spec"]["replicas"], 4);
    assert_eq!(m.body["status"]["replicas"], 2, "main writes ignore status");

    let got = ctx.get(&format!("{path}/status")).await;
    assert_eq!(got.body["status"]["replicas"], 2);
    let no_status = ctx.get(&format!("{CMS}/x/status")).await;
    assert_eq!(no_status.status, 404);
}

#[tokio::test]
async fn finalizers_delay_deletion_until_removed() {
    let ctx = setup().await;
    let created = ctx
        .post(
            DEPLOYS,
            json!({"metadata": {"name": "f", "finalizers": ["example.dev/a", "example.dev/b"]},
                   "spec": {"replicas": 1}}),
        )
        .await
        .body;
    let path = format!("{DEPLOYS}/f");
    let mut w = ctx
        .watch(&format!(
            "{DEPLOYS}?watch=true&resourceVersion={}",
            rv(&created)
        ))
        .await;

    let del = ctx.delete(&path).await;
    assert_eq!(del.status, 200);
    assert_eq!(
        del.body["kind"], "Deployment",
        "pending deletion returns the object"
    );
    assert!(del.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(del.body["metadata"]["generation"], 2);
    let ev = w.next_change(SECS).await.unwrap();
    assert_eq!(ev["type"], "MODIFIED");

    // Deleting again is a no-op that returns the object.
    let again = ctx.delete(&path).await;
    assert_eq!(again.status, 200);
    assert_eq!(rv(&again.body), rv(&del.body));

    let add = ctx
        .patch(
            &path,
            JSON_PATCH,
            r#"[{"op":"add","path":"/metadata/finalizers/-","value":"example.dev/new"}]"#,
        )
        .await;
    assert_eq!(add.status, 422);
    assert_eq!(add.body["reason"], "Invalid");
    assert_eq!(
        add.body["details"]["causes"][0]["field"],
        "metadata.finalizers"
    );

    let one = ctx
        .patch(
            &path,
            MERGE,
            r#"{"metadata":{"finalizers":["example.dev/b"]}}"#,
        )
        .await;
    assert_eq!(one.status, 200);
    assert!(ctx.get(&path).await.status == 200);
    assert_eq!(w.next_change(SECS).await.unwrap()["type"], "MODIFIED");

    let last = ctx
        .patch(&path, MERGE, r#"{"metadata":{"finalizers":null}}"#)
        .await;
    assert_eq!(last.status, 200);
    assert_eq!(ctx.get(&path).await.status, 404);
    assert_eq!(w.next_change(SECS).await.unwrap()["type"], "MODIFIED");
    let gone = w.next_change(SECS).await.unwrap();
    assert_eq!(gone["type"], "DELETED");
    assert!(rv(&gone["object"]) > rv(&last.body));
}

#[tokio::test]
async fn delete_without_finalizers_returns_success_status() {
    let ctx = setup().await;
    let a = ctx.create_cm("default", "a", json!({})).await;
    let del = ctx.delete(&format!("{CMS}/a")).await;
    assert_eq!(del.status, 200);
    assert_eq!(del.body["kind"], "Status");
    assert_eq!(del.body["status"], "Success");
    assert_eq!(del.body["details"]["uid"], a["metadata"]["uid"]);
    assert_eq!(ctx.delete(&format!("{CMS}/a")).await.status, 404);

    ctx.create_cm("default", "b", json!({})).await;
    let wrong_uid = ctx
        .req(
            "DELETE",
            &format!("{CMS}/b"),
            JSON,
            br#"{"preconditions":{"uid":"nope"}}"#.to_vec(),
            None,
        )
        .await;
    assert_eq!(wrong_uid.status, 409);
}

#[tokio::test]
async fn garbage_collection_follows_owner_references() {
    let ctx = setup().await;
    let owner = ctx.post(DEPLOYS, deployment("owner")).await.body;
    let other = ctx.post(DEPLOYS, deployment("other")).await.body;
    let oref = |o: &Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]})
    };
    let secret = |name: &str, refs: Vec<Value>| json!({"metadata": {"name": name, "ownerReferences": refs}, "stringData": {"a": "b"}});
    let secrets = "/api/v1/namespaces/default/secrets";
    ctx.post(secrets, secret("owned", vec![oref(&owner)])).await;
    ctx.post(secrets, secret("shared", vec![oref(&owner), oref(&other)]))
        .await;
    let grandchild = ctx
        .post(
            CMS,
            json!({"metadata": {"name": "grandchild", "ownerReferences": []}}),
        )
        .await
        .body;
    let owned = ctx.get(&format!("{secrets}/owned")).await.body;
    let mut gc = grandchild.clone();
    gc["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Secret",
        "name": "owned", "uid": owned["metadata"]["uid"]}]);
    assert_eq!(ctx.put(&format!("{CMS}/grandchild"), gc).await.status, 200);

    assert_eq!(ctx.delete(&format!("{DEPLOYS}/owner")).await.status, 200);
    assert_eq!(ctx.get(&format!("{secrets}/owned")).await.status, 404);
    assert_eq!(
        ctx.get(&format!("{CMS}/grandchild")).await.status,
        404,
        "cascades through several levels"
    );
    let shared = ctx.get(&format!("{secrets}/shared")).await;
    assert_eq!(shared.status, 200, "an object with a live owner stays");
    assert_eq!(
        shared.body["metadata"]["ownerReferences"],
        json!([oref(&other)]),
        "the dangling reference is dropped"
    );

    // Orphan propagation keeps dependents and drops the reference.
    let r = ctx
        .req(
            "DELETE",
            &format!("{DEPLOYS}/other"),
            JSON,
            br#"{"propagationPolicy":"Orphan"}"#.to_vec(),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let shared = ctx.get(&format!("{secrets}/shared")).await;
    assert_eq!(shared.status, 200);
    assert!(shared.body["metadata"].get("ownerReferences").is_none());
}

#[tokio::test]
async fn namespace_deletion_terminates_then_removes() {
    let ctx = setup().await;
    let ns = ctx
        .post(
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        )
        .await;
    assert_eq!(ns.status, 201);
    assert_eq!(ns.body["status"]["phase"], "Active");
    assert_eq!(
        ns.body["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    ctx.create_cm("team-a", "plain", json!({})).await;
    let held = ctx
        .post(
            "/api/v1/namespaces/team-a/configmaps",
            json!({"metadata": {"name": "held", "finalizers": ["x/y"]}}),
        )
        .await;
    assert_eq!(held.status, 201);

    let del = ctx.delete("/api/v1/namespaces/team-a").await;
    assert_eq!(del.status, 200);
    assert_eq!(del.body["status"]["phase"], "Terminating");
    assert_eq!(
        ctx.get("/api/v1/namespaces/team-a/configmaps/plain")
            .await
            .status,
        404
    );
    let blocked = ctx
        .post(
            "/api/v1/namespaces/team-a/configmaps",
            json!({"metadata": {"name": "new"}}),
        )
        .await;
    assert_eq!(blocked.status, 403);
    assert_eq!(blocked.body["reason"], "Forbidden");

    let r = ctx
        .patch(
            "/api/v1/namespaces/team-a/configmaps/held",
            MERGE,
            r#"{"metadata":{"finalizers":[]}}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(ctx.get("/api/v1/namespaces/team-a").await.status, 404);
}

#[tokio::test]
async fn eviction_honours_disruption_budgets() {
    let ctx = setup().await;
    let pods = "/api/v1/namespaces/default/pods";
    for name in ["p1", "p2"] {
        let r = ctx
            .post(
                pods,
                json!({"metadata": {"name": name, "labels": {"app": "web"}},
                       "spec": {"containers": [{"name": "c", "image": "i"}]}}),
            )
            .await;
        assert_eq!(r.body["status"]["phase"], "Pending");
    }
    ctx.server
        .seed(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "maxUnavailable": 1},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1}}),
        )
        .unwrap();
    let evict = |name: &str| {
        (
            format!("{pods}/{name}/eviction"),
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}),
        )
    };
    let (p, b) = evict("p1");
    let ok = ctx.post(&p, b).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(ctx.get(&format!("{pods}/p1")).await.status, 404);
    let pdb = ctx
        .server
        .get_object("policy/v1", "poddisruptionbudgets", Some("default"), "web")
        .unwrap();
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);

    let (p, b) = evict("p2");
    let refused = ctx.post(&p, b).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["reason"], "TooManyRequests");
    assert_eq!(ctx.get(&format!("{pods}/p2")).await.status, 200);
}

#[tokio::test]
async fn dry_run_does_not_persist() {
    let ctx = setup().await;
    let r = ctx
        .post(
            &format!("{CMS}?dryRun=All"),
            json!({"metadata": {"name": "dry"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["metadata"]["name"], "dry");
    assert_eq!(ctx.get(&format!("{CMS}/dry")).await.status, 404);
}

#[tokio::test]
async fn seed_stores_objects_with_status() {
    let ctx = setup().await;
    let node = ctx
        .server
        .seed(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"capacity": {"cpu": "4"}}}),
        )
        .unwrap();
    assert!(node["metadata"]["uid"].is_string());
    let got = ctx.get("/api/v1/nodes/n1").await;
    assert_eq!(got.body["status"]["capacity"]["cpu"], "4");
    assert!(
        ctx.server
            .seed(json!({"apiVersion": "v9", "kind": "Nope"}))
            .is_err()
    );
    assert_eq!(ctx.server.list_objects("v1", "nodes", None).len(), 1);
}

#[tokio::test]
async fn discovery_documents() {
    let ctx = setup().await;
    let v = ctx.get("/version").await;
    assert_eq!(v.body["major"], "1");
    let api = ctx.get("/api").await;
    assert_eq!(api.body["versions"], json!(["v1"]));
    let apis = ctx.get("/apis").await;
    assert_eq!(apis.body["kind"], "APIGroupList");
    let apps = ctx.get("/apis/apps/v1").await;
    let names: Vec<&str> = apps.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"deployments") && names.contains(&"deployments/status"));
    let group = ctx.get("/apis/coordination.k8s.io").await;
    assert_eq!(group.body["preferredVersion"]["version"], "v1");
    assert_eq!(ctx.get("/openapi/v2").await.status, 404);
    let core = ctx.get("/api/v1").await;
    assert!(
        core.body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/eviction")
    );
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let ctx = setup().await;
    ctx.server.clear_requests();
    ctx.create_cm("default", "a", json!({})).await;
    ctx.get(&format!("{CMS}?labelSelector=a%3Db")).await;
    ctx.get(&format!("{CMS}/missing")).await;
    ctx.req("GET", "/api/v1/namespaces", "", Vec::new(), None)
        .await;
    let reqs = ctx.server.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, CMS);
    assert_eq!(reqs[0].content_type.as_deref(), Some(JSON));
    assert_eq!(reqs[0].status, 201);
    assert_eq!(
        reqs[0].user_agent.as_deref(),
        Some("fake-apiserver-contract-tests")
    );
    assert!(!reqs[0].authorized);
    assert_eq!(reqs[1].query, "labelSelector=a%3Db");
    assert_eq!(reqs[2].status, 404);
    assert!(reqs.iter().all(|r| !r.targets("secrets")));
    assert_eq!(reqs.iter().filter(|r| r.is_write()).count(), 1);

    // Authorization presence is recorded, never the credential.
    let mut client_cfg = kube::Config::new(ctx.server.url().parse().unwrap());
    client_cfg.default_retry = false;
    client_cfg.auth_info.token = Some("secret-token".to_string().into());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let authed = kube::Client::try_from(client_cfg).unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(authed);
    api.get("default").await.unwrap();
    let last = ctx.server.requests().pop().unwrap();
    assert!(last.authorized);
    assert!(!format!("{last:?}").contains("secret-token"));

    ctx.server.clear_requests();
    assert!(ctx.server.requests().is_empty());
}

#[tokio::test]
async fn injected_failures_come_first() {
    let ctx = setup().await;
    ctx.server
        .inject_failure(Some("GET"), "/configmaps", 503, 1);
    let r = ctx.get(CMS).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["reason"], "ServiceUnavailable");
    assert_eq!(ctx.get(CMS).await.status, 200);
}
