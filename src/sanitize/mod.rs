//! Sanitize Kubernetes objects before anything is analysed, stored or logged.
//!
//! Pure and I/O-free: [`Sanitizer::sanitize`] rewrites one object (or a `List` of them) in
//! place, in one pass over the parts that can carry secrets, and counts what it did.
//! [`sanitize_documents`] and [`write_documents`] are the `crossguard sanitize` subcommand's
//! input and output, so a customer can see exactly what we would keep.
//!
//! # Where it looks
//! Every pod spec, wherever it occurs: `Pod.spec`, `PodTemplate.template`, `spec.template`
//! of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and ReplicationControllers,
//! `spec.jobTemplate.spec.template` of CronJobs, and the same shapes in any unknown kind
//! (Argo Rollouts, Knative…). Lists (`List`, `PodList`, …) are sanitized item by item. In each
//! pod spec: `containers`, `initContainers` and `ephemeralContainers`, and in each of those
//! `env`, `envFrom`, `command`, `args`, the `exec.command` and `httpGet` of the three probes
//! and of `lifecycle.postStart`/`preStop`; plus CSI volume attributes and flexVolume options.
//! Object and template `metadata.annotations`/`labels`, label selectors, container
//! termination messages in pod status, and the `data` of a Secret or ConfigMap that is
//! piped in by mistake (every value is replaced; keys are kept).
//!
//! Not looked at: `image`, `resources`, names, `managedFields` (they hold field names, not
//! values) and shapes that are not pod templates (e.g. Argo Workflows' `templates[]`).
//!
//! # What is redacted
//! Values are replaced by [`REDACTED`]; names are kept because they are useful for analysis.
//! - **env**: the value when the *name* is sensitive, or when the *value* looks like a secret
//!   whatever the name. `valueFrom` keeps only the reference (`secretKeyRef`/
//!   `configMapKeyRef` name+key, `fieldRef.fieldPath`, `resourceFieldRef.resource`,
//!   `fileKeyRef` volumeName+path+key) and drops everything else; `envFrom` keeps only
//!   `configMapRef.name`/`secretRef.name`.
//! - **command/args/exec**: `--name=value` and `-name=value` keep the flag and redact the
//!   value when the name is sensitive or the value looks secret; `--name value` redacts the
//!   next argument when the name is sensitive (unless it starts with `--`); `-pVALUE` and
//!   `-p VALUE` (the mysql convention) redact the value (`-p 8080`, all digits, is kept as
//!   a port); `-u user:pass` / `--user=user:pass` redact credentials; any other argument
//!   that looks like a secret (a URL with credentials, a token, a shell script containing
//!   `PASSWORD=…`) is redacted whole.
//! - **annotations**: `*/last-applied-configuration`, `kapp.k14s.io/original`, and any value
//!   that is a JSON object/array containing a `spec`, `env`, `containers`, `template`,
//!   `data` or `stringData` key, or a YAML document with `spec:`/`env:`, are removed.
//!   Other values are redacted when they look like secrets or the annotation's name (the
//!   part after `/`) is sensitive (`vault.hashicorp.com/agent-inject-token`,
//!   `checksum/secret`).
//! - **labels and selectors**: kept (they are selectors), but values that look like secrets
//!   are redacted, in selectors too so that they still match.
//!
//! # Sensitive names
//! Case-insensitive. The name is split into words (at separators, camelCase, acronyms and
//! digits) and compacted (`DB_CONN_STR` → `dbconnstr`), so words glued together without
//! separators (`ADMINPASSCODE`, `walletMnemonic`) are matched like separated ones. It is
//! sensitive when the compacted form contains a word of one of these families (or a
//! configured extra):
//! - passwords: `pass` anywhere (`DB_PASS`, `PGPASS`, `ROOTPASSFILE`, `passcode`,
//!   `passphrase`, `passwd`, `passwort`) except inside the ordinary words `bypass`,
//!   `compass`, `encompass`, `overpass`, `underpass`, `surpass`, `trespass`, `passthrough`,
//!   `passthru`, `passenger`, `passive`, `passage`, `passing`, `passed`, `passes`; and `pwd`;
//! - PINs and codes: `pincode`, `pinnumber`, `totp`, `hotp`, `backupcode`, `recoverycode`,
//!   `unlockcode`, `verificationcode`;
//! - wallet seeds: `mnemonic`, `seedphrase`, `seedwords`, `recoveryphrase`,
//!   `recoverywords`, `backupphrase`, `walletseed`, `masterseed`, `hdseed`, `bip39`;
//! - secrets, tokens, credentials: `secret`, `token`, `credential`, `creds`, `bearer`,
//!   `auth`, `apikey`, `accesskey`;
//! - keys and certificates: `private`, `privkey`, `keypair`, `cert`, `signature`;
//! - sessions and cookies: `session`, `cookie`, `csrf`, `xsrf`;
//! - connection strings: `dsn`, `connectionstring`/`connstring`/`connstr`, `webhook`;
//! - credential files named after the file: `kubeconfig`, `pgpass`, `netrc`, `npmrc`,
//!   `pypirc`, `dockercfg`, `dockerconfigjson`.
//!
//! Short words count only as a whole word, or as the end of one: a word is sensitive when
//! it is `pass`, `pw`, `pin`, `salt`, `sig`, `pat`, `otp`, `hmac`, `jwt`, `sas`, `psk` or
//! `cred`, or ends in `key`/`keys`/`salt`/`pw`/`pin` (`SIGNINGKEY`, `ROOTPW`, `ADMINPIN`;
//! not `spin`).
//!
//! Trade-offs, chosen to redact too much rather than too little:
//! - `key` is a word rule, not a substring: `API_KEY`, `apiKey`, `SIGNINGKEY`, `KEY_ID` are
//!   sensitive; `KEYCLOAK_URL` and `KEYSPACE` are not. Over-redacted on purpose:
//!   `PRIMARY_KEY`, `CACHE_KEY_TTL`, `MONKEY`.
//! - `auth` and `token` are substrings (`OAUTH2`, `AUTHORIZATION`, `ACCESSTOKEN`), except in
//!   the words `author(s)` and `tokenizer(s)` (`AUTHOR_EMAIL`, `TOKENIZERS_PARALLELISM`).
//! - `pwd` also hits the shell's `PWD`; `cert` hits `CERT_MANAGER_NAMESPACE`; `session` hits
//!   `SESSION_TIMEOUT`; `webhook` hits webhook ports. Those values are lost for analysis,
//!   which only needs resources, so the price is small.
//! - Configured extras are compacted the same way and matched as substrings.
//!
//! # Secret-looking values
//! Regardless of the name:
//! - Known formats, anywhere in the value: AWS access key ids (`AKIA`/`ASIA`/`ABIA`/`ACCA` +
//!   16), GitHub (`ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_`, `github_pat_`), GitLab `glpat-`, Slack
//!   `xox[abposre]-` and webhook URLs, Stripe `sk_/rk_live_|test_` and `whsec_`, Google
//!   `AIza`, npm, Hugging Face, PyPI, OpenAI, SendGrid, DigitalOcean, Shopify tokens, JWTs
//!   (`eyJ….….…`), any PEM `-----BEGIN …-----` block (certificates too), URLs with userinfo
//!   (`scheme://user:pass@` and `scheme://token@`; `ssh://git@host` is over-redacted),
//!   `Bearer`/`Basic` credentials, and passwords given to mysql (`-p…`), redis-cli (`-a`),
//!   sshpass and curl (`-u user:pass`) inside scripts.
//! - Assignments inside the value: `name=value`, `name: value`, `"name":"value"` with a
//!   sensitive name (JVM `-D…Password=`, query strings `?access_token=`/`X-Amz-Signature=`,
//!   ADO.NET connection strings, embedded JSON/YAML).
//! - Password-shaped values: 8–64 characters without whitespace that mix lower case, upper
//!   case, digits and a symbol structured values rarely use (`!#$%^*()<>[]{}|~\``).
//! - Long random strings: a maximal run of base64/base64url/hex characters
//!   (`A-Za-z0-9+/_=-`; dots, colons and `@` split runs, so hostnames, image references and
//!   ARNs are judged piece by piece) of at least 20 characters that is either 32+ hex digits
//!   (UUIDs, digests, git SHAs and hex keys all count: a 40-hex git SHA is redacted, because
//!   legacy GitHub tokens and many HMAC keys have the same shape and a SHA is not needed for
//!   analysis) or mixes letters and digits (mixed case needs 24+ characters without digits)
//!   with a Shannon entropy of at least 0.7 of the maximum for its length and alphabet and
//!   frequent changes of character class (≥ 30% of adjacent pairs for mixed case, ≥ 15%
//!   for one case without separators, ≥ 25% with separators), unless it reads like words
//!   (most lowercase letters in 4+ letter runs, or vowel-rich) or is a cloud resource id
//!   (`vol-0a1b2c3d4e5f67890`). Measured on seeded random strings: base62 ≥ 24 chars and
//!   base64 ≥ 32 chars are caught ≥ 99% of the time, base62 of exactly 20 chars ~95%,
//!   lowercase+digits ≥ 24 chars ≥ 98%. Kept: `true`, numbers, quantities (`500m`, `2Gi`),
//!   paths, hostnames, image references, ARNs, regions, dates, CamelCase class names.
//!   Known misses: random secrets shorter than 20 characters without a symbol (`hunter2`),
//!   letters-only secrets in one case, and secrets made of dictionary words — only the name
//!   rules catch those. Known over-redactions: pod-name-like ids (`app-7d4b9c8f6-x2k9p`).
//!
//! [`REDACTED`] itself never looks like a secret, so sanitizing is idempotent:
//! `sanitize(sanitize(x)) == sanitize(x)` and the second pass counts nothing.

