//! The onboarding subcommands' flags and what they print: `onboarding-template`,
//! `onboarding-rbac` and `operator-policy`. Both onboarding commands take the same names
//! for the same things (`--account-id`, `--role-arn`, `--cluster`, `--region`, `--mode`,
//! `--from customeraccount/NAME -n NAMESPACE`), and explicit flags override what `--from`
//! reads.

use anyhow::bail;

use super::from_cluster::{self, AccountFacts};
use super::operator::{self, OperatorPolicyOptions, S3Store, Trust};
use super::{Mode, TemplateOptions};

/// Default name of the role the customer creates.
pub const DEFAULT_ROLE_NAME: &str = "crossguard-access";

/// How `onboarding-template` prints the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TemplateFormat {
    /// CloudFormation, JSON.
    Json,
    /// CloudFormation, YAML (what the CloudFormation console's editor shows).
    Yaml,
    /// Terraform (HCL), variables `external_id` and `operator_principal`, output `role_arn`.
    Terraform,
}

/// `--from` and `-n`, shared by both onboarding commands.
#[derive(Clone, Debug, clap::Args)]
pub struct FromArgs {
    /// Read the account id, regions, mode, access-key audit settings and status.externalId
    /// from this CustomerAccount, and the cluster names from its ManagedClusters
    /// (`customeraccount/NAME` or the name alone; KUBECONFIG as for kubectl). Explicit flags override.
    #[arg(long, value_name = "customeraccount/NAME")]
    pub from: Option<String>,
    /// Namespace of the `--from` CustomerAccount (default: the kubeconfig context's).
    #[arg(short = 'n', long, requires = "from")]
    pub namespace: Option<String>,
}

impl FromArgs {
    /// The account's facts when `--from` is given.
    fn read(&self) -> anyhow::Result<Option<AccountFacts>> {
        let Some(reference) = &self.from else {
            return Ok(None);
        };
        let name = from_cluster::parse_reference(reference)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let facts = runtime.block_on(async {
            let (client, namespace) = from_cluster::client(self.namespace.as_deref()).await?;
            anyhow::Ok(from_cluster::read_account(client, &namespace, &name).await?)
        })?;
        Ok(Some(facts))
    }
}

/// Flags of `crossguard onboarding-template`.
#[derive(Clone, Debug, clap::Args)]
pub struct TemplateArgs {
    #[command(flatten)]
    pub from: FromArgs,
    /// The customer's AWS account id (12 digits).
    #[arg(long)]
    pub account_id: Option<String>,
    /// The role's ARN as the CustomerAccount's spec.roleArn will name it: sets
    /// --account-id and --role-name (no path).
    #[arg(long, conflicts_with_all = ["account_id", "role_name"])]
    pub role_arn: Option<String>,
    /// Which permissions the role gets: read-only (default) or automated. The CRD's
    /// spelling (ReadOnly, Automated) works too.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// EKS cluster name scoping the EKS permissions (repeatable; required for automated).
    #[arg(long = "cluster")]
    pub clusters: Vec<String>,
    /// AWS region scoping the EKS and Auto Scaling ARNs (repeatable; the CustomerAccount's
    /// spec.regions). Default: every region.
    #[arg(long = "region")]
    pub regions: Vec<String>,
    /// ARN of the operator's own IAM role, the only principal the role trusts (the
    /// OperatorPrincipal parameter's default). The chart sets the same variable on the
    /// operator from its operatorPrincipal (or irsaRoleArn) value.
    #[arg(long, env = "CROSSGUARD_OPERATOR_PRINCIPAL")]
    pub operator_principal: Option<String>,
    /// The CustomerAccount's status.externalId (the ExternalId parameter's default).
    #[arg(long)]
    pub external_id: Option<String>,
    /// Print the one template for every account (StackSets, Launch Stack links): no
    /// account id and no ExternalId default; each stack gets its ExternalId as parameter.
    #[arg(long, conflicts_with_all = ["account_id", "external_id", "role_arn", "from"])]
    pub generic: bool,
    /// Also require sts:SourceIdentity like `crossguard-*` on every session.
    #[arg(long)]
    pub require_source_identity: bool,
    /// Name of the IAM role created (default: crossguard-access).
    #[arg(long)]
    pub role_name: Option<String>,
    /// Also let crossguard audit access-key age: list IAM users, their tags, their
    /// access keys and when each key was last used.
    #[arg(long)]
    pub key_audit: bool,
    /// Also let crossguard deactivate stale access keys of IAM users tagged
    /// crossguard.dev/managed=true (implies --key-audit).
    #[arg(long)]
    pub key_audit_enforce: bool,
    /// Output format: CloudFormation as json or yaml, or terraform (HCL).
    #[arg(short = 'o', long, value_enum, default_value_t = TemplateFormat::Json)]
    pub output: TemplateFormat,
}

