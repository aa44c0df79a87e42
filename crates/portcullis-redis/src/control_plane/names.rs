//! The names of a control plane's Redis keys and channels.

/// The names of every Redis key of one control plane. They all carry the
/// hash tag `{<prefix>:cp}`, so on Cluster they live in one slot and every
/// script is atomic over them.
#[derive(Clone, Debug)]
pub(super) struct Names {
    pub(super) tag: String,
    pub(super) channel: String,
    pub(super) counters_channel: String,
}

impl Names {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            tag: format!("{{{prefix}:cp}}"),
            channel: format!("{prefix}:cp:changes"),
            counters_channel: format!("{prefix}:cp:counters"),
        }
    }
    pub(super) fn version(&self) -> String {
        format!("{}:version", self.tag)
    }
    pub(super) fn keys(&self) -> String {
        format!("{}:keys", self.tag)
    }
    pub(super) fn ids(&self) -> String {
        format!("{}:ids", self.tag)
    }
    pub(super) fn digests(&self) -> String {
        format!("{}:digests", self.tag)
    }
    pub(super) fn plans(&self) -> String {
        format!("{}:plans", self.tag)
    }
    pub(super) fn kp_prefix(&self) -> String {
        format!("{}:kp:", self.tag)
    }
    pub(super) fn pk_prefix(&self) -> String {
        format!("{}:pk:", self.tag)
    }
    pub(super) fn key_plans(&self, key: &str) -> String {
        format!("{}:kp:{key}", self.tag)
    }
    pub(super) fn plan_keys(&self, plan: &str) -> String {
        format!("{}:pk:{plan}", self.tag)
    }
    /// Counters and usage records name the plan with its length first, so
    /// that no two (plan, key) pairs share a name whatever their ids hold.
    pub(super) fn counter_prefix(&self, plan: &str) -> String {
        format!("{}:ctr:{}:{plan}:", self.tag, plan.len())
    }
    pub(super) fn days_prefix(&self, plan: &str) -> String {
        format!("{}:days:{}:{plan}:", self.tag, plan.len())
    }
    pub(super) fn counter(&self, plan: &str, key: &str) -> String {
        format!("{}{key}", self.counter_prefix(plan))
    }
    pub(super) fn days(&self, plan: &str, key: &str) -> String {
        format!("{}{key}", self.days_prefix(plan))
    }
    pub(super) fn usage(&self, plan: &str) -> String {
        format!("{}:usage:{plan}", self.tag)
    }
}
