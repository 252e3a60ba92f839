//! [`FakeAws`]: one stateful, in-memory fake of every AWS call crossguard makes, behind the
//! same narrow traits as the SDK adapters ([`crate::aws`]), in the spirit of Karpenter's
//! fake EC2.
//!
//! What it fakes:
//! - **STS.** [`FakeAws::add_role`] stands for a customer role whose trust policy requires
//!   one ExternalId: AssumeRole succeeds only for a known role with that ExternalId and a
//!   duration of 900–3600 s (the default MaxSessionDuration), and is denied otherwise
//!   (`AccessDenied`, as real STS answers for a missing role too). Credentials expire at
//!   the fake's clock now + the duration; later calls with them fail `ExpiredToken`, and
//!   credentials the fake never issued fail `InvalidClientTokenId`. GetCallerIdentity
//!   answers the session's account, unless [`FakeAws::override_caller_account`] says
//!   otherwise (a role that turns out to live in another account).
//! - **A world per account and region** ([`World`]): EKS clusters, nodegroups, Auto Scaling
//!   groups and EC2 instances, seeded with the `put_*` methods or changed at any time with
//!   [`FakeAws::with_world`]; instance type shapes are one catalogue for all accounts.
//!   Describe calls read it; unknown names fail as AWS fails them (see each call below);
//!   the two mutating calls change it as AWS would, consuming the guard's approval.
//! - **Call records** ([`CallRecord`]) of every call in order, operator AssumeRole
//!   included; every call made with customer clients is also reported to the
//!   [`CallObserver`] given to [`ClientFactory::customer`], with the service, operation,
//!   target and outcome strings the SDK adapter ([`crate::aws::sdk`]) reports.
//! - **Price List.** [`FakeAws::pricing`] is `pricing:GetProducts` with the operator's
//!   identity: it answers the on-demand prices put with [`FakeAws::put_on_demand_price`]
//!   for the region and operating system asked (none: an empty list, as the API answers
//!   for a region it has no products in), as one page, and records each call with the
//!   operator's account ([`OPERATOR_ACCOUNT`]), the endpoint region `us-east-1` and target
//!   `<region>/<Linux|Windows>`.
//! - **Spot prices and commitments**: a spot price history per account and region
//!   ([`FakeAws::put_spot_price`]; DescribeSpotPriceHistory answers the latest price per
//!   type, zone and product description among the matching entries), Reserved Instances
//!   per account and region ([`FakeAws::put_reserved_instance`]; filtered by state only),
//!   and Savings Plans per account with their rates ([`FakeAws::put_savings_plan`];
//!   DescribeSavingsPlanRates answers the plan's rates for the named types and region).
//! - **Injected failures and delays** per operation ([`FakeAws::fail`], [`FakeAws::delay`])
//!   and per account ([`FakeAws::delay_account`]: a slow tenant).
//!
//! What it does not fake: IAM policy evaluation beyond the ExternalId condition (every
//! session may make every call), pagination (each list is one page), what EKS and Auto
//! Scaling do after a call is accepted (a nodegroup scale-in sets the desired size and
//! nothing else; a terminated instance stays `shutting-down`: tests play the rest with
//! [`FakeAws::with_world`]), consistency between the objects a test seeds (a group's
//! instance list and the instances are whatever the test puts), and metrics (the SDK
//! adapter counts calls in [`crate::metrics::Metrics`]; the fake keeps [`CallRecord`]s).
//!
//! Operation names are AWS's (`AssumeRole`, `DescribeCluster`, …, see [`OPERATIONS`]); both
//! `Ec2::describe_cluster_instances` and `Ec2::describe_instance` are `DescribeInstances`.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use crossguard::audit::{CallObserver, NoAudit};
//! use crossguard::aws::{AwsErrorKind, EksCluster};
//! use crossguard::credentials::{Broker, SessionParams};
//! use crossguard::metrics::Metrics;
//! use crossguard::testing::{ManualClock, aws::FakeAws};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let clock = ManualClock::at(1_800_000_000);
//! let aws = FakeAws::new(clock.clone());
//! let role = "arn:aws:iam::111122223333:role/crossguard-access";
//! aws.add_role(role, "an-external-id-of-at-least-32-chars");
//! aws.put_cluster("111122223333", "us-east-1", EksCluster {
//!     name: "prod".into(),
//!     status: Some("ACTIVE".into()),
//!     ..Default::default()
//! });
//!
//! let broker = Broker::new(aws.clone(), clock.clone(), Arc::new(Metrics::new()), "crossguard");
//! let observer: Arc<dyn CallObserver> = Arc::new(NoAudit);
//! let params = SessionParams {
//!     uid: "uid-1".into(),
//!     namespace: "team-a".into(),
//!     name: "acme".into(),
//!     account_id: "111122223333".into(),
//!     role_arn: role.into(),
//!     external_id: "an-external-id-of-at-least-32-chars".into(),
//!     duration: Duration::from_secs(3600),
//!     region: "us-east-1".into(),
//! };
//! let session = broker.session(&params, &observer).await.unwrap();
//! let clients = broker.clients(&session, "us-east-1", observer.clone());
//!
//! aws.fail("DescribeCluster", AwsErrorKind::Throttled, 1);
//! assert!(clients.eks.describe_cluster("prod").await.is_err());
//! let cluster = clients.eks.describe_cluster("prod").await.unwrap();
//! assert_eq!(cluster.status.as_deref(), Some("ACTIVE"));
//! let outcomes: Vec<_> = aws.calls_of("DescribeCluster").into_iter().map(|c| c.outcome).collect();
//! assert_eq!(outcomes, ["throttled", "success"]);
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::audit::CallObserver;
use crate::aws::Pricing;
use crate::aws::approval::{ApprovedKeyDeactivation, ApprovedNodegroupScale, ApprovedTermination};
use crate::aws::price_list::{OnDemandPriceList, PriceListOs};
use crate::aws::{
    AccessKey, AssumeRoleRequest, AutoScaling, AutoScalingGroup, AwsError, AwsErrorKind,
    CallerIdentity, ClientFactory, CustomerClients, Ec2, Eks, EksCluster, Iam, IamRole, IamUser,
    Identity, Instance, InstanceTypeShape, KeyLastUsed, Nodegroup, ReservedInstance, SavingsPlan,
    SavingsPlanRate, SessionCredentials, SpotPrice, Sts,
};
use crate::clock::Clock;

/// Every operation the fake serves: `(service, operation, mutating)`, named as AWS (and the
/// SDK adapter's audit records) name them.
pub const OPERATIONS: &[(&str, &str, bool)] = &[
    ("sts", "AssumeRole", false),
    ("sts", "GetCallerIdentity", false),
    ("eks", "DescribeCluster", false),
    ("eks", "ListNodegroups", false),
    ("eks", "DescribeNodegroup", false),
    ("eks", "UpdateNodegroupConfig", true),
    ("autoscaling", "DescribeAutoScalingGroups", false),
    ("autoscaling", "TerminateInstanceInAutoScalingGroup", true),
    ("ec2", "DescribeInstances", false),
    ("ec2", "DescribeInstanceTypes", false),
    ("ec2", "DescribeSpotPriceHistory", false),
    ("ec2", "DescribeReservedInstances", false),
    ("savingsplans", "DescribeSavingsPlans", false),
    ("savingsplans", "DescribeSavingsPlanRates", false),
    ("iam", "ListUsers", false),
    ("iam", "ListUserTags", false),
    ("iam", "ListAccessKeys", false),
    ("iam", "GetAccessKeyLastUsed", false),
    ("iam", "UpdateAccessKey", true),
    ("iam", "GetRole", false),
    ("iam", "ListRolePolicies", false),
    ("iam", "GetRolePolicy", false),
    ("iam", "ListAttachedRolePolicies", false),
    ("iam", "GetPolicy", false),
    ("iam", "GetPolicyVersion", false),
    ("pricing", "GetProducts", false),
];

/// The account of the operator's own identity (the account of [`OPERATOR_ROLE`]).
pub const OPERATOR_ACCOUNT: &str = "000000000000";

/// The operator role the roles made by [`FakeAws::add_role`] trust.
pub const OPERATOR_ROLE: &str = "arn:aws:iam::000000000000:role/crossguard-operator";

/// Instance states `DescribeInstances` returns for a cluster: the SDK adapter filters on
/// `instance-state-name` with these.
const LISTED_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];

/// One call the fake served, in the order they finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// sts, eks, autoscaling or ec2.
    pub service: &'static str,
    /// AWS's operation name, e.g. `DescribeCluster`.
    pub operation: &'static str,
    /// The account the call acted in: the session's, or for AssumeRole the role's; empty
    /// when the credentials were not valid.
    pub account: String,
    /// The client's region; empty for AssumeRole (the operator's STS).
    pub region: String,
    /// What the call was about, as the SDK adapter reports it (role ARN, cluster name,
    /// `cluster/nodegroup`, `group/instance`, …).
    pub target: String,
    /// Whether the operation changes anything.
    pub mutating: bool,
    /// `success`, or the error kind ([`AwsErrorKind::as_str`]).
    pub outcome: String,
    /// The request id the answer carried.
    pub request_id: Option<String>,
}

/// What an injected failure returns.
#[derive(Debug, Clone)]
pub enum Failure {
    /// An error of this kind, with a code and HTTP status AWS uses for it on that service
    /// and a request id.
    Kind(AwsErrorKind),
    /// Exactly this error (its service and operation are left as given).
    Error(AwsError),
}

impl From<AwsErrorKind> for Failure {
    fn from(kind: AwsErrorKind) -> Self {
        Failure::Kind(kind)
    }
}

impl From<AwsError> for Failure {
    fn from(error: AwsError) -> Self {
        Failure::Error(error)
    }
}

/// The resources of one account in one region. Fields are public so tests can change
/// anything inside [`FakeAws::with_world`]; the `*_mut` helpers panic naming what is
/// missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    /// EKS clusters by name.
    pub clusters: BTreeMap<String, EksCluster>,
    /// Managed nodegroups by (cluster name, nodegroup name).
    pub nodegroups: BTreeMap<(String, String), Nodegroup>,
    /// Auto Scaling groups by name.
    pub groups: BTreeMap<String, AutoScalingGroup>,
    /// EC2 instances by id.
    pub instances: BTreeMap<String, Instance>,
    /// The spot price history of the region (DescribeSpotPriceHistory answers the latest
    /// per type, zone and product description).
    pub spot_prices: Vec<SpotPrice>,
    /// The account's Reserved Instances in the region.
    pub reserved_instances: Vec<ReservedInstance>,
}

