//! The key-audit guard: the only code that approves an `iam:UpdateAccessKey`. Right before
//! the call it reads the user's tags and keys again, so a tag removed or a key deleted
//! since the scan is respected, and it approves exactly one key of exactly one user.

use crate::aws::approval::ApprovedKeyDeactivation;
use crate::aws::{AwsError, Iam, TAG_MANAGED};

/// Why a key was not approved for deactivation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// The user does not (any longer) carry `crossguard.dev/managed=true`.
    #[error("IAM user {0} is not tagged {TAG_MANAGED}=true")]
    NotManaged(String),
    /// The user has no such key (deleted since the scan).
    #[error("IAM user {user} has no access key {access_key_id}")]
    KeyNotFound {
        /// The user.
        user: String,
        /// The key.
        access_key_id: String,
    },
    /// The key is already inactive: nothing to do.
    #[error("access key {0} is already inactive")]
    AlreadyInactive(String),
    /// Reading the user failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Approve setting `access_key_id` of `user` Inactive, after a fresh ListUserTags and
/// ListAccessKeys show the user tagged managed and owning that key, active.
pub async fn check(
    iam: &dyn Iam,
    user: &str,
    access_key_id: &str,
) -> Result<ApprovedKeyDeactivation, Refusal> {
    let tags = iam.list_user_tags(user).await?;
    if tags.get(TAG_MANAGED).map(String::as_str) != Some("true") {
        return Err(Refusal::NotManaged(user.to_string()));
    }
    let keys = iam.list_access_keys(user).await?;
    match keys
        .iter()
        .find(|k| k.id == access_key_id && k.user == user)
    {
        None => Err(Refusal::KeyNotFound {
            user: user.to_string(),
            access_key_id: access_key_id.to_string(),
        }),
        Some(k) if !k.active => Err(Refusal::AlreadyInactive(access_key_id.to_string())),
        Some(_) => Ok(ApprovedKeyDeactivation::new(
            user.to_string(),
            access_key_id.to_string(),
        )),
    }
}
