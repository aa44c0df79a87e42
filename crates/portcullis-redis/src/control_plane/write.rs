//! Configuration changes: optimistic transactions written by `apply.lua`.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use portcullis_control_plane::{ApiKey, NewApiKey, StoreError, UsagePlanRecord, validate};

use super::error::backend;
use super::records::encode_key;
use super::scripts::apply_script;
use super::store::RedisControlPlane;

/// How many times a configuration change is retried when another change
/// came between its reads and its write.
const MAX_ATTEMPTS: usize = 64;

/// A change to the configuration, written by `apply.lua` if nothing changed
/// since it was read.
#[derive(Default)]
pub(super) struct Tx {
    keys: Vec<String>,
    args: Vec<String>,
}

impl Tx {
    pub(super) fn op(&mut self, op: &str, key: String, field: &str, value: &str) {
        let index = match self.keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.keys.push(key);
                self.keys.len() - 1
            }
        };
        // KEYS[1] is the version key.
        self.args.extend([
            op.to_owned(),
            (index + 2).to_string(),
            field.to_owned(),
            value.to_owned(),
        ]);
    }
    pub(super) fn is_empty(&self) -> bool {
        self.args.is_empty()
    }
}

impl RedisControlPlane {
    /// Runs `attempt` against the configuration version it is given and
    /// writes its change if that version still holds; again if not.
    pub(super) async fn transact<T, F, Fut>(&self, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(T, Tx), StoreError>>,
    {
        for round in 0..MAX_ATTEMPTS {
            let version = self.inner.stored_version().await?;
            let (out, tx) = attempt().await?;
            if tx.is_empty() {
                return Ok(out);
            }
            let names = &self.inner.names;
            let mut call = apply_script().call();
            call.key(names.version());
            for key in &tx.keys {
                call.key(key.as_str());
            }
            call.arg(version).arg(names.channel.as_str());
            for arg in &tx.args {
                call.arg(arg.as_str());
            }
            let answer: i64 = call.invoke(&mut self.conn()).await.map_err(backend)?;
            if let Ok(new_version) = u64::try_from(answer) {
                self.inner.announce(new_version);
                return Ok(out);
            }
            // Another change came between the reads and the write.
            let pause = 1 + (round as u64).min(20) + u64::from(rand_jitter());
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(StoreError::Backend(
            "the configuration changed under every attempt; try again".into(),
        ))
    }

    pub(super) fn put_key_ops(
        &self,
        tx: &mut Tx,
        key: &ApiKey,
        old: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        let names = &self.inner.names;
        if let Some(old) = old
            && old.digest != key.digest
        {
            tx.op("hdel", names.digests(), &old.digest.to_hex(), "");
        }
        tx.op("hset", names.keys(), &key.id, &encode_key(key)?);
        tx.op("zadd", names.ids(), &key.id, "");
        tx.op("hset", names.digests(), &key.digest.to_hex(), &key.id);
        Ok(())
    }

    pub(super) fn limit_exceeded_keys(&self) -> StoreError {
        StoreError::LimitExceeded(format!(
            "the store holds at most {} API keys",
            self.inner.options.max_api_keys
        ))
    }

    pub(super) async fn create_keys(
        &self,
        inputs: Vec<NewApiKey>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.transact(|| {
            let inputs = inputs.clone();
            async move {
                let count = self.key_count().await?;
                if count.saturating_add(inputs.len()) > self.inner.options.max_api_keys {
                    return Err(self.limit_exceeded_keys());
                }
                let now = self.inner.clock.now();
                let mut built: Vec<ApiKey> = Vec::with_capacity(inputs.len());
                let mut ids = BTreeSet::new();
                let mut digests = BTreeSet::new();
                for input in inputs {
                    let key =
                        validate::build_api_key(input, now, self.inner.options.retain_values)?;
                    if !ids.insert(key.id.clone()) || self.key(&key.id).await?.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "an API key with id {} already exists",
                            key.id
                        )));
                    }
                    if !digests.insert(*key.digest.as_bytes())
                        || self.digest_holder(&key.digest).await?.is_some()
                    {
                        return Err(StoreError::Conflict(
                            "an API key with this value already exists".to_owned(),
                        ));
                    }
                    built.push(key);
                }
                let mut tx = Tx::default();
                for key in &built {
                    self.put_key_ops(&mut tx, key, None)?;
                }
                Ok((built, tx))
            }
        })
        .await
    }

    /// Removes `(plan, key)`'s association and counter.
    pub(super) fn del_assoc_ops(&self, tx: &mut Tx, plan: &str, key: &str) {
        let names = &self.inner.names;
        tx.op("srem", names.plan_keys(plan), key, "");
        tx.op("srem", names.key_plans(key), plan, "");
        tx.op("del", names.counter(plan, key), "", "");
    }

    /// Whether `plan` may hold `key` next to the key's other plans.
    pub(super) async fn check_stages(
        &self,
        plan: &UsagePlanRecord,
        key: &str,
        message: impl Fn(&str, &str) -> String,
    ) -> Result<(), StoreError> {
        for other in self.members(self.inner.names.key_plans(key)).await? {
            if other == plan.id() {
                continue;
            }
            if let Some(other_plan) = self.plan(&other).await?
                && let Some(stage) = validate::stages_overlap(&plan.plan, &other_plan.plan)
            {
                return Err(StoreError::Conflict(message(&other, &stage)));
            }
        }
        Ok(())
    }
}

/// A few milliseconds of jitter, so that replicas retrying a change do not
/// retry in step.
fn rand_jitter() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    (nanos % 5) as u8
}
