//! The ladder: pure decisions over one scan. Given the policy (from the CustomerAccount's
//! `spec.accessKeyAudit`), what the scan found and what was remembered, [`plan`] says what
//! to tell whom, which keys to disable, and what to report, and records in the state which
//! steps are now notified.
//!
//! Rules, as documented in docs/account-hygiene.md ("The access-key age monitor"):
//! - A key's age is the whole number of UTC days elapsed since its CreateDate.
//! - Thresholds come from the user's type tag: `machine` users get `spec.accessKeyAudit.machine`
//!   when set; everyone else gets the engineers' `warnDays` / `disableDay`.
//! - When an active key's age first reaches a warning day, the owner and the team get one
//!   message for the highest day reached; lower days that were skipped (a key first seen
//!   at day 83) are marked as passed, not sent.
//! - On the deadline (CreateDate + disableDay; for keys already past it at the account's
//!   first scan, that scan + `firstScanGraceDays`, with a final warning meanwhile) the key
//!   is disabled if `enforce` is on and its user carries `crossguard.dev/managed=true`;
//!   otherwise the team is told once what would be disabled, and why not.
//! - A user tag `crossguard.dev/key-exempt-until=YYYY-MM-DD` suspends the ladder through
//!   that date (inclusive, UTC); an unparsable value is reported and ignored.
//! - A key id not seen before (after the first scan) is announced as new; a key crossguard
//!   disabled that is active again is reported (and, under `enforce`, disabled again,
//!   being past its deadline); a user with more than one active key is reported once per
//!   set of keys.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::json;

use super::state::{AuditState, KeyRecord};
use crate::api::{AccessKeyAudit, KeyFinding, OwnerTags};
use crate::aws::{AccessKey, IamUser, KeyLastUsed, TAG_MANAGED};

/// User tag that suspends the ladder through a date (`YYYY-MM-DD`, inclusive, UTC).
pub const TAG_EXEMPT_UNTIL: &str = "crossguard.dev/key-exempt-until";
const DAY: i64 = 86_400;

/// Warning days and deadline, in days of key age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// Warning days, ascending.
    pub warn_days: Vec<u32>,
    /// The deadline.
    pub disable_day: u32,
}

/// The audit's settings, from `spec.accessKeyAudit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// For engineers and users of unknown type.
    pub engineer: Thresholds,
    /// For users tagged as machines.
    pub machine: Thresholds,
    /// Grace in days for keys already overdue at the first scan.
    pub grace_days: u32,
    /// Whether keys are actually disabled.
    pub enforce: bool,
    /// The owner tag names.
    pub tags: OwnerTags,
}

impl Policy {
    /// The policy a spec describes.
    pub fn from_spec(spec: &AccessKeyAudit) -> Policy {
        let sorted = |days: &[u32]| {
            let mut d = days.to_vec();
            d.sort_unstable();
            d.dedup();
            d
        };
        let engineer = Thresholds {
            warn_days: sorted(&spec.warn_days),
            disable_day: spec.disable_day,
        };
        let machine = spec
            .machine
            .as_ref()
            .map(|m| Thresholds {
                warn_days: sorted(&m.warn_days),
                disable_day: m.disable_day,
            })
            .unwrap_or_else(|| engineer.clone());
        Policy {
            engineer,
            machine,
            grace_days: spec.first_scan_grace_days,
            enforce: spec.enforce,
            tags: spec.owner_tags.clone(),
        }
    }
}

/// One user as the scan found them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedUser {
    /// The user, with tags.
    pub user: IamUser,
    /// Each key with what GetAccessKeyLastUsed said.
    pub keys: Vec<(AccessKey, KeyLastUsed)>,
}

/// Something to tell the owner (when known) and the team, once.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Unique per decision: `<step>/<key id or user>`; routes are appended when queued.
    pub id: String,
    /// The owner's Slack member id, when the user is owned.
    pub owner: Option<String>,
    /// The owner's private message.
    pub owner_text: String,
    /// The team channel's message.
    pub team_text: String,
    /// Structured copy for the generic webhook.
    pub fields: serde_json::Value,
}

