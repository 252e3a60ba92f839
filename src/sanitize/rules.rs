//! The two classifiers behind the sanitizer: "does this name look sensitive" and "does
//! this value look like a secret". Both are pure and allocation-light because they run on
//! every env var, arg and annotation of a cluster snapshot. The rules and their trade-offs
//! are documented on [`super`].

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use super::REDACTED;

/// Substrings that make a name sensitive wherever they occur in its compacted form
/// (lowercase, separators removed), so that words glued together without separators
/// (`ADMINPASSCODE`, `walletMnemonic`) are found too, unless the occurrence is part of
/// one of [`NAME_ORDINARY_WORDS`]. Grouped by the family of secret they name.
const NAME_SUBSTRINGS: &[&str] = &[
    // Passwords and their spellings: `pass` anywhere (`DB_PASS`, `PGPASS`, `ROOTPASSFILE`).
    // (Longer words first: the regex takes the first alternative that matches.)
    "password",
    "passwd",
    "passwort",
    "passphrase",
    "passcode",
    "pass",
    "pwd",
    // PINs and one-time or recovery codes.
    "pincode",
    "pinnumber",
    "totp",
    "hotp",
    "backupcode",
    "recoverycode",
    "unlockcode",
    "verificationcode",
    // Wallet seeds and mnemonics (BIP-39 recovery phrases).
    "mnemonic",
    "seedphrase",
    "seedwords",
    "recoveryphrase",
    "recoverywords",
    "backupphrase",
    "walletseed",
    "masterseed",
    "hdseed",
    "bip39",
    // Generic secrets, tokens and credentials.
    "secret",
    "token",
    "credential",
    "creds",
    "bearer",
    "auth",
    "apikey",
    "accesskey",
    // Keys and certificates (any word ending in `key` has its own rule).
    "private",
    "privkey",
    "keypair",
    "cert",
    "signature",
    // Sessions and cookies.
    "session",
    "cookie",
    "csrf",
    "xsrf",
    // Connection strings.
    "dsn",
    "connectionstring",
    "connstring",
    "connstr",
    "webhook",
    // Files that hold credentials, named after them (`PGPASS`, `NPMRC`…).
    "kubeconfig",
    "pgpass",
    "netrc",
    "npmrc",
    "pypirc",
    "dockercfg",
    "dockerconfigjson",
];

/// Short words that are sensitive only as a whole token (`DB_PASS`, `PW`, `SALT`, `PIN`),
/// because as substrings they occur in ordinary words (`salty`, `spinner`…).
const NAME_TOKENS: &[&str] = &[
    "pass", "pw", "pin", "salt", "sig", "pat", "otp", "hmac", "jwt", "sas", "psk", "cred",
];

/// Endings that make a token sensitive (`SIGNINGKEY`, `SSH_KEYS`, `HASHSALT`, `ROOTPW`,
/// `ADMINPIN`, `ADMINOTP`); `spin` is the one ordinary word ending in `pin` that names use.
const NAME_TOKEN_SUFFIXES: &[&str] = &["key", "keys", "salt", "pw", "pin", "otp"];
const NAME_TOKEN_SUFFIX_ORDINARY: &[&str] = &["spin"];

/// Ordinary words that contain a sensitive substring but are not about secrets: a match
/// inside one of them does not count, so `AUTHOR_EMAIL`, `TOKENIZERS_PARALLELISM`,
/// `BYPASS_CACHE` and `PASSTHROUGH_MODE` are kept (glued or not) while `AUTHOR_TOKEN` and
/// `BYPASS_PASSWORD` are not. Each word comes with the longer words that start with it and
/// are sensitive after all (`author` is ordinary, `authorization` is not).
const NAME_ORDINARY_WORDS: &[(&str, &[&str])] = &[
    ("author", &["authoriz", "authoris", "authorit"]),
    ("tokenizer", &[]),
    ("bypass", &[]),
    ("compass", &[]),
    ("overpass", &[]),
    ("underpass", &[]),
    ("surpass", &[]),
    ("trespass", &[]),
    ("passthrough", &[]),
    ("passthru", &[]),
    ("passenger", &[]),
    ("passive", &[]),
    ("passage", &[]),
    ("passing", &[]),
    ("passed", &[]),
    ("passes", &[]),
];

