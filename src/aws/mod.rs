//! AWS behind narrow traits: one trait per service, only the calls crossguard makes,
//! returning our own domain types with pagination done inside. Only start-up code builds
//! SDK clients (see [`sdk`]); tests can substitute any implementation.

pub mod approval;
pub mod limits;
pub mod price_list;
pub mod sdk;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use regex::Regex;

use approval::{ApprovedKeyDeactivation, ApprovedNodegroupScale, ApprovedTermination};

/// Tag that marks a resource as managed by crossguard.
pub const TAG_MANAGED: &str = "crossguard.dev/managed";
/// Tag that names the one cluster a managed resource belongs to.
pub const TAG_CLUSTER: &str = "crossguard.dev/cluster";

/// Temporary credentials of an assumed-role session. The secret parts are sealed
/// ([`crate::seal`]): AES-256-GCM ciphertext under a per-process key, opened only while a
/// request is signed, never printed by `Debug`.
pub struct SessionCredentials {
    /// Access key id (ASIA…); not a secret by itself, but never logged either.
    pub access_key_id: String,
    /// The secret access key, sealed.
    pub secret_access_key: crate::seal::Sealed,
    /// The session token, sealed.
    pub session_token: crate::seal::Sealed,
    /// When STS says the credentials stop working (AWS's clock).
    pub expiration: jiff::Timestamp,
    /// How long they are valid from the moment they were received. Refresh decisions use
    /// this with the local clock, so a skew between our clock and AWS's does not matter.
    pub lifetime: std::time::Duration,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &"[redacted]")
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &"[redacted]")
            .field("expiration", &self.expiration)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl SessionCredentials {
    /// The secret key, opened for one signing (zeroized when dropped).
    pub fn secret_access_key(&self) -> secrecy::zeroize::Zeroizing<String> {
        self.secret_access_key.open()
    }
    /// The session token, opened for one signing (zeroized when dropped).
    pub fn session_token(&self) -> secrecy::zeroize::Zeroizing<String> {
        self.session_token.open()
    }
}

/// Parameters of one sts:AssumeRole call.
#[derive(Debug, Clone, PartialEq)]
pub struct AssumeRoleRequest {
    /// The customer's role.
    pub role_arn: String,
    /// The per-account ExternalId crossguard generated (confused-deputy defence).
    pub external_id: String,
    /// Identifies tenant and purpose in the customer's CloudTrail.
    pub session_name: String,
    /// Names the operator in the customer's CloudTrail (sts:SourceIdentity).
    pub source_identity: String,
    /// Session length in seconds (900–3600).
    pub duration_seconds: i32,
}

/// Who a set of credentials belongs to, per sts:GetCallerIdentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The account the credentials act in.
    pub account: String,
    /// The (assumed-role) ARN.
    pub arn: String,
}

/// An EKS cluster as DescribeCluster reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EksCluster {
    /// Cluster name.
    pub name: String,
    /// e.g. ACTIVE.
    pub status: Option<String>,
    /// Kubernetes version, e.g. 1.34.
    pub version: Option<String>,
    /// API server URL.
    pub endpoint: Option<String>,
    /// Base64 PEM CA bundle of the API server.
    pub certificate_authority: Option<String>,
    /// Resource tags.
    pub tags: BTreeMap<String, String>,
}

/// A managed nodegroup as DescribeNodegroup reports it. Serialized (camelCase) as part of
/// the analysis's AWS inventory ([`crate::analysis::AwsInventory`]).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Nodegroup {
    /// Nodegroup name.
    pub name: String,
    /// The cluster it belongs to.
    pub cluster_name: String,
    /// e.g. ACTIVE.
    pub status: Option<String>,
    /// Resource tags.
    pub tags: BTreeMap<String, String>,
    /// Auto Scaling groups EKS created for it.
    pub auto_scaling_groups: Vec<String>,
    /// Scaling config: min, max, desired.
    pub min_size: Option<i32>,
    /// Scaling config max.
    pub max_size: Option<i32>,
    /// Scaling config desired.
    pub desired_size: Option<i32>,
    /// Instance types the nodegroup launches.
    pub instance_types: Vec<String>,
}

