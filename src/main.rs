//! The `crossguard` binary: a thin command line over the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crossguard::analysis::{self, PriceTable};
use crossguard::aws::sdk::{SdkFactory, StaticKeys};
use crossguard::cli::OutputFormat;
use crossguard::clock::SystemClock;
use crossguard::controller::{self, Context};
use crossguard::credentials::Broker;
use crossguard::http::{self, HttpState, Readiness};
use crossguard::metrics::Metrics;
use crossguard::onboarding;
use crossguard::sanitize;
use crossguard::store::{S3Options, Store};

/// Freed memory is zeroed (src/alloc.rs), so what the AWS SDK frees after signing a request
/// with a customer session (the session token in its header buffers) does not linger.
#[global_allocator]
static ALLOCATOR: crossguard::alloc::ZeroOnFree = crossguard::alloc::ZeroOnFree;

/// crossguard: safe cross-account access to customers' AWS accounts and EKS clusters.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (uses KUBECONFIG or in-cluster config, and the standard AWS chain).
    Run(Box<RunArgs>),
    /// Print one stored object (a ManagedCluster's `status.reportRef`, or a key under
    /// `tenants/`) decrypted with its tenant's data key, using the operator's identity:
    /// its KMS key, or the local key Secret it created (docs/data-protection.md).
    StoreGet(Box<StoreGetArgs>),
    /// Re-wrap every tenant's data keys with the current key-encryption key, after the
    /// KEK changed (a new KMS key in --store-kms-key-id, or a new `kek-<id>` made `current`
    /// in the local key Secret); no stored object is rewritten. Run it with the old KEK
    /// still available (the old KMS key usable, the old `kek-<id>` still in the Secret);
    /// afterwards the old KEK can go. Safe to repeat (docs/data-protection.md "Rotation").
    StoreRewrapKeys(Box<StoreAccessArgs>),
    /// Print a ManagedCluster's cost and savings history (one point per analysis) from the
    /// store, decrypted with the operator's identity like `store-get`: a table, json or csv
    /// (docs/history.md).
    History(Box<HistoryArgs>),
    /// Sanitize Kubernetes objects (kubectl get -o json / YAML) from a file or stdin: shows
    /// exactly what crossguard would keep of a workload.
    ///
    /// `crossguard sanitize objects.json`, or `kubectl get deploy -A -o json | crossguard
    /// sanitize`. Exit status 1 on input that holds no Kubernetes object or cannot be
    /// parsed (docs/cli.md).
    Sanitize {
        /// The objects to sanitize: a file, or `-` (the default) for stdin.
        #[arg(default_value = "-", value_name = "FILE")]
        input: PathBuf,
        /// Extra case-insensitive substrings marking sensitive env var names (repeatable).
        #[arg(long = "extra-sensitive-name")]
        extra_sensitive_names: Vec<String>,
        /// Output format: the sanitized objects as json or yaml.
        #[arg(short = 'o', long, default_value = "json", value_parser = OutputFormat::parser(&[OutputFormat::Json, OutputFormat::Yaml]))]
        output: OutputFormat,
    },
    /// Analyse a `kubectl get … -A -o json` dump offline (sanitized first): what the
    /// cluster costs and what could be saved.
    ///
    /// `crossguard analyze dump.json`, or `kubectl get
    /// nodes,pods,deployments,replicasets,pdb -A -o json | crossguard analyze -`. Exit
    /// status 1 on bad input: no nodes, an unparsable object or quantity, a malformed
    /// prices or inventory file (docs/cli.md).
    Analyze {
        /// The dump to analyse: a file, or `-` (the default) for stdin.
        #[arg(value_name = "FILE", conflicts_with = "snapshot")]
        input: Option<PathBuf>,
        /// The dump, as a flag: the name this argument had before it became positional;
        /// kept (hidden) so that existing scripts work.
        #[arg(long, hide = true, value_name = "FILE")]
        snapshot: Option<PathBuf>,
        /// JSON price table overriding the bundled on-demand prices (negotiated rates);
        /// checked before the dump is read. The same flag as the operator's (`run
        /// --prices-file`); the older `--prices` still works.
        #[arg(long = "prices-file", alias = "prices", value_name = "FILE")]
        prices: Option<PathBuf>,
        /// Region for pricing when nodes carry no region label.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// The AWS inventory the operator analysed with (nodegroup minimum sizes, instances,
        /// instance shapes): a report the operator stored (its `awsInventory`), or a JSON
        /// file of that shape. With it, a dump of the same objects gives the operator's
        /// figures; without it the report notes what it could not know.
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// Whose scale-down rules decide which pods keep their node: cluster-autoscaler
        /// (its defaults) or karpenter (docs/analysis.md "Scale-down profiles").
        #[arg(long, default_value = "cluster-autoscaler")]
        scale_down_profile: analysis::ScaleDownProfile,
        /// Output format: text (a summary naming the nodes to remove and the rules keeping the
        /// others), json or yaml (the full report), csv (one row per node, for spreadsheets).
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Print the RBAC a customer applies in their EKS cluster, with the commands giving
    /// crossguard's role access (EKS access entry, or the aws-auth ConfigMap entry):
    /// read-only (no Secrets, no ConfigMaps, no writes), plus in automated mode a separate
    /// role for cordon and eviction only. docs/onboarding.md walks through it.
    OnboardingRbac(onboarding::cli::RbacArgs),
    /// Print the IAM role a customer lets crossguard assume, as CloudFormation (JSON or
    /// YAML; ExternalId and OperatorPrincipal are parameters, the flags' values their
    /// defaults) or Terraform: read-only, or read-only plus tag-conditioned scale-in;
    /// optionally with the access-key audit. docs/onboarding.md walks through it.
    OnboardingTemplate(Box<onboarding::cli::TemplateArgs>),
    /// Print the IAM policy the operator's own role needs (assuming customer roles, the
    /// Price List API, the S3 store and its KMS key) and its trust policy for IRSA or EKS
    /// Pod Identity, as JSON.
    OperatorPolicy(onboarding::cli::OperatorPolicyArgs),
    /// Set a CustomerAccount's spec.roleArn once the customer deployed the role: from the
    /// stack's RoleArn output (`--stack-outputs`) or `--role-arn`, checked to be a role in
    /// the account (uses KUBECONFIG like kubectl).
    OnboardingComplete(crossguard::onboarding_complete::Args),
    /// Write the CustomResourceDefinitions to crds/ and the Helm chart.
    Crdgen {
        /// Repository root to write into.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

#[derive(clap::Args)]
struct StoreGetArgs {
    /// The object: a report reference (`<store URL>/<key>`) or a key.
    #[arg(value_name = "KEY")]
    key: String,
    #[command(flatten)]
    store: StoreAccessArgs,
}

/// How a command-line tool reaches the operator's store and its key-encryption key: the
/// same flags and environment variables as `crossguard run`.
#[derive(clap::Args)]
struct StoreAccessArgs {
    /// The store, as the operator's --store-url.
    #[arg(
        long,
        env = "CROSSGUARD_STORE_URL",
        default_value = "file:///var/lib/crossguard"
    )]
    store_url: String,
    /// Endpoint override for an S3-compatible store, as the operator's.
    #[arg(long, env = "CROSSGUARD_STORE_ENDPOINT")]
    store_endpoint: Option<String>,
    /// The KMS key wrapping the data keys, as the operator's --store-kms-key-id.
    #[arg(long, env = "CROSSGUARD_STORE_KMS_KEY_ID")]
    store_kms_key_id: Option<String>,
    /// The local key Secret, as the operator's --store-key-secret.
    #[arg(
        long,
        env = "CROSSGUARD_STORE_KEY_SECRET",
        default_value = "crossguard-store-kek"
    )]
    store_key_secret: String,
    /// The operator's namespace (where the local key Secret is); default: the kubeconfig's.
    #[arg(long)]
    operator_namespace: Option<String>,
}

