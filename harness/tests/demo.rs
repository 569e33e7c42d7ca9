//! `roam demo` (the README's first command) runs on loopback without root and shows a full
//! handshake and a clean close.

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
