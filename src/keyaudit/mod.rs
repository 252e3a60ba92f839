//! The access-key age monitor of a CustomerAccount (`spec.accessKeyAudit`): scan every IAM
//! user's access keys ([`scan`]), decide on the warning ladder ([`ladder`]), remember what
//! was decided and queue messages durably ([`state`]), deliver them to Slack or a webhook
//! ([`notify`]), and disable overdue keys only through the [`guard`]. The controller stage
//! that runs it is `controller::key_audit`.

pub mod guard;
pub mod ladder;
pub mod notify;
pub mod scan;
pub mod state;

#[cfg(test)]
mod tests;
