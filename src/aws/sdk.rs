//! The AWS SDK adapters behind the narrow traits. Configuration follows the SDK's standard
//! chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, IRSA / Pod Identity, …): pointing the operator at
//! an emulator needs no custom flags.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::seal::{Sealed, SealedCredentialsProvider};
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::RequestId;
use secrecy::SecretString;

use super::approval::{ApprovedKeyDeactivation, ApprovedNodegroupScale, ApprovedTermination};
use super::limits::{AccountLimits, RateLimits};
use super::price_list::{self, OnDemandPriceList, PriceListOs};
use super::{
    AccessKey, AssumeRoleRequest, AutoScaling, AutoScalingGroup, AwsError, CallerIdentity,
    ClientFactory, CustomerClients, Ec2, Eks, EksCluster, Iam, IamRole, IamUser, Identity,
    Instance, InstanceTypeShape, KeyLastUsed, Nodegroup, Pricing, ReservedInstance, SavingsPlan,
    SavingsPlanRate, SavingsPlans, SessionCredentials, SpotPrice, Sts,
};
use crate::audit::CallObserver;
use crate::leader::Leadership;
use crate::metrics::Metrics;

/// Builds SDK clients from one shared SDK configuration: one HTTP client (one connection
/// pool and TLS configuration for every client, see [`shared_http_client`]) and one set of
/// per-account budgets ([`AccountLimits`]).
pub struct SdkFactory {
    config: SdkConfig,
    metrics: Arc<Metrics>,
    leadership: Arc<Leadership>,
    limits: Arc<AccountLimits>,
}

/// The one HTTP client every SDK client of the process shares.
///
/// An `SdkConfig` without an HTTP client makes each service client build its own default
/// client (`aws_smithy_runtime::client::defaults::default_http_client_plugin_v2`): a new
/// connection pool and TLS configuration (root certificates loaded again) per client, and
/// crossguard builds six clients per customer session and region on every reconcile. This
/// is the same client the SDK builds by default (hyper 1 with rustls on aws-lc, proxy
/// settings from `HTTPS_PROXY` / `NO_PROXY`, as for `BehaviorVersion` 2025-08-07 and later),
/// built once. Its connectors are cached per connect/read timeout, so every client with the
/// same timeouts shares one pool.
pub fn shared_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(move |settings, runtime_components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = runtime_components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Long-lived keys for the operator's own identity: the legacy, less safe alternative to
/// IRSA / Pod Identity. Held only inside the SDK's credentials provider.
pub struct StaticKeys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: SecretString,
}

impl SdkFactory {
    /// Load the standard AWS configuration from the environment (IRSA, Pod Identity,
    /// `AWS_*` variables, …), optionally with static keys for the operator's own identity.
    pub async fn from_env(metrics: Arc<Metrics>, static_keys: Option<StaticKeys>) -> Self {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).http_client(shared_http_client());
        if let Some(keys) = static_keys {
            use secrecy::ExposeSecret;
            loader = loader.credentials_provider(Credentials::new(
                keys.access_key_id,
                keys.secret_access_key.expose_secret().to_string(),
                None,
                None,
                "crossguard-static-keys",
            ));
        }
        SdkFactory {
            config: loader.load().await,
            limits: Arc::new(AccountLimits::new(RateLimits::default(), metrics.clone())),
            metrics,
            leadership: Leadership::sole(),
        }
    }

    /// Use `limits` (rate limits per service, the longest wait, retry budget size) for
    /// every customer account instead of the defaults.
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.limits = Arc::new(AccountLimits::new(limits, self.metrics.clone()));
        self
    }

    /// The per-account budgets shared by every customer client this factory builds.
    pub fn limits(&self) -> &Arc<AccountLimits> {
        &self.limits
    }

    /// Mutating calls go out only while `leadership` says this replica leads (see
    /// [`crate::leader`]); without it (one replica) they always may.
    pub fn with_leadership(mut self, leadership: Arc<Leadership>) -> Self {
        self.leadership = leadership;
        self
    }

    /// When the operator's own access key `access_key_id` was created: iam:ListAccessKeys
    /// without a user name, which IAM answers for the calling user. None when the key is not
    /// among that user's keys. Only meaningful with [`StaticKeys`]; the call needs
    /// `iam:ListAccessKeys` on the operator's own user.
    pub async fn own_key_created(
        &self,
        access_key_id: &str,
    ) -> Result<Option<jiff::Timestamp>, AwsError> {
        let out = aws_sdk_iam::Client::new(&self.config)
            .list_access_keys()
            .send()
            .await
            .map_err(|e| sdk_error("iam", "ListAccessKeys", e));
        let out = observe_operator(&self.metrics, "iam", "ListAccessKeys", out)?;
        Ok(out
            .access_key_metadata()
            .iter()
            .find(|k| k.access_key_id() == Some(access_key_id))
            .and_then(|k| k.create_date())
            .and_then(|d| jiff::Timestamp::from_second(d.secs()).ok()))
    }

    /// pricing:GetProducts with the operator's own identity (the base configuration, never
    /// a customer session), against the Price List API endpoint in `endpoint_region`
    /// (us-east-1 by default: the API has endpoints in only a few regions).
    pub fn operator_pricing(&self, endpoint_region: &str) -> Arc<dyn Pricing> {
        let config = self
            .config
            .to_builder()
            .region(Region::new(endpoint_region.to_string()))
            .build();
        Arc::new(SdkPricing {
            client: aws_sdk_pricing::Client::new(&config),
            metrics: self.metrics.clone(),
        })
    }

    /// Use an already built SDK configuration (tests point it at the emulator); the shared
    /// HTTP client is added when the configuration has none.
    pub fn from_config(config: SdkConfig, metrics: Arc<Metrics>) -> Self {
        let config = match config.http_client() {
            Some(_) => config,
            None => config
                .to_builder()
                .http_client(shared_http_client())
                .build(),
        };
        SdkFactory {
            config,
            limits: Arc::new(AccountLimits::new(RateLimits::default(), metrics.clone())),
            metrics,
            leadership: Leadership::sole(),
        }
    }
}

impl ClientFactory for SdkFactory {
    fn operator_sts(&self) -> Arc<dyn Sts> {
        Arc::new(SdkSts {
            client: aws_sdk_sts::Client::new(&self.config),
            metrics: self.metrics.clone(),
        })
    }

