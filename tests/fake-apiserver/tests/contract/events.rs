//! core/v1 and events.k8s.io/v1 Events are two views of one store.

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

use crate::common::*;
use crate::list::form_encode;

#[tokio::test]
async fn modern_events_are_listed_by_the_core_api() {
    let ctx = setup().await;
    let r = ctx
        .post(
            "/apis/events.k8s.io/v1/namespaces/default/events",
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "w.1"},
                "eventTime": "2025-01-02T03:04:05.123456Z",
                "reportingController": "example.dev/ctl", "reportingInstance": "ctl-0",
                "action": "Reconcile", "reason": "Ready", "note": "all good", "type": "Normal",
                "regarding": {"apiVersion": "example.dev/v1", "kind": "Widget",
                              "name": "w", "namespace": "default", "uid": "u-1"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sel = form_encode(
        "involvedObject.name=w,involvedObject.namespace=default,involvedObject.kind=Widget,involvedObject.uid=u-1",
    );
    let core = ctx
        .get(&format!(
            "/api/v1/namespaces/default/events?fieldSelector={sel}"
        ))
        .await
        .body;
    let ev = &core["items"][0];
    assert_eq!(core["kind"], "EventList");
    assert_eq!(ev["apiVersion"], "v1");
    assert_eq!(ev["message"], "all good");
    assert_eq!(ev["involvedObject"]["kind"], "Widget");
    assert_eq!(ev["source"]["component"], "example.dev/ctl");
    assert_eq!(ev["reportingComponent"], "example.dev/ctl");
    assert_eq!(ev["lastTimestamp"], "2025-01-02T03:04:05Z");
    assert_eq!(ev["count"], 1);
    let none = ctx
        .get(&format!(
            "/api/v1/namespaces/default/events?fieldSelector={}",
            form_encode("involvedObject.name=other")
        ))
        .await
        .body;
    assert_eq!(none["items"], json!([]));
}

#[tokio::test]
async fn core_events_are_read_by_the_modern_api() {
    let ctx = setup().await;
    let r = ctx
        .post(
            "/api/v1/namespaces/default/events",
            json!({"metadata": {"name": "p.1"}, "reason": "Pulled", "message": "pulled image",
                "type": "Normal", "count": 3, "source": {"component": "kubelet"},
                "firstTimestamp": "2025-01-02T03:04:05Z", "lastTimestamp": "2025-01-02T03:09:05Z",
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["message"], "pulled image", "response in core shape");
    let ev = ctx
        .get("/apis/events.k8s.io/v1/namespaces/default/events/p.1")
        .await
        .body;
    assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
    assert_eq!(ev["note"], "pulled image");
    assert_eq!(ev["regarding"]["name"], "p");
    assert_eq!(ev["deprecatedCount"], 3);
    assert_eq!(ev["deprecatedSource"]["component"], "kubelet");
    assert_eq!(ev["deprecatedLastTimestamp"], "2025-01-02T03:09:05Z");
    assert!(ev["eventTime"].is_string());
}

#[tokio::test]
async fn kube_runtime_recorder_events_show_up_for_kubectl_describe() {
    let ctx = setup().await;
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(ctx.client.clone(), "default");
    let cm = cms
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "target"}})).unwrap(),
        )
        .await
        .unwrap();
    let reference: ObjectReference = cm.object_ref(&());
    let recorder = Recorder::new(
        ctx.client.clone(),
        Reporter {
            controller: "crossguard".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "AssumeRoleFailed".into(),
        note: Some("access denied".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    // A repeat within the cache window is a merge patch adding `series`.
    recorder.publish(&event, &reference).await.unwrap();

    let sel = form_encode(&format!(
        "involvedObject.name=target,involvedObject.uid={}",
        cm.metadata.uid.clone().unwrap()
    ));
    let core = ctx
        .get(&format!(
            "/api/v1/namespaces/default/events?fieldSelector={sel}"
        ))
        .await
        .body;
    let items = core["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{core}");
    assert_eq!(items[0]["reason"], "AssumeRoleFailed");
    assert_eq!(items[0]["type"], "Warning");
    assert_eq!(items[0]["count"], 2);
    assert_eq!(items[0]["source"]["component"], "crossguard");
    let writes: Vec<_> = ctx
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/apis/events.k8s.io/v1/") && r.is_write())
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(writes, [("POST".into(), 201), ("PATCH".into(), 200)]);
}