#[derive(clap::Args)]
struct HistoryArgs {
    /// The ManagedCluster's namespace.
    #[arg(long, short = 'n')]
    namespace: String,
    /// The ManagedCluster's name.
    #[arg(long)]
    cluster: String,
    /// From when: a duration back from now (`30d`, `12h`, `1y`) or an RFC 3339 time.
    #[arg(long, default_value = "30d")]
    since: String,
    /// The CustomerAccount's UID (the tenant); default: read from the ManagedCluster's
    /// account with the Kubernetes API. Needed for a cluster whose objects are gone.
    #[arg(long)]
    account_uid: Option<String>,
    /// Output format: table (for people), json (the points) or csv (one row per point).
    #[arg(short = 'o', long, default_value = "table", value_parser = crossguard::cli::history::output_parser())]
    output: OutputFormat,
    #[command(flatten)]
    store: StoreAccessArgs,
}

async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    use crossguard::api::{CustomerAccount, ManagedCluster};
    let since = crossguard::cli::history::parse_since(&args.since, jiff::Timestamp::now())?;
    let (ns, name) = (args.namespace.as_str(), args.cluster.as_str());
    let needs_kube = args.account_uid.is_none() || args.store.store_kms_key_id.is_none();
    let client = if needs_kube {
        Some(
            kube::Client::try_default()
                .await
                .context("reading the Kubernetes client configuration")?,
        )
    } else {
        None
    };
    let tenant = match (&args.account_uid, &client) {
        (Some(uid), _) => uid.clone(),
        (None, Some(client)) => {
            let clusters: kube::Api<ManagedCluster> = kube::Api::namespaced(client.clone(), ns);
            let cluster = clusters
                .get_opt(name)
                .await
                .with_context(|| format!("reading ManagedCluster {ns}/{name}"))?
                .with_context(|| {
                    format!("ManagedCluster {ns}/{name} not found (`kubectl get managedclusters -n {ns}` lists them; --account-uid reads the history of a deleted one)")
                })?;
            let account = &cluster.spec.account_ref.name;
            let accounts: kube::Api<CustomerAccount> = kube::Api::namespaced(client.clone(), ns);
            accounts
                .get_opt(account)
                .await
                .with_context(|| format!("reading CustomerAccount {ns}/{account}"))?
                .with_context(|| format!("CustomerAccount {ns}/{account} of ManagedCluster {ns}/{name} not found: its history was erased with it, or pass --account-uid"))?
                .metadata
                .uid
                .with_context(|| format!("CustomerAccount {ns}/{account} has no UID"))?
        }
        (None, None) => unreachable!("a client is made when no --account-uid is given"),
    };
    let store = open_store(client.as_ref(), &args.store).await?;
    let points = crossguard::history::read(&store, &tenant, ns, name, since).await?;
    if points.is_empty() {
        anyhow::bail!(
            "no history for ManagedCluster {ns}/{name} since {since}: a point is recorded after each successful analysis (status.lastAnalysisAt), and points older than the account's spec.dataRetentionDays are deleted"
        );
    }
    use crossguard::cli::history as render;
    let bytes = match args.output {
        OutputFormat::Json => render::to_json(&points),
        OutputFormat::Csv => render::to_csv(&points).context("writing CSV")?,
        _ => render::to_table(ns, name, &points).into_bytes(),
    };
    crossguard::cli::emit(&bytes).context("writing to stdout")
}