    fn customer(
        &self,
        account: &str,
        credentials: &SessionCredentials,
        region: &str,
        observer: Arc<dyn CallObserver>,
    ) -> CustomerClients {
        let expiry =
            UNIX_EPOCH + Duration::from_secs(credentials.expiration.as_second().max(0) as u64);
        // Sealed until each request is signed, and no identity cache: the SDK would keep the
        // opened credentials in it for their lifetime.
        let provider = SharedCredentialsProvider::new(SealedCredentialsProvider::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.clone(),
            credentials.session_token.clone(),
            Some(expiry),
        ));
        let config = self
            .config
            .to_builder()
            .credentials_provider(provider)
            .identity_cache(aws_config::identity::IdentityCache::no_cache())
            .region(Region::new(region.to_string()))
            .build();
        let calls = Calls {
            metrics: self.metrics.clone(),
            observer,
            leadership: self.leadership.clone(),
            limits: self.limits.clone(),
            account: account.to_string(),
            region: region.to_string(),
        };
        // Each client retries within this account's own budget for its service and region
        // (the SDK's default partition is shared by every account: see [`AccountLimits`]).
        let partition = |service| self.limits.retry_partition(service, account, region);
        CustomerClients {
            identity: Arc::new(SdkIdentity {
                client: aws_sdk_sts::Client::from_conf(
                    aws_sdk_sts::config::Builder::from(&config)
                        .retry_partition(partition("sts"))
                        .build(),
                ),
                calls: calls.clone(),
            }),
            eks: Arc::new(SdkEks {
                client: aws_sdk_eks::Client::from_conf(
                    aws_sdk_eks::config::Builder::from(&config)
                        .retry_partition(partition("eks"))
                        .build(),
                ),
                calls: calls.clone(),
            }),
            autoscaling: Arc::new(SdkAutoScaling {
                client: aws_sdk_autoscaling::Client::from_conf(
                    aws_sdk_autoscaling::config::Builder::from(&config)
                        .retry_partition(partition("autoscaling"))
                        .build(),
                ),
                calls: calls.clone(),
            }),
            ec2: Arc::new(SdkEc2 {
                client: aws_sdk_ec2::Client::from_conf(
                    aws_sdk_ec2::config::Builder::from(&config)
                        .retry_partition(partition("ec2"))
                        .build(),
                ),
                calls: calls.clone(),
            }),
            iam: Arc::new(SdkIam {
                client: aws_sdk_iam::Client::from_conf(
                    aws_sdk_iam::config::Builder::from(&config)
                        .retry_partition(partition("iam"))
                        .build(),
                ),
                calls: calls.clone(),
            }),
            savings_plans: Arc::new(SdkSavingsPlans {
                client: aws_sdk_savingsplans::Client::from_conf(
                    aws_sdk_savingsplans::config::Builder::from(&config)
                        .retry_partition(partition("savingsplans"))
                        .build(),
                ),
                calls,
            }),
        }
    }
}

/// Turn an SDK error into our scrubbed error type.
fn sdk_error<E: ProvideErrorMetadata>(
    service: &'static str,
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> AwsError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let request_id = err.request_id().map(str::to_string);
    let (code, message) = match &err {
        SdkError::ServiceError(_) => (
            err.code().map(str::to_string),
            err.message().map(str::to_string),
        ),
        SdkError::TimeoutError(_) => (None, Some("request timed out".to_string())),
        SdkError::DispatchFailure(_) => {
            (None, Some("could not reach the AWS endpoint".to_string()))
        }
        SdkError::ResponseError(_) => (None, Some("unreadable response from AWS".to_string())),
        _ => (
            err.code().map(str::to_string),
            Some("request could not be built".to_string()),
        ),
    };
    let mut e = AwsError::new(service, operation, code, message, status, request_id);
    // Only a service error with a client-error status is a definite "not done"; a timeout,
    // a lost connection or an unreadable answer may hide a request that took effect.
    e.outcome_unknown = match &err {
        SdkError::ServiceError(_) => status.is_none_or(|s| s >= 500),
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    e
}

/// Where every customer call is admitted and reported: the account's rate limit first
/// (each request waits for a token, see [`AccountLimits::admit`]; a call the limit rejects
/// was never sent and is not reported as one), then metrics and the audit trail of the
/// reconcile that made it. Listings use the SDK's page streams (`into_paginator().send()`)
/// rather than `.items()`, so each page's request is admitted and reported on its own, as
/// one audit record.
#[derive(Clone)]
struct Calls {
    metrics: Arc<Metrics>,
    observer: Arc<dyn CallObserver>,
    leadership: Arc<Leadership>,
    limits: Arc<AccountLimits>,
    account: String,
    region: String,
}

/// Whether a listing's page says another page follows (a non-empty next token or marker),
/// so that the rate limit is asked for a token only when another request will go out.
trait HasMore {
    fn has_more(&self) -> bool;
}

macro_rules! next_token_pages {
    ($($output:ty),* $(,)?) => {$(
        impl HasMore for $output {
            fn has_more(&self) -> bool {
                self.next_token.as_deref().is_some_and(|t| !t.is_empty())
            }
        }
    )*};
}

macro_rules! marker_pages {
    ($($output:ty),* $(,)?) => {$(
        impl HasMore for $output {
            fn has_more(&self) -> bool {
                self.is_truncated && self.marker.as_deref().is_some_and(|m| !m.is_empty())
            }
        }
    )*};
}

next_token_pages!(
    aws_sdk_eks::operation::list_nodegroups::ListNodegroupsOutput,
    aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput,
    aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput,
    aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesOutput,
    aws_sdk_ec2::operation::describe_spot_price_history::DescribeSpotPriceHistoryOutput,
);

marker_pages!(
    aws_sdk_iam::operation::list_users::ListUsersOutput,
    aws_sdk_iam::operation::list_user_tags::ListUserTagsOutput,
    aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput,
    aws_sdk_iam::operation::list_role_policies::ListRolePoliciesOutput,
    aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesOutput,
);

impl Calls {
    /// Wait for the account's rate limit to let one `service` request out.
    async fn admit(&self, service: &'static str, operation: &'static str) -> Result<(), AwsError> {
        self.limits
            .admit(service, operation, &self.account, &self.region)
            .await
    }

    /// The next page of a listing: admitted by the rate limit, sent by `next` (the page
    /// stream's `next()`, which sends nothing until awaited), reported. `more` starts true
    /// and is updated from each page; None once the listing is complete.
    async fn next_page<T, E>(
        &self,
        service: &'static str,
        operation: &'static str,
        target: &str,
        more: &mut bool,
        next: impl Future<Output = Option<Result<T, SdkError<E, HttpResponse>>>>,
    ) -> Result<Option<T>, AwsError>
    where
        T: RequestId + HasMore,
        E: ProvideErrorMetadata,
    {
        if !*more {
            return Ok(None);
        }
        self.admit(service, operation).await?;
        let Some(page) = next.await else {
            *more = false;
            return Ok(None);
        };
        let page = page.map_err(|e| sdk_error(service, operation, e));
        let page = self.observe(service, operation, target, page)?;
        *more = page.has_more();
        Ok(Some(page))
    }

    /// The error a mutating call gets instead of being sent when this replica does not
    /// lead (any more); `None` when it may act. Checked right before each mutating request,
    /// so a replica that lost its lease never starts one.
    fn refuse_unless_leading(
        &self,
        service: &'static str,
        operation: &'static str,
    ) -> Option<AwsError> {
        (!self.leadership.is_leading()).then(|| {
            AwsError::new(
                service,
                operation,
                Some("NotLeader".to_string()),
                Some("not sent: this replica does not hold the leader lease".to_string()),
                None,
                None,
            )
        })
    }

    /// Record the outcome of a read-only call and pass the result through.
    fn observe<T: RequestId>(
        &self,
        service: &'static str,
        operation: &'static str,
        target: &str,
        r: Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        self.record(service, operation, target, r, false)
    }

    /// Record the outcome of a mutating call and pass the result through.
    fn observe_mutating<T: RequestId>(
        &self,
        service: &'static str,
        operation: &'static str,
        target: &str,
        r: Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        self.record(service, operation, target, r, true)
    }

    fn record<T: RequestId>(
        &self,
        service: &'static str,
        operation: &'static str,
        target: &str,
        r: Result<T, AwsError>,
        mutating: bool,
    ) -> Result<T, AwsError> {
        let (outcome, request_id) = match &r {
            Ok(out) => ("success", out.request_id().map(str::to_string)),
            Err(e) => (e.kind.as_str(), e.request_id.clone()),
        };
        self.metrics.aws_call(service, operation, outcome);
        self.observer.call(
            service,
            operation,
            target,
            outcome,
            request_id.as_deref(),
            mutating,
        );
        r
    }
}

/// Count an operator-identity call (no tenant audit: the broker records AssumeRole itself).
fn observe_operator<T>(
    metrics: &Metrics,
    service: &'static str,
    operation: &'static str,
    r: Result<T, AwsError>,
) -> Result<T, AwsError> {
    let outcome = match &r {
        Ok(_) => "success",
        Err(e) => e.kind.as_str(),
    };
    metrics.aws_call(service, operation, outcome);
    r
}

/// pricing:GetProducts with the operator's identity; see [`SdkFactory::operator_pricing`].
struct SdkPricing {
    client: aws_sdk_pricing::Client,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl Pricing for SdkPricing {
    async fn on_demand_prices(
        &self,
        region: &str,
        os: PriceListOs,
        observer: &dyn CallObserver,
    ) -> Result<OnDemandPriceList, AwsError> {
        use aws_sdk_pricing::types::{Filter, FilterType};
        const OP: &str = "GetProducts";
        let target = format!("{region}/{}", os.attribute());
        let mut request = self
            .client
            .get_products()
            .service_code(price_list::SERVICE_CODE)
            .format_version("aws_v1");
        for (field, value) in price_list::filters(region, os) {
            let filter = Filter::builder()
                .r#type(FilterType::TermMatch)
                .field(field)
                .value(value)
                .build()
                .expect("type, field and value are set");
            request = request.filters(filter);
        }
        let mut documents = Vec::new();
        let mut pages = request.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("pricing", OP, e));
            let (outcome, request_id) = match &page {
                Ok(out) => ("success", out.request_id().map(str::to_string)),
                Err(e) => (e.kind.as_str(), e.request_id.clone()),
            };
            self.metrics.aws_call("pricing", OP, outcome);
            observer.call(
                "pricing",
                OP,
                &target,
                outcome,
                request_id.as_deref(),
                false,
            );
            documents.extend(page?.price_list.unwrap_or_default());
        }
        Ok(OnDemandPriceList::from_documents(
            documents.iter().map(String::as_str),
        ))
    }
}

