//! The calendar of quota periods: UTC days, weeks and months.
//!
//! API Gateway does not document when its quota periods reset; the reading
//! users expect, and the one implemented here, is the UTC calendar:
//!
//! - `DAY`: from 00:00 UTC to the next 00:00 UTC;
//! - `WEEK`: seven days from 00:00 UTC on the configured first day of the
//!   week (Sunday unless [`Calendar::with_week_start`] says otherwise);
//! - `MONTH`: from the 1st at 00:00 UTC to the 1st of the next month.
//!
//! The date arithmetic is the `time` crate's (the workspace's date crate,
//! which core's [`Clock`](portcullis_core::clock::Clock) already speaks;
//! `chrono` would do as well, but would add a second date type to the API).
//!
//! ```
//! use portcullis_core::plan::QuotaPeriod;
//! use portcullis_quota::Calendar;
//! use time::macros::datetime;
//! use time::Weekday;
//!
//! let calendar = Calendar::new().with_week_start(Weekday::Monday);
//! // Wednesday 2026-11-25 belongs to the week that began on Monday the 23rd.
//! let week = calendar.window(QuotaPeriod::Week, datetime!(2026-11-25 13:00 UTC));
//! assert_eq!(week.start_datetime(), datetime!(2026-11-23 00:00 UTC));
//! assert_eq!(week.end_datetime(), datetime!(2026-11-30 00:00 UTC));
//!
//! let month = calendar.window(QuotaPeriod::Month, datetime!(2028-02-29 23:59:59 UTC));
//! assert_eq!(month.end_datetime(), datetime!(2028-03-01 00:00 UTC));
//! ```

use std::fmt;

use portcullis_core::plan::QuotaPeriod;
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Weekday};

const SECONDS_PER_DAY: i64 = 86_400;

/// One quota period: from `start` (inclusive) to `end` (exclusive), in whole
/// seconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    start: i64,
    end: i64,
}

impl Window {
    /// A window from `start` to `end`, in seconds since the Unix epoch.
    ///
    /// An `end` before `start` is moved to `start` (an empty window).
    #[must_use]
    pub const fn new(start: i64, end: i64) -> Self {
        let end = if end < start { start } else { end };
        Self { start, end }
    }

    /// The first second of the period.
    #[must_use]
    pub const fn start(&self) -> i64 {
        self.start
    }

    /// The first second after the period: when the quota resets.
    #[must_use]
    pub const fn end(&self) -> i64 {
        self.end
    }

    /// The start, as a UTC date and time.
    #[must_use]
    pub fn start_datetime(&self) -> OffsetDateTime {
        datetime_of(self.start)
    }

    /// The end (the reset), as a UTC date and time.
    #[must_use]
    pub fn end_datetime(&self) -> OffsetDateTime {
        datetime_of(self.end)
    }

    /// The first day of the period.
    #[must_use]
    pub fn first_day(&self) -> Date {
        self.start_datetime().date()
    }

    /// Whether the instant `unix_seconds` lies in the period.
    #[must_use]
    pub const fn contains(&self, unix_seconds: i64) -> bool {
        self.start <= unix_seconds && unix_seconds < self.end
    }

    /// Whole seconds from `now_unix_nanos` until the reset, rounded up, and at
    /// least 1: what `Retry-After` says.
    #[must_use]
    pub fn seconds_until_reset(&self, now_unix_nanos: u64) -> u64 {
        let end_nanos = i128::from(self.end) * 1_000_000_000;
        let left = end_nanos - i128::from(now_unix_nanos);
        if left <= 0 {
            return 1;
        }
        let seconds = (left + 999_999_999) / 1_000_000_000;
        u64::try_from(seconds).unwrap_or(u64::MAX).max(1)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start_datetime(), self.end_datetime())
    }
}

fn datetime_of(unix_seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap_or(if unix_seconds < 0 {
        OffsetDateTime::UNIX_EPOCH
    } else {
        // Past the year 9999: the end of time as far as `time` knows.
        Date::MAX
            .with_hms(23, 59, 59)
            .map_or(OffsetDateTime::UNIX_EPOCH, |dt| dt.assume_utc())
    })
}

fn unix_of(date: Date) -> i64 {
    date.midnight().assume_utc().unix_timestamp()
}

fn unix_of_next(date: Option<Date>) -> i64 {
    date.map_or(i64::MAX, unix_of)
}

/// Where quota periods begin and end: the UTC calendar, with a configurable
/// first day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Calendar {
    #[serde(with = "weekday_serde", default = "sunday")]
    week_start: Weekday,
}

fn sunday() -> Weekday {
    Weekday::Sunday
}

impl Default for Calendar {
    fn default() -> Self {
        Self::new()
    }
}

