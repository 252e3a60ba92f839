//! The access-key age monitor (issue #12): per CustomerAccount, IAM access keys are scanned,
//! their owners are warned privately and the team is told on a ladder of key ages, and keys
//! past their deadline may be disabled. Decided messages go through a durable outbox, so a
//! restart neither loses nor repeats one.
//!
//! - [`notify`]: delivery of one message copy to one destination (Slack DM, Slack channel,
//!   Slack incoming webhook, generic JSON webhook), with errors classified for the outbox's
//!   retry timing. No retries and no state of its own.

pub mod notify;
