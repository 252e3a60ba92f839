//! How a reconcile ends when a stage cannot go on: one closed set of categories (the
//! condition reason, the Event reason and the metric label are the same word), and one
//! description of a stopped stage ([`Failure`]) that [`super::conclude`] turns into
//! conditions, an Event, the metric label and the requeue decision.

use std::time::Duration;

/// Every reason a reconcile can stop for. The CamelCase name is the `Ready` condition's
/// reason, the Event reason, and the `outcome` label of `crossguard_reconciles_total`; the
/// set is closed so dashboards and alerts can enumerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// The spec breaks a rule the schema could not express (see the message).
    InvalidSpec,
    /// The object could not be read as this version of the CRD (a field of the wrong type).
    InvalidObject,
    /// `spec.suspend` is true.
    Suspended,
    /// `spec.roleArn` is not set yet: the customer has not created the role (or it was
    /// removed). No AWS call is made; a ManagedCluster of such an account waits too.
    AwaitingCustomerRole,
    /// The ExternalId Secret exists but was not made for this CustomerAccount.
    ExternalIdSecretConflict,
    /// The ExternalId was rotated and the customer's trust policy has not caught up yet.
    ExternalIdRotated,
    /// sts:AssumeRole was denied (trust policy, ExternalId, SourceIdentity).
    AssumeRoleDenied,
    /// The customer's role does not exist.
    RoleNotFound,
    /// The operator's own AWS credentials were rejected.
    OperatorCredentialsInvalid,
    /// sts:AssumeRole failed in a way AWS did not classify.
    AssumeRoleFailed,
    /// sts:GetCallerIdentity with the new session failed.
    IdentityCheckFailed,
    /// The session is in another account than `spec.accountId`.
    AccountMismatch,
    /// AWS throttled or failed (5xx, timeout); retried with backoff.
    AwsUnavailable,
    /// The customer's role lacks a permission crossguard needs.
    AccessDenied,
    /// `spec.accountRef` names a CustomerAccount in another namespace.
    CrossNamespaceReference,
    /// The referenced CustomerAccount does not exist.
    AccountNotFound,
    /// The referenced CustomerAccount is being deleted.
    AccountDeleting,
    /// The referenced CustomerAccount is not Ready (or its spec is invalid).
    AccountNotReady,
    /// EKS does not know the cluster in that region and account.
    ClusterNotFound,
    /// An inventory call failed for a reason that is neither transient nor a permission.
    InventoryFailed,
    /// EKS reports no API endpoint and none is configured.
    NoEndpoint,
    /// The EKS token could not be made.
    TokenFailed,
    /// The cluster's endpoint or CA bundle is unusable.
    InvalidEndpoint,
    /// The customer cluster refused crossguard's identity.
    ClusterAccessDenied,
    /// The customer cluster could not be reached or read.
    ClusterUnreachable,
    /// The analysis was cancelled (the operator is shutting down).
    AnalysisInterrupted,
    /// The report, snapshot or audit store failed.
    StoreUnavailable,
    /// Erasing the tenant's stored data failed; the finalizer stays until it succeeds.
    ErasureFailed,
    /// A Kubernetes API call of the management cluster failed; which one is in the
    /// operation.
    Kubernetes(KubeOp),
    /// A finalizer could not be added or removed.
    Finalizer,
}

/// The Kubernetes calls a reconcile makes on the management cluster, so metrics and Events
/// say which one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KubeOp {
    /// GET of the object's status subresource.
    GetStatus,
    /// Server-side apply of the object's status.
    PatchStatus,
    /// GET of the referenced CustomerAccount.
    GetCustomerAccount,
    /// GET of the ExternalId Secret.
    GetExternalIdSecret,
    /// CREATE of the ExternalId Secret.
    CreateExternalIdSecret,
    /// PATCH of the ExternalId Secret (rotation).
    RotateExternalIdSecret,
}