/// Values with a known secret shape, matched anywhere in the value.
const VALUE_PATTERNS: &[&str] = &[
    // AWS access key ids (long-term and temporary).
    r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
    // GitHub tokens.
    r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    // GitLab personal access tokens.
    r"(?-u:\b)glpat-[A-Za-z0-9_\-]{20,}",
    // Slack tokens and incoming-webhook URLs.
    r"(?-u:\b)(?:xox[abposre]-[A-Za-z0-9\-]{10,}|xapp-[0-9]-[A-Za-z0-9\-]{10,})|hooks\.slack\.com/services/[A-Za-z0-9]",
    // Stripe secret/restricted keys and webhook secrets.
    r"(?-u:\b)(?:[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,})",
    // Google API keys, npm, Hugging Face, PyPI, OpenAI, SendGrid, DigitalOcean, Shopify.
    r"(?-u:\b)(?:AIza[0-9A-Za-z_\-]{35}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{30,}|pypi-AgE[A-Za-z0-9_\-]{20,}|sk-(?:proj-)?[A-Za-z0-9]{20,}|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}|dop_v1_[a-f0-9]{64}|shp(?:at|ss)_[a-fA-F0-9]{32})",
    // JSON Web Tokens: base64url JSON header, payload, signature.
    r"(?-u:\b)eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
    // Any PEM block (private keys, certificates, SSH keys in PEM form).
    r"-----BEGIN [A-Z0-9 ]{0,64}-----",
    // URLs with userinfo: scheme://user:pass@host, scheme://token@host.
    r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\s@]+@",
    // HTTP authorization schemes followed by a credential-looking token.
    r"(?i)(?-u:\b)(?:bearer|basic)[ \t]+[A-Za-z._~+/\-]*[0-9=+/][A-Za-z0-9._~+/=\-]{3,}",
    // Passwords passed to well-known tools inside shell scripts.
    r"(?-u:\b)(?:mysql|mysqldump|mysqladmin|mariadb)(?-u:\b)[^\n;|&]*[ \t]-p[^ \t\n;|&]+",
    r"(?-u:\b)redis-cli(?-u:\b)[^\n;|&]*[ \t]-a[ \t]+[^ \t\n;|&\-]",
    r"(?-u:\b)sshpass[ \t]+-p",
    r"(?-u:\b)curl(?-u:\b)[^\n;|&]*[ \t](?:-u|--user)[ \t=]+[^ \t\n:;|&]*:[^ \t\n;|&]+",
];

/// Runs of base64/base64url/hex characters shorter than this are never "high entropy".
pub(crate) const MIN_RANDOM_LEN: usize = 20;

/// Hex strings with at least this many hex digits (UUIDs, digests, git SHAs, hex keys)
/// are treated as random.
pub(crate) const MIN_HEX_DIGITS: usize = 32;

/// The built-in name and value patterns, compiled once per process: every analysis builds
/// a [`super::Sanitizer`], and compiling these costs far more than sanitizing a small cluster
/// (about 1.5% of the operator's CPU in the 1,000-tenant benchmark, BENCHMARKS.md "Scale").
static BUILT_IN: LazyLock<(Regex, RegexSet)> = LazyLock::new(|| {
    // The patterns are constants, so failing to compile them is a bug caught by any test.
    (
        Regex::new(&NAME_SUBSTRINGS.join("|")).expect("built-in name pattern compiles"),
        RegexSet::new(VALUE_PATTERNS).expect("built-in value patterns compile"),
    )
});

/// The compiled rules. Built once per [`super::Sanitizer`].
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    name_substrings: Regex,
    extra_names: Vec<String>,
    value_patterns: RegexSet,
}

impl Rules {
    /// Compile the built-in rules plus `extra_sensitive_names` (case-insensitive substrings).
    pub(crate) fn new(extra_sensitive_names: &[String]) -> Self {
        let extra_names = extra_sensitive_names
            .iter()
            .map(|s| {
                s.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .map(|c| c.to_ascii_lowercase())
                    .collect::<String>()
            })
            .filter(|s| !s.is_empty())
            .collect();
        let (name_substrings, value_patterns) = &*BUILT_IN;
        Rules {
            // Clones share the compiled programs (the regex crate keeps them behind an Arc).
            name_substrings: name_substrings.clone(),
            extra_names,
            value_patterns: value_patterns.clone(),
        }
    }

