//! Following the configuration version and counter changes of other
//! replicas: pub/sub, with a poll of the version key.

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use portcullis_control_plane::reservation::CounterChange;

use super::inner::Inner;
use super::names::Names;

/// Follows the configuration version and counter changes: pub/sub on any
/// node, the version key on every (re)connect and every `poll`. Ends when
/// the store is dropped.
pub(super) async fn follow(store: Weak<Inner>, urls: Vec<String>, names: Names, poll: Duration) {
    let mut attempt = 0usize;
    // Failures are logged when they start, not on every retry.
    let mut failing = false;
    // Whether a subscription was made before: on a later one, messages may
    // have been missed.
    let mut resubscribed = false;
    loop {
        let Some(url) = urls.get(attempt % urls.len().max(1)).cloned() else {
            return;
        };
        attempt = attempt.wrapping_add(1);
        let subscribed = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub =
                tokio::time::timeout(Duration::from_secs(1), client.get_async_pubsub())
                    .await
                    .map_err(|_| {
                        redis::RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "pub/sub connect timed out",
                        ))
                    })??;
            pubsub
                .subscribe(&[names.channel.as_str(), names.counters_channel.as_str()])
                .await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(pubsub) => {
                if failing {
                    tracing::info!(
                        layer = "redis",
                        store = "control_plane",
                        "change subscription restored"
                    );
                    failing = false;
                }
                if resubscribed && let Some(inner) = store.upgrade() {
                    // Counter changes made while unsubscribed are unknown:
                    // engines give every block back.
                    let _ = inner.counter_changes.send(CounterChange::All);
                }
                resubscribed = true;
                let mut messages = pubsub.into_on_message();
                let mut tick = tokio::time::interval(poll);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // The first tick fires at once: a resync after (re)connecting.
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let Some(inner) = store.upgrade() else { return };
                            if message.get_channel_name() == names.counters_channel {
                                let change = message
                                    .get_payload::<String>()
                                    .ok()
                                    .and_then(|p| serde_json::from_str::<(String, String)>(&p).ok())
                                    .map_or(CounterChange::All, |(plan_id, key_id)| {
                                        CounterChange::Counter { plan_id, key_id }
                                    });
                                let _ = inner.counter_changes.send(change);
                                continue;
                            }
                            match message.get_payload::<u64>() {
                                Ok(version) => inner.announce(version),
                                Err(_) => resync(&inner).await,
                            }
                        }
                        _ = tick.tick() => {
                            let Some(inner) = store.upgrade() else { return };
                            resync(&inner).await;
                        }
                    }
                }
                tracing::warn!(
                    layer = "redis",
                    store = "control_plane",
                    "change subscription lost; reconnecting"
                );
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(layer = "redis", store = "control_plane", %error, "change subscription failed; polling the version until it is back");
                    failing = true;
                }
                let Some(inner) = store.upgrade() else { return };
                resync(&inner).await;
                drop(inner);
                tokio::time::sleep(poll).await;
            }
        }
    }
}

async fn resync(inner: &Inner) {
    match inner.stored_version().await {
        Ok(version) => inner.announce(version),
        Err(error) => {
            tracing::debug!(layer = "redis", store = "control_plane", %error, "reading the configuration version failed");
        }
    }
}