mod documents;
mod rules;

use serde::Serialize;
use serde_json::{Map, Value};

pub use documents::{
    SanitizeError, sanitize_documents, sanitize_documents_counted, write_documents,
};

/// The marker that replaces every redacted value.
pub const REDACTED: &str = "[redacted by crossguard]";

/// [`REDACTED`] in base64, for the `data` of Secrets (whose values must stay base64).
pub const REDACTED_BASE64: &str = "W3JlZGFjdGVkIGJ5IGNyb3NzZ3VhcmRd";

/// Annotations that always embed a full object.
const SPEC_ANNOTATION_SUFFIXES: &[&str] = &["/last-applied-configuration", "kapp.k14s.io/original"];

/// Keys that make a JSON annotation value count as an embedded spec.
const SPEC_KEYS: &[&str] = &[
    "spec",
    "env",
    "containers",
    "template",
    "data",
    "stringData",
];

/// The container lists of a pod spec.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// What a `valueFrom` may keep: each source with the fields that name what it refers to.
const VALUE_FROM_KEEP: &[(&str, &[&str])] = &[
    ("secretKeyRef", &["name", "key"]),
    ("configMapKeyRef", &["name", "key"]),
    ("fieldRef", &["fieldPath"]),
    ("resourceFieldRef", &["resource"]),
    ("fileKeyRef", &["volumeName", "path", "key"]),
];