/// An Auto Scaling group as DescribeAutoScalingGroups reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AutoScalingGroup {
    /// Group name.
    pub name: String,
    /// Group tags.
    pub tags: BTreeMap<String, String>,
    /// Minimum size.
    pub min_size: i32,
    /// Maximum size.
    pub max_size: i32,
    /// Desired capacity.
    pub desired_capacity: i32,
    /// Instances in the group.
    pub instance_ids: Vec<String>,
    /// Lifecycle state of each instance (InService, Pending, Terminating:Wait, …), as far
    /// as the group reports it.
    pub instance_states: BTreeMap<String, String>,
}

/// An EC2 instance as DescribeInstances reports it. Serialized (camelCase) as part of the
/// analysis's AWS inventory ([`crate::analysis::AwsInventory`]).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Instance {
    /// Instance id.
    pub id: String,
    /// e.g. m5.large.
    pub instance_type: Option<String>,
    /// e.g. running.
    pub state: Option<String>,
    /// Instance tags.
    pub tags: BTreeMap<String, String>,
}

/// The shape of an instance type as DescribeInstanceTypes reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstanceTypeShape {
    /// e.g. m5.large.
    pub name: String,
    /// Default vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Kubernetes architecture name: amd64 or arm64.
    pub architecture: String,
    /// Pods per node with the EKS VPC CNI defaults: ENIs x (IPv4 per ENI - 1) + 2.
    pub max_pods: Option<u32>,
}

/// One current spot price, as ec2:DescribeSpotPriceHistory reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpotPrice {
    /// e.g. m5.large.
    pub instance_type: String,
    /// e.g. us-east-1a.
    pub availability_zone: String,
    /// EC2's product description: `Linux/UNIX` or `Windows`.
    pub product_description: String,
    /// USD per instance-hour.
    pub usd_per_hour: f64,
    /// When this price took effect.
    pub timestamp: jiff::Timestamp,
}

/// EC2's product description (`Linux/UNIX`, `Windows`) of a `kubernetes.io/os` value, as
/// DescribeSpotPriceHistory, DescribeReservedInstances and Savings Plans rates spell it.
pub fn product_description(os: &str) -> &'static str {
    if os.eq_ignore_ascii_case("windows") {
        "Windows"
    } else {
        "Linux/UNIX"
    }
}

/// A Reserved Instance as ec2:DescribeReservedInstances reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedInstance {
    /// ReservedInstancesId.
    pub id: String,
    /// e.g. m5.large.
    pub instance_type: String,
    /// The Availability Zone of a zonal RI; `None` for a regional one (scope `Region`).
    pub availability_zone: Option<String>,
    /// How many instances it reserves.
    pub instance_count: u32,
    /// Platform, e.g. `Linux/UNIX`, `Windows`.
    pub product_description: String,
    /// `default` or `dedicated`.
    pub tenancy: String,
    /// `active`, `retired`, `payment-pending`, …
    pub state: String,
    /// Start of the term.
    pub start: jiff::Timestamp,
    /// End of the term.
    pub end: jiff::Timestamp,
    /// Term length in seconds.
    pub duration_seconds: i64,
    /// `standard` or `convertible`.
    pub offering_class: String,
    /// `No Upfront`, `Partial Upfront`, `All Upfront`.
    pub offering_type: String,
    /// Upfront price, USD.
    pub fixed_price: f64,
    /// Usage price, USD per hour.
    pub usage_price: f64,
    /// Sum of the hourly recurring charges, USD per hour.
    pub recurring_hourly: f64,
}

impl ReservedInstance {
    /// What one reserved instance costs per hour over the term: the upfront price spread
    /// over the term's hours, plus the usage price and the hourly recurring charges (the
    /// "effective rate" AWS Cost Explorer amortizes the same way).
    pub fn effective_hourly(&self) -> f64 {
        let hours = self.duration_seconds as f64 / 3600.0;
        let upfront = if hours > 0.0 {
            self.fixed_price / hours
        } else {
            0.0
        };
        upfront + self.usage_price + self.recurring_hourly
    }
}

/// A Savings Plan as savingsplans:DescribeSavingsPlans reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavingsPlan {
    /// savingsPlanId.
    pub id: String,
    /// savingsPlanArn.
    pub arn: String,
    /// `Compute`, `EC2Instance` or `SageMaker`.
    pub plan_type: String,
    /// `active`, `retired`, `queued`, …
    pub state: String,
    /// The region of an EC2 Instance Savings Plan; `None` for Compute plans.
    pub region: Option<String>,
    /// The instance family of an EC2 Instance Savings Plan.
    pub ec2_instance_family: Option<String>,
    /// The commitment, USD per hour.
    pub commitment_per_hour: f64,
    /// Start of the term.
    pub start: jiff::Timestamp,
    /// End of the term.
    pub end: jiff::Timestamp,
    /// `No Upfront`, `Partial Upfront`, `All Upfront`.
    pub payment_option: String,
}