fn to_timestamp(dt: &aws_sdk_sts::primitives::DateTime) -> jiff::Timestamp {
    jiff::Timestamp::from_second(dt.secs()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

struct SdkSts {
    client: aws_sdk_sts::Client,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl Sts for SdkSts {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<SessionCredentials, AwsError> {
        let result = self
            .client
            .assume_role()
            .role_arn(&req.role_arn)
            .external_id(&req.external_id)
            .role_session_name(&req.session_name)
            .source_identity(&req.source_identity)
            .duration_seconds(req.duration_seconds)
            .send()
            .await
            .map_err(|e| sdk_error("sts", "AssumeRole", e))
            .and_then(|out| {
                let c = out.credentials.ok_or_else(|| {
                    AwsError::new(
                        "sts",
                        "AssumeRole",
                        None,
                        Some("no credentials in response".into()),
                        None,
                        None,
                    )
                })?;
                let expiration = to_timestamp(&c.expiration);
                let remaining = expiration.as_second() - jiff::Timestamp::now().as_second();
                Ok(SessionCredentials {
                    lifetime: Duration::from_secs(remaining.clamp(0, 12 * 3600) as u64),
                    expiration,
                    access_key_id: c.access_key_id,
                    secret_access_key: Sealed::from(c.secret_access_key),
                    session_token: Sealed::from(c.session_token),
                })
            });
        observe_operator(&self.metrics, "sts", "AssumeRole", result)
    }
}

struct SdkIdentity {
    client: aws_sdk_sts::Client,
    calls: Calls,
}

#[async_trait]
impl Identity for SdkIdentity {
    async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        self.calls.admit("sts", "GetCallerIdentity").await?;
        let out = self
            .client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| sdk_error("sts", "GetCallerIdentity", e));
        let out = self
            .calls
            .observe("sts", "GetCallerIdentity", "caller", out)?;
        Ok(CallerIdentity {
            account: out.account.unwrap_or_default(),
            arn: out.arn.unwrap_or_default(),
        })
    }
}

struct SdkEks {
    client: aws_sdk_eks::Client,
    calls: Calls,
}

fn tag_map(tags: Option<std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
    tags.unwrap_or_default().into_iter().collect()
}

#[async_trait]
impl Eks for SdkEks {
    async fn describe_cluster(&self, name: &str) -> Result<EksCluster, AwsError> {
        self.calls.admit("eks", "DescribeCluster").await?;
        let out = self
            .client
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| sdk_error("eks", "DescribeCluster", e));
        let out = self.calls.observe("eks", "DescribeCluster", name, out)?;
        let c = out.cluster.ok_or_else(|| {
            AwsError::new(
                "eks",
                "DescribeCluster",
                None,
                Some("no cluster in response".into()),
                None,
                None,
            )
        })?;
        Ok(EksCluster {
            name: c.name.unwrap_or_else(|| name.to_string()),
            status: c.status.map(|s| s.as_str().to_string()),
            version: c.version,
            endpoint: c.endpoint,
            certificate_authority: c.certificate_authority.and_then(|ca| ca.data),
            tags: tag_map(c.tags),
        })
    }

    async fn list_nodegroups(&self, cluster: &str) -> Result<Vec<String>, AwsError> {
        let mut names = Vec::new();
        // Page by page (not `.items()`): each request is reported on its own.
        let mut pages = self
            .client
            .list_nodegroups()
            .cluster_name(cluster)
            .into_paginator()
            .send();
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page("eks", "ListNodegroups", cluster, &mut more, pages.next())
            .await?
        {
            names.extend(page.nodegroups.unwrap_or_default());
        }
        Ok(names)
    }

    async fn describe_nodegroup(
        &self,
        cluster: &str,
        nodegroup: &str,
    ) -> Result<Nodegroup, AwsError> {
        self.calls.admit("eks", "DescribeNodegroup").await?;
        let out = self
            .client
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(nodegroup)
            .send()
            .await
            .map_err(|e| sdk_error("eks", "DescribeNodegroup", e));
        let out = self.calls.observe(
            "eks",
            "DescribeNodegroup",
            &format!("{cluster}/{nodegroup}"),
            out,
        )?;
        let result: Result<Nodegroup, AwsError> = (|| {
            let ng = out.nodegroup.ok_or_else(|| {
                AwsError::new(
                    "eks",
                    "DescribeNodegroup",
                    None,
                    Some("no nodegroup in response".into()),
                    None,
                    None,
                )
            })?;
            let scaling = ng.scaling_config;
            Ok(Nodegroup {
                name: ng.nodegroup_name.unwrap_or_else(|| nodegroup.to_string()),
                cluster_name: ng.cluster_name.unwrap_or_else(|| cluster.to_string()),
                status: ng.status.map(|s| s.as_str().to_string()),
                tags: tag_map(ng.tags),
                auto_scaling_groups: ng
                    .resources
                    .and_then(|r| r.auto_scaling_groups)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|g| g.name)
                    .collect(),
                min_size: scaling.as_ref().and_then(|s| s.min_size),
                max_size: scaling.as_ref().and_then(|s| s.max_size),
                desired_size: scaling.as_ref().and_then(|s| s.desired_size),
                instance_types: ng.instance_types.unwrap_or_default(),
            })
        })();
        result
    }

    async fn update_nodegroup_size(
        &self,
        approval: ApprovedNodegroupScale,
    ) -> Result<(), AwsError> {
        // The rate limit first: the leadership check must come right before the request.
        self.calls.admit("eks", "UpdateNodegroupConfig").await?;
        let out = match self
            .calls
            .refuse_unless_leading("eks", "UpdateNodegroupConfig")
        {
            Some(refused) => Err(refused),
            None => self.send_nodegroup_update(&approval).await,
        };
        let target = format!(
            "{}/{} desiredSize={}",
            approval.cluster(),
            approval.nodegroup(),
            approval.desired()
        );
        self.calls
            .observe_mutating("eks", "UpdateNodegroupConfig", &target, out)?;
        Ok(())
    }
}

