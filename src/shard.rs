//! Label-based shards: which operator Deployment owns which CustomerAccount (and, through
//! it, which ManagedCluster). Pure: labels in, an owner out.
//!
//! The rule (docs/operations.md "Sharding"):
//! - `--shard N/M` (N counted from 0, as kube-state-metrics' `--shard`/`--total-shards` and
//!   StatefulSet ordinals are) makes a replica own exactly the CustomerAccounts whose label
//!   [`SHARD_LABEL`] is the decimal `N` (no sign, no leading zeros), and the
//!   ManagedClusters referring to those accounts.
//! - Unsharded (`--shard` not given, or `0/1`) a replica owns every account, labelled or
//!   not: existing single-Deployment installs need no label.
//! - With M > 1 an account without the label, with a value that is not a shard index, or
//!   with one ≥ M is owned by nobody; shard 0 reports it ([`Unowned`]).
//!
//! Ownership depends on the label and on N only, never on M, and each shard's default
//! Lease is named after N alone ([`Shard::lease_name`]); so two Deployments that briefly
//! disagree on M during a rollout can never own the same account (they either have
//! different N and claim different label values, or the same N and share one Lease, of
//! which only one replica holds). M decides only what shard 0 reports as unowned.
//! Assignment is explicit, not hashed: a hash of the name would move accounts whenever M
//! changes, so every rollout that changes M would move most accounts between Deployments
//! that do not yet agree on M.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The label naming the shard (its index N, decimal) that owns a CustomerAccount.
pub const SHARD_LABEL: &str = "crossguard.dev/shard";

/// The condition type the shard status is reported in, on both kinds.
pub const CONDITION: &str = "Sharded";

/// Reason of `Sharded=True`: this shard owns and reconciles the object.
pub const REASON_OWNED: &str = "ShardOwner";

/// Reason of `Sharded=False`: no shard owns the object, so nothing reconciles it.
pub const REASON_UNOWNED: &str = "NoShardOwner";

/// Most shards a fleet may be split into (a bound so a typo such as `0/10000` is caught;
/// each shard is a Deployment of its own).
pub const MAX_SHARDS: u32 = 64;

/// One shard of M, or the whole fleet (`0/1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

/// Why `--shard` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not of the form `N/M`.
    #[error(
        "--shard must be N/M (this replica's shard index N, counted from 0, of M shards), e.g. 0/2; got {0:?}"
    )]
    Form(String),
    /// N or M is not a whole number.
    #[error("--shard {value:?}: {part} {text:?} is not a whole number")]
    Number {
        /// The whole value.
        value: String,
        /// `index N` or `count M`.
        part: &'static str,
        /// The offending text.
        text: String,
    },
    /// M is 0 or above [`MAX_SHARDS`].
    #[error("--shard {value:?}: the shard count must be 1 to {MAX_SHARDS}")]
    Count {
        /// The whole value.
        value: String,
    },
    /// N ≥ M.
    #[error("--shard {value:?}: the shard index counts from 0, so it must be below the shard count {count} (0 to {})", count - 1)]
    Index {
        /// The whole value.
        value: String,
        /// M.
        count: u32,
    },
}

impl FromStr for Shard {
    type Err = ParseError;

    fn from_str(value: &str) -> Result<Self, ParseError> {
        let (n, m) = value
            .trim()
            .split_once('/')
            .ok_or_else(|| ParseError::Form(value.to_string()))?;
        let number = |part: &'static str, text: &str| {
            text.trim()
                .parse::<u32>()
                .ok()
                .filter(|_| text.trim().bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ParseError::Number {
                    value: value.to_string(),
                    part,
                    text: text.to_string(),
                })
        };
        let index = number("index N", n)?;
        let count = number("count M", m)?;
        if count == 0 || count > MAX_SHARDS {
            return Err(ParseError::Count {
                value: value.to_string(),
            });
        }
        if index >= count {
            return Err(ParseError::Index {
                value: value.to_string(),
                count,
            });
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Who owns an object, as one shard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This shard.
    This,
    /// Another shard (its index).
    Other(u32),
    /// No shard; why.
    Nobody(Unowned),
}

/// Why no shard owns an object (only with more than one shard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unowned {
    /// The CustomerAccount has no [`SHARD_LABEL`].
    Unlabelled,
    /// The label's value is not a shard index (`"a"`, `"01"`, `"-1"`).
    NotAnIndex(String),
    /// The label names a shard ≥ M.
    OutOfRange(u32),
    /// A ManagedCluster whose CustomerAccount has no owner.
    AccountUnowned(String, Box<Unowned>),
}