/// A key to disable now: past its deadline, `enforce` on, user tagged managed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disable {
    /// IAM user.
    pub user: String,
    /// The one key.
    pub access_key_id: String,
    /// Its age in days.
    pub age_days: u32,
}

/// A Kubernetes Event about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    /// Event reason, e.g. NewAccessKey.
    pub reason: &'static str,
    /// The key it is about.
    pub access_key_id: String,
    /// The Event's note.
    pub note: String,
}

/// Counts for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Users scanned.
    pub users: u32,
    /// Keys scanned.
    pub keys: u32,
    /// Active keys under the first warning day.
    pub ok: u32,
    /// Active keys at or past a warning day, before their deadline.
    pub expiring: u32,
    /// Active keys past their deadline (including those about to be disabled).
    pub overdue: u32,
    /// Inactive keys crossguard disabled.
    pub disabled: u32,
    /// Keys first seen in this scan (after the first).
    pub new: u32,
    /// Keys of users without an owner tag.
    pub unowned: u32,
    /// Keys of users with a current exemption.
    pub exempt: u32,
    /// Users with more than one active key.
    pub multiple_active: u32,
    /// Keys crossguard disabled that are active again.
    pub reactivated: u32,
}

/// What one scan decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Messages to queue.
    pub notices: Vec<Notice>,
    /// Keys to disable (each through the guard).
    pub disable: Vec<Disable>,
    /// What needs attention, most urgent first.
    pub findings: Vec<KeyFinding>,
    /// Counts.
    pub counts: Counts,
    /// Kubernetes Events to publish for new and reactivated keys.
    pub events: Vec<KeyEvent>,
}

/// Whole UTC days from `from` to `now` (0 for a time in the future).
pub fn age_days(from: Timestamp, now: Timestamp) -> u32 {
    u32::try_from(((now.as_second() - from.as_second()) / DAY).max(0)).unwrap_or(u32::MAX)
}

fn date_of(t: Timestamp) -> Date {
    t.to_zoned(jiff::tz::TimeZone::UTC).date()
}

fn plus_days(t: Timestamp, days: u32) -> Timestamp {
    Timestamp::from_second(t.as_second() + i64::from(days) * DAY).unwrap_or(t)
}

/// The owner and how to address them.
struct Owner<'a> {
    slack_id: Option<&'a str>,
    name: Option<String>,
    machine: bool,
}