impl World {
    /// The cluster `name`.
    ///
    /// # Panics
    /// When there is none (a test bug).
    pub fn cluster_mut(&mut self, name: &str) -> &mut EksCluster {
        self.clusters
            .get_mut(name)
            .unwrap_or_else(|| panic!("no EKS cluster {name} in this world"))
    }

    /// The nodegroup `name` of `cluster`.
    ///
    /// # Panics
    /// When there is none (a test bug).
    pub fn nodegroup_mut(&mut self, cluster: &str, name: &str) -> &mut Nodegroup {
        self.nodegroups
            .get_mut(&(cluster.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no nodegroup {cluster}/{name} in this world"))
    }

    /// The Auto Scaling group `name`.
    ///
    /// # Panics
    /// When there is none (a test bug).
    pub fn group_mut(&mut self, name: &str) -> &mut AutoScalingGroup {
        self.groups
            .get_mut(name)
            .unwrap_or_else(|| panic!("no Auto Scaling group {name} in this world"))
    }

    /// The instance `id`.
    ///
    /// # Panics
    /// When there is none (a test bug).
    pub fn instance_mut(&mut self, id: &str) -> &mut Instance {
        self.instances
            .get_mut(id)
            .unwrap_or_else(|| panic!("no instance {id} in this world"))
    }
}

/// A session the fake issued, by access key id.
struct Session {
    account: String,
    arn: String,
    /// None for clients made with [`FakeAws::clients`], which never expire.
    expires: Option<Timestamp>,
}

struct Injected {
    failure: Failure,
    remaining: usize,
}

/// The IAM side of one account: users with their keys, and roles with their policies.
/// Fields are public so tests can change anything inside [`FakeAws::with_iam`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IamWorld {
    /// Users by name; each user's `tags` are what ListUserTags answers.
    pub users: BTreeMap<String, IamUser>,
    /// Access keys in creation order (ListAccessKeys answers a user's in this order).
    pub keys: Vec<AccessKey>,
    /// GetAccessKeyLastUsed's answer per key id (absent: never used).
    pub last_used: BTreeMap<String, KeyLastUsed>,
    /// Roles by name.
    pub roles: BTreeMap<String, IamRole>,
    /// Inline policies by (role name, policy name).
    pub inline_policies: BTreeMap<(String, String), serde_json::Value>,
    /// Managed policy ARNs attached to each role.
    pub attached_policies: BTreeMap<String, Vec<String>>,
}

#[derive(Default)]
struct State {
    /// IAM per account.
    iam: BTreeMap<String, IamWorld>,
    /// Managed policy documents by ARN (AWS-managed ones are visible from every account).
    managed_policies: BTreeMap<String, serde_json::Value>,
    /// Role ARN → the ExternalId its trust policy requires.
    roles: BTreeMap<String, String>,
    sessions: HashMap<String, Session>,
    caller_account_override: Option<String>,
    worlds: BTreeMap<(String, String), World>,
    instance_types: BTreeMap<String, InstanceTypeShape>,
    /// Savings Plans per account (a global service), with each plan's rates.
    savings_plans: BTreeMap<String, Vec<(SavingsPlan, Vec<SavingsPlanRate>)>>,
    assume_requests: Vec<AssumeRoleRequest>,
    calls: Vec<CallRecord>,
    failures: HashMap<&'static str, Injected>,
    delays: HashMap<&'static str, Duration>,
    /// Delays of every customer call made in an account (a slow tenant).
    account_delays: HashMap<String, Duration>,
    /// Price List answers by (region, operating system).
    price_lists: BTreeMap<(String, PriceListOs), BTreeMap<String, f64>>,
    /// Idempotency tokens of UpdateNodegroupConfig requests already applied.
    applied_tokens: BTreeSet<String>,
    /// Source of access key ids and request ids.
    serial: u64,
}

impl State {
    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn request_id(&mut self) -> String {
        format!("fa4e0000-0000-4000-8000-{:012x}", self.next_serial())
    }

    fn world(&mut self, account: &str, region: &str) -> &mut World {
        self.worlds
            .entry((account.to_string(), region.to_string()))
            .or_default()
    }

    /// The injected failure for `operation`, if one is armed; uses up one of its calls.
    fn take_failure(&mut self, service: &'static str, operation: &'static str) -> Option<AwsError> {
        let injected = self.failures.get_mut(operation)?;
        let failure = injected.failure.clone();
        if injected.remaining != usize::MAX {
            injected.remaining -= 1;
        }
        if injected.remaining == 0 {
            self.failures.remove(operation);
        }
        Some(match failure {
            Failure::Error(e) => e,
            Failure::Kind(kind) => {
                let request_id = self.request_id();
                error_of_kind(service, operation, kind, request_id)
            }
        })
    }
}

/// The stateful AWS fake; see the module documentation. Made with [`FakeAws::new`] and
/// shared as `Arc<FakeAws>`: it is the [`ClientFactory`] for a
/// [`Broker`](crate::credentials::Broker) (`Broker::new(aws.clone(), …)`), and the test
/// keeps a clone to seed the world and read the records.
pub struct FakeAws {
    /// The `Arc` this fake lives in, for the clients it hands out.
    me: Weak<FakeAws>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for FakeAws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAws").finish_non_exhaustive()
    }
}

impl FakeAws {
    /// An empty fake (no roles, no resources) whose credentials expire by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new_cyclic(|me| FakeAws {
            me: me.clone(),
            clock,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked mid-call must not hide the state from the next assertion.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arc(&self) -> Arc<FakeAws> {
        self.me
            .upgrade()
            .expect("a FakeAws is only reachable through its Arc")
    }

    // ------------------------------------------------------------------ STS and sessions

