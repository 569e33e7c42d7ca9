//! Interop tests of traffic through the tunnel: `roam connect` with its TUN (the default)
//! against the lab's strongSwan responder and against `roam serve`, in the lab namespaces of
//! `scripts/lab.sh`.
//!
//! Every case connects with `--resolv-conf <temp dir>/resolv.conf`, then checks the `tun ...`
//! line against the kernel (the device, its MTU and addresses, the full-tunnel routes, the
//! route to the LAN through the TUN and to the server outside it), the DNS file, pings the
//! LAN host 203.0.113.2 and 2001:db8:203::2, moves 50 MiB each way with iperf3 and checks the
//! byte counts, then closes with SIGTERM: exit 0, no SA left on the server, no TUN and the
//! client namespace's routes and rules exactly as before.
//!
//! They run only when the binary under test has the TUN (`roam connect --help` lists
//! `--no-tun`) and, for the roam-to-roam case, `roam serve`; otherwise they print
//! `SKIPPED (<binary> lacks ...): <name>` (a failure with ROAM_REQUIRE_LAB=1, like a missing
//! lab). Root, the lab and the skip rules are those of lab_interop.rs.

// A real-time test driver: bounded waits need the wall clock (the sans-IO rule is for core/proto).
#![allow(clippy::disallowed_methods)]

#[macro_use]
mod lab_common;

use std::collections::{BTreeSet, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use lab_common::*;

/// From `connected` to the `tun` / `dns` lines.
const TUN_LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pings are retried this long (IPv6 addresses may still be settling).
const PING_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound of one iperf3 transfer (timeout(1)).
const IPERF_LIMIT_S: &str = "180";
/// `iperf3 -n 50M` means 50 MiB.
const IPERF_SIZE: &str = "50M";
const IPERF_BYTES: u64 = 50 * 1024 * 1024;
/// The one-shot iperf3 server in the client namespace (uploads).
const CLIENT_IPERF_PORT: &str = "5202";
/// The contract's default TUN name.
const DEFAULT_TUN: &str = "roam0";
/// The contract's default MTU (lab profiles do not set one).
const MTU: &str = "1400";
/// A device that goes away when roam closes its descriptor may take a moment.
const LINK_GONE_TIMEOUT: Duration = Duration::from_secs(3);
/// `roam serve`: its `listening` / `tun` lines, and its per-client lines.
const SERVE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- small tools --

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// `ip ARGS...`: (success, stdout + stderr).
fn ip(args: &[&str]) -> (bool, String) {
    let out = run(Command::new("ip").args(args));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn link_exists(ns: &str, dev: &str) -> bool {
    ip(&["-n", ns, "link", "show", "dev", dev]).0
}

fn wait_link_gone(ns: &str, dev: &str) -> bool {
    let end = Instant::now() + LINK_GONE_TIMEOUT;
    while link_exists(ns, dev) {
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Every route of every table and every policy rule, IPv4 and IPv6, one string each.
fn routing_state(ns: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let queries: [(&str, &[&str]); 4] = [
        ("v4 route", &["-4", "route", "show", "table", "all"]),
        ("v6 route", &["-6", "route", "show", "table", "all"]),
        ("v4 rule", &["-4", "rule", "show"]),
        ("v6 rule", &["-6", "rule", "show"]),
    ];
    for (tag, args) in queries {
        let mut full = vec!["-n", ns];
        full.extend_from_slice(args);
        let (ok, text) = ip(&full);
        assert!(ok, "ip {full:?} failed: {text}");
        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            all.insert(format!("{tag}: {line}"));
        }
    }
    all
}

/// Asserts that the routing state of `ns` is `before` again, except lines `tolerate` accepts.
fn assert_routing_restored(
    ns: &str,
    before: &BTreeSet<String>,
    tolerate: impl Fn(&str) -> bool,
    ctx: &str,
) {
    let after = routing_state(ns);
    let added: Vec<&String> = after.difference(before).filter(|l| !tolerate(l)).collect();
    let removed: Vec<&String> = before.difference(&after).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "routes/rules of {ns} differ from before the connection\n  left behind: {added:#?}\n  \
         removed: {removed:#?}\n{ctx}"
    );
}

/// `roam` processes in `ns` (the lab is shared: someone may be testing by hand).
fn roam_processes(ns: &str) -> Vec<String> {
    let comm: String = Path::new(&roam_bin())
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_else(|| "roam".into());
    let (_, pids) = ip(&["netns", "pids", ns]);
    pids.split_whitespace()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == comm || c.trim() == "roam")
        })
        .map(|p| format!("pid {p}"))
        .collect()
}

