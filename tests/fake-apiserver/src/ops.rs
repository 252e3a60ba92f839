//! The API verbs with kube-apiserver's semantics: metadata handling,
//! optimistic concurrency, status subresource isolation, patches, server-side
//! apply, finalizers, garbage collection, namespace termination and CRD
//! (un)registration. Everything here runs with the state lock held.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Cause};
use crate::meta::{self, finalizers, name_of, namespace_of, owner_uids, resource_version, uid_of};
use crate::patch;
use crate::registry::{ResourceInfo, StorageKey, View, parse_crd};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ManagerRecords, State};
use crate::{events, registry};

/// Options shared by create/update/patch.
#[derive(Clone, Debug, Default)]
pub struct WriteOpts {
    pub field_manager: Option<String>,
    pub force: bool,
    /// `fieldValidation=Strict`: unknown fields are an error, not pruned.
    pub strict: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

/// The parts of `DeleteOptions` the fake honours.
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label: LabelSelector,
    pub field: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

pub struct ListResult {
    pub items: Vec<Value>,
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn crd_storage() -> StorageKey {
    (
        "apiextensions.k8s.io".into(),
        "customresourcedefinitions".into(),
    )
}

fn ns_storage() -> StorageKey {
    (String::new(), "namespaces".into())
}

/// A Secret's write-only `stringData` is merged into `data` (base64) and never stored, as
/// the real API server does; a key in both takes the `stringData` value.
fn fold_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(obj) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = obj.remove("stringData") else {
        return;
    };
    let data = obj.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Stored (storage-form) object -> what clients of `info` see.
pub fn to_served(info: &ResourceInfo, stored: &Value) -> Value {
    match info.view {
        View::CoreEvent => events::to_core(stored),
        View::Plain => {
            let mut v = stored.clone();
            v["apiVersion"] = json!(info.api_version());
            v["kind"] = json!(info.kind);
            v
        }
    }
}

/// A client's representation -> storage form.
pub fn to_storage(info: &ResourceInfo, served: Value) -> Value {
    match info.view {
        View::CoreEvent => events::from_core(&served),
        View::Plain => served,
    }
}

fn ns_for<'a>(info: &ResourceInfo, ns: Option<&'a str>) -> &'a str {
    if info.namespaced {
        ns.unwrap_or_default()
    } else {
        ""
    }
}

fn require_object(body: &Value) -> ApiResult<()> {
    if body.is_object() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "the body of the request was in an unknown format - expected an object",
        ))
    }
}

/// `apiVersion`/`kind` in a body must name the endpoint's resource.
fn check_type(info: &ResourceInfo, body: &Value) -> ApiResult<()> {
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
    {
        let same_group = match av.split_once('/') {
            Some((g, _)) => g == info.group,
            None => info.group.is_empty(),
        };
        if !same_group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                info.api_version()
            )));
        }
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != info.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            info.kind
        )));
    }
    Ok(())
}

fn check_namespace(info: &ResourceInfo, nsv: &str, body: &Value) -> ApiResult<()> {
    let body_ns = namespace_of(body);
    if info.namespaced && !body_ns.is_empty() && body_ns != nsv {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn check_name(body: &Value, name: &str) -> ApiResult<()> {
    let got = name_of(body);
    if got != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({got}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

fn status_success(info: &ResourceInfo, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": info.plural, "uid": uid});
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// Copies the fields clients cannot change on update from the live object.
fn carry_system_meta(new: &mut Value, old: &Value) -> ApiResult<()> {
    let body_uid = uid_of(new).to_string();
    let old_uid = uid_of(old).to_string();
    if !body_uid.is_empty() && body_uid != old_uid {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Precondition failed: UID in precondition: {body_uid}, UID in object meta: {old_uid}"
            ),
        ));
    }
    let om = old.get("metadata").cloned().unwrap_or(json!({}));
    let m = meta::meta_mut(new);
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match om.get(k) {
            Some(v) => m.insert(k.to_string(), v.clone()),
            None => m.remove(k),
        };
    }
    m.remove("managedFields");
    m.remove("selfLink");
    Ok(())
}

/// Status on create, per kube-apiserver's PrepareForCreate strategies:
/// status-subresource resources start empty (nodes keep theirs).
fn reset_status_on_create(info: &ResourceInfo, obj: &mut Value) {
    if !info.status {
        return;
    }
    let o = obj.as_object_mut().expect("object");
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "nodes") => {}
        ("", "namespaces") => {
            o.insert("status".into(), json!({"phase": "Active"}));
        }
        ("", "pods") => {
            o.insert("status".into(), json!({"phase": "Pending"}));
        }
        _ => {
            o.remove("status");
        }
    }
}

