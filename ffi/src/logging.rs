//! Logging: the `log` crate everywhere, routed to logcat on Android (`android_logger`), to
//! unified logging on Apple platforms (`oslog`, behind the `oslog` feature because it needs
//! Xcode to build), and to stderr elsewhere. The app can also receive every line through a
//! `LogSink` (its own logger, a support file). Log lines never hold secrets: the core never
//! formats keys, PSKs, passwords or EAP material, and the tests grep captured trace logs.

use std::sync::{Arc, Once, RwLock};

/// How much to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Off => Self::Off,
            LogLevel::Error => Self::Error,
            LogLevel::Warn => Self::Warn,
            LogLevel::Info => Self::Info,
            LogLevel::Debug => Self::Debug,
            LogLevel::Trace => Self::Trace,
        }
    }
}

fn level_of(l: log::Level) -> LogLevel {
    match l {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    }
}

/// Receives log lines (on the thread that logged; keep it quick and do not call into the
/// tunnel from it).
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    fn log(&self, level: LogLevel, target: String, message: String);
}

static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);
static INSTALL: Once = Once::new();

/// Sets how much Roam logs (installs the platform logger on first use). Default: Info.
#[uniffi::export]
pub fn set_log_level(level: LogLevel) {
    install();
    log::set_max_level(level.into());
}

/// Sends every log line to `sink` as well (None: stop).
#[uniffi::export]
pub fn set_log_sink(sink: Option<Arc<dyn LogSink>>) {
    install();
    if let Ok(mut s) = SINK.write() {
        *s = sink;
    }
}

/// Installs Roam's logger once (a host that installed its own `log` logger keeps it).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        static LOGGER: Logger = Logger;
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
    });
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        platform::log(record);
        // Clone the sink out of the lock: the app's code runs with no lock of ours held.
        let sink = SINK.read().ok().and_then(|s| s.clone());
        if let Some(sink) = sink {
            let (level, target, message) = (
                level_of(record.level()),
                record.target().to_string(),
                record.args().to_string(),
            );
            crate::callbacks::guarded("log", (), || sink.log(level, target, message));
        }
    }

    fn flush(&self) {}
}

#[cfg(target_os = "android")]
mod platform {
    use std::sync::OnceLock;

    static LOGGER: OnceLock<android_logger::AndroidLogger> = OnceLock::new();

    pub fn log(record: &log::Record<'_>) {
        let logger = LOGGER.get_or_init(|| {
            android_logger::AndroidLogger::new(
                android_logger::Config::default()
                    .with_tag("Roam")
                    .with_max_level(log::LevelFilter::Trace),
            )
        });
        log::Log::log(logger, record);
    }
}

#[cfg(all(target_vendor = "apple", feature = "oslog"))]
mod platform {
    use std::sync::OnceLock;

    static LOGGER: OnceLock<oslog::OsLogger> = OnceLock::new();

    pub fn log(record: &log::Record<'_>) {
        let logger = LOGGER.get_or_init(|| {
            oslog::OsLogger::new("org.roam.core").level_filter(log::LevelFilter::Trace)
        });
        log::Log::log(logger, record);
    }
}

#[cfg(not(any(target_os = "android", all(target_vendor = "apple", feature = "oslog"))))]
mod platform {
    pub fn log(record: &log::Record<'_>) {
        eprintln!(
            "roam {:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }
}
