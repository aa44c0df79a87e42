//! A process-wide `tracing_subscriber::fmt` subscriber whose output a test
//! reads back: Portcullis's own targets only, every span's line as it
//! closes.
//!
//! Process-wide, not scoped: with only one thread's subscriber, a callsite
//! that another test's thread reached first kept the interest it got there
//! (none), and events went missing whenever a file's tests ran together.
//! The other tests' requests run through it too: tell their lines apart by
//! request id.

use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;

/// What the subscriber wrote.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("no writer panicked holding the lock")
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .expect("no writer panicked holding the lock")
            .clone();
        String::from_utf8(bytes).expect("UTF-8")
    }
}

/// Installs the subscriber, once for the test binary; what it wrote.
pub(crate) fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(move || writer.clone())
            .finish()
            .with(
                tracing_subscriber::filter::Targets::new()
                    .with_target("portcullis", tracing::Level::TRACE),
            );
        tracing::subscriber::set_global_default(subscriber)
            .expect("the only process-wide subscriber of this test binary");
        captured
    })
}