    /// A customer role `role_arn` (`arn:aws:iam::<account>:role/<name>`) whose trust policy
    /// lets the operator assume it with exactly `external_id`. Adding a known role again
    /// replaces its ExternalId (the customer updated the trust policy).
    ///
    /// # Panics
    /// When `role_arn` names no account (a test bug).
    pub fn add_role(&self, role_arn: &str, external_id: &str) {
        assert!(
            account_of_arn(role_arn).is_some(),
            "{role_arn:?} is not arn:aws:iam::<account>:role/<name>"
        );
        let account = account_of_arn(role_arn).unwrap_or_default();
        let name = role_arn.rsplit('/').next().unwrap_or_default().to_string();
        let mut st = self.lock();
        st.roles
            .insert(role_arn.to_string(), external_id.to_string());
        // IAM's view of the same role, as the onboarding template makes it: trusted by the
        // operator's role with this ExternalId, sessions of at most an hour. Tests give it
        // policies (or a worse trust policy) with `put_iam_role`.
        let role = IamRole {
            name: name.clone(),
            arn: role_arn.to_string(),
            trust_policy: serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"AWS": OPERATOR_ROLE},
                    "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                    "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
                }],
            }),
            max_session_duration: 3600,
        };
        st.iam.entry(account).or_default().roles.insert(name, role);
    }

    /// Make GetCallerIdentity answer `account` for every session (a role that is not in
    /// the account it claims), or, with None, each session's own account again. The
    /// sessions' other calls still act in their own account.
    pub fn override_caller_account(&self, account: Option<&str>) {
        self.lock().caller_account_override = account.map(str::to_string);
    }

    /// Every AssumeRole request received, in order (denied and failed ones included).
    pub fn assume_role_requests(&self) -> Vec<AssumeRoleRequest> {
        self.lock().assume_requests.clone()
    }

    /// Clients acting in `account` and `region` without going through AssumeRole, for tests
    /// of code that is handed clients; their credentials never expire. Every call is
    /// reported to `observer`, as with [`ClientFactory::customer`].
    pub fn clients(
        &self,
        account: &str,
        region: &str,
        observer: Arc<dyn CallObserver>,
    ) -> CustomerClients {
        let key = {
            let mut st = self.lock();
            let key = access_key_id(st.next_serial());
            st.sessions.insert(
                key.clone(),
                Session {
                    account: account.to_string(),
                    arn: format!("arn:aws:sts::{account}:assumed-role/crossguard-test/direct"),
                    expires: None,
                },
            );
            key
        };
        self.customer_clients(key, region, observer)
    }

    fn customer_clients(
        &self,
        access_key_id: String,
        region: &str,
        observer: Arc<dyn CallObserver>,
    ) -> CustomerClients {
        let customer = Arc::new(Customer {
            aws: self.arc(),
            access_key_id,
            region: region.to_string(),
            observer,
        });
        CustomerClients {
            identity: customer.clone(),
            eks: customer.clone(),
            autoscaling: customer.clone(),
            ec2: customer.clone(),
            iam: customer.clone(),
            savings_plans: customer,
        }
    }

    // ------------------------------------------------------------------ the world

    // ------------------------------------------------------------------ IAM

    /// Put (or replace) the IAM user `name` of `account` with `tags`, keeping its keys.
    pub fn put_iam_user(&self, account: &str, name: &str, tags: &[(&str, &str)]) {
        self.with_iam(account, |w| {
            w.users.insert(
                name.to_string(),
                IamUser {
                    name: name.to_string(),
                    arn: format!("arn:aws:iam::{account}:user/{name}"),
                    tags: tags
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                },
            );
        });
    }

    /// Add an access key `id` for `user` of `account` created at `created`, active.
    pub fn put_access_key(&self, account: &str, user: &str, id: &str, created: Timestamp) {
        self.with_iam(account, |w| {
            w.keys.retain(|k| k.id != id);
            w.keys.push(AccessKey {
                id: id.to_string(),
                user: user.to_string(),
                active: true,
                created,
            });
        });
    }

    /// The key `id` of `account` as IAM now holds it, if it exists.
    pub fn access_key(&self, account: &str, id: &str) -> Option<AccessKey> {
        self.with_iam(account, |w| w.keys.iter().find(|k| k.id == id).cloned())
    }

    /// Put (or replace) the role `role` of `account` with its inline policies (name,
    /// document) and the ARNs of its attached managed policies.
    pub fn put_iam_role(
        &self,
        account: &str,
        role: IamRole,
        inline: &[(&str, serde_json::Value)],
        attached: &[&str],
    ) {
        self.with_iam(account, |w| {
            w.inline_policies.retain(|(r, _), _| *r != role.name);
            for (name, doc) in inline {
                w.inline_policies
                    .insert((role.name.clone(), name.to_string()), doc.clone());
            }
            w.attached_policies.insert(
                role.name.clone(),
                attached.iter().map(|a| a.to_string()).collect(),
            );
            w.roles.insert(role.name.clone(), role);
        });
    }

    /// Put (or replace) a managed policy document (its default version).
    pub fn put_managed_policy(&self, arn: &str, document: serde_json::Value) {
        self.lock()
            .managed_policies
            .insert(arn.to_string(), document);
    }

    /// Run `f` on the IAM side of `account`, creating it empty if needed.
    pub fn with_iam<R>(&self, account: &str, f: impl FnOnce(&mut IamWorld) -> R) -> R {
        f(self.lock().iam.entry(account.to_string()).or_default())
    }

    /// Put (or replace) an EKS cluster in `account`/`region`.
    pub fn put_cluster(&self, account: &str, region: &str, cluster: EksCluster) {
        self.with_world(account, region, |w| {
            w.clusters.insert(cluster.name.clone(), cluster);
        });
    }

    /// Put (or replace) a managed nodegroup in `account`/`region`; it belongs to the
    /// cluster named by its `cluster_name`, which must be put too for EKS to find it.
    pub fn put_nodegroup(&self, account: &str, region: &str, nodegroup: Nodegroup) {
        self.with_world(account, region, |w| {
            let key = (nodegroup.cluster_name.clone(), nodegroup.name.clone());
            w.nodegroups.insert(key, nodegroup);
        });
    }

    /// Put (or replace) an Auto Scaling group in `account`/`region`. Its instance list is
    /// used as given (put the instances too for EC2 to know them).
    pub fn put_group(&self, account: &str, region: &str, group: AutoScalingGroup) {
        self.with_world(account, region, |w| {
            w.groups.insert(group.name.clone(), group);
        });
    }

    /// Put (or replace) an EC2 instance in `account`/`region`; one without a state is put
    /// `running`. It is one of cluster `<name>`'s instances when tagged
    /// `kubernetes.io/cluster/<name>`.
    pub fn put_instance(&self, account: &str, region: &str, mut instance: Instance) {
        instance.state.get_or_insert_with(|| "running".to_string());
        self.with_world(account, region, |w| {
            w.instances.insert(instance.id.clone(), instance);
        });
    }

    /// Add a spot price to the history of `account`/`region` (DescribeSpotPriceHistory
    /// answers the latest per type, zone and product description).
    pub fn put_spot_price(&self, account: &str, region: &str, price: SpotPrice) {
        self.with_world(account, region, |w| w.spot_prices.push(price));
    }

    /// Put (or replace, by id) a Reserved Instance of `account` in `region`.
    pub fn put_reserved_instance(&self, account: &str, region: &str, ri: ReservedInstance) {
        self.with_world(account, region, |w| {
            w.reserved_instances.retain(|r| r.id != ri.id);
            w.reserved_instances.push(ri);
        });
    }

    /// Put (or replace, by id) a Savings Plan of `account` with the rates
    /// DescribeSavingsPlanRates answers for it.
    pub fn put_savings_plan(&self, account: &str, plan: SavingsPlan, rates: Vec<SavingsPlanRate>) {
        let mut st = self.lock();
        let plans = st.savings_plans.entry(account.to_string()).or_default();
        plans.retain(|(p, _)| p.id != plan.id);
        plans.push((plan, rates));
    }

    /// Put (or replace) an instance type in the catalogue DescribeInstanceTypes reads (one
    /// for all accounts and regions).
    pub fn put_instance_type(&self, shape: InstanceTypeShape) {
        self.lock().instance_types.insert(shape.name.clone(), shape);
    }

    /// Run `f` on the world of `account`/`region` (an empty one if nothing was put there
    /// yet) and return what it returns: to seed it in one go, read it, or change it while
    /// a run is under way (e.g. remove a tag between plan and call). `f` runs under the
    /// fake's lock: it must not call the fake.
    pub fn with_world<R>(&self, account: &str, region: &str, f: impl FnOnce(&mut World) -> R) -> R {
        f(self.lock().world(account, region))
    }

    // ------------------------------------------------------------------ records

    /// Every call served so far, in order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().calls.clone()
    }

    /// The calls of one operation (AWS's name, e.g. `AssumeRole`), in order.
    pub fn calls_of(&self, operation: &str) -> Vec<CallRecord> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.operation == operation)
            .cloned()
            .collect()
    }

    /// The mutating calls (UpdateNodegroupConfig, TerminateInstanceInAutoScalingGroup), in
    /// order, failed ones included: a failed call was still sent.
    pub fn mutating_calls(&self) -> Vec<CallRecord> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.mutating)
            .cloned()
            .collect()
    }

    /// Forget the calls (and AssumeRole requests) recorded so far.
    pub fn clear_calls(&self) {
        let mut st = self.lock();
        st.calls.clear();
        st.assume_requests.clear();
    }

    // ------------------------------------------------------------------ faults

    /// Make the next `times` calls of `operation` fail with `failure` and no effect
    /// (`usize::MAX`: until [`FakeAws::clear_failures`]; 0 disarms). Replaces what was armed
    /// for that operation. A call with invalid credentials fails for that first and does
    /// not use one up.
    ///
    /// # Panics
    /// When `operation` is not one of [`OPERATIONS`] (a typo would otherwise test nothing).
    pub fn fail(&self, operation: &str, failure: impl Into<Failure>, times: usize) {
        let operation = known_operation(operation);
        let mut st = self.lock();
        if times == 0 {
            st.failures.remove(operation);
        } else {
            st.failures.insert(
                operation,
                Injected {
                    failure: failure.into(),
                    remaining: times,
                },
            );
        }
    }

    /// Disarm every injected failure.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// Hold every call of `operation` for `by` (a tokio sleep) before it acts or fails, so a
    /// test can act while the call is in flight; `Duration::ZERO` removes the delay.
    ///
    /// # Panics
    /// When `operation` is not one of [`OPERATIONS`].
    pub fn delay(&self, operation: &str, by: Duration) {
        let operation = known_operation(operation);
        let mut st = self.lock();
        if by.is_zero() {
            st.delays.remove(operation);
        } else {
            st.delays.insert(operation, by);
        }
    }

    /// Hold every call made with a session of `account` (every customer operation; not
    /// AssumeRole, which the operator makes with its own identity) for `by` before it acts,
    /// as a slow or unreachable tenant would; `Duration::ZERO` removes the delay. Adds to
    /// any delay of the operation itself.
    pub fn delay_account(&self, account: &str, by: Duration) {
        let mut st = self.lock();
        if by.is_zero() {
            st.account_delays.remove(account);
        } else {
            st.account_delays.insert(account.to_string(), by);
        }
    }

    /// Back to a new fake: no roles, sessions (credentials issued before stop working),
    /// identity override, resources, instance types, records, failures or delays. The
    /// clock is left alone.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    // ------------------------------------------------------------------ serving calls

    async fn pause(&self, operation: &'static str) {
        let delay = self.lock().delays.get(operation).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }

    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<SessionCredentials, AwsError> {
        const OP: &str = "AssumeRole";
        self.pause(OP).await;
        let now = self.clock.now();
        let mut st = self.lock();
        st.assume_requests.push(req.clone());
        let account = account_of_arn(&req.role_arn).unwrap_or_default();
        let result = match st.take_failure("sts", OP) {
            Some(e) => Err(e),
            None => issue(&mut st, req, &account, now),
        };
        record(
            &mut st,
            "sts",
            OP,
            &account,
            "",
            &req.role_arn,
            false,
            &result,
        );
        result
    }
}

/// AssumeRole's answer for a request that got past injected failures.
fn issue(
    st: &mut State,
    req: &AssumeRoleRequest,
    account: &str,
    now: Timestamp,
) -> Result<SessionCredentials, AwsError> {
    const OP: &str = "AssumeRole";
    if !(900..=3600).contains(&req.duration_seconds) {
        return Err(aws_error(
            st,
            "sts",
            OP,
            "ValidationError",
            400,
            format!(
                "The requested DurationSeconds {} is outside 900 and the role's MaxSessionDuration 3600",
                req.duration_seconds
            ),
        ));
    }
    if st.roles.get(&req.role_arn) != Some(&req.external_id) {
        // Real STS says the same for a missing role, a trust policy that does not name the
        // operator, and a wrong ExternalId.
        return Err(aws_error(
            st,
            "sts",
            OP,
            "AccessDenied",
            403,
            format!(
                "User: arn:aws:sts::000000000000:assumed-role/crossguard-operator is not authorized to perform: sts:AssumeRole on resource: {}",
                req.role_arn
            ),
        ));
    }
    let lifetime = Duration::from_secs(req.duration_seconds as u64);
    let expiration = now
        .checked_add(lifetime)
        .expect("a session end within jiff's range");
    let serial = st.next_serial();
    let key = access_key_id(serial);
    let role_name = req.role_arn.rsplit('/').next().unwrap_or_default();
    st.sessions.insert(
        key.clone(),
        Session {
            account: account.to_string(),
            arn: format!(
                "arn:aws:sts::{account}:assumed-role/{role_name}/{}",
                req.session_name
            ),
            expires: Some(expiration),
        },
    );
    Ok(SessionCredentials {
        access_key_id: key,
        secret_access_key: crate::seal::Sealed::from(format!("fake-secret-access-key-{serial}")),
        session_token: crate::seal::Sealed::from(format!("fake-session-token-{serial}")),
        expiration,
        lifetime,
    })
}

impl ClientFactory for FakeAws {
    fn operator_sts(&self) -> Arc<dyn Sts> {
        Arc::new(OperatorSts(self.arc()))
    }

    /// Clients acting in the account the credentials were issued for. Credentials the fake
    /// did not issue make every call fail `InvalidClientTokenId`.
    fn customer(
        &self,
        _account: &str,
        credentials: &SessionCredentials,
        region: &str,
        observer: Arc<dyn CallObserver>,
    ) -> CustomerClients {
        self.customer_clients(credentials.access_key_id.clone(), region, observer)
    }
}

/// STS with the operator's own identity.
struct OperatorSts(Arc<FakeAws>);

#[async_trait]
impl Sts for OperatorSts {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<SessionCredentials, AwsError> {
        self.0.assume_role(req).await
    }
}

/// Every customer client: one session in one region, reporting to one observer.
struct Customer {
    aws: Arc<FakeAws>,
    access_key_id: String,
    region: String,
    observer: Arc<dyn CallObserver>,
}