/// Before a tunnel case: nobody else's roam in the client namespace, no TUN of that name,
/// the LAN's iperf3 server up. Returns the routing state to restore.
fn preflight(lab: &Lab, tun: &str) -> BTreeSet<String> {
    let ns = lab.get("CLIENT_NS");
    let others = roam_processes(&ns);
    assert!(
        others.is_empty(),
        "another roam runs in {ns} ({others:?}): its TUN and routes would collide with this \
         test; stop it first"
    );
    assert!(
        !link_exists(&ns, tun),
        "{ns} already has a link {tun} (left over from an earlier run?): {}",
        ip(&["-n", &ns, "-d", "link", "show", "dev", tun]).1
    );
    lab_ok(&["iperf"], &[], 30);
    routing_state(&ns)
}

/// A helper process killed on drop (the client-side iperf3 server).
struct Helper(Child);
impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------- iperf3 --

/// Totals of an `iperf3 -J` report: bytes of `end.sum_sent` and `end.sum_received`, and the
/// receiver's rate. iperf3's JSON is fixed in shape, so a key scan is enough here.
#[derive(Debug, PartialEq)]
struct IperfTotals {
    sent: u64,
    received: u64,
    bits_per_second: f64,
}

fn number_after<'a>(json: &'a str, from: usize, key: &str) -> Option<&'a str> {
    let rest = json.get(from..)?;
    let at = rest.find(&format!("\"{key}\":"))? + key.len() + 3;
    let v = rest.get(at..)?.trim_start();
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || ".eE+-".contains(c)))
        .unwrap_or(v.len());
    v.get(..end)
}

fn iperf_totals(json: &str) -> Result<IperfTotals, String> {
    if let Some(at) = json.find("\"error\":") {
        let msg: String = json[at..].chars().take(200).collect();
        return Err(format!("iperf3 reports {msg}"));
    }
    let sum = |name: &str| -> Result<(u64, f64), String> {
        let at = json
            .find(&format!("\"{name}\":"))
            .ok_or_else(|| format!("no {name} in the iperf3 report"))?;
        let bytes = number_after(json, at, "bytes")
            .and_then(|b| b.parse::<u64>().ok())
            .ok_or_else(|| format!("no {name}.bytes"))?;
        let bps = number_after(json, at, "bits_per_second")
            .and_then(|b| b.parse::<f64>().ok())
            .ok_or_else(|| format!("no {name}.bits_per_second"))?;
        Ok((bytes, bps))
    };
    let (sent, _) = sum("sum_sent")?;
    let (received, bits_per_second) = sum("sum_received")?;
    Ok(IperfTotals {
        sent,
        received,
        bits_per_second,
    })
}

/// Runs an iperf3 client in `ns` with `-R -n 50M -J` and checks the totals. Reverse mode,
/// because there the receiving side (the client) ends the test only once it has read the
/// requested size; in forward mode the sender ends it when its last write returns, while data
/// is still in flight, and the receiver's count falls short of the request.
fn iperf_checked(ns: &str, server: &str, port: &str, what: &str, ctx: &dyn Fn() -> String) {
    // An iperf3 server still finishing an earlier test answers "busy": wait for it (bounded).
    let mut out = iperf_once(ns, server, port);
    for _ in 0..BUSY_RETRIES {
        if !String::from_utf8_lossy(&out.stdout).contains("the server is busy") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(3));
        out = iperf_once(ns, server, port);
    }
    let json = String::from_utf8_lossy(&out.stdout);
    check_iperf(&out, &json, what, ctx);
}

