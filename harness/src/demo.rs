//! `roam demo`: the main job on an embedded default. Roam's own responder runs in this process on
//! loopback, and a client session connects to it through real UDP sockets. Then the client's
//! app sends traffic through ESP (ICMP and ICMPv6 echo requests, UDP datagrams) on a userspace
//! packet path (`ChannelPackets`: no TUN, no root), and an echo on the responder's packet side
//! answers it. It prints a timeline (handshake, SAs, packets and bytes each way, loss, round
//! trips) and exits 0, or 1 on any loss (there is none to excuse on loopback).
//!
//! The demo is a sequence of phases on one [`Demo`]: handshake, traffic, a network switch to a
//! second local address (MOBIKE), traffic, a responder restart (the client reconnects by
//! itself), traffic, close. The switch and the restart print the outage the app saw.

mod disrupt;
mod traffic;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use roam_proto::config::{ClientAuth, ClientConfig, Retransmit};
use roam_proto::crypto::proposal::{default_esp, default_ike, ProposalSpec};
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::child::ts_any;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig, ResponderEvent};
use roam_proto::session::{ConnectedInfo, Event, Session, State};
use roam_runtime::echo::{EchoStats, Kind};
use roam_runtime::packet_io::{AppPackets, ChannelPackets};
use roam_runtime::rng::OsRng;
use roam_runtime::serve::Server;

use traffic::{Plan, Report};

/// The client's tunnel: the real driver with a userspace packet path.
type ClientTunnel = roam_runtime::driver::Tunnel<ChannelPackets>;

/// The demo's shared key: a fixed, public value that protects nothing outside this process.
const DEMO_PSK: &[u8] = b"roam-demo-psk-not-a-secret";
/// How long any step of the demo may take.
const STEP_LIMIT: Duration = Duration::from_secs(10);
/// Packets each packet path holds.
const PACKET_QUEUE: usize = 256;
/// Where the demo's probes go: inside the responder's subnets (documentation addresses).
const TARGET4: &str = "203.0.113.1";
const TARGET6: &str = "2001:db8:203::1";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The IKE proposal the client offers (strongSwan syntax); default: Roam's strong defaults.
    #[arg(long)]
    ike: Option<String>,
    /// Testing aid: the responder's echo ignores this many probes (the demo must then fail).
    #[arg(long, hide = true, default_value_t = 0)]
    lose: u64,
}

fn client_config(ike: Option<&str>) -> ClientConfig {
    let mut c = ClientConfig::new(ClientAuth::Psk(Secret::from_slice(DEMO_PSK)));
    c.local_id = Identity::parse("demo-client@roam.example").ok();
    c.server_id = Identity::parse("demo-server.roam.example").ok();
    c.ike_proposals = ike.map(|s| vec![s.to_string()]).unwrap_or_default();
    // Loopback answers at once: retransmit early.
    c.retransmit = Retransmit {
        initial: Duration::from_millis(500),
        ..Retransmit::default()
    };
    c
}