impl<'a> Owner<'a> {
    /// Read from the user's tags. Tag values are the customer's free text: the Slack id is
    /// used only if it is a Slack member id (so a tag like `C0123` or `#general` never
    /// turns a private message into a channel post), and the name is made inert for
    /// Slack's mrkdwn (no `<!channel>`) and bounded.
    fn of(tags: &'a BTreeMap<String, String>, names: &OwnerTags) -> Owner<'a> {
        Owner {
            slack_id: tags
                .get(&names.slack_id)
                .map(String::as_str)
                .filter(|s| is_member_id(s)),
            name: tags
                .get(&names.full_name)
                .map(|n| inert(n, 64))
                .filter(|n| !n.is_empty()),
            machine: tags
                .get(&names.kind)
                .is_some_and(|t| t.eq_ignore_ascii_case("machine")),
        }
    }

    fn label(&self) -> String {
        match (&self.name, self.slack_id) {
            (Some(n), Some(id)) => format!("{n} (<@{id}>)"),
            (None, Some(id)) => format!("<@{id}>"),
            (Some(n), None) => format!("{n} (unowned: no valid Slack id tag)"),
            (None, None) => "unowned (no owner tag)".to_string(),
        }
    }
}

/// A Slack member id: `U` or `W` then capital letters and digits (Slack's user ids).
fn is_member_id(s: &str) -> bool {
    s.len() >= 3
        && s.len() <= 32
        && (s.starts_with('U') || s.starts_with('W'))
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Customer text made safe for a Slack message: control characters dropped, `&`, `<` and
/// `>` escaped as Slack's formatting rules require (so no mention or link can be
/// injected), at most `max` characters.
pub fn inert(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What the scan's context is, for messages.
struct Ctx<'a> {
    account: &'a str,
    now: Timestamp,
}

/// Decide over one complete scan and record it in `state` (keys seen, steps notified,
/// first and last scan times). `state` must be persisted, with the notices queued,
/// before anything is sent or disabled.
pub fn plan(
    policy: &Policy,
    account_id: &str,
    scanned: &[ScannedUser],
    state: &mut AuditState,
    now: Timestamp,
) -> Plan {
    let first_scan = state.first_scan_at.is_none();
    let ctx = Ctx {
        account: account_id,
        now,
    };
    let mut plan = Plan::default();
    let mut seen = BTreeMap::new();
    plan.counts.users = scanned.len() as u32;
    for su in scanned {
        let tags = &su.user.tags;
        let owner = Owner::of(tags, &policy.tags);
        let thresholds = if owner.machine {
            &policy.machine
        } else {
            &policy.engineer
        };
        let managed = tags.get(TAG_MANAGED).map(String::as_str) == Some("true");
        let exemption = exemption(tags, now);
        if let Exemption::Invalid(value) = &exemption {
            plan.findings.push(KeyFinding {
                user: su.user.name.clone(),
                access_key_id: String::new(),
                age_days: 0,
                finding: "InvalidExemption".into(),
                message: format!(
                    "{TAG_EXEMPT_UNTIL}={value:?} is not a date (YYYY-MM-DD): ignored, the ladder applies"
                ),
            });
        }
        for (key, last_used) in &su.keys {
            plan.counts.keys += 1;
            if owner.slack_id.is_none() {
                plan.counts.unowned += 1;
            }
            let record = state.keys.remove(&key.id);
            let is_new = record.is_none() && !first_scan;
            let age = age_days(key.created, now);
            let mut record = record.unwrap_or_else(|| KeyRecord {
                user: su.user.name.clone(),
                first_seen: now,
                grace_until: (first_scan && age >= thresholds.disable_day)
                    .then(|| plus_days(now, policy.grace_days)),
                notified: Default::default(),
                warned_disable: false,
                disabled_at: None,
            });
            let k = KeyView {
                key,
                last_used,
                user: &su.user.name,
                owner: &owner,
                age,
                managed,
            };
            if is_new {
                plan.counts.new += 1;
                new_key(&ctx, &k, &mut record, &mut plan);
            }
            if key.active {
                ladder(
                    policy,
                    thresholds,
                    &ctx,
                    &k,
                    &exemption,
                    &mut record,
                    &mut plan,
                );
            } else if record.disabled_at.is_some() {
                plan.counts.disabled += 1;
                plan.findings.push(k.finding(
                    "Disabled",
                    format!(
                        "disabled by crossguard on {}",
                        date_of(record.disabled_at.unwrap_or(now))
                    ),
                ));
            }
            seen.insert(key.id.clone(), record);
        }
        multiple_active(&ctx, su, &owner, state, &mut plan);
    }
    // Keys deleted since the last scan are forgotten; so are users who left.
    state.keys = seen;
    let users: std::collections::BTreeSet<&str> =
        scanned.iter().map(|s| s.user.name.as_str()).collect();
    state
        .multiple_active
        .retain(|u, _| users.contains(u.as_str()));
    if first_scan {
        state.first_scan_at = Some(now);
    }
    state.last_scan_at = Some(now);
    state.version = 1;
    plan.findings
        .sort_by_key(|f| (urgency(&f.finding), std::cmp::Reverse(f.age_days)));
    plan
}

fn urgency(finding: &str) -> u8 {
    match finding {
        "Reactivated" => 0,
        "Overdue" => 1,
        "New" => 2,
        "Expiring" => 3,
        "MultipleActiveKeys" => 4,
        "InvalidExemption" => 5,
        "Disabled" => 6,
        _ => 7,
    }
}

enum Exemption {
    None,
    Until(Date),
    Expired,
    Invalid(String),
}

fn exemption(tags: &BTreeMap<String, String>, now: Timestamp) -> Exemption {
    let Some(value) = tags.get(TAG_EXEMPT_UNTIL) else {
        return Exemption::None;
    };
    match value.trim().parse::<Date>() {
        Ok(d) if date_of(now) <= d => Exemption::Until(d),
        Ok(_) => Exemption::Expired,
        Err(_) => Exemption::Invalid(value.clone()),
    }
}

/// One key with what messages need.
struct KeyView<'a> {
    key: &'a AccessKey,
    last_used: &'a KeyLastUsed,
    user: &'a str,
    owner: &'a Owner<'a>,
    age: u32,
    managed: bool,
}

impl KeyView<'_> {
    fn finding(&self, finding: &str, message: String) -> KeyFinding {
        KeyFinding {
            user: self.user.to_string(),
            access_key_id: self.key.id.clone(),
            age_days: self.age,
            finding: finding.to_string(),
            message,
        }
    }