/// The operator's store with its key-encryption key: KMS when a key id is given (no
/// Kubernetes access needed), else the local key Secret in `--operator-namespace` (default:
/// the kubeconfig's namespace), read with `client` or a client made here; never creating
/// the Secret (only the operator does that).
async fn open_store(
    client: Option<&kube::Client>,
    args: &StoreAccessArgs,
) -> anyhow::Result<Store> {
    // A tool only reads: a local store that is not there is a wrong --store-url (opening it
    // would create an empty directory and answer "nothing stored").
    if let Some(dir) = args.store_url.strip_prefix("file://")
        && !std::path::Path::new(dir).is_dir()
    {
        anyhow::bail!(
            "the store {} does not exist: give the operator's store with --store-url or CROSSGUARD_STORE_URL (a file:// store is a directory of the operator's pod: run this there, e.g. kubectl exec, or copy the directory)",
            args.store_url
        );
    }
    let store = Store::open(
        &args.store_url,
        &S3Options {
            sse_kms_key_id: None,
            endpoint: args.store_endpoint.clone(),
        },
    )?;
    let kek = if args.store_kms_key_id.is_some() {
        store_kek_without_kube(args.store_kms_key_id.as_deref()).await
    } else {
        let client = match client {
            Some(c) => c.clone(),
            None => kube::Client::try_default()
                .await
                .context("reading the Kubernetes client configuration for the key Secret")?,
        };
        let namespace = args
            .operator_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        store_kek(&client, None, &namespace, &args.store_key_secret, false)
            .await
            .with_context(|| {
                format!("the key Secret is in the operator's namespace (here {namespace}): is --operator-namespace right?")
            })?
    };
    Ok(store.with_encryption(kek, crossguard::store::KeyPolicy::default()))
}

async fn store_rewrap_keys(args: StoreAccessArgs) -> anyhow::Result<()> {
    let store = open_store(None, &args).await?;
    let tenants = store
        .tenants_with_keys()
        .await
        .context("listing the tenants' keyrings")?;
    if tenants.is_empty() {
        anyhow::bail!(
            "no data keys in the store {}: is --store-url the operator's store? (Nothing was re-wrapped; do not remove the old key-encryption key on the strength of this run.)",
            store.location
        );
    }
    let mut rewrapped = 0;
    for tenant in &tenants {
        let n = store
            .rewrap_data_keys(tenant)
            .await
            .with_context(|| format!("re-wrapping the data keys of tenant {tenant}"))?;
        if n > 0 {
            println!("tenant {tenant}: {n} data key(s) re-wrapped");
        }
        rewrapped += n;
    }
    println!(
        "{rewrapped} data key(s) of {} tenant(s) re-wrapped with the current key-encryption key; no object was rewritten",
        tenants.len()
    );
    Ok(())
}

async fn store_get(args: StoreGetArgs) -> anyhow::Result<()> {
    let store = open_store(None, &args.store).await?;
    let key = args
        .key
        .strip_prefix(&format!("{}/", args.store.store_url.trim_end_matches('/')))
        .unwrap_or(&args.key);
    let bytes = store
        .get(key)
        .await
        .with_context(|| format!("reading {key}"))?;
    use std::io::Write as _;
    std::io::stdout().write_all(&bytes)?;
    Ok(())
}