impl Customer {
    /// Serve one call: delay, authenticate, injected failure or `act` on the world, record,
    /// then report to the observer (outside the lock) exactly as the SDK adapter does.
    async fn call<T>(
        &self,
        operation: &'static str,
        target: &str,
        act: impl FnOnce(&mut State, &str) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let (service, mutating) = spec_of(operation);
        self.aws.pause(operation).await;
        let account_delay = {
            let st = self.aws.lock();
            st.sessions
                .get(&self.access_key_id)
                .and_then(|session| st.account_delays.get(&session.account))
                .copied()
        };
        if let Some(delay) = account_delay {
            tokio::time::sleep(delay).await;
        }
        let now = self.aws.clock.now();
        let (result, request_id) = {
            let mut st = self.aws.lock();
            let (account, result) =
                match authenticate(&mut st, &self.access_key_id, service, operation, now) {
                    Err(e) => (String::new(), Err(e)),
                    Ok(account) => {
                        let result = match st.take_failure(service, operation) {
                            Some(e) => Err(e),
                            None => act(&mut st, &account),
                        };
                        (account, result)
                    }
                };
            let request_id = record(
                &mut st,
                service,
                operation,
                &account,
                &self.region,
                target,
                mutating,
                &result,
            );
            (result, request_id)
        };
        let outcome = match &result {
            Ok(_) => "success",
            Err(e) => e.kind.as_str(),
        };
        self.observer.call(
            service,
            operation,
            target,
            outcome,
            request_id.as_deref(),
            mutating,
        );
        result
    }

    fn world<'a>(&self, st: &'a mut State, account: &str) -> &'a mut World {
        st.world(account, &self.region)
    }
}

fn no_such_entity(st: &mut State, operation: &'static str, what: String) -> AwsError {
    aws_error(st, "iam", operation, "NoSuchEntity", 404, what)
}

impl Customer {
    /// The named user of `account`, or IAM's NoSuchEntity.
    fn iam_user(
        st: &mut State,
        account: &str,
        operation: &'static str,
        user: &str,
    ) -> Result<IamUser, AwsError> {
        match st.iam.get(account).and_then(|w| w.users.get(user)).cloned() {
            Some(u) => Ok(u),
            None => Err(no_such_entity(
                st,
                operation,
                format!("The user with name {user} cannot be found."),
            )),
        }
    }

    fn iam_role(
        st: &mut State,
        account: &str,
        operation: &'static str,
        role: &str,
    ) -> Result<IamRole, AwsError> {
        match st.iam.get(account).and_then(|w| w.roles.get(role)).cloned() {
            Some(r) => Ok(r),
            None => Err(no_such_entity(
                st,
                operation,
                format!("The role with name {role} cannot be found."),
            )),
        }
    }
}

/// IAM: users, keys and roles of the session's account. Unknown users, keys, roles and
/// policies fail `NoSuchEntity` as IAM does; UpdateAccessKey changes only the approved key
/// of the approved user.
#[async_trait]
impl Iam for Customer {
    async fn list_users(&self) -> Result<Vec<IamUser>, AwsError> {
        self.call("ListUsers", "users", |st, account| {
            Ok(st
                .iam
                .get(account)
                .map(|w| {
                    w.users
                        .values()
                        .map(|u| IamUser {
                            tags: BTreeMap::new(),
                            ..u.clone()
                        })
                        .collect()
                })
                .unwrap_or_default())
        })
        .await
    }

    async fn list_user_tags(&self, user: &str) -> Result<BTreeMap<String, String>, AwsError> {
        self.call("ListUserTags", user, |st, account| {
            Ok(Self::iam_user(st, account, "ListUserTags", user)?.tags)
        })
        .await
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>, AwsError> {
        self.call("ListAccessKeys", user, |st, account| {
            Self::iam_user(st, account, "ListAccessKeys", user)?;
            Ok(st.iam[account]
                .keys
                .iter()
                .filter(|k| k.user == user)
                .cloned()
                .collect())
        })
        .await
    }

    async fn get_access_key_last_used(&self, access_key_id: &str) -> Result<KeyLastUsed, AwsError> {
        self.call("GetAccessKeyLastUsed", access_key_id, |st, account| {
            let world = st.iam.get(account);
            let known = world.is_some_and(|w| w.keys.iter().any(|k| k.id == access_key_id));
            if !known {
                // IAM answers AccessDenied for a key id it does not hold.
                return Err(aws_error(
                    st,
                    "iam",
                    "GetAccessKeyLastUsed",
                    "AccessDenied",
                    403,
                    "not authorized to perform: iam:GetAccessKeyLastUsed".into(),
                ));
            }
            Ok(world
                .and_then(|w| w.last_used.get(access_key_id).cloned())
                .unwrap_or_default())
        })
        .await
    }

    async fn deactivate_access_key(
        &self,
        approval: ApprovedKeyDeactivation,
    ) -> Result<(), AwsError> {
        let target = format!("{}/{} Inactive", approval.user(), approval.access_key_id());
        self.call("UpdateAccessKey", &target, |st, account| {
            Self::iam_user(st, account, "UpdateAccessKey", approval.user())?;
            let world = st.iam.get_mut(account).expect("the user's account exists");
            match world
                .keys
                .iter_mut()
                .find(|k| k.id == approval.access_key_id() && k.user == approval.user())
            {
                Some(key) => {
                    key.active = false;
                    Ok(())
                }
                None => Err(no_such_entity(
                    st,
                    "UpdateAccessKey",
                    format!(
                        "The Access Key with id {} cannot be found.",
                        approval.access_key_id()
                    ),
                )),
            }
        })
        .await
    }

    async fn get_role(&self, role_name: &str) -> Result<IamRole, AwsError> {
        self.call("GetRole", role_name, |st, account| {
            Self::iam_role(st, account, "GetRole", role_name)
        })
        .await
    }

    async fn list_role_policies(&self, role_name: &str) -> Result<Vec<String>, AwsError> {
        self.call("ListRolePolicies", role_name, |st, account| {
            Self::iam_role(st, account, "ListRolePolicies", role_name)?;
            Ok(st.iam[account]
                .inline_policies
                .keys()
                .filter(|(r, _)| r == role_name)
                .map(|(_, p)| p.clone())
                .collect())
        })
        .await
    }

    async fn get_role_policy(
        &self,
        role_name: &str,
        policy_name: &str,
    ) -> Result<serde_json::Value, AwsError> {
        let target = format!("{role_name}/{policy_name}");
        self.call("GetRolePolicy", &target, |st, account| {
            Self::iam_role(st, account, "GetRolePolicy", role_name)?;
            let key = (role_name.to_string(), policy_name.to_string());
            match st.iam[account].inline_policies.get(&key).cloned() {
                Some(doc) => Ok(doc),
                None => Err(no_such_entity(
                    st,
                    "GetRolePolicy",
                    format!("The role policy with name {policy_name} cannot be found."),
                )),
            }
        })
        .await
    }

    async fn list_attached_role_policies(&self, role_name: &str) -> Result<Vec<String>, AwsError> {
        self.call("ListAttachedRolePolicies", role_name, |st, account| {
            Self::iam_role(st, account, "ListAttachedRolePolicies", role_name)?;
            Ok(st.iam[account]
                .attached_policies
                .get(role_name)
                .cloned()
                .unwrap_or_default())
        })
        .await
    }

    async fn get_policy_default_version(&self, policy_arn: &str) -> Result<String, AwsError> {
        self.call("GetPolicy", policy_arn, |st, _| {
            if st.managed_policies.contains_key(policy_arn) {
                Ok("v1".to_string())
            } else {
                Err(no_such_entity(
                    st,
                    "GetPolicy",
                    format!("Policy {policy_arn} was not found."),
                ))
            }
        })
        .await
    }

    async fn get_policy_version(
        &self,
        policy_arn: &str,
        version_id: &str,
    ) -> Result<serde_json::Value, AwsError> {
        let target = format!("{policy_arn}#{version_id}");
        self.call("GetPolicyVersion", &target, |st, _| {
            match st.managed_policies.get(policy_arn).cloned() {
                Some(doc) if version_id == "v1" => Ok(doc),
                _ => Err(no_such_entity(
                    st,
                    "GetPolicyVersion",
                    format!("Policy {policy_arn} version {version_id} does not exist."),
                )),
            }
        })
        .await
    }
}

/// The account of the session behind `access_key_id`, or the error AWS gives for
/// credentials it does not accept.
fn authenticate(
    st: &mut State,
    access_key_id: &str,
    service: &'static str,
    operation: &'static str,
    now: Timestamp,
) -> Result<String, AwsError> {
    let (invalid, expired) = if service == "eks" {
        ("UnrecognizedClientException", "ExpiredTokenException")
    } else {
        ("InvalidClientTokenId", "ExpiredToken")
    };
    match st.sessions.get(access_key_id) {
        None => Err(aws_error(
            st,
            service,
            operation,
            invalid,
            403,
            "The security token included in the request is invalid.".into(),
        )),
        Some(s) if s.expires.is_some_and(|e| now >= e) => Err(aws_error(
            st,
            service,
            operation,
            expired,
            400,
            "The security token included in the request is expired".into(),
        )),
        Some(s) => Ok(s.account.clone()),
    }
}

#[async_trait]
impl Identity for Customer {
    async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        let key = self.access_key_id.clone();
        self.call("GetCallerIdentity", "caller", |st, account| {
            let arn = st
                .sessions
                .get(&key)
                .map(|s| s.arn.clone())
                .unwrap_or_default();
            Ok(match &st.caller_account_override {
                Some(other) => CallerIdentity {
                    arn: arn.replacen(&format!(":{account}:"), &format!(":{other}:"), 1),
                    account: other.clone(),
                },
                None => CallerIdentity {
                    account: account.to_string(),
                    arn,
                },
            })
        })
        .await
    }
}

#[async_trait]
impl Eks for Customer {
    /// ResourceNotFoundException for an unknown cluster.
    async fn describe_cluster(&self, name: &str) -> Result<EksCluster, AwsError> {
        const OP: &str = "DescribeCluster";
        self.call(OP, name, |st, account| {
            match self.world(st, account).clusters.get(name).cloned() {
                Some(c) => Ok(c),
                None => Err(no_cluster(st, OP, name)),
            }
        })
        .await
    }

    /// ResourceNotFoundException for an unknown cluster; names in order.
    async fn list_nodegroups(&self, cluster: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListNodegroups";
        self.call(OP, cluster, |st, account| {
            let w = self.world(st, account);
            if !w.clusters.contains_key(cluster) {
                return Err(no_cluster(st, OP, cluster));
            }
            Ok(w.nodegroups
                .keys()
                .filter(|(c, _)| c == cluster)
                .map(|(_, n)| n.clone())
                .collect())
        })
        .await
    }

    /// ResourceNotFoundException for an unknown cluster or nodegroup.
    async fn describe_nodegroup(
        &self,
        cluster: &str,
        nodegroup: &str,
    ) -> Result<Nodegroup, AwsError> {
        const OP: &str = "DescribeNodegroup";
        self.call(OP, &format!("{cluster}/{nodegroup}"), |st, account| {
            let w = self.world(st, account);
            if !w.clusters.contains_key(cluster) {
                return Err(no_cluster(st, OP, cluster));
            }
            match w
                .nodegroups
                .get(&(cluster.to_string(), nodegroup.to_string()))
                .cloned()
            {
                Some(ng) => Ok(ng),
                None => Err(no_nodegroup(st, OP, nodegroup)),
            }
        })
        .await
    }