/// What was redacted, by place. Counts, never content: safe to log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redactions {
    /// Objects visited (each List item counts, the List itself too).
    pub objects: usize,
    /// Pod specs visited.
    pub pod_specs: usize,
    /// Env var values replaced.
    pub env: usize,
    /// `valueFrom`/`envFrom` entries trimmed to their references.
    pub value_from: usize,
    /// `command`/`args`/`exec.command` items redacted.
    pub args: usize,
    /// Annotations removed or redacted.
    pub annotations: usize,
    /// Label and selector values redacted.
    pub labels: usize,
    /// Anything else: HTTP headers, probe paths, volume attributes, status messages,
    /// Secret/ConfigMap data, malformed entries.
    pub other: usize,
}

impl Redactions {
    /// Number of redactions of any kind (not counting objects and pod specs visited).
    pub fn total(&self) -> usize {
        self.env + self.value_from + self.args + self.annotations + self.labels + self.other
    }
}

impl std::ops::AddAssign for Redactions {
    fn add_assign(&mut self, o: Self) {
        self.objects += o.objects;
        self.pod_specs += o.pod_specs;
        self.env += o.env;
        self.value_from += o.value_from;
        self.args += o.args;
        self.annotations += o.annotations;
        self.labels += o.labels;
        self.other += o.other;
    }
}

/// Removes secrets from Kubernetes objects. Build once (it compiles its rules) and share.
#[derive(Debug, Clone)]
pub struct Sanitizer {
    rules: rules::Rules,
}

impl Default for Sanitizer {
    fn default() -> Self {
        Sanitizer::new(&[])
    }
}

/// What the sanitizer does with an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnnotationRule {
    /// Kept as it is.
    Keep,
    /// Kept with its value replaced by [`REDACTED`].
    Redact,
    /// Removed (it embeds a spec, such as `last-applied-configuration`).
    Remove,
}

