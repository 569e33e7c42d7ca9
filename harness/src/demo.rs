//! `roam demo`: the main job on an embedded default. Roam's own responder runs in this process on
//! loopback, and a client session connects to it through real UDP sockets with the same driver
//! `roam connect` uses. It prints a short timeline and exits 0. Needs no root and no server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use roam_proto::config::{ClientAuth, ClientConfig, Retransmit};
use roam_proto::crypto::proposal::{default_esp, default_ike, ProposalSpec};
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::child::ts_any;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig, ResponderEvent};
use roam_proto::session::{Event, Session, State};
use roam_runtime::driver::Tunnel;
use roam_runtime::rng::OsRng;
use roam_runtime::serve::Server;

/// The demo's shared key: a fixed, public value that protects nothing outside this process.
const DEMO_PSK: &[u8] = b"roam-demo-psk-not-a-secret";
/// How long any step of the demo may take.
const STEP_LIMIT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The IKE proposal the client offers (strongSwan syntax); default: Roam's strong defaults.
    #[arg(long)]
    ike: Option<String>,
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

async fn demo(args: &Args) -> Result<(), String> {
    println!("roam demo: Roam's responder and a Roam client on loopback, real UDP, pre-shared key");
    let responder = Responder::new(responder_config()?, Box::new(OsRng));
    let bind: SocketAddr = "127.0.0.1:0".parse().map_err(|_| "address")?;
    let mut server = Server::start(responder, bind)
        .await
        .map_err(|e| format!("responder: {e}"))?;
    let server_addr = server.local_addr();
    let session = Session::new(client_config(args.ike.as_deref()), Box::new(OsRng))
        .map_err(|e| e.to_string())?;
    let t = Timeline(start_clock());
    t.line(format!(
        "responder listening on {server_addr} (NAT-T framing, as on port 4500)"
    ));
    let mut tunnel = Tunnel::start(session, server_addr)
        .await
        .map_err(|e| e.to_string())?;
    t.line(format!("client connecting from {}", tunnel.local_addr()));
    let handshake = loop {
        match next_within("client", tunnel.next_event()).await? {
            Event::StateChanged(State::IkeSaEstablished) => {
                t.line("IKE SA established (IKE_SA_INIT + IKE_AUTH)")
            }
            Event::StateChanged(_) => {}
            Event::Connected(info) => {
                let elapsed = t.0.elapsed();
                t.line("CHILD SA established: connected, keys on both ends");
                println!(
                    "             IKE  {}  SPIs {:016x}_{:016x}",
                    info.ike_proposal, info.spi_i, info.spi_r
                );
                println!(
                    "             ESP  {}  SPIs in {:08x} out {:08x}",
                    info.esp_proposal, info.esp_spi_in, info.esp_spi_out
                );
                let vips: Vec<String> = info.virtual_ips.iter().map(|a| a.to_string()).collect();
                let dns: Vec<String> = info.dns.iter().map(|a| a.to_string()).collect();
                println!(
                    "             virtual IPs {}  DNS {}",
                    vips.join(", "),
                    dns.join(", ")
                );
                break elapsed;
            }
            Event::Disconnected(reason) => return Err(format!("client disconnected: {reason}")),
        }
    };
    if let ResponderEvent::Established {
        client_id, peer, ..
    } = next_within("responder", server.next_event()).await?
    {
        t.line(format!("responder sees {client_id} from {peer}"));
    }
    tunnel.close();
    t.line("client closing: DELETE of the IKE SA");
    loop {
        if let Event::Disconnected(reason) = next_within("close", tunnel.next_event()).await? {
            t.line(format!("client disconnected: {reason}"));
            break;
        }
    }
    if let ResponderEvent::Closed { reason, .. } =
        next_within("responder", server.next_event()).await?
    {
        t.line(format!("responder: IKE SA {reason}"));
    }
    tunnel.finish().await.map_err(|e| e.to_string())?;
    server.stop().await.map_err(|e| e.to_string())?;
    println!(
        "handshake: {:.1} ms (IKE_SA_INIT and IKE_AUTH on loopback, both ends in this process)",
        handshake.as_secs_f64() * 1000.0
    );
    println!("traffic through ESP and a TUN device come with the data plane; see README.md");
    Ok(())
}
