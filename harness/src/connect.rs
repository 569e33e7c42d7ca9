//! `roam connect --profile FILE [--no-tun] [--tun-name NAME] [--resolv-conf PATH]`: loads the
//! profile, runs the session on a tokio driver and prints one line per state change on
//! stdout. Once connected it sets up the packet path (`tun` line; see `local`) unless
//! `--no-tun`, and writes the pushed DNS to `--resolv-conf` (`dns` line). SIGINT/SIGTERM close
//! the session (DELETE), wait at most `CLOSE_WAIT` for the answer, then remove the TUN, its
//! routes and the DNS file. Exit 0 when closed, 1 when the connection (or its TUN) failed, 2
//! when the profile is bad. Every event line ends in `at_ms=<Unix time in ms>`, the time the
//! session saw it happen.
//!
//! The session stays up across network changes: a netlink watcher (`roam_runtime::netwatch`)
//! plays the phone's network callback; on each settled change the server's host route is
//! pinned to the best path outside the tunnel again, then the driver finds its local addresses
//! again and the session moves (MOBIKE) or reconnects. The TUN stays up while reconnecting.

mod local;
mod status;

use crate::memory;
use crate::signals::Signals;
use crate::weak;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use roam_proto::session::{DisconnectReason, Event, Session};
use roam_runtime::driver::{self, SocketOptions, TimedEvent, Tunnel};
use roam_runtime::netwatch::{self, NetWatch};
use roam_runtime::profile::{self, ServerAddress};
use roam_runtime::rng::OsRng;
use roam_runtime::tun::{TunDevice, DEFAULT_NAME};

use local::{Local, LocalOptions};
use status::StatusLines;

/// How long a close waits for the server's answer to DELETE.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

const EXIT_FAILED: u8 = 1;
const EXIT_BAD_PROFILE: u8 = 2;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The client profile (TOML).
    #[arg(long, value_name = "FILE")]
    profile: PathBuf,
    /// Control plane only: no TUN device, no routes.
    #[arg(long, conflicts_with = "tun_name")]
    no_tun: bool,
    /// The TUN device's name.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME, value_parser = parse_tun_name)]
    tun_name: String,
    /// Write the pushed DNS servers and search domains to this resolv.conf-style file (put
    /// back as it was on exit).
    #[arg(long, value_name = "PATH")]
    resolv_conf: Option<PathBuf>,
}

/// An interface name the kernel accepts: 1 to 15 bytes, no `/`, whitespace or NUL.
fn parse_tun_name(s: &str) -> Result<String, String> {
    let ok = (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(s.to_string())
    } else {
        Err("an interface name is 1 to 15 visible characters without '/' or ':'".to_string())
    }
}

#[inline(never)]
pub fn run(args: &Args) -> ExitCode {
    let profile = match profile::load(&args.profile) {
        Ok(p) => p,
        Err(e) => return bad_profile(e),
    };
    let server = profile.server.clone();
    let transport = profile.transport;
    let allow_weak = profile.config.allow_weak.clone();
    let options = LocalOptions {
        tun: (!args.no_tun).then(|| args.tun_name.clone()),
        mtu: profile.config.mtu,
        resolv_conf: args.resolv_conf.clone(),
    };
    let session = match Session::new(profile.config, Box::new(OsRng)) {
        Ok(s) => s,
        Err(e) => return bad_profile(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failed(format!("cannot start the runtime: {e}")),
    };
    let signals = match Signals::before_first_output(&runtime) {
        Ok(s) => s,
        Err(e) => return failed(format!("cannot watch for signals: {e}")),
    };
    weak::warn_if_allowed(&allow_weak);
    runtime.block_on(connect(session, server, options, transport, signals))
}

/// One state line on stdout, flushed. A closed stdout does not stop the session.
fn print_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        log::debug!("stdout is closed: {line}");
    }
}

fn bad_profile(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: profile: {e}");
    ExitCode::from(EXIT_BAD_PROFILE)
}

fn failed(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_FAILED)
}

/// How the event loop below ended.
enum End {
    /// The driver ended (the session disconnected, or the driver failed).
    DriverEnded,
    /// We closed and the server did not answer in time, or a second signal came.
    GaveUp,
}