async fn store_kek_without_kube(kms_key_id: Option<&str>) -> Arc<dyn crossguard::store::keys::Kek> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Arc::new(crossguard::store::keys::KmsKek::new(
        aws_sdk_kms::Client::new(&config),
        kms_key_id.unwrap_or_default(),
    ))
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address for /metrics, /healthz, /readyz and the dashboard.
    #[arg(long, env = "CROSSGUARD_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Serve the read-only dashboard at /dashboard/ (viewers sign in with a Kubernetes
    /// bearer token; TokenReview and SubjectAccessReview decide what they see).
    #[arg(long, env = "CROSSGUARD_DASHBOARD", default_value_t = true, action = clap::ArgAction::Set)]
    dashboard: bool,
    /// Only watch this namespace (default: all namespaces).
    #[arg(long, env = "CROSSGUARD_NAMESPACE")]
    namespace: Option<String>,
    /// Run leader election on a coordination.k8s.io Lease so that only one replica
    /// reconciles and acts (`--leader-elect=false` for a single replica without Lease RBAC).
    #[arg(long, env = "CROSSGUARD_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease: the operator's own (the chart sets POD_NAMESPACE);
    /// default: the kubeconfig's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the leader Lease; default: `crossguard-leader` unsharded and for shard 0,
    /// `crossguard-leader-shard-N` for shard N ≥ 1 (named after N only, so a Deployment
    /// whose shard count changes keeps its Lease).
    #[arg(long, env = "CROSSGUARD_LEADER_ELECTION_ID")]
    leader_election_id: Option<String>,
    /// This Deployment's shard of a fleet split across several: `N/M`, shard N (counted
    /// from 0) of M. It then reconciles only the CustomerAccounts labelled
    /// `crossguard.dev/shard=N` and their ManagedClusters; shard 0 also reports objects no
    /// shard owns. Default: unsharded, every account (docs/operations.md "Sharding").
    #[arg(long, env = "CROSSGUARD_SHARD", default_value = "0/1")]
    shard: crossguard::shard::Shard,
    /// This replica's identity in the Lease (the chart sets the pod name); default: the
    /// host name and a random suffix.
    #[arg(long, env = "POD_NAME")]
    leader_identity: Option<String>,
    /// Seconds a standby waits after the leader's last renewal before taking over
    /// (client-go's default: 15).
    #[arg(long, env = "CROSSGUARD_LEADER_LEASE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(7..=300))]
    leader_lease_seconds: u64,
    /// Seconds before expiry at which the leader renews; must be shorter than the lease and
    /// longer than a renewal round trip.
    #[arg(long, env = "CROSSGUARD_LEADER_RENEW_BEFORE_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(4..=297))]
    leader_renew_before_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, env = "CROSSGUARD_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// sts:SourceIdentity set on every session, naming the operator in customers' CloudTrail.
    #[arg(
        long,
        env = "CROSSGUARD_SOURCE_IDENTITY",
        default_value = "crossguard-operator"
    )]
    source_identity: String,
    /// Legacy and less safe: take the operator's own AWS keys from this Secret
    /// (`NAMESPACE/NAME`, keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) instead of
    /// IRSA / Pod Identity.
    #[arg(long, env = "CROSSGUARD_STATIC_CREDENTIALS_SECRET")]
    static_credentials_secret: Option<String>,
    /// Where reports, sanitized snapshots and the audit log go: file:///dir, s3://bucket[/prefix].
    #[arg(
        long,
        env = "CROSSGUARD_STORE_URL",
        default_value = "file:///var/lib/crossguard"
    )]
    store_url: String,
    /// KMS key id for SSE-KMS on the S3 store.
    #[arg(long, env = "CROSSGUARD_STORE_SSE_KMS_KEY_ID")]
    store_sse_kms_key_id: Option<String>,
    /// Endpoint override for an S3-compatible store (default: AWS).
    #[arg(long, env = "CROSSGUARD_STORE_ENDPOINT")]
    store_endpoint: Option<String>,
    /// KMS key (id, ARN or alias) wrapping the tenants' data keys for client-side
    /// encryption of everything stored (docs/data-protection.md). Without it a local key in
    /// the Secret --store-key-secret wraps them (less safe).
    #[arg(long, env = "CROSSGUARD_STORE_KMS_KEY_ID")]
    store_kms_key_id: Option<String>,
    /// The Secret (in the operator's namespace) holding the local key-encryption key when
    /// no KMS key is set; created on the first start.
    #[arg(
        long,
        env = "CROSSGUARD_STORE_KEY_SECRET",
        default_value = "crossguard-store-kek"
    )]
    store_key_secret: String,
    /// How often new objects get a new data key, e.g. 720h; older objects keep theirs.
    #[arg(long, env = "CROSSGUARD_STORE_DATA_KEY_ROTATION", default_value = "720h", value_parser = refresh_interval)]
    store_data_key_rotation: std::time::Duration,
    /// JSON price table overriding the bundled on-demand prices (negotiated rates); the
    /// same flag as `analyze --prices-file`. Checked at start-up.
    #[arg(long, env = "CROSSGUARD_PRICES_FILE", value_name = "FILE")]
    prices_file: Option<PathBuf>,
    /// Region of the AWS Price List API endpoint that on-demand prices for regions the
    /// bundled table and the prices file do not cover are fetched from (pricing:GetProducts,
    /// with the operator's own identity). The API has endpoints in a few regions only
    /// (us-east-1, eu-central-1, ap-south-1, …); the prices are the same from each.
    #[arg(long, env = "CROSSGUARD_PRICING_REGION", default_value = crossguard::aws::price_list::DEFAULT_ENDPOINT_REGION)]
    pricing_region: String,
    /// How old fetched prices (kept in the store under prices/) may get before they are
    /// fetched again, e.g. 168h.
    #[arg(long, env = "CROSSGUARD_PRICE_REFRESH_INTERVAL", default_value = "168h", value_parser = refresh_interval)]
    price_refresh_interval: std::time::Duration,
    /// Never call the AWS Price List API (e.g. no route to it): nodes the bundled table and
    /// the prices file do not price stay unpriced.
    #[arg(long, env = "CROSSGUARD_NO_PRICE_LIST_API")]
    no_price_list_api: bool,
    /// Slack Web API base URL for key-audit messages (tests and the demo point it at a
    /// local receiver; plain http only on loopback).
    #[arg(long, env = "CROSSGUARD_SLACK_API_URL", default_value = controller::SLACK_API)]
    slack_api_url: String,
    /// ARN of the operator's own IAM role, the one principal customers' trust policies
    /// should name; the role-posture check reports a trust policy naming anything else.
    /// When unset, only account roots and "*" are reported.
    #[arg(long, env = "CROSSGUARD_OPERATOR_PRINCIPAL")]
    operator_principal: Option<String>,
    /// Reconciles each controller (CustomerAccount, ManagedCluster) runs at once; never two
    /// of the same object. A slow or failing tenant holds one slot.
    #[arg(
        long,
        env = "CROSSGUARD_MAX_CONCURRENT_RECONCILES",
        default_value_t = controller::DEFAULT_MAX_CONCURRENT_RECONCILES,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    max_concurrent_reconciles: u16,
    /// Memory, in MiB, that the analyses running at once may need between them: an
    /// analysis reserves an estimate from the size of its cluster (about 3 KiB per object
    /// read, plus 32 MiB) before it reads the cluster, and waits while the budget is taken.
    /// Leave the operator's idle memory beside it inside the container's memory limit.
    #[arg(
        long,
        env = "CROSSGUARD_ANALYSIS_MEMORY_BUDGET",
        default_value_t = controller::admission::DEFAULT_BUDGET_MIB,
        value_parser = clap::value_parser!(u32).range(64..=1_048_576)
    )]
    analysis_memory_budget: u32,
    /// Client-side rate limit per customer account (and region) for one AWS service,
    /// SERVICE=BURST/PER_SECOND, e.g. ec2=20/5; repeat the flag or separate with commas.
    /// Services: ec2, autoscaling, eks, sts, iam, savingsplans. Defaults: ec2=20/5 (EC2
    /// allows each account 100 burst, 20/s per non-mutating action, shared with the
    /// customer's own tools), autoscaling, eks, sts and iam 10/2, savingsplans 5/1.
    #[arg(long, env = "CROSSGUARD_AWS_RATE_LIMITS", value_delimiter = ',', value_parser = rate_limit)]
    aws_rate_limit: Vec<String>,
    /// Longest an AWS call waits for a token of its account's rate limit before it fails
    /// as throttled (not sent; the reconcile backs off), e.g. 30s.
    #[arg(long, env = "CROSSGUARD_AWS_RATE_LIMIT_MAX_WAIT", default_value = "30s", value_parser = rate_limit_max_wait)]
    aws_rate_limit_max_wait: std::time::Duration,
}

