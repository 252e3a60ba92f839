//! The fake through kube-rs and kube-runtime, the way the operator uses it:
//! typed Api calls, server-side apply, the finalizer helper, and the
//! watcher's re-list after 410 Gone.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use crate::common::*;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn typed_api_round_trip() {
    let ctx = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), "default");
    let created = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(api.get_opt("missing").await.unwrap().is_none());

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_string(), "2".to_string())].into());
    api.replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    match api.replace("a", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("expected conflict, got {other:?}"),
    }

    let applied = api
        .patch(
            "b",
            &PatchParams::apply("crossguard").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "b"}, "data": {"x": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["x"], "1");
    let deleted = api.delete("b", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_right(),
        "immediate deletion answers with a Status"
    );
    let list = api.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
}

#[tokio::test]
async fn finalizer_helper_adds_runs_and_removes() {
    let ctx = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), "default");
    api.create(&PostParams::default(), &cm("f")).await.unwrap();
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let run = |obj: ConfigMap| {
        let api = api.clone();
        let seen = seen.clone();
        async move {
            finalizer(
                &api,
                "example.dev/cleanup",
                Arc::new(obj),
                |ev| async move {
                    seen.lock().unwrap().push(match ev {
                        FinalizerEvent::Apply(_) => "apply",
                        FinalizerEvent::Cleanup(_) => "cleanup",
                    });
                    Ok::<_, std::convert::Infallible>(Action::await_change())
                },
            )
            .await
            .unwrap()
        }
    };
    run(api.get("f").await.unwrap()).await;
    let with = api.get("f").await.unwrap();
    assert_eq!(
        with.metadata.finalizers.clone().unwrap(),
        ["example.dev/cleanup"]
    );
    run(with).await;
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("f").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    run(deleting).await;
    assert!(api.get_opt("f").await.unwrap().is_none());
    assert_eq!(*seen.lock().unwrap(), ["apply", "cleanup"]);
}

/// Waits for the next event of a watcher stream, skipping nothing.
async fn next<S>(s: &mut S) -> Result<Event<ConfigMap>, watcher::Error>
where
    S: futures::Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(SECS, s.next())
        .await
        .expect("watcher event in time")
        .expect("stream continues")
}

fn name(cm: &ConfigMap) -> String {
    cm.metadata.name.clone().unwrap()
}

/// Reads an initial listing (Init, InitApply..., InitDone), returning names.
async fn initial<S>(s: &mut S) -> Vec<String>
where
    S: futures::Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin,
{
    assert!(matches!(next(s).await, Ok(Event::Init)));
    let mut names = Vec::new();
    loop {
        match next(s).await.unwrap() {
            Event::InitApply(o) => names.push(name(&o)),
            Event::InitDone => return names,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn watcher_relists_after_410_gone() {
    let ctx = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    assert_eq!(initial(&mut stream).await, ["a"]);

    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    match next(&mut stream).await.unwrap() {
        Event::Apply(o) => assert_eq!(name(&o), "b"),
        other => panic!("unexpected {other:?}"),
    }

    ctx.server.clear_requests();
    ctx.server.compact();
    match next(&mut stream).await {
        Err(watcher::Error::WatchError(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 watch error, got {other:?}"),
    }
    let mut relisted = initial(&mut stream).await;
    relisted.sort();
    assert_eq!(relisted, ["a", "b"]);

    api.create(&PostParams::default(), &cm("c")).await.unwrap();
    match next(&mut stream).await.unwrap() {
        Event::Apply(o) => assert_eq!(name(&o), "c"),
        other => panic!("unexpected {other:?}"),
    }
    let reqs = ctx.server.requests();
    let first_list = reqs
        .iter()
        .position(|r| r.method == "GET" && !r.is_watch() && r.path.ends_with("/configmaps"))
        .expect("a re-list after compaction");
    assert!(reqs[..first_list].iter().any(|r| r.is_watch()));
    assert!(reqs[first_list + 1..].iter().any(|r| r.is_watch()));
}

#[tokio::test]
async fn watcher_with_streaming_lists() {
    let ctx = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    let mut stream =
        watcher::watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut names = initial(&mut stream).await;
    names.sort();
    assert_eq!(names, ["a", "b"]);
    api.delete("a", &DeleteParams::default()).await.unwrap();
    match next(&mut stream).await.unwrap() {
        Event::Delete(o) => assert_eq!(name(&o), "a"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        ctx.server
            .requests()
            .iter()
            .any(|r| r.query.contains("sendInitialEvents=true")),
        "the streaming list was used"
    );
    assert!(
        !ctx.server
            .requests()
            .iter()
            .any(|r| r.method == "GET" && !r.is_watch() && r.path.ends_with("/configmaps")),
        "no paginated LIST with streaming lists"
    );
}
