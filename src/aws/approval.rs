//! Approval tokens: permission for exactly one mutating AWS call each.
//!
//! The mutating methods of [`super::Eks`], [`super::AutoScaling`] and [`super::Iam`] take
//! these by value, so a call consumes its approval. They sit here, beside the traits, so
//! that `aws` needs nothing from `automation` or `keyaudit`; only the tag guards
//! ([`crate::automation::guard::check`], [`crate::keyaudit::guard::check`]) build them,
//! which the test below enforces over the source tree.

/// Permission for exactly one TerminateInstanceInAutoScalingGroup call.
#[derive(Debug)]
pub struct ApprovedTermination {
    group: String,
    instance_id: String,
}

impl ApprovedTermination {
    /// Only [`crate::automation::guard::check`] calls this.
    pub(crate) fn new(group: String, instance_id: String) -> Self {
        ApprovedTermination { group, instance_id }
    }
    /// The group to call on.
    pub fn group(&self) -> &str {
        &self.group
    }
    /// The instance to terminate.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }
}

/// Permission for exactly one UpdateNodegroupConfig call.
#[derive(Debug)]
pub struct ApprovedNodegroupScale {
    cluster: String,
    nodegroup: String,
    desired: i32,
    token: String,
}

impl ApprovedNodegroupScale {
    /// Only [`crate::automation::guard::check`] calls this.
    pub(crate) fn new(cluster: String, nodegroup: String, desired: i32) -> Self {
        ApprovedNodegroupScale {
            cluster,
            nodegroup,
            desired,
            token: String::new(),
        }
    }
    /// The EKS cluster.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }
    /// The nodegroup.
    pub fn nodegroup(&self) -> &str {
        &self.nodegroup
    }
    /// The desired size to set.
    pub fn desired(&self) -> i32 {
        self.desired
    }
    /// The request's idempotency token (EKS applies repeats of one token once).
    pub fn idempotency_token(&self) -> &str {
        &self.token
    }
    /// Tie the request to one intent (e.g. its start time), so that a later scale-in with
    /// the same sizes is not mistaken for a repeat of this one. Changes nothing else. The
    /// token is a fixed-length digest of cluster, nodegroup, size and intent, whatever their
    /// lengths.
    pub fn with_request_token(mut self, intent: &str) -> Self {
        let key = format!(
            "{}\0{}\0{}\0{intent}",
            self.cluster, self.nodegroup, self.desired
        );
        // Two 64-bit FNV-1a digests with different offsets: 128 bits, stable everywhere.
        let fnv = |offset: u64| {
            key.bytes().fold(offset, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        };
        self.token = format!(
            "crossguard-{:016x}{:016x}",
            fnv(0xcbf2_9ce4_8422_2325),
            fnv(0x8422_2325_cbf2_9ce4)
        );
        self
    }
}

/// Permission for exactly one UpdateAccessKey call setting one key `Inactive`.
#[derive(Debug)]
pub struct ApprovedKeyDeactivation {
    user: String,
    access_key_id: String,
}

impl ApprovedKeyDeactivation {
    /// Only [`crate::keyaudit::guard::check`] calls this, after a fresh read showed the
    /// user tagged `crossguard.dev/managed=true` and owning this key.
    pub(crate) fn new(user: String, access_key_id: String) -> Self {
        ApprovedKeyDeactivation {
            user,
            access_key_id,
        }
    }
    /// The IAM user.
    pub fn user(&self) -> &str {
        &self.user
    }
    /// The one key to make inactive.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
}

#[cfg(test)]
mod tests {
    /// Architecture rule: the crate-private constructors are called from the guard only.
    #[test]
    fn only_the_guard_builds_approvals() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let rules: [(&str, &str); 3] = [
                    ("ApprovedTermination::new(", "automation/guard.rs"),
                    ("ApprovedNodegroupScale::new(", "automation/guard.rs"),
                    ("ApprovedKeyDeactivation::new(", "keyaudit/guard.rs"),
                ];
                for (call, guard) in rules {
                    let allowed = path.ends_with(guard) || path.ends_with("aws/approval.rs");
                    if !allowed && text.contains(call) {
                        offenders.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "approvals built outside the guard: {offenders:?}"
        );
    }
}