/// `--aws-rate-limit`: checked here so that a typo stops the operator at start-up.
fn rate_limit(value: &str) -> Result<String, String> {
    crossguard::aws::limits::parse_override(value)?;
    Ok(value.trim().to_string())
}

/// `--aws-rate-limit-max-wait`: a duration from 1s to 10m.
fn rate_limit_max_wait(value: &str) -> Result<std::time::Duration, String> {
    let d = crossguard::api::validate::parse_duration("--aws-rate-limit-max-wait", value)?;
    if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(600)).contains(&d) {
        return Err(format!(
            "--aws-rate-limit-max-wait: \"{value}\" must be from 1s to 10m"
        ));
    }
    Ok(d)
}

/// The bundled table, under the Price List answers an operator's report carries in its
/// inventory (for its region), under the prices file: the operator's own order.
fn load_prices(
    file: Option<PriceTable>,
    inventory: &analysis::AwsInventory,
) -> anyhow::Result<PriceTable> {
    let mut table = PriceTable::bundled();
    for (os, listed) in &inventory.list_prices {
        let layer = listed.layer(os, &inventory.region).with_context(|| {
            format!(
                "the inventory's Price List prices for {os} in {} are invalid",
                inventory.region
            )
        })?;
        table = table.with_overrides(layer);
    }
    match file {
        None => Ok(table),
        Some(overrides) => Ok(table.with_overrides(overrides)),
    }
}

/// The AWS inventory in `path`: a report's `awsInventory`, or a bare inventory object.
fn load_inventory(path: &std::path::Path) -> anyhow::Result<analysis::AwsInventory> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Holder {
        aws_inventory: Option<analysis::AwsInventory>,
        #[serde(flatten)]
        rest: serde_json::Map<String, serde_json::Value>,
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if crossguard::store::envelope::is_sealed(&bytes) {
        anyhow::bail!(
            "{} is an encrypted stored object: decrypt it first with `crossguard store-get <key> > report.json`",
            path.display()
        );
    }
    let holder: Holder = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing the inventory in {}", path.display()))?;
    if let Some(inventory) = holder.aws_inventory {
        return Ok(inventory);
    }
    // A report without `awsInventory` was made offline; anything else must be an inventory.
    if holder.rest.contains_key("currentMonthlyCost") {
        anyhow::bail!(
            "{} is a report made without AWS inventory (offline); pass a report the operator stored",
            path.display()
        );
    }
    let inventory: analysis::AwsInventory =
        serde_json::from_value(serde_json::Value::Object(holder.rest))
            .with_context(|| format!("parsing the inventory in {}", path.display()))?;
    if inventory.is_empty() {
        anyhow::bail!(
            "{} holds no AWS inventory (no nodegroups, instances or instanceTypes)",
            path.display()
        );
    }
    Ok(inventory)
}

/// The prices file, when given.
fn load_price_file(file: Option<&std::path::Path>) -> anyhow::Result<Option<PriceTable>> {
    let Some(path) = file else { return Ok(None) };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let table = PriceTable::from_json(&bytes)
        .with_context(|| format!("the prices file {}", path.display()))?;
    Ok(Some(table))
}

/// `--price-refresh-interval`: a duration such as 168h, at least one hour.
fn refresh_interval(value: &str) -> Result<std::time::Duration, String> {
    let d = crossguard::api::validate::parse_duration("--price-refresh-interval", value)?;
    if d < std::time::Duration::from_secs(3600) {
        return Err(format!(
            "--price-refresh-interval: \"{value}\" is shorter than 1h"
        ));
    }
    Ok(d)
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(crossguard::telemetry::filter(
            std::env::var("RUST_LOG").ok().as_deref(),
        ))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// With the legacy static keys, check their age at start and daily, on the same ladder as
/// customers' keys (engineer defaults: warnings from day 76, rotation due on day 91):
/// logged at warn (error once overdue) and exported as
/// `crossguard_operator_access_key_age_days`. crossguard cannot rotate its own key; the
/// message says how.
async fn watch_own_key(factory: Arc<SdkFactory>, access_key_id: String, metrics: Arc<Metrics>) {
    let defaults = crossguard::api::AccessKeyAudit::default();
    let first_warning = defaults.warn_days.iter().copied().min().unwrap_or(76);
    loop {
        match factory.own_key_created(&access_key_id).await {
            Ok(Some(created)) => {
                let age = crossguard::keyaudit::ladder::age_days(created, jiff::Timestamp::now());
                metrics.operator_key_age(age);
                let how = "create a new key for the operator's IAM user, put it in the --static-credentials-secret Secret, restart the operator, then deactivate the old key (better: move to IRSA or EKS Pod Identity)";
                if age >= defaults.disable_day {
                    tracing::error!(key = %access_key_id, age_days = age, "the operator's own access key is past the {}-day rotation limit: {how}", defaults.disable_day);
                } else if age >= first_warning {
                    tracing::warn!(key = %access_key_id, age_days = age, "the operator's own access key must be rotated by day {}: {how}", defaults.disable_day);
                } else {
                    tracing::info!(key = %access_key_id, age_days = age, "the operator's own access key is within its rotation period");
                }
            }
            Ok(None) => {
                tracing::warn!(key = %access_key_id, "the operator's own access key is not among its user's keys; its age is unknown")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the age of the operator's own access key (grant iam:ListAccessKeys on the operator's user)")
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(24 * 60 * 60)).await;
    }
}

/// Write `text` to stdout ([`crossguard::cli::emit`]: a reader that went away ends the
/// process quietly, by SIGPIPE, as with other command-line tools).
fn emit(text: &str) -> anyhow::Result<()> {
    crossguard::cli::emit(text.as_bytes()).context("writing to stdout")
}

/// Read the legacy static keys from `NAMESPACE/NAME`.
async fn read_static_keys(client: &kube::Client, reference: &str) -> anyhow::Result<StaticKeys> {
    let (ns, name) = reference
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .with_context(|| {
            format!("--static-credentials-secret must be NAMESPACE/NAME, got {reference:?}")
        })?;
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    let secret = api
        .get(name)
        .await
        .with_context(|| format!("reading Secret {reference}"))?;
    let field = |key: &str| -> anyhow::Result<String> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .with_context(|| format!("Secret {reference} has no {key}"))?;
        String::from_utf8(bytes.0.clone())
            .with_context(|| format!("{key} in Secret {reference} is not UTF-8"))
    };
    Ok(StaticKeys {
        access_key_id: field("AWS_ACCESS_KEY_ID")?,
        secret_access_key: secrecy::SecretString::from(field("AWS_SECRET_ACCESS_KEY")?),
    })
}