impl Calendar {
    /// The UTC calendar with weeks starting on Sunday.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            week_start: Weekday::Sunday,
        }
    }

    /// Sets the first day of the week.
    #[must_use]
    pub const fn with_week_start(mut self, week_start: Weekday) -> Self {
        self.week_start = week_start;
        self
    }

    /// The first day of the week.
    #[must_use]
    pub const fn week_start(&self) -> Weekday {
        self.week_start
    }

    /// The period of kind `period` that contains the instant `at`.
    #[must_use]
    pub fn window(&self, period: QuotaPeriod, at: OffsetDateTime) -> Window {
        self.window_of_date(period, at.to_offset(time::UtcOffset::UTC).date())
    }

    /// The period of kind `period` that contains the UTC day `date`.
    #[must_use]
    pub fn window_of_date(&self, period: QuotaPeriod, date: Date) -> Window {
        match period {
            QuotaPeriod::Day => Window::new(unix_of(date), unix_of_next(date.next_day())),
            QuotaPeriod::Week => {
                let back = (date.weekday().number_days_from_sunday() + 7
                    - self.week_start.number_days_from_sunday())
                    % 7;
                let first = date
                    .checked_sub(Duration::days(i64::from(back)))
                    .unwrap_or(Date::MIN);
                Window::new(
                    unix_of(first),
                    unix_of_next(first.checked_add(Duration::WEEK)),
                )
            }
            QuotaPeriod::Month => {
                let first = date.replace_day(1).unwrap_or(date);
                let length = date.month().length(date.year());
                Window::new(
                    unix_of(first),
                    unix_of_next(first.checked_add(Duration::days(i64::from(length)))),
                )
            }
        }
    }

    /// The period containing `unix_seconds`, and the UTC day of that instant.
    ///
    /// This is the layer's hot path. A `DAY` period needs no calendar at all
    /// beyond the day itself.
    /// The answer is memoised per thread for the last (day, period, first
    /// day of the week) asked: every request of a day after the first costs
    /// a comparison, not a calendar computation.
    #[must_use]
    pub fn window_at_unix(&self, period: QuotaPeriod, unix_seconds: i64) -> (Window, Date) {
        type Memo = Option<(i64, QuotaPeriod, Weekday, Window, Date)>;
        thread_local! {
            static LAST: std::cell::Cell<Memo> = const { std::cell::Cell::new(None) };
        }
        let day = unix_seconds.div_euclid(SECONDS_PER_DAY);
        if let Ok(Some((d, p, w, window, date))) = LAST.try_with(std::cell::Cell::get)
            && d == day
            && p == period
            && w == self.week_start
        {
            return (window, date);
        }
        let (window, date) = self.compute_window_at_day(period, day);
        // A thread being torn down has no memo; it computes instead.
        let _ = LAST.try_with(|last| last.set(Some((day, period, self.week_start, window, date))));
        (window, date)
    }

    fn compute_window_at_day(&self, period: QuotaPeriod, day: i64) -> (Window, Date) {
        let date = Date::from_julian_day(unix_epoch_julian_day_plus(day)).unwrap_or(if day < 0 {
            Date::MIN
        } else {
            Date::MAX
        });
        let window = match period {
            QuotaPeriod::Day => {
                let start = day * SECONDS_PER_DAY;
                Window::new(start, start.saturating_add(SECONDS_PER_DAY))
            }
            _ => self.window_of_date(period, date),
        };
        (window, date)
    }
}

/// The Julian day number of 1970-01-01 plus `days`, clamped to `i32`.
fn unix_epoch_julian_day_plus(days: i64) -> i32 {
    const UNIX_EPOCH_JULIAN_DAY: i32 = time::macros::date!(1970 - 01 - 01).to_julian_day();
    i32::try_from(days.saturating_add(i64::from(UNIX_EPOCH_JULIAN_DAY))).unwrap_or(i32::MAX)
}

mod weekday_serde {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use time::Weekday;

    pub(super) fn serialize<S: Serializer>(day: &Weekday, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&day.to_string().to_ascii_uppercase())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        let name = String::deserialize(d)?;
        super::parse_weekday(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown weekday `{name}`, expected one of SUNDAY, MONDAY, ..., SATURDAY"
            ))
        })
    }
}

/// Parses a weekday name in any case (`SUNDAY`, `monday`, `Tue`).
pub(crate) fn parse_weekday(name: &str) -> Option<Weekday> {
    const DAYS: [(&str, Weekday); 7] = [
        ("sunday", Weekday::Sunday),
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
    ];
    let lower = name.to_ascii_lowercase();
    DAYS.iter()
        .find(|(full, _)| *full == lower || (lower.len() == 3 && full.starts_with(&lower)))
        .map(|(_, day)| *day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn fast_path_agrees_with_the_calendar() {
        let calendar = Calendar::new();
        for at in [
            datetime!(1970-01-01 00:00 UTC),
            datetime!(2026-11-23 23:59:59 UTC),
            datetime!(2028-02-29 12:00 UTC),
            datetime!(1969-12-31 23:59:59 UTC),
        ] {
            for period in [QuotaPeriod::Day, QuotaPeriod::Week, QuotaPeriod::Month] {
                let (window, day) = calendar.window_at_unix(period, at.unix_timestamp());
                assert_eq!(window, calendar.window(period, at), "{period} {at}");
                assert_eq!(day, at.date());
                assert!(window.contains(at.unix_timestamp()));
            }
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        let window = Window::new(0, 10);
        assert_eq!(window.seconds_until_reset(9_000_000_001), 1);
        assert_eq!(window.seconds_until_reset(8_999_999_999), 2);
        assert_eq!(window.seconds_until_reset(10_000_000_000), 1);
    }

    #[test]
    fn weekday_names_parse() {
        assert_eq!(parse_weekday("MONDAY"), Some(Weekday::Monday));
        assert_eq!(parse_weekday("sat"), Some(Weekday::Saturday));
        assert_eq!(parse_weekday("mo"), None);
        let c: Calendar = serde_json::from_str(r#"{"week_start":"TUESDAY"}"#).unwrap();
        assert_eq!(c.week_start(), Weekday::Tuesday);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"week_start":"TUESDAY"}"#
        );
        assert!(
            serde_json::from_str::<Calendar>(r#"{"week_start":"Funday"}"#)
                .unwrap_err()
                .to_string()
                .contains("Funday")
        );
    }

    #[test]
    fn month_of_a_date() {
        let w = Calendar::new().window_of_date(QuotaPeriod::Month, date!(2026 - 12 - 31));
        assert_eq!(w.start_datetime(), datetime!(2026-12-01 00:00 UTC));
        assert_eq!(w.end_datetime(), datetime!(2027-01-01 00:00 UTC));
    }
}
