//! CustomResourceDefinitions: registration, discovery, schema validation,
//! defaulting, pruning, Tables with printer columns, unregistration.

use serde_json::{Value, json};

use crate::common::*;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn condition<'a>(crd: &'a Value, t: &str) -> &'a Value {
    crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .unwrap_or_else(|| panic!("no {t} condition in {crd}"))
}

#[tokio::test]
async fn crd_registration_establishes_the_resource() {
    let ctx = setup().await;
    assert_eq!(ctx.get(WIDGETS).await.status, 404);
    let r = ctx
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            widget_crd(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(condition(&r.body, "Established")["status"], "True");
    assert_eq!(condition(&r.body, "NamesAccepted")["status"], "True");
    assert_eq!(r.body["status"]["acceptedNames"]["kind"], "Widget");
    assert_eq!(r.body["status"]["acceptedNames"]["listKind"], "WidgetList");
    assert_eq!(r.body["status"]["storedVersions"], json!(["v1"]));

    let groups = ctx.get("/apis").await.body;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.dev")
    );
    let rl = ctx.get("/apis/example.dev/v1").await.body;
    let widgets = rl["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "widgets")
        .unwrap();
    assert_eq!(widgets["shortNames"], json!(["wd"]));
    assert_eq!(widgets["categories"], json!(["example"]));
    assert_eq!(widgets["namespaced"], true);
    assert!(
        rl["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "widgets/status")
    );
    let list = ctx.get(WIDGETS).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["kind"], "WidgetList");

    let bad = ctx
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            json!({"metadata": {"name": "wrong.example.dev"},
                   "spec": {"group": "example.dev", "scope": "Namespaced",
                            "names": {"plural": "things", "kind": "Thing"},
                            "versions": [{"name": "v1", "served": true, "storage": true,
                                          "schema": {"openAPIV3Schema": {"type": "object"}}}]}}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["details"]["causes"][0]["field"], "metadata.name");
}

#[tokio::test]
async fn custom_resources_are_validated_defaulted_and_pruned() {
    let ctx = setup().await;
    install_widgets(&ctx).await;
    let mut w = widget("w1", 3);
    w["spec"]["unknown"] = json!(true);
    w["spec"]["extra"] = json!({"free": {"form": 1}});
    w["status"] = json!({"phase": "ignored on create"});
    let r = ctx.post(WIDGETS, w).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["spec"]["color"], "red", "schema default applied");
    assert!(
        r.body["spec"].get("unknown").is_none(),
        "unknown field pruned"
    );
    assert_eq!(r.body["spec"]["extra"]["free"]["form"], 1);
    assert!(r.body.get("status").is_none());
    assert_eq!(r.body["metadata"]["generation"], 1);

    let bad = ctx
        .post(
            WIDGETS,
            json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                   "metadata": {"name": "bad"},
                   "spec": {"size": 11, "color": "green", "owner": "Bob1", "tags": ["a", "b", "c"]}}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["reason"], "Invalid");
    assert_eq!(bad.body["details"]["kind"], "Widget");
    assert_eq!(bad.body["details"]["group"], "example.dev");
    assert_eq!(bad.body["details"]["name"], "bad");
    let causes = bad.body["details"]["causes"].as_array().unwrap();
    let field_reason: Vec<(String, String)> = causes
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (f, r) in [
        ("spec.size", "FieldValueInvalid"),
        ("spec.color", "FieldValueNotSupported"),
        ("spec.owner", "FieldValueInvalid"),
        ("spec.tags", "FieldValueTooMany"),
    ] {
        assert!(
            field_reason.contains(&(f.to_string(), r.to_string())),
            "{f} {r} missing in {field_reason:?}"
        );
    }
    assert!(
        bad.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Widget.example.dev \"bad\" is invalid: [")
    );

    let missing = ctx
        .post(
            WIDGETS,
            json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                   "metadata": {"name": "m"}, "spec": {}}),
        )
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.body["details"]["causes"][0]["field"], "spec.size");
    assert_eq!(
        missing.body["details"]["causes"][0]["reason"],
        "FieldValueRequired"
    );

    let mut strict = widget("strict", 1);
    strict["spec"]["bogus"] = json!(1);
    let s = ctx
        .post(&format!("{WIDGETS}?fieldValidation=Strict"), strict)
        .await;
    assert_eq!(s.status, 400);
    assert!(
        s.body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.bogus\"")
    );

    // Updates must carry a resourceVersion and are validated too.
    let mut upd = r.body.clone();
    upd["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let no_rv = ctx.put(&format!("{WIDGETS}/w1"), upd).await;
    assert_eq!(no_rv.status, 422);
    let p = ctx
        .patch(&format!("{WIDGETS}/w1"), MERGE, r#"{"spec":{"size":0}}"#)
        .await;
    assert_eq!(p.status, 422);
    let smp = ctx
        .patch(
            &format!("{WIDGETS}/w1"),
            "application/strategic-merge-patch+json",
            r#"{"spec":{"size":2}}"#,
        )
        .await;
    assert_eq!(
        smp.status, 415,
        "custom resources do not support strategic merge"
    );
    let p = ctx
        .patch(
            &format!("{WIDGETS}/w1"),
            MERGE,
            r#"{"spec":{"color":null}}"#,
        )
        .await;
    assert_eq!(
        p.body["spec"]["color"], "red",
        "defaults re-applied on update"
    );
}

#[tokio::test]
async fn tables_render_printer_columns() {
    let ctx = setup().await;
    install_widgets(&ctx).await;
    ctx.post(WIDGETS, widget("w1", 3)).await;
    ctx.post(WIDGETS, widget("w2", 5)).await;
    ctx.patch(
        &format!("{WIDGETS}/w1/status"),
        MERGE,
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    )
    .await;
    let t = ctx
        .req("GET", WIDGETS, "", Vec::new(), Some(TABLE))
        .await
        .body;
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Size", "Ready", "Age"]);
    let row = &t["rows"][0];
    assert_eq!(row["cells"][0], "w1");
    assert_eq!(row["cells"][1], 3);
    assert_eq!(row["cells"][2], "True");
    let age = row["cells"][3].as_str().unwrap();
    assert!(
        age.ends_with('s') && age.len() <= 3,
        "relative age, got {age}"
    );
    assert_eq!(
        t["rows"][1]["cells"][2],
        json!(null),
        "no Ready condition yet"
    );
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["name"], "w1");

    let full = ctx
        .req(
            "GET",
            &format!("{WIDGETS}?includeObject=Object"),
            "",
            Vec::new(),
            Some(TABLE),
        )
        .await
        .body;
    assert_eq!(full["rows"][0]["object"]["spec"]["size"], 3);
    let none = ctx
        .req(
            "GET",
            &format!("{WIDGETS}/w2?includeObject=None"),
            "",
            Vec::new(),
            Some(TABLE),
        )
        .await
        .body;
    assert_eq!(none["rows"].as_array().unwrap().len(), 1);
    assert!(none["rows"][0].get("object").is_none());

    let builtin = ctx
        .req("GET", "/api/v1/namespaces", "", Vec::new(), Some(TABLE))
        .await
        .body;
    let cols: Vec<&str> = builtin["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Status", "Age"]);
    let plain = ctx
        .req(
            "GET",
            "/api/v1/namespaces/default/secrets",
            "",
            Vec::new(),
            Some(TABLE),
        )
        .await
        .body;
    assert_eq!(plain["columnDefinitions"][1]["name"], "Age");
}

