//! `roam connect` with its TUN, against roam-proto's own responder and ESP (a small server in
//! this file that answers pings from the tunnel):
//! - a TUN that cannot be created closes the session, then exits 1 with one `error:` line;
//! - as root, in two network namespaces made here: the TUN's addresses, MTU and routes (full
//!   tunnel in halves, the server's host route), a ping through the tunnel, the DNS file,
//!   nothing left behind after SIGTERM, and a run after a killed one. Without root it prints `SKIPPED (needs root): <name>`
//!   (a failure when ROAM_REQUIRE_LAB=1).

// The workspace's clippy.toml keeps clocks and sockets out of roam-proto; a test of the
// binary needs both.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use roam_proto::config::Retransmit;
use roam_proto::crypto::proposal::{default_esp, default_ike, ProposalSpec};
use roam_proto::crypto::Secret;
use roam_proto::esp::EspSa;
use roam_proto::identity::Identity;
use roam_proto::ike::child::ts_any;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig, ResponderEvent};
use roam_proto::wire::natt::{classify, NattDatagram, NON_ESP_MARKER};
use roam_runtime::rng::OsRng;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const PSK: &str = "tun-test-psk-not-a-secret";
const SERVER_ID: &str = "tun-test-server.example.org";
const CLIENT_ID: &str = "tun-test-client@example.org";

fn roam() -> Command {
    Command::new(env!("CARGO_BIN_EXE_roam"))
}

fn responder_config() -> ResponderConfig {
    let ike = default_ike()
        .iter()
        .map(|s| ProposalSpec::parse_ike(s, &[]).unwrap())
        .collect();
    let esp = default_esp()
        .iter()
        .map(|s| ProposalSpec::parse_esp(s, &[]).unwrap())
        .collect();
    ResponderConfig {
        id: Identity::parse(SERVER_ID).unwrap(),
        auth: ResponderAuth::Psk(Secret::from_slice(PSK.as_bytes())),
        ca: Vec::new(),
        eap_users: Vec::new(),
        ike,
        esp,
        pool4: Some(("198.18.0.1".parse().unwrap(), 254)),
        pool6: Some(("2001:db8:ffff::1".parse().unwrap(), 1000)),
        dns: vec!["203.0.113.53".parse().unwrap()],
        subnets: vec![ts_any(false), ts_any(true)],
        mobike: false,
        require_cookie: false,
        retransmit: Retransmit::default(),
        fragment_size: 1280,
        unix_time: None,
    }
}