/// Splits a role ARN into (account id, role name), refusing paths (a template's
/// `RoleName` has none).
fn split_role_arn(arn: &str) -> anyhow::Result<(String, String)> {
    if !crate::api::validate::is_role_arn(arn) {
        bail!(
            "{arn:?} is not an IAM role ARN: expected arn:aws:iam::<12-digit account id>:role/<name>"
        );
    }
    let mut parts = arn.splitn(6, ':');
    let account = parts.nth(4).unwrap_or_default().to_string();
    let name = parts
        .next()
        .and_then(|r| r.strip_prefix("role/"))
        .unwrap_or_default();
    if name.contains('/') {
        bail!(
            "role ARN {arn:?} has a path; the template creates the role without one: use --role-name and --account-id"
        );
    }
    Ok((account, name.to_string()))
}

/// `onboarding-template`: the options after `--from` and the flags are merged.
pub fn template_options(args: &TemplateArgs) -> anyhow::Result<TemplateOptions> {
    let facts = args.from.read()?;
    let mut account_id = args.account_id.clone();
    let mut role_name = args.role_name.clone();
    if let Some(arn) = &args.role_arn {
        let (account, name) = split_role_arn(arn)?;
        account_id = Some(account);
        role_name = Some(name);
    }
    let mut opts = TemplateOptions {
        account_id,
        mode: args.mode.unwrap_or(Mode::ReadOnly),
        clusters: args.clusters.clone(),
        regions: args.regions.clone(),
        operator_principal: args.operator_principal.clone(),
        external_id: args.external_id.clone(),
        generic: args.generic,
        require_source_identity: args.require_source_identity,
        role_name: role_name
            .clone()
            .unwrap_or_else(|| DEFAULT_ROLE_NAME.into()),
        key_audit: args.key_audit,
        key_audit_enforce: args.key_audit_enforce,
    };
    if let Some(f) = facts {
        opts.account_id.get_or_insert(f.account_id.clone());
        if args.mode.is_none() {
            opts.mode = f.mode;
        }
        if opts.clusters.is_empty() {
            opts.clusters = f.clusters.iter().map(|(c, _)| c.clone()).collect();
            opts.clusters.dedup();
        }
        if opts.regions.is_empty() {
            opts.regions = f.regions.clone();
        }
        opts.key_audit |= f.key_audit;
        opts.key_audit_enforce |= f.key_audit_enforce;
        if role_name.is_none()
            && let Some(arn) = &f.role_arn
            && let Ok((_, name)) = split_role_arn(arn)
        {
            opts.role_name = name;
        }
        if opts.external_id.is_none() {
            match &f.external_id {
                Some(e) => opts.external_id = Some(e.clone()),
                None => bail!(
                    "CustomerAccount {} has no ExternalId yet: wait for status.externalId (the operator publishes it within seconds of the account's creation; is the operator running?), then run this again",
                    f.reference
                ),
            }
        }
    }
    opts.validate()?;
    Ok(opts)
}

/// `onboarding-template`: the text to print.
pub fn template(args: &TemplateArgs) -> anyhow::Result<String> {
    let opts = template_options(args)?;
    Ok(match args.output {
        TemplateFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&super::template(&opts))?
        ),
        TemplateFormat::Yaml => serde_yaml::to_string(&super::template(&opts))?,
        TemplateFormat::Terraform => super::terraform::render(&opts),
    })
}