fn responder_config() -> Result<ResponderConfig, String> {
    let parse = |list: Vec<String>, esp: bool| {
        list.iter()
            .map(|s| {
                if esp {
                    ProposalSpec::parse_esp(s, &[])
                } else {
                    ProposalSpec::parse_ike(s, &[])
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    };
    Ok(ResponderConfig {
        id: Identity::parse("demo-server.roam.example").map_err(|e| e.to_string())?,
        auth: ResponderAuth::Psk(Secret::from_slice(DEMO_PSK)),
        ca: Vec::new(),
        eap_users: Vec::new(),
        ike: parse(default_ike(), false)?,
        esp: parse(default_esp(), true)?,
        pool4: Some(("198.18.0.1".parse().map_err(|_| "pool")?, 254)),
        pool6: Some(("2001:db8:ffff::1".parse().map_err(|_| "pool")?, 1000)),
        dns: vec!["203.0.113.53".parse().map_err(|_| "dns")?],
        subnets: vec![ts_any(false), ts_any(true)],
        mobike: true,
        require_cookie: false,
        retransmit: Retransmit::default(),
        fragment_size: 1280,
        unix_time: None,
    })
}

#[inline(never)]
pub fn run(args: &Args) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    match rt.block_on(demo(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: demo: {message}");
    ExitCode::FAILURE
}

/// Prints one timeline line: milliseconds since the start, then the text.
struct Timeline(Instant);

impl Timeline {
    fn line(&self, text: impl std::fmt::Display) {
        println!(
            "{:>9.3} ms  {text}",
            self.0.elapsed().as_secs_f64() * 1000.0
        );
    }
}

#[allow(clippy::disallowed_methods)] // the harness owns the clock
fn start_clock() -> Instant {
    Instant::now()
}

async fn next_within<T>(
    what: &str,
    fut: impl std::future::Future<Output = Option<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP_LIMIT, fut).await {
        Ok(Some(x)) => Ok(x),
        Ok(None) => Err(format!("{what}: ended early")),
        Err(_) => Err(format!("{what}: nothing within {STEP_LIMIT:?}")),
    }
}

/// Both ends of the demo and what it measured so far.
struct Demo {
    t: Timeline,
    /// The responder (None only while it restarts).
    server: Option<Server>,
    /// The server's app: answers probes; its counts come back when the server stops.
    echo: tokio::task::JoinHandle<EchoStats>,
    tunnel: ClientTunnel,
    /// The client's app end of its packet path.
    app: AppPackets,
    info: Option<ConnectedInfo>,
    handshake: Option<Duration>,
    traffic: Vec<(&'static str, Report)>,
    outages: Vec<disrupt::Outage>,
    /// Probes answered by echoes of responders that have since restarted.
    answered_earlier: u64,
}

async fn demo(args: &Args) -> Result<(), String> {
    println!("roam demo: Roam's responder and a Roam client on loopback, real UDP, pre-shared key");
    let mut d = Demo::start(args).await?;
    d.handshake().await?;
    let plan = Plan {
        probes: vec![(Kind::Icmp, 20), (Kind::Udp, 10), (Kind::Icmp6, 10)],
        pad: 56,
        timeout: Duration::from_secs(1),
    };
    d.traffic("traffic", &plan).await?;
    d.switch_path().await?;
    d.traffic("after the switch", &plan).await?;
    d.restart_server().await?;
    d.traffic("after the restart", &plan).await?;
    d.close().await
}

impl Demo {
    /// Starts the responder (with its echo) and the client, which connects at once.
    async fn start(args: &Args) -> Result<Self, String> {
        let responder = Responder::new(responder_config()?, Box::new(OsRng));
        let bind: SocketAddr = "127.0.0.1:0".parse().map_err(|_| "address")?;
        let (server_packets, server_app) = ChannelPackets::new(PACKET_QUEUE);
        let server = Server::start_with_packets(responder, bind, server_packets)
            .await
            .map_err(|e| format!("responder: {e}"))?;
        let echo = roam_runtime::echo::echo(server_app, args.lose);
        let server_addr = server.local_addr();
        let session = Session::new(client_config(args.ike.as_deref()), Box::new(OsRng))
            .map_err(|e| e.to_string())?;
        let t = Timeline(start_clock());
        t.line(format!(
            "responder listening on {server_addr} (NAT-T framing, as on port 4500)"
        ));
        let (client_packets, app) = ChannelPackets::new(PACKET_QUEUE);
        let tunnel = ClientTunnel::start_with_packets(session, server_addr, client_packets)
            .await
            .map_err(|e| e.to_string())?;
        t.line(format!("client connecting from {}", tunnel.local_addr()));
        Ok(Self {
            t,
            server: Some(server),
            echo,
            tunnel,
            app,
            info: None,
            handshake: None,
            traffic: Vec::new(),
            outages: Vec::new(),
            answered_earlier: 0,
        })
    }

    /// Waits until the client is connected and the responder has seen it.
    async fn handshake(&mut self) -> Result<(), String> {
        let t = &self.t;
        let info = loop {
            match next_within("client", self.tunnel.next_event()).await? {
                Event::StateChanged(State::IkeSaEstablished) => {
                    t.line("IKE SA established (IKE_SA_INIT + IKE_AUTH)")
                }
                Event::StateChanged(_)
                | Event::Roamed { .. }
                | Event::Rekeyed(_)
                | Event::Reconnecting { .. } => {}
                Event::Connected(info) => {
                    self.handshake = Some(t.0.elapsed());
                    t.line("CHILD SA established: connected, keys on both ends");
                    println!(
                        "             IKE  {}  SPIs {:016x}_{:016x}",
                        info.ike_proposal, info.spi_i, info.spi_r
                    );
                    println!(
                        "             ESP  {}  SPIs in {:08x} out {:08x}",
                        info.esp_proposal, info.esp_spi_in, info.esp_spi_out
                    );
                    println!(
                        "             virtual IPs {}  DNS {}",
                        join(&info.virtual_ips),
                        join(&info.dns)
                    );
                    let ts = |v: &[roam_proto::wire::TrafficSelector]| {
                        v.iter()
                            .map(roam_proto::ike::child::ts_to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    println!(
                        "             selectors {} <-> {}",
                        ts(&info.local_ts),
                        ts(&info.remote_ts)
                    );
                    break info;
                }
                Event::Disconnected(reason) => {
                    return Err(format!("client disconnected: {reason}"))
                }
            }
        };
        let server = self.server.as_mut().ok_or("the responder is not running")?;
        let ev = next_within("responder", server.next_server_event()).await?;
        if let ResponderEvent::Established {
            client_id, peer, ..
        } = ev.event
        {
            let esp = ev.esp_proposal.unwrap_or_default();
            t.line(format!(
                "responder sees {client_id} from {peer} (ESP {esp})"
            ));
        }
        self.info = Some(info);
        Ok(())
    }

    /// Sends the plan's probes through the tunnel and reports what came back.
    async fn traffic(&mut self, label: &'static str, plan: &Plan) -> Result<(), String> {
        let vips = self
            .info
            .as_ref()
            .map(|i| i.virtual_ips.clone())
            .unwrap_or_default();
        let target4 = TARGET4.parse().map_err(|_| "target")?;
        let target6 = TARGET6.parse().map_err(|_| "target")?;
        self.t.line(format!(
            "{label}: probes through ESP to the responder's echo at {TARGET4} and {TARGET6}"
        ));
        let started = self.t.0.elapsed();
        let report = traffic::exchange(&mut self.app, &vips, target4, target6, plan).await?;
        self.t.line(format!(
            "{label}: {} probes ({}) done in {:.1} ms",
            report.sent,
            report.what(),
            (self.t.0.elapsed() - started).as_secs_f64() * 1000.0
        ));
        self.t.line(format!("{label}: {}", report.summary()));
        self.traffic.push((label, report));
        Ok(())
    }

    /// Closes the client (DELETE), stops the responder, prints the summary; fails on loss.
    async fn close(mut self) -> Result<(), String> {
        let t = &self.t;
        let mut server = self.server.take().ok_or("the responder is not running")?;
        self.tunnel.close();
        t.line("client closing: DELETE of the IKE SA");
        loop {
            if let Event::Disconnected(reason) =
                next_within("close", self.tunnel.next_event()).await?
            {
                t.line(format!("client disconnected: {reason}"));
                break;
            }
        }
        // The responder may first report what came before (the reconnect's new IKE SA).
        loop {
            if let ResponderEvent::Closed { reason, .. } =
                next_within("responder", server.next_event()).await?
            {
                t.line(format!("responder: IKE SA {reason}"));
                break;
            }
        }
        self.tunnel.finish().await.map_err(|e| e.to_string())?;
        let esp = server.data_stats();
        server.stop().await.map_err(|e| e.to_string())?;
        let echo = self.echo.await.map_err(|e| e.to_string())?;
        if let Some(h) = self.handshake {
            println!(
                "handshake: {:.1} ms (IKE_SA_INIT and IKE_AUTH on loopback, both ends in this process)",
                h.as_secs_f64() * 1000.0
            );
        }
        let mut lost = 0;
        let mut sent = 0;
        for (label, r) in &self.traffic {
            println!("{label}: {}", r.summary());
            lost += r.lost;
            sent += r.sent;
        }
        println!(
            "responder ESP: in {} packets {} bytes, out {} packets {} bytes, dropped {} in / {} out; echo answered {}",
            esp.packets_in,
            esp.bytes_in,
            esp.packets_out,
            esp.bytes_out,
            esp.dropped_inbound(),
            esp.dropped_outbound(),
            echo.answered + self.answered_earlier
        );
        for o in &self.outages {
            println!(
                "{}: outage {:.1} ms ({} probes of one every 5 ms unanswered)",
                o.label,
                o.outage.as_secs_f64() * 1000.0,
                o.probes_lost
            );
        }
        if lost > 0 {
            return Err(format!("lost {lost} of {sent} packets on loopback"));
        }
        Ok(())
    }
}

fn join(v: &[std::net::IpAddr]) -> String {
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