impl Sanitizer {
    /// The built-in rules plus extra case-insensitive name substrings (e.g. a
    /// ManagedCluster's `spec.sanitizer.extraSensitiveNames`).
    pub fn new(extra_sensitive_names: &[String]) -> Self {
        Sanitizer {
            rules: rules::Rules::new(extra_sensitive_names),
        }
    }

    /// Sanitize one object (or a List of objects) in place and count what was redacted.
    pub fn sanitize(&self, obj: &mut Value) -> Redactions {
        let mut r = Redactions::default();
        self.object(obj, &mut r);
        r
    }

    /// Would a value under this env var / flag / header name be redacted whatever it is?
    pub fn is_sensitive_name(&self, name: &str) -> bool {
        self.rules.is_sensitive_name(name)
    }

    /// Does this value look like a secret regardless of its name?
    pub fn looks_like_secret(&self, value: &str) -> bool {
        self.rules.looks_like_secret(value)
    }

    /// What [`Sanitizer::sanitize`] does with one annotation whose value is a string: the
    /// same decision, for callers that hold annotations outside a JSON tree.
    pub(crate) fn annotation_rule(&self, key: &str, value: &str) -> AnnotationRule {
        if embeds_spec(key, Some(value)) {
            return AnnotationRule::Remove;
        }
        let name = key.rsplit('/').next().unwrap_or(key);
        if value != REDACTED && (self.is_sensitive_name(name) || self.looks_like_secret(value)) {
            AnnotationRule::Redact
        } else {
            AnnotationRule::Keep
        }
    }

    fn object(&self, obj: &mut Value, r: &mut Redactions) {
        let Some(map) = obj.as_object_mut() else {
            return;
        };
        r.objects += 1;
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
        // `List`, `PodList`, … or a bare `{"items": [...]}`.
        let is_list = kind.ends_with("List") || (kind.is_empty() && !map.contains_key("spec"));
        let data_fields: &[&str] = match kind {
            "Secret" => &["data", "stringData"],
            "ConfigMap" => &["data", "binaryData"],
            _ => &[],
        };
        let base64_fields: &[&str] = match kind {
            "Secret" => &["data"],
            "ConfigMap" => &["binaryData"],
            _ => &[],
        };
        if is_list && let Some(Value::Array(items)) = map.get_mut("items") {
            for item in items {
                self.object(item, r);
            }
        }
        for &field in data_fields {
            let marker = if base64_fields.contains(&field) {
                REDACTED_BASE64
            } else {
                REDACTED
            };
            if let Some(Value::Object(data)) = map.get_mut(field) {
                for v in data.values_mut() {
                    if v.as_str() != Some(marker) {
                        *v = Value::String(marker.to_owned());
                        r.other += 1;
                    }
                }
            }
        }
        if let Some(md) = map.get_mut("metadata") {
            self.metadata(md, r);
        }
        if let Some(spec) = map.get_mut("spec") {
            self.workload_spec(spec, r);
        }
        // PodTemplate carries its template at the top level.
        if let Some(template) = map.get_mut("template") {
            self.template(template, r);
        }
        if let Some(Value::Object(status)) = map.get_mut("status") {
            self.pod_status(status, r);
        }
    }

    /// A `spec` that may be a pod spec, hold a pod `template`, or a CronJob `jobTemplate`.
    fn workload_spec(&self, spec: &mut Value, r: &mut Redactions) {
        let Some(spec) = spec.as_object_mut() else {
            return;
        };
        if CONTAINER_LISTS.iter().any(|k| spec.contains_key(*k)) {
            self.pod_spec(spec, r);
        }
        if let Some(selector) = spec.get_mut("selector") {
            self.selector(selector, r);
        }
        if let Some(template) = spec.get_mut("template") {
            self.template(template, r);
        }
        if let Some(template) = spec.get_mut("jobTemplate") {
            self.template(template, r);
        }
    }

    /// A pod template or a job template: metadata plus a spec.
    fn template(&self, template: &mut Value, r: &mut Redactions) {
        let Some(template) = template.as_object_mut() else {
            return;
        };
        if let Some(md) = template.get_mut("metadata") {
            self.metadata(md, r);
        }
        if let Some(spec) = template.get_mut("spec") {
            self.workload_spec(spec, r);
        }
    }