    fn last_used(&self) -> String {
        match (&self.last_used.at, &self.last_used.service) {
            (Some(at), Some(service)) => format!("Last used {} with {service}", date_of(*at)),
            (Some(at), None) => format!("Last used {}", date_of(*at)),
            _ => "Never used".to_string(),
        }
    }

    fn rotate(&self) -> String {
        format!(
            "To rotate: `aws iam create-access-key --user-name {u}`, move every tool to the new key, then `aws iam update-access-key --user-name {u} --access-key-id {k} --status Inactive` and delete it.",
            u = self.user,
            k = self.key.id
        )
    }

    fn fields(&self, ctx: &Ctx<'_>, event: &str, deadline: Option<Date>) -> serde_json::Value {
        json!({
            "event": event,
            "account": ctx.account,
            "user": self.user,
            "accessKeyId": self.key.id,
            "ageDays": self.age,
            "deadline": deadline.map(|d| d.to_string()),
            "owner": self.owner.slack_id,
            "ownerName": self.owner.name,
            "lastUsed": self.last_used.at.map(|t| t.to_string()),
            "time": ctx.now.to_string(),
        })
    }

    fn notice(
        &self,
        ctx: &Ctx<'_>,
        step: &str,
        event: &str,
        deadline: Option<Date>,
        body: String,
    ) -> Notice {
        Notice {
            id: format!("{step}/{}", self.key.id),
            owner: self.owner.slack_id.map(str::to_string),
            owner_text: format!("{body} {}", self.rotate()),
            team_text: format!(
                "[account {}] {body} Owner: {}.",
                ctx.account,
                self.owner.label()
            ),
            fields: self.fields(ctx, event, deadline),
        }
    }
}

fn new_key(ctx: &Ctx<'_>, k: &KeyView<'_>, record: &mut KeyRecord, plan: &mut Plan) {
    plan.findings
        .push(k.finding("New", "first seen in this scan".into()));
    if !record.notified.insert("new".into()) {
        return;
    }
    let body = format!(
        "A new access key {} was created for IAM user {} in account {} on {} — was this you?",
        k.key.id,
        k.user,
        ctx.account,
        date_of(k.key.created)
    );
    let mut notice = k.notice(ctx, "new", "NewAccessKey", None, body);
    notice.owner_text = notice.owner_text.replace(
        &k.rotate(),
        "If not, deactivate it at once and tell your security team.",
    );
    plan.events.push(KeyEvent {
        reason: "NewAccessKey",
        access_key_id: k.key.id.clone(),
        note: format!("New access key {} for IAM user {}", k.key.id, k.user),
    });
    plan.notices.push(notice);
}