impl SdkEks {
    /// One UpdateNodegroupConfig request, never retried: one approval, one request.
    async fn send_nodegroup_update(
        &self,
        approval: &ApprovedNodegroupScale,
    ) -> Result<
        aws_sdk_eks::operation::update_nodegroup_config::UpdateNodegroupConfigOutput,
        AwsError,
    > {
        use aws_sdk_eks::types::NodegroupScalingConfig;
        self.client
            .update_nodegroup_config()
            .cluster_name(approval.cluster())
            .nodegroup_name(approval.nodegroup())
            .scaling_config(
                NodegroupScalingConfig::builder()
                    .desired_size(approval.desired())
                    .build(),
            )
            // The same token for the same intent: EKS applies a repeated request once.
            .client_request_token(approval.idempotency_token())
            .customize()
            .config_override(
                aws_sdk_eks::config::Config::builder()
                    .retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| sdk_error("eks", "UpdateNodegroupConfig", e))
    }
}

struct SdkAutoScaling {
    client: aws_sdk_autoscaling::Client,
    calls: Calls,
}

#[async_trait]
impl AutoScaling for SdkAutoScaling {
    async fn describe_groups(&self, names: &[String]) -> Result<Vec<AutoScalingGroup>, AwsError> {
        let mut groups = Vec::new();
        if names.is_empty() {
            return Ok(groups);
        }
        let mut pages = self
            .client
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(names.to_vec()))
            .into_paginator()
            .send();
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page(
                "autoscaling",
                "DescribeAutoScalingGroups",
                &names.join(","),
                &mut more,
                pages.next(),
            )
            .await?
        {
            for g in page.auto_scaling_groups.unwrap_or_default() {
                groups.push(AutoScalingGroup {
                    name: g.auto_scaling_group_name.unwrap_or_default(),
                    tags: g
                        .tags
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
                        .collect(),
                    min_size: g.min_size.unwrap_or_default(),
                    max_size: g.max_size.unwrap_or_default(),
                    desired_capacity: g.desired_capacity.unwrap_or_default(),
                    instance_ids: g
                        .instances
                        .iter()
                        .flatten()
                        .filter_map(|i| i.instance_id.clone())
                        .collect(),
                    instance_states: g
                        .instances
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|i| {
                            Some((i.instance_id?, i.lifecycle_state?.as_str().to_string()))
                        })
                        .collect(),
                });
            }
        }
        Ok(groups)
    }

    async fn terminate_instance(&self, approval: ApprovedTermination) -> Result<(), AwsError> {
        self.calls
            .admit("autoscaling", "TerminateInstanceInAutoScalingGroup")
            .await?;
        let refused = self
            .calls
            .refuse_unless_leading("autoscaling", "TerminateInstanceInAutoScalingGroup");
        let out = match refused {
            Some(refused) => Err(refused),
            None => self
                .client
                .terminate_instance_in_auto_scaling_group()
                .instance_id(approval.instance_id())
                .should_decrement_desired_capacity(true)
                // One approval, one request: a retry could act a second time.
                .customize()
                .config_override(
                    aws_sdk_autoscaling::config::Config::builder()
                        .retry_config(aws_config::retry::RetryConfig::disabled()),
                )
                .send()
                .await
                .map_err(|e| sdk_error("autoscaling", "TerminateInstanceInAutoScalingGroup", e)),
        };
        let target = format!("{}/{}", approval.group(), approval.instance_id());
        self.calls.observe_mutating(
            "autoscaling",
            "TerminateInstanceInAutoScalingGroup",
            &target,
            out,
        )?;
        Ok(())
    }
}

struct SdkEc2 {
    client: aws_sdk_ec2::Client,
    calls: Calls,
}

