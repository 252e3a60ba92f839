//! The CustomerAccount's access-key audit stage (`spec.accessKeyAudit`), run after the
//! session is verified. It never fails the reconcile: its outcome is the `KeyAudit`
//! condition and `status.keyAudit`, and it says when it wants to run again.
//!
//! Order of one run, each durable step written to the tenant's state object before the
//! next: resolve disables left in flight by a restart → scan (when due) → plan and queue
//! messages → write state → disable overdue keys through the guard (intent written before
//! each call, result after) → deliver due messages, writing state after each → status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::session::uid;
use super::{Context, Draft};
use crate::api::{
    ConditionStatus, CustomerAccount, CustomerAccountStatus, KeyAuditStatus, KeyFinding,
};
use crate::audit::{AuditTrail, CallObserver};
use crate::aws::{CustomerClients, IamUser};
use crate::keyaudit::guard;
use crate::keyaudit::ladder::{self, Notice, Plan, Policy, ScannedUser};
use crate::keyaudit::notify::{DeliveryError, Destinations, Message};
use crate::keyaudit::scan::scan;
use crate::keyaudit::state::{AuditState, Recipient, STATE_OBJECT};

/// The condition this stage owns.
pub const KEY_AUDIT: &str = "KeyAudit";
/// How soon a failed scan is tried again.
const SCAN_RETRY: Duration = Duration::from_secs(15 * 60);
/// Longest wait between delivery attempts of one message.
const MAX_DELIVERY_BACKOFF: i64 = 60 * 60;
/// A message still failing this long after it was queued is given up.
const GIVE_UP_AFTER_SECS: i64 = 7 * 86_400;
/// Most messages kept waiting for delivery; beyond it the oldest is dropped.
const MAX_OUTBOX: usize = 500;
/// Findings kept in status.
const MAX_FINDINGS: usize = 20;

/// Run the stage; returns when it next wants to run (None: audit disabled).
pub(super) async fn run(
    account: &CustomerAccount,
    ctx: &Context,
    clients: &CustomerClients,
    audit: &Arc<AuditTrail>,
    interval: Duration,
    forced: bool,
    draft: &mut Draft<CustomerAccountStatus>,
) -> Option<Duration> {
    let spec = &account.spec.access_key_audit;
    if !spec.enabled {
        // Turned off: its memory goes too, so turning it on again is a fresh start (the
        // first-scan grace applies again instead of a mass disable of what aged meanwhile).
        if draft.status.key_audit.is_some()
            && let Err(e) = ctx.store.delete_state(&uid(account), STATE_OBJECT).await
        {
            draft.set(KEY_AUDIT, ConditionStatus::False, "StoreUnavailable", format!(
                "The key audit was turned off but its stored state could not be removed; retried: {e}"
            ));
            return Some(SCAN_RETRY);
        }
        draft.status.key_audit = None;
        crate::api::remove_condition(&mut draft.status.conditions, KEY_AUDIT);
        ctx.metrics.forget_key_ages(
            &account.namespace().unwrap_or_default(),
            &account.name_any(),
        );
        return None;
    }
    let now = ctx.clock.now();
    let tenant = uid(account);
    let mut state = match load(ctx, &tenant).await {
        Ok(s) => s,
        Err((reason, message)) => {
            tracing::error!(reason, %message, "key audit stopped");
            draft.set(KEY_AUDIT, ConditionStatus::False, reason, message);
            return Some(SCAN_RETRY);
        }
    };
    let policy = Policy::from_spec(spec);
    let mut run = Run {
        account,
        ctx,
        clients,
        audit,
        policy,
        tenant,
        state: &mut state,
        now,
        problem: None,
    };
    let due = next_scan_at(run.state.last_scan_at, interval, &run.tenant);
    let mut problem = None;
    if forced || due.is_none_or(|t| now >= t) {
        match run.scan_and_act().await {
            Ok(plan) => publish_status(&run, &plan, draft),
            Err(message) => problem = Some(("ScanFailed", message)),
        }
    }
    let scan_failed = problem.is_some();
    // After a scan, the next one is due from its time.
    let next_scan = next_scan_at(run.state.last_scan_at, interval, &run.tenant);
    let delivery = run.deliver().await;
    if let Some(s) = draft.status.key_audit.as_mut() {
        s.pending_notifications = run.state.outbox.len() as u32;
        s.next_scan_at = next_scan.map(|t| t.to_string());
    }
    // A settings problem (no Secret yet, an invalid one, no route for the team) is looked
    // at again in minutes; failing sends follow their own retry times (Retry-After).
    let misconfigured = matches!(&delivery, Err((reason, _)) if *reason != "NotificationsFailing");
    let min_delivery_wait = Duration::from_secs(if misconfigured { 5 * 60 } else { 10 });
    let problem = problem.or(run.problem.take()).or(delivery.err());
    conclude_condition(draft, run.state, problem);
    let scan_wait = next_scan.map_or(SCAN_RETRY, |t| seconds_until(now, t));
    let scan_wait = if scan_failed {
        scan_wait.min(SCAN_RETRY)
    } else {
        scan_wait
    };
    let delivery_wait = deliverable(account)
        .then(|| run.state.outbox.iter().map(|o| o.next_attempt_at).min())
        .flatten()
        .map(|t| seconds_until(now, t).max(min_delivery_wait));
    Some(delivery_wait.map_or(scan_wait, |d| d.min(scan_wait)))
}