impl Category {
    /// The CamelCase word used as condition reason, Event reason and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::InvalidSpec => "InvalidSpec",
            Category::InvalidObject => "InvalidObject",
            Category::Suspended => "Suspended",
            Category::AwaitingCustomerRole => "AwaitingCustomerRole",
            Category::ExternalIdSecretConflict => "ExternalIdSecretConflict",
            Category::ExternalIdRotated => "ExternalIdRotated",
            Category::AssumeRoleDenied => "AssumeRoleDenied",
            Category::RoleNotFound => "RoleNotFound",
            Category::OperatorCredentialsInvalid => "OperatorCredentialsInvalid",
            Category::AssumeRoleFailed => "AssumeRoleFailed",
            Category::IdentityCheckFailed => "IdentityCheckFailed",
            Category::AccountMismatch => "AccountMismatch",
            Category::AwsUnavailable => "AwsUnavailable",
            Category::AccessDenied => "AccessDenied",
            Category::CrossNamespaceReference => "CrossNamespaceReference",
            Category::AccountNotFound => "AccountNotFound",
            Category::AccountDeleting => "AccountDeleting",
            Category::AccountNotReady => "AccountNotReady",
            Category::ClusterNotFound => "ClusterNotFound",
            Category::InventoryFailed => "InventoryFailed",
            Category::NoEndpoint => "NoEndpoint",
            Category::TokenFailed => "TokenFailed",
            Category::InvalidEndpoint => "InvalidEndpoint",
            Category::ClusterAccessDenied => "ClusterAccessDenied",
            Category::ClusterUnreachable => "ClusterUnreachable",
            Category::AnalysisInterrupted => "AnalysisInterrupted",
            Category::StoreUnavailable => "StoreUnavailable",
            Category::ErasureFailed => "ErasureFailed",
            Category::Finalizer => "FinalizerFailed",
            Category::Kubernetes(op) => match op {
                KubeOp::GetStatus => "KubernetesGetStatusFailed",
                KubeOp::PatchStatus => "KubernetesPatchStatusFailed",
                KubeOp::GetCustomerAccount => "KubernetesGetCustomerAccountFailed",
                KubeOp::GetExternalIdSecret => "KubernetesGetSecretFailed",
                KubeOp::CreateExternalIdSecret => "KubernetesCreateSecretFailed",
                KubeOp::RotateExternalIdSecret => "KubernetesPatchSecretFailed",
            },
        }
    }

    /// Every category, for tests and documentation.
    pub const ALL: &'static [Category] = &[
        Category::InvalidSpec,
        Category::InvalidObject,
        Category::Suspended,
        Category::AwaitingCustomerRole,
        Category::ExternalIdSecretConflict,
        Category::ExternalIdRotated,
        Category::AssumeRoleDenied,
        Category::RoleNotFound,
        Category::OperatorCredentialsInvalid,
        Category::AssumeRoleFailed,
        Category::IdentityCheckFailed,
        Category::AccountMismatch,
        Category::AwsUnavailable,
        Category::AccessDenied,
        Category::CrossNamespaceReference,
        Category::AccountNotFound,
        Category::AccountDeleting,
        Category::AccountNotReady,
        Category::ClusterNotFound,
        Category::InventoryFailed,
        Category::NoEndpoint,
        Category::TokenFailed,
        Category::InvalidEndpoint,
        Category::ClusterAccessDenied,
        Category::ClusterUnreachable,
        Category::AnalysisInterrupted,
        Category::StoreUnavailable,
        Category::ErasureFailed,
        Category::Finalizer,
        Category::Kubernetes(KubeOp::GetStatus),
        Category::Kubernetes(KubeOp::PatchStatus),
        Category::Kubernetes(KubeOp::GetCustomerAccount),
        Category::Kubernetes(KubeOp::GetExternalIdSecret),
        Category::Kubernetes(KubeOp::CreateExternalIdSecret),
        Category::Kubernetes(KubeOp::RotateExternalIdSecret),
    ];
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens after a stage stopped the reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nothing will change until the object (or what it references) does: wait for a
    /// watch event.
    AwaitChange,
    /// A customer-side problem: look again after this long.
    After(Duration),
    /// A transient failure: the reconcile fails and kube-runtime retries with jittered
    /// exponential backoff ([`super::Context::backoff`]).
    Backoff,
}

/// A stage that could not go on: what to show and what to do next. The message already
/// holds the underlying error's text (scrubbed), so it is the whole story.
#[derive(Debug)]
pub struct Failure {
    /// Reason, Event reason and metric label.
    pub category: Category,
    /// What happened and what to do, for a customer's engineer (scrubbed of credentials).
    pub message: String,
    /// The condition type of the stage that failed (e.g. `InventoryCollected`), set to
    /// False beside `Ready`; None when only `Ready` speaks for it.
    pub condition: Option<&'static str>,
    /// What happens next.
    pub retry: Retry,
}

impl Failure {
    /// A failure with no stage condition and no source.
    pub fn new(category: Category, message: impl Into<String>, retry: Retry) -> Self {
        Failure {
            category,
            message: message.into(),
            condition: None,
            retry,
        }
    }

    /// Also set this stage condition to False.
    pub fn on(mut self, condition: &'static str) -> Self {
        self.condition = Some(condition);
        self
    }

    /// A failed Kubernetes call of the management cluster: transient, retried with backoff.
    pub fn kube(op: KubeOp, what: &str, source: kube::Error) -> Self {
        // The API server's own words once (kube's Display of an API error repeats them).
        let cause = match &source {
            kube::Error::Api(status) => format!(
                "{} {}: {}",
                status.code,
                if status.reason.is_empty() {
                    "error"
                } else {
                    &status.reason
                },
                status.message
            ),
            other => other.to_string(),
        };
        Failure::new(
            Category::Kubernetes(op),
            format!("Kubernetes API call failed ({what}): {cause}"),
            Retry::Backoff,
        )
    }
}

/// The message alone: logs carry the category in a field of its own.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The message already carries the cause (it is what the customer reads), so there is no
/// separate source: error chains print each cause once.
impl std::error::Error for Failure {}

/// An error and its causes in one line, each cause once: a cause whose text the message
/// already holds is not repeated (some errors print their source in their own message).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer step failed")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("middle: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn describe_prints_each_cause_once() {
        let e = Outer(Middle(std::io::Error::other("disk on fire")));
        assert_eq!(describe(&e), "outer step failed: middle: disk on fire");
    }

    #[test]
    fn category_words_are_distinct_camel_case() {
        let words: std::collections::BTreeSet<&str> =
            Category::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            words.len(),
            Category::ALL.len(),
            "two categories share a word"
        );
        for w in words {
            assert!(
                w.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && w.chars().all(|c| c.is_ascii_alphanumeric()),
                "{w} is not CamelCase"
            );
        }
    }
}