#[async_trait]
impl Ec2 for SdkEc2 {
    async fn describe_cluster_instances(&self, cluster: &str) -> Result<Vec<Instance>, AwsError> {
        use aws_sdk_ec2::types::Filter;
        let mut instances = Vec::new();
        let mut pages = self
            .client
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("tag-key")
                    .values(format!("kubernetes.io/cluster/{cluster}"))
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("stopping")
                    .values("stopped")
                    .build(),
            )
            .into_paginator()
            .send();
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page(
                "ec2",
                "DescribeInstances",
                &format!("tag-key=kubernetes.io/cluster/{cluster}"),
                &mut more,
                pages.next(),
            )
            .await?
        {
            for reservation in page.reservations.unwrap_or_default() {
                instances.extend(
                    reservation
                        .instances
                        .unwrap_or_default()
                        .into_iter()
                        .map(instance_of),
                );
            }
        }
        Ok(instances)
    }

    async fn describe_instance(&self, id: &str) -> Result<Option<Instance>, AwsError> {
        self.calls.admit("ec2", "DescribeInstances").await?;
        let out = self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("ec2", "DescribeInstances", e));
        let out = match self.calls.observe("ec2", "DescribeInstances", id, out) {
            Ok(out) => out,
            // EC2 answers an unknown id with an error rather than an empty list.
            Err(e) if e.code.as_deref() == Some("InvalidInstanceID.NotFound") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(out
            .reservations
            .unwrap_or_default()
            .into_iter()
            .flat_map(|r| r.instances.unwrap_or_default())
            .map(instance_of)
            .find(|i| i.id == id))
    }

    async fn describe_instance_types(
        &self,
        types: &[String],
    ) -> Result<Vec<InstanceTypeShape>, AwsError> {
        use aws_sdk_ec2::types::InstanceType;
        let mut shapes = Vec::new();
        if types.is_empty() {
            return Ok(shapes);
        }
        let mut pages = self
            .client
            .describe_instance_types()
            .set_instance_types(Some(
                types
                    .iter()
                    .map(|t| InstanceType::from(t.as_str()))
                    .collect(),
            ))
            .into_paginator()
            .send();
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page(
                "ec2",
                "DescribeInstanceTypes",
                &types.join(","),
                &mut more,
                pages.next(),
            )
            .await?
        {
            for t in page.instance_types.unwrap_or_default() {
                let Some(name) = t.instance_type.map(|n| n.as_str().to_string()) else {
                    continue;
                };
                let architecture = match t
                    .processor_info
                    .and_then(|p| p.supported_architectures)
                    .unwrap_or_default()
                    .first()
                    .map(|a| a.as_str().to_string())
                    .as_deref()
                {
                    Some("arm64") => "arm64".to_string(),
                    _ => "amd64".to_string(),
                };
                let max_pods = t.network_info.and_then(|n| {
                    let enis = n.maximum_network_interfaces? as u32;
                    let ips = n.ipv4_addresses_per_interface? as u32;
                    Some(enis * ips.saturating_sub(1) + 2)
                });
                shapes.push(InstanceTypeShape {
                    name,
                    vcpus: t
                        .v_cpu_info
                        .and_then(|v| v.default_v_cpus)
                        .unwrap_or_default()
                        .max(0) as u32,
                    memory_mib: t
                        .memory_info
                        .and_then(|m| m.size_in_mib)
                        .unwrap_or_default()
                        .max(0) as u64,
                    architecture,
                    max_pods,
                });
            }
        }
        Ok(shapes)
    }

    async fn describe_spot_price_history(
        &self,
        types: &[String],
        zones: &[String],
        product_descriptions: &[String],
        start_time: jiff::Timestamp,
    ) -> Result<Vec<SpotPrice>, AwsError> {
        use aws_sdk_ec2::types::{Filter, InstanceType};
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = self
            .client
            .describe_spot_price_history()
            .set_instance_types(Some(
                types
                    .iter()
                    .map(|t| InstanceType::from(t.as_str()))
                    .collect(),
            ))
            .set_product_descriptions(Some(product_descriptions.to_vec()))
            .start_time(aws_sdk_ec2::primitives::DateTime::from_secs(
                start_time.as_second(),
            ));
        if !zones.is_empty() {
            request = request.filters(
                Filter::builder()
                    .name("availability-zone")
                    .set_values(Some(zones.to_vec()))
                    .build(),
            );
        }
        let mut pages = request.into_paginator().send();
        let mut latest: BTreeMap<(String, String, String), SpotPrice> = BTreeMap::new();
        let target = types.join(",");
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page(
                "ec2",
                "DescribeSpotPriceHistory",
                &target,
                &mut more,
                pages.next(),
            )
            .await?
        {
            for p in page.spot_price_history.unwrap_or_default() {
                let (Some(t), Some(zone), Some(product), Some(price), Some(at)) = (
                    p.instance_type.as_ref().map(|t| t.as_str().to_string()),
                    p.availability_zone.clone(),
                    p.product_description
                        .as_ref()
                        .map(|d| d.as_str().to_string()),
                    p.spot_price.as_deref().and_then(|s| s.parse::<f64>().ok()),
                    p.timestamp.as_ref().map(to_timestamp),
                ) else {
                    continue;
                };
                if !price.is_finite() || price <= 0.0 {
                    continue;
                }
                let key = (t.clone(), zone.clone(), product.clone());
                if latest.get(&key).is_none_or(|old| old.timestamp < at) {
                    latest.insert(
                        key,
                        SpotPrice {
                            instance_type: t,
                            availability_zone: zone,
                            product_description: product,
                            usd_per_hour: price,
                            timestamp: at,
                        },
                    );
                }
            }
        }
        Ok(latest.into_values().collect())
    }

    async fn describe_reserved_instances(
        &self,
        states: &[&str],
    ) -> Result<Vec<ReservedInstance>, AwsError> {
        use aws_sdk_ec2::types::{Filter, RecurringChargeFrequency, Scope};
        self.calls.admit("ec2", "DescribeReservedInstances").await?;
        let out = self
            .client
            .describe_reserved_instances()
            .filters(
                Filter::builder()
                    .name("state")
                    .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("ec2", "DescribeReservedInstances", e));
        let out = self.calls.observe(
            "ec2",
            "DescribeReservedInstances",
            &format!("state={}", states.join(",")),
            out,
        )?;
        Ok(out
            .reserved_instances
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| {
                let zonal = r.scope.as_ref() != Some(&Scope::Regional);
                Some(ReservedInstance {
                    id: r.reserved_instances_id?,
                    instance_type: r.instance_type?.as_str().to_string(),
                    availability_zone: r.availability_zone.filter(|_| zonal),
                    instance_count: r.instance_count.unwrap_or(0).max(0) as u32,
                    product_description: r
                        .product_description
                        .map(|d| d.as_str().to_string())
                        .unwrap_or_default(),
                    tenancy: r
                        .instance_tenancy
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_else(|| "default".to_string()),
                    state: r.state.map(|s| s.as_str().to_string()).unwrap_or_default(),
                    start: r.start.as_ref().map(to_timestamp)?,
                    end: r.end.as_ref().map(to_timestamp)?,
                    duration_seconds: r.duration.unwrap_or(0),
                    offering_class: r
                        .offering_class
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_default(),
                    offering_type: r
                        .offering_type
                        .map(|o| o.as_str().to_string())
                        .unwrap_or_default(),
                    fixed_price: f64::from(r.fixed_price.unwrap_or(0.0)),
                    usage_price: f64::from(r.usage_price.unwrap_or(0.0)),
                    recurring_hourly: r
                        .recurring_charges
                        .unwrap_or_default()
                        .iter()
                        .filter(|c| c.frequency == Some(RecurringChargeFrequency::Hourly))
                        .filter_map(|c| c.amount)
                        .sum(),
                })
            })
            .collect())
    }
}

/// Savings Plans, a global service: the adapter signs for whichever region the session's
/// configuration names and the SDK's endpoint rules send it to the global endpoint.
struct SdkSavingsPlans {
    client: aws_sdk_savingsplans::Client,
    calls: Calls,
}

/// An RFC 3339 time as Savings Plans writes them (`2026-01-01T00:00:00.000Z`).
fn parse_rfc3339(s: Option<&str>) -> Option<jiff::Timestamp> {
    s?.parse().ok()
}

