//! The audit trail: one record for every AWS and Kubernetes call made on a customer's
//! behalf, appended to the tenant's audit log in the store (JSON lines) and counted in
//! metrics. Records carry names, outcomes and request ids, never credentials or payloads.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{Kind, Store, StoreError};

/// One call made on a customer's behalf.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When the call finished (RFC 3339).
    pub time: String,
    /// The CustomerAccount's UID.
    pub tenant: String,
    /// The customer's AWS account id.
    pub account_id: String,
    /// Namespace of the CustomerAccount / ManagedCluster.
    pub namespace: String,
    /// The ManagedCluster, when the call was for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// e.g. sts, eks, ec2, autoscaling, kubernetes.
    pub service: String,
    /// e.g. DescribeCluster, list.
    pub operation: String,
    /// What the call was about (role ARN, cluster, nodegroup, resource kind…).
    pub target: String,
    /// success, or the error category.
    pub outcome: String,
    /// AWS request id, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Whether the call changes anything.
    pub mutating: bool,
    /// Whether it was only planned (dry run).
    pub dry_run: bool,
}

/// Receives every call an AWS adapter or the cluster reader makes.
pub trait CallObserver: Send + Sync {
    /// One call finished.
    fn call(
        &self,
        service: &str,
        operation: &str,
        target: &str,
        outcome: &str,
        request_id: Option<&str>,
        mutating: bool,
    );
}

/// An observer that keeps nothing (for calls outside any tenant's reconcile, e.g. tests).
pub struct NoAudit;

impl CallObserver for NoAudit {
    fn call(&self, _: &str, _: &str, _: &str, _: &str, _: Option<&str>, _: bool) {}
}

/// Who the calls are made for.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    /// CustomerAccount UID (the store prefix).
    pub uid: String,
    /// AWS account id.
    pub account_id: String,
    /// Namespace.
    pub namespace: String,
    /// ManagedCluster name, if any.
    pub cluster: Option<String>,
}

/// Records collected during one reconcile, flushed to the store as it goes (automation
/// flushes before each durable step) and at its end.
pub struct AuditTrail {
    tenant: Tenant,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    dry_run: bool,
    /// Every record of this trail, in order, written or not.
    records: Mutex<Vec<AuditRecord>>,
    /// How many of `records` are in the store; flushes are serialised by this lock.
    written: tokio::sync::Mutex<usize>,
}

impl AuditTrail {
    /// A trail for `tenant`.
    pub fn new(tenant: Tenant, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(AuditTrail {
            tenant,
            clock,
            metrics,
            dry_run: false,
            records: Mutex::new(Vec::new()),
            written: tokio::sync::Mutex::new(0),
        })
    }

    /// A trail for `tenant` that starts with `carried`: records an earlier trail of the same
    /// tenant could not write (the store was unavailable), written with this trail's first
    /// flush. They are not counted in metrics again.
    pub fn resume(
        tenant: Tenant,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        carried: Vec<AuditRecord>,
    ) -> Arc<Self> {
        let trail = AuditTrail::new(tenant, clock, metrics);
        *trail.records.lock().unwrap_or_else(|p| p.into_inner()) = carried;
        trail
    }

    /// Who this trail records calls for.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The records not in the store yet, taken out of this trail (which then counts them as
    /// handled), for a later trail of the same tenant to write ([`AuditTrail::resume`]).
    pub async fn take_unwritten(&self) -> Vec<AuditRecord> {
        let mut written = self.written.lock().await;
        let mut all = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let at = (*written).min(all.len());
        let rest = all.split_off(at);
        *written = all.len();
        rest
    }

    /// Every record of this trail so far, written to the store or not.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Append the records not written yet to the tenant's audit log; returns the key
    /// written, or None when there was nothing new. On failure they stay unwritten, for
    /// the next flush of this trail.
    pub async fn flush(&self, store: &Store) -> Result<Option<String>, StoreError> {
        let mut written = self.written.lock().await;
        let records: Vec<AuditRecord> = {
            let all = self.records.lock().unwrap_or_else(|p| p.into_inner());
            all.get(*written..).unwrap_or_default().to_vec()
        };
        if records.is_empty() {
            return Ok(None);
        }
        let mut body = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut body, r).expect("audit records always serialize");
            body.push(b'\n');
        }
        let scope = self.tenant.cluster.as_deref().unwrap_or("_account");
        let key = store
            .put(
                &self.tenant.uid,
                Kind::Audit,
                &self.tenant.namespace,
                scope,
                self.clock.now(),
                body,
            )
            .await?;
        *written += records.len();
        Ok(Some(key))
    }
}