/// Sets a CRD's status as the apiextensions controllers would.
fn crd_status(new: &mut Value, old: Option<&Value>) {
    let Ok((names, _)) = parse_crd(new) else {
        return;
    };
    let now = meta::now_rfc3339();
    let since = |t: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
                    .and_then(|c| c.get("lastTransitionTime").cloned())
            })
            .unwrap_or(json!(now))
    };
    let mut accepted = json!({"plural": names.plural, "singular": names.singular,
        "kind": names.kind, "listKind": names.list_kind});
    if !names.short_names.is_empty() {
        accepted["shortNames"] = json!(names.short_names);
    }
    if !names.categories.is_empty() {
        accepted["categories"] = json!(names.categories);
    }
    let mut stored_versions: Vec<String> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if !stored_versions.contains(&names.storage_version) {
        stored_versions.push(names.storage_version.clone());
    }
    new["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": since("Established")},
        ],
        "acceptedNames": accepted,
        "storedVersions": stored_versions,
    });
}

impl State {
    /// Registers (or re-registers) the resources a stored CRD serves.
    fn register_crd(&mut self, crd: &Value) {
        if let Ok((names, infos)) = parse_crd(crd) {
            self.registry
                .set_custom(&(names.group.clone(), names.plural.clone()), infos);
        }
    }

