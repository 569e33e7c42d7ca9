//! `roam demo` (the README's first command) runs on loopback without root and shows a full
//! handshake, traffic through ESP both ways without loss, a network switch (MOBIKE, same IKE
//! SA), a responder restart survived by reconnecting, and a clean close; loss fails it.

use std::process::Command;

#[test]
fn demo_connects_and_closes_on_loopback() {
    let out = Command::new(env!("CARGO_BIN_EXE_roam"))
        .arg("demo")
        .output()
        .expect("run roam demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    for needle in [
        "IKE SA established",
        "CHILD SA established",
        "ESP  aes256gcm16",
        "virtual IPs 198.18.0.1, 2001:db8:ffff::1",
        "responder sees demo-client@roam.example",
        "client disconnected: closed",
        "responder: IKE SA deleted",
        "handshake: ",
        "selectors 198.18.0.1/32, 2001:db8:ffff::1/128 <-> 0.0.0.0/0, ::/0",
        "(ESP aes256gcm16)",
        "traffic: 40 probes (20 ICMP echo, 10 UDP, 10 ICMPv6 echo)",
        "client -> server 40 packets",
        "server -> client 40 packets",
        "lost 0, round trip min",
        "roamed: the same IKE SA now runs 127.0.0.2:",
        "after the switch: 40 probes",
        "network switch: outage ",
        "connection lost (server-restarted), attempt 1 in ",
        "connected again, new IKE SA ",
        "after the restart: 40 probes",
        "server restart: outage ",
        "echo answered 12",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn demo_takes_a_named_proposal() {
    let out = Command::new(env!("CARGO_BIN_EXE_roam"))
        .args(["demo", "--ike", "chacha20poly1305-prfsha256-curve25519"])
        .output()
        .expect("run roam demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("IKE  chacha20poly1305-prfsha256-curve25519"),
        "{stdout}"
    );
}

#[test]
fn demo_fails_on_loss() {
    let out = Command::new(env!("CARGO_BIN_EXE_roam"))
        .args(["demo", "--lose", "2"])
        .output()
        .expect("run roam demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("lost 2, "), "{stdout}");
    assert!(
        stderr.contains("lost 2 of 120 packets on loopback"),
        "{stderr}"
    );
    assert!(stdout.contains("client disconnected: closed"), "{stdout}");
}
