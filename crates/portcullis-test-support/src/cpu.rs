//! The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): on a machine
//! shared with other work, the wall clock also counts the time a thread
//! waited for a core, and this does not.
//!
//! ```
//! let start = portcullis_test_support::cpu::thread_cpu_time();
//! let mut x = 0u64;
//! for i in 0..1_000_000u64 {
//!     x = std::hint::black_box(x.wrapping_add(i));
//! }
//! assert!(portcullis_test_support::cpu::thread_cpu_time() > start);
//! ```

use std::time::Duration;

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};
use rustix::time::{ClockId, clock_gettime};

/// The CPU time the calling thread has used so far.
#[must_use]
pub fn thread_cpu_time() -> Duration {
    let now = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

fn nanos() -> u64 {
    u64::try_from(thread_cpu_time().as_nanos()).unwrap_or(u64::MAX)
}

/// A criterion [`Measurement`] of the benchmark thread's CPU time, in
/// nanoseconds: `Criterion::default().with_measurement(ThreadCpuTime)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        nanos()
    }

    fn end(&self, start: u64) -> u64 {
        nanos().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a.saturating_add(*b)
    }

    fn zero(&self) -> u64 {
        0
    }

    #[allow(clippy::cast_precision_loss, reason = "nanoseconds to plot")]
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNanos
    }
}

/// Formats nanoseconds of CPU time with a unit that fits.
struct CpuNanos;

impl ValueFormatter for CpuNanos {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns (cpu)")
        } else if typical < 1e6 {
            (1e-3, "µs (cpu)")
        } else if typical < 1e9 {
            (1e-6, "ms (cpu)")
        } else {
            (1e-9, "s (cpu)")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }

    #[allow(clippy::cast_precision_loss, reason = "counts to plot")]
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per = match throughput {
            Throughput::Bytes(n)
            | Throughput::BytesDecimal(n)
            | Throughput::Elements(n)
            | Throughput::Bits(n) => *n as f64,
        };
        for value in values {
            *value = per * 1e9 / *value;
        }
        "elem/s (cpu)"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns (cpu)"
    }
}
