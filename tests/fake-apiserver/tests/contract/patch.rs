//! PATCH: merge, JSON (RFC 6902, kube-apiserver's `test` semantics),
//! strategic-merge approximation, and server-side apply.

use serde_json::json;

use crate::common::*;

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[tokio::test]
async fn merge_and_json_patches() {
    let ctx = setup().await;
    ctx.create_cm("default", "a", json!({"keep": "1", "drop": "1"}))
        .await;
    let path = format!("{CMS}/a");
    let m = ctx
        .patch(
            &path,
            MERGE,
            r#"{"metadata":{"labels":{"drop":null,"new":"x"}},"data":{"k2":"v2"}}"#,
        )
        .await;
    assert_eq!(m.status, 200);
    assert_eq!(
        m.body["metadata"]["labels"],
        json!({"keep": "1", "new": "x"})
    );
    assert_eq!(m.body["data"], json!({"k": "v", "k2": "v2"}));

    // kube-runtime's finalizer helper: test-for-null on a missing key passes.
    let j = ctx
        .patch(
            &path,
            JSON_PATCH,
            r#"[{"op":"test","path":"/metadata/finalizers","value":null},
                {"op":"add","path":"/metadata/finalizers","value":["x/f"]}]"#,
        )
        .await;
    assert_eq!(j.status, 200, "{}", j.body);
    assert_eq!(j.body["metadata"]["finalizers"], json!(["x/f"]));

    let failed = ctx
        .patch(
            &path,
            JSON_PATCH,
            r#"[{"op":"test","path":"/metadata/finalizers/0","value":"other"},
                {"op":"remove","path":"/metadata/finalizers/0"}]"#,
        )
        .await;
    assert_eq!(failed.status, 422);
    assert_eq!(failed.body["reason"], "Invalid");
    assert_eq!(
        failed.body["details"]["causes"][0]["message"],
        "testing value /metadata/finalizers/0 failed: test failed"
    );
    let missing = ctx
        .patch(
            &path,
            JSON_PATCH,
            r#"[{"op":"test","path":"/spec/nothing/here","value":1}]"#,
        )
        .await;
    assert_eq!(missing.status, 422);
    let garbage = ctx.patch(&path, JSON_PATCH, "{").await;
    assert_eq!(garbage.status, 400);

    let unchanged = ctx.get(&path).await.body;
    assert_eq!(unchanged["metadata"]["finalizers"], json!(["x/f"]));

    let stale = ctx
        .patch(
            &path,
            MERGE,
            r#"{"metadata":{"resourceVersion":"1"},"data":{"z":"1"}}"#,
        )
        .await;
    assert_eq!(
        stale.status, 409,
        "a resourceVersion in a patch is a precondition"
    );

    let unsupported = ctx.patch(&path, "text/plain", "{}").await;
    assert_eq!(unsupported.status, 415);
    assert_eq!(
        ctx.patch(&format!("{CMS}/none"), MERGE, "{}").await.status,
        404
    );
}

#[tokio::test]
async fn strategic_merge_approximation_for_builtins() {
    let ctx = setup().await;
    let d = json!({"metadata": {"name": "web"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "side:1"}]}}}});
    assert_eq!(ctx.post(DEPLOYS, d).await.status, 201);
    let r = ctx
        .patch(
            &format!("{DEPLOYS}/web"),
            "application/strategic-merge-patch+json",
            r#"{"spec":{"template":{"spec":{
                "$setElementOrder/containers":[{"name":"app"},{"name":"sidecar"}],
                "containers":[{"name":"app","image":"app:2"}]}}}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cs = &r.body["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs[0]["image"], "app:2");
    assert_eq!(cs[0]["env"][0]["name"], "A", "merged by name, not replaced");
    assert_eq!(cs[1]["name"], "sidecar");
    assert!(
        r.body["spec"]["template"]["spec"]
            .get("$setElementOrder/containers")
            .is_none()
    );
}

