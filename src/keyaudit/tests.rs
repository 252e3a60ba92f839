//! The ladder's decisions, driven day by day over one account.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::ladder::{self, Plan, Policy, ScannedUser, TAG_EXEMPT_UNTIL};
use super::state::AuditState;
use crate::api::{AccessKeyAudit, KeyAgeThresholds};
use crate::aws::{AccessKey, IamUser, KeyLastUsed, TAG_MANAGED};

const ACCOUNT: &str = "111122223333";
const DAY: i64 = 86_400;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;

fn at_day(day: i64) -> Timestamp {
    Timestamp::from_second(T0 + day * DAY).unwrap()
}

fn policy(enforce: bool) -> Policy {
    Policy::from_spec(&AccessKeyAudit {
        enabled: true,
        enforce,
        ..Default::default()
    })
}

fn user(name: &str, tags: &[(&str, &str)]) -> IamUser {
    IamUser {
        name: name.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn key(user: &str, id: &str, created_day: i64, active: bool) -> (AccessKey, KeyLastUsed) {
    (
        AccessKey {
            id: id.into(),
            user: user.into(),
            active,
            created: at_day(created_day),
        },
        KeyLastUsed::default(),
    )
}

fn alice(keys: Vec<(AccessKey, KeyLastUsed)>, managed: bool) -> ScannedUser {
    let mut tags = vec![
        ("type", "engineer"),
        ("slack-id", "U0ALICE"),
        ("full-name", "Alice Doe"),
    ];
    if managed {
        tags.push((TAG_MANAGED, "true"));
    }
    ScannedUser {
        user: user("alice", &tags),
        keys,
    }
}

fn steps(plan: &Plan) -> Vec<String> {
    plan.notices.iter().map(|n| n.id.clone()).collect()
}

/// Scan once per day from `from` to `to` (inclusive) and collect each day's notices.
fn days(
    policy: &Policy,
    state: &mut AuditState,
    users: impl Fn(i64) -> Vec<ScannedUser>,
    from: i64,
    to: i64,
) -> BTreeMap<i64, Plan> {
    (from..=to)
        .map(|d| {
            (
                d,
                ladder::plan(policy, ACCOUNT, &users(d), state, at_day(d)),
            )
        })
        .collect()
}

#[test]
fn one_key_walks_the_whole_ladder_once() {
    let policy = policy(true);
    let mut state = AuditState::default();
    // The account is first scanned when the key is 10 days old.
    let plans = days(
        &policy,
        &mut state,
        |_| vec![alice(vec![key("alice", "AKIA1", 0, true)], true)],
        10,
        95,
    );
    let sent: Vec<(i64, Vec<String>)> = plans
        .iter()
        .filter(|(_, p)| !p.notices.is_empty())
        .map(|(d, p)| (*d, steps(p)))
        .collect();
    assert_eq!(
        sent,
        vec![
            (76, vec!["warn-76/AKIA1".to_string()]),
            (81, vec!["warn-81/AKIA1".to_string()]),
            (86, vec!["warn-86/AKIA1".to_string()]),
        ]
    );
    let disables: Vec<i64> = plans
        .iter()
        .filter(|(_, p)| !p.disable.is_empty())
        .map(|(d, _)| *d)
        .collect();
    // Planned every day from 91 on in this pure test, because nothing sets the key
    // inactive here; the controller disables it once and the next scan sees it inactive.
    assert_eq!(disables.first(), Some(&91));
    assert_eq!(plans[&91].disable[0].access_key_id, "AKIA1");
    assert_eq!(plans[&90].disable.len(), 0);
    let warn = &plans[&81].notices[0];
    assert_eq!(warn.owner.as_deref(), Some("U0ALICE"));
    assert!(
        warn.owner_text.contains("81 days old"),
        "{}",
        warn.owner_text
    );
    assert!(
        warn.owner_text.contains("2026-04-02"),
        "deadline named: {}",
        warn.owner_text
    );
    assert!(
        warn.owner_text
            .contains("aws iam create-access-key --user-name alice")
    );
    assert!(
        warn.team_text.contains("[account 111122223333]") && warn.team_text.contains("Alice Doe")
    );
    assert_eq!(plans[&80].counts.expiring, 1);
    assert_eq!(plans[&50].counts.ok, 1);
}

#[test]
fn two_keys_of_one_user_reach_their_days_separately() {
    let policy = policy(true);
    let mut state = AuditState::default();
    let plans = days(
        &policy,
        &mut state,
        |_| {
            vec![alice(
                vec![
                    key("alice", "AKIAOLD", 0, true),
                    key("alice", "AKIANEW", 10, true),
                ],
                true,
            )]
        },
        1,
        101,
    );
    assert_eq!(steps(&plans[&76]), ["warn-76/AKIAOLD"]);
    assert_eq!(
        steps(&plans[&86]).len(),
        2,
        "AKIAOLD warn-86 and AKIANEW warn-76"
    );
    assert!(steps(&plans[&86]).contains(&"warn-76/AKIANEW".to_string()));
    let first_disable = plans[&91]
        .disable
        .iter()
        .map(|d| d.access_key_id.as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        first_disable,
        ["AKIAOLD"],
        "only the key that reached day 91"
    );
    assert!(
        plans[&101]
            .disable
            .iter()
            .any(|d| d.access_key_id == "AKIANEW")
    );
    // Two active keys are reported once for that set of keys.
    let multi: Vec<i64> = plans
        .iter()
        .filter(|(_, p)| p.notices.iter().any(|n| n.id.starts_with("multiple/")))
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(multi, [1]);
    assert_eq!(plans[&50].counts.multiple_active, 1);
}

#[test]
fn a_user_without_the_management_tag_is_never_disabled() {
    let policy = policy(true);
    let mut state = AuditState::default();
    let plans = days(
        &policy,
        &mut state,
        |_| vec![alice(vec![key("alice", "AKIA1", 0, true)], false)],
        1,
        120,
    );
    assert!(plans.values().all(|p| p.disable.is_empty()));
    let told: Vec<i64> = plans
        .iter()
        .filter(|(_, p)| steps(p).contains(&"not-managed/AKIA1".to_string()))
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(told, [91], "the team hears once why it was not disabled");
    assert_eq!(plans[&100].counts.overdue, 1);
    assert!(
        plans[&100].findings[0]
            .message
            .contains("not tagged crossguard.dev/managed=true")
    );
}

#[test]
fn without_enforce_nothing_is_disabled_and_the_dry_run_says_what_would_be() {
    let policy = policy(false);
    let mut state = AuditState::default();
    let plans = days(
        &policy,
        &mut state,
        |_| vec![alice(vec![key("alice", "AKIA1", 0, true)], true)],
        1,
        120,
    );
    assert!(plans.values().all(|p| p.disable.is_empty()));
    assert_eq!(steps(&plans[&91]), ["would-disable/AKIA1"]);
    assert!(plans[&91].notices[0].team_text.contains("enforce is false"));
    assert!(plans[&92].notices.is_empty());
}

#[test]
fn an_exemption_suspends_the_ladder_through_its_date_inclusive() {
    let policy = policy(true);
    let mut state = AuditState::default();
    // 2026-04-10 is day 99.
    let users = |_| {
        let mut u = alice(vec![key("alice", "AKIA1", 0, true)], true);
        u.user
            .tags
            .insert(TAG_EXEMPT_UNTIL.into(), "2026-04-10".into());
        vec![u]
    };
    let plans = days(&policy, &mut state, users, 1, 107);
    assert!((1..=99).all(|d| plans[&d].notices.is_empty() && plans[&d].disable.is_empty()));
    assert_eq!(plans[&107].disable.len(), 1, "when the grace ends");
    assert_eq!(plans[&99].counts.exempt, 1);
    assert_eq!(plans[&99].findings[0].finding, "Exempt");
    // The day after, the key is long overdue but nobody was told it would be disabled:
    // a final warning and the grace first.
    assert!(plans[&100].disable.is_empty());
    assert!(steps(&plans[&100])[0].starts_with("final-"));
    assert_eq!(plans[&100].counts.exempt, 0);
}

#[test]
fn an_unparsable_exemption_is_reported_and_ignored_without_affecting_others() {
    let policy = policy(true);
    let mut state = AuditState::default();
    let users = |_| {
        let mut a = alice(vec![key("alice", "AKIA1", 0, true)], true);
        a.user
            .tags
            .insert(TAG_EXEMPT_UNTIL.into(), "next tuesday".into());
        let b = ScannedUser {
            user: user("bob", &[("slack-id", "U0BOB"), (TAG_MANAGED, "true")]),
            keys: vec![key("bob", "AKIA2", 0, true)],
        };
        vec![a, b]
    };
    let plans = days(&policy, &mut state, users, 1, 91);
    assert!(
        plans[&91]
            .findings
            .iter()
            .any(|f| f.finding == "InvalidExemption" && f.user == "alice")
    );
    assert_eq!(plans[&91].disable.len(), 2);
}

#[test]
fn a_new_key_is_announced_after_the_first_scan_only() {
    let policy = policy(true);
    let mut state = AuditState::default();
    let plans = days(
        &policy,
        &mut state,
        |d| {
            let mut keys = vec![key("alice", "AKIA1", 0, true)];
            if d >= 5 {
                keys.push(key("alice", "AKIA2", 5, true));
            }
            vec![alice(keys, true)]
        },
        1,
        6,
    );
    assert!(
        !steps(&plans[&1]).iter().any(|s| s.starts_with("new/")),
        "the first scan is the baseline"
    );
    assert!(steps(&plans[&5]).contains(&"new/AKIA2".to_string()));
    assert_eq!(plans[&5].counts.new, 1);
    assert_eq!(plans[&5].events.len(), 1);
    assert!(
        plans[&5]
            .notices
            .iter()
            .any(|n| n.id == "new/AKIA2" && n.owner_text.contains("was this you?"))
    );
    assert!(plans[&6].notices.iter().all(|n| !n.id.starts_with("new/")));
    assert_eq!(plans[&6].counts.new, 0);
}

#[test]
fn a_key_active_again_after_crossguard_disabled_it_is_reported_and_disabled_again() {
    let policy = policy(true);
    let mut state = AuditState::default();
    let p91 = days(
        &policy,
        &mut state,
        |_| vec![alice(vec![key("alice", "AKIA1", 0, true)], true)],
        1,
        91,
    );
    assert_eq!(p91[&91].disable.len(), 1);
    // The controller disabled it on day 91.
    state.keys.get_mut("AKIA1").unwrap().disabled_at = Some(at_day(91));
    let p92 = ladder::plan(
        &policy,
        ACCOUNT,
        &[alice(vec![key("alice", "AKIA1", 0, false)], true)],
        &mut state,
        at_day(92),
    );
    assert_eq!(p92.counts.disabled, 1);
    assert!(p92.notices.is_empty() && p92.disable.is_empty());
    // Someone re-enabled it.
    let p93 = ladder::plan(
        &policy,
        ACCOUNT,
        &[alice(vec![key("alice", "AKIA1", 0, true)], true)],
        &mut state,
        at_day(93),
    );
    assert_eq!(p93.counts.reactivated, 1);
    assert_eq!(
        steps(&p93),
        [format!("reactivated-{}/AKIA1", at_day(91).as_second())]
    );
    assert_eq!(p93.disable.len(), 1, "under enforce it is disabled again");
    assert_eq!(p93.findings[0].finding, "Reactivated");
    let p94 = ladder::plan(
        &policy,
        ACCOUNT,
        &[alice(vec![key("alice", "AKIA1", 0, true)], true)],
        &mut state,
        at_day(94),
    );
    assert!(p94.notices.is_empty(), "reported once per disable");
}

#[test]
fn keys_overdue_at_the_first_scan_get_a_grace_period_and_a_final_warning() {
    let policy = policy(true);
    let mut state = AuditState::default();
    let plans = days(
        &policy,
        &mut state,
        |_| vec![alice(vec![key("alice", "AKIA1", 0, true)], true)],
        120,
        128,
    );
    assert_eq!(
        steps(&plans[&120]),
        [format!("final-{}/AKIA1", at_day(127).as_second())]
    );
    assert!(
        plans[&120].notices[0].owner_text.contains("2026-05-08"),
        "{}",
        plans[&120].notices[0].owner_text
    );
    assert!((120..127).all(|d| plans[&d].disable.is_empty()));
    assert_eq!(
        plans[&127].disable.len(),
        1,
        "disabled when the 7-day grace ends"
    );
    assert!((121..=128).all(|d| plans[&d].notices.is_empty()));
}

#[test]
fn a_key_first_seen_past_several_warning_days_gets_one_warning() {
    let policy = policy(true);
    let mut state = AuditState::default();
    let plans = days(
        &policy,
        &mut state,
        |_| vec![alice(vec![key("alice", "AKIA1", 0, true)], true)],
        83,
        87,
    );
    assert_eq!(steps(&plans[&83]), ["warn-81/AKIA1"]);
    assert_eq!(steps(&plans[&86]), ["warn-86/AKIA1"]);
}

#[test]
fn machine_users_follow_their_own_thresholds() {
    let mut spec = AccessKeyAudit {
        enabled: true,
        enforce: true,
        ..Default::default()
    };
    spec.machine = Some(KeyAgeThresholds {
        warn_days: vec![170, 180],
        disable_day: 365,
    });
    let policy = Policy::from_spec(&spec);
    let mut state = AuditState::default();
    let users = |_| {
        vec![ScannedUser {
            user: user("ci", &[("type", "machine"), (TAG_MANAGED, "true")]),
            keys: vec![key("ci", "AKIACI", 0, true)],
        }]
    };
    let plans = days(&policy, &mut state, users, 1, 200);
    assert!(plans.values().all(|p| p.disable.is_empty()));
    assert_eq!(steps(&plans[&170]), ["warn-170/AKIACI"]);
    assert!(plans[&91].notices.is_empty());
    // Unowned: no Slack id, so team only.
    assert_eq!(plans[&170].notices[0].owner, None);
    assert!(plans[&170].notices[0].team_text.contains("unowned"));
    assert_eq!(plans[&170].counts.unowned, 1);
}

#[test]
fn age_is_whole_utc_days() {
    let created = Timestamp::from_second(T0 + 23 * 3600).unwrap();
    assert_eq!(
        ladder::age_days(
            created,
            Timestamp::from_second(T0 + DAY + 22 * 3600).unwrap()
        ),
        0
    );
    assert_eq!(
        ladder::age_days(
            created,
            Timestamp::from_second(T0 + 2 * DAY + 23 * 3600).unwrap()
        ),
        2
    );
    assert_eq!(
        ladder::age_days(created, Timestamp::from_second(T0).unwrap()),
        0
    );
}

#[test]
fn deleted_keys_are_forgotten() {
    let policy = policy(true);
    let mut state = AuditState::default();
    ladder::plan(
        &policy,
        ACCOUNT,
        &[alice(
            vec![
                key("alice", "AKIA1", 0, true),
                key("alice", "AKIA2", 0, true),
            ],
            true,
        )],
        &mut state,
        at_day(1),
    );
    ladder::plan(
        &policy,
        ACCOUNT,
        &[alice(vec![key("alice", "AKIA1", 0, true)], true)],
        &mut state,
        at_day(2),
    );
    assert_eq!(state.keys.keys().collect::<Vec<_>>(), ["AKIA1"]);
    assert!(state.multiple_active.is_empty());
}

#[test]
fn customer_tag_values_cannot_post_publicly_or_inject_mentions() {
    let policy = policy(true);
    let mut state = AuditState::default();
    let users = |_| {
        vec![ScannedUser {
            user: user(
                "mallory",
                &[
                    ("slack-id", "C0GENERAL"),
                    (
                        "full-name",
                        "<!channel> & <https://evil.example|click>\u{7}",
                    ),
                ],
            ),
            keys: vec![key("mallory", "AKIAM", 0, true)],
        }]
    };
    let plans = days(&policy, &mut state, users, 76, 76);
    let notice = &plans[&76].notices[0];
    assert_eq!(
        notice.owner, None,
        "a channel id is not an owner to message privately"
    );
    assert!(
        !notice.team_text.contains("<!channel>"),
        "{}",
        notice.team_text
    );
    assert!(
        notice.team_text.contains("&lt;!channel&gt; &amp;"),
        "{}",
        notice.team_text
    );
    assert!(!notice.team_text.contains('\u{7}'));
    assert_eq!(plans[&76].counts.unowned, 1);
    assert_eq!(ladder::inert(&"x".repeat(500), 64).len(), 64);
}

#[test]
fn a_disable_is_always_announced_first_when_the_ladder_never_said_so() {
    // Enforcement turned on long after a dry run: the overdue key gets the final warning
    // and the grace, not a disable out of the blue.
    let mut state = AuditState::default();
    let users = |_| vec![alice(vec![key("alice", "AKIA1", 0, true)], true)];
    days(&policy(false), &mut state, users, 1, 100);
    let plans = days(&policy(true), &mut state, users, 101, 110);
    assert!(plans[&101].disable.is_empty());
    assert_eq!(
        steps(&plans[&101]),
        [format!("final-{}/AKIA1", at_day(108).as_second())]
    );
    assert!(
        plans[&101].notices[0]
            .owner_text
            .contains("will be disabled on 2026-04-19")
    );
    assert!((102..108).all(|d| plans[&d].disable.is_empty() && plans[&d].notices.is_empty()));
    assert_eq!(plans[&108].disable.len(), 1);

    // An exemption that ends past the deadline: the same.
    let mut state = AuditState::default();
    let exempt = |_| {
        let mut u = alice(vec![key("alice", "AKIA2", 0, true)], true);
        u.user
            .tags
            .insert(TAG_EXEMPT_UNTIL.into(), "2026-06-30".into());
        vec![u]
    };
    let plans = days(&policy(true), &mut state, exempt, 1, 190);
    let first = (1..=190).find(|d| !plans[d].disable.is_empty()).unwrap();
    let warned = (1..=190).find(|d| !plans[d].notices.is_empty()).unwrap();
    assert!(
        warned < first,
        "warned on day {warned}, disabled on day {first}"
    );
    assert_eq!(first - warned, 7);

    // Where warnings went out while enforcement was on, day 91 disables as promised.
    let mut state = AuditState::default();
    let plans = days(&policy(true), &mut state, users, 1, 91);
    assert_eq!(plans[&91].disable.len(), 1);
}

#[test]
fn a_state_from_a_newer_operator_is_refused() {
    assert!(AuditState::from_json(br#"{"version": 2}"#).is_err());
    assert!(AuditState::from_json(br#"{"version": 1}"#).is_ok());
}