#[allow(clippy::too_many_arguments)]
fn ladder(
    policy: &Policy,
    thresholds: &Thresholds,
    ctx: &Ctx<'_>,
    k: &KeyView<'_>,
    exemption: &Exemption,
    record: &mut KeyRecord,
    plan: &mut Plan,
) {
    let created_deadline = plus_days(k.key.created, thresholds.disable_day);
    let will_disable = policy.enforce && k.managed;
    if will_disable
        && !record.warned_disable
        && record.disabled_at.is_none()
        && policy.grace_days > 0
        && ctx.now
            >= record
                .grace_until
                .unwrap_or(created_deadline)
                .max(created_deadline)
        && !matches!(exemption, Exemption::Until(_))
    {
        // Due for disabling, but nobody was told it would be (an exemption just ended,
        // the user's type changed, enforcement was just turned on): a final warning and
        // the grace period first, never a disable out of the blue.
        record.grace_until = Some(plus_days(ctx.now, policy.grace_days));
    }
    let deadline = record
        .grace_until
        .map_or(created_deadline, |g| g.max(created_deadline));
    let deadline_date = date_of(deadline);
    if let Some(disabled_at) = record.disabled_at {
        plan.counts.reactivated += 1;
        plan.findings.push(k.finding(
            "Reactivated",
            format!(
                "crossguard disabled this key on {} and it is active again",
                date_of(disabled_at)
            ),
        ));
        let step = format!("reactivated-{}", disabled_at.as_second());
        if record.notified.insert(step.clone()) {
            let body = format!(
                "Access key {} of IAM user {} in account {} was disabled by crossguard on {} and is active again ({} days old).",
                k.key.id,
                k.user,
                ctx.account,
                date_of(disabled_at),
                k.age
            );
            plan.events.push(KeyEvent {
                reason: "AccessKeyReactivated",
                access_key_id: k.key.id.clone(),
                note: format!(
                    "Access key {} of IAM user {} is active again after crossguard disabled it",
                    k.key.id, k.user
                ),
            });
            plan.notices.push(k.notice(
                ctx,
                &step,
                "AccessKeyReactivated",
                Some(deadline_date),
                body,
            ));
        }
    }
    if let Exemption::Until(until) = exemption {
        plan.counts.exempt += 1;
        plan.counts.ok += 1;
        plan.findings.push(k.finding(
            "Exempt",
            format!("exempt through {until} ({TAG_EXEMPT_UNTIL})"),
        ));
        return;
    }
    if ctx.now >= deadline {
        plan.counts.overdue += 1;
        if policy.enforce && k.managed {
            plan.findings.push(k.finding(
                "Overdue",
                format!("deadline {deadline_date} passed: disabling"),
            ));
            plan.disable.push(Disable {
                user: k.user.to_string(),
                access_key_id: k.key.id.clone(),
                age_days: k.age,
            });
            return;
        }
        let (step, why) = if policy.enforce {
            (
                "not-managed",
                format!(
                    "it was not disabled because IAM user {} is not tagged {TAG_MANAGED}=true",
                    k.user
                ),
            )
        } else {
            (
                "would-disable",
                "it was not disabled because spec.accessKeyAudit.enforce is false (dry run)"
                    .to_string(),
            )
        };
        plan.findings
            .push(k.finding("Overdue", format!("deadline {deadline_date} passed; {why}")));
        if record.notified.insert(step.into()) {
            let body = format!(
                "Access key {} of IAM user {} in account {} is {} days old and past its deadline ({deadline_date}); {why}. {}.",
                k.key.id,
                k.user,
                ctx.account,
                k.age,
                k.last_used()
            );
            plan.notices
                .push(k.notice(ctx, step, "AccessKeyOverdue", Some(deadline_date), body));
        }
        return;
    }
    if let Some(grace_until) = record
        .grace_until
        .filter(|_| k.age >= thresholds.disable_day)
    {
        plan.counts.expiring += 1;
        plan.findings.push(k.finding("Expiring", format!(
            "past day {} without an earlier warning that it would be disabled: disabled on {deadline_date} after the grace period",
            thresholds.disable_day
        )));
        if will_disable {
            record.warned_disable = true;
        }
        let step = format!("final-{}", grace_until.as_second());
        if record.notified.insert(step.clone()) {
            let body = format!(
                "Final warning: access key {} of IAM user {} in account {} is {} days old, past the {}-day limit, and was not warned about before; the key will be {} on {deadline_date}. {}.",
                k.key.id,
                k.user,
                ctx.account,
                k.age,
                thresholds.disable_day,
                if policy.enforce && k.managed {
                    "disabled"
                } else {
                    "reported as overdue"
                },
                k.last_used()
            );
            plan.notices.push(k.notice(
                ctx,
                &step,
                "AccessKeyFinalWarning",
                Some(deadline_date),
                body,
            ));
        }
        return;
    }
    let Some(day) = thresholds
        .warn_days
        .iter()
        .rev()
        .copied()
        .find(|d| *d <= k.age)
    else {
        plan.counts.ok += 1;
        return;
    };
    plan.counts.expiring += 1;
    plan.findings.push(k.finding(
        "Expiring",
        format!("warned at day {day}; deadline {deadline_date}"),
    ));
    if will_disable {
        record.warned_disable = true;
    }
    let step = format!("warn-{day}");
    if record.notified.contains(&step) {
        return;
    }
    for d in thresholds.warn_days.iter().filter(|d| **d <= day) {
        record.notified.insert(format!("warn-{d}"));
    }
    let action = if policy.enforce && k.managed {
        "it will be disabled"
    } else if policy.enforce {
        "it should be rotated (crossguard will not disable it: the user is not tagged for management)"
    } else {
        "it should be rotated"
    };
    let body = format!(
        "Access key {} of IAM user {} in account {} is {} days old; {action} on {deadline_date} (day {}). {}.",
        k.key.id,
        k.user,
        ctx.account,
        k.age,
        thresholds.disable_day,
        k.last_used()
    );
    plan.notices
        .push(k.notice(ctx, &step, "AccessKeyExpiring", Some(deadline_date), body));
}