#[tokio::test]
async fn server_side_apply_tracks_fields_per_manager() {
    let ctx = setup().await;
    let path = format!("{CMS}/cfg");
    let created = ctx
        .patch(
            &format!("{path}?fieldManager=alice"),
            APPLY,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels:\n    owner: alice\ndata:\n  a: \"1\"\n  b: \"2\"\n",
        )
        .await;
    assert_eq!(created.status, 201, "apply creates: {}", created.body);

    let bob = ctx
        .patch(
            &format!("{path}?fieldManager=bob"),
            APPLY,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"c":"3"}}"#,
        )
        .await;
    assert_eq!(bob.status, 200);
    assert_eq!(bob.body["data"], json!({"a": "1", "b": "2", "c": "3"}));

    // alice stops applying `b` and the label: both go; bob's `c` stays.
    let alice = ctx
        .patch(
            &format!("{path}?fieldManager=alice"),
            APPLY,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"10\"\n",
        )
        .await;
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(alice.body["data"], json!({"a": "10", "c": "3"}));
    assert!(alice.body["metadata"].get("labels").is_none());

    // bob applying alice's field with another value conflicts...
    let conflict = ctx
        .patch(
            &format!("{path}?fieldManager=bob"),
            APPLY,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"a":"99","c":"3"}}"#,
        )
        .await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.body["reason"], "Conflict");
    assert_eq!(conflict.body["details"]["causes"][0]["field"], ".data.a");
    // ...unless forced, which moves ownership to bob.
    let forced = ctx
        .patch(
            &format!("{path}?fieldManager=bob&force=true"),
            APPLY,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"a":"99","c":"3"}}"#,
        )
        .await;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.body["data"]["a"], "99");
    let alice_again = ctx
        .patch(
            &format!("{path}?fieldManager=alice"),
            APPLY,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n",
        )
        .await;
    assert_eq!(
        alice_again.body["data"],
        json!({"a": "99", "c": "3"}),
        "alice no longer owns data.a, so dropping it does not remove bob's value"
    );

    let no_manager = ctx
        .patch(
            &path,
            APPLY,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n",
        )
        .await;
    assert_eq!(no_manager.status, 422);
    let no_kind = ctx
        .patch(
            &format!("{path}?fieldManager=x"),
            APPLY,
            "metadata:\n  name: cfg\n",
        )
        .await;
    assert_eq!(no_kind.status, 400);
}

#[tokio::test]
async fn server_side_apply_on_status_subresource() {
    let ctx = setup().await;
    let apply = |path: String, body: &'static str| {
        let ctx = &ctx;
        async move { ctx.patch(&path, APPLY, body).await }
    };
    let missing = apply(
        format!("{DEPLOYS}/web/status?fieldManager=ctl"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nstatus:\n  replicas: 1\n",
    )
    .await;
    assert_eq!(missing.status, 404, "apply does not create through /status");

    let created = apply(
        format!("{DEPLOYS}/web?fieldManager=user"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\nstatus:\n  replicas: 7\n",
    )
    .await;
    assert_eq!(created.status, 201);
    assert!(
        created.body.get("status").is_none(),
        "status ignored on main resource"
    );

    let st = apply(
        format!("{DEPLOYS}/web/status?fieldManager=ctl&force=true"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 9\nstatus:\n  replicas: 2\n  readyReplicas: 2\n",
    )
    .await;
    assert_eq!(st.status, 200, "{}", st.body);
    assert_eq!(st.body["status"]["readyReplicas"], 2);
    assert_eq!(st.body["spec"]["replicas"], 2, "spec ignored on status");
    assert_eq!(st.body["metadata"]["generation"], 1);

    let dropped = apply(
        format!("{DEPLOYS}/web/status?fieldManager=ctl&force=true"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nstatus:\n  replicas: 2\n",
    )
    .await;
    assert!(dropped.body["status"].get("readyReplicas").is_none());
}

/// What leader election (kube-lease-manager) relies on: an apply body without
/// `metadata.name` targets the object the URL names; a field another writer removed or
/// changed with a plain patch is no longer owned by its applier, so the next applier takes
/// it without a conflict, while a field still holding the applier's value conflicts.
#[tokio::test]
async fn apply_without_a_name_and_ownership_after_plain_writes() {
    let ctx = setup().await;
    let path = format!("{CMS}/lock");
    let alice = ctx
        .patch(
            &format!("{path}?fieldManager=alice"),
            APPLY,
            r#"{"apiVersion":"v1","kind":"ConfigMap","data":{"holder":"alice","since":"1"}}"#,
        )
        .await;
    assert_eq!(alice.status, 201, "{}", alice.body);
    assert_eq!(alice.body["metadata"]["name"], "lock");
    let renamed = ctx
        .patch(
            &format!("{path}?fieldManager=alice"),
            APPLY,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"},"data":{}}"#,
        )
        .await;
    assert_eq!(renamed.status, 400, "{}", renamed.body);

    // bob cannot take alice's fields while they hold her values...
    let bob = |holder: &'static str| {
        let ctx = &ctx;
        let path = path.clone();
        async move {
            ctx.patch(
                &format!("{path}?fieldManager=bob"),
                APPLY,
                &format!(
                    r#"{{"apiVersion":"v1","kind":"ConfigMap","data":{{"holder":"{holder}","since":"2"}}}}"#
                ),
            )
            .await
        }
    };
    assert_eq!(bob("bob").await.status, 409);
    // ...but once a plain patch (a forced release) cleared one and changed the other,
    // alice owns neither any more and bob's apply succeeds.
    let release = ctx
        .patch(
            &format!("{path}?fieldManager=bob"),
            STRATEGIC,
            r#"{"data":{"holder":null,"since":"0"}}"#,
        )
        .await;
    assert_eq!(release.status, 200, "{}", release.body);
    let taken = bob("bob").await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    assert_eq!(taken.body["data"], json!({"holder": "bob", "since": "2"}));
}