/// The key-encryption key of the store: KMS when a key id is given, else the local key in
/// the Secret `namespace/secret` (created when `create`).
async fn store_kek(
    client: &kube::Client,
    kms_key_id: Option<&str>,
    namespace: &str,
    secret: &str,
    create: bool,
) -> anyhow::Result<Arc<dyn crossguard::store::keys::Kek>> {
    use crossguard::store::keys;
    Ok(match kms_key_id {
        // The operator's own identity (IRSA / Pod Identity), never a customer's.
        Some(key_id) => store_kek_without_kube(Some(key_id)).await,
        None => {
            tracing::warn!(
                namespace,
                secret,
                "data keys are wrapped by a local key in a Secret; set --store-kms-key-id to use KMS"
            );
            Arc::new(
                keys::local_kek_from_secret(client, namespace, secret, create)
                    .await
                    .context("loading the store's local key-encryption key")?,
            )
        }
    })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    crossguard::telemetry::disable_core_dumps().context("disabling core dumps")?;
    let metrics = Arc::new(Metrics::new());
    // Not ready until both kinds' watches completed their initial list (controller::run).
    let readiness = Arc::new(Readiness::default());
    let dashboard = Arc::new(crossguard::dashboard::Slot::new(args.dashboard));
    let (bound, _server) = http::serve(
        args.http_addr,
        HttpState {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            dashboard: dashboard.clone(),
        },
    )
    .await
    .with_context(|| format!("binding {}", args.http_addr))?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz, /readyz");

    let store = Store::open(
        &args.store_url,
        &S3Options {
            sse_kms_key_id: args.store_sse_kms_key_id.clone(),
            endpoint: args.store_endpoint.clone(),
        },
    )?;
    let kube_config = kube::Config::infer()
        .await
        .context("reading the Kubernetes client configuration (KUBECONFIG or in-cluster)")?;
    let api_server = kube_config.cluster_url.to_string();
    tracing::info!(api_server = %api_server, "Kubernetes API server");
    let client = kube::Client::try_from(kube_config)
        .with_context(|| format!("building a Kubernetes client for {api_server}"))?;
    let own_namespace = args
        .leader_election_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let static_keys = match &args.static_credentials_secret {
        Some(reference) => {
            tracing::warn!(secret = %reference, "using long-lived AWS keys from a Secret; prefer IRSA or EKS Pod Identity");
            Some(read_static_keys(&client, reference).await?)
        }
        None => None,
    };
    let own_key = static_keys.as_ref().map(|k| k.access_key_id.clone());
    // One signal handler for the whole run, so a signal between election and the
    // controllers' start is not lost.
    let (signal_tx, mut signalled) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        controller::shutdown_signal().await;
        let _ = signal_tx.send(true);
    });
    // The key-encryption key before the election: the leader writes the store, and every
    // replica's dashboard reads it. Loading it waits for the API server (the local key
    // Secret) or KMS like everything else, and a signal still stops the wait.
    let Some(kek) =
        load_store_kek(&client, &args, &own_namespace, &api_server, &mut signalled).await
    else {
        tracing::info!("shut down");
        return Ok(());
    };
    let store = store.with_encryption(
        kek,
        crossguard::store::KeyPolicy {
            rotate_after: args.store_data_key_rotation,
            ..Default::default()
        },
    );
    tracing::info!(store = %store.location, "report store ready (client-side encrypted)");
    if dashboard.enabled() {
        dashboard.fill(crossguard::dashboard::Dashboard::new(
            client.clone(),
            store.clone(),
            args.namespace.clone(),
        ));
        tracing::info!(addr = %bound, "serving the dashboard at /dashboard/ (Kubernetes bearer tokens, RBAC per namespace)");
    }
    // Only the leader reconciles and acts; a standby waits here (ready, see /readyz).
    let leadership = if args.leader_elect {
        let config = crossguard::leader::ElectionConfig {
            namespace: args
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string()),
            lease_name: args
                .leader_election_id
                .clone()
                .unwrap_or_else(|| args.shard.lease_name(DEFAULT_LEASE)),
            identity: args
                .leader_identity
                .clone()
                .unwrap_or_else(default_identity),
            lease_duration: std::time::Duration::from_secs(args.leader_lease_seconds),
            renew_before: std::time::Duration::from_secs(args.leader_renew_before_seconds),
            check_every: std::time::Duration::from_secs(1),
            api_server: api_server.clone(),
        };
        metrics.set_leader(false);
        let standby = readiness.clone();
        tokio::select! {
            elected = crossguard::leader::lead(client.clone(), config, move || standby.standby()) => elected?,
            () = stopped(&mut signalled) => {
                tracing::info!("shut down while standing by");
                return Ok(());
            }
        }
    } else {
        crossguard::leader::Leadership::sole()
    };
    readiness.leading();
    metrics.set_leader(true);
    let rate_limits = crossguard::aws::limits::RateLimits {
        max_wait: args.aws_rate_limit_max_wait,
        ..Default::default()
    }
    .with_overrides(&args.aws_rate_limit)
    .map_err(|e| anyhow::anyhow!("--aws-rate-limit: {e}"))?;
    tracing::info!(
        limits = ?rate_limits.per_service.iter().map(|(s, l)| format!("{s}={l}")).collect::<Vec<_>>(),
        max_wait = ?rate_limits.max_wait,
        max_concurrent_reconciles = args.max_concurrent_reconciles,
        "per-account AWS rate limits"
    );
    let factory = Arc::new(
        SdkFactory::from_env(metrics.clone(), static_keys)
            .await
            .with_leadership(leadership.clone())
            .with_rate_limits(rate_limits),
    );
    let pricing = factory.operator_pricing(&args.pricing_region);
    if let Some(key) = own_key {
        tokio::spawn(watch_own_key(factory.clone(), key, metrics.clone()));
    }
    let clock = Arc::new(SystemClock);
    let broker = Arc::new(Broker::new(
        factory,
        clock.clone(),
        metrics.clone(),
        args.source_identity,
    ));
    let price_file = load_price_file(args.prices_file.as_deref())?;
    let prices = match &price_file {
        Some(file) => PriceTable::bundled().with_overrides(file.clone()),
        None => PriceTable::bundled(),
    };
    let price_cache = (!args.no_price_list_api).then(|| {
        controller::prices::PriceCache::new(
            pricing,
            args.pricing_region.clone(),
            PriceTable::bundled(),
            price_file,
            args.price_refresh_interval,
            store.clone(),
            clock.clone(),
        )
    });
    let notifier = crossguard::keyaudit::notify::Sender::new(
        &args.slack_api_url,
        std::time::Duration::from_secs(10),
    )
    .context("--slack-api-url")?;
    let mut ctx = Context::new(client, broker, metrics, clock, store, prices)
        .with_notifier(notifier)
        .with_operator_principal(args.operator_principal)
        .with_leadership(leadership.clone())
        .with_max_concurrent_reconciles(args.max_concurrent_reconciles)
        .with_analysis_memory_budget(args.analysis_memory_budget)
        .with_shard(args.shard);
    if let Some(cache) = price_cache {
        ctx = ctx.with_price_cache(cache);
    }
    let ctx = Arc::new(ctx);
    tracing::info!(
        namespace = args.namespace.as_deref().unwrap_or("<all>"),
        shard = %args.shard,
        "controllers starting"
    );
    let lost = leadership.clone();
    let stop = async move {
        tokio::select! {
            () = stopped(&mut signalled) => {}
            () = lost.lost() => {}
        }
    };
    controller::run(ctx, args.namespace, readiness, api_server, stop).await;
    if leadership.has_lost() {
        anyhow::bail!("leadership lost: exiting so that this pod restarts as a standby");
    }
    // A signal: hand the Lease over so a standby need not wait for it to expire.
    leadership
        .step_down(std::time::Duration::from_secs(2))
        .await;
    tracing::info!("shut down");
    Ok(())
}

