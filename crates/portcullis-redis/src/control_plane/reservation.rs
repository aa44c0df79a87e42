//! [`QuotaReservation`] on the control plane's counters.

use std::future::Future;

use portcullis_control_plane::StoreError;
use portcullis_control_plane::reservation::{
    CounterChange, CounterRef, Grant, QuotaReservation, Report,
};
use portcullis_quota::store::MAX_REMAINING;
use tokio::sync::broadcast;

use super::error::backend;
use super::reply::{parse, to_u64};
use super::store::RedisControlPlane;

impl QuotaReservation for RedisControlPlane {
    fn reserve(
        &self,
        counter: CounterRef,
        want: u64,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send {
        self.renew(counter, None, want)
    }

    async fn renew(
        &self,
        counter: CounterRef,
        report: Option<Report>,
        want: u64,
    ) -> Result<Grant, StoreError> {
        if want == 0 {
            return Err(StoreError::BadRequest(
                "a reservation asks for at least 1".to_owned(),
            ));
        }
        let want = want.min(MAX_REMAINING * 2);
        let reply = match report {
            None => self.counter_call(&counter, "reserve", &[want], &[]).await?,
            Some(report) => {
                let tail = [
                    want,
                    report.generation,
                    report.spent.min(MAX_REMAINING * 2),
                    report.returned.min(MAX_REMAINING * 2),
                ];
                self.counter_call(&counter, "reserve", &tail, &[]).await?
            }
        };
        let (granted, generation, remaining, outstanding): (i64, i64, i64, i64) = parse(reply)?;
        Ok(Grant {
            granted: to_u64(granted),
            generation: to_u64(generation),
            remaining: to_u64(remaining),
            outstanding: to_u64(outstanding),
        })
    }

    async fn report(&self, counter: CounterRef, report: Report) -> Result<(), StoreError> {
        self.counter_call(
            &counter,
            "report",
            &[
                report.generation,
                report.spent.min(MAX_REMAINING * 2),
                report.returned.min(MAX_REMAINING * 2),
            ],
            &[],
        )
        .await?;
        Ok(())
    }

    async fn reclaim(&self, counter: &CounterRef) -> Result<(), StoreError> {
        // The same announcement UpdateUsage makes: holders give their blocks
        // back when they hear it.
        let message = serde_json::to_string(&(&counter.plan_id, &counter.key_id))
            .map_err(|e| StoreError::Backend(e.into()))?;
        redis::cmd("PUBLISH")
            .arg(&self.inner.names.counters_channel)
            .arg(message)
            .query_async::<i64>(&mut self.conn())
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn counter_changes(&self) -> broadcast::Receiver<CounterChange> {
        self.inner.counter_changes.subscribe()
    }
}