/// The rate one Savings Plan gives one instance type, as savingsplans:DescribeSavingsPlanRates
/// reports it (EC2 usage, shared tenancy).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavingsPlanRate {
    /// The plan.
    pub savings_plan_id: String,
    /// e.g. m5.large.
    pub instance_type: String,
    /// e.g. us-east-1.
    pub region: String,
    /// `Linux/UNIX`, `Windows`.
    pub product_description: String,
    /// USD per instance-hour under the plan.
    pub usd_per_hour: f64,
}

/// An IAM user as ListUsers reports it, with the tags ListUserTags reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IamUser {
    /// User name.
    pub name: String,
    /// User ARN.
    pub arn: String,
    /// The user's tags (filled by [`Iam::list_user_tags`]; ListUsers returns none).
    pub tags: BTreeMap<String, String>,
}

/// One access key as ListAccessKeys reports it (never the secret, which IAM never returns
/// after creation).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessKey {
    /// The access key id, e.g. AKIAIOSFODNN7EXAMPLE.
    pub id: String,
    /// The user it belongs to.
    pub user: String,
    /// Status `Active` (true) or `Inactive` (false).
    pub active: bool,
    /// The key's CreateDate.
    pub created: jiff::Timestamp,
}

/// What GetAccessKeyLastUsed says about one key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyLastUsed {
    /// When it was last used (None: never, or before IAM started tracking in April 2015).
    pub at: Option<jiff::Timestamp>,
    /// The service it was last used with, e.g. s3 (IAM says `N/A` when never used).
    pub service: Option<String>,
}

/// An IAM role as GetRole reports it, with its trust policy decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct IamRole {
    /// Role name.
    pub name: String,
    /// Role ARN.
    pub arn: String,
    /// The trust (assume-role) policy document, URL-decoded and parsed.
    pub trust_policy: serde_json::Value,
    /// MaxSessionDuration in seconds (3600 to 43200).
    pub max_session_duration: i32,
}

/// True when `tags` carry both management tags for `cluster`.
pub fn is_managed_for(tags: &BTreeMap<String, String>, cluster: &str) -> bool {
    tags.get(TAG_MANAGED).map(String::as_str) == Some("true")
        && tags.get(TAG_CLUSTER).map(String::as_str) == Some(cluster)
}

/// What kind of failure an AWS call had; decides the condition reason and retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The caller is not allowed (IAM, trust policy, ExternalId).
    AccessDenied,
    /// Credentials are invalid or expired.
    InvalidCredentials,
    /// The named resource does not exist.
    NotFound,
    /// AWS asked us to slow down.
    Throttled,
    /// AWS or the network failed; retry later.
    Unavailable,
    /// Anything else.
    Other,
}

impl AwsErrorKind {
    /// Stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AwsErrorKind::AccessDenied => "access_denied",
            AwsErrorKind::InvalidCredentials => "invalid_credentials",
            AwsErrorKind::NotFound => "not_found",
            AwsErrorKind::Throttled => "throttled",
            AwsErrorKind::Unavailable => "unavailable",
            AwsErrorKind::Other => "other",
        }
    }

    /// Worth retrying soon without any change by a human.
    pub fn is_transient(self) -> bool {
        matches!(self, AwsErrorKind::Throttled | AwsErrorKind::Unavailable)
    }
}

/// A failed AWS call, with a message already scrubbed of anything credential-like.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service}:{operation} failed ({}): {message}", code.as_deref().unwrap_or(kind.as_str()))]
pub struct AwsError {
    /// e.g. sts.
    pub service: &'static str,
    /// e.g. AssumeRole.
    pub operation: &'static str,
    /// Classification.
    pub kind: AwsErrorKind,
    /// AWS error code, e.g. AccessDenied.
    pub code: Option<String>,
    /// Scrubbed, bounded message.
    pub message: String,
    /// AWS request id, when there was one.
    pub request_id: Option<String>,
    /// The request may have reached AWS and taken effect even though no answer says so
    /// (timeout, lost connection, unreadable response, server error). A mutating call that
    /// fails this way must be verified, never assumed not to have happened.
    pub outcome_unknown: bool,
}