fn seconds_until(now: Timestamp, t: Timestamp) -> Duration {
    Duration::from_secs((t.as_second() - now.as_second()).max(1) as u64)
}

/// Whether messages have anywhere to go.
fn deliverable(account: &CustomerAccount) -> bool {
    account
        .spec
        .access_key_audit
        .notifications
        .secret_name
        .is_some()
}

/// When the next scan is due: the last one + interval + a fixed per-account jitter of up
/// to a tenth of the interval (a hash of the tenant UID), so accounts spread out.
pub fn next_scan_at(
    last: Option<Timestamp>,
    interval: Duration,
    tenant: &str,
) -> Option<Timestamp> {
    let last = last?;
    let spread = (interval.as_secs() / 10).max(1);
    let hash = tenant.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let jitter = hash % spread;
    Timestamp::from_second(last.as_second() + (interval.as_secs() + jitter) as i64).ok()
}

async fn load(ctx: &Context, tenant: &str) -> Result<AuditState, (&'static str, String)> {
    match ctx.store.get_state(tenant, STATE_OBJECT).await {
        Ok(None) => Ok(AuditState::default()),
        Ok(Some(bytes)) => AuditState::from_json(&bytes).map_err(|e| {
            ("StateUnreadable", format!(
                "{e}; nothing was scanned or sent. To start over, turn spec.accessKeyAudit.enabled off and on again (keys then get the first-scan grace and messages already sent may be sent again)"
            ))
        }),
        Err(e) => Err(("StoreUnavailable", format!(
            "Reading the key-audit state failed; nothing was scanned or sent: {e}"
        ))),
    }
}

struct Run<'a> {
    account: &'a CustomerAccount,
    ctx: &'a Context,
    clients: &'a CustomerClients,
    audit: &'a Arc<AuditTrail>,
    policy: Policy,
    tenant: String,
    state: &'a mut AuditState,
    now: Timestamp,
    /// A problem worth the condition that did not stop the run (a disable that failed).
    problem: Option<(&'static str, String)>,
}

