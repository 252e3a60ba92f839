//! One scan of an account's IAM users and their access keys.

use super::ladder::ScannedUser;
use crate::aws::{AwsError, AwsErrorKind, Iam};

/// List every user (ListUsers), then each user's tags (ListUserTags), keys
/// (ListAccessKeys) and each key's last use (GetAccessKeyLastUsed), all pages. A user or
/// key deleted while the scan runs (NoSuchEntity) is skipped; any other failure ends the
/// scan, so that a partial scan never looks like deleted keys.
pub async fn scan(iam: &dyn Iam) -> Result<Vec<ScannedUser>, AwsError> {
    let mut out = Vec::new();
    for mut user in iam.list_users().await? {
        let gone = |e: &AwsError| e.kind == AwsErrorKind::NotFound;
        user.tags = match iam.list_user_tags(&user.name).await {
            Ok(tags) => tags,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let keys = match iam.list_access_keys(&user.name).await {
            Ok(keys) => keys,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let mut with_use = Vec::with_capacity(keys.len());
        for key in keys {
            match iam.get_access_key_last_used(&key.id).await {
                Ok(used) => with_use.push((key, used)),
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        out.push(ScannedUser {
            user,
            keys: with_use,
        });
    }
    Ok(out)
}