fn profile(dir: &Path, server: SocketAddr, mtu: u16) -> PathBuf {
    let path = dir.join("roam.toml");
    let text = format!(
        "[server]\naddress = \"{}\"\nport = {}\nid = \"{SERVER_ID}\"\n\
         [auth]\nmethod = \"psk\"\nlocal_id = \"{CLIENT_ID}\"\npsk = \"{PSK}\"\n\
         [tunnel]\nmtu = {mtu}\n",
        server.ip(),
        server.port()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// What the test server saw.
#[derive(Debug, Default)]
struct ServerLog {
    established: u32,
    closed: u32,
    /// Echo requests that came out of the tunnel (and were answered into it).
    pings: u32,
}

/// Roam's responder with an ESP data plane that answers IPv4 pings, on `bind`, until `stop`.
async fn serve(
    bind: SocketAddr,
    ready: std_mpsc::Sender<SocketAddr>,
    mut stop: oneshot::Receiver<()>,
) -> ServerLog {
    let socket = UdpSocket::bind(bind).await.unwrap();
    let local = socket.local_addr().unwrap();
    ready.send(local).unwrap();
    let mut responder = Responder::new(responder_config(), Box::new(OsRng));
    let mut esp: Option<EspSa> = None;
    let mut log = ServerLog::default();
    let mut buf = vec![0u8; 65_535];
    let mut out = vec![0u8; 65_535];
    loop {
        let (len, remote) = tokio::select! {
            r = socket.recv_from(&mut buf) => r.unwrap(),
            _ = &mut stop => return log,
        };
        let data = &mut buf[..len];
        match classify(data) {
            NattDatagram::Ike(ike) => {
                responder.handle_message(Instant::now(), local, remote, ike);
            }
            NattDatagram::Esp(_) => {
                if let Some(sa) = esp.as_mut() {
                    if let Ok(range) = sa.decapsulate(data) {
                        if let Some(reply) = echo_reply(&data[range]) {
                            log.pings += 1;
                            let n = sa.encapsulate(&reply, &mut out).unwrap();
                            socket.send_to(&out[..n], remote).await.unwrap();
                        }
                    }
                }
            }
            _ => {}
        }
        while let Some(o) = responder.poll_outgoing() {
            let mut framed = NON_ESP_MARKER.to_vec();
            framed.extend_from_slice(&o.message);
            socket.send_to(&framed, o.remote).await.unwrap();
        }
        while let Some(e) = responder.poll_event() {
            match e {
                ResponderEvent::Established { spi_r, .. } => {
                    log.established += 1;
                    let child = responder.child(spi_r).unwrap();
                    esp = Some(EspSa::new(child, &mut OsRng).unwrap());
                }
                ResponderEvent::Closed { .. } => log.closed += 1,
            }
        }
    }
}

/// The echo reply to an IPv4 ICMP echo request.
fn echo_reply(packet: &[u8]) -> Option<Vec<u8>> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if packet.first()? >> 4 != 4 || *packet.get(9)? != 1 || *packet.get(ihl)? != 8 {
        return None;
    }
    let mut reply = packet.to_vec();
    let src: [u8; 4] = packet[12..16].try_into().ok()?;
    let dst: [u8; 4] = packet[16..20].try_into().ok()?;
    // Swapping the addresses keeps the header checksum.
    reply[12..16].copy_from_slice(&dst);
    reply[16..20].copy_from_slice(&src);
    reply[ihl] = 0; // echo reply
    reply[ihl + 2] = 0;
    reply[ihl + 3] = 0;
    let sum = checksum(&reply[ihl..]);
    reply[ihl + 2..ihl + 4].copy_from_slice(&sum.to_be_bytes());
    Some(reply)
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Runs [`serve`] on its own thread, inside network namespace `netns` when given.
struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<ServerLog>>,
}

impl TestServer {
    fn start(netns: Option<&str>, bind: SocketAddr) -> Self {
        let (ready, ready_rx) = std_mpsc::channel();
        let (stop, stop_rx) = oneshot::channel();
        let netns = netns.map(str::to_string);
        let thread = std::thread::spawn(move || {
            if let Some(ns) = netns {
                // Only this thread moves: its sockets live in the namespace.
                let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
                nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            }
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(serve(bind, ready, stop_rx))
        });
        let addr = ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> ServerLog {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Reads lines from `roam connect`'s stdout until one starts with `prefix` (or it ends).
fn read_until(stdout: &mut BufReader<ChildStdout>, prefix: &str, seen: &mut Vec<String>) {
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("roam ended before a {prefix:?} line: {seen:?}");
        }
        let line = line.trim_end().to_string();
        seen.push(line.clone());
        if line.starts_with(prefix) {
            return;
        }
    }
}

/// A `roam` child killed (by its PID) if the test ends early, so it never outlives the test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(started.elapsed() < limit, "roam did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn a_tun_that_cannot_be_made_closes_the_session_and_exits_1() {
    let server = TestServer::start(None, "127.0.0.1:0".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = profile(dir.path(), server.addr, 1400);
    // Not root: no TUN at all. Root: "lo" exists and is not a TUN.
    let out = roam()
        .args(["connect", "--tun-name", "lo", "--profile"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("connected ")),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(|l| untimed(l)),
        Some("disconnected reason=closed"),
        "{lines:?}"
    );
    assert!(
        stderr.starts_with("error: cannot create TUN device lo: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let log = server.stop();
    assert_eq!(log.established, 1);
    assert_eq!(log.closed, 1, "the IKE SA was deleted before exiting");
}

#[test]
fn bad_tun_options_are_usage_errors() {
    let out = roam()
        .args(["connect", "--profile", "x", "--no-tun", "--tun-name", "t0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = roam()
        .args([
            "connect",
            "--profile",
            "x",
            "--tun-name",
            "much-too-long-name0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tun-name"));
    let out = roam()
        .args(["connect", "--profile", "x", "--tun-name", "a/b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Two namespaces of this test (client and server) joined by a veth pair; deleted on drop.
struct Netns {
    client: String,
    server: String,
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Netns {
    fn new() -> Self {
        let id = std::process::id();
        let ns = Self {
            client: format!("roamt-c-{id}"),
            server: format!("roamt-s-{id}"),
        };
        ip(&["netns", "add", &ns.client]);
        ip(&["netns", "add", &ns.server]);
        ip(&[
            "-n", &ns.client, "link", "add", "tc0", "type", "veth", "peer", "name", "ts0", "netns",
            &ns.server,
        ]);
        ip(&[
            "-n",
            &ns.client,
            "addr",
            "add",
            "198.51.100.2/24",
            "dev",
            "tc0",
        ]);
        ip(&[
            "-n",
            &ns.server,
            "addr",
            "add",
            "198.51.100.1/24",
            "dev",
            "ts0",
        ]);
        for (n, dev) in [(&ns.client, "tc0"), (&ns.server, "ts0")] {
            ip(&["-n", n, "link", "set", "lo", "up"]);
            ip(&["-n", n, "link", "set", dev, "up"]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Without root: skip loudly (or fail when the lab is required).
fn needs_root(name: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("ROAM_REQUIRE_LAB").as_deref() != Ok("1"),
        "{name} needs root and ROAM_REQUIRE_LAB=1"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED (needs root): {name}");
    false
}

fn json_has(text: &str, needle: &str) -> bool {
    text.replace([' ', '\n'], "").contains(needle)
}

#[test]
fn tun_in_a_namespace_carries_pings_and_leaves_nothing_behind() {
    if !needs_root("tun_in_a_namespace_carries_pings_and_leaves_nothing_behind") {
        return;
    }
    let ns = Netns::new();
    let server = TestServer::start(Some(&ns.server), "198.51.100.1:4500".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = profile(dir.path(), server.addr, 1380);
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();

    // A run killed outright leaves the server's host route behind (the TUN dies with it)...
    let mut killed = Running(
        Command::new("ip")
            .args(["netns", "exec", &ns.client, env!("CARGO_BIN_EXE_roam")])
            .args(["connect", "--tun-name", "rt0", "--profile"])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut killed_out = BufReader::new(killed.0.stdout.take().unwrap());
    read_until(&mut killed_out, "tun ", &mut Vec::new());
    signal(&killed.0, "-KILL");
    killed.0.wait().unwrap();
    let routes = ip(&["-n", &ns.client, "-j", "route", "show"]);
    assert!(json_has(&routes, "\"dst\":\"198.51.100.1\""), "{routes}");
    assert!(!routes.contains("0.0.0.0/1"), "{routes}");

    // ...which does not stop the next run.
    let mut child = Running(
        Command::new("ip")
            .args(["netns", "exec", &ns.client, env!("CARGO_BIN_EXE_roam")])
            .args(["connect", "--tun-name", "rt0", "--resolv-conf"])
            .arg(&resolv)
            .arg("--profile")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut seen = Vec::new();
    read_until(&mut stdout, "connected ", &mut seen);
    // The killed run still holds the first lease: read this run's.
    let vip = seen
        .last()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .strip_prefix("vip=")
        .unwrap()
        .to_string();
    let (vip4, vip6) = vip.split_once(',').unwrap();
    assert!(
        vip4.starts_with("198.18.0.") && vip6.starts_with("2001:db8:ffff::"),
        "{vip}"
    );
    read_until(&mut stdout, "tun ", &mut seen);
    assert_eq!(
        seen.last().unwrap(),
        &format!(
            "tun name=rt0 mtu=1380 addresses={vip4}/32,{vip6}/128 \
             routes=0.0.0.0/1,128.0.0.0/1,::/1,8000::/1"
        )
    );
    read_until(&mut stdout, "dns ", &mut seen);
    assert_eq!(
        seen.last().unwrap(),
        &format!("dns file={}", resolv.display())
    );
    assert_eq!(
        std::fs::read_to_string(&resolv).unwrap(),
        "# written by roam for the VPN session\nnameserver 203.0.113.53\n"
    );

    let addr = ip(&["-n", &ns.client, "-j", "addr", "show", "dev", "rt0"]);
    assert!(json_has(&addr, "\"mtu\":1380"), "{addr}");
    assert!(
        json_has(&addr, &format!("\"local\":\"{vip4}\",\"prefixlen\":32")),
        "{addr}"
    );
    assert!(
        json_has(&addr, &format!("\"local\":\"{vip6}\",\"prefixlen\":128")),
        "{addr}"
    );
    let routes = ip(&["-n", &ns.client, "-j", "route", "show"]);
    for dst in ["0.0.0.0/1", "128.0.0.0/1"] {
        assert!(
            json_has(&routes, &format!("\"dst\":\"{dst}\",\"dev\":\"rt0\"")),
            "{routes}"
        );
    }
    assert!(
        json_has(&routes, "\"dst\":\"198.51.100.1\",\"dev\":\"tc0\""),
        "the server's host route stays outside: {routes}"
    );
    let routes6 = ip(&["-n", &ns.client, "-j", "-6", "route", "show"]);
    for dst in ["::/1", "8000::/1"] {
        assert!(
            json_has(&routes6, &format!("\"dst\":\"{dst}\",\"dev\":\"rt0\"")),
            "{routes6}"
        );
    }

    // A ping from the client's namespace crosses the tunnel, is answered by the server's ESP.
    let ping = Command::new("ip")
        .args([
            "netns", "exec", &ns.client, "ping", "-c", "3", "-i", "0.2", "-W", "2",
        ])
        .arg("203.0.113.2")
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    signal(&child.0, "-TERM");
    assert_eq!(wait_exit(&mut child.0, Duration::from_secs(10)), Some(0));
    let rest: Vec<String> = stdout.lines().map(Result::unwrap).collect();
    assert_eq!(
        rest.last().map(|l| untimed(l)),
        Some("disconnected reason=closed"),
        "{rest:?}"
    );

    let links = ip(&["-n", &ns.client, "-j", "link", "show"]);
    assert!(!links.contains("rt0"), "the TUN is gone: {links}");
    let routes = ip(&["-n", &ns.client, "-j", "route", "show"]);
    assert!(
        !routes.contains("198.51.100.1\""),
        "host route gone: {routes}"
    );
    assert!(!routes.contains("0.0.0.0/1"), "{routes}");
    assert_eq!(
        std::fs::read_to_string(&resolv).unwrap(),
        "nameserver 192.0.2.53\n",
        "the DNS file is put back"
    );
    let log = server.stop();
    assert_eq!(log.established, 2, "the killed run and the real one");
    assert!(log.pings >= 3, "{log:?}");
    assert_eq!(log.closed, 1);
}

/// An event line without its ` at_ms=…` time.
fn untimed(line: &str) -> &str {
    line.rsplit_once(" at_ms=").map_or(line, |(l, _)| l)
}