    /// Does this env var / flag / header / annotation name suggest its value is a secret?
    pub(crate) fn is_sensitive_name(&self, name: &str) -> bool {
        let mut compact = String::with_capacity(name.len());
        let mut token_hit = false;
        for_each_token(name, |token| {
            let start = compact.len();
            compact.extend(token.chars().map(|c| c.to_ascii_lowercase()));
            let lower = &compact[start..];
            if NAME_TOKENS.contains(&lower)
                || (NAME_TOKEN_SUFFIXES.iter().any(|s| lower.ends_with(s))
                    && !NAME_TOKEN_SUFFIX_ORDINARY.contains(&lower))
            {
                token_hit = true;
            }
        });
        token_hit
            || self
                .name_substrings
                .find_iter(&compact)
                .any(|m| !inside_ordinary_word(&compact, m.start(), m.end()))
            || self
                .extra_names
                .iter()
                .any(|extra| compact.contains(extra.as_str()))
    }

    /// Does this value look like a secret, whatever it is called?
    pub(crate) fn looks_like_secret(&self, value: &str) -> bool {
        if value.len() < 4 || value == REDACTED {
            return false;
        }
        self.value_patterns.is_match(value)
            || self.has_sensitive_assignment(value)
            || looks_like_password(value)
            || has_random_run(value)
    }

    /// Which rule fires for `value`, for tests and diagnostics.
    #[cfg(test)]
    pub(crate) fn value_rule(&self, value: &str) -> Option<&'static str> {
        if value.len() < 4 || value == REDACTED {
            return None;
        }
        if self.value_patterns.is_match(value) {
            Some("pattern")
        } else if self.has_sensitive_assignment(value) {
            Some("assignment")
        } else if looks_like_password(value) {
            Some("password-shape")
        } else if has_random_run(value) {
            Some("entropy")
        } else {
            None
        }
    }

    /// `name=value`, `name: value` and `"name":"value"` anywhere in the value (JVM options,
    /// query strings, connection strings, embedded YAML/JSON, shell scripts) where the name
    /// is sensitive and the value is not empty. Scans every `=`/`:` so that overlapping
    /// pairs (`opts=password=x`) are all seen.
    fn has_sensitive_assignment(&self, value: &str) -> bool {
        let b = value.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c != b'=' && c != b':' {
                continue;
            }
            // A colon only assigns when followed by a space or a quote: `https://`,
            // `image:tag` and `arn:aws:…` are not assignments.
            if c == b':' && !matches!(b.get(i + 1), Some(b' ' | b'\t' | b'"' | b'\'')) {
                continue;
            }
            let mut j = i + 1;
            while matches!(b.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            if matches!(b.get(j), Some(b'"' | b'\'')) {
                j += 1;
            }
            match b.get(j) {
                Some(v)
                    if !v.is_ascii_whitespace()
                        && !matches!(v, b'"' | b'\'' | b',' | b';' | b'&') => {}
                _ => continue,
            }
            // The flag rewriting leaves `--password=[redacted by crossguard]`: not a secret.
            if value[j..].starts_with(REDACTED) {
                continue;
            }
            let mut k = i;
            while k > 0 && matches!(b[k - 1], b' ' | b'\t') {
                k -= 1;
            }
            if k > 0 && matches!(b[k - 1], b'"' | b'\'') {
                k -= 1;
            }
            let end = k;
            while k > 0
                && (b[k - 1].is_ascii_alphanumeric() || matches!(b[k - 1], b'_' | b'.' | b'-'))
            {
                k -= 1;
            }
            if k < end && self.is_sensitive_name(&value[k..end]) {
                return true;
            }
        }
        false
    }
}

/// Is `compact[start..end]` part of an occurrence of one of [`NAME_ORDINARY_WORDS`]?
fn inside_ordinary_word(compact: &str, start: usize, end: usize) -> bool {
    NAME_ORDINARY_WORDS.iter().any(|(word, sensitive_longer)| {
        compact.match_indices(word).any(|(at, _)| {
            at <= start
                && end <= at + word.len()
                && !sensitive_longer
                    .iter()
                    .any(|w| compact[at..].starts_with(w))
        })
    })
}

