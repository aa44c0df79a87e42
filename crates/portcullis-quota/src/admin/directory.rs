//! Which API keys belong to which usage plan: [`KeyDirectory`], and
//! [`StaticKeys`], a fixed list.

use serde::{Deserialize, Serialize};

/// A key of a usage plan, as the admin service lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanKey {
    /// The key's id.
    pub id: String,
    /// The key's name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl PlanKey {
    /// A key known by its id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
        }
    }

    /// Sets the key's name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Which API keys belong to which usage plan: the admin service asks this
/// rather than depending on the API-key crate.
///
/// Implemented by [`StaticKeys`], and by any
/// `Fn(&str) -> Vec<PlanKey>` closure (given a plan id).
pub trait KeyDirectory: Send + Sync + 'static {
    /// The keys of the plan `plan_id`.
    fn keys_of_plan(&self, plan_id: &str) -> Vec<PlanKey>;
}

impl<F> KeyDirectory for F
where
    F: Fn(&str) -> Vec<PlanKey> + Send + Sync + 'static,
{
    fn keys_of_plan(&self, plan_id: &str) -> Vec<PlanKey> {
        self(plan_id)
    }
}

/// A fixed list of keys and the plans they belong to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticKeys {
    keys: Vec<(String, PlanKey)>,
}

impl StaticKeys {
    /// No keys.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the key `key_id` to the plan `plan_id`.
    #[must_use]
    pub fn key(self, key_id: impl Into<String>, plan_id: impl Into<String>) -> Self {
        self.plan_key(PlanKey::new(key_id), plan_id)
    }

    /// Adds a key, with its name, to the plan `plan_id`.
    #[must_use]
    pub fn plan_key(mut self, key: PlanKey, plan_id: impl Into<String>) -> Self {
        self.keys.push((plan_id.into(), key));
        self
    }
}

impl<K: Into<String>, P: Into<String>> FromIterator<(K, P)> for StaticKeys {
    /// Collects `(key id, plan id)` pairs.
    fn from_iter<I: IntoIterator<Item = (K, P)>>(iter: I) -> Self {
        iter.into_iter()
            .fold(StaticKeys::new(), |keys, (key, plan)| keys.key(key, plan))
    }
}

impl KeyDirectory for StaticKeys {
    fn keys_of_plan(&self, plan_id: &str) -> Vec<PlanKey> {
        self.keys
            .iter()
            .filter(|(plan, _)| plan == plan_id)
            .map(|(_, key)| key.clone())
            .collect()
    }
}
