//! Quota counters: one `counter.lua` call per grant, report or update.

use portcullis_control_plane::StoreError;
use portcullis_control_plane::reservation::CounterRef;
use portcullis_core::plan::QuotaPeriod;
use portcullis_quota::store::MAX_REMAINING;

use super::error::backend;
use super::scripts::counter_script;
use super::store::RedisControlPlane;

fn period_kind(period: QuotaPeriod) -> u8 {
    match period {
        QuotaPeriod::Day => 0,
        QuotaPeriod::Week => 1,
        QuotaPeriod::Month => 2,
    }
}

impl RedisControlPlane {
    pub(super) async fn counter_call(
        &self,
        counter: &CounterRef,
        mode: &str,
        tail: &[u64],
        strings: &[&str],
    ) -> Result<redis::Value, StoreError> {
        let names = &self.inner.names;
        let request = counter.as_request();
        let initial_mode: u8 = match counter.initial_window {
            Some(w) if w.start() == counter.window.start() => 1,
            Some(_) => 2,
            None => 0,
        };
        let mut call = counter_script().call();
        call.key(names.counter(&counter.plan_id, &counter.key_id))
            .key(names.days(&counter.plan_id, &counter.key_id))
            .key(names.usage(&counter.plan_id))
            .arg(mode)
            .arg(counter.key_id.as_str())
            .arg(counter.window.start())
            .arg(period_kind(counter.quota.period()));
        if mode == "report" {
            call.arg(counter.day.to_julian_day());
        } else {
            call.arg(counter.quota.limit().min(MAX_REMAINING * 2))
                .arg(counter.day.to_julian_day())
                .arg(request.allowance(true))
                .arg(request.allowance(false))
                .arg(initial_mode)
                .arg(self.inner.options.retention_days);
        }
        for n in tail {
            call.arg(*n);
        }
        for text in strings {
            call.arg(*text);
        }
        call.invoke(&mut self.conn()).await.map_err(backend)
    }
}