/// Flags of `crossguard onboarding-rbac`.
#[derive(Clone, Debug, clap::Args)]
pub struct RbacArgs {
    #[command(flatten)]
    pub from: FromArgs,
    /// The EKS cluster's name (repeatable: one access entry per cluster; the RBAC is the
    /// same for each).
    #[arg(long = "cluster")]
    pub clusters: Vec<String>,
    /// ARN of the customer's role crossguard assumes (the CustomerAccount's
    /// spec.roleArn), the access entry's principal.
    #[arg(long, conflicts_with_all = ["account_id", "role_name"])]
    pub role_arn: Option<String>,
    /// The customer's AWS account id: the role is then arn:aws:iam::<id>:role/<--role-name>.
    #[arg(long)]
    pub account_id: Option<String>,
    /// Name of the customer's role, with --account-id (default: crossguard-access).
    #[arg(long, requires = "account_id")]
    pub role_name: Option<String>,
    /// The clusters' AWS region, added to the printed aws commands.
    #[arg(long)]
    pub region: Option<String>,
    /// read-only (default), or automated: adds a separate role allowing only cordon
    /// (patch nodes) and eviction (create pods/eviction). The CRD's spelling
    /// (ReadOnly, Automated) works too.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
}

/// `onboarding-rbac`: the document to print.
pub fn rbac(args: &RbacArgs) -> anyhow::Result<String> {
    use crate::api::validate::{is_account_id, is_region};
    let facts = args.from.read()?;
    if let Some(r) = args.region.as_ref().filter(|r| !is_region(r)) {
        bail!("invalid AWS region {r:?}: expected a region code like us-east-1");
    }
    let mut clusters: Vec<(String, Option<String>)> = args
        .clusters
        .iter()
        .map(|c| (c.clone(), args.region.clone()))
        .collect();
    let mut role_arn = args.role_arn.clone();
    if role_arn.is_none()
        && let Some(account) = &args.account_id
    {
        if !is_account_id(account) {
            bail!("account id {account:?} is not 12 digits");
        }
        let name = args.role_name.as_deref().unwrap_or(DEFAULT_ROLE_NAME);
        if !super::is_role_name(name) {
            bail!("invalid role name {name:?}");
        }
        role_arn = Some(format!("arn:aws:iam::{account}:role/{name}"));
    }
    let mut mode = args.mode;
    if let Some(f) = &facts {
        if clusters.is_empty() {
            clusters = f
                .clusters
                .iter()
                .map(|(c, r)| (c.clone(), args.region.clone().or(Some(r.clone()))))
                .collect();
        }
        if role_arn.is_none() {
            role_arn = f.role_arn.clone().or_else(|| {
                Some(format!(
                    "arn:aws:iam::{}:role/{DEFAULT_ROLE_NAME}",
                    f.account_id
                ))
            });
        }
        mode = mode.or(Some(f.mode));
        if clusters.is_empty() {
            bail!(
                "CustomerAccount {} has no ManagedClusters yet: pass --cluster NAME",
                f.reference
            );
        }
    }
    if clusters.is_empty() {
        bail!("no cluster: pass --cluster NAME (or --from customeraccount/NAME)");
    }
    let Some(role_arn) = role_arn else {
        bail!(
            "no role: pass --role-arn (the CustomerAccount's spec.roleArn), or --account-id (the role is then arn:aws:iam::<account>:role/{DEFAULT_ROLE_NAME})"
        );
    };
    let automated = mode == Some(Mode::Automated);
    Ok(crate::cluster::rbac::onboarding_document(
        &clusters, &role_arn, automated,
    )?)
}

/// What `operator-policy` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyPart {
    /// `{"PermissionsPolicy": …, "TrustPolicy": …}` (no TrustPolicy without --trust).
    Both,
    /// Only the permissions policy document (for `aws iam put-role-policy`).
    Permissions,
    /// Only the trust policy document (for `aws iam create-role`).
    Trust,
}

/// How the operator's pod gets its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrustKind {
    /// IAM Roles for Service Accounts (the cluster's OIDC provider).
    Irsa,
    /// EKS Pod Identity.
    PodIdentity,
}