/// How often a busy iperf3 server is asked again (3 s apart: beyond its 30 s idle timeout).
const BUSY_RETRIES: u32 = 12;

fn iperf_once(ns: &str, server: &str, port: &str) -> std::process::Output {
    run(Command::new("timeout").args([
        IPERF_LIMIT_S,
        "ip",
        "netns",
        "exec",
        ns,
        "iperf3",
        "-c",
        server,
        "-p",
        port,
        "-R",
        "-n",
        IPERF_SIZE,
        "-J",
        "--connect-timeout",
        "5000",
        // a stalled tunnel fails here, not at the timeout(1) bound
        "--rcv-timeout",
        "15000",
    ]))
}

fn check_iperf(out: &std::process::Output, json: &str, what: &str, ctx: &dyn Fn() -> String) {
    let totals = match iperf_totals(json) {
        Ok(t) => t,
        Err(e) => panic!(
            "{what}: iperf3 failed ({}): {e}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            ctx()
        ),
    };
    // The receiver ends the test once it has the requested size, so it received at least
    // that; the sender may have queued a little more by then (sent >= received), which is
    // why the counts are not simply equal.
    assert!(
        totals.received >= IPERF_BYTES && totals.received <= totals.sent,
        "{what}: {} bytes received, {} sent, {IPERF_BYTES} requested\n{}",
        totals.received,
        totals.sent,
        ctx()
    );
    loud(&format!(
        "{what}: {} bytes received ({} sent), {:.0} Mbit/s",
        totals.received,
        totals.sent,
        totals.bits_per_second / 1e6
    ));
}

/// 50 MiB from the LAN host to the client (download), then 50 MiB from the client to the LAN
/// host (upload: a one-shot iperf3 server in the client namespace on our virtual IP, whose
/// client runs in the LAN namespace, so the receiving side is the one that ends the transfer).
fn iperf_both_ways(lab: &Lab, vip4: &str, ctx: &dyn Fn() -> String) {
    let c = lab.get("CLIENT_NS");
    let l = lab.get("LAN_NS");
    iperf_checked(
        &c,
        &lab.get("LAN_HOST"),
        "5201",
        "download LAN -> client",
        ctx,
    );

    let server = Command::new("ip")
        .args(["netns", "exec", &c, "iperf3", "-s", "-1", "-p"])
        .arg(CLIENT_IPERF_PORT)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn iperf3 -s in the client namespace");
    let _server = Helper(server);
    let filter = format!("sport = :{CLIENT_IPERF_PORT}");
    let end = Instant::now() + Duration::from_secs(5);
    while !ip(&["netns", "exec", &c, "ss", "-Hltn", &filter])
        .1
        .contains("LISTEN")
    {
        assert!(
            Instant::now() < end,
            "iperf3 server in {c} not listening\n{}",
            ctx()
        );
        thread::sleep(Duration::from_millis(100));
    }
    iperf_checked(&l, vip4, CLIENT_IPERF_PORT, "upload client -> LAN", ctx);
}

// ------------------------------------------------------------------- checks --