    /// Validation and mutation every write goes through (the fake's
    /// "admission"): names, labels, CRD schemas, CRD specs, finalizers.
    fn admit(
        &self,
        info: &ResourceInfo,
        new: &mut Value,
        old: Option<&Value>,
        opts: &WriteOpts,
    ) -> ApiResult<()> {
        let name = name_of(new).to_string();
        if info.is("", "secrets") {
            fold_string_data(new);
        }
        let mut causes: Vec<Cause> = Vec::new();
        if old.is_none()
            && let Some(c) = meta::validate_name(&name, info.is(&ns_storage().0, "namespaces"))
        {
            causes.push(c);
        }
        causes.extend(meta::validate_labels(new));
        if let Some(schema) = info.custom.as_ref().and_then(|c| c.schema.as_ref()) {
            let out = schema::process(schema, new);
            if opts.strict && !out.pruned.is_empty() {
                let list: Vec<String> = out
                    .pruned
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "{}.{} \"{name}\" is invalid: strict decoding error: {}",
                    info.kind,
                    info.group,
                    list.join(", ")
                )));
            }
            // CRD validation ratcheting (on by default since 1.30): a write is not
            // rejected for a value the stored object already had (a status update of
            // an object whose spec an older schema allowed), nor, when it leaves the
            // spec as it was, for CEL rules the stored object already broke.
            // Defaults are applied to the old object too, so defaulting alone
            // never counts as a change.
            let stored = old.map(|o| {
                let mut o = o.clone();
                schema::process(schema, &mut o);
                o
            });
            // As in kube-apiserver, CEL is skipped only when a value has the wrong type
            // or an unsupported enum value (ratcheted ones included); a pattern or
            // length failure still lets the rules run, so their messages are reported
            // beside it.
            let structural_ok = !out.causes.iter().any(|c| {
                matches!(
                    c.reason.as_str(),
                    "FieldValueTypeInvalid" | "FieldValueNotSupported"
                )
            });
            causes.extend(schema::ratchet(out.causes, new, stored.as_ref()));
            let spec_unchanged = stored
                .as_ref()
                .is_some_and(|o| o.get("spec") == new.get("spec"));
            if structural_ok && !spec_unchanged {
                causes.extend(schema::cel(schema, new, old));
            }
        }
        if info.is("apiextensions.k8s.io", "customresourcedefinitions")
            && let Err(c) = parse_crd(new)
        {
            causes.extend(c);
        }
        if let Some(old) = old
            && old.pointer("/metadata/deletionTimestamp").is_some()
        {
            let before = finalizers(old);
            let added: Vec<String> = finalizers(new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                let quoted: Vec<String> = added.iter().map(|f| format!("\"{f}\"")).collect();
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        quoted.join(", ")
                    ),
                ));
            }
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(&info.group, &info.kind, &name, causes))
        }
    }

    fn check_namespace_usable(&self, info: &ResourceInfo, nsv: &str, name: &str) -> ApiResult<()> {
        if !info.namespaced {
            return Ok(());
        }
        let Some(ns) = self.get(&ns_storage(), "", nsv) else {
            return Err(ApiError::namespace_not_found(nsv));
        };
        if ns.pointer("/metadata/deletionTimestamp").is_some() {
            let mut details = json!({"name": name, "kind": info.plural,
                "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                            "message": format!("namespace {nsv} is being terminated")}]});
            if !info.group.is_empty() {
                details["group"] = json!(info.group);
            }
            return Err(ApiError::forbidden(
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {nsv} because it is being terminated",
                    info.plural
                ),
                details,
            ));
        }
        Ok(())
    }

    pub fn get_served(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        let nsv = ns_for(info, ns);
        self.get(&info.storage, nsv, name)
            .map(|o| to_served(info, o))
            .ok_or_else(|| ApiError::not_found(info, name))
    }

    pub fn list_served(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        p: &ListParams,
    ) -> ApiResult<ListResult> {
        let limit = p.limit.filter(|l| *l > 0);
        if let Some(tok) = p.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let (id, offset) =
                decode_token(tok).ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
            let snap = self
                .snapshot(id)
                .ok_or_else(|| ApiError::expired(CONTINUE_EXPIRED))?;
            let (items, rv) = (snap.items.clone(), snap.rv);
            return Ok(page(&items, rv, id, offset, limit));
        }
        let items: Vec<Value> = self
            .list(&info.storage, ns.filter(|_| info.namespaced))
            .into_iter()
            .map(|o| to_served(info, o))
            .filter(|o| p.label.matches(o) && p.field.matches(o))
            .collect();
        let rv = self.rv;
        match limit {
            Some(l) if items.len() > l => {
                let items = Arc::new(items);
                let id = self.save_snapshot(rv, items.clone());
                Ok(page(&items, rv, id, 0, limit))
            }
            _ => Ok(ListResult {
                items,
                resource_version: rv.to_string(),
                continue_token: None,
                remaining: None,
            }),
        }
    }

    pub fn create(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        require_object(&body)?;
        check_type(info, &body)?;
        let nsv = ns_for(info, ns).to_string();
        check_namespace(info, &nsv, &body)?;
        if !resource_version(&body).is_empty() {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        body["apiVersion"] = json!(info.api_version());
        body["kind"] = json!(info.kind);
        let m = meta::meta_mut(&mut body);
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = m
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    "",
                    vec![Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
            name = format!("{prefix}{}", meta::random_suffix());
            m.insert("name".into(), json!(name));
        }
        if info.namespaced {
            m.insert("namespace".into(), json!(nsv));
        } else {
            m.remove("namespace");
        }
        for k in [
            "uid",
            "selfLink",
            "managedFields",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            m.remove(k);
        }
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        if info.generation {
            m.insert("generation".into(), json!(1));
        }
        if info.is("", "namespaces") {
            let labels = m.entry("labels").or_insert(json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            body["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        self.check_namespace_usable(info, &nsv, &name)?;
        reset_status_on_create(info, &mut body);
        self.admit(info, &mut body, None, opts)?;
        if info.is("apiextensions.k8s.io", "customresourcedefinitions") {
            crd_status(&mut body, None);
        }
        if self.get(&info.storage, &nsv, &name).is_some() {
            return Err(ApiError::already_exists(info, &name));
        }
        let stored = self.insert(&info.storage, to_storage(info, body));
        if info.is("apiextensions.k8s.io", "customresourcedefinitions") {
            self.register_crd(&stored);
        }
        Ok(to_served(info, &stored))
    }

    pub fn update(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: Value,
        status_endpoint: bool,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        require_object(&body)?;
        check_type(info, &body)?;
        let nsv = ns_for(info, ns).to_string();
        check_namespace(info, &nsv, &body)?;
        check_name(&body, name)?;
        let old = self.get_served(info, ns, name)?;
        let precondition = resource_version(&body).to_string();
        if precondition.is_empty() && info.is_custom() {
            return Err(ApiError::invalid(
                &info.group,
                &info.kind,
                name,
                vec![Cause::new(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            ));
        }
        let new = self.isolate(info, &old, body, status_endpoint);
        self.commit_update(info, &old, new, &precondition, opts)
    }

    /// Status subresource isolation: the status endpoint changes only
    /// `.status`; the main endpoint never changes `.status` (when the
    /// resource has a status subresource).
    fn isolate(
        &self,
        info: &ResourceInfo,
        old: &Value,
        mut new: Value,
        status_endpoint: bool,
    ) -> Value {
        if status_endpoint {
            let mut out = old.clone();
            match new.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    out.as_object_mut().map(|o| o.remove("status"));
                }
            }
            // The precondition travels with the request body.
            if let Some(rv) = new.pointer("/metadata/resourceVersion") {
                meta::meta_mut(&mut out).insert("resourceVersion".into(), rv.clone());
            }
            out
        } else {
            if info.status {
                let o = new.as_object_mut().expect("object");
                match old.get("status") {
                    Some(s) => o.insert("status".into(), s.clone()),
                    None => o.remove("status"),
                };
            }
            new
        }
    }

    /// Shared tail of update/patch/apply: preconditions, admission,
    /// generation, no-op detection, write, finalizer completion.
    /// A field a write changed or removed is no longer owned by the appliers whose value
    /// it was (kube-apiserver moves it to the writer's "Update" entry), so it no longer
    /// conflicts with a later apply. Apply re-records its own fields after this.
    fn forget_changed_ownership(&mut self, info: &ResourceInfo, stored: &Value) {
        let key = (
            info.storage.clone(),
            namespace_of(stored).to_string(),
            name_of(stored).to_string(),
        );
        let Some(records) = self.managers.get(&key) else {
            return;
        };
        let live = to_served(info, stored);
        let mut records = records.clone();
        for record in records.values_mut() {
            for (path, value) in patch::leaves(record) {
                if patch::value_at(&live, &path) != Some(&value) {
                    patch::remove_path(record, &path);
                }
            }
        }
        self.managers.insert(key, records);
    }

    fn commit_update(
        &mut self,
        info: &ResourceInfo,
        old: &Value,
        mut new: Value,
        precondition: &str,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let name = name_of(old).to_string();
        if !precondition.is_empty() && precondition != resource_version(old) {
            return Err(ApiError::conflict_modified(info, &name));
        }
        carry_system_meta(&mut new, old)?;
        new["apiVersion"] = json!(info.api_version());
        new["kind"] = json!(info.kind);
        self.admit(info, &mut new, Some(old), opts)?;
        let is_crd = info.is("apiextensions.k8s.io", "customresourcedefinitions");
        if is_crd {
            crd_status(&mut new, Some(old));
        }
        if info.generation
            && meta::spec_part(old, info.status) != meta::spec_part(&new, info.status)
        {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta::meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if &new == old {
            // kube-apiserver skips the write: no new resourceVersion, no event.
            return Ok(old.clone());
        }
        let stored = self.replace(&info.storage, to_storage(info, new));
        if is_crd {
            self.register_crd(&stored);
        }
        self.forget_changed_ownership(info, &stored);
        if stored.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&stored).is_empty()
        {
            let (ns, n) = (
                namespace_of(&stored).to_string(),
                name_of(&stored).to_string(),
            );
            self.remove_cascade(&info.storage, &ns, &n);
        }
        Ok(to_served(info, &stored))
    }

    /// PATCH. Returns the object and whether it was created (apply).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        ptype: PatchType,
        body: &[u8],
        status_endpoint: bool,
        opts: &WriteOpts,
    ) -> ApiResult<(Value, bool)> {
        if ptype == PatchType::Strategic && info.is_custom() {
            return Err(ApiError::unsupported_media_type(&[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]));
        }
        if ptype == PatchType::Apply {
            return self.apply(info, ns, name, body, status_endpoint, opts);
        }
        let old = self.get_served(info, ns, name)?;
        let mut patched = old.clone();
        let parse = |b: &[u8]| -> ApiResult<Value> {
            serde_json::from_slice(b).map_err(|e| ApiError::bad_request(e.to_string()))
        };
        match ptype {
            PatchType::Merge => {
                let p = parse(body)?;
                if !p.is_object() {
                    return Err(ApiError::bad_request("Invalid JSON Patch"));
                }
                patch::merge_patch(&mut patched, &p);
            }
            PatchType::Json => patch::json_patch(&mut patched, body)?,
            PatchType::Strategic => patch::strategic_merge(&mut patched, &parse(body)?),
            PatchType::Apply => unreachable!("handled above"),
        }
        require_object(&patched)?;
        check_name(&patched, name)?;
        let precondition = resource_version(&patched).to_string();
        let new = self.isolate(info, &old, patched, status_endpoint);
        Ok((
            self.commit_update(info, &old, new, &precondition, opts)?,
            false,
        ))
    }

    /// Server-side apply, emulated with per-manager records of the last
    /// applied configuration (see README for what this does not model).
    fn apply(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: &[u8],
        status_endpoint: bool,
        opts: &WriteOpts,
    ) -> ApiResult<(Value, bool)> {
        let Some(manager) = opts.field_manager.clone().filter(|m| !m.is_empty()) else {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "fieldManager",
                    "Required value: is required for apply patch",
                )],
            ));
        };
        let mut applied: Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        require_object(&applied)?;
        // kube-apiserver applies a configuration without metadata.name to the object the
        // URL names (kube-lease-manager sends such patches); a different name is an error.
        if name_of(&applied).is_empty() {
            meta::meta_mut(&mut applied).insert("name".to_string(), json!(name));
        }
        for field in ["apiVersion", "kind"] {
            if applied
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(format!(
                    "error decoding YAML: Object '{}' is missing",
                    if field == "kind" { "Kind" } else { field }
                )));
            }
        }
        check_type(info, &applied)?;
        check_name(&applied, name)?;
        let nsv = ns_for(info, ns).to_string();
        check_namespace(info, &nsv, &applied)?;
        let key = (info.storage.clone(), nsv.clone(), name.to_string());
        let scoped = patch::apply_scope(&applied, status_endpoint, info.status);

        let Some(old) = self
            .get(&info.storage, &nsv, name)
            .map(|o| to_served(info, o))
        else {
            if status_endpoint {
                return Err(ApiError::not_found(info, name));
            }
            let mut to_create = applied.clone();
            meta::meta_mut(&mut to_create).remove("resourceVersion");
            let created = self.create(info, ns, to_create, opts)?;
            self.managers
                .entry(key)
                .or_default()
                .insert((manager, false), scoped);
            return Ok((created, true));
        };

        let records = self.managers.get(&key).cloned().unwrap_or_default();
        let prev = records.get(&(manager.clone(), status_endpoint)).cloned();
        let mut others: ManagerRecords = records
            .into_iter()
            .filter(|((m, s), _)| m != &manager && *s == status_endpoint)
            .collect();
        let mut conflicts: Vec<(String, Vec<String>)> = Vec::new();
        for (path, val) in patch::leaves(&scoped) {
            for ((m, _), rec) in &others {
                // Two managers may both own a map; only differing values clash.
                if let Some(x) = patch::value_at(rec, &path)
                    && x != &val
                    && !(x.is_object() && val.is_object())
                {
                    conflicts.push((m.clone(), path.clone()));
                }
            }
        }
        if !conflicts.is_empty() {
            if !opts.force {
                let causes = conflicts
                    .iter()
                    .map(|(m, p)| {
                        Cause::new(
                            "FieldManagerConflict",
                            patch::dotted(p),
                            format!(
                                "conflict with \"{m}\" using {}: {}",
                                info.api_version(),
                                patch::dotted(p)
                            ),
                        )
                    })
                    .collect();
                return Err(ApiError::apply_conflict(info, name, causes));
            }
            // force=true: the applier takes the contested fields over.
            for (m, p) in &conflicts {
                if let Some(rec) = others.get_mut(&(m.clone(), status_endpoint)) {
                    patch::remove_path(rec, p);
                }
            }
        }
        let mut merged = old.clone();
        if let Some(prev) = &prev {
            let other_refs: Vec<&Value> = others.values().collect();
            patch::remove_dropped(&mut merged, prev, &scoped, &other_refs);
        }
        patch::apply_merge(&mut merged, &scoped);
        let precondition = resource_version(&applied).to_string();
        let new = self.isolate(info, &old, merged, status_endpoint);
        let result = self.commit_update(info, &old, new, &precondition, opts)?;
        if self.get(&info.storage, &nsv, name).is_some() {
            let recs = self.managers.entry(key).or_default();
            recs.insert((manager, status_endpoint), scoped);
            for (k, v) in others {
                recs.insert(k, v);
            }
        }
        Ok((result, false))
    }

    /// DELETE of one object. Returns the response body: the object (still
    /// present, with deletionTimestamp) or a `Status` Success.
    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let nsv = ns_for(info, ns).to_string();
        let old = self
            .get(&info.storage, &nsv, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(info, name))?;
        let uid = uid_of(&old).to_string();
        if let Some(p) = opts.precondition_uid.as_deref().filter(|p| !p.is_empty())
            && p != uid
        {
            return Err(ApiError::conflict(
                info,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {p}, UID in object meta: {uid}"
                ),
            ));
        }
        let rv = resource_version(&old).to_string();
        if let Some(p) = opts.precondition_rv.as_deref().filter(|p| !p.is_empty())
            && p != rv
        {
            return Err(ApiError::conflict(
                info,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {p}, ResourceVersion in meta: {rv}"
                ),
            ));
        }
        if info.is("", "namespaces") {
            return Ok(self.delete_namespace(info, name));
        }
        match opts.propagation.as_deref() {
            Some("Orphan") => self.orphan_dependents(&uid),
            Some("Foreground") => {
                for (s, dns, dname) in self.dependents_of(&uid) {
                    self.delete_stored(&s, &dns, &dname);
                }
            }
            _ => {}
        }
        Ok(match self.delete_stored(&info.storage, &nsv, name) {
            Some(pending) => to_served(info, &pending),
            None => status_success(info, name, &uid),
        })
    }

    /// DELETE on a collection: deletes every matching object.
    pub fn delete_collection(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        p: &ListParams,
    ) -> ApiResult<Value> {
        let listed = self.list_served(
            info,
            ns,
            &ListParams {
                label: p.label.clone(),
                field: p.field.clone(),
                ..Default::default()
            },
        )?;
        let mut items = Vec::new();
        for o in &listed.items {
            let (ons, oname) = (namespace_of(o).to_string(), name_of(o).to_string());
            let body = self.delete(
                info,
                Some(ons.as_str()).filter(|s| !s.is_empty()),
                &oname,
                &DeleteOpts::default(),
            )?;
            items.push(if body["kind"] == "Status" {
                o.clone()
            } else {
                body
            });
        }
        Ok(
            json!({"apiVersion": info.api_version(), "kind": info.list_kind(),
            "metadata": {"resourceVersion": self.rv.to_string()}, "items": items}),
        )
    }

    /// Deletes as the API would: objects with finalizers get a
    /// deletionTimestamp (returned), others are removed with cascades.
    fn delete_stored(&mut self, storage: &StorageKey, ns: &str, name: &str) -> Option<Value> {
        let obj = self.get(storage, ns, name)?.clone();
        if obj.pointer("/metadata/deletionTimestamp").is_some() {
            return Some(obj);
        }
        if !finalizers(&obj).is_empty() {
            return Some(self.mark_deleting(storage, obj));
        }
        self.remove_cascade(storage, ns, name);
        None
    }

    fn mark_deleting(&mut self, storage: &StorageKey, mut obj: Value) -> Value {
        let m = meta::meta_mut(&mut obj);
        m.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        // kube-apiserver bumps generation when it sets deletionTimestamp.
        if let Some(g) = m.get("generation").and_then(Value::as_i64) {
            m.insert("generation".into(), json!(g + 1));
        }
        self.replace(storage, obj)
    }

    /// Objects whose ownerReferences include `uid`.
    fn dependents_of(&self, uid: &str) -> Vec<(StorageKey, String, String)> {
        self.all_objects()
            .filter(|(_, o)| owner_uids(o).iter().any(|u| u == uid))
            .map(|(s, o)| {
                (
                    s.clone(),
                    namespace_of(o).to_string(),
                    name_of(o).to_string(),
                )
            })
            .collect()
    }

    fn orphan_dependents(&mut self, uid: &str) {
        for (s, ns, name) in self.dependents_of(uid) {
            if let Some(o) = self.get(&s, &ns, &name).cloned() {
                self.strip_owner(&s, o, uid);
            }
        }
    }

    /// Removes the ownerReferences to `uid` from `o` (a MODIFIED write).
    fn strip_owner(&mut self, storage: &StorageKey, mut o: Value, uid: &str) {
        if let Some(refs) = o
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            if refs.is_empty() {
                meta::meta_mut(&mut o).remove("ownerReferences");
            }
        }
        self.replace(storage, o);
    }

    /// Removes an object, then everything that goes with it: custom
    /// resources of a removed CRD, a terminating namespace that became
    /// empty, and garbage-collected dependents (background propagation).
    fn remove_cascade(&mut self, storage: &StorageKey, ns: &str, name: &str) {
        let mut work = VecDeque::from([(storage.clone(), ns.to_string(), name.to_string())]);
        while let Some((s, ns, n)) = work.pop_front() {
            let Some(removed) = self.remove_raw(&s, &ns, &n) else {
                continue;
            };
            if s == crd_storage() {
                let group = meta::str_at(&removed, "/spec/group").unwrap_or_default();
                let plural = meta::str_at(&removed, "/spec/names/plural").unwrap_or_default();
                let key: StorageKey = (group.to_string(), plural.to_string());
                self.registry.remove_custom(&key);
                let crs: Vec<(String, String)> = self
                    .list(&key, None)
                    .into_iter()
                    .map(|o| (namespace_of(o).to_string(), name_of(o).to_string()))
                    .collect();
                // Custom resources go with their CRD (finalizers are not
                // waited for); watchers see DELETED, then their watch ends.
                for (crns, crname) in crs {
                    self.remove_cascade(&key, &crns, &crname);
                }
                self.close_watches_for(&key);
            }
            if !ns.is_empty()
                && let Some(nso) = self.get(&ns_storage(), "", &ns)
                && nso.pointer("/metadata/deletionTimestamp").is_some()
                && finalizers(nso).is_empty()
                && !self.namespace_has_objects(&ns)
            {
                work.push_back((ns_storage(), String::new(), ns.clone()));
            }
            let uid = uid_of(&removed).to_string();
            for (ds, dns, dname) in self.dependents_of(&uid) {
                let Some(dep) = self.get(&ds, &dns, &dname).cloned() else {
                    continue;
                };
                if owner_uids(&dep).iter().any(|u| self.uid_exists(u)) {
                    // Like the garbage collector: drop the dangling reference,
                    // keep the object for its remaining owners.
                    self.strip_owner(&ds, dep, &uid);
                    continue;
                }
                if finalizers(&dep).is_empty() {
                    work.push_back((ds, dns, dname));
                } else if dep.pointer("/metadata/deletionTimestamp").is_none() {
                    self.mark_deleting(&ds, dep);
                }
            }
        }
    }

    /// Namespace deletion: Terminating, its content deleted, removed once empty.
    fn delete_namespace(&mut self, info: &ResourceInfo, name: &str) -> Value {
        let key = ns_storage();
        let Some(mut nso) = self.get(&key, "", name).cloned() else {
            return status_success(info, name, "");
        };
        if nso.pointer("/metadata/deletionTimestamp").is_none() {
            meta::meta_mut(&mut nso).insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
            meta::meta_mut(&mut nso).insert("deletionGracePeriodSeconds".into(), json!(0));
            nso["status"] = json!({"phase": "Terminating"});
            nso = self.replace(&key, nso);
        }
        let content: Vec<(StorageKey, String)> = self
            .all_objects()
            .filter(|(_, o)| namespace_of(o) == name)
            .map(|(s, o)| (s.clone(), name_of(o).to_string()))
            .collect();
        for (s, n) in content {
            self.delete_stored(&s, name, &n);
        }
        if finalizers(&nso).is_empty() && !self.namespace_has_objects(name) {
            self.remove_cascade(&key, "", name);
        }
        to_served(info, &nso)
    }

    /// POST pods/{name}/eviction: checks matching PodDisruptionBudgets'
    /// `status.disruptionsAllowed` (429 when 0), then deletes the pod.
    pub fn evict(&mut self, info: &ResourceInfo, ns: &str, name: &str) -> ApiResult<Value> {
        let pod = self
            .get(&info.storage, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(info, name))?;
        let phase = meta::str_at(&pod, "/status/phase").unwrap_or_default();
        let pdb_key: StorageKey = ("policy".into(), "poddisruptionbudgets".into());
        if !matches!(phase, "Succeeded" | "Failed") {
            let pdbs: Vec<Value> = self
                .list(&pdb_key, Some(ns))
                .into_iter()
                .filter(|p| {
                    LabelSelector::from_object(p.pointer("/spec/selector"))
                        .is_some_and(|s| !s.is_empty() && s.matches(&pod))
                })
                .cloned()
                .collect();
            if pdbs.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = pdbs.into_iter().next() {
                let allowed = pdb
                    .pointer("/status/disruptionsAllowed")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if allowed < 1 {
                    let desired = pdb
                        .pointer("/status/desiredHealthy")
                        .and_then(Value::as_i64);
                    let current = pdb
                        .pointer("/status/currentHealthy")
                        .and_then(Value::as_i64);
                    return Err(ApiError {
                        details: Some(json!({"causes": [{"reason": "DisruptionBudget",
                            "message": format!(
                                "The disruption budget {} needs {} healthy pods and has {} currently",
                                name_of(&pdb), desired.unwrap_or(0), current.unwrap_or(0))}]})),
                        ..ApiError::new(
                            429,
                            "TooManyRequests",
                            "Cannot evict pod as it would violate the pod's disruption budget.",
                        )
                    });
                }
                let mut updated = pdb.clone();
                updated["status"]["disruptionsAllowed"] = json!(allowed - 1);
                self.replace(&pdb_key, updated);
            }
        }
        self.delete_stored(&info.storage, ns, name);
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Success", "code": 201}))
    }

    /// Test backdoor: stores an object as given (status included), like
    /// writing straight to etcd. Creates or replaces; fills uid,
    /// creationTimestamp and generation when missing.
    pub fn seed(&mut self, mut obj: Value) -> Result<Value, String> {
        let api_version = meta::str_at(&obj, "/apiVersion")
            .unwrap_or_default()
            .to_string();
        let kind = meta::str_at(&obj, "/kind").unwrap_or_default().to_string();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let info = self
            .registry
            .all()
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
            .ok_or_else(|| format!("no resource serves {api_version} {kind}"))?;
        let name = name_of(&obj).to_string();
        if name.is_empty() {
            return Err("metadata.name is required".into());
        }
        let nsv = if info.namespaced {
            let ns = namespace_of(&obj);
            if ns.is_empty() { "default" } else { ns }.to_string()
        } else {
            String::new()
        };
        let existing = self.get(&info.storage, &nsv, &name).cloned();
        let m = meta::meta_mut(&mut obj);
        if info.namespaced {
            m.insert("namespace".into(), json!(nsv));
        }
        let old_meta = existing
            .as_ref()
            .and_then(|e| e.get("metadata"))
            .cloned()
            .unwrap_or(json!({}));
        for k in ["uid", "creationTimestamp"] {
            if !m.contains_key(k) {
                let v = old_meta.get(k).cloned().unwrap_or_else(|| {
                    json!(if k == "uid" {
                        meta::new_uid()
                    } else {
                        meta::now_rfc3339()
                    })
                });
                m.insert(k.into(), v);
            }
        }
        if info.generation && !m.contains_key("generation") {
            m.insert("generation".into(), json!(1));
        }
        let stored_form = to_storage(&info, obj);
        let stored = if existing.is_some() {
            self.replace(&info.storage, stored_form)
        } else {
            self.insert(&info.storage, stored_form)
        };
        if info.is("apiextensions.k8s.io", "customresourcedefinitions") {
            self.register_crd(&stored);
        }
        Ok(to_served(&info, &stored))
    }

    /// Looks a resource up by `apiVersion` and plural (library helpers).
    pub fn find_resource(&self, api_version: &str, plural: &str) -> Option<registry::ResourceInfo> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.registry.find(group, version, plural).cloned()
    }
}

fn encode_token(id: u64, offset: usize) -> String {
    format!("{id}:{offset}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_token(tok: &str) -> Option<(u64, usize)> {
    if !tok.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..tok.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(tok.get(i..i + 2)?, 16).ok())
        .collect();
    let s = String::from_utf8(bytes?).ok()?;
    let (id, off) = s.split_once(':')?;
    Some((id.parse().ok()?, off.parse().ok()?))
}

fn page(items: &[Value], rv: u64, id: u64, offset: usize, limit: Option<usize>) -> ListResult {
    let offset = offset.min(items.len());
    let end = limit.map_or(items.len(), |l| (offset + l).min(items.len()));
    let more = end < items.len();
    ListResult {
        items: items[offset..end].to_vec(),
        resource_version: rv.to_string(),
        continue_token: more.then(|| encode_token(id, end)),
        remaining: more.then(|| items.len() - end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_token(42, 7);
        assert_eq!(decode_token(&t), Some((42, 7)));
        assert_eq!(decode_token("zz"), None);
        assert_eq!(decode_token("abc"), None);
    }
}
