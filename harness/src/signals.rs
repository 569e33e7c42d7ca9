//! SIGINT and SIGTERM for the long-running commands (`connect`, `serve`): Ctrl-C elsewhere.

/// SIGINT and SIGTERM (Ctrl-C elsewhere).
pub struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installed on `runtime` before the command prints anything: a signal sent once its first
    /// line is out is never lost, even where it was inherited as ignored (a background job
    /// of a non-interactive shell ignores SIGINT until a handler is installed).
    pub fn before_first_output(runtime: &tokio::runtime::Runtime) -> std::io::Result<Self> {
        let _in_runtime = runtime.enter();
        Self::new()
    }

    #[cfg(unix)]
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }
    #[cfg(not(unix))]
    fn new() -> std::io::Result<Self> {
        Ok(Self {})
    }

    #[cfg(unix)]
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    pub async fn recv(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
