//! Logging to stderr through the `log` crate: `--log-level`, else RUST_LOG, else warn.

use log::LevelFilter;

/// The levels `--log-level` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<Level> for LevelFilter {
    fn from(level: Level) -> Self {
        match level {
            Level::Off => LevelFilter::Off,
            Level::Error => LevelFilter::Error,
            Level::Warn => LevelFilter::Warn,
            Level::Info => LevelFilter::Info,
            Level::Debug => LevelFilter::Debug,
            Level::Trace => LevelFilter::Trace,
        }
    }
}

/// Starts the stderr logger.
pub fn init(level: Option<Level>) {
    let mut builder = match level {
        Some(level) => {
            let mut b = env_logger::Builder::new();
            b.filter_level(level.into());
            b
        }
        None => env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")),
    };
    builder.target(env_logger::Target::Stderr).init();
}