    fn pod_spec(&self, spec: &mut Map<String, Value>, r: &mut Redactions) {
        r.pod_specs += 1;
        for &list in CONTAINER_LISTS {
            if let Some(Value::Array(containers)) = spec.get_mut(list) {
                for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                    self.container(c, r);
                }
            }
        }
        if let Some(Value::Array(volumes)) = spec.get_mut("volumes") {
            for v in volumes.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(Value::Object(csi)) = v.get_mut("csi")
                    && let Some(attrs) = csi.get_mut("volumeAttributes")
                {
                    r.other += self.string_map(attrs);
                }
                if let Some(Value::Object(flex)) = v.get_mut("flexVolume")
                    && let Some(options) = flex.get_mut("options")
                {
                    r.other += self.string_map(options);
                }
            }
        }
    }

    fn container(&self, c: &mut Map<String, Value>, r: &mut Redactions) {
        if let Some(Value::Array(env)) = c.get_mut("env") {
            for e in env.iter_mut() {
                self.env_var(e, r);
            }
        }
        if let Some(Value::Array(env_from)) = c.get_mut("envFrom") {
            for e in env_from.iter_mut() {
                if trim_env_from(e) {
                    r.value_from += 1;
                }
            }
        }
        for key in ["command", "args"] {
            if let Some(args) = c.get_mut(key) {
                r.args += self.arg_list(args);
            }
        }
        for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(Value::Object(probe)) = c.get_mut(key) {
                self.handler(probe, r);
            }
        }
        if let Some(Value::Object(lifecycle)) = c.get_mut("lifecycle") {
            for key in ["postStart", "preStop"] {
                if let Some(Value::Object(handler)) = lifecycle.get_mut(key) {
                    self.handler(handler, r);
                }
            }
        }
    }

    /// A probe or lifecycle handler: `exec.command` like args, `httpGet` headers and path.
    fn handler(&self, h: &mut Map<String, Value>, r: &mut Redactions) {
        if let Some(Value::Object(exec)) = h.get_mut("exec")
            && let Some(command) = exec.get_mut("command")
        {
            r.args += self.arg_list(command);
        }
        if let Some(Value::Object(get)) = h.get_mut("httpGet") {
            for key in ["path", "host"] {
                if let Some(v) = get.get_mut(key)
                    && self.redact_value(v, false)
                {
                    r.other += 1;
                }
            }
            if let Some(Value::Array(headers)) = get.get_mut("httpHeaders") {
                for header in headers.iter_mut().filter_map(Value::as_object_mut) {
                    let sensitive = header
                        .get("name")
                        .and_then(Value::as_str)
                        .is_none_or(|n| self.is_sensitive_name(n));
                    if let Some(v) = header.get_mut("value")
                        && self.redact_value(v, sensitive)
                    {
                        r.other += 1;
                    }
                }
            }
        }
    }

    fn env_var(&self, e: &mut Value, r: &mut Redactions) {
        let Value::Object(m) = e else {
            // Not an EnvVar at all: keep nothing that could carry a value.
            if !e.is_null() && e.as_str() != Some(REDACTED) {
                *e = Value::String(REDACTED.to_owned());
                r.other += 1;
            }
            return;
        };
        // No name: nothing tells us the value is harmless.
        let sensitive = m
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(|n| self.is_sensitive_name(n));
        if let Some(v) = m.get_mut("value")
            && self.redact_value(v, sensitive)
        {
            r.env += 1;
        }
        if let Some(vf) = m.get_mut("valueFrom")
            && self.trim_value_from(vf)
        {
            r.value_from += 1;
        }
        let before = m.len();
        m.retain(|k, _| matches!(k.as_str(), "name" | "value" | "valueFrom"));
        r.other += before - m.len();
    }

    /// Keep only the references of a `valueFrom`; true when anything changed.
    fn trim_value_from(&self, vf: &mut Value) -> bool {
        let Value::Object(sources) = vf else {
            *vf = Value::Object(Map::new());
            return true;
        };
        let mut changed = false;
        sources.retain(|source, _| {
            let keep = VALUE_FROM_KEEP.iter().any(|(s, _)| s == source);
            changed |= !keep;
            keep
        });
        for (source, selector) in sources.iter_mut() {
            let fields = VALUE_FROM_KEEP
                .iter()
                .find(|(s, _)| s == source)
                .map_or(&[][..], |(_, f)| *f);
            let Value::Object(selector) = selector else {
                *selector = Value::Object(Map::new());
                changed = true;
                continue;
            };
            selector.retain(|field, v| {
                let keep = fields.contains(&field.as_str()) && v.is_string();
                changed |= !keep;
                keep
            });
            for v in selector.values_mut() {
                changed |= self.redact_value(v, false);
            }
        }
        changed
    }

    /// Redact a scalar in place: always when `force`, else when it looks like a secret.
    /// Objects and arrays where a scalar belongs are always replaced. True when changed.
    fn redact_value(&self, v: &mut Value, force: bool) -> bool {
        let redact = match v {
            Value::String(s) => s != REDACTED && (force || self.rules.looks_like_secret(s)),
            Value::Null => false,
            Value::Bool(_) | Value::Number(_) => force,
            Value::Array(_) | Value::Object(_) => true,
        };
        if redact {
            *v = Value::String(REDACTED.to_owned());
        }
        redact
    }

    /// Redact the values of a string map whose keys or values look sensitive.
    fn string_map(&self, map: &mut Value) -> usize {
        let Value::Object(map) = map else { return 0 };
        let mut n = 0;
        for (k, v) in map.iter_mut() {
            if self.redact_value(v, self.is_sensitive_name(k)) {
                n += 1;
            }
        }
        n
    }

    /// Sanitize a `command`/`args` list in place; returns how many items were redacted.
    fn arg_list(&self, args: &mut Value) -> usize {
        let Value::Array(args) = args else {
            // A string where a list belongs: judge it as one argument.
            return usize::from(self.redact_value(args, false));
        };
        let mut redacted = 0;
        let mut pending: Option<Next> = None;
        for arg in args.iter_mut() {
            let Value::String(s) = arg else {
                if self.redact_value(arg, pending.take().is_some()) {
                    redacted += 1;
                }
                continue;
            };
            if let Some(next) = pending.take()
                && !s.starts_with("--")
            {
                let keep = match next {
                    Next::Always => false,
                    Next::UnlessPort => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
                    Next::IfCredentials => !s.contains(':'),
                };
                if !keep && s != REDACTED {
                    *s = REDACTED.to_owned();
                    redacted += 1;
                }
                continue;
            }
            match self.arg(s) {
                Arg::Keep => {}
                Arg::Rewrite(new) => {
                    *s = new;
                    redacted += 1;
                }
                Arg::RedactNext(next) => pending = Some(next),
            }
        }
        redacted
    }

    /// Judge one argument on its own.
    fn arg(&self, s: &str) -> Arg {
        if s == REDACTED {
            return Arg::Keep;
        }
        let dashes = s.bytes().take_while(|&b| b == b'-').count();
        if dashes == 0 || dashes > 2 || s.len() == dashes {
            return if self.rules.looks_like_secret(s) {
                Arg::Rewrite(REDACTED.to_owned())
            } else {
                Arg::Keep
            };
        }
        let body = &s[dashes..];
        // mysql's `-pSECRET` and `-p SECRET` (single dash only: `--port` is a long flag).
        if dashes == 1 && body.starts_with('p') {
            let rest = &body[1..];
            return match rest {
                "" => Arg::RedactNext(Next::UnlessPort),
                REDACTED => Arg::Keep,
                _ => Arg::Rewrite(format!("-p{REDACTED}")),
            };
        }
        match body.split_once('=') {
            Some((name, value)) => {
                if value == REDACTED || value.is_empty() {
                    return Arg::Keep;
                }
                let user_pass = matches!(name, "u" | "user") && value.contains(':');
                if self.is_sensitive_name(name) || user_pass || self.rules.looks_like_secret(value)
                {
                    Arg::Rewrite(format!("{}={REDACTED}", &s[..dashes + name.len()]))
                } else {
                    Arg::Keep
                }
            }
            None if self.is_sensitive_name(body) => Arg::RedactNext(Next::Always),
            None if body == "u" || body == "user" => Arg::RedactNext(Next::IfCredentials),
            None if self.rules.looks_like_secret(body) => Arg::Rewrite(REDACTED.to_owned()),
            None => Arg::Keep,
        }
    }

    /// Object or template metadata: annotations and labels.
    fn metadata(&self, md: &mut Value, r: &mut Redactions) {
        let Some(md) = md.as_object_mut() else { return };
        if let Some(Value::Object(annotations)) = md.get_mut("annotations") {
            let before = annotations.len();
            annotations.retain(|k, v| !embeds_spec(k, v.as_str()));
            r.annotations += before - annotations.len();
            for (k, v) in annotations.iter_mut() {
                let name = k.rsplit('/').next().unwrap_or(k);
                if self.redact_value(v, self.is_sensitive_name(name)) {
                    r.annotations += 1;
                }
            }
        }
        if let Some(Value::Object(labels)) = md.get_mut("labels") {
            r.labels += self.label_values(labels);
        }
    }

    /// A label selector: `matchLabels`, `matchExpressions[].values`, or a plain map (RC).
    fn selector(&self, selector: &mut Value, r: &mut Redactions) {
        let Some(selector) = selector.as_object_mut() else {
            return;
        };
        if !selector.contains_key("matchLabels") && !selector.contains_key("matchExpressions") {
            r.labels += self.label_values(selector);
            return;
        }
        if let Some(Value::Object(labels)) = selector.get_mut("matchLabels") {
            r.labels += self.label_values(labels);
        }
        if let Some(Value::Array(exprs)) = selector.get_mut("matchExpressions") {
            for expr in exprs.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(Value::Array(values)) = expr.get_mut("values") {
                    for v in values {
                        r.labels += usize::from(self.redact_value(v, false));
                    }
                }
            }
        }
    }

    fn label_values(&self, labels: &mut Map<String, Value>) -> usize {
        labels
            .values_mut()
            .filter(|v| !v.is_string() || v.as_str().is_some_and(|s| self.looks_like_secret(s)))
            .fold(0, |n, v| {
                *v = Value::String(REDACTED.to_owned());
                n + 1
            })
    }

    /// Container termination and waiting messages: free text written by the workload.
    fn pod_status(&self, status: &mut Map<String, Value>, r: &mut Redactions) {
        for list in [
            "containerStatuses",
            "initContainerStatuses",
            "ephemeralContainerStatuses",
        ] {
            let Some(Value::Array(statuses)) = status.get_mut(list) else {
                continue;
            };
            for s in statuses.iter_mut().filter_map(Value::as_object_mut) {
                for state in ["state", "lastState"] {
                    let Some(Value::Object(state)) = s.get_mut(state) else {
                        continue;
                    };
                    for phase in state.values_mut().filter_map(Value::as_object_mut) {
                        if let Some(msg) = phase.get_mut("message")
                            && self.redact_value(msg, false)
                        {
                            r.other += 1;
                        }
                    }
                }
            }
        }
    }
}