/// The leader Lease's name unsharded and for shard 0 ([`crossguard::shard::Shard::lease_name`]).
const DEFAULT_LEASE: &str = "crossguard-leader";

/// The store's key-encryption key ([`store_kek`]), retried with backoff (1 s doubling to
/// 30 s) while the API server or KMS cannot be reached or the key Secret is unusable, each
/// failure logged as an error that says why; None when a shutdown signal came first.
async fn load_store_kek(
    client: &kube::Client,
    args: &RunArgs,
    namespace: &str,
    api_server: &str,
    signalled: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Arc<dyn crossguard::store::keys::Kek>> {
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        let attempt = store_kek(
            client,
            args.store_kms_key_id.as_deref(),
            namespace,
            &args.store_key_secret,
            true,
        );
        tokio::select! {
            loaded = attempt => match loaded {
                Ok(kek) => return Some(kek),
                Err(e) if unreachable_api_server(&e) => tracing::error!(
                    "cannot reach the Kubernetes API server {api_server}: {e:#}; retrying in {}s (check KUBECONFIG or the in-cluster service)",
                    delay.as_secs()
                ),
                Err(e) => tracing::error!("{e:#}; retrying in {}s", delay.as_secs()),
            },
            () = stopped(signalled) => return None,
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(signalled) => return None,
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(30));
    }
}

/// Whether loading the local key Secret failed because the API server could not be reached
/// (rather than refusing or the Secret being unusable).
fn unreachable_api_server(e: &anyhow::Error) -> bool {
    use crossguard::store::keys::KekSecretError;
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<KekSecretError>(),
            Some(KekSecretError::Api {
                cause: kube::Error::Service(_) | kube::Error::HyperError(_),
                ..
            })
        )
    })
}

/// Resolves once the shutdown signal was seen (now or earlier).
async fn stopped(signalled: &mut tokio::sync::watch::Receiver<bool>) {
    // An error means the signal task is gone, which only happens after it sent.
    let _ = signalled.wait_for(|seen| *seen).await;
}