    /// Sets the nodegroup's desired size. ResourceNotFoundException for an unknown cluster
    /// or nodegroup, ResourceInUseException when it is not ACTIVE,
    /// InvalidParameterException for a size outside its min and max; a repeated
    /// idempotency token succeeds without acting again.
    async fn update_nodegroup_size(
        &self,
        approval: ApprovedNodegroupScale,
    ) -> Result<(), AwsError> {
        const OP: &str = "UpdateNodegroupConfig";
        let (cluster, name, desired) =
            (approval.cluster(), approval.nodegroup(), approval.desired());
        let token = approval.idempotency_token().to_string();
        let target = format!("{cluster}/{name} desiredSize={desired}");
        self.call(OP, &target, |st, account| {
            if !token.is_empty() && st.applied_tokens.contains(&token) {
                return Ok(());
            }
            let w = self.world(st, account);
            if !w.clusters.contains_key(cluster) {
                return Err(no_cluster(st, OP, cluster));
            }
            let Some(ng) = w
                .nodegroups
                .get_mut(&(cluster.to_string(), name.to_string()))
            else {
                return Err(no_nodegroup(st, OP, name));
            };
            if ng.status.as_deref() != Some("ACTIVE") {
                let status = ng.status.clone().unwrap_or_default();
                return Err(aws_error(
                    st,
                    "eks",
                    OP,
                    "ResourceInUseException",
                    409,
                    format!("Nodegroup cannot be updated as it is currently in {status} state"),
                ));
            }
            let (min, max) = (ng.min_size.unwrap_or(0), ng.max_size.unwrap_or(i32::MAX));
            if !(min..=max).contains(&desired) {
                return Err(aws_error(
                    st,
                    "eks",
                    OP,
                    "InvalidParameterException",
                    400,
                    format!(
                        "desired size {desired} must be between the minimum {min} and maximum {max}"
                    ),
                ));
            }
            ng.desired_size = Some(desired);
            if !token.is_empty() {
                st.applied_tokens.insert(token);
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AutoScaling for Customer {
    /// The named groups that exist, in name order (unknown names are left out, as AWS
    /// does); no call at all for no names, as the SDK adapter makes none.
    async fn describe_groups(&self, names: &[String]) -> Result<Vec<AutoScalingGroup>, AwsError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        self.call(
            "DescribeAutoScalingGroups",
            &names.join(","),
            |st, account| {
                Ok(self
                    .world(st, account)
                    .groups
                    .values()
                    .filter(|g| names.contains(&g.name))
                    .cloned()
                    .collect())
            },
        )
        .await
    }

    /// The instance leaves its group, the group's desired capacity drops by one and the
    /// instance goes `shutting-down`. ValidationError when no group has the instance or the
    /// decrement would go below the group's minimum (AWS finds the group by instance; the
    /// approval's group only names the target).
    async fn terminate_instance(&self, approval: ApprovedTermination) -> Result<(), AwsError> {
        const OP: &str = "TerminateInstanceInAutoScalingGroup";
        let id = approval.instance_id();
        let target = format!("{}/{id}", approval.group());
        self.call(OP, &target, |st, account| {
            let w = self.world(st, account);
            let Some(group) = w.groups.values_mut().find(|g| g.instance_ids.iter().any(|i| i == id)) else {
                return Err(aws_error(
                    st,
                    "autoscaling",
                    OP,
                    "ValidationError",
                    400,
                    format!("Instance Id not found - No managed instance found for instance ID: {id}"),
                ));
            };
            if group.desired_capacity - 1 < group.min_size {
                let min = group.min_size;
                return Err(aws_error(
                    st,
                    "autoscaling",
                    OP,
                    "ValidationError",
                    400,
                    format!(
                        "Currently, desiredSize equals minSize ({min}). Terminating instance without replacement will violate group's min size constraint."
                    ),
                ));
            }
            group.instance_ids.retain(|i| i != id);
            group.instance_states.remove(id);
            group.desired_capacity -= 1;
            if let Some(instance) = w.instances.get_mut(id) {
                instance.state = Some("shutting-down".into());
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Ec2 for Customer {
    /// Instances tagged `kubernetes.io/cluster/<cluster>` (any value) that are pending,
    /// running, stopping or stopped, by id.
    async fn describe_cluster_instances(&self, cluster: &str) -> Result<Vec<Instance>, AwsError> {
        let tag = format!("kubernetes.io/cluster/{cluster}");
        self.call(
            "DescribeInstances",
            &format!("tag-key={tag}"),
            |st, account| {
                Ok(self
                    .world(st, account)
                    .instances
                    .values()
                    .filter(|i| i.tags.contains_key(&tag))
                    .filter(|i| {
                        i.state
                            .as_deref()
                            .is_some_and(|s| LISTED_STATES.contains(&s))
                    })
                    .cloned()
                    .collect())
            },
        )
        .await
    }

    /// The instance in any state; None for an id EC2 does not know, which EC2 answers with
    /// InvalidInstanceID.NotFound (reported to the observer as such, as the SDK adapter does).
    async fn describe_instance(&self, id: &str) -> Result<Option<Instance>, AwsError> {
        const OP: &str = "DescribeInstances";
        let out = self
            .call(OP, id, |st, account| {
                match self.world(st, account).instances.get(id).cloned() {
                    Some(i) => Ok(i),
                    None => Err(aws_error(
                        st,
                        "ec2",
                        OP,
                        "InvalidInstanceID.NotFound",
                        400,
                        format!("The instance ID '{id}' does not exist"),
                    )),
                }
            })
            .await;
        match out {
            Ok(i) => Ok(Some(i)),
            Err(e) if e.code.as_deref() == Some("InvalidInstanceID.NotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The shapes of the named types, in the order asked (repeats once); InvalidInstanceType
    /// when one is not in the catalogue; no call at all for no names.
    async fn describe_instance_types(
        &self,
        types: &[String],
    ) -> Result<Vec<InstanceTypeShape>, AwsError> {
        const OP: &str = "DescribeInstanceTypes";
        if types.is_empty() {
            return Ok(Vec::new());
        }
        self.call(OP, &types.join(","), |st, _| {
            let missing: Vec<&str> = types
                .iter()
                .filter(|t| !st.instance_types.contains_key(*t))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                let message = format!(
                    "The following supplied instance types do not exist: [{}]",
                    missing.join(", ")
                );
                return Err(aws_error(
                    st,
                    "ec2",
                    OP,
                    "InvalidInstanceType",
                    400,
                    message,
                ));
            }
            let mut seen = BTreeSet::new();
            Ok(types
                .iter()
                .filter(|t| seen.insert(t.as_str()))
                .map(|t| st.instance_types[t].clone())
                .collect())
        })
        .await
    }

    /// The latest price per type, zone and product description among the world's history
    /// entries that match the named types, zones (any when none) and product descriptions
    /// and took effect before `start_time` or later (as EC2 answers, the price in effect at
    /// `start_time` is included); no call for no types.
    async fn describe_spot_price_history(
        &self,
        types: &[String],
        zones: &[String],
        product_descriptions: &[String],
        start_time: Timestamp,
    ) -> Result<Vec<SpotPrice>, AwsError> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let _ = start_time;
        self.call(
            "DescribeSpotPriceHistory",
            &types.join(","),
            |st, account| {
                let mut latest: BTreeMap<(String, String, String), SpotPrice> = BTreeMap::new();
                for p in &self.world(st, account).spot_prices {
                    if !types.contains(&p.instance_type)
                        || !(zones.is_empty() || zones.contains(&p.availability_zone))
                        || !product_descriptions.contains(&p.product_description)
                    {
                        continue;
                    }
                    let key = (
                        p.instance_type.clone(),
                        p.availability_zone.clone(),
                        p.product_description.clone(),
                    );
                    if latest
                        .get(&key)
                        .is_none_or(|old| old.timestamp < p.timestamp)
                    {
                        latest.insert(key, p.clone());
                    }
                }
                Ok(latest.into_values().collect())
            },
        )
        .await
    }

    /// The region's Reserved Instances in the given states, in the order they were put.
    async fn describe_reserved_instances(
        &self,
        states: &[&str],
    ) -> Result<Vec<ReservedInstance>, AwsError> {
        self.call(
            "DescribeReservedInstances",
            &format!("state={}", states.join(",")),
            |st, account| {
                Ok(self
                    .world(st, account)
                    .reserved_instances
                    .iter()
                    .filter(|r| states.contains(&r.state.as_str()))
                    .cloned()
                    .collect())
            },
        )
        .await
    }
}

#[async_trait]
impl crate::aws::SavingsPlans for Customer {
    /// The account's plans in the given states, in the order they were put.
    async fn describe_savings_plans(&self, states: &[&str]) -> Result<Vec<SavingsPlan>, AwsError> {
        self.call(
            "DescribeSavingsPlans",
            &format!("states={}", states.join(",")),
            |st, account| {
                Ok(st
                    .savings_plans
                    .get(account)
                    .into_iter()
                    .flatten()
                    .map(|(p, _)| p)
                    .filter(|p| states.contains(&p.state.as_str()))
                    .cloned()
                    .collect())
            },
        )
        .await
    }

    /// The plan's rates for the named types in `region`; ResourceNotFoundException for a
    /// plan the account does not have; no call for no types.
    async fn describe_savings_plan_rates(
        &self,
        savings_plan_id: &str,
        types: &[String],
        region: &str,
    ) -> Result<Vec<SavingsPlanRate>, AwsError> {
        const OP: &str = "DescribeSavingsPlanRates";
        if types.is_empty() {
            return Ok(Vec::new());
        }
        self.call(OP, savings_plan_id, |st, account| {
            let found = st
                .savings_plans
                .get(account)
                .and_then(|plans| plans.iter().find(|(p, _)| p.id == savings_plan_id))
                .map(|(_, rates)| rates.clone());
            match found {
                Some(rates) => Ok(rates
                    .into_iter()
                    .filter(|r| types.contains(&r.instance_type) && r.region == region)
                    .collect()),
                None => Err(aws_error(
                    st,
                    "savingsplans",
                    OP,
                    "ResourceNotFoundException",
                    404,
                    format!("Savings Plan {savings_plan_id} not found"),
                )),
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------- helpers

/// Append the record of one call; returns the request id its answer carried.
#[allow(clippy::too_many_arguments)]
fn record<T>(
    st: &mut State,
    service: &'static str,
    operation: &'static str,
    account: &str,
    region: &str,
    target: &str,
    mutating: bool,
    result: &Result<T, AwsError>,
) -> Option<String> {
    let (outcome, request_id) = match result {
        Ok(_) => ("success", Some(st.request_id())),
        Err(e) => (e.kind.as_str(), e.request_id.clone()),
    };
    st.calls.push(CallRecord {
        service,
        operation,
        account: account.to_string(),
        region: region.to_string(),
        target: target.to_string(),
        mutating,
        outcome: outcome.to_string(),
        request_id: request_id.clone(),
    });
    request_id
}

impl FakeAws {
    /// Let GetProducts answer `usd` per hour on demand for `instance_type` running `os`
    /// (`kubernetes.io/os` value: `linux` or `windows`) in `region`.
    ///
    /// # Panics
    /// When `os` is neither (a test bug).
    pub fn put_on_demand_price(&self, region: &str, os: &str, instance_type: &str, usd: f64) {
        let os = PriceListOs::from_node_os(os)
            .unwrap_or_else(|| panic!("the Price List fake knows linux and windows, not {os:?}"));
        self.lock()
            .price_lists
            .entry((region.to_string(), os))
            .or_default()
            .insert(instance_type.to_string(), usd);
    }

    /// pricing:GetProducts with the operator's own identity (see the module documentation).
    pub fn pricing(&self) -> Arc<dyn Pricing> {
        Arc::new(OperatorPricing(self.arc()))
    }
}

/// The Price List API with the operator's identity.
struct OperatorPricing(Arc<FakeAws>);

#[async_trait]
impl Pricing for OperatorPricing {
    async fn on_demand_prices(
        &self,
        region: &str,
        os: PriceListOs,
        observer: &dyn CallObserver,
    ) -> Result<OnDemandPriceList, AwsError> {
        const OP: &str = "GetProducts";
        self.0.pause(OP).await;
        let target = format!("{region}/{}", os.attribute());
        let (result, request_id) = {
            let mut st = self.0.lock();
            let result = match st.take_failure("pricing", OP) {
                Some(e) => Err(e),
                None => Ok(OnDemandPriceList {
                    hourly_usd: st
                        .price_lists
                        .get(&(region.to_string(), os))
                        .cloned()
                        .unwrap_or_default(),
                    ..OnDemandPriceList::default()
                }),
            };
            let request_id = record(
                &mut st,
                "pricing",
                OP,
                OPERATOR_ACCOUNT,
                crate::aws::price_list::DEFAULT_ENDPOINT_REGION,
                &target,
                false,
                &result,
            );
            (result, request_id)
        };
        let outcome = match &result {
            Ok(_) => "success",
            Err(e) => e.kind.as_str(),
        };
        observer.call(
            "pricing",
            OP,
            &target,
            outcome,
            request_id.as_deref(),
            false,
        );
        result
    }
}

/// An error as AWS would send it, with a request id.
fn aws_error(
    st: &mut State,
    service: &'static str,
    operation: &'static str,
    code: &str,
    status: u16,
    message: String,
) -> AwsError {
    let request_id = st.request_id();
    AwsError::new(
        service,
        operation,
        Some(code.to_string()),
        Some(message),
        Some(status),
        Some(request_id),
    )
}

fn no_cluster(st: &mut State, operation: &'static str, name: &str) -> AwsError {
    let message = format!("No cluster found for name: {name}.");
    aws_error(
        st,
        "eks",
        operation,
        "ResourceNotFoundException",
        404,
        message,
    )
}

fn no_nodegroup(st: &mut State, operation: &'static str, name: &str) -> AwsError {
    let message = format!("No node group found for name: {name}.");
    aws_error(
        st,
        "eks",
        operation,
        "ResourceNotFoundException",
        404,
        message,
    )
}

/// An injected error of `kind`: a code and status the service uses for it.
fn error_of_kind(
    service: &'static str,
    operation: &'static str,
    kind: AwsErrorKind,
    request_id: String,
) -> AwsError {
    let (code, status) = match (kind, service) {
        (AwsErrorKind::AccessDenied, "eks" | "savingsplans") => ("AccessDeniedException", 403),
        (AwsErrorKind::Throttled, "savingsplans") => ("ThrottlingException", 429),
        (AwsErrorKind::Unavailable, "savingsplans") => ("InternalServerException", 500),
        (AwsErrorKind::Other, "savingsplans") => ("ValidationException", 400),
        (AwsErrorKind::AccessDenied, "ec2") => ("UnauthorizedOperation", 403),
        (AwsErrorKind::AccessDenied, _) => ("AccessDenied", 403),
        (AwsErrorKind::InvalidCredentials, "eks") => ("ExpiredTokenException", 403),
        (AwsErrorKind::InvalidCredentials, _) => ("ExpiredToken", 400),
        (AwsErrorKind::NotFound, _) => ("ResourceNotFoundException", 404),
        (AwsErrorKind::Throttled, "eks") => ("ThrottlingException", 429),
        (AwsErrorKind::Throttled, "ec2") => ("RequestLimitExceeded", 503),
        (AwsErrorKind::Throttled, _) => ("Throttling", 400),
        (AwsErrorKind::Unavailable, "eks") => ("ServerException", 500),
        (AwsErrorKind::Unavailable, "ec2") => ("InternalError", 500),
        (AwsErrorKind::Unavailable, _) => ("InternalFailure", 500),
        (AwsErrorKind::Other, "eks") => ("InvalidParameterException", 400),
        (AwsErrorKind::Other, "ec2") => ("InvalidParameterValue", 400),
        (AwsErrorKind::Other, _) => ("ValidationError", 400),
    };
    AwsError::new(
        service,
        operation,
        Some(code.to_string()),
        Some(format!("injected {} failure", kind.as_str())),
        Some(status),
        Some(request_id),
    )
}

/// `(service, mutating)` of a served operation.
fn spec_of(operation: &'static str) -> (&'static str, bool) {
    OPERATIONS
        .iter()
        .find(|(_, op, _)| *op == operation)
        .map(|(service, _, mutating)| (*service, *mutating))
        .expect("the fake serves only the operations it lists")
}

fn known_operation(operation: &str) -> &'static str {
    OPERATIONS
        .iter()
        .find(|(_, op, _)| *op == operation)
        .map(|(_, op, _)| *op)
        .unwrap_or_else(|| {
            let known: Vec<&str> = OPERATIONS.iter().map(|(_, op, _)| *op).collect();
            panic!("the fake has no operation {operation:?}; known: {known:?}")
        })
}

/// The account of `arn:aws:iam::<account>:role/<name>`.
fn account_of_arn(arn: &str) -> Option<String> {
    let account = arn.split(':').nth(4)?;
    (!account.is_empty()).then(|| account.to_string())
}

/// An access key id as STS issues them for sessions: ASIA and 16 characters.
fn access_key_id(serial: u64) -> String {
    format!("ASIA{serial:016X}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::NoAudit;
    use crate::automation::guard::{self, Approval, Evidence, Mutation};
    use crate::aws::{TAG_CLUSTER, TAG_MANAGED};
    use crate::testing::ManualClock;

    const A: &str = "111122223333";
    const B: &str = "444455556666";
    const REGION: &str = "eu-west-1";
    const ROLE: &str = "arn:aws:iam::111122223333:role/crossguard-access";
    const EXTERNAL_ID: &str = "0123456789abcdef0123456789abcdef";

    /// Service, operation, target, outcome, request id and mutating of one reported call.
    type Heard = (String, String, String, String, Option<String>, bool);

    /// What an observer was told, one entry per call.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Heard>>);

    impl CallObserver for Recorder {
        fn call(
            &self,
            service: &str,
            operation: &str,
            target: &str,
            outcome: &str,
            request_id: Option<&str>,
            mutating: bool,
        ) {
            self.0.lock().unwrap().push((
                service.into(),
                operation.into(),
                target.into(),
                outcome.into(),
                request_id.map(str::to_string),
                mutating,
            ));
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Account A in REGION: cluster prod with nodegroup ng (group asg: i-1..i-3, minimum 1),
    /// all managed for prod; i-9 of another cluster; the m5.large shape. Account B has a
    /// cluster prod too.
    fn seeded() -> (Arc<ManualClock>, Arc<FakeAws>) {
        let clock = ManualClock::at(1_800_000_000);
        let aws = FakeAws::new(clock.clone());
        aws.add_role(ROLE, EXTERNAL_ID);
        let managed = tags(&[(TAG_MANAGED, "true"), (TAG_CLUSTER, "prod")]);
        let cluster = |name: &str| EksCluster {
            name: name.into(),
            status: Some("ACTIVE".into()),
            ..Default::default()
        };
        aws.put_cluster(A, REGION, cluster("prod"));
        aws.put_cluster(B, REGION, cluster("prod"));
        aws.put_nodegroup(
            A,
            REGION,
            Nodegroup {
                name: "ng".into(),
                cluster_name: "prod".into(),
                status: Some("ACTIVE".into()),
                tags: managed.clone(),
                auto_scaling_groups: vec!["asg".into()],
                min_size: Some(1),
                max_size: Some(6),
                desired_size: Some(3),
                instance_types: vec!["m5.large".into()],
            },
        );
        let ids: Vec<String> = (1..=3).map(|i| format!("i-{i}")).collect();
        aws.put_group(
            A,
            REGION,
            AutoScalingGroup {
                name: "asg".into(),
                tags: managed.clone(),
                min_size: 1,
                max_size: 6,
                desired_capacity: 3,
                instance_ids: ids.clone(),
                instance_states: ids
                    .iter()
                    .map(|id| (id.clone(), "InService".to_string()))
                    .collect(),
            },
        );
        let mut node_tags = managed.clone();
        node_tags.insert("kubernetes.io/cluster/prod".into(), "owned".into());
        for id in ids {
            aws.put_instance(
                A,
                REGION,
                Instance {
                    id,
                    instance_type: Some("m5.large".into()),
                    state: None,
                    tags: node_tags.clone(),
                },
            );
        }
        aws.put_instance(
            A,
            REGION,
            Instance {
                id: "i-9".into(),
                state: Some("running".into()),
                tags: tags(&[("kubernetes.io/cluster/staging", "owned")]),
                ..Default::default()
            },
        );
        aws.put_instance_type(InstanceTypeShape {
            name: "m5.large".into(),
            vcpus: 2,
            memory_mib: 8192,
            architecture: "amd64".into(),
            max_pods: Some(29),
        });
        (clock, aws)
    }

    fn request(role_arn: &str, external_id: &str, duration_seconds: i32) -> AssumeRoleRequest {
        AssumeRoleRequest {
            role_arn: role_arn.into(),
            external_id: external_id.into(),
            session_name: "crossguard@team-a.acme".into(),
            source_identity: "crossguard".into(),
            duration_seconds,
        }
    }

    fn termination(aws: &FakeAws, instance: &str) -> ApprovedTermination {
        let w = aws.with_world(A, REGION, |w| w.clone());
        let evidence = Evidence {
            group: w.groups.get("asg").cloned(),
            instance: w.instances.get(instance).cloned(),
            nodegroup: None,
            group_has_nodegroup: false,
        };
        let mutation = Mutation::TerminateInstance {
            group: "asg".into(),
            instance_id: instance.into(),
        };
        match guard::check("prod", &mutation, &evidence) {
            Ok(Approval::Terminate(a)) => a,
            other => panic!("the guard should approve: {other:?}"),
        }
    }

    fn scale_in(aws: &FakeAws) -> ApprovedNodegroupScale {
        let w = aws.with_world(A, REGION, |w| w.clone());
        let ng = w.nodegroups[&("prod".to_string(), "ng".to_string())].clone();
        let from = ng.desired_size.unwrap();
        let evidence = Evidence {
            group: w.groups.get("asg").cloned(),
            instance: None,
            nodegroup: Some(ng),
            group_has_nodegroup: true,
        };
        let mutation = Mutation::ScaleNodegroup {
            nodegroup: "ng".into(),
            from,
            to: from - 1,
            because_of: "i-1".into(),
        };
        match guard::check("prod", &mutation, &evidence) {
            Ok(Approval::ScaleNodegroup(a)) => a,
            other => panic!("the guard should approve: {other:?}"),
        }
    }

    fn no_audit() -> Arc<dyn CallObserver> {
        Arc::new(NoAudit)
    }

    #[tokio::test]
    async fn assume_role_needs_a_known_role_and_its_external_id() {
        let (clock, aws) = seeded();
        let sts = aws.operator_sts();
        let denied = |r: Result<SessionCredentials, AwsError>| {
            let e = r.unwrap_err();
            assert_eq!(
                (e.kind, e.code.as_deref()),
                (AwsErrorKind::AccessDenied, Some("AccessDenied"))
            );
        };
        denied(
            sts.assume_role(&request(ROLE, "wrong-external-id", 3600))
                .await,
        );
        denied(sts.assume_role(&request(ROLE, "", 3600)).await);
        let unknown = "arn:aws:iam::444455556666:role/crossguard-access";
        denied(sts.assume_role(&request(unknown, EXTERNAL_ID, 3600)).await);
        // The default MaxSessionDuration is one hour.
        let e = sts
            .assume_role(&request(ROLE, EXTERNAL_ID, 7200))
            .await
            .unwrap_err();
        assert_eq!(e.code.as_deref(), Some("ValidationError"));

        let c = sts
            .assume_role(&request(ROLE, EXTERNAL_ID, 900))
            .await
            .unwrap();
        assert_eq!(c.lifetime, Duration::from_secs(900));
        assert_eq!(c.expiration.as_second(), clock.now().as_second() + 900);
        let outcomes: Vec<_> = aws.calls().into_iter().map(|c| c.outcome).collect();
        assert_eq!(
            outcomes,
            [
                "access_denied",
                "access_denied",
                "access_denied",
                "other",
                "success"
            ]
        );
        assert_eq!(aws.assume_role_requests().len(), 5);
        assert_eq!(
            aws.calls()[2].account,
            B,
            "AssumeRole is recorded in the role's account"
        );

        // The session acts in the role's account, as the role's session.
        let clients = aws.customer(A, &c, REGION, no_audit());
        let me = clients.identity.caller_identity().await.unwrap();
        assert_eq!(me.account, A);
        assert_eq!(
            me.arn,
            "arn:aws:sts::111122223333:assumed-role/crossguard-access/crossguard@team-a.acme"
        );
        // The customer changes the trust policy's ExternalId: the old one stops working.
        aws.add_role(ROLE, "a-new-external-id");
        denied(sts.assume_role(&request(ROLE, EXTERNAL_ID, 900)).await);
    }

    #[tokio::test]
    async fn credentials_act_in_their_own_account_until_they_expire() {
        let (clock, aws) = seeded();
        let c = aws
            .operator_sts()
            .assume_role(&request(ROLE, EXTERNAL_ID, 900))
            .await
            .unwrap();
        let clients = aws.customer(A, &c, REGION, no_audit());
        aws.with_world(B, REGION, |w| {
            w.cluster_mut("prod").version = Some("1.30".into())
        });
        assert_eq!(
            clients.eks.describe_cluster("prod").await.unwrap().version,
            None
        );
        // Nothing of account A in another region.
        let elsewhere = aws.customer(A, &c, "us-west-2", no_audit());
        let e = elsewhere.eks.describe_cluster("prod").await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::NotFound);

        aws.override_caller_account(Some(B));
        let me = clients.identity.caller_identity().await.unwrap();
        assert_eq!(me.account, B);
        assert!(
            me.arn
                .starts_with("arn:aws:sts::444455556666:assumed-role/"),
            "{}",
            me.arn
        );
        aws.override_caller_account(None);
        assert_eq!(clients.identity.caller_identity().await.unwrap().account, A);

        clock.advance(Duration::from_secs(900));
        let e = clients.eks.describe_cluster("prod").await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (
                AwsErrorKind::InvalidCredentials,
                Some("ExpiredTokenException")
            )
        );
        let forged = SessionCredentials {
            access_key_id: "ASIANEVERISSUED00000".into(),
            secret_access_key: crate::seal::Sealed::from("s"),
            session_token: crate::seal::Sealed::from("t"),
            expiration: clock.now(),
            lifetime: Duration::from_secs(900),
        };
        let e = aws
            .customer(A, &forged, REGION, no_audit())
            .ec2
            .describe_instance("i-1")
            .await
            .unwrap_err();
        assert_eq!(e.code.as_deref(), Some("InvalidClientTokenId"));
        assert_eq!(
            aws.calls().last().unwrap().account,
            "",
            "no account for bad credentials"
        );
    }

    #[tokio::test]
    async fn describes_read_the_world_and_unknown_names_fail_as_aws_does() {
        let (_, aws) = seeded();
        let c = aws.clients(A, REGION, no_audit());
        assert_eq!(c.eks.list_nodegroups("prod").await.unwrap(), ["ng"]);
        assert_eq!(
            c.eks
                .describe_nodegroup("prod", "ng")
                .await
                .unwrap()
                .desired_size,
            Some(3)
        );
        for e in [
            c.eks.describe_cluster("nope").await.unwrap_err(),
            c.eks.list_nodegroups("nope").await.unwrap_err(),
            c.eks.describe_nodegroup("nope", "ng").await.unwrap_err(),
            c.eks.describe_nodegroup("prod", "nope").await.unwrap_err(),
        ] {
            assert_eq!(e.code.as_deref(), Some("ResourceNotFoundException"), "{e}");
            assert_eq!(e.kind, AwsErrorKind::NotFound);
        }
        // Auto Scaling leaves unknown names out; no names, no call.
        let groups = c
            .autoscaling
            .describe_groups(&["nope".into(), "asg".into()])
            .await
            .unwrap();
        assert_eq!(groups.len(), 1);
        let before = aws.calls().len();
        assert!(c.autoscaling.describe_groups(&[]).await.unwrap().is_empty());
        assert!(c.ec2.describe_instance_types(&[]).await.unwrap().is_empty());
        assert_eq!(aws.calls().len(), before);
        // Only the cluster's instances, only in listed states; one by id in any state.
        let ids = |v: Vec<Instance>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(
            ids(c.ec2.describe_cluster_instances("prod").await.unwrap()),
            ["i-1", "i-2", "i-3"]
        );
        aws.with_world(A, REGION, |w| {
            w.instance_mut("i-2").state = Some("terminated".into())
        });
        assert_eq!(
            ids(c.ec2.describe_cluster_instances("prod").await.unwrap()),
            ["i-1", "i-3"]
        );
        let i2 = c.ec2.describe_instance("i-2").await.unwrap().unwrap();
        assert_eq!(i2.state.as_deref(), Some("terminated"));
        assert_eq!(c.ec2.describe_instance("i-404").await.unwrap(), None);
        assert_eq!(aws.calls().last().unwrap().outcome, "other");
        // Instance types: in the order asked; an unknown one fails the call.
        let shapes = c
            .ec2
            .describe_instance_types(&["m5.large".into(), "m5.large".into()])
            .await
            .unwrap();
        assert_eq!(shapes.len(), 1);
        assert_eq!(shapes[0].max_pods, Some(29));
        let e = c
            .ec2
            .describe_instance_types(&["m5.large".into(), "x9.huge".into()])
            .await
            .unwrap_err();
        assert_eq!(e.code.as_deref(), Some("InvalidInstanceType"));
    }

    #[tokio::test]
    async fn termination_changes_the_world_as_auto_scaling_does() {
        let (_, aws) = seeded();
        let c = aws.clients(A, REGION, no_audit());
        c.autoscaling
            .terminate_instance(termination(&aws, "i-2"))
            .await
            .unwrap();
        let g = &c
            .autoscaling
            .describe_groups(&["asg".into()])
            .await
            .unwrap()[0];
        assert_eq!(g.instance_ids, ["i-1", "i-3"]);
        assert_eq!(g.desired_capacity, 2);
        assert!(!g.instance_states.contains_key("i-2"));
        let i2 = c.ec2.describe_instance("i-2").await.unwrap().unwrap();
        assert_eq!(i2.state.as_deref(), Some("shutting-down"));
        assert!(
            !c.ec2
                .describe_cluster_instances("prod")
                .await
                .unwrap()
                .iter()
                .any(|i| i.id == "i-2")
        );

        // An instance no group has, or a decrement below the minimum: ValidationError, no effect.
        let approval = termination(&aws, "i-1");
        aws.with_world(A, REGION, |w| {
            w.group_mut("asg").instance_ids.retain(|i| i != "i-1");
        });
        let e = c
            .autoscaling
            .terminate_instance(approval)
            .await
            .unwrap_err();
        assert_eq!(
            (e.code.as_deref(), e.outcome_unknown),
            (Some("ValidationError"), false)
        );
        let approval = termination(&aws, "i-3");
        aws.with_world(A, REGION, |w| w.group_mut("asg").min_size = 2);
        let e = c
            .autoscaling
            .terminate_instance(approval)
            .await
            .unwrap_err();
        assert!(e.message.contains("min size"), "{e}");
        let g = aws.with_world(A, REGION, |w| w.group_mut("asg").clone());
        assert_eq!((g.desired_capacity, g.instance_ids.len()), (2, 1));
        assert_eq!(aws.mutating_calls().len(), 3);
        assert_eq!(aws.mutating_calls()[0].target, "asg/i-2");
    }

    #[tokio::test]
    async fn nodegroup_update_sets_the_desired_size_once_per_token() {
        let (_, aws) = seeded();
        let c = aws.clients(A, REGION, no_audit());
        c.eks
            .update_nodegroup_size(scale_in(&aws).with_request_token("run-1"))
            .await
            .unwrap();
        let ng = c.eks.describe_nodegroup("prod", "ng").await.unwrap();
        assert_eq!(ng.desired_size, Some(2));
        // Auto Scaling's side is left to the test: the group still wants 3.
        let g = aws.with_world(A, REGION, |w| w.group_mut("asg").clone());
        assert_eq!(g.desired_capacity, 3);

        // The same request again (same token) is applied once.
        aws.with_world(A, REGION, |w| {
            w.nodegroup_mut("prod", "ng").desired_size = Some(3)
        });
        c.eks
            .update_nodegroup_size(scale_in(&aws).with_request_token("run-1"))
            .await
            .unwrap();
        let ng = c.eks.describe_nodegroup("prod", "ng").await.unwrap();
        assert_eq!(ng.desired_size, Some(3));

        // Changed between the guard and the call: not ACTIVE, or the size below the minimum.
        let approval = scale_in(&aws);
        aws.with_world(A, REGION, |w| {
            w.nodegroup_mut("prod", "ng").status = Some("UPDATING".into())
        });
        let e = c.eks.update_nodegroup_size(approval).await.unwrap_err();
        assert_eq!(e.code.as_deref(), Some("ResourceInUseException"));
        aws.with_world(A, REGION, |w| {
            w.nodegroup_mut("prod", "ng").status = Some("ACTIVE".into())
        });
        let approval = scale_in(&aws);
        aws.with_world(A, REGION, |w| {
            w.nodegroup_mut("prod", "ng").min_size = Some(3)
        });
        let e = c.eks.update_nodegroup_size(approval).await.unwrap_err();
        assert_eq!(e.code.as_deref(), Some("InvalidParameterException"));
        let ng = c.eks.describe_nodegroup("prod", "ng").await.unwrap();
        assert_eq!(ng.desired_size, Some(3));
        let targets: Vec<_> = aws.mutating_calls().into_iter().map(|c| c.target).collect();
        assert_eq!(targets, vec!["prod/ng desiredSize=2"; 4]);
    }

    #[tokio::test]
    async fn injected_failures_fail_exactly_the_next_calls_without_effect() {
        let (_, aws) = seeded();
        let c = aws.clients(A, REGION, no_audit());
        aws.fail("DescribeCluster", AwsErrorKind::Throttled, 2);
        for _ in 0..2 {
            let e = c.eks.describe_cluster("prod").await.unwrap_err();
            assert_eq!(e.kind, AwsErrorKind::Throttled);
        }
        c.eks.describe_cluster("prod").await.unwrap();

        aws.fail(
            "TerminateInstanceInAutoScalingGroup",
            AwsErrorKind::Unavailable,
            usize::MAX,
        );
        for _ in 0..3 {
            let e = c
                .autoscaling
                .terminate_instance(termination(&aws, "i-1"))
                .await
                .unwrap_err();
            assert!(e.outcome_unknown, "a 5xx may hide an effect");
        }
        let g = aws.with_world(A, REGION, |w| w.group_mut("asg").clone());
        assert_eq!(
            (g.desired_capacity, g.instance_ids.len()),
            (3, 3),
            "no effect"
        );
        aws.clear_failures();
        c.autoscaling
            .terminate_instance(termination(&aws, "i-1"))
            .await
            .unwrap();
        let outcomes: Vec<_> = aws
            .mutating_calls()
            .into_iter()
            .map(|c| c.outcome)
            .collect();
        assert_eq!(
            outcomes,
            ["unavailable", "unavailable", "unavailable", "success"]
        );

        // A given error is returned as is; `times = 0` disarms.
        let mut given = error_of_kind("ec2", "DescribeInstances", AwsErrorKind::Other, "r".into());
        given.message = "given".into();
        aws.fail("DescribeInstances", given, 1);
        let e = c.ec2.describe_cluster_instances("prod").await.unwrap_err();
        assert_eq!(e.message, "given");
        aws.fail("DescribeInstances", AwsErrorKind::Throttled, 1);
        aws.fail("DescribeInstances", AwsErrorKind::Throttled, 0);
        c.ec2.describe_cluster_instances("prod").await.unwrap();
    }

    #[test]
    fn an_injected_kind_is_an_error_of_that_kind_for_every_operation() {
        let kinds = [
            AwsErrorKind::AccessDenied,
            AwsErrorKind::InvalidCredentials,
            AwsErrorKind::NotFound,
            AwsErrorKind::Throttled,
            AwsErrorKind::Unavailable,
            AwsErrorKind::Other,
        ];
        for (service, operation, _) in OPERATIONS {
            for kind in kinds {
                let e = error_of_kind(service, operation, kind, "r".into());
                assert_eq!(
                    e.kind, kind,
                    "{service}:{operation} {kind:?} as {:?}",
                    e.code
                );
                assert_eq!((e.service, e.operation), (*service, *operation));
            }
        }
    }

    #[test]
    #[should_panic(expected = "no operation \"DescribeClusters\"")]
    fn a_misspelt_operation_is_refused() {
        let (_, aws) = seeded();
        aws.fail("DescribeClusters", AwsErrorKind::Throttled, 1);
    }

    #[tokio::test]
    async fn a_delayed_call_acts_on_the_world_as_it_is_when_it_lands() {
        let (_, aws) = seeded();
        let c = aws.clients(A, REGION, no_audit());
        aws.delay("DescribeCluster", Duration::from_millis(300));
        let started = std::time::Instant::now();
        let call = tokio::spawn(async move { c.eks.describe_cluster("prod").await });
        // While it is in flight, the cluster goes away.
        aws.with_world(A, REGION, |w| w.clusters.clear());
        let e = call.await.unwrap().unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::NotFound);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(aws.calls_of("DescribeCluster").len() == 1);
    }

    /// Service, operation, target, outcome and mutating as `aws/sdk.rs` reports them.
    #[tokio::test]
    async fn the_observer_hears_what_the_sdk_adapter_would_say() {
        let (_, aws) = seeded();
        let recorder = Arc::new(Recorder::default());
        let c = aws.clients(A, REGION, recorder.clone());
        c.identity.caller_identity().await.unwrap();
        c.eks.describe_cluster("prod").await.unwrap();
        c.eks.describe_cluster("nope").await.unwrap_err();
        c.eks.list_nodegroups("prod").await.unwrap();
        c.eks.describe_nodegroup("prod", "ng").await.unwrap();
        c.eks.update_nodegroup_size(scale_in(&aws)).await.unwrap();
        c.autoscaling
            .describe_groups(&["asg".into(), "other".into()])
            .await
            .unwrap();
        aws.fail(
            "TerminateInstanceInAutoScalingGroup",
            AwsErrorKind::Throttled,
            1,
        );
        c.autoscaling
            .terminate_instance(termination(&aws, "i-3"))
            .await
            .unwrap_err();
        c.ec2.describe_cluster_instances("prod").await.unwrap();
        c.ec2.describe_instance("i-404").await.unwrap();
        c.ec2
            .describe_instance_types(&["m5.large".into()])
            .await
            .unwrap();
        let heard = recorder.0.lock().unwrap().clone();
        let expected = [
            ("sts", "GetCallerIdentity", "caller", "success", false),
            ("eks", "DescribeCluster", "prod", "success", false),
            ("eks", "DescribeCluster", "nope", "not_found", false),
            ("eks", "ListNodegroups", "prod", "success", false),
            ("eks", "DescribeNodegroup", "prod/ng", "success", false),
            (
                "eks",
                "UpdateNodegroupConfig",
                "prod/ng desiredSize=2",
                "success",
                true,
            ),
            (
                "autoscaling",
                "DescribeAutoScalingGroups",
                "asg,other",
                "success",
                false,
            ),
            (
                "autoscaling",
                "TerminateInstanceInAutoScalingGroup",
                "asg/i-3",
                "throttled",
                true,
            ),
            (
                "ec2",
                "DescribeInstances",
                "tag-key=kubernetes.io/cluster/prod",
                "success",
                false,
            ),
            ("ec2", "DescribeInstances", "i-404", "other", false),
            ("ec2", "DescribeInstanceTypes", "m5.large", "success", false),
        ];
        let said: Vec<_> = heard
            .iter()
            .map(|(s, o, t, out, _, m)| (s.as_str(), o.as_str(), t.as_str(), out.as_str(), *m))
            .collect();
        assert_eq!(said, expected);
        assert!(
            heard.iter().all(|h| h.4.is_some()),
            "every answer carries a request id"
        );
        // The records say the same, with the account.
        let records = aws.calls();
        assert_eq!(records.len(), expected.len());
        for (r, h) in records.iter().zip(&heard) {
            assert_eq!(
                (r.service, r.operation, &r.target),
                (h.0.as_str(), h.1.as_str(), &h.2)
            );
            assert_eq!(
                (&r.outcome, &r.request_id, r.account.as_str()),
                (&h.3, &h.4, A)
            );
        }
    }

    #[tokio::test]
    async fn reset_forgets_everything_but_the_clock() {
        let (clock, aws) = seeded();
        let c = aws.clients(A, REGION, no_audit());
        aws.fail("DescribeCluster", AwsErrorKind::Throttled, usize::MAX);
        aws.delay("DescribeCluster", Duration::from_millis(1));
        c.eks.describe_cluster("prod").await.unwrap_err();
        aws.reset();
        assert!(aws.calls().is_empty() && aws.assume_role_requests().is_empty());
        assert_eq!(aws.with_world(A, REGION, |w| w.clone()), World::default());
        let e = c.eks.describe_cluster("prod").await.unwrap_err();
        assert_eq!(
            e.kind,
            AwsErrorKind::InvalidCredentials,
            "old credentials are gone"
        );
        let fresh = aws.clients(A, REGION, no_audit());
        let e = fresh.eks.describe_cluster("prod").await.unwrap_err();
        assert_eq!(
            e.kind,
            AwsErrorKind::NotFound,
            "no failure armed, no cluster"
        );
        let e = aws
            .operator_sts()
            .assume_role(&request(ROLE, EXTERNAL_ID, 900))
            .await
            .unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::AccessDenied, "no role");
        assert_eq!(clock.now().as_second(), 1_800_000_000);
    }
}