impl Run<'_> {
    async fn save(&mut self) -> Result<(), String> {
        self.state.prune_sent(self.now);
        self.ctx
            .store
            .put_state(&self.tenant, STATE_OBJECT, self.state.to_json())
            .await
            .map(|_| ())
            .map_err(|e| format!("Writing the key-audit state failed, so nothing further was disabled or sent: {e}"))
    }

    /// Record a decision in the tenant's audit log.
    fn decided(&self, operation: &str, target: &str, outcome: &str) {
        self.audit
            .call("keyaudit", operation, target, outcome, None, false);
    }

    fn queue(&mut self, notice: Notice) {
        if self.state.outbox.len() >= MAX_OUTBOX {
            // Delivery has been failing for long (a Secret that never came): the oldest
            // message makes room, and the audit log says so.
            let dropped = self.state.outbox.remove(0);
            self.decided("Notify", &dropped.message.id, "dropped-outbox-full");
        }
        // Queued even while no Secret is named: messages wait for one (bounded above).
        let queue = |to: Recipient, suffix: &str, text: &str, state: &mut AuditState| {
            let message = Message {
                id: format!("{}/{suffix}", notice.id),
                text: text.to_string(),
                fields: notice.fields.clone(),
            };
            state.enqueue(to, message, self.now)
        };
        if let Some(slack_id) = &notice.owner {
            let to = Recipient::Owner {
                slack_id: slack_id.clone(),
            };
            queue(to, "owner", &notice.owner_text, self.state);
        }
        queue(Recipient::Team, "team", &notice.team_text, self.state);
        self.decided("Notify", &notice.id, "queued");
    }

    async fn scan_and_act(&mut self) -> Result<Plan, String> {
        let users = scan(self.clients.iam.as_ref())
            .await
            .map_err(|e| scan_message(&e))?;
        self.resolve_in_flight(&users);
        let account_id = self.account.spec.account_id.clone();
        let mut plan = ladder::plan(&self.policy, &account_id, &users, self.state, self.now);
        for notice in plan.notices.clone() {
            self.queue(notice);
        }
        self.decided("Scan", &account_id, &format!("{} keys", plan.counts.keys));
        self.save().await?;
        self.events(&plan.events).await;
        let by_name: BTreeMap<&str, &IamUser> = users
            .iter()
            .map(|u| (u.user.name.as_str(), &u.user))
            .collect();
        for d in plan.disable.clone() {
            let Some(user) = by_name.get(d.user.as_str()).copied() else {
                continue;
            };
            self.disable(user, &d, &mut plan).await?;
        }
        Ok(plan)
    }

    /// A disable whose result was never recorded (a restart mid-call): if the key is now
    /// inactive, crossguard disabled it; tell the owner as if the call had just returned.
    fn resolve_in_flight(&mut self, users: &[ScannedUser]) {
        let pending = std::mem::take(&mut self.state.disabling);
        for (key_id, user_name) in pending {
            let found = users
                .iter()
                .filter(|u| u.user.name == user_name)
                .flat_map(|u| u.keys.iter().map(move |(k, _)| (&u.user, k)))
                .find(|(_, k)| k.id == key_id);
            let Some((user, key)) = found else { continue };
            if key.active {
                continue;
            }
            if let Some(record) = self.state.keys.get_mut(&key_id) {
                record.disabled_at = Some(self.now);
            }
            let age = ladder::age_days(key.created, self.now);
            let notice = ladder::disabled_notice(
                &self.policy,
                &self.account.spec.account_id,
                user,
                &key_id,
                age,
                self.now,
            );
            self.queue(notice);
        }
    }

    async fn disable(
        &mut self,
        user: &IamUser,
        d: &ladder::Disable,
        plan: &mut Plan,
    ) -> Result<(), String> {
        let target = format!("{}/{}", d.user, d.access_key_id);
        let iam = self.clients.iam.clone();
        let approval = match guard::check(iam.as_ref(), &d.user, &d.access_key_id).await {
            Ok(a) => a,
            Err(refusal) => {
                self.decided("Disable", &target, "refused");
                tracing::info!(user = %d.user, key = %d.access_key_id, reason = %refusal, "key not disabled");
                if let Some(f) = overdue_finding(plan, &d.access_key_id) {
                    f.message = format!("deadline passed; not disabled: {refusal}");
                }
                return Ok(());
            }
        };
        self.state
            .disabling
            .insert(d.access_key_id.clone(), d.user.clone());
        self.save().await?;
        if let Err(e) = iam.deactivate_access_key(approval).await {
            // The call may have taken effect (outcome unknown): the intent stays, and the
            // next scan resolves it from the key's status.
            tracing::warn!(error = %e, key = %d.access_key_id, "UpdateAccessKey failed");
            let hint = if e.kind == crate::aws::AwsErrorKind::AccessDenied {
                "; the role does not allow it: re-deploy the template printed with --key-audit-enforce"
            } else {
                "; retried at the next scan"
            };
            self.problem = Some((
                "DisableFailed",
                format!(
                    "Disabling access key {} of IAM user {} failed: {e}{hint}",
                    d.access_key_id, d.user
                ),
            ));
            if !e.outcome_unknown {
                self.state.disabling.remove(&d.access_key_id);
                self.save().await?;
            }
            if let Some(f) = overdue_finding(plan, &d.access_key_id) {
                f.message = format!("deadline passed; disabling failed and is retried: {e}");
            }
            return Ok(());
        }
        self.state.disabling.remove(&d.access_key_id);
        if let Some(record) = self.state.keys.get_mut(&d.access_key_id) {
            record.disabled_at = Some(self.now);
        }
        let notice = ladder::disabled_notice(
            &self.policy,
            &self.account.spec.account_id,
            user,
            &d.access_key_id,
            d.age_days,
            self.now,
        );
        self.queue(notice);
        self.save().await?;
        let (ns, name) = (
            self.account.namespace().unwrap_or_default(),
            self.account.name_any(),
        );
        self.ctx.metrics.key_disabled(&ns, &name);
        plan.counts.disabled += 1;
        plan.counts.overdue = plan.counts.overdue.saturating_sub(1);
        if let Some(f) = overdue_finding(plan, &d.access_key_id) {
            f.finding = "Disabled".into();
            f.message = format!(
                "disabled by crossguard on {}",
                self.now.to_zoned(jiff::tz::TimeZone::UTC).date()
            );
        }
        self.events(&[ladder::KeyEvent {
            reason: "AccessKeyDisabled",
            access_key_id: d.access_key_id.clone(),
            note: format!(
                "Disabled access key {} of IAM user {} ({} days old)",
                d.access_key_id, d.user, d.age_days
            ),
        }])
        .await;
        Ok(())
    }

    async fn events(&self, events: &[ladder::KeyEvent]) {
        if !self
            .account
            .spec
            .access_key_audit
            .notifications
            .kubernetes_events
        {
            return;
        }
        for e in events {
            // The action names the key, so that each key's Events read apart.
            let action = format!("KeyAudit/{}", e.access_key_id);
            super::status::publish(self.ctx, self.account, false, e.reason, &e.note, &action).await;
        }
    }

    /// Send every due message; state is written after each delivery. Returns the problem
    /// to report, if delivery is not working.
    async fn deliver(&mut self) -> Result<(), (&'static str, String)> {
        let Some(secret_name) = self
            .account
            .spec
            .access_key_audit
            .notifications
            .secret_name
            .clone()
        else {
            return Ok(());
        };
        if self.state.outbox.is_empty() {
            return Ok(());
        }
        let destinations = self.destinations(&secret_name).await?;
        let Some(sender) = self.ctx.notifier.clone() else {
            return Err((
                "NotificationsFailing",
                "This operator has no notification sender configured".into(),
            ));
        };
        let team_channel = self
            .account
            .spec
            .access_key_audit
            .notifications
            .slack_channel
            .clone();
        let mut limited: Vec<&'static str> = Vec::new();
        let mut no_team_route = false;
        let mut i = 0;
        while i < self.state.outbox.len() {
            if self.state.outbox[i].next_attempt_at > self.now {
                i += 1;
                continue;
            }
            let item = self.state.outbox[i].clone();
            let routes = destinations.routes(&item.to.audience(), team_channel.as_deref());
            if routes.is_empty() && item.to != Recipient::Team {
                // No private route to this owner (no bot token): the team's copy of the
                // same notice carries it.
                self.decided("Deliver", &item.message.id, "no-route");
                self.state.outbox.remove(i);
                self.state.sent.insert(item.message.id, self.now);
                continue;
            }
            if routes.is_empty() {
                // The team's copy waits until the settings give it somewhere to go; they
                // are looked at again every five minutes.
                no_team_route = true;
                self.state.outbox[i].next_attempt_at =
                    Timestamp::from_second(self.now.as_second() + 300).unwrap_or(self.now);
                i += 1;
                continue;
            }
            let mut failed = None;
            for route in routes
                .iter()
                .filter(|r| !item.delivered.contains(r.label()))
            {
                if limited.contains(&route.label()) {
                    failed.get_or_insert(None);
                    continue;
                }
                let result = sender.send(&destinations, route, &item.message).await;
                let outcome = match &result {
                    Ok(()) => "sent",
                    Err(e) => e.label(),
                };
                self.ctx.metrics.key_notification(route.label(), outcome);
                self.decided(
                    "Deliver",
                    &format!("{} via {}", item.message.id, route.label()),
                    outcome,
                );
                match result {
                    Ok(()) => {
                        self.state.outbox[i]
                            .delivered
                            .insert(route.label().to_string());
                        self.save().await.map_err(|m| ("StoreUnavailable", m))?;
                    }
                    Err(e) => {
                        if matches!(e, DeliveryError::RateLimited { .. }) {
                            limited.push(route.label());
                        }
                        failed = Some(Some(e));
                    }
                }
            }
            let entry = &mut self.state.outbox[i];
            let done = routes.iter().all(|r| entry.delivered.contains(r.label()));
            if done {
                let id = entry.message.id.clone();
                self.state.outbox.remove(i);
                self.state.sent.insert(id, self.now);
                self.save().await.map_err(|m| ("StoreUnavailable", m))?;
                continue;
            }
            entry.attempts += 1;
            if self.now.as_second() - entry.queued_at.as_second() > GIVE_UP_AFTER_SECS {
                // A week of failures (a revoked token, an archived channel): the message
                // is given up, and the audit log says so.
                let id = entry.message.id.clone();
                self.ctx.metrics.key_notification("any", "given_up");
                self.decided("Deliver", &id, "given-up");
                self.state.outbox.remove(i);
                continue;
            }
            let wait = match &failed {
                Some(Some(e)) => e.retry_after().map(|d| d.as_secs() as i64),
                _ => None,
            }
            .unwrap_or_else(|| (60_i64 << entry.attempts.min(6)).min(MAX_DELIVERY_BACKOFF));
            entry.next_attempt_at =
                Timestamp::from_second(self.now.as_second() + wait).unwrap_or(self.now);
            entry.last_error = Some(match failed {
                Some(Some(e)) => e.to_string(),
                _ => "rate limited on this route; waiting".to_string(),
            });
            i += 1;
        }
        self.save().await.map_err(|m| ("StoreUnavailable", m))?;
        if no_team_route {
            return Err((
                "NotificationRouteMissing",
                format!(
                    "Messages for the team have nowhere to go and wait: with only slack-bot-token in Secret {secret_name}, set spec.accessKeyAudit.notifications.slackChannel, or add slack-webhook-url or webhook-url"
                ),
            ));
        }
        match self.state.outbox.iter().find_map(|o| o.last_error.clone()) {
            Some(e) if self.state.outbox.iter().any(|o| o.attempts > 0) => Err((
                "NotificationsFailing",
                format!(
                    "{} notification(s) not delivered yet and retried: {e}",
                    self.state.outbox.len()
                ),
            )),
            _ => Ok(()),
        }
    }

    async fn destinations(
        &self,
        secret_name: &str,
    ) -> Result<Destinations, (&'static str, String)> {
        let ns = self.account.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &ns);
        let secret = match secrets.get_opt(secret_name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err((
                    "NotificationSecretMissing",
                    format!(
                        "Secret {ns}/{secret_name} (spec.accessKeyAudit.notifications.secretName) does not exist; {} notification(s) wait for it",
                        self.state.outbox.len()
                    ),
                ));
            }
            Err(e) => {
                return Err((
                    "NotificationSecretUnreadable",
                    format!(
                        "Reading Secret {ns}/{secret_name} failed: {}",
                        crate::aws::scrub(&e.to_string())
                    ),
                ));
            }
        };
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        Destinations::from_secret(&data).map_err(|e| {
            (
                "NotificationSecretInvalid",
                format!("Secret {ns}/{secret_name}: {e}"),
            )
        })
    }
}