impl AwsError {
    /// Build an error, classifying it by code and HTTP status and scrubbing the message.
    pub fn new(
        service: &'static str,
        operation: &'static str,
        code: Option<String>,
        message: Option<String>,
        http_status: Option<u16>,
        request_id: Option<String>,
    ) -> Self {
        let kind = classify(code.as_deref(), http_status);
        AwsError {
            service,
            operation,
            kind,
            code,
            message: scrub(message.as_deref().unwrap_or("")),
            request_id,
            outcome_unknown: kind == AwsErrorKind::Unavailable,
        }
    }
}

fn classify(code: Option<&str>, http_status: Option<u16>) -> AwsErrorKind {
    match code.unwrap_or("") {
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnauthorizedException"
        | "AuthFailure"
        | "RegionDisabledException" => AwsErrorKind::AccessDenied,
        "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch"
        | "InvalidAccessKeyId"
        | "UnrecognizedClientException" => AwsErrorKind::InvalidCredentials,
        "NoSuchEntity" | "ResourceNotFoundException" | "NotFoundException" => {
            AwsErrorKind::NotFound
        }
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "SlowDown"
        | limits::CLIENT_RATE_LIMIT_CODE => AwsErrorKind::Throttled,
        "ServiceUnavailable" | "InternalFailure" | "InternalError" | "ServerException"
        | "ServiceFailure" => AwsErrorKind::Unavailable,
        _ => match http_status {
            Some(429) => AwsErrorKind::Throttled,
            Some(s) if s >= 500 => AwsErrorKind::Unavailable,
            Some(403) => AwsErrorKind::AccessDenied,
            Some(404) => AwsErrorKind::NotFound,
            None => AwsErrorKind::Unavailable,
            _ => AwsErrorKind::Other,
        },
    }
}

static CREDENTIAL_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    // Access key ids, and any long base64-ish run (secret keys are 40, tokens hundreds of chars).
    Regex::new(r"(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}|[A-Za-z0-9+/=_-]{32,}").expect("static regex")
});

