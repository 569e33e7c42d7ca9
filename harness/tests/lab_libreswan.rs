//! IKE over TCP (RFC 9329) against a second implementation (issue 8): the real `roam` binary
//! against libreswan 4.10's pluto, run privately in the lab's server namespace by
//! `scripts/libreswan.sh` (unpacked from the Debian package, never installed) in place of
//! the strongSwan charon, with UDP 500/4500 dropped by nftables (`lab.sh block-udp on`).
//!
//! This kernel has no ESP, so pluto authenticates the IKE SA and then fails to install the
//! CHILD SA (`netlink response for Add SA ...: Function not implemented (errno 38)`) and
//! answers the IKE_AUTH with TS_UNACCEPTABLE. The check is therefore the IKE SA: roam says
//! `ike-sa-established`, and the only failure is that CHILD SA (not authentication, not a
//! timeout); pluto's log shows the accepted IKETCP connection, `responder established IKE
//! SA` with our PSK identity, and the errno 38; its counters show a TCP connection; the
//! nftables counter shows that our UDP was dropped first (`auto` fell back to TCP).
//!
//! The kernel has no espintcp either (the TCP upper layer protocol pluto switches its IKE
//! sockets to): `scripts/libreswan-espintcp.c`, preloaded into pluto only, does that framing
//! in user space, and its log shows it was used.
//!
//! Without root the case prints `SKIPPED (needs root): <name>` and passes, unless
//! ROAM_REQUIRE_LAB=1 (CI). pluto, the UDP block and the charon are restored on drop.

// A real-time test driver: bounded waits need the wall clock (the sans-IO rule is for core/proto).
#![allow(clippy::disallowed_methods)]

#[macro_use]
mod lab_common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use lab_common::*;

/// `scripts/libreswan.sh ARGS` (bounded by timeout(1)); panics with its output on failure.
fn libreswan(args: &[&str], limit_s: u32) -> String {
    let script = repo_root().join("scripts/libreswan.sh");
    let out = Command::new("timeout")
        .arg(limit_s.to_string())
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running libreswan.sh {args:?}: {e}"));
    assert!(
        out.status.success(),
        "libreswan.sh {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `libreswan.sh env`: LIBRESWAN_LOG, LIBRESWAN_PID, ...
fn libreswan_env() -> HashMap<String, String> {
    libreswan(&["env"], 30)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// pluto stopped by PID, UDP open again and the lab's charon back (`lab.sh up`), also when
/// an assertion failed.
struct CharonBackFromPluto;

impl Drop for CharonBackFromPluto {
    fn drop(&mut self) {
        let script = repo_root().join("scripts/libreswan.sh");
        let down = Command::new("timeout")
            .arg("60")
            .arg(&script)
            .arg("down")
            .stdin(Stdio::null())
            .output();
        if !matches!(&down, Ok(o) if o.status.success()) {
            loud(&format!("libreswan.sh down failed: {down:?}"));
        }
        let _ = lab_cmd(&["block-udp", "off"], &[], 30);
        let up = lab_cmd(&["up"], &[("KEY_TYPE", "rsa")], 300);
        if !up.status.success() {
            loud(&format!(
                "lab.sh up (charon back after pluto) failed: {}",
                String::from_utf8_lossy(&up.stderr)
            ));
        }
    }
}

/// The packets the `block-udp` rule dropped in the server namespace.
fn udp_dropped(server_ns: &str) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            server_ns,
            "nft",
            "list",
            "table",
            "inet",
            "roamblock",
        ])
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "udp dport { 500, 4500 } counter packets 3 bytes 876 drop"
    out.lines()
        .filter(|l| l.contains("drop"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|&x| x == "packets")?;
            w.next()?.parse::<u64>().ok()
        })
        .sum()
}

/// `key=value` lines of `whack --globalstatus` (e.g. `total.iketcp.server.started=1`).
fn pluto_counters() -> HashMap<String, u64> {
    libreswan(&["whack", "--globalstatus"], 30)
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
        .collect()
}

