//! `roam serve --profile FILE`: Roam's responder as a road-warrior server on a real TUN. It
//! loads the server profile, creates the TUN (the server's own pool addresses on it, so the
//! kernel routes the pools into it), listens on the profile's port (and 4500 beside 500), and
//! prints one line per client that connects or leaves. Decrypted packets go into the TUN for
//! the kernel to forward (the host needs ip_forward on to reach beyond itself); packets the
//! kernel routes into the TUN go to the client whose virtual IP they are for.
//!
//! SIGINT/SIGTERM stop it: the TUN (and the routes its addresses brought) is removed, exit 0.
//! Exit 1 when it cannot start or fails, 2 when the profile is bad.

use crate::signals::Signals;
use crate::weak;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use roam_proto::ike::responder::{Responder, ResponderEvent};
use roam_runtime::rng::OsRng;
use roam_runtime::serve::Server;
use roam_runtime::serve_profile::{self, ServerProfile};

const EXIT_FAILED: u8 = 1;
const EXIT_BAD_PROFILE: u8 = 2;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server profile (TOML).
    #[arg(long, value_name = "FILE")]
    profile: PathBuf,
}

#[inline(never)]
pub fn run(args: &Args) -> ExitCode {
    let profile = match serve_profile::load(&args.profile) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: profile: {e}");
            return ExitCode::from(EXIT_BAD_PROFILE);
        }
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
    weak::warn_if_allowed(&profile.allow_weak);
    runtime.block_on(serve(profile, signals))
}

fn failed(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_FAILED)
}

/// One line on stdout, flushed. A closed stdout does not stop the server.
fn print_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        log::debug!("stdout is closed: {line}");
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
async fn serve(profile: ServerProfile, mut signals: Signals) -> ExitCode {
    use roam_runtime::serve_tun::ServerTun;

    warn_without_forwarding();
    let tun = match ServerTun::create(&profile.tun) {
        Ok(t) => t,
        Err(e) => {
            return failed(format!(
                "cannot create TUN {} (root or CAP_NET_ADMIN needed): {e}",
                profile.tun.name
            ))
        }
    };
    let mut tun_settings = profile.tun.clone();
    tun_settings.name = tun.name().to_string();
    let responder = Responder::new(profile.responder, Box::new(OsRng));
    let tls = profile.tls.is_some();
    let options = roam_runtime::serve::ServeOptions {
        tcp: profile.tcp,
        tls: profile.tls,
    };
    let mut server = match Server::start_with_options(responder, profile.listen, tun, options).await
    {
        Ok(s) => s,
        Err(e) => return failed(format!("cannot listen on {}: {e}", profile.listen)),
    };
    print_line(&listening_line(server.local_addrs()));
    if let Some(tcp) = server.tcp_addr() {
        let with_tls = if tls { ", plain and TLS" } else { "" };
        print_line(&format!("listening on TCP {tcp} (RFC 9329{with_tls})"));
    }
    print_line(&tun_settings.status_line());

    let mut clients: HashMap<u64, String> = HashMap::new();
    let result = loop {
        tokio::select! {
            event = server.next_server_event() => match event {
                Some(e) => {
                    if let Some(line) = client_line(&mut clients, &e.event, e.esp_proposal.as_deref()) {
                        print_line(&line);
                    }
                }
                // The server task ended by itself: it failed.
                None => break Err(()),
            },
            () = signals.recv() => {
                log::info!("signal: stopping");
                break Ok(());
            }
        }
    };
    // Stopping drops the TUN: the device and its routes go.
    let stopped = server.stop().await;
    match (result, stopped) {
        (Ok(()), _) => ExitCode::SUCCESS,
        (Err(()), Err(e)) => failed(format!("the server failed: {e}")),
        (Err(()), Ok(())) => failed("the server stopped"),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
async fn serve(_profile: ServerProfile, _signals: Signals) -> ExitCode {
    failed("roam serve needs a TUN device: Linux only for now")
}

/// `listening on 198.51.100.1:500 and :4500`, or one address.
fn listening_line(addrs: &[std::net::SocketAddr]) -> String {
    match addrs {
        [ike, natt, ..] => format!("listening on {ike} and :{}", natt.port()),
        [one] => format!("listening on {one}"),
        [] => "listening on nothing".into(),
    }
}

/// The line for a responder event; remembers which client each IKE SA is.
fn client_line(
    clients: &mut HashMap<u64, String>,
    event: &ResponderEvent,
    esp: Option<&str>,
) -> Option<String> {
    match event {
        ResponderEvent::Established {
            spi_r,
            peer,
            client_id,
            virtual_ips,
        } => {
            let id = token(client_id);
            let vips: Vec<String> = virtual_ips.iter().map(|a| a.to_string()).collect();
            let line = format!(
                "client-connected id={id} peer={peer} vip={} esp={}",
                vips.join(","),
                esp.unwrap_or("-")
            );
            // Bounded by the responder's own limit on IKE SAs.
            clients.insert(*spi_r, id);
            Some(line)
        }
        ResponderEvent::Closed { spi_r, reason } => {
            // Failed handshakes close too; only clients that connected are reported as leaving,
            // the others are logged.
            match clients.remove(spi_r) {
                Some(id) => Some(format!(
                    "client-disconnected id={id} reason={}",
                    token(reason)
                )),
                None => {
                    log::warn!("handshake of IKE SA {spi_r:016x} failed: {reason}");
                    None
                }
            }
        }
    }
}

/// A value for a `key=value` line: no spaces (dashes instead), never empty.
fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

/// Warns on stderr when the kernel will not forward what clients send beyond this host.
fn warn_without_forwarding() {
    let off = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim() == "0")
            .unwrap_or(false)
    };
    if off("/proc/sys/net/ipv4/ip_forward") {
        eprintln!("warning: net.ipv4.ip_forward is 0: clients reach this host only");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let addrs = [
            "198.51.100.1:500".parse().unwrap(),
            "198.51.100.1:4500".parse().unwrap(),
        ];
        assert_eq!(
            listening_line(&addrs),
            "listening on 198.51.100.1:500 and :4500"
        );
        assert_eq!(
            listening_line(&addrs[1..]),
            "listening on 198.51.100.1:4500"
        );
        let mut clients = HashMap::new();
        let up = ResponderEvent::Established {
            spi_r: 7,
            peer: "203.0.113.9:4500".parse().unwrap(),
            client_id: "alice@example.org".into(),
            virtual_ips: vec![
                "198.18.0.2".parse().unwrap(),
                "2001:db8:ffff::2".parse().unwrap(),
            ],
        };
        assert_eq!(
            client_line(&mut clients, &up, Some("aes256gcm16")).unwrap(),
            "client-connected id=alice@example.org peer=203.0.113.9:4500 \
             vip=198.18.0.2,2001:db8:ffff::2 esp=aes256gcm16"
        );
        let down = ResponderEvent::Closed {
            spi_r: 7,
            reason: "deleted by us".into(),
        };
        assert_eq!(
            client_line(&mut clients, &down, None).unwrap(),
            "client-disconnected id=alice@example.org reason=deleted-by-us"
        );
        assert_eq!(client_line(&mut clients, &down, None), None, "once");
        assert_eq!(token(""), "-");
    }
}
