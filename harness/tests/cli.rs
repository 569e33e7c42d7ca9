//! The `roam` command as a user runs it: exit codes and the `error:` line for bad profiles,
//! and the close on SIGINT against a silent loopback "server".

// The workspace's clippy.toml keeps clocks and sockets out of roam-proto; a test of the
// binary needs both.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn roam() -> Command {
    Command::new(env!("CARGO_BIN_EXE_roam"))
}

fn connect(profile: &Path) -> Output {
    roam()
        .args(["connect", "--profile"])
        .arg(profile)
        .output()
        .unwrap()
}

fn write_profile(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("roam.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const PSK: &str = r#"
[server]
address = "127.0.0.1"
port = PORT
[auth]
method = "psk"
local_id = "psk-client@example.org"
psk = "s3cret-psk-value"
"#;

#[test]
fn unknown_key_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_profile(
        dir.path(),
        &PSK.replace("PORT", "500")
            .replace("[auth]", "[auth]\nusr = \"x\""),
    );
    let out = connect(&path);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "error: profile: auth.usr: unknown key\n");
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_psk_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_profile(
        dir.path(),
        &PSK.replace("PORT", "500")
            .replace("psk = \"s3cret-psk-value\"", ""),
    );
    let out = connect(&path);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: profile: auth.psk: missing (required for method \"psk\")\n"
    );
}

#[test]
fn unreadable_ca_exits_2_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = PSK
        .replace("PORT", "500")
        .replace("[auth]", "ca = \"pki/ca.crt\"\n[auth]");
    let path = write_profile(dir.path(), &text);
    let out = connect(&path);
    assert_eq!(out.status.code(), Some(2));
    let expected = format!(
        "error: profile: server.ca: cannot read {}: ",
        dir.path().join("pki/ca.crt").display()
    );
    assert!(stderr(&out).starts_with(&expected), "{}", stderr(&out));
}

#[test]
fn missing_profile_file_exits_2() {
    let out = connect(Path::new("/nonexistent/roam.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: profile: cannot read /nonexistent/roam.toml: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn errors_never_show_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_profile(
        dir.path(),
        &PSK.replace("PORT", "500")
            .replace("\"s3cret-psk-value\"", "\"s3cret-psk-value"),
    );
    let out = roam()
        .args(["--log-level", "trace", "connect", "--profile"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: profile: line 8, column "),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("s3cret"));
}

#[test]
fn usage_errors_and_help() {
    let out = roam().arg("connect").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--profile is required");
    let out = roam().args(["connect", "--help"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--profile <FILE>"));
    let out = roam()
        .args(["--log-level", "loud", "connect", "--profile", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// SIGINT closes the session and `roam` exits 0 within the bounded wait, even when the server
/// never answers. Needs roam-proto's identity parsing (the profile must load).
#[test]
fn sigint_closes_and_exits_0() {
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = write_profile(dir.path(), &PSK.replace("PORT", &port.to_string()));
    let mut child = roam()
        .args(["connect", "--profile"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    if first.is_empty() {
        let out = child.wait_with_output().unwrap();
        panic!("roam exited early: {:?} {}", out.status, stderr(&out));
    }
    let (line, at_ms) = first
        .trim_end()
        .rsplit_once(" at_ms=")
        .expect("an event line ends with its time");
    assert_eq!(line, format!("connecting server=127.0.0.1:{port}"));
    let at_ms: u128 = at_ms.parse().expect("milliseconds");
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(wall.abs_diff(at_ms) < 60_000, "{at_ms} is now ({wall})");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "roam did not exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let rest: Vec<String> = stdout.lines().map(Result::unwrap).collect();
    assert_eq!(
        rest.last().map(|l| untimed(l)),
        Some("disconnected reason=closed"),
        "{rest:?}"
    );
}

/// An event line without its ` at_ms=…` time.
fn untimed(line: &str) -> &str {
    line.rsplit_once(" at_ms=").map_or(line, |(l, _)| l)
}

#[test]
fn a_profile_allowing_weak_algorithms_is_warned_about() {
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[crypto]\nike = [\"aes256-sha1-modp2048\"]\nallow_weak = [\"sha1\"]\n",
        PSK.replace("PORT", &port.to_string())
    );
    let path = write_profile(dir.path(), &text);
    let mut child = roam()
        .args(["connect", "--profile"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "roam did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        first.starts_with("warning: the profile allows weak algorithms (sha1)"),
        "{first}"
    );

    // the defaults name none: no warning (the profile error is the first line)
    let strong = write_profile(dir.path(), "[server]\naddress = \"127.0.0.1\"\n");
    let out = connect(&strong);
    assert!(!stderr(&out).contains("weak"), "{}", stderr(&out));
}