/// What to do with one argument.
enum Arg {
    Keep,
    Rewrite(String),
    RedactNext(Next),
}

/// Which following arguments a flag like `--token` or `-p` takes as its secret value.
#[derive(Clone, Copy)]
enum Next {
    Always,
    /// `-p 8080` is a port, `-p hunter2` a mysql password.
    UnlessPort,
    /// `-u root` is a user name, `-u admin:hunter2` curl credentials.
    IfCredentials,
}

/// Keep only the referenced names of an `envFrom` entry; true when anything changed.
fn trim_env_from(e: &mut Value) -> bool {
    let Value::Object(m) = e else {
        *e = Value::Object(Map::new());
        return true;
    };
    let mut changed = false;
    m.retain(|k, v| {
        let keep = matches!(k.as_str(), "configMapRef" | "secretRef") && v.is_object();
        changed |= !keep;
        keep
    });
    for source in m.values_mut().filter_map(Value::as_object_mut) {
        source.retain(|k, v| {
            let keep = k == "name" && v.is_string();
            changed |= !keep;
            keep
        });
    }
    changed
}

/// Does this annotation embed a whole object (and so every secret in it)?
fn embeds_spec(key: &str, value: Option<&str>) -> bool {
    if SPEC_ANNOTATION_SUFFIXES.iter().any(|s| key.ends_with(s)) {
        return true;
    }
    let Some(s) = value else {
        return false;
    };
    let t = s.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        return serde_json::from_str::<Value>(t).is_ok_and(|v| contains_spec_key(&v));
    }
    // A YAML document: `apiVersion:`/`spec:`/`env:` at the start of a line.
    s.contains('\n')
        && s.lines().any(|l| {
            l.starts_with("spec:") || l.starts_with("env:") || l.starts_with("apiVersion:")
        })
}

fn contains_spec_key(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| SPEC_KEYS.contains(&k.as_str()) || contains_spec_key(v)),
        Value::Array(a) => a.iter().any(contains_spec_key),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