/// A leader identity for a replica that was given none: host name plus a random suffix,
/// so two processes on one host never share it.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "crossguard".to_string());
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// Runs the subcommand; an error is printed as one line, `error: what failed: why`, each
/// cause once, with exit status 1 (2 for bad command-line usage, from clap).
fn main() -> std::process::ExitCode {
    match dispatch() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crossguard::cli::error_line(e.chain()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch() -> anyhow::Result<()> {
    crossguard::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { root } => {
            for path in crossguard::crdgen::write_all(&root)? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::OnboardingRbac(args) => emit(&onboarding::cli::rbac(&args)?),
        Command::OnboardingTemplate(args) => emit(&onboarding::cli::template(&args)?),
        Command::OperatorPolicy(args) => emit(&onboarding::cli::operator_policy(&args)?),
        Command::Sanitize {
            input,
            extra_sensitive_names,
            output,
        } => sanitize_command(&input, &extra_sensitive_names, output),
        Command::Analyze {
            input,
            snapshot,
            prices,
            region,
            inventory,
            scale_down_profile,
            output,
        } => {
            // Before the reader starts its worker threads: freed batches and merged
            // per-worker results then land in two heaps, not one per thread (peak RSS on
            // the 203 MB dump, BENCHMARKS.md "Analysis").
            crossguard::alloc::limit_malloc_arenas(crossguard::alloc::OPERATOR_MALLOC_ARENAS);
            let input = input.or(snapshot).unwrap_or_else(|| PathBuf::from("-"));
            analyze_command(
                &input,
                prices.as_deref(),
                inventory.as_deref(),
                analysis::AnalysisSettings {
                    region,
                    scale_down_profile,
                    ..Default::default()
                },
                output,
            )
        }
        Command::OnboardingComplete(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(crossguard::onboarding_complete::run(args)),
        Command::StoreGet(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(store_get(*args)),
        Command::StoreRewrapKeys(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(store_rewrap_keys(*args)),
        Command::History(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(history(*args)),
        Command::Run(args) => {
            // Before the runtime's threads exist (src/alloc.rs: resident size per tenant).
            crossguard::alloc::limit_malloc_arenas(crossguard::alloc::OPERATOR_MALLOC_ARENAS);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let result = runtime.block_on(run(*args));
            // Dropping the runtime would wait for blocking tasks (an analysis, a file
            // write) without limit; the shutdown grace period is already spent.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            result
        }
    }
}

/// `crossguard sanitize`: the objects of `input`, sanitized, as JSON or YAML documents.
fn sanitize_command(
    input: &std::path::Path,
    extra_sensitive_names: &[String],
    output: OutputFormat,
) -> anyhow::Result<()> {
    let (bytes, name) = crossguard::cli::read_input(input)?;
    let docs =
        sanitize::sanitize_documents(&bytes, &sanitize::Sanitizer::new(extra_sensitive_names))
            .with_context(|| format!("reading the objects in {name}"))?;
    // Nothing to sanitize is bad input (a wrong file, an empty pipe), not an empty answer.
    if docs.is_empty() {
        anyhow::bail!(
            "no Kubernetes objects found in {name}: give the output of `kubectl get … -o json` or `-o yaml`"
        );
    }
    let mut out = Vec::new();
    sanitize::write_documents(&docs, output != OutputFormat::Yaml, &mut out)?;
    crossguard::cli::emit(&out).context("writing to stdout")
}

/// `crossguard analyze`: reads the prices and inventory files first (a mistake in them
/// fails before a long dump is streamed), then the dump, and prints the report.
fn analyze_command(
    input: &std::path::Path,
    prices: Option<&std::path::Path>,
    inventory: Option<&std::path::Path>,
    settings: analysis::AnalysisSettings,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let price_file = load_price_file(prices)?;
    let inventory = match inventory {
        Some(path) => load_inventory(path)?,
        None => analysis::AwsInventory::default(),
    };
    let prices = load_prices(price_file, &inventory)?;
    let (reader, name) = crossguard::cli::open_input(input)?;
    // Parsed straight from the stream into the allow-listed analysis input: the dump is
    // never held in memory, what could hold a secret is never read, what is kept gets the
    // sanitizer's value rules.
    let objects = analysis::AnalysisInput::from_reader(reader, &sanitize::Sanitizer::default())
        .with_context(|| format!("reading the dump {name}"))?;
    let count = analysis::report::count;
    eprintln!(
        "read {}, {}, {}, {}, {}; {} of other kinds skipped",
        count(objects.nodes.len(), "node", "nodes"),
        count(objects.pods.len(), "pod", "pods"),
        count(objects.deployments.len(), "Deployment", "Deployments"),
        count(objects.replica_sets.len(), "ReplicaSet", "ReplicaSets"),
        count(
            objects.pod_disruption_budgets.len(),
            "PodDisruptionBudget",
            "PodDisruptionBudgets"
        ),
        count(objects.skipped, "object", "objects")
    );
    // An empty file, `{}` or a List without nodes is bad input, not a cluster that is
    // "already tight": say so and fail, printing no report.
    if objects.nodes.is_empty() {
        anyhow::bail!(
            "no nodes found in {name}: there is nothing to analyse; dump with `kubectl get nodes,pods,deployments,replicasets,pdb -A -o json`"
        );
    }
    let report = analysis::analyze(&objects, &inventory, &prices, &settings);
    let bytes = match output {
        OutputFormat::Text => report.render_text().into_bytes(),
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report)?).into_bytes(),
        OutputFormat::Yaml => serde_yaml::to_string(&report)?.into_bytes(),
        OutputFormat::Csv => crossguard::cli::csv::report_csv(&report)?,
    };
    crossguard::cli::emit(&bytes).context("writing to stdout")?;
    // The process ends here and its memory goes back to the kernel whole, so the objects
    // are not freed (and zeroed, `crossguard::alloc`) one by one first: that took about
    // 110 ms of a 1.2 s run on a 78,720-pod dump, alone on one core (BENCHMARKS.md
    // "Analysis").
    std::mem::forget((objects, report, bytes));
    Ok(())
}