#[tokio::test]
async fn deleting_a_crd_removes_its_resources() {
    let ctx = setup().await;
    install_widgets(&ctx).await;
    ctx.post(WIDGETS, widget("w1", 3)).await;
    let mut w = ctx.watch(&format!("{WIDGETS}?watch=true")).await;
    assert_eq!(w.next(SECS).await.unwrap()["type"], "ADDED");
    let del = ctx
        .delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.dev")
        .await;
    assert_eq!(del.status, 200);
    assert_eq!(w.next(SECS).await.unwrap()["type"], "DELETED");
    assert!(w.ended(SECS).await, "watches of the removed resource end");
    assert_eq!(ctx.get(WIDGETS).await.status, 404);
    assert_eq!(ctx.get("/apis/example.dev/v1").await.status, 404);
    // Re-creating starts empty.
    install_widgets(&ctx).await;
    let l = ctx.get(WIDGETS).await.body;
    assert_eq!(l["items"], json!([]));
}

#[tokio::test]
async fn every_served_version_is_registered() {
    let ctx = setup().await;
    let mut crd = widget_crd();
    let mut v2 = crd["spec"]["versions"][0].clone();
    v2["name"] = json!("v1beta1");
    v2["storage"] = json!(false);
    crd["spec"]["versions"].as_array_mut().unwrap().push(v2);
    let mut v3 = crd["spec"]["versions"][0].clone();
    v3["name"] = json!("v1alpha1");
    v3["served"] = json!(false);
    v3["storage"] = json!(false);
    crd["spec"]["versions"].as_array_mut().unwrap().push(v3);
    let r = ctx
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    ctx.post(WIDGETS, widget("w1", 3)).await;
    let beta = ctx
        .get("/apis/example.dev/v1beta1/namespaces/default/widgets/w1")
        .await;
    assert_eq!(beta.status, 200);
    assert_eq!(beta.body["apiVersion"], "example.dev/v1beta1");
    assert_eq!(
        ctx.get("/apis/example.dev/v1alpha1/namespaces/default/widgets")
            .await
            .status,
        404
    );
    let group = ctx.get("/apis/example.dev").await.body;
    assert_eq!(group["preferredVersion"]["version"], "v1");
    assert_eq!(
        ctx.server
            .get_object("example.dev/v1beta1", "widgets", Some("default"), "w1")
            .unwrap()["spec"]["size"],
        3
    );
}

