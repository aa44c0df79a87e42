//! Period boundaries on the UTC calendar, through the layer, with the manual
//! clock: weeks on every first day, months of 28, 29, 30 and 31 days, and
//! the change of year.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use portcullis_core::clock::ManualClock;
use portcullis_core::plan::QuotaPeriod;
use portcullis_quota::QuotaLayer;
use time::macros::datetime;
use time::{OffsetDateTime, Weekday};

const NANO: Duration = Duration::from_nanos(1);

/// With a limit of 1: admitted at `start`, refused at every instant in
/// `inside`, refused at the last nanosecond before `end`, admitted at `end`.
async fn one_period(
    layer: QuotaLayer,
    clock: &ManualClock,
    period: QuotaPeriod,
    start: OffsetDateTime,
    inside: &[OffsetDateTime],
    end: OffsetDateTime,
) {
    let plan = plan("p", 1, period, 0);
    let service = service(layer);
    clock.set(start);
    assert_eq!(
        status(&service, "k", &plan).await,
        StatusCode::OK,
        "at {start}"
    );
    for at in inside {
        clock.set(*at);
        let refused = send(&service, request_for("k", &plan)).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "at {at}");
        let to_end = (end - *at).whole_seconds();
        assert_eq!(
            refused.headers()["retry-after"],
            to_end.to_string(),
            "at {at}"
        );
    }
    let last = end - time::Duration::nanoseconds(1);
    clock.set(last);
    assert_eq!(
        status(&service, "k", &plan).await,
        StatusCode::TOO_MANY_REQUESTS,
        "at {last}"
    );
    clock.advance(NANO);
    assert_eq!(
        status(&service, "k", &plan).await,
        StatusCode::OK,
        "at {end}"
    );
    assert_eq!(
        status(&service, "k", &plan).await,
        StatusCode::TOO_MANY_REQUESTS,
        "second request of the next period"
    );
}

#[tokio::test]
async fn a_week_ends_on_each_configured_first_day() {
    // The week containing Wednesday 2026-11-25 12:00, for each first day.
    let wednesday = datetime!(2026-11-25 12:00 UTC);
    let cases = [
        (Weekday::Sunday, datetime!(2026-11-22 00:00 UTC)),
        (Weekday::Monday, datetime!(2026-11-23 00:00 UTC)),
        (Weekday::Tuesday, datetime!(2026-11-24 00:00 UTC)),
        (Weekday::Wednesday, datetime!(2026-11-25 00:00 UTC)),
        (Weekday::Thursday, datetime!(2026-11-19 00:00 UTC)),
        (Weekday::Friday, datetime!(2026-11-20 00:00 UTC)),
        (Weekday::Saturday, datetime!(2026-11-21 00:00 UTC)),
    ];
    for (first_day, start) in cases {
        let clock = ManualClock::at(start);
        let layer = QuotaLayer::new().clock(clock.clone()).week_start(first_day);
        let end = start + time::Duration::WEEK;
        let day_before_end = end - time::Duration::DAY;
        one_period(
            layer,
            &clock,
            QuotaPeriod::Week,
            start,
            &[wednesday, day_before_end],
            end,
        )
        .await;
    }
}

#[tokio::test]
async fn sunday_is_the_default_first_day() {
    let clock = ManualClock::at(datetime!(2026-11-22 00:00 UTC));
    let layer = QuotaLayer::new().clock(clock.clone());
    one_period(
        layer,
        &clock,
        QuotaPeriod::Week,
        datetime!(2026-11-22 00:00 UTC),
        &[datetime!(2026-11-28 23:00 UTC)],
        datetime!(2026-11-29 00:00 UTC),
    )
    .await;
}

#[tokio::test]
async fn months_of_28_29_30_and_31_days() {
    let cases = [
        // 28 days.
        (
            datetime!(2026-02-01 00:00 UTC),
            datetime!(2026-02-28 12:00 UTC),
            datetime!(2026-03-01 00:00 UTC),
        ),
        // 29 days: 2028 is a leap year.
        (
            datetime!(2028-02-01 00:00 UTC),
            datetime!(2028-02-29 00:00 UTC),
            datetime!(2028-03-01 00:00 UTC),
        ),
        // 30 days.
        (
            datetime!(2026-04-01 00:00 UTC),
            datetime!(2026-04-30 23:00 UTC),
            datetime!(2026-05-01 00:00 UTC),
        ),
        // 31 days.
        (
            datetime!(2026-01-01 00:00 UTC),
            datetime!(2026-01-31 00:00 UTC),
            datetime!(2026-02-01 00:00 UTC),
        ),
    ];
    for (start, inside, end) in cases {
        let clock = ManualClock::at(start);
        let layer = QuotaLayer::new().clock(clock.clone());
        one_period(layer, &clock, QuotaPeriod::Month, start, &[inside], end).await;
    }
}

#[tokio::test]
async fn the_change_of_year() {
    // Days and months reset at 2027-01-01 00:00 UTC.
    for period in [QuotaPeriod::Day, QuotaPeriod::Month] {
        let start = match period {
            QuotaPeriod::Day => datetime!(2026-12-31 00:00 UTC),
            _ => datetime!(2026-12-01 00:00 UTC),
        };
        let clock = ManualClock::at(start);
        let layer = QuotaLayer::new().clock(clock.clone());
        one_period(
            layer,
            &clock,
            period,
            start,
            &[datetime!(2026-12-31 23:59:30 UTC)],
            datetime!(2027-01-01 00:00 UTC),
        )
        .await;
    }
    // A week does not: the week from Sunday 2026-12-27 runs into 2027.
    let clock = ManualClock::at(datetime!(2026-12-27 00:00 UTC));
    let layer = QuotaLayer::new().clock(clock.clone());
    one_period(
        layer,
        &clock,
        QuotaPeriod::Week,
        datetime!(2026-12-27 00:00 UTC),
        &[
            datetime!(2026-12-31 23:59:59 UTC),
            datetime!(2027-01-01 00:00 UTC),
        ],
        datetime!(2027-01-03 00:00 UTC),
    )
    .await;
}