fn ping(ns: &str, addr: &str) -> bool {
    let end = Instant::now() + PING_TIMEOUT;
    loop {
        let ok =
            run(Command::new("ip").args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", addr]))
                .status
                .success();
        if ok || Instant::now() >= end {
            return ok;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn ping_lan(lab: &Lab, ctx: &dyn Fn() -> String) {
    let ns = lab.get("CLIENT_NS");
    for host in [lab.get("LAN_HOST"), lab.get("LAN_HOST6")] {
        assert!(
            ping(&ns, &host),
            "no ping reply from {host} through the tunnel within {PING_TIMEOUT:?}\n{}",
            ctx()
        );
    }
}

/// The virtual IPs of a `vip=a,b` field, split by family.
fn vips(f: &HashMap<String, String>) -> (Vec<String>, Vec<String>) {
    let all: Vec<String> = f
        .get("vip")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    all.into_iter()
        .filter(|a| a != "none")
        .partition(|a| !a.contains(':'))
}

/// The `tun ...` line and the kernel's view of it: the name asked for, MTU 1400, our
/// virtual IPs as /32 and /128 (line and device), the split full-tunnel routes, the LAN
/// routed into the TUN and the server not.
fn check_tun(lab: &Lab, roam: &mut Roam, f: &HashMap<String, String>, tun: &str, server: &str) {
    let ns = lab.get("CLIENT_NS");
    let line = match roam.line("tun ", TUN_LINE_TIMEOUT) {
        Ok(l) => l,
        Err(e) => panic!("{e}\n{}", roam.transcript()),
    };
    let t = fields(&line);
    let ctx = |extra: &str| format!("{line}\n{extra}\n{}", roam.transcript());
    assert_eq!(t.get("name").map(String::as_str), Some(tun), "{}", ctx(""));
    assert_eq!(t.get("mtu").map(String::as_str), Some(MTU), "{}", ctx(""));
    let list = |k: &str| -> Vec<String> {
        t.get(k)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (addresses, routes) = (list("addresses"), list("routes"));
    let (v4, v6) = vips(f);
    assert!(!v4.is_empty(), "no IPv4 virtual IP: {}", ctx(""));
    let (_, link) = ip(&["-n", &ns, "-o", "link", "show", "dev", tun]);
    assert!(
        link.contains(&format!("mtu {MTU} ")),
        "{}",
        ctx(&format!("link: {link}"))
    );
    let (_, addrs) = ip(&["-n", &ns, "-o", "addr", "show", "dev", tun]);
    for (a, len, fam) in v4
        .iter()
        .map(|a| (a, 32, "inet"))
        .chain(v6.iter().map(|a| (a, 128, "inet6")))
    {
        let want = format!("{a}/{len}");
        assert!(
            addresses.contains(&want),
            "tun line lacks {want}: {}",
            ctx("")
        );
        assert!(
            addrs.contains(&format!("{fam} {want} ")),
            "{tun} lacks {want}: {}",
            ctx(&addrs)
        );
    }
    // strongSwan (local_ts 0.0.0.0/0, ::/0) and the lab's roam serve both give a full tunnel
    let mut want_routes = vec!["0.0.0.0/1", "128.0.0.0/1"];
    if !v6.is_empty() {
        want_routes.extend(["::/1", "8000::/1"]);
    }
    for r in want_routes {
        assert!(
            routes.iter().any(|x| x == r),
            "tun line lacks route {r}: {}",
            ctx("")
        );
    }
    let mut gets = vec![(lab.get("LAN_HOST"), true), (server.to_string(), false)];
    if !v6.is_empty() {
        gets.push((lab.get("LAN_HOST6"), true));
    }
    for (dst, via_tun) in gets {
        let (ok, r) = ip(&["-n", &ns, "route", "get", &dst]);
        let through = r.contains(&format!("dev {tun} "));
        assert!(
            ok && through == via_tun,
            "route to {dst} should {}go through {tun}: {}",
            if via_tun { "" } else { "not " },
            ctx(&r)
        );
    }
}

/// The `dns file=PATH` line and the file: a nameserver line for the pushed 203.0.113.53.
fn check_dns(roam: &mut Roam, path: &Path) {
    let line = match roam.line("dns ", TUN_LINE_TIMEOUT) {
        Ok(l) => l,
        Err(e) => panic!("{e}\n{}", roam.transcript()),
    };
    assert_eq!(
        fields(&line).get("file").map(String::as_str),
        Some(path.to_string_lossy().as_ref()),
        "{line}\n{}",
        roam.transcript()
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}\n{}", path.display(), roam.transcript()));
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["nameserver", "203.0.113.53"]),
        "{} has no 'nameserver 203.0.113.53':\n{text}",
        path.display()
    );
}

/// `roam connect` with its TUN: `--resolv-conf PATH`, and `--tun-name` unless the default.
fn connect_tun(lab: &Lab, profile: &str, tun: &str, resolv: &Path) -> Roam {
    let resolv = resolv.to_string_lossy().into_owned();
    let mut args = vec!["connect", "--profile", profile, "--resolv-conf", &resolv];
    if tun != DEFAULT_TUN {
        args.extend(["--tun-name", tun]);
    }
    Roam::spawn(&lab.get("CLIENT_NS"), &args)
}

fn wait_connected(lab: &Lab, roam: &mut Roam, log_from: u64) -> String {
    match roam.wait_line("connected", CONNECT_TIMEOUT) {
        Ok(l) => l,
        Err(e) => panic!(
            "{e}\n{}\n--- server log:\n{}",
            roam.transcript(),
            lab.server_log_since(log_from)
        ),
    }
}

/// Waits until roam has dropped its start-up pages (2 s after the tunnel is up; its debug log
/// says how many), so that the traffic after it runs on code mapped again.
fn wait_trimmed(roam: &Roam, ctx: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = roam.stderr();
        if let Some(at) = log.find("start-up pages dropped: ") {
            let mappings = log[at..]
                .split_whitespace()
                .nth(7)
                .and_then(|n| n.parse::<u32>().ok());
            assert!(
                mappings.is_some_and(|n| n > 0),
                "the trim dropped no mapping:\n{}",
                ctx()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "roam did not drop its start-up pages within 15 s:\n{}",
            ctx()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Who answers: the lab's strongSwan, or a `roam serve` the case runs.
enum Server<'a> {
    StrongSwan,
    Roam(&'a mut Roam),
}

/// One full tunnel case; `server_addr` is the address the profile names.
fn tunnel_case(
    lab: &Lab,
    profile: &str,
    want: Expect<'_>,
    tun: &str,
    server_addr: &str,
    mut server: Server<'_>,
) {
    let ns = lab.get("CLIENT_NS");
    let before = preflight(lab, tun);
    if matches!(server, Server::StrongSwan) {
        lab.clear_identity(want.identity);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let resolv = dir.path().join("resolv.conf");
    let log_from = lab.server_log_len();
    let mut roam = connect_tun(lab, profile, tun, &resolv);

    let connected = wait_connected(lab, &mut roam, log_from);
    let f = check_connected(&connected, &want);
    check_tun(lab, &mut roam, &f, tun, server_addr);
    check_dns(&mut roam, &resolv);
    let (v4, _) = vips(&f);
    match &mut server {
        Server::StrongSwan => check_server_sa(lab, &want, &f, &roam),
        Server::Roam(serve) => {
            let line = serve
                .line(
                    &format!("client-connected id={} ", want.identity),
                    SERVE_TIMEOUT,
                )
                .unwrap_or_else(|e| panic!("roam serve: {e}\n{}", serve.transcript()));
            let s = fields(&line);
            let set = |v: Option<&String>| -> BTreeSet<String> {
                v.map(|v| v.split(',').map(str::to_string).collect())
                    .unwrap_or_default()
            };
            assert_eq!(
                set(s.get("vip")),
                set(f.get("vip")),
                "server and client disagree on the virtual IPs:\n{line}\n{connected}"
            );
            assert_eq!(
                s.get("esp"),
                f.get("esp"),
                "server and client disagree on ESP:\n{line}\n{connected}"
            );
        }
    }

    let ctx = || {
        format!(
            "{}\n--- routes:\n{}",
            roam.transcript(),
            ip(&["-n", &ns, "route"]).1
        )
    };
    wait_trimmed(&roam, &ctx);
    ping_lan(lab, &ctx);
    iperf_both_ways(lab, &v4[0], &ctx);

    close_cleanly(&mut roam);
    match &mut server {
        Server::StrongSwan => {
            let left = lab.wait_sas_gone(want.identity, SA_GONE_TIMEOUT);
            assert!(
                left.is_empty(),
                "the server still lists our IKE SA after roam closed: {left:#?}"
            );
        }
        Server::Roam(serve) => {
            if let Err(e) = serve.line(
                &format!("client-disconnected id={} ", want.identity),
                SERVE_TIMEOUT,
            ) {
                panic!(
                    "roam serve after the client closed: {e}\n{}",
                    serve.transcript()
                );
            }
        }
    }
    assert!(
        wait_link_gone(&ns, tun),
        "{tun} still exists after roam exited: {}",
        ip(&["-n", &ns, "-d", "link", "show", "dev", tun]).1
    );
    assert_routing_restored(&ns, &before, |_| false, &roam.transcript());
}

/// `lab.sh profile MODE --esp ESP [--server S] --out $LAB/profiles/tun-NAME.toml`.
fn tun_profile(lab: &Lab, mode: &str, esp: &str, server: Option<&str>, name: &str) -> String {
    let out = format!("{}/profiles/tun-{name}.toml", lab.get("DIR"));
    let mut opts = vec!["--esp", esp, "--out", &out];
    if let Some(s) = server {
        opts.extend(["--server", s]);
    }
    lab.profile(mode, &opts)
}

/// strongSwan, PSK, one ESP proposal.
fn psk_cipher_case(lab: &Lab, esp: &str) {
    let p = tun_profile(lab, "psk", esp, None, &format!("psk-{esp}"));
    let id = lab.get("PSK_ID");
    tunnel_case(
        lab,
        &p,
        Expect {
            identity: &id,
            conn: "rw-psk",
            esp: Some(esp),
            ..Default::default()
        },
        DEFAULT_TUN,
        &lab.get("SERVER_ADDR"),
        Server::StrongSwan,
    );
}

// ------------------------------------------------------- against strongSwan --

tun_case!(tunnel_psk_aes256gcm16, |lab| {
    psk_cipher_case(&lab, "aes256gcm16")
});
tun_case!(tunnel_psk_chacha20poly1305, |lab| {
    psk_cipher_case(&lab, "chacha20poly1305")
});
tun_case!(tunnel_psk_aes256_sha256, |lab| {
    psk_cipher_case(&lab, "aes256-sha256")
});

tun_case!(tunnel_eap_mschapv2_aes256gcm16, |lab| {
    let p = tun_profile(&lab, "eap", "aes256gcm16", None, "eap");
    let id = lab.get("EAP_USER");
    tunnel_case(
        &lab,
        &p,
        Expect {
            identity: &id,
            conn: "rw-eap",
            esp: Some("aes256gcm16"),
            ..Default::default()
        },
        DEFAULT_TUN,
        &lab.get("SERVER_ADDR"),
        Server::StrongSwan,
    );
});

tun_case!(tunnel_cert_rsa3072_aes256gcm16, |lab| {
    let p = tun_profile(&lab, "cert-rsa", "aes256gcm16", None, "cert-rsa");
    let id = lab.get("CLIENT_RSA_ID");
    tunnel_case(
        &lab,
        &p,
        Expect {
            identity: &id,
            conn: "rw-cert",
            esp: Some("aes256gcm16"),
            ..Default::default()
        },
        DEFAULT_TUN,
        &lab.get("SERVER_ADDR"),
        Server::StrongSwan,
    );
});

// through the NAT, with a TUN name of our own (--tun-name)
tun_case!(tunnel_psk_through_nat_named_tun, |lab| {
    let server = lab.get("SERVER_ADDR_NAT");
    let p = tun_profile(&lab, "psk", "aes256gcm16", Some(&server), "psk-nat");
    let id = lab.get("PSK_ID");
    let outside = lab.get("NAT_OUTSIDE_ADDR");
    tunnel_case(
        &lab,
        &p,
        Expect {
            identity: &id,
            conn: "rw-psk",
            esp: Some("aes256gcm16"),
            remote_addr: Some(&outside),
            nat: true,
            ..Default::default()
        },
        "roamnat0",
        &server,
        Server::StrongSwan,
    );
});

// kill -9 leaves nothing that stops the next run
tun_case!(tunnel_sigkill_then_reconnect, |lab| {
    let ns = lab.get("CLIENT_NS");
    let server = lab.get("SERVER_ADDR");
    let p = tun_profile(&lab, "psk", "aes256gcm16", None, "psk-kill");
    let id = lab.get("PSK_ID");
    let want = Expect {
        identity: &id,
        conn: "rw-psk",
        ..Default::default()
    };
    let before = preflight(&lab, DEFAULT_TUN);
    lab.clear_identity(&id);
    let dir = tempfile::tempdir().expect("temp dir");
    let resolv = dir.path().join("resolv.conf");

    let log_from = lab.server_log_len();
    let mut first = connect_tun(&lab, &p, DEFAULT_TUN, &resolv);
    let c1 = wait_connected(&lab, &mut first, log_from);
    let f1 = check_connected(&c1, &want);
    check_tun(&lab, &mut first, &f1, DEFAULT_TUN, &server);
    assert!(
        ping(&ns, &lab.get("LAN_HOST")),
        "first run: no ping through the tunnel\n{}",
        first.transcript()
    );
    let status = first.kill9();
    assert_eq!(
        status.and_then(|s| s.signal()),
        Some(9),
        "roam did not die of SIGKILL: {status:?}"
    );
    let after_kill = routing_state(&ns);
    let leftovers = format!(
        "after SIGKILL: {} link {DEFAULT_TUN}; routes/rules added: {:#?}",
        if link_exists(&ns, DEFAULT_TUN) {
            "still a"
        } else {
            "no"
        },
        after_kill.difference(&before).collect::<Vec<_>>()
    );
    loud(&format!("tunnel_sigkill_then_reconnect: {leftovers}"));

    let log_from = lab.server_log_len();
    let mut second = connect_tun(&lab, &p, DEFAULT_TUN, &resolv);
    let c2 = match second.wait_line("connected", CONNECT_TIMEOUT) {
        Ok(l) => l,
        Err(e) => panic!(
            "second run after kill -9: {e}\n{leftovers}\n{}\n--- server log:\n{}",
            second.transcript(),
            lab.server_log_since(log_from)
        ),
    };
    let f2 = check_connected(&c2, &want);
    check_tun(&lab, &mut second, &f2, DEFAULT_TUN, &server);
    let ctx = || {
        format!(
            "second run after kill -9\n{leftovers}\n{}",
            second.transcript()
        )
    };
    ping_lan(&lab, &ctx);
    close_cleanly(&mut second);
    assert!(
        wait_link_gone(&ns, DEFAULT_TUN),
        "{DEFAULT_TUN} still exists after the second run exited"
    );
    // a host route to the server that only the killed run added may stay; nothing else
    let host_route = format!("v4 route: {server} ");
    assert_routing_restored(
        &ns,
        &before,
        |l| l.starts_with(&host_route) && after_kill.contains(l),
        &format!("{leftovers}\n{}", second.transcript()),
    );
    // the killed run's SA stays on the server until DPD: remove it
    lab.clear_identity(&id);
});

// ------------------------------------------------------ against roam serve --

tun_case!(tunnel_roam_to_roam_serve, |lab| {
    if !require_feature(
        "tunnel_roam_to_roam_serve",
        roam_has_serve(),
        "`roam serve`",
    ) {
        return;
    }
    let s_ns = lab.get("SERVER_NS");
    let serve_tun = lab.get("SERVE_TUN");
    // dropped after `serve` (declared first): roam serve ends, then charon comes back
    let _charon = CharonBack;
    lab_ok(&["server-stop"], &[], 60);
    assert!(
        !link_exists(&s_ns, &serve_tun),
        "{s_ns} already has a link {serve_tun}"
    );
    let sp = lab_ok(&["serve-profile", "psk"], &[], 30)
        .trim()
        .to_string();
    let mut serve = Roam::spawn(&s_ns, &["serve", "--profile", &sp]);
    for prefix in ["listening ", "tun "] {
        if let Err(e) = serve.line(prefix, SERVE_TIMEOUT) {
            panic!("roam serve: {e}\n{}", serve.transcript());
        }
    }
    let tl = serve.line("tun ", SERVE_TIMEOUT).unwrap_or_default();
    assert_eq!(
        fields(&tl).get("name"),
        Some(&serve_tun),
        "roam serve's tun line: {tl}"
    );
    assert!(
        link_exists(&s_ns, &serve_tun),
        "no {serve_tun} in {s_ns}\n{}",
        serve.transcript()
    );

    let p = tun_profile(&lab, "psk", "aes256gcm16", None, "psk-serve");
    let id = lab.get("PSK_ID");
    tunnel_case(
        &lab,
        &p,
        Expect {
            identity: &id,
            ..Default::default()
        },
        DEFAULT_TUN,
        &lab.get("SERVER_ADDR"),
        Server::Roam(&mut serve),
    );

    serve.terminate();
    let status = serve.wait_exit(EXIT_TIMEOUT);
    assert!(
        matches!(status, Some(s) if s.code() == Some(0)),
        "roam serve did not exit 0 within {EXIT_TIMEOUT:?} after SIGTERM: {status:?}\n{}",
        serve.transcript()
    );
    assert!(
        wait_link_gone(&s_ns, &serve_tun),
        "roam serve left {serve_tun} behind"
    );
});

// -------------------------------------------------- checks of the helpers --

#[test]
fn iperf_report_totals() {
    // the shape of iperf3 3.12's -J report, trimmed
    let json = r#"{
        "start": {"test_start": {"protocol": "TCP", "num_streams": 1, "bytes": 52428800}},
        "intervals": [{"sum": {"bytes": 1000, "bits_per_second": 1.0}}],
        "end": {
            "streams": [{"sender": {"bytes": 52428800}, "receiver": {"bytes": 52428800}}],
            "sum_sent": {"start": 0, "end": 1.2, "seconds": 1.2, "bytes": 52428800,
                         "bits_per_second": 349525333.3, "retransmits": 0, "sender": true},
            "sum_received": {"start": 0, "end": 1.2, "seconds": 1.2, "bytes": 49707712,
                             "bits_per_second": 3.6571637099370025e+08, "sender": true}
        }
    }"#;
    assert_eq!(
        iperf_totals(json),
        Ok(IperfTotals {
            sent: 52_428_800,
            received: 49_707_712,
            bits_per_second: 3.6571637099370025e8,
        })
    );
    let err = r#"{"start": {}, "intervals": [], "end": {}, "error": "unable to connect to server: Connection refused"}"#;
    assert!(iperf_totals(err)
        .unwrap_err()
        .contains("Connection refused"));
    assert!(iperf_totals("{}").is_err());
}

#[test]
fn tun_line_fields_and_vips() {
    let t = fields(
        "tun name=roam0 mtu=1400 addresses=198.18.0.1/32,2001:db8:ffff::1/128 \
         routes=0.0.0.0/1,128.0.0.0/1,::/1,8000::/1",
    );
    assert_eq!(t["name"], "roam0");
    assert_eq!(t["routes"].split(',').count(), 4);
    let f = fields("connected vip=198.18.0.1,2001:db8:ffff::1 dns=203.0.113.53");
    assert_eq!(
        vips(&f),
        (vec!["198.18.0.1".into()], vec!["2001:db8:ffff::1".into()])
    );
    assert_eq!(vips(&fields("connected vip=none")), (vec![], vec![]));
}