impl Unowned {
    /// The condition message: what is wrong and how to fix it.
    pub fn message(&self, count: u32) -> String {
        let fix = format!(
            "label the CustomerAccount with {SHARD_LABEL}=<0..{}> (kubectl label customeraccount <name> {SHARD_LABEL}=<n>) to give it to a shard; until then nothing reconciles it, and its deletion waits",
            count - 1
        );
        match self {
            Unowned::Unlabelled => {
                format!(
                    "No shard owns this CustomerAccount: it has no {SHARD_LABEL} label and the fleet runs {count} shards; {fix}."
                )
            }
            Unowned::NotAnIndex(v) => format!(
                "No shard owns this CustomerAccount: its {SHARD_LABEL} label {v:?} is not a shard index (a decimal number without leading zeros); {fix}."
            ),
            Unowned::OutOfRange(n) => format!(
                "No shard owns this CustomerAccount: its {SHARD_LABEL} label names shard {n}, but the fleet runs {count} shards (0 to {}); {fix}.",
                count - 1
            ),
            Unowned::AccountUnowned(name, why) => format!(
                "No shard owns this ManagedCluster: it belongs to the shard of CustomerAccount {name}, which no shard owns ({}).",
                why.short()
            ),
        }
    }

    fn short(&self) -> String {
        match self {
            Unowned::Unlabelled => format!("no {SHARD_LABEL} label"),
            Unowned::NotAnIndex(v) => format!("label {v:?} is not a shard index"),
            Unowned::OutOfRange(n) => format!("label names shard {n}, beyond the shard count"),
            Unowned::AccountUnowned(name, _) => format!("CustomerAccount {name} has no owner"),
        }
    }
}

impl Shard {
    /// The whole fleet: one Deployment owns every account, labelled or not.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// This replica's shard index N (from 0).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The number of shards M.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the fleet is split (M > 1).
    pub fn is_sharded(&self) -> bool {
        self.count > 1
    }

    /// Whether this shard reports objects no shard owns: shard 0 of a split fleet.
    pub fn reports_unowned(&self) -> bool {
        self.is_sharded() && self.index == 0
    }

    /// Who owns a CustomerAccount with `labels`.
    pub fn account_owner(&self, labels: Option<&BTreeMap<String, String>>) -> Owner {
        if !self.is_sharded() {
            return Owner::This;
        }
        let Some(value) = labels.and_then(|l| l.get(SHARD_LABEL)) else {
            return Owner::Nobody(Unowned::Unlabelled);
        };
        // Canonical decimal only, so that ownership agrees with the API server's
        // `crossguard.dev/shard=N` selection (a string comparison).
        let canonical = value
            .parse::<u32>()
            .ok()
            .filter(|n| n.to_string() == *value);
        match canonical {
            None => Owner::Nobody(Unowned::NotAnIndex(value.clone())),
            Some(n) if n == self.index => Owner::This,
            Some(n) if n < self.count => Owner::Other(n),
            Some(n) => Owner::Nobody(Unowned::OutOfRange(n)),
        }
    }

    /// Whether this shard owns a CustomerAccount with `labels`.
    pub fn owns_account(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.account_owner(labels) == Owner::This
    }

    /// Who owns a ManagedCluster whose CustomerAccount `account` (same namespace) has
    /// `account_labels`; `None` when that account does not exist. A cluster without an
    /// account belongs to shard 0, which reports `AccountNotFound` on it as an unsharded
    /// operator does and lets it go when it is deleted (deleting a namespace removes the
    /// account first, often).
    pub fn cluster_owner(
        &self,
        account: &str,
        account_labels: Option<Option<&BTreeMap<String, String>>>,
    ) -> Owner {
        if !self.is_sharded() {
            return Owner::This;
        }
        match account_labels {
            None if self.index == 0 => Owner::This,
            None => Owner::Other(0),
            Some(labels) => match self.account_owner(labels) {
                Owner::Nobody(why) => {
                    Owner::Nobody(Unowned::AccountUnowned(account.to_string(), Box::new(why)))
                }
                owner => owner,
            },
        }
    }