/// Split an identifier into words: at separators, lower→Upper (`apiKey`), the end of an
/// acronym (`APIKey` → `API`, `Key`) and letter↔digit changes (`oauth2`).
fn for_each_token(name: &str, mut f: impl FnMut(&str)) {
    let bytes = name.as_bytes();
    let mut start: Option<usize> = None;
    for i in 0..bytes.len() {
        let c = bytes[i];
        if !c.is_ascii_alphanumeric() {
            if let Some(s) = start.take() {
                f(&name[s..i]);
            }
            continue;
        }
        if let Some(s) = start {
            let p = bytes[i - 1];
            let next_lower = bytes.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            let boundary = (p.is_ascii_lowercase() && c.is_ascii_uppercase())
                || (p.is_ascii_uppercase() && c.is_ascii_uppercase() && next_lower)
                || (p.is_ascii_digit() != c.is_ascii_digit());
            if boundary {
                f(&name[s..i]);
                start = Some(i);
            }
        } else {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        f(&name[s..]);
    }
}

/// A password-shaped token: no whitespace, 8–64 chars, mixing lower case, upper case,
/// digits and a symbol that structured values (paths, URLs, flags, quantities) rarely use.
fn looks_like_password(value: &str) -> bool {
    let len = value.len();
    if !(8..=64).contains(&len) {
        return false;
    }
    let (mut lower, mut upper, mut digit, mut symbol) = (false, false, false, false);
    for b in value.bytes() {
        match b {
            b'a'..=b'z' => lower = true,
            b'A'..=b'Z' => upper = true,
            b'0'..=b'9' => digit = true,
            b'!' | b'#' | b'$' | b'%' | b'^' | b'*' | b'(' | b')' | b'<' | b'>' | b'[' | b']'
            | b'{' | b'}' | b'|' | b'~' | b'`' | b'\\' => symbol = true,
            b' ' | b'\t' | b'\n' | b'\r' => return false,
            _ => {}
        }
    }
    lower && upper && digit && symbol
}

/// Bytes that make up base64, base64url and hex strings.
fn is_run_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
}

/// Does any maximal run of base64/base64url/hex characters look random?
pub(crate) fn has_random_run(value: &str) -> bool {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_run_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_run_byte(bytes[i]) {
            i += 1;
        }
        let mut run = &bytes[start..i];
        while let [rest @ .., b'='] = run {
            run = rest;
        }
        if run.len() >= MIN_RANDOM_LEN && run_looks_random(run) {
            return true;
        }
    }
    false
}

/// The character class of an alphanumeric byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Lower,
    Upper,
    Digit,
}

fn class_of(b: u8) -> Option<Class> {
    match b {
        b'a'..=b'z' => Some(Class::Lower),
        b'A'..=b'Z' => Some(Class::Upper),
        b'0'..=b'9' => Some(Class::Digit),
        _ => None,
    }
}

/// The entropy rule for one run (ASCII only, at least [`MIN_RANDOM_LEN`] long, padding
/// stripped). Random strings switch between character classes often and use their
/// alphabet evenly; identifiers, paths and hostnames are made of words. See the module
/// documentation of [`super`] for the measured detection and false-positive rates.
fn run_looks_random(run: &[u8]) -> bool {
    let n = run.len();
    let mut counts = [0u32; 128];
    let (mut lower, mut upper, mut digit, mut separators, mut hex_digits) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut vowels, mut word_chars, mut lower_run) = (0usize, 0usize, 0usize);
    let (mut pairs, mut switches) = (0usize, 0usize);
    let mut prev: Option<Class> = None;
    for &b in run {
        counts[usize::from(b & 0x7f)] += 1;
        let class = class_of(b);
        match class {
            Some(Class::Lower) => lower += 1,
            Some(Class::Upper) => upper += 1,
            Some(Class::Digit) => digit += 1,
            None => separators += 1,
        }
        if b.is_ascii_hexdigit() {
            hex_digits += 1;
        }
        if matches!(b.to_ascii_lowercase(), b'a' | b'e' | b'i' | b'o' | b'u') {
            vowels += 1;
        }
        // Characters inside lowercase runs of four or more: the bodies of words.
        if class == Some(Class::Lower) {
            lower_run += 1;
        } else {
            if lower_run >= 4 {
                word_chars += lower_run;
            }
            lower_run = 0;
        }
        if let (Some(p), Some(c)) = (prev, class) {
            pairs += 1;
            if p != c {
                switches += 1;
            }
        }
        prev = class;
    }
    if lower_run >= 4 {
        word_chars += lower_run;
    }
    let letters = lower + upper;

    // 32+ hex digits and nothing else but separators: UUIDs, digests, SHAs, hex keys.
    if hex_digits == letters + digit && digit > 0 && letters > 0 {
        return hex_digits >= MIN_HEX_DIGITS;
    }
    if is_cloud_resource_id(run) {
        return false;
    }
    if letters == 0 || (digit == 0 && (lower == 0 || upper == 0)) {
        return false; // only digits, or single-case words
    }

    let alphabet = 26 * usize::from(lower > 0)
        + 26 * usize::from(upper > 0)
        + 10 * usize::from(digit > 0)
        + 4 * usize::from(separators > 0);
    let entropy = shannon_entropy(&counts, n);
    let max_entropy = (n.min(alphabet) as f64).log2();
    let entropy_ratio = entropy / max_entropy;
    let switch_rate = switches as f64 / pairs.max(1) as f64;

    if lower > 0 && upper > 0 {
        // Mixed case: base64 and friends, but also CamelCase identifiers.
        if digit == 0 && n < 24 {
            return false;
        }
        let word_frac = word_chars as f64 / n as f64;
        let vowel_ratio = vowels as f64 / letters as f64;
        let wordy = word_frac >= 0.55 || (vowel_ratio >= 0.3 && word_frac >= 0.3);
        return !wordy && switch_rate >= 0.30 && entropy_ratio >= 0.70;
    }
    // One case plus digits: random lowercase/uppercase alphanumerics.
    let min_switch = if separators == 0 { 0.15 } else { 0.25 };
    switch_rate >= min_switch && entropy_ratio >= 0.70
}