/// Flags of `crossguard operator-policy`.
#[derive(Clone, Debug, clap::Args)]
pub struct OperatorPolicyArgs {
    /// Name of the customers' crossguard role (as in onboarding-template --role-name); `*`
    /// allowed, e.g. crossguard-*.
    #[arg(long, default_value = DEFAULT_ROLE_NAME)]
    pub role_name: String,
    /// Only these customer accounts (repeatable). Default: any account; each customer's
    /// trust policy and ExternalId still decide.
    #[arg(long = "account-id")]
    pub accounts: Vec<String>,
    /// The operator's AWS partition.
    #[arg(long, default_value = "aws")]
    pub partition: String,
    /// The operator's S3 store (its --store-url / the chart's store.url), s3://bucket/prefix.
    #[arg(long, value_parser = clap::value_parser!(S3Store))]
    pub store: Option<S3Store>,
    /// ARN of the KMS key encrypting the store (the operator's --store-sse-kms-key-id).
    #[arg(long, requires = "store")]
    pub kms_key: Option<String>,
    /// The operator runs with --no-price-list-api: no pricing:GetProducts.
    #[arg(long)]
    pub no_price_list_api: bool,
    /// How the operator's pod gets this role: irsa or pod-identity.
    #[arg(long, value_enum)]
    pub trust: Option<TrustKind>,
    /// With --trust irsa: the EKS cluster's IAM OIDC provider ARN.
    #[arg(long, required_if_eq("trust", "irsa"))]
    pub oidc_provider: Option<String>,
    /// With --trust irsa: the operator's namespace (the Helm release's).
    #[arg(long = "namespace", default_value = "crossguard")]
    pub namespace: String,
    /// With --trust irsa: the operator's ServiceAccount (the chart's: the release name).
    #[arg(long, default_value = "crossguard")]
    pub service_account: String,
    /// Print both documents in one JSON object, or only one of them.
    #[arg(long, value_enum, default_value_t = PolicyPart::Both)]
    pub only: PolicyPart,
}

impl OperatorPolicyArgs {
    fn trust(&self) -> Option<Trust> {
        self.trust.map(|kind| match kind {
            TrustKind::Irsa => Trust::Irsa {
                oidc_provider_arn: self.oidc_provider.clone().unwrap_or_default(),
                namespace: self.namespace.clone(),
                service_account: self.service_account.clone(),
            },
            TrustKind::PodIdentity => Trust::PodIdentity,
        })
    }
}

/// `operator-policy`: the JSON to print.
pub fn operator_policy(args: &OperatorPolicyArgs) -> anyhow::Result<String> {
    let opts = OperatorPolicyOptions {
        role_name: args.role_name.clone(),
        accounts: args.accounts.clone(),
        partition: args.partition.clone(),
        price_list_api: !args.no_price_list_api,
        store: args.store.clone(),
        kms_key_arn: args.kms_key.clone(),
    };
    opts.validate()?;
    let trust = args.trust();
    if let Some(t) = &trust {
        t.validate()?;
    }
    let permissions = operator::permissions_policy(&opts);
    let value = match (args.only, &trust) {
        (PolicyPart::Permissions, _) => permissions,
        (PolicyPart::Trust, Some(t)) => operator::trust_policy(t),
        (PolicyPart::Trust, None) => {
            bail!("--only trust needs --trust irsa or --trust pod-identity")
        }
        (PolicyPart::Both, None) => serde_json::json!({ "PermissionsPolicy": permissions }),
        (PolicyPart::Both, Some(t)) => serde_json::json!({
            "PermissionsPolicy": permissions,
            "TrustPolicy": operator::trust_policy(t),
        }),
    };
    Ok(format!("{}\n", serde_json::to_string_pretty(&value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arn_gives_account_and_name_but_no_path() {
        assert_eq!(
            split_role_arn("arn:aws:iam::111122223333:role/crossguard-access").unwrap(),
            ("111122223333".to_string(), "crossguard-access".to_string())
        );
        let err = split_role_arn("arn:aws:iam::111122223333:role/team/x").unwrap_err();
        assert!(err.to_string().contains("has a path"), "{err}");
        let err = split_role_arn("arn:aws:iam::111122223333:user/x").unwrap_err();
        assert!(err.to_string().contains("is not an IAM role ARN"), "{err}");
    }

    #[test]
    fn role_arn_flag_sets_account_and_role_name() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: TemplateArgs,
        }
        let cli = Cli::try_parse_from([
            "t",
            "--role-arn",
            "arn:aws:iam::111122223333:role/cg-prod",
            "--external-id",
            "abc123",
            "--operator-principal",
            "arn:aws:iam::999988887777:role/op",
        ])
        .unwrap();
        let opts = template_options(&cli.args).unwrap();
        assert_eq!(opts.account_id.as_deref(), Some("111122223333"));
        assert_eq!(opts.role_name, "cg-prod");
        assert!(
            Cli::try_parse_from(["t", "--generic", "--external-id", "abc123"]).is_err(),
            "--generic takes no per-account values"
        );
    }
}