/// Remove anything that could be a credential from a message and bound its length, so it
/// is safe for logs, status and Events.
pub fn scrub(message: &str) -> String {
    let cleaned = CREDENTIAL_LIKE.replace_all(message, "[redacted]");
    let mut out: String = cleaned
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    if cleaned.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// sts:AssumeRole with the operator's own identity.
#[async_trait]
pub trait Sts: Send + Sync {
    /// Assume a customer role.
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<SessionCredentials, AwsError>;
}

/// sts:GetCallerIdentity with a customer session.
#[async_trait]
pub trait Identity: Send + Sync {
    /// Who the session is.
    async fn caller_identity(&self) -> Result<CallerIdentity, AwsError>;
}

/// The EKS calls crossguard makes.
#[async_trait]
pub trait Eks: Send + Sync {
    /// eks:DescribeCluster.
    async fn describe_cluster(&self, name: &str) -> Result<EksCluster, AwsError>;
    /// eks:ListNodegroups (all pages).
    async fn list_nodegroups(&self, cluster: &str) -> Result<Vec<String>, AwsError>;
    /// eks:DescribeNodegroup.
    async fn describe_nodegroup(
        &self,
        cluster: &str,
        nodegroup: &str,
    ) -> Result<Nodegroup, AwsError>;
    /// eks:UpdateNodegroupConfig setting the desired size. Mutating: only with the guard's
    /// approval, which it consumes.
    async fn update_nodegroup_size(&self, approval: ApprovedNodegroupScale)
    -> Result<(), AwsError>;
}

/// The Auto Scaling calls crossguard makes.
#[async_trait]
pub trait AutoScaling: Send + Sync {
    /// autoscaling:DescribeAutoScalingGroups for the named groups (all pages).
    async fn describe_groups(&self, names: &[String]) -> Result<Vec<AutoScalingGroup>, AwsError>;
    /// autoscaling:TerminateInstanceInAutoScalingGroup, decrementing the desired capacity.
    /// Mutating: only with the guard's approval, which it consumes.
    async fn terminate_instance(&self, approval: ApprovedTermination) -> Result<(), AwsError>;
}

/// The EC2 calls crossguard makes.
#[async_trait]
pub trait Ec2: Send + Sync {
    /// ec2:DescribeInstances of the cluster's instances (tag `kubernetes.io/cluster/<name>`), all pages.
    async fn describe_cluster_instances(&self, cluster: &str) -> Result<Vec<Instance>, AwsError>;
    /// ec2:DescribeInstances of one instance id, in any state; None when EC2 does not know it.
    async fn describe_instance(&self, id: &str) -> Result<Option<Instance>, AwsError>;
    /// ec2:DescribeInstanceTypes for the named types (all pages).
    async fn describe_instance_types(
        &self,
        types: &[String],
    ) -> Result<Vec<InstanceTypeShape>, AwsError>;
    /// ec2:DescribeSpotPriceHistory of the named types in the named zones for the named
    /// product descriptions (`Linux/UNIX`, `Windows`), from `start_time` (now: only the
    /// price in effect then and any later), all pages; the latest price per type, zone and
    /// product description. No call for no types.
    async fn describe_spot_price_history(
        &self,
        types: &[String],
        zones: &[String],
        product_descriptions: &[String],
        start_time: jiff::Timestamp,
    ) -> Result<Vec<SpotPrice>, AwsError>;
    /// ec2:DescribeReservedInstances of the region in the given states (e.g. `active`,
    /// `retired`).
    async fn describe_reserved_instances(
        &self,
        states: &[&str],
    ) -> Result<Vec<ReservedInstance>, AwsError>;
}

/// The Savings Plans calls crossguard makes (a global service: one answer for the account).
#[async_trait]
pub trait SavingsPlans: Send + Sync {
    /// savingsplans:DescribeSavingsPlans in the given states (e.g. `active`, `retired`),
    /// all pages.
    async fn describe_savings_plans(&self, states: &[&str]) -> Result<Vec<SavingsPlan>, AwsError>;
    /// savingsplans:DescribeSavingsPlanRates of one plan for EC2 instance usage (shared
    /// tenancy, Linux/UNIX and Windows) of the named types in `region`, all pages. No call
    /// for no types.
    async fn describe_savings_plan_rates(
        &self,
        savings_plan_id: &str,
        types: &[String],
        region: &str,
    ) -> Result<Vec<SavingsPlanRate>, AwsError>;
}

/// The IAM calls crossguard makes: the access-key audit's reads and its one mutation, and
/// the role-posture check's reads of the role crossguard assumes. Listings return every
/// page; policy documents come back URL-decoded and parsed.
#[async_trait]
pub trait Iam: Send + Sync {
    /// iam:ListUsers (all pages; tags are not filled).
    async fn list_users(&self) -> Result<Vec<IamUser>, AwsError>;
    /// iam:ListUserTags (all pages).
    async fn list_user_tags(&self, user: &str) -> Result<BTreeMap<String, String>, AwsError>;
    /// iam:ListAccessKeys of one user (all pages).
    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>, AwsError>;
    /// iam:GetAccessKeyLastUsed.
    async fn get_access_key_last_used(&self, access_key_id: &str) -> Result<KeyLastUsed, AwsError>;
    /// iam:UpdateAccessKey setting exactly the approved key of the approved user to
    /// `Inactive`. Mutating: only with the key-audit guard's approval, which it consumes.
    async fn deactivate_access_key(
        &self,
        approval: ApprovedKeyDeactivation,
    ) -> Result<(), AwsError>;
    /// iam:GetRole.
    async fn get_role(&self, role_name: &str) -> Result<IamRole, AwsError>;
    /// iam:ListRolePolicies (names of inline policies, all pages).
    async fn list_role_policies(&self, role_name: &str) -> Result<Vec<String>, AwsError>;
    /// iam:GetRolePolicy: one inline policy's document.
    async fn get_role_policy(
        &self,
        role_name: &str,
        policy_name: &str,
    ) -> Result<serde_json::Value, AwsError>;
    /// iam:ListAttachedRolePolicies (ARNs of managed policies, all pages).
    async fn list_attached_role_policies(&self, role_name: &str) -> Result<Vec<String>, AwsError>;
    /// iam:GetPolicy: the managed policy's default version id.
    async fn get_policy_default_version(&self, policy_arn: &str) -> Result<String, AwsError>;
    /// iam:GetPolicyVersion: that version's document.
    async fn get_policy_version(
        &self,
        policy_arn: &str,
        version_id: &str,
    ) -> Result<serde_json::Value, AwsError>;
}

/// pricing:GetProducts with the operator's own identity (never a customer session: list
/// prices are public and the same for every account). The Price List API has endpoints in
/// a few regions only; the client is bound to one of them, whatever region it asks about.
#[async_trait]
pub trait Pricing: Send + Sync {
    /// The on-demand prices of `os` in `region` (service code `AmazonEC2`, filtered as
    /// [`price_list::filters`] says), every page read; documents that are not a price are
    /// skipped and counted. Each page's request is reported to `observer`.
    async fn on_demand_prices(
        &self,
        region: &str,
        os: price_list::PriceListOs,
        observer: &dyn crate::audit::CallObserver,
    ) -> Result<price_list::OnDemandPriceList, AwsError>;
}

/// Clients that act inside one customer's account with one session, in one region.
#[derive(Clone)]
pub struct CustomerClients {
    /// sts:GetCallerIdentity.
    pub identity: Arc<dyn Identity>,
    /// EKS.
    pub eks: Arc<dyn Eks>,
    /// Auto Scaling.
    pub autoscaling: Arc<dyn AutoScaling>,
    /// EC2.
    pub ec2: Arc<dyn Ec2>,
    /// IAM (a global service: the region only picks the endpoint's partition).
    pub iam: Arc<dyn Iam>,
    /// Savings Plans (a global service).
    pub savings_plans: Arc<dyn SavingsPlans>,
}

/// Builds AWS clients; the only place SDK clients are created.
pub trait ClientFactory: Send + Sync {
    /// STS with the operator's own identity.
    fn operator_sts(&self) -> Arc<dyn Sts>;
    /// Clients acting with a customer session in `region` of AWS account `account` (the
    /// 12-digit id the session lives in: its rate limits and retry budget are that
    /// account's); every call they make is reported to `observer` (the audit trail).
    fn customer(
        &self,
        account: &str,
        credentials: &SessionCredentials,
        region: &str,
        observer: Arc<dyn crate::audit::CallObserver>,
    ) -> CustomerClients;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_keys_and_tokens_and_bounds_length() {
        let msg = "denied for ASIAABCDEFGHIJKLMNOP with secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY token=IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ";
        let out = scrub(msg);
        assert!(!out.contains("ASIAABCDEFGHIJKLMNOP"));
        assert!(!out.contains("wJalrXUtnFEMI"));
        assert!(!out.contains("IQoJb3JpZ2lu"));
        assert!(out.starts_with("denied for [redacted]"));
        assert!(scrub(&"word ".repeat(200)).chars().count() <= 301);
    }

    #[test]
    fn classification_by_code_then_status() {
        assert_eq!(
            classify(Some("AccessDenied"), Some(403)),
            AwsErrorKind::AccessDenied
        );
        assert_eq!(
            classify(Some("NoSuchEntity"), Some(404)),
            AwsErrorKind::NotFound
        );
        assert_eq!(
            classify(Some("Throttling"), Some(400)),
            AwsErrorKind::Throttled
        );
        assert_eq!(
            classify(Some("Weird"), Some(503)),
            AwsErrorKind::Unavailable
        );
        assert_eq!(classify(None, None), AwsErrorKind::Unavailable);
        assert!(
            AwsErrorKind::Throttled.is_transient() && !AwsErrorKind::AccessDenied.is_transient()
        );
    }

    #[test]
    fn managed_requires_both_tags_for_this_cluster() {
        let tags = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(is_managed_for(
            &tags(&[(TAG_MANAGED, "true"), (TAG_CLUSTER, "prod")]),
            "prod"
        ));
        assert!(!is_managed_for(
            &tags(&[(TAG_MANAGED, "true"), (TAG_CLUSTER, "dev")]),
            "prod"
        ));
        assert!(!is_managed_for(&tags(&[(TAG_CLUSTER, "prod")]), "prod"));
        assert!(!is_managed_for(
            &tags(&[(TAG_MANAGED, "True"), (TAG_CLUSTER, "prod")]),
            "prod"
        ));
    }

    #[test]
    fn debug_of_credentials_shows_no_secret() {
        let c = SessionCredentials {
            access_key_id: "ASIACANARYKEYID00000".into(),
            secret_access_key: crate::seal::Sealed::from("canary-secret"),
            session_token: crate::seal::Sealed::from("canary-token"),
            expiration: jiff::Timestamp::UNIX_EPOCH,
            lifetime: std::time::Duration::from_secs(3600),
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("canary") && !shown.contains("ASIACANARY"),
            "{shown}"
        );
    }
}