fn multiple_active(
    ctx: &Ctx<'_>,
    su: &ScannedUser,
    owner: &Owner<'_>,
    state: &mut AuditState,
    plan: &mut Plan,
) {
    let mut active: Vec<String> = su
        .keys
        .iter()
        .filter(|(k, _)| k.active)
        .map(|(k, _)| k.id.clone())
        .collect();
    active.sort();
    let user = &su.user.name;
    if active.len() < 2 {
        state.multiple_active.remove(user);
        return;
    }
    plan.counts.multiple_active += 1;
    plan.findings.push(KeyFinding {
        user: user.clone(),
        access_key_id: active.join(","),
        age_days: 0,
        finding: "MultipleActiveKeys".into(),
        message: format!("{} active keys", active.len()),
    });
    if state.multiple_active.get(user) == Some(&active) {
        return;
    }
    state.multiple_active.insert(user.clone(), active.clone());
    let body = format!(
        "IAM user {user} in account {} has {} active access keys ({}). Keep one: deactivate the key no longer in use.",
        ctx.account,
        active.len(),
        active.join(", ")
    );
    plan.notices.push(Notice {
        id: format!("multiple/{user}/{}", active.join("+")),
        owner: owner.slack_id.map(str::to_string),
        owner_text: body.clone(),
        team_text: format!("[account {}] {body} Owner: {}.", ctx.account, owner.label()),
        fields: json!({
            "event": "MultipleActiveAccessKeys",
            "account": ctx.account,
            "user": user,
            "accessKeyIds": active,
            "owner": owner.slack_id,
            "time": ctx.now.to_string(),
        }),
    });
}

/// The notice for a key crossguard just disabled; `disabled_at` makes its id unique per
/// disable (a key re-enabled and disabled again is announced again).
pub fn disabled_notice(
    policy: &Policy,
    account_id: &str,
    user: &IamUser,
    access_key_id: &str,
    age: u32,
    disabled_at: Timestamp,
) -> Notice {
    let owner = Owner::of(&user.tags, &policy.tags);
    let slack = owner.slack_id;
    let body = format!(
        "Access key {access_key_id} of IAM user {} in account {account_id} was {age} days old and has been disabled (set Inactive, not deleted) by crossguard.",
        user.name
    );
    Notice {
        id: format!("disabled-{}/{access_key_id}", disabled_at.as_second()),
        owner: slack.map(str::to_string),
        owner_text: format!(
            "{body} Create a new key with `aws iam create-access-key --user-name {}` and delete the old one.",
            user.name
        ),
        team_text: format!("[account {account_id}] {body} Owner: {}.", owner.label()),
        fields: json!({
            "event": "AccessKeyDisabled",
            "account": account_id,
            "user": user.name,
            "accessKeyId": access_key_id,
            "ageDays": age,
            "owner": slack,
            "time": disabled_at.to_string(),
        }),
    }
}