#[async_trait]
impl SavingsPlans for SdkSavingsPlans {
    async fn describe_savings_plans(&self, states: &[&str]) -> Result<Vec<SavingsPlan>, AwsError> {
        use aws_sdk_savingsplans::types::SavingsPlanState;
        let mut plans = Vec::new();
        let mut next: Option<String> = None;
        loop {
            self.calls
                .admit("savingsplans", "DescribeSavingsPlans")
                .await?;
            let out = self
                .client
                .describe_savings_plans()
                .set_states(Some(
                    states.iter().map(|s| SavingsPlanState::from(*s)).collect(),
                ))
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| sdk_error("savingsplans", "DescribeSavingsPlans", e));
            let out = self.calls.observe(
                "savingsplans",
                "DescribeSavingsPlans",
                &format!("states={}", states.join(",")),
                out,
            )?;
            for p in out.savings_plans.unwrap_or_default() {
                let (Some(id), Some(start), Some(end)) = (
                    p.savings_plan_id.clone(),
                    parse_rfc3339(p.start.as_deref()),
                    parse_rfc3339(p.end.as_deref()),
                ) else {
                    continue;
                };
                plans.push(SavingsPlan {
                    id,
                    arn: p.savings_plan_arn.unwrap_or_default(),
                    plan_type: p
                        .savings_plan_type
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    state: p.state.map(|s| s.as_str().to_string()).unwrap_or_default(),
                    region: p.region.filter(|r| !r.is_empty()),
                    ec2_instance_family: p.ec2_instance_family.filter(|f| !f.is_empty()),
                    commitment_per_hour: p
                        .commitment
                        .as_deref()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0.0),
                    start,
                    end,
                    payment_option: p
                        .payment_option
                        .map(|o| o.as_str().to_string())
                        .unwrap_or_default(),
                });
            }
            match out.next_token.filter(|t| !t.is_empty()) {
                Some(t) => next = Some(t),
                None => break,
            }
        }
        Ok(plans)
    }

    async fn describe_savings_plan_rates(
        &self,
        savings_plan_id: &str,
        types: &[String],
        region: &str,
    ) -> Result<Vec<SavingsPlanRate>, AwsError> {
        use aws_sdk_savingsplans::types::{
            SavingsPlanProductType, SavingsPlanRateFilter, SavingsPlanRateFilterName,
        };
        let mut rates = Vec::new();
        if types.is_empty() {
            return Ok(rates);
        }
        let filter = |name: SavingsPlanRateFilterName, values: Vec<String>| {
            SavingsPlanRateFilter::builder()
                .name(name)
                .set_values(Some(values))
                .build()
        };
        let mut next: Option<String> = None;
        loop {
            self.calls
                .admit("savingsplans", "DescribeSavingsPlanRates")
                .await?;
            let out = self
                .client
                .describe_savings_plan_rates()
                .savings_plan_id(savings_plan_id)
                .filters(filter(
                    SavingsPlanRateFilterName::InstanceType,
                    types.to_vec(),
                ))
                .filters(filter(
                    SavingsPlanRateFilterName::Region,
                    vec![region.to_string()],
                ))
                .filters(filter(
                    SavingsPlanRateFilterName::ProductDescription,
                    vec!["Linux/UNIX".to_string(), "Windows".to_string()],
                ))
                .filters(filter(
                    SavingsPlanRateFilterName::Tenancy,
                    vec!["shared".to_string()],
                ))
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| sdk_error("savingsplans", "DescribeSavingsPlanRates", e));
            let out = self.calls.observe(
                "savingsplans",
                "DescribeSavingsPlanRates",
                savings_plan_id,
                out,
            )?;
            for r in out.search_results.unwrap_or_default() {
                if r.product_type.as_ref() != Some(&SavingsPlanProductType::Ec2) {
                    continue;
                }
                let Some(rate) = r.rate.as_deref().and_then(|x| x.parse::<f64>().ok()) else {
                    continue;
                };
                let property = |key: &str| {
                    r.properties
                        .iter()
                        .flatten()
                        .find(|p| p.name.as_ref().map(|n| n.as_str()) == Some(key))
                        .and_then(|p| p.value.clone())
                };
                let (Some(instance_type), Some(rate_region), Some(product)) = (
                    property("instanceType"),
                    property("region"),
                    property("productDescription"),
                ) else {
                    continue;
                };
                if property("tenancy").is_some_and(|t| t != "shared") {
                    continue;
                }
                rates.push(SavingsPlanRate {
                    savings_plan_id: savings_plan_id.to_string(),
                    instance_type,
                    region: rate_region,
                    product_description: product,
                    usd_per_hour: rate,
                });
            }
            match out.next_token.filter(|t| !t.is_empty()) {
                Some(t) => next = Some(t),
                None => break,
            }
        }
        Ok(rates)
    }
}

struct SdkIam {
    client: aws_sdk_iam::Client,
    calls: Calls,
}

/// Parse a policy document as IAM returns it: URL-encoded JSON (RFC 3986).
fn policy_document(operation: &'static str, encoded: &str) -> Result<serde_json::Value, AwsError> {
    let decoded = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    serde_json::from_str(&decoded).map_err(|e| {
        AwsError::new(
            "iam",
            operation,
            Some("MalformedPolicyDocument".into()),
            Some(format!("the policy document is not JSON: {e}")),
            Some(200),
            None,
        )
    })
}

fn missing(operation: &'static str, what: &str) -> AwsError {
    AwsError::new(
        "iam",
        operation,
        None,
        Some(format!("no {what} in the response")),
        Some(200),
        None,
    )
}

#[async_trait]
impl Iam for SdkIam {
    async fn list_users(&self) -> Result<Vec<IamUser>, AwsError> {
        let mut users = Vec::new();
        let mut pages = self.client.list_users().into_paginator().send();
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page("iam", "ListUsers", "users", &mut more, pages.next())
            .await?
        {
            users.extend(page.users().iter().map(|u| IamUser {
                name: u.user_name().to_string(),
                arn: u.arn().to_string(),
                tags: BTreeMap::new(),
            }));
        }
        Ok(users)
    }

