//! Shared test plumbing: a server plus a kube client, and raw HTTP helpers
//! for asserting exact status codes and bodies.

use std::time::Duration;

use fake_apiserver::FakeApiServer;
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};

pub struct Ctx {
    pub server: FakeApiServer,
    pub client: kube::Client,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
}

pub async fn setup() -> Ctx {
    ctx_for(FakeApiServer::start().await.expect("start fake apiserver"))
}

pub async fn setup_with(options: fake_apiserver::Options) -> Ctx {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    ctx_for(
        FakeApiServer::start_with(addr, options)
            .await
            .expect("start fake apiserver"),
    )
}

fn ctx_for(server: FakeApiServer) -> Ctx {
    let mut config = kube::Config::new(server.url().parse().expect("url"));
    // Tests assert exact status codes: no client-side retries of 429/503.
    config.default_retry = false;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static("fake-apiserver-contract-tests"),
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_from(config).expect("client");
    Ctx { server, client }
}

pub const JSON: &str = "application/json";
pub const MERGE: &str = "application/merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const APPLY: &str = "application/apply-patch+yaml";
pub const STRATEGIC: &str = "application/strategic-merge-patch+json";

impl Ctx {
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        accept: Option<&str>,
    ) -> Resp {
        let mut b = http::Request::builder().method(method).uri(path);
        if !content_type.is_empty() {
            b = b.header("content-type", content_type);
        }
        if let Some(a) = accept {
            b = b.header("accept", a);
        }
        let resp = self
            .client
            .send(b.body(Body::from(body)).expect("request"))
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        Resp { status, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req("GET", path, "", Vec::new(), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.req("POST", path, JSON, body.to_string().into_bytes(), None)
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.req("PUT", path, JSON, body.to_string().into_bytes(), None)
            .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &str) -> Resp {
        self.req("PATCH", path, content_type, body.as_bytes().to_vec(), None)
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.req("DELETE", path, "", Vec::new(), None).await
    }

    /// Opens a watch and returns a line reader over its events.
    pub async fn watch(&self, path_and_query: &str) -> WatchReader {
        let req = http::Request::builder()
            .uri(path_and_query)
            .body(Body::from(Vec::new()))
            .expect("request");
        let resp = self.client.send(req).await.expect("watch");
        assert_eq!(resp.status().as_u16(), 200, "watch {path_and_query}");
        WatchReader {
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }

    pub async fn create_cm(&self, ns: &str, name: &str, labels: Value) -> Value {
        let r = self
            .post(
                &format!("/api/v1/namespaces/{ns}/configmaps"),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "labels": labels},
                       "data": {"k": "v"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }
}

pub struct WatchReader {
    body: Body,
    buf: Vec<u8>,
}

impl WatchReader {
    /// The next event, or None when the stream ended or nothing came in time.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("event json"));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(data) = frame.expect("frame").into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// Next event that is not a BOOKMARK.
    pub async fn next_change(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let ev = self.next(wait).await?;
            if ev["type"] != "BOOKMARK" {
                return Some(ev);
            }
        }
    }

    /// Whether the server closed the stream within `wait`.
    pub async fn ended(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return false,
                Ok(None) => return true,
                Ok(Some(_)) => continue,
            }
        }
    }
}

pub fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .expect("numeric resourceVersion")
}

pub const SECS: Duration = Duration::from_secs(5);

/// A namespaced CRD with a status subresource, printer columns, and a
/// schema exercising validation and defaulting.
pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "shortNames": ["wd"], "categories": ["example"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Ready", "type": "string",
                     "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "x-kubernetes-validations": [
                                {"rule": "!has(self.owner) || self.owner != 'root'", "message": "owner may not be root"}
                            ],
                            "properties": {
                                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                "owner": {"type": "string", "pattern": "^[a-z]+$"},
                                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                            }
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "phase": {"type": "string"},
                                "conditions": {"type": "array", "items": {
                                    "type": "object",
                                    "properties": {
                                        "type": {"type": "string"},
                                        "status": {"type": "string"},
                                        "reason": {"type": "string"},
                                        "message": {"type": "string"}
                                    }
                                }}
                            }
                        }
                    }
                }}
            }]
        }
    })
}

pub const WIDGETS: &str = "/apis/example.dev/v1/namespaces/default/widgets";

pub async fn install_widgets(ctx: &Ctx) {
    let r = ctx
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            widget_crd(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

pub fn widget(name: &str, size: i64) -> Value {
    json!({"apiVersion": "example.dev/v1", "kind": "Widget",
           "metadata": {"name": name}, "spec": {"size": size}})
}