async fn connect(
    session: Session,
    server: ServerAddress,
    options: LocalOptions,
    transport: roam_runtime::tcp::TransportPolicy,
    mut signals: Signals,
) -> ExitCode {
    let address = match driver::resolve(&server.host, server.port).await {
        Ok(a) => a,
        Err(e) => return failed(e),
    };
    let options_net = SocketOptions {
        protect: None,
        server_name: Some((server.host.clone(), server.port)),
        transport,
    };
    // Boxed, as `local.up` below: awaited in place, these one-off futures (tens of KB) would
    // be part of this function's state, allocated for as long as the tunnel runs.
    let start = Box::pin(Tunnel::<TunDevice>::start_with(
        session,
        address,
        None,
        options_net,
    ));
    let mut tunnel = match start.await {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    let mut watch = match NetWatch::start(netwatch::DEFAULT_DEBOUNCE) {
        Ok(w) => Some(w),
        Err(e) => {
            log::warn!("cannot watch the network ({e}): network changes go unnoticed");
            None
        }
    };
    let mut lines = StatusLines::new(address);
    print_line(&stamped(
        &lines.connecting(),
        &TimedEvent {
            at: wall_clock_now(),
            event: Event::StateChanged(roam_proto::session::State::Connecting),
        },
    ));

    let mut reason: Option<DisconnectReason> = None;
    let mut close_deadline: Option<tokio::time::Instant> = None;
    // When to drop the start-up pages: once the tunnel is up and what it set off has settled.
    let mut trim_at: Option<tokio::time::Instant> = None;
    let mut local = Local::new(options, address.ip());
    // Why we closed the session ourselves, when not for a signal.
    let mut local_failure: Option<String> = None;
    let end = loop {
        tokio::select! {
            event = tunnel.next_timed_event() => match event {
                Some(timed) => {
                    if let Some(line) = lines.event(&timed.event) {
                        print_line(&stamped(&line, &timed));
                    }
                    match timed.event {
                        Event::Disconnected(r) => reason = Some(r),
                        Event::Connected(info) if close_deadline.is_none() => {
                            match Box::pin(local.up(&info, &mut tunnel)).await {
                                Ok(new_lines) => {
                                    new_lines.iter().for_each(|l| print_line(l));
                                    trim_at = Some(tokio::time::Instant::now() + memory::SETTLE);
                                    if let (Some(w), Some(index)) = (&watch, local.tun_index()) {
                                        w.ignore_interface(index);
                                    }
                                }
                                Err(e) => {
                                    log::info!("closing the session: {e}");
                                    local_failure = Some(e);
                                    tunnel.close();
                                    close_deadline = Some(tokio::time::Instant::now() + CLOSE_WAIT);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                None => break End::DriverEnded,
            },
            changed = wait_change(watch.as_mut()) => {
                if changed.is_none() {
                    log::warn!("the network watcher stopped: network changes go unnoticed");
                    watch = None;
                    continue;
                }
                local.network_changed().await;
                tunnel.network_changed();
            }
            () = signals.recv() => {
                if close_deadline.is_some() {
                    log::warn!("second signal: not waiting for the server any longer");
                    break End::GaveUp;
                }
                log::info!("signal: closing the session");
                tunnel.close();
                close_deadline = Some(tokio::time::Instant::now() + CLOSE_WAIT);
            }
            () = sleep_until(trim_at), if trim_at.is_some() => {
                trim_at = None;
                memory::trim_after_start_up();
            }
            () = sleep_until(close_deadline), if close_deadline.is_some() => {
                log::warn!("the server did not answer the DELETE within {} s", CLOSE_WAIT.as_secs());
                break End::GaveUp;
            }
        }
    };
    let closed_by_us = close_deadline.is_some();
    let finished = match end {
        End::GaveUp => {
            tunnel.abort();
            if reason.is_none() {
                print_line(&lines.disconnected(&DisconnectReason::Closed));
            }
            Ok(())
        }
        // The driver has dropped the TUN: the device and its routes are gone.
        End::DriverEnded => tunnel.finish().await,
    };
    local.down().await;
    if let Some(e) = local_failure {
        return failed(e);
    }
    match (finished, reason) {
        (Err(e), _) => failed(e),
        (Ok(()), Some(DisconnectReason::Closed)) => ExitCode::SUCCESS,
        (Ok(()), Some(_)) | (Ok(()), None) if closed_by_us => ExitCode::SUCCESS,
        (Ok(()), Some(r)) => failed(describe(&r, address)),
        (Ok(()), None) => failed("the session ended without saying why"),
    }
}

/// The `error:` line for a session that ended without us closing it.
fn describe(reason: &DisconnectReason, server: SocketAddr) -> String {
    match reason {
        DisconnectReason::Closed => "the session was closed".to_string(),
        DisconnectReason::DeletedByPeer => format!("{server} closed the connection"),
        DisconnectReason::Timeout => format!("no answer from {server}"),
        DisconnectReason::AuthenticationFailed(s) => format!("authentication failed: {s}"),
        DisconnectReason::NegotiationFailed(s) => format!("negotiation failed: {s}"),
        DisconnectReason::ProtocolError(s) => format!("protocol error: {s}"),
        DisconnectReason::PathLost => "the network path to the server is gone".to_string(),
        DisconnectReason::ServerRestarted => format!("{server} lost our session (restarted)"),
        DisconnectReason::TemporarilyRefused(s) => format!("{server} cannot take us now: {s}"),
    }
}

// The harness owns the clocks (the lint is for the sans-IO protocol).
#[allow(clippy::disallowed_methods)]
fn wall_clock_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// `line` with the event's time: `… at_ms=1764450000123`.
fn stamped(line: &str, timed: &TimedEvent) -> String {
    format!("{line} at_ms={}", timed.unix_ms())
}

/// The next settled network change, or never without a watcher.
async fn wait_change(watch: Option<&mut NetWatch>) -> Option<()> {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