/// The plan's Overdue finding of `access_key_id`, which the disable's outcome rewrites.
fn overdue_finding<'p>(plan: &'p mut Plan, access_key_id: &str) -> Option<&'p mut KeyFinding> {
    plan.findings
        .iter_mut()
        .find(|f| f.access_key_id == access_key_id && f.finding == "Overdue")
}

fn scan_message(e: &crate::aws::AwsError) -> String {
    if e.kind == crate::aws::AwsErrorKind::AccessDenied {
        format!(
            "The role does not allow the key audit ({e}); re-deploy the template printed by `crossguard onboarding-template --key-audit`"
        )
    } else {
        format!("Scanning IAM access keys failed and is retried: {e}")
    }
}

/// Status and metrics from one scan's plan; `run` fills in `nextScanAt` and the pending
/// count once delivery ran.
fn publish_status(run: &Run<'_>, plan: &Plan, draft: &mut Draft<CustomerAccountStatus>) {
    let c = &plan.counts;
    let (ns, name) = (
        run.account.namespace().unwrap_or_default(),
        run.account.name_any(),
    );
    run.ctx
        .metrics
        .key_ages(&ns, &name, [c.ok, c.expiring, c.overdue]);
    draft.status.key_audit = Some(KeyAuditStatus {
        last_scan_at: run.state.last_scan_at.map(|t| t.to_string()),
        next_scan_at: None,
        users: c.users,
        keys: c.keys,
        expiring: c.expiring,
        disabled: c.disabled,
        overdue: c.overdue,
        new: c.new,
        unowned: c.unowned,
        exempt: c.exempt,
        users_with_multiple_active_keys: c.multiple_active,
        reactivated: c.reactivated,
        pending_notifications: run.state.outbox.len() as u32,
        findings: plan.findings.iter().take(MAX_FINDINGS).cloned().collect(),
    });
}

fn conclude_condition(
    draft: &mut Draft<CustomerAccountStatus>,
    state: &AuditState,
    problem: Option<(&'static str, String)>,
) {
    if let Some((reason, message)) = problem {
        draft.set(KEY_AUDIT, ConditionStatus::False, reason, message);
        return;
    }
    let Some(s) = draft.status.key_audit.clone() else {
        return;
    };
    let message = format!(
        "{} keys of {} users: {} expiring, {} overdue, {} disabled by crossguard, {} new, {} unowned, {} exempt; {} notification(s) pending",
        s.keys,
        s.users,
        s.expiring,
        s.overdue,
        s.disabled,
        s.new,
        s.unowned,
        s.exempt,
        state.outbox.len()
    );
    draft.ok(KEY_AUDIT, "Scanned", message);
}