#[tokio::test]
async fn without_a_status_subresource_status_is_ordinary_content() {
    let ctx = setup().await;
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("subresources");
    let r = ctx
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd,
        )
        .await;
    assert_eq!(r.status, 201);
    let mut w = widget("w1", 3);
    w["status"] = json!({"phase": "kept"});
    let created = ctx.post(WIDGETS, w).await.body;
    assert_eq!(created["status"]["phase"], "kept");
    let p = ctx
        .patch(
            &format!("{WIDGETS}/w1"),
            MERGE,
            r#"{"status":{"phase":"new"}}"#,
        )
        .await;
    assert_eq!(p.body["status"]["phase"], "new");
    assert_eq!(p.body["metadata"]["generation"], 2);
    assert_eq!(ctx.get(&format!("{WIDGETS}/w1/status")).await.status, 404);
}

#[tokio::test]
async fn cel_rules_reject_bad_objects_with_their_message_and_ratchet() {
    let ctx = setup().await;
    install_widgets(&ctx).await;
    let mut w = widget("root-owned", 3);
    w["spec"]["owner"] = json!("root");
    let r = ctx.post(WIDGETS, w).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("owner may not be root"),
        "{}",
        r.body
    );
    assert_eq!(
        r.body["details"]["causes"][0]["reason"],
        "FieldValueInvalid"
    );
    let mut ok = widget("alice-owned", 3);
    ok["spec"]["owner"] = json!("alice");
    assert_eq!(ctx.post(WIDGETS, ok).await.status, 201);

    // Stored before the rule could catch it (seeded like a direct storage write): a write
    // that leaves the spec alone, such as a status update, still goes through (ratcheting),
    // while a spec change is checked again.
    ctx.server
        .seed(json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                     "metadata": {"name": "legacy", "namespace": "default"},
                     "spec": {"size": 3, "owner": "root"}}))
        .unwrap();
    let status = ctx
        .patch(
            &format!("{WIDGETS}/legacy/status"),
            "application/merge-patch+json",
            r#"{"status":{"phase":"Seen"}}"#,
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    let spec = ctx
        .patch(
            &format!("{WIDGETS}/legacy"),
            "application/merge-patch+json",
            r#"{"spec":{"size":4}}"#,
        )
        .await;
    assert_eq!(spec.status, 422, "{}", spec.body);
}

#[tokio::test]
async fn a_value_of_the_wrong_type_already_stored_is_ratcheted_a_new_one_is_not() {
    let ctx = setup().await;
    install_widgets(&ctx).await;
    // An older schema allowed a string: its status can still be written, and so can a
    // spec change elsewhere, but not a new bad value.
    ctx.server
        .seed(json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                     "metadata": {"name": "legacy", "namespace": "default"},
                     "spec": {"size": "three"}}))
        .unwrap();
    let status = ctx
        .patch(
            &format!("{WIDGETS}/legacy/status"),
            "application/merge-patch+json",
            r#"{"status":{"phase":"Invalid"}}"#,
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body["status"]["phase"], "Invalid");
    let elsewhere = ctx
        .patch(
            &format!("{WIDGETS}/legacy"),
            "application/merge-patch+json",
            r#"{"spec":{"color":"blue"}}"#,
        )
        .await;
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.body);
    let changed = ctx
        .patch(
            &format!("{WIDGETS}/legacy"),
            "application/merge-patch+json",
            r#"{"spec":{"size":"four"}}"#,
        )
        .await;
    assert_eq!(changed.status, 422, "{}", changed.body);
    assert_eq!(changed.body["details"]["causes"][0]["field"], "spec.size");
    let fixed = ctx
        .patch(
            &format!("{WIDGETS}/legacy"),
            "application/merge-patch+json",
            r#"{"spec":{"size":4}}"#,
        )
        .await;
    assert_eq!(fixed.status, 200, "{}", fixed.body);
}