    async fn list_user_tags(&self, user: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let mut tags = BTreeMap::new();
        let mut pages = self
            .client
            .list_user_tags()
            .user_name(user)
            .into_paginator()
            .send();
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page("iam", "ListUserTags", user, &mut more, pages.next())
            .await?
        {
            tags.extend(
                page.tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string())),
            );
        }
        Ok(tags)
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>, AwsError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_access_keys()
            .user_name(user)
            .into_paginator()
            .send();
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page("iam", "ListAccessKeys", user, &mut more, pages.next())
            .await?
        {
            for k in page.access_key_metadata() {
                let (Some(id), Some(created)) = (k.access_key_id(), k.create_date()) else {
                    return Err(missing("ListAccessKeys", "key id or CreateDate"));
                };
                keys.push(AccessKey {
                    id: id.to_string(),
                    user: k.user_name().unwrap_or(user).to_string(),
                    active: k.status() == Some(&aws_sdk_iam::types::StatusType::Active),
                    created: jiff::Timestamp::from_second(created.secs())
                        .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                });
            }
        }
        Ok(keys)
    }

    async fn get_access_key_last_used(&self, access_key_id: &str) -> Result<KeyLastUsed, AwsError> {
        self.calls.admit("iam", "GetAccessKeyLastUsed").await?;
        let out = self
            .client
            .get_access_key_last_used()
            .access_key_id(access_key_id)
            .send()
            .await
            .map_err(|e| sdk_error("iam", "GetAccessKeyLastUsed", e));
        let out = self
            .calls
            .observe("iam", "GetAccessKeyLastUsed", access_key_id, out)?;
        let used = out.access_key_last_used();
        Ok(KeyLastUsed {
            at: used
                .and_then(|u| u.last_used_date())
                .and_then(|d| jiff::Timestamp::from_second(d.secs()).ok()),
            service: used
                .map(|u| u.service_name().to_string())
                .filter(|s| !s.is_empty() && s != "N/A"),
        })
    }

    async fn deactivate_access_key(
        &self,
        approval: ApprovedKeyDeactivation,
    ) -> Result<(), AwsError> {
        self.calls.admit("iam", "UpdateAccessKey").await?;
        let out = match self.calls.refuse_unless_leading("iam", "UpdateAccessKey") {
            Some(refused) => Err(refused),
            None => self
                .client
                .update_access_key()
                .user_name(approval.user())
                .access_key_id(approval.access_key_id())
                .status(aws_sdk_iam::types::StatusType::Inactive)
                // One approval, one request: no retry goes out after the leadership check.
                .customize()
                .config_override(
                    aws_sdk_iam::config::Config::builder()
                        .retry_config(aws_config::retry::RetryConfig::disabled()),
                )
                .send()
                .await
                .map_err(|e| sdk_error("iam", "UpdateAccessKey", e)),
        };
        let target = format!("{}/{} Inactive", approval.user(), approval.access_key_id());
        self.calls
            .observe_mutating("iam", "UpdateAccessKey", &target, out)?;
        Ok(())
    }

    async fn get_role(&self, role_name: &str) -> Result<IamRole, AwsError> {
        self.calls.admit("iam", "GetRole").await?;
        let out = self
            .client
            .get_role()
            .role_name(role_name)
            .send()
            .await
            .map_err(|e| sdk_error("iam", "GetRole", e));
        let out = self.calls.observe("iam", "GetRole", role_name, out)?;
        let role = out.role().ok_or_else(|| missing("GetRole", "role"))?;
        let trust = role
            .assume_role_policy_document()
            .ok_or_else(|| missing("GetRole", "trust policy"))?;
        Ok(IamRole {
            name: role.role_name().to_string(),
            arn: role.arn().to_string(),
            trust_policy: policy_document("GetRole", trust)?,
            max_session_duration: role.max_session_duration().unwrap_or(3600),
        })
    }

    async fn list_role_policies(&self, role_name: &str) -> Result<Vec<String>, AwsError> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_role_policies()
            .role_name(role_name)
            .into_paginator()
            .send();
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page(
                "iam",
                "ListRolePolicies",
                role_name,
                &mut more,
                pages.next(),
            )
            .await?
        {
            names.extend(page.policy_names().iter().cloned());
        }
        Ok(names)
    }

    async fn get_role_policy(
        &self,
        role_name: &str,
        policy_name: &str,
    ) -> Result<serde_json::Value, AwsError> {
        self.calls.admit("iam", "GetRolePolicy").await?;
        let out = self
            .client
            .get_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .send()
            .await
            .map_err(|e| sdk_error("iam", "GetRolePolicy", e));
        let out = self.calls.observe(
            "iam",
            "GetRolePolicy",
            &format!("{role_name}/{policy_name}"),
            out,
        )?;
        policy_document("GetRolePolicy", out.policy_document())
    }

    async fn list_attached_role_policies(&self, role_name: &str) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_attached_role_policies()
            .role_name(role_name)
            .into_paginator()
            .send();
        let mut more = true;
        while let Some(page) = self
            .calls
            .next_page(
                "iam",
                "ListAttachedRolePolicies",
                role_name,
                &mut more,
                pages.next(),
            )
            .await?
        {
            arns.extend(
                page.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_string)),
            );
        }
        Ok(arns)
    }

    async fn get_policy_default_version(&self, policy_arn: &str) -> Result<String, AwsError> {
        self.calls.admit("iam", "GetPolicy").await?;
        let out = self
            .client
            .get_policy()
            .policy_arn(policy_arn)
            .send()
            .await
            .map_err(|e| sdk_error("iam", "GetPolicy", e));
        let out = self.calls.observe("iam", "GetPolicy", policy_arn, out)?;
        out.policy()
            .and_then(|p| p.default_version_id())
            .map(str::to_string)
            .ok_or_else(|| missing("GetPolicy", "default version"))
    }

    async fn get_policy_version(
        &self,
        policy_arn: &str,
        version_id: &str,
    ) -> Result<serde_json::Value, AwsError> {
        self.calls.admit("iam", "GetPolicyVersion").await?;
        let out = self
            .client
            .get_policy_version()
            .policy_arn(policy_arn)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| sdk_error("iam", "GetPolicyVersion", e));
        let out = self.calls.observe(
            "iam",
            "GetPolicyVersion",
            &format!("{policy_arn}#{version_id}"),
            out,
        )?;
        let document = out
            .policy_version()
            .and_then(|v| v.document())
            .ok_or_else(|| missing("GetPolicyVersion", "document"))?;
        policy_document("GetPolicyVersion", document)
    }
}