/// The first pluto counter whose name ends with `suffix`, polled until it is at least 1 or
/// `limit` passes (pluto handles what roam sent last just after roam exits).
fn pluto_counter_reaches_one(suffix: &str, limit: Duration) -> u64 {
    let until = std::time::Instant::now() + limit;
    loop {
        let n = pluto_counters()
            .iter()
            .find(|(k, _)| k.ends_with(suffix))
            .map_or(0, |(_, v)| *v);
        if n >= 1 || std::time::Instant::now() >= until {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

lab_case!(ike_over_tcp_to_libreswan_with_udp_blocked, |lab| {
    let _back = CharonBackFromPluto;
    libreswan(&["up"], 300);
    lab_ok(&["block-udp", "on"], &[], 30);
    let env = libreswan_env();
    let log_path = env.get("LIBRESWAN_LOG").cloned().unwrap_or_default();
    let shim_log = env
        .get("LIBRESWAN_ESPINTCP_LOG")
        .cloned()
        .unwrap_or_default();
    let identity = lab.get("PSK_ID");
    let client = lab.get("CLIENT_ADDR");

    // auto: UDP first (dropped), then TCP to 4500; the proposals pluto is configured with
    let dir = lab.get("PROFILES");
    let out = format!("{dir}/libreswan-tcp.toml");
    let p = lab.profile(
        "psk",
        &[
            "--ike",
            "aes256gcm16-prfsha384-ecp384",
            "--esp",
            "aes256gcm16",
            "--transport",
            "auto",
            "--out",
            &out,
        ],
    );
    let mut roam = Roam::connect(&lab, &p);
    let established = roam.wait_line("ike-sa-established", Duration::from_secs(30));
    let status = roam.wait_exit(FAILURE_TIMEOUT);
    let pluto_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let shim = std::fs::read_to_string(&shim_log).unwrap_or_default();
    let counters = pluto_counters();
    let dropped = udp_dropped(&lab.get("SERVER_NS"));
    let ctx = || {
        format!(
            "{}\n--- pluto log (non-debug lines):\n{}\n--- espintcp stand-in:\n{shim}\n--- pluto counters: {counters:?}, UDP dropped: {dropped}",
            roam.transcript(),
            tail_lines(
                &pluto_log
                    .lines()
                    .filter(|l| !l.contains(": | "))
                    .collect::<Vec<_>>()
                    .join("\n"),
                60
            )
        )
    };

    // our side: the IKE SA was established and authenticated; the CHILD SA alone failed
    assert!(
        established.is_ok(),
        "no ike-sa-established: {established:?}\n{}",
        ctx()
    );
    let disconnected = roam
        .seen
        .iter()
        .find(|l| l.starts_with("disconnected "))
        .map(|l| untimed(l).to_string())
        .unwrap_or_default();
    assert_eq!(
        disconnected,
        "disconnected reason=negotiation-failed: CHILD SA: TS_UNACCEPTABLE",
        "the failure must be the CHILD SA only (pluto cannot install it): {}",
        ctx()
    );
    assert!(
        !roam.seen.iter().any(|l| l.contains("authentication-failed")
            || l.contains("reason=timeout")
            || l.starts_with("reconnecting")),
        "{}",
        ctx()
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "roam exits 1 on a failed connection: {}",
        ctx()
    );

    // pluto's side: an IKETCP connection from us, the IKE SA established with our identity,
    // and the CHILD SA failing only in the kernel (no ESP here)
    assert!(
        pluto_log.contains(&format!("connection from {client}:"))
            && pluto_log.contains("IKETCP ACCEPTED"),
        "pluto saw no IKETCP connection from {client}: {}",
        ctx()
    );
    assert!(
        pluto_log.contains(&format!(
            "responder established IKE SA; authenticated peer using authby=secret and ID_USER_FQDN '{identity}'"
        )),
        "pluto did not establish the IKE SA: {}",
        ctx()
    );
    assert!(
        pluto_log.contains("Function not implemented (errno 38)"),
        "the CHILD SA failed for another reason than the kernel's missing ESP: {}",
        ctx()
    );
    assert!(
        counters
            .get("total.iketcp.server.started")
            .is_some_and(|&n| n >= 1),
        "pluto counted no IKE-over-TCP connection: {}",
        ctx()
    );
    assert!(
        shim.contains("espintcp framing in user space"),
        "the espintcp stand-in was not used: {}",
        ctx()
    );
    // and UDP was tried first and dropped: TCP was the fallback, not the only try
    assert!(dropped >= 1, "no UDP packet was dropped: {}", ctx());
    // roam deleted the IKE SA it could not use (RFC 7296 §1.2): pluto handled that DELETE
    let deleted = pluto_counter_reaches_one(
        ".STF_V2_RESPONDER_DELETE_IKE_FAMILY",
        Duration::from_secs(5),
    );
    assert!(deleted >= 1, "pluto saw no DELETE of the IKE SA: {}", ctx());
});
