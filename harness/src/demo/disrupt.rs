//! The demo's disruptions and what the app sees of them: the client's network path switches
//! to a second local address (MOBIKE moves the SAs, same IKE SA), and the responder restarts
//! (it forgets every SA; the client notices, reconnects by itself, and traffic resumes). Each
//! prints the outage in milliseconds, measured by probes every few milliseconds through the
//! tunnel.

use std::net::IpAddr;
use std::time::Duration;

use roam_proto::ike::responder::Responder;
use roam_proto::session::Event;
use roam_runtime::packet_io::ChannelPackets;
use roam_runtime::rng::OsRng;

use super::traffic::until_answered;
use super::{next_within, responder_config, Demo, PACKET_QUEUE, TARGET4};

/// How often the outage probes go out.
const PROBE_EVERY: Duration = Duration::from_millis(5);
/// The longest outage the demo waits out.
const OUTAGE_LIMIT: Duration = Duration::from_secs(30);
/// The second local address of the path switch (all of 127/8 is this host's loopback).
const SECOND_LOCAL: &str = "127.0.0.2";

/// One disruption's result, for the summary.
#[derive(Clone, Debug)]
pub struct Outage {
    pub label: &'static str,
    pub outage: Duration,
    pub probes_lost: u32,
}

impl Demo {
    fn vip4(&self) -> Result<IpAddr, String> {
        self.info
            .as_ref()
            .and_then(|i| i.virtual_ips.iter().copied().find(IpAddr::is_ipv4))
            .ok_or_else(|| "no inner IPv4 address".to_string())
    }

    /// The client's network moves to a second local address; MOBIKE takes the SAs along.
    pub(super) async fn switch_path(&mut self) -> Result<(), String> {
        let vip = self.vip4()?;
        let target: IpAddr = TARGET4.parse().map_err(|_| "target")?;
        let second: IpAddr = SECOND_LOCAL.parse().map_err(|_| "address")?;
        let spis_before = self.info.as_ref().map(|i| (i.spi_i, i.spi_r));
        self.t.line(format!(
            "network switch: the client's address moves to {second} (as from Wi-Fi to cellular)"
        ));
        self.tunnel.use_local_addresses(vec![second]);
        let (outage, lost) =
            until_answered(&mut self.app, vip, target, PROBE_EVERY, OUTAGE_LIMIT).await?;
        loop {
            match next_within("client", self.tunnel.next_event()).await? {
                Event::Roamed { local, remote } => {
                    self.t.line(format!(
                        "roamed: the same IKE SA now runs {local} -> {remote} (UPDATE_SA_ADDRESSES)"
                    ));
                    break;
                }
                Event::Connected(info) => {
                    return Err(format!(
                    "the switch made a new connection ({:016x}) instead of moving {spis_before:x?}",
                    info.spi_i
                ))
                }
                Event::Disconnected(r) => return Err(format!("client disconnected: {r}")),
                _ => {}
            }
        }
        self.t.line(format!(
            "network switch: traffic flows again after {:.1} ms ({lost} probes unanswered)",
            ms(outage)
        ));
        self.outages.push(Outage {
            label: "network switch",
            outage,
            probes_lost: lost,
        });
        Ok(())
    }

    /// The responder restarts on the same address and forgets every SA; the client finds out,
    /// reconnects by itself, and traffic resumes.
    pub(super) async fn restart_server(&mut self) -> Result<(), String> {
        let vip = self.vip4()?;
        let target: IpAddr = TARGET4.parse().map_err(|_| "target")?;
        let (server_packets, server_app) = ChannelPackets::new(PACKET_QUEUE);
        let responder = Responder::new(responder_config()?, Box::new(OsRng));
        let server = self.server.take().ok_or("the responder is not running")?;
        self.t.line(format!(
            "server restart: the responder on {} stops and starts again, knowing no SA",
            server.local_addr()
        ));
        let server = server
            .restart_with_packets(responder, server_packets)
            .await
            .map_err(|e| format!("responder: {e}"))?;
        self.server = Some(server);
        let restarted = wall_clock_now();
        let old_echo = std::mem::replace(&mut self.echo, roam_runtime::echo::echo(server_app, 0));
        self.answered_earlier += old_echo.await.map_err(|e| e.to_string())?.answered;
        let (outage, lost) =
            until_answered(&mut self.app, vip, target, PROBE_EVERY, OUTAGE_LIMIT).await?;
        // What the client went through, as its events tell it (with the time each happened).
        while let Ok(Some(timed)) =
            tokio::time::timeout(Duration::from_millis(1), self.tunnel.next_timed_event()).await
        {
            let after = timed
                .at
                .duration_since(restarted)
                .map(ms)
                .unwrap_or_default();
            match timed.event {
                Event::Reconnecting {
                    attempt,
                    delay,
                    reason,
                } => self.t.line(format!(
                    "client, {after:.1} ms after the restart: connection lost ({reason}), attempt {attempt} in {:.0} ms",
                    ms(delay)
                )),
                Event::Connected(info) => {
                    self.t.line(format!(
                        "client, {after:.1} ms after the restart: connected again, new IKE SA {:016x}_{:016x}",
                        info.spi_i, info.spi_r
                    ));
                    self.info = Some(info);
                }
                Event::Disconnected(r) => return Err(format!("client disconnected: {r}")),
                _ => {}
            }
        }
        self.t.line(format!(
            "server restart: traffic flows again after {:.1} ms ({lost} probes unanswered)",
            ms(outage)
        ));
        self.outages.push(Outage {
            label: "server restart",
            outage,
            probes_lost: lost,
        });
        Ok(())
    }
}

#[allow(clippy::disallowed_methods)] // the harness owns the clock
fn wall_clock_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