/// `vol-0a1b2c3d4e5f67890`, `i-0123456789abcdef0`: lowercase words, then 8–17 hex digits.
fn is_cloud_resource_id(run: &[u8]) -> bool {
    let Some(dash) = run.iter().rposition(|&b| b == b'-') else {
        return false;
    };
    let (prefix, id) = (&run[..dash], &run[dash + 1..]);
    !prefix.is_empty()
        && (8..=17).contains(&id.len())
        && id.iter().all(u8::is_ascii_hexdigit)
        && prefix
            .split(|&b| b == b'-')
            .all(|w| !w.is_empty() && w.iter().all(u8::is_ascii_lowercase))
}

fn shannon_entropy(counts: &[u32; 128], n: usize) -> f64 {
    let n = n as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::new(&["tenant-ssn".to_string(), "".to_string()])
    }

    #[test]
    fn sensitive_names() {
        let r = rules();
        let sensitive = [
            "PASSWORD",
            "DB_PASSWORD",
            "PGPASSWORD",
            "mysqlRootPassword",
            "DB_PASSWD",
            "DB_PWD",
            "GPG_PASSPHRASE",
            "DB_PASS",
            "REDIS_PW",
            "CLIENT_SECRET",
            "secretName",
            "GITHUB_TOKEN",
            "AccessToken",
            "API_KEY",
            "apiKey",
            "APIKey",
            "APIKEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "ENCRYPTION_KEY",
            "SSH_KEYS",
            "S3KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "DOCKER_CREDENTIAL",
            "BASIC_AUTH",
            "OAUTH2_CLIENT_ID",
            "AUTHORIZATION",
            "PRIVATE_KEY_PATH",
            "TLS_CERT",
            "CLIENT_CERTIFICATE",
            "SENTRY_DSN",
            "DB_CONNECTION_STRING",
            "ConnectionString",
            "CONNSTR",
            "conn_str",
            "SESSION_ID",
            "COOKIE_DOMAIN",
            "PASSWORD_SALT",
            "HASHSALT",
            "REQUEST_SIGNATURE",
            "AZURE_SAS",
            "HMAC",
            "JWT",
            "GITHUB_PAT",
            "KUBECONFIG",
            "SLACK_WEBHOOK_URL",
            "AUTHOR_TOKEN",
            "TENANT_SSN_HASH", // configured extra "tenant-ssn"
            "tenantSsn",
        ];
        for name in sensitive {
            assert!(r.is_sensitive_name(name), "{name} should be sensitive");
        }
    }

    #[test]
    fn ordinary_names_are_kept() {
        let r = rules();
        let ordinary = [
            "KEYCLOAK_URL",
            "KEYSPACE",
            "AUTHOR_EMAIL",
            "TOKENIZERS_PARALLELISM",
            "PASSTHROUGH_MODE",
            "BYPASS_CACHE",
            "LOG_LEVEL",
            "PORT",
            "HOST",
            "DATABASE_HOST",
            "JAVA_OPTS",
            "NODE_ENV",
            "POD_NAME",
            "AWS_REGION",
            "COMPASS_URL",
            "MONKEY", // ends with "key": over-redacted, see below
        ];
        for name in &ordinary[..ordinary.len() - 1] {
            assert!(!r.is_sensitive_name(name), "{name} should not be sensitive");
        }
        // Documented over-redaction: any word ending in "key" counts (apikey, signingkey…).
        assert!(r.is_sensitive_name("MONKEY"));
        // Documented over-redaction: the shell's working directory variable.
        assert!(r.is_sensitive_name("PWD"));
    }

    /// A name in one of the spellings env vars, flags and annotations use, from its
    /// lowercase words.
    fn spell(words: &[&str], style: usize) -> String {
        let cap = |w: &str| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        };
        match style {
            0 => words.join("_").to_ascii_uppercase(), // ADMIN_PASSCODE
            1 => words.concat().to_ascii_uppercase(),  // ADMINPASSCODE
            2 => words.concat(),                       // adminpasscode
            3 => words
                .iter()
                .enumerate()
                .map(|(i, w)| if i == 0 { w.to_string() } else { cap(w) })
                .collect(), // adminPasscode
            4 => words.iter().map(|w| cap(w)).collect(), // AdminPasscode
            5 => words.join("-"),                      // admin-passcode
            _ => words.join("."),                      // admin.passcode
        }
    }
    const STYLES: usize = 7;

    /// Every family of secret-bearing words, alone or after an ordinary word, in every
    /// spelling (separated, glued, camelCase…), is sensitive.
    #[test]
    fn secret_word_families_are_sensitive_in_every_spelling() {
        let r = Rules::new(&[]);
        let families: &[(&str, &[&[&str]])] = &[
            (
                "passwords",
                &[
                    &["password"],
                    &["passwd"],
                    &["passwort"],
                    &["pass"],
                    &["passcode"],
                    &["pass", "code"],
                    &["passphrase"],
                    &["pass", "phrase"],
                    &["pgpass"],
                    &["pass", "file"],
                    &["pwd"],
                    &["pw"],
                    &["htpasswd"],
                ],
            ),
            (
                "pins and codes",
                &[
                    &["pin"],
                    &["pin", "code"],
                    &["pin", "number"],
                    &["totp", "seed"],
                    &["hotp"],
                    &["otp"],
                    &["backup", "codes"],
                    &["recovery", "code"],
                    &["unlock", "code"],
                ],
            ),
            (
                "wallet seeds",
                &[
                    &["mnemonic"],
                    &["seed", "phrase"],
                    &["seed", "words"],
                    &["recovery", "phrase"],
                    &["wallet", "seed"],
                    &["master", "seed"],
                    &["bip39", "words"],
                ],
            ),
            (
                "tokens and credentials",
                &[
                    &["secret"],
                    &["token"],
                    &["bearer"],
                    &["credentials"],
                    &["creds"],
                    &["auth"],
                    &["api", "key"],
                    &["access", "key"],
                ],
            ),
            (
                "keys",
                &[
                    &["private", "key"],
                    &["signing", "key"],
                    &["encryption", "key"],
                    &["master", "key"],
                    &["key", "pair"],
                    &["privkey"],
                    &["cert"],
                ],
            ),
            (
                "sessions and cookies",
                &[
                    &["session", "secret"],
                    &["cookie", "secret"],
                    &["session", "key"],
                    &["csrf"],
                    &["xsrf", "token"],
                ],
            ),
            (
                "credential files",
                &[
                    &["npmrc"],
                    &["netrc"],
                    &["pypirc"],
                    &["docker", "config", "json"],
                    &["dockercfg"],
                    &["kubeconfig"],
                ],
            ),
        ];
        let prefixes: &[&[&str]] = &[
            &[],
            &["admin"],
            &["db"],
            &["wallet"],
            &["mysql", "root"],
            &["app"],
            &["x"],
        ];
        let mut checked = 0;
        for (family, words) in families {
            for word in *words {
                for prefix in prefixes {
                    let parts: Vec<&str> = prefix.iter().chain(word.iter()).copied().collect();
                    for style in 0..STYLES {
                        let name = spell(&parts, style);
                        assert!(r.is_sensitive_name(&name), "{family}: {name}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 2000, "{checked}");
    }

    /// Ordinary names that share letters with the secret families stay readable in every
    /// spelling.
    #[test]
    fn ordinary_words_near_the_families_are_kept_in_every_spelling() {
        let r = Rules::new(&[]);
        let ordinary: &[&[&str]] = &[
            &["log", "level"],
            &["client", "id"],
            &["bypass", "cache"],
            &["passthrough", "mode"],
            &["compass", "url"],
            &["passenger", "count"],
            &["passive", "mode"],
            &["max", "passes"],
            &["spin", "wait"],
            &["pinned", "version"],
            &["ping", "url"],
            &["pipeline", "name"],
            &["random", "seed"],
            &["seed", "hosts"],
            &["npm", "config", "registry"],
            &["docker", "config"],
            &["keycloak", "url"],
            &["keyspace"],
            &["author", "email"],
            &["node", "env"],
            &["aws", "region"],
        ];
        for words in ordinary {
            for style in 0..STYLES {
                let name = spell(words, style);
                assert!(
                    !r.is_sensitive_name(&name),
                    "{name} should not be sensitive"
                );
            }
        }
    }

    #[test]
    fn extras_are_case_and_separator_insensitive() {
        let r = Rules::new(&["Customer.Id".to_string()]);
        assert!(r.is_sensitive_name("CUSTOMER_ID"));
        assert!(r.is_sensitive_name("customerId"));
        assert!(!r.is_sensitive_name("CUSTOMER_NAME"));
    }

    #[test]
    fn secret_shaped_values() {
        let r = rules();
        let cases: &[(&str, &str)] = &[
            ("AKIAIOSFODNN7EXAMPLE", "pattern"),
            ("ASIAXYZ1234567890ABC", "pattern"),
            ("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "pattern"),
            ("gho_16C7e42F292c6912E7710c838347Ae178B4a", "pattern"),
            ("ghs_16C7e42F292c6912E7710c838347Ae178B4a", "pattern"),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
                "pattern",
            ),
            ("xoxb-123456789012-1234567890123-abcdefghijkl", "pattern"),
            ("xoxp-1234567890-abcdef", "pattern"),
            ("https://hooks.slack.com/services/T000/B000/XXXX", "pattern"),
            ("sk_live_abcdefghijklmnop1234", "pattern"),
            ("rk_live_abcdefghijklmnop1234", "pattern"),
            ("glpat-abcdefghij0123456789", "pattern"),
            ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "pattern"),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "pattern",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----",
                "pattern",
            ),
            ("-----BEGIN OPENSSH PRIVATE KEY-----", "pattern"),
            ("-----BEGIN CERTIFICATE-----", "pattern"),
            ("postgres://app:hunter2@db.internal:5432/app", "pattern"),
            ("redis://:hunter2@redis:6379/0", "pattern"),
            ("https://x-access-token@github.com/org/repo.git", "pattern"),
            ("Bearer abc123def456", "pattern"),
            ("Basic dXNlcjpwYXNzd29yZA==", "pattern"),
            ("Authorization: Basic dXNlcjpwYXNz", "assignment"),
            ("opts=password=x", "assignment"),
            ("mysql -uroot -phunter2 app", "pattern"),
            ("redis-cli -h redis -a hunter2 ping", "pattern"),
            ("curl -u admin:hunter2 https://x", "pattern"),
            (
                "-Xmx1g -Djavax.net.ssl.trustStorePassword=changeit",
                "assignment",
            ),
            (
                "Server=db;Database=app;User Id=sa;Password=hunter2;",
                "assignment",
            ),
            ("https://api.example.com/v1?access_token=abc", "assignment"),
            (
                "https://bucket.s3.amazonaws.com/o?X-Amz-Signature=abc",
                "assignment",
            ),
            (r#"{"user":"app","password":"hunter2"}"#, "assignment"),
            ("password: hunter2", "assignment"),
            ("P@ssw0rd!", "password-shape"),
            ("Xk9#mP2$qL7!vR4", "password-shape"),
            ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "entropy"),
            ("8f14e45fceea167a5a36dedd4bea2543", "entropy"),
            ("da39a3ee5e6b4b0d3255bfef95601890afd80709", "entropy"),
            ("550e8400-e29b-41d4-a716-446655440000", "entropy"),
            ("q7w8e9r0t1y2u3i4o5p6a7s8", "entropy"),
            ("dGhpcyBpcyBhIHNlY3JldCBrZXkgdmFsdWU=", "entropy"),
            ("key is 3xQ9mZr7LpT2vWc8NbKd5Hs", "entropy"),
        ];
        for (value, rule) in cases {
            assert_eq!(r.value_rule(value), Some(*rule), "{value}");
            assert!(r.looks_like_secret(value), "{value}");
        }
    }

    #[test]
    fn ordinary_values_are_kept() {
        let r = rules();
        let ordinary = [
            "true",
            "false",
            "8080",
            "info",
            "debug",
            "production",
            "/var/lib/x",
            "/var/lib/postgresql/data/pgdata",
            "/etc/ssl/certs/ca-certificates.crt",
            "us-east-1",
            "eu-west-1b",
            "500m",
            "2Gi",
            "1.5",
            "100Mi",
            "db.internal",
            "my-service.my-namespace.svc.cluster.local",
            "kafka-broker-0.kafka-headless.kafka.svc.cluster.local:9092",
            "http://otel-collector.observability.svc.cluster.local:4317",
            "https://api.example.com/v1/resources?page=2&limit=50",
            "nginx:1.25",
            "registry.example.com/team/app:v1.2.3",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:2024.01.15-build.1234",
            "ghcr.io/org/some-image-name-with-long-name:2024.01.15-build.1234",
            "arn:aws:iam::123456789012:role/my-role-name-for-service",
            "arn:aws:sqs:us-east-1:123456789012:my-queue-name-dead-letter-queue-2",
            "projects/my-project/locations/us-central1/keyRings",
            "org.apache.kafka.common.serialization.StringSerializer",
            "com.example.service.config.ApplicationConfiguration",
            "SomeVeryLongCamelCaseIdentifierName",
            "AbstractSingletonProxyFactoryBeanImpl",
            "OAuth2AuthorizedClientService",
            "XMLHttpRequestEventTarget2",
            "Log4j2ContextSelector",
            "-XX:MaxRAMPercentage=75.0 -XX:+UseContainerSupport",
            "-Dspring.profiles.active=prod",
            "service.name=checkout,deployment.environment=prod",
            "America/Argentina/Buenos_Aires",
            "en_US.UTF-8",
            "2024-01-15T10:30:00Z",
            "1705312200000000000000",
            "i-0123456789abcdef0",
            "vol-0a1b2c3d4e5f67890",
            "sg-0a1b2c3d4e5f6789a",
            "application-production-us-east-1-cluster-01",
            "my_database_name_for_production_01",
            "prod_eu_west_1_k8s_cluster_v2",
            "nvidia-tesla-t4-x86-64-gpu-node-pool-1a",
            "m5.2xlarge,m5a.2xlarge,m6i.2xlarge",
            "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
            "$(POD_NAME).$(POD_NAMESPACE).svc",
            "*/5 * * * *",
            "Europe/Berlin",
            "7d4b9c8f6",
            "node-role.kubernetes.io/control-plane",
            "git@github.com:org/repo.git",
            "user@example.com",
            "basic",
            "Bearer",
            "Basic authentication is enabled",
            REDACTED,
            "--password=[redacted by crossguard]",
        ];
        for value in ordinary {
            assert_eq!(r.value_rule(value), None, "{value}");
        }
    }

    /// Measured rates of the entropy rule on seeded random strings. These numbers are
    /// quoted in the module documentation; the bounds leave room for sampling noise.
    #[test]
    fn entropy_rule_detection_rates() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let b62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let b64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let l36: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = StdRng::seed_from_u64(7);
        let mut rate = |alphabet: &[u8], len: usize| {
            let trials = 2000;
            let hits = (0..trials)
                .filter(|_| {
                    let s: String = (0..len)
                        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
                        .collect();
                    has_random_run(&s)
                })
                .count();
            hits as f64 / trials as f64
        };
        assert!(rate(b62, 20) > 0.93);
        assert!(rate(b62, 32) > 0.99);
        assert!(rate(b64, 40) > 0.99);
        assert!(rate(l36, 24) > 0.97);
        assert!(rate(l36, 40) > 0.99);
    }

    #[test]
    fn tokenizer_splits_identifiers() {
        let mut tokens = Vec::new();
        for_each_token("myAPIKey_v2-oauth2Token", |t| tokens.push(t.to_string()));
        assert_eq!(
            tokens,
            ["my", "API", "Key", "v", "2", "oauth", "2", "Token"]
        );
    }
}