fn instance_of(i: aws_sdk_ec2::types::Instance) -> Instance {
    Instance {
        id: i.instance_id.unwrap_or_default(),
        instance_type: i.instance_type.map(|t| t.as_str().to_string()),
        state: i.state.and_then(|s| s.name).map(|n| n.as_str().to_string()),
        tags: i
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    //! The adapters against a local HTTP server that answers like EKS, so paging and the
    //! per-request reports can be checked without an emulator.

    use std::sync::Mutex;

    use axum::extract::State;
    use axum::http::{StatusCode, Uri, header};
    use axum::response::{IntoResponse, Response};

    use super::*;
    use crate::aws::AwsErrorKind;

    /// Every call the adapters reported, as (operation, target, outcome).
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(String, String, String)>>);

    impl CallObserver for Recorded {
        fn call(
            &self,
            _service: &str,
            operation: &str,
            target: &str,
            outcome: &str,
            _request_id: Option<&str>,
            _mutating: bool,
        ) {
            self.0.lock().unwrap().push((
                operation.to_string(),
                target.to_string(),
                outcome.to_string(),
            ));
        }
    }

    /// How the fake answers ListNodegroups for the page a request asks for.
    type Pager = fn(Option<&str>) -> Response;

    /// Serve `pager` as EKS's ListNodegroups on a local port; returns the endpoint URL.
    async fn fake_eks(pager: Pager) -> String {
        async fn list(State(pager): State<Pager>, uri: Uri) -> Response {
            let token = uri
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|pair| pair.strip_prefix("nextToken="));
            pager(token)
        }
        let app = axum::Router::new()
            .route("/clusters/{name}/node-groups", axum::routing::get(list))
            .with_state(pager);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// EKS clients of one customer session pointed at `endpoint`, reporting to `observer`.
    fn eks_at(endpoint: &str, observer: Arc<Recorded>) -> Arc<dyn Eks> {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            // Without retries every page is exactly one request.
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let session = SessionCredentials {
            access_key_id: "ASIATESTTESTTESTTEST".into(),
            secret_access_key: crate::seal::Sealed::from("secret"),
            session_token: crate::seal::Sealed::from("token"),
            expiration: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
            lifetime: Duration::from_secs(3600),
        };
        SdkFactory::from_config(config, Arc::new(Metrics::new()))
            .customer("111111111111", &session, "us-east-1", observer)
            .eks
    }

    fn json(status: StatusCode, error_type: &str, body: serde_json::Value) -> Response {
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if !error_type.is_empty() {
            let value = header::HeaderValue::from_str(error_type).unwrap();
            response.headers_mut().insert("x-amzn-errortype", value);
        }
        response
    }

    fn page(names: &[&str], next: Option<&str>) -> Response {
        let body = serde_json::json!({ "nodegroups": names, "nextToken": next });
        json(StatusCode::OK, "", body)
    }

    #[tokio::test]
    async fn list_nodegroups_reads_every_page_and_reports_each_request() {
        let endpoint = fake_eks(|token| match token {
            None => page(&["a", "b"], Some("p2")),
            Some("p2") => page(&["c"], Some("")),
            Some(other) => panic!("unexpected token {other}"),
        })
        .await;
        let observer = Arc::new(Recorded::default());
        let names = eks_at(&endpoint, observer.clone())
            .list_nodegroups("prod")
            .await
            .unwrap();
        assert_eq!(names, ["a", "b", "c"]);
        let calls = observer.0.lock().unwrap().clone();
        let one = ("ListNodegroups".into(), "prod".into(), "success".into());
        assert_eq!(calls, [one.clone(), one]);
    }

    #[tokio::test]
    async fn a_failed_later_page_is_reported_and_returned_as_our_error() {
        let endpoint = fake_eks(|token| match token {
            None => page(&["a"], Some("p2")),
            _ => json(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServerException",
                serde_json::json!({ "message": "try later" }),
            ),
        })
        .await;
        let observer = Arc::new(Recorded::default());
        let err = eks_at(&endpoint, observer.clone())
            .list_nodegroups("prod")
            .await
            .unwrap_err();
        assert_eq!(err.kind, AwsErrorKind::Unavailable);
        assert_eq!(err.operation, "ListNodegroups");
        assert_eq!(err.code.as_deref(), Some("ServerException"));
        assert_eq!(err.message, "try later");
        let outcomes: Vec<String> = observer
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.2.clone())
            .collect();
        assert_eq!(outcomes, ["success", "unavailable"]);
    }

    #[tokio::test]
    async fn a_token_repeated_by_the_service_ends_the_listing() {
        // A service that keeps answering with the token it was sent would have kept a
        // hand-written loop requesting forever; the SDK's paginator stops.
        let endpoint = fake_eks(|_| page(&["a"], Some("same"))).await;
        let observer = Arc::new(Recorded::default());
        let names = eks_at(&endpoint, observer.clone())
            .list_nodegroups("prod")
            .await
            .unwrap();
        assert_eq!(names, ["a", "a"]);
        assert_eq!(observer.0.lock().unwrap().len(), 2);
    }

    /// Serve EKS's ListNodegroups, answering by the caller's access key id: `AKIDA…` keys are
    /// always throttled, `AKIDB…` keys the first time only. Returns the URL and the number of
    /// requests seen per key.
    async fn throttling_eks() -> (String, Arc<Mutex<BTreeMap<String, usize>>>) {
        type Seen = Arc<Mutex<BTreeMap<String, usize>>>;
        async fn list(State(seen): State<Seen>, headers: axum::http::HeaderMap) -> Response {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let key = auth
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next())
                .unwrap_or_default()
                .to_string();
            let n = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(key.clone()).or_default();
                *n += 1;
                *n
            };
            if key.starts_with("AKIDA") || n == 1 {
                let body = serde_json::json!({ "message": "Rate exceeded" });
                json(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException", body)
            } else {
                page(&["ng"], None)
            }
        }
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route("/clusters/{name}/node-groups", axum::routing::get(list))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), seen)
    }

    fn session(key: &str) -> SessionCredentials {
        SessionCredentials {
            access_key_id: key.into(),
            secret_access_key: crate::seal::Sealed::from("secret"),
            session_token: crate::seal::Sealed::from("token"),
            expiration: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
            lifetime: Duration::from_secs(3600),
        }
    }

    /// A factory whose retry budgets hold 10 tokens: two throttled retries (5 each) drain one.
    fn small_budget_factory(endpoint: &str) -> SdkFactory {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build();
        let limits = RateLimits {
            retry_capacity: 10,
            ..RateLimits::default()
        };
        SdkFactory::from_config(config, Arc::new(Metrics::new())).with_rate_limits(limits)
    }

    /// Throttle account A until its retry budget is gone, then ask for B's nodegroups with
    /// B's clients built for `b_account`; returns B's result and the requests per key.
    async fn drain_a_then_call_b(
        b_account: &str,
    ) -> (Result<Vec<String>, AwsError>, BTreeMap<String, usize>) {
        let (endpoint, seen) = throttling_eks().await;
        let factory = small_budget_factory(&endpoint);
        let observer = Arc::new(Recorded::default());
        let a = factory.customer(
            "111111111111",
            &session("AKIDAAAAAAAAAAAAAAAA"),
            "us-east-1",
            observer.clone(),
        );
        for _ in 0..3 {
            let e = a.eks.list_nodegroups("prod").await.unwrap_err();
            assert_eq!(e.kind, AwsErrorKind::Throttled);
        }
        let b = factory.customer(
            b_account,
            &session("AKIDBBBBBBBBBBBBBBBB"),
            "us-east-1",
            observer,
        );
        let result = b.eks.list_nodegroups("prod").await;
        let seen = seen.lock().unwrap().clone();
        (result, seen)
    }

    #[tokio::test]
    async fn one_throttled_account_does_not_use_up_another_accounts_retries() {
        let (b, seen) = drain_a_then_call_b("222222222222").await;
        // A: three attempts on the first call (two retries drained its 10 tokens), then one
        // attempt per call.
        assert_eq!(seen["AKIDAAAAAAAAAAAAAAAA"], 3 + 1 + 1);
        // B has its own budget: its throttled first attempt is retried and succeeds.
        assert_eq!(b.unwrap(), ["ng"]);
        assert_eq!(seen["AKIDBBBBBBBBBBBBBBBB"], 2);
    }

    #[tokio::test]
    async fn sessions_of_one_account_share_its_retry_budget() {
        // The control for the test above: B's clients built for A's account share A's
        // drained budget, so B's throttled first attempt is not retried.
        let (b, seen) = drain_a_then_call_b("111111111111").await;
        assert_eq!(b.unwrap_err().kind, AwsErrorKind::Throttled);
        assert_eq!(seen["AKIDBBBBBBBBBBBBBBBB"], 1);
    }

    /// An HTTP client that answers every request with an empty EKS/STS-shaped success and
    /// counts the requests of every client using it.
    #[derive(Debug, Clone, Default)]
    struct Counting(Arc<std::sync::atomic::AtomicUsize>);

    impl aws_smithy_runtime_api::client::http::HttpConnector for Counting {
        fn call(
            &self,
            _request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
        ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let response = HttpResponse::new(
                200.try_into().unwrap(),
                aws_smithy_types::body::SdkBody::from(r#"{"nodegroups":["ng"]}"#),
            );
            aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Ok(response))
        }
    }

    impl aws_smithy_runtime_api::client::http::HttpClient for Counting {
        fn http_connector(
            &self,
            _settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
            _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
            aws_smithy_runtime_api::client::http::SharedHttpConnector::new(self.clone())
        }
    }

    #[tokio::test]
    async fn every_customer_client_uses_the_factorys_one_http_client() {
        // Without an explicit client each SDK client would build its own default one (a new
        // connection pool and TLS configuration per client and session).
        let bare = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        assert!(bare.http_client().is_none());
        let factory = SdkFactory::from_config(bare, Arc::new(Metrics::new()));
        assert!(
            factory.config.http_client().is_some(),
            "the shared client is added"
        );

        // A configuration's client reaches every customer client of every account and region.
        let counting = Counting::default();
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .http_client(counting.clone())
            .build();
        let factory = SdkFactory::from_config(config, Arc::new(Metrics::new()));
        let observer = Arc::new(Recorded::default());
        for (account, key, region) in [
            ("111111111111", "AKIDAAAAAAAAAAAAAAAA", "us-east-1"),
            ("222222222222", "AKIDBBBBBBBBBBBBBBBB", "eu-west-1"),
        ] {
            let clients = factory.customer(account, &session(key), region, observer.clone());
            assert_eq!(clients.eks.list_nodegroups("prod").await.unwrap(), ["ng"]);
        }
        assert_eq!(counting.0.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