    /// The label selector this shard watches CustomerAccounts with (server side, so a
    /// shard never caches another's accounts); `None` unsharded (every account).
    pub fn account_selector(&self) -> Option<String> {
        self.is_sharded()
            .then(|| format!("{SHARD_LABEL}={}", self.index))
    }

    /// The default leader Lease name: `base` for shard 0 and unsharded (so moving the
    /// existing Deployment from unsharded to shard 0 keeps one Lease and one leader), and
    /// `base-shard-N` for N ≥ 1. M is not part of it: a Deployment changing M keeps its
    /// Lease, so its old and new pods never lead at once.
    pub fn lease_name(&self, base: &str) -> String {
        if self.index == 0 {
            base.to_string()
        } else {
            format!("{base}-shard-{}", self.index)
        }
    }

    /// The `Sharded=True` message for an object this shard owns.
    pub fn owned_message(&self) -> String {
        format!(
            "Reconciled by shard {} of {} (the Deployment run with --shard {self}).",
            self.index, self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(value: Option<&str>) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([("team".to_string(), "a".to_string())]);
        if let Some(v) = value {
            l.insert(SHARD_LABEL.to_string(), v.to_string());
        }
        l
    }

    #[test]
    fn the_flag_parses_n_of_m_from_zero() {
        for (text, index, count) in [
            ("0/1", 0, 1),
            ("0/2", 0, 2),
            ("1/2", 1, 2),
            (" 63/64 ", 63, 64),
        ] {
            let s: Shard = text.parse().unwrap();
            assert_eq!((s.index(), s.count()), (index, count), "{text}");
        }
        assert_eq!("3/4".parse::<Shard>().unwrap().to_string(), "3/4");
    }

    #[test]
    fn bad_flags_are_refused_with_what_to_write() {
        let cases = [
            ("2/2", "must be below the shard count 2 (0 to 1)"),
            ("5/2", "must be below the shard count 2"),
            ("x", "must be N/M"),
            ("1", "must be N/M"),
            ("", "must be N/M"),
            ("a/2", "index N \"a\" is not a whole number"),
            ("0/b", "count M \"b\" is not a whole number"),
            ("-1/2", "is not a whole number"),
            ("+1/2", "is not a whole number"),
            ("0/0", "count must be 1 to 64"),
            ("0/65", "count must be 1 to 64"),
            ("1/2/3", "is not a whole number"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<Shard>().unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.contains("--shard"), "{text}: {err}");
        }
    }

    #[test]
    fn unsharded_owns_every_account_labelled_or_not() {
        for value in [None, Some("0"), Some("1"), Some("7"), Some("x")] {
            assert_eq!(Shard::ALL.account_owner(Some(&labels(value))), Owner::This);
        }
        assert_eq!(Shard::ALL.account_owner(None), Owner::This);
        assert_eq!(Shard::ALL.account_selector(), None);
        assert!(!Shard::ALL.reports_unowned());
        let one: Shard = "0/1".parse().unwrap();
        assert_eq!(one, Shard::ALL);
    }

    #[test]
    fn a_shard_owns_exactly_the_accounts_labelled_with_its_index() {
        let s0: Shard = "0/2".parse().unwrap();
        let s1: Shard = "1/2".parse().unwrap();
        let table = [
            (Some("0"), Owner::This, Owner::Other(0)),
            (Some("1"), Owner::Other(1), Owner::This),
            (
                None,
                Owner::Nobody(Unowned::Unlabelled),
                Owner::Nobody(Unowned::Unlabelled),
            ),
            (
                Some("2"),
                Owner::Nobody(Unowned::OutOfRange(2)),
                Owner::Nobody(Unowned::OutOfRange(2)),
            ),
            (
                Some("01"),
                Owner::Nobody(Unowned::NotAnIndex("01".into())),
                Owner::Nobody(Unowned::NotAnIndex("01".into())),
            ),
            (
                Some("a"),
                Owner::Nobody(Unowned::NotAnIndex("a".into())),
                Owner::Nobody(Unowned::NotAnIndex("a".into())),
            ),
            (
                Some(""),
                Owner::Nobody(Unowned::NotAnIndex("".into())),
                Owner::Nobody(Unowned::NotAnIndex("".into())),
            ),
        ];
        for (value, by0, by1) in table {
            assert_eq!(s0.account_owner(Some(&labels(value))), by0, "{value:?}");
            assert_eq!(s1.account_owner(Some(&labels(value))), by1, "{value:?}");
        }
        assert_eq!(
            s0.account_selector().as_deref(),
            Some("crossguard.dev/shard=0")
        );
        assert_eq!(
            s1.account_selector().as_deref(),
            Some("crossguard.dev/shard=1")
        );
        assert!(s0.reports_unowned() && !s1.reports_unowned());
    }

    /// Whatever M each Deployment believes in (a rollout changing M), at most one
    /// (index, Lease) claims any label value: ownership never overlaps.
    #[test]
    fn shards_that_disagree_on_the_count_never_own_the_same_account() {
        let values: Vec<Option<String>> = std::iter::once(None)
            .chain((0..8).map(|n| Some(n.to_string())))
            .chain(["01", "x"].map(|v| Some(v.to_string())))
            .collect();
        let mut shards = Vec::new();
        for count in 2..=6u32 {
            for index in 0..count {
                shards.push(Shard { index, count });
            }
        }
        for value in &values {
            let l = labels(value.as_deref());
            let owners: std::collections::BTreeSet<String> = shards
                .iter()
                .filter(|s| s.owns_account(Some(&l)))
                .map(|s| s.lease_name("crossguard-leader"))
                .collect();
            assert!(
                owners.len() <= 1,
                "{value:?} is owned under Leases {owners:?}"
            );
            // A shard owns what the API server's selection gives it, and nothing else.
            for s in &shards {
                let selected = value.as_deref() == Some(s.index.to_string().as_str());
                assert_eq!(s.owns_account(Some(&l)), selected, "{s} {value:?}");
            }
        }
    }

    #[test]
    fn a_cluster_follows_its_account() {
        let s1: Shard = "1/2".parse().unwrap();
        assert_eq!(
            s1.cluster_owner("a", Some(Some(&labels(Some("1"))))),
            Owner::This
        );
        assert_eq!(
            s1.cluster_owner("a", Some(Some(&labels(Some("0"))))),
            Owner::Other(0)
        );
        // Without its account a cluster is shard 0's, to report and to let go.
        assert_eq!(s1.cluster_owner("a", None), Owner::Other(0));
        let s0: Shard = "0/2".parse().unwrap();
        assert_eq!(s0.cluster_owner("a", None), Owner::This);
        let Owner::Nobody(why) = s1.cluster_owner("a", Some(None)) else {
            panic!("an unlabelled account's cluster has no owner");
        };
        assert_eq!(
            why,
            Unowned::AccountUnowned("a".into(), Box::new(Unowned::Unlabelled))
        );
        assert!(
            why.message(2)
                .contains("CustomerAccount a, which no shard owns (no crossguard.dev/shard label)")
        );
        assert_eq!(Shard::ALL.cluster_owner("a", None), Owner::This);
    }

    #[test]
    fn lease_names_depend_on_the_index_only() {
        let name = |s: &str| s.parse::<Shard>().unwrap().lease_name("crossguard-leader");
        assert_eq!(name("0/1"), "crossguard-leader");
        assert_eq!(name("0/2"), "crossguard-leader");
        assert_eq!(name("0/3"), "crossguard-leader");
        assert_eq!(name("1/2"), "crossguard-leader-shard-1");
        assert_eq!(name("1/3"), "crossguard-leader-shard-1");
    }

    #[test]
    fn unowned_messages_say_how_to_fix_it() {
        let m = Unowned::Unlabelled.message(3);
        assert!(m.contains("crossguard.dev/shard=<0..2>"), "{m}");
        assert!(m.contains("deletion waits"), "{m}");
        let m = Unowned::OutOfRange(5).message(2);
        assert!(
            m.contains("names shard 5, but the fleet runs 2 shards (0 to 1)"),
            "{m}"
        );
        let m = Unowned::NotAnIndex("01".into()).message(2);
        assert!(m.contains("\"01\" is not a shard index"), "{m}");
    }
}