impl CallObserver for AuditTrail {
    fn call(
        &self,
        service: &str,
        operation: &str,
        target: &str,
        outcome: &str,
        request_id: Option<&str>,
        mutating: bool,
    ) {
        self.metrics.audit_record(service, outcome);
        let record = AuditRecord {
            time: self.clock.now().to_string(),
            tenant: self.tenant.uid.clone(),
            account_id: self.tenant.account_id.clone(),
            namespace: self.tenant.namespace.clone(),
            cluster: self.tenant.cluster.clone(),
            service: service.to_string(),
            operation: operation.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            request_id: request_id.map(str::to_string),
            mutating,
            dry_run: self.dry_run,
        };
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::store::S3Options;

    fn trail() -> Arc<AuditTrail> {
        AuditTrail::new(
            Tenant {
                uid: "uid-a".into(),
                account_id: "111122223333".into(),
                namespace: "ns".into(),
                cluster: Some("prod".into()),
            },
            Arc::new(SystemClock),
            Arc::new(Metrics::new()),
        )
    }

    #[tokio::test]
    async fn unwritten_records_move_to_the_next_trail_and_are_written_once() {
        let store = Store::open("memory://", &S3Options::default()).unwrap();
        let t = trail();
        t.call("eks", "DescribeCluster", "prod", "success", None, false);
        t.flush(&store).await.unwrap().expect("written");
        // A call after the last flush whose own flush failed: taken out of the trail...
        t.call("ec2", "DescribeInstances", "prod", "throttled", None, false);
        let carried = t.take_unwritten().await;
        assert_eq!(carried.len(), 1);
        assert_eq!(carried[0].operation, "DescribeInstances");
        assert!(t.take_unwritten().await.is_empty());
        assert_eq!(t.flush(&store).await.unwrap(), None, "not written twice");
        // ...and written by the next trail of the tenant, before its own records.
        let next = AuditTrail::resume(
            t.tenant().clone(),
            Arc::new(SystemClock),
            Arc::new(Metrics::new()),
            carried,
        );
        next.call("eks", "DescribeCluster", "prod", "success", None, false);
        let key = next.flush(&store).await.unwrap().expect("written");
        let text = String::from_utf8(store.get(&key).await.unwrap()).unwrap();
        let ops: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap().operation)
            .collect();
        assert_eq!(ops, ["DescribeInstances", "DescribeCluster"]);
    }

    #[tokio::test]
    async fn records_are_flushed_as_json_lines_under_the_tenant() {
        let store = Store::open("memory://", &S3Options::default()).unwrap();
        let t = trail();
        t.call(
            "eks",
            "DescribeCluster",
            "prod",
            "success",
            Some("req-1"),
            false,
        );
        t.call("kubernetes", "list", "pods", "success", None, false);
        let key = t.flush(&store).await.unwrap().expect("written");
        assert!(key.starts_with("tenants/uid-a/audit/ns/prod/"), "{key}");
        let text = String::from_utf8(store.get(&key).await.unwrap()).unwrap();
        let lines: Vec<AuditRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].operation, "DescribeCluster");
        assert_eq!(lines[0].request_id.as_deref(), Some("req-1"));
        assert_eq!(lines[1].service, "kubernetes");
        assert_eq!(
            t.records().len(),
            2,
            "the trail still shows what it recorded"
        );
        assert_eq!(
            t.flush(&store).await.unwrap(),
            None,
            "nothing new, nothing written"
        );
        t.call("ec2", "DescribeInstances", "prod", "success", None, false);
        let key = t.flush(&store).await.unwrap().expect("the new record");
        let text = String::from_utf8(store.get(&key).await.unwrap()).unwrap();
        assert_eq!(
            text.lines().count(),
            1,
            "only what was not written before: {text}"
        );
    }
}
