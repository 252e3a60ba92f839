//! LIST: list envelope, pagination with consistent snapshots, selectors.

use serde_json::{Value, json};

use crate::common::*;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn list_envelope_carries_kind_and_resource_version() {
    let ctx = setup().await;
    ctx.create_cm("default", "a", json!({})).await;
    let l = ctx.get(CMS).await;
    assert_eq!(l.status, 200);
    assert_eq!(l.body["kind"], "ConfigMapList");
    assert_eq!(l.body["apiVersion"], "v1");
    assert_eq!(
        l.body["metadata"]["resourceVersion"],
        ctx.server.resource_version().to_string()
    );
    assert_eq!(l.body["items"][0]["kind"], "ConfigMap");
    let d = ctx.get("/apis/apps/v1/deployments").await;
    assert_eq!(d.body["kind"], "DeploymentList");
    assert_eq!(d.body["apiVersion"], "apps/v1");
}

#[tokio::test]
async fn pagination_serves_a_consistent_snapshot_over_three_pages() {
    let ctx = setup().await;
    for i in 0..7 {
        ctx.create_cm("default", &format!("cm-{i}"), json!({}))
            .await;
    }
    let p1 = ctx.get(&format!("{CMS}?limit=3")).await.body;
    assert_eq!(names(&p1), ["cm-0", "cm-1", "cm-2"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 4);
    let tok1 = p1["metadata"]["continue"].as_str().unwrap().to_string();

    // Changes after the first page do not leak into later pages.
    ctx.create_cm("default", "cm-5a", json!({})).await;
    ctx.delete(&format!("{CMS}/cm-6")).await;

    let p2 = ctx
        .get(&format!("{CMS}?limit=3&continue={tok1}"))
        .await
        .body;
    assert_eq!(names(&p2), ["cm-3", "cm-4", "cm-5"]);
    assert_eq!(
        p2["metadata"]["resourceVersion"],
        p1["metadata"]["resourceVersion"]
    );
    let tok2 = p2["metadata"]["continue"].as_str().unwrap().to_string();
    let p3 = ctx
        .get(&format!("{CMS}?limit=3&continue={tok2}"))
        .await
        .body;
    assert_eq!(names(&p3), ["cm-6"]);
    assert!(p3["metadata"].get("continue").is_none());

    let fresh = ctx.get(CMS).await.body;
    assert!(names(&fresh).contains(&"cm-5a".to_string()));
    assert!(!names(&fresh).contains(&"cm-6".to_string()));

    // Compaction expires continue tokens.
    let p1 = ctx.get(&format!("{CMS}?limit=2")).await.body;
    let tok = p1["metadata"]["continue"].as_str().unwrap().to_string();
    ctx.server.compact();
    let expired = ctx.get(&format!("{CMS}?limit=2&continue={tok}")).await;
    assert_eq!(expired.status, 410);
    assert_eq!(expired.body["reason"], "Expired");
    assert_eq!(ctx.get(&format!("{CMS}?continue=zz")).await.status, 400);
}

#[tokio::test]
async fn label_selectors() {
    let ctx = setup().await;
    ctx.create_cm("default", "web-prod", json!({"app": "web", "env": "prod"}))
        .await;
    ctx.create_cm("default", "web-dev", json!({"app": "web", "env": "dev"}))
        .await;
    ctx.create_cm("default", "db", json!({"app": "db"})).await;
    let sel = |s: &'static str| {
        let ctx = &ctx;
        async move {
            let q: String = form_encode(s);
            let r = ctx.get(&format!("{CMS}?labelSelector={q}")).await;
            assert_eq!(r.status, 200, "{s}: {}", r.body);
            let mut n = names(&r.body);
            n.sort();
            n
        }
    };
    assert_eq!(sel("app=web").await, ["web-dev", "web-prod"]);
    assert_eq!(sel("app==web,env=prod").await, ["web-prod"]);
    assert_eq!(sel("app!=web").await, ["db"]);
    assert_eq!(sel("env in (dev,qa)").await, ["web-dev"]);
    assert_eq!(sel("env notin (dev)").await, ["db", "web-prod"]);
    assert_eq!(sel("env").await, ["web-dev", "web-prod"]);
    assert_eq!(sel("!env").await, ["db"]);
    let bad = ctx
        .get(&format!("{CMS}?labelSelector={}", form_encode("a in b")))
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn field_selectors_and_cross_namespace_lists() {
    let ctx = setup().await;
    ctx.create_cm("default", "a", json!({})).await;
    ctx.create_cm("kube-system", "a", json!({})).await;
    ctx.create_cm("kube-system", "b", json!({})).await;
    let all = ctx.get("/api/v1/configmaps").await.body;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    let by_name = ctx
        .get(&format!(
            "/api/v1/configmaps?fieldSelector={}",
            form_encode("metadata.name=a")
        ))
        .await
        .body;
    assert_eq!(by_name["items"].as_array().unwrap().len(), 2);
    let by_ns = ctx
        .get(&format!(
            "/api/v1/configmaps?fieldSelector={}",
            form_encode("metadata.namespace=kube-system,metadata.name!=a")
        ))
        .await
        .body;
    assert_eq!(names(&by_ns), ["b"]);
    let nested = ctx
        .get(&format!(
            "/api/v1/configmaps?fieldSelector={}",
            form_encode("data.k=v,metadata.namespace==default")
        ))
        .await
        .body;
    assert_eq!(names(&nested), ["a"]);
}

pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
