//! WATCH: replay, initial state, bookmarks, 410 after compaction, timeouts
//! and filtering.

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::list::form_encode;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn watch_replays_history_then_streams_live_changes() {
    let ctx = setup().await;
    let a = ctx.create_cm("default", "a", json!({})).await;
    ctx.create_cm("default", "b", json!({})).await;
    ctx.create_cm("kube-system", "other-ns", json!({})).await;
    let mut w = ctx
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&a)))
        .await;
    let ev = w.next(SECS).await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "b");
    assert_eq!(ev["object"]["kind"], "ConfigMap");

    ctx.patch(&format!("{CMS}/a"), MERGE, r#"{"data":{"k":"2"}}"#)
        .await;
    let ev = w.next(SECS).await.unwrap();
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["metadata"]["name"], "a");
    ctx.delete(&format!("{CMS}/b")).await;
    let ev = w.next(SECS).await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["name"], "b");
    assert_eq!(rv(&ev["object"]), ctx.server.resource_version());
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_current_state() {
    let ctx = setup().await;
    ctx.create_cm("default", "a", json!({})).await;
    for q in ["watch=true", "watch=true&resourceVersion=0"] {
        let mut w = ctx.watch(&format!("{CMS}?{q}")).await;
        let ev = w.next(SECS).await.unwrap();
        assert_eq!(ev["type"], "ADDED", "{q}");
        assert_eq!(ev["object"]["metadata"]["name"], "a");
    }
    // The legacy /watch/ prefix works too.
    let mut w = ctx
        .watch("/api/v1/watch/namespaces/default/configmaps/a")
        .await;
    assert_eq!(w.next(SECS).await.unwrap()["type"], "ADDED");
}

#[tokio::test]
async fn compaction_makes_old_resource_versions_gone() {
    let ctx = setup().await;
    let a = ctx.create_cm("default", "a", json!({})).await;
    let mut live = ctx
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&a)))
        .await;
    ctx.server.compact();
    assert!(
        live.ended(SECS).await,
        "open watches are closed by compact()"
    );

    let mut w = ctx
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&a)))
        .await;
    let ev = w.next(SECS).await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["kind"], "Status");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    assert!(
        ev["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version")
    );
    assert!(w.ended(SECS).await);

    // From the current resourceVersion a watch works again.
    let list = ctx.get(CMS).await.body;
    let now = list["metadata"]["resourceVersion"].as_str().unwrap();
    let mut w = ctx
        .watch(&format!("{CMS}?watch=true&resourceVersion={now}"))
        .await;
    ctx.create_cm("default", "b", json!({})).await;
    assert_eq!(w.next(SECS).await.unwrap()["type"], "ADDED");
}

#[tokio::test]
async fn send_initial_events_ends_with_a_marked_bookmark() {
    let ctx = setup().await;
    ctx.create_cm("default", "a", json!({})).await;
    ctx.create_cm("default", "b", json!({})).await;
    let mut w = ctx
        .watch(&format!(
            "{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ))
        .await;
    assert_eq!(w.next(SECS).await.unwrap()["type"], "ADDED");
    assert_eq!(w.next(SECS).await.unwrap()["type"], "ADDED");
    let bm = w.next(SECS).await.unwrap();
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(
        bm["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(rv(&bm["object"]), ctx.server.resource_version());
    assert_eq!(bm["object"]["kind"], "ConfigMap");

    let invalid = ctx
        .get(&format!("{CMS}?watch=true&sendInitialEvents=true"))
        .await;
    assert_eq!(invalid.status, 422);
}

#[tokio::test]
async fn periodic_bookmarks_and_timeout() {
    let ctx = setup_with(fake_apiserver::Options {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let a = ctx.create_cm("default", "a", json!({})).await;
    let mut w = ctx
        .watch(&format!(
            "{CMS}?watch=true&allowWatchBookmarks=true&resourceVersion={}",
            rv(&a)
        ))
        .await;
    ctx.create_cm("kube-system", "elsewhere", json!({})).await;
    let bm = w.next(SECS).await.unwrap();
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(
        rv(&bm["object"]),
        ctx.server.resource_version(),
        "bookmarks carry the current resourceVersion"
    );

    let mut no_bm = ctx
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&a)))
        .await;
    assert!(no_bm.next(Duration::from_millis(600)).await.is_none());

    let started = std::time::Instant::now();
    let mut t = ctx
        .watch(&format!(
            "{CMS}?watch=true&timeoutSeconds=1&resourceVersion={}",
            rv(&a)
        ))
        .await;
    assert!(t.ended(SECS).await);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn watches_filter_by_namespace_labels_and_fields() {
    let ctx = setup().await;
    let start = ctx.server.resource_version();
    let sel = form_encode("app=web");
    let mut by_label = ctx
        .watch(&format!(
            "{CMS}?watch=true&resourceVersion={start}&labelSelector={sel}"
        ))
        .await;
    let fsel = form_encode("metadata.name=target");
    let mut by_field = ctx
        .watch(&format!(
            "/api/v1/configmaps?watch=true&resourceVersion={start}&fieldSelector={fsel}"
        ))
        .await;

    ctx.create_cm("kube-system", "target", json!({"app": "web"}))
        .await;
    ctx.create_cm("default", "plain", json!({})).await;
    ctx.create_cm("default", "web", json!({"app": "web"})).await;

    // Namespace-scoped watch does not see kube-system; label filter skips "plain".
    let ev = by_label.next(SECS).await.unwrap();
    assert_eq!(ev["object"]["metadata"]["name"], "web");
    let ev = by_field.next(SECS).await.unwrap();
    assert_eq!(ev["object"]["metadata"]["namespace"], "kube-system");

    // Selector transitions: leaving the selection is DELETED, entering ADDED.
    ctx.patch(
        &format!("{CMS}/web"),
        MERGE,
        r#"{"metadata":{"labels":{"app":"db"}}}"#,
    )
    .await;
    let ev = by_label.next(SECS).await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    ctx.patch(
        &format!("{CMS}/plain"),
        MERGE,
        r#"{"metadata":{"labels":{"app":"web"}}}"#,
    )
    .await;
    let ev = by_label.next(SECS).await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "plain");
}

#[tokio::test]
async fn table_watch_for_kubectl_get_w() {
    let ctx = setup().await;
    ctx.create_cm("default", "a", json!({})).await;
    let req = http::Request::builder()
        .uri(format!("{CMS}?watch=true"))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(kube::client::Body::from(Vec::new()))
        .unwrap();
    let resp = ctx.client.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(SECS, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ev: serde_json::Value =
        serde_json::from_slice(frame.into_data().unwrap().as_ref()).unwrap();
    assert_eq!(ev["object"]["kind"], "Table");
    assert_eq!(ev["object"]["rows"][0]["cells"][0], "a");
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    let ctx = setup().await;
    let mut w = ctx.watch(&format!("{CMS}?watch=true")).await;
    let started = std::time::Instant::now();
    ctx.server.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(w.ended(SECS).await);
}
