//! Shared plumbing of the lab tests (`lab_interop.rs`, `lab_tunnel.rs`): bringing the lab up
//! once per test process and taking it one case at a time, `lab.sh` calls, the parser of
//! `swanctl --list-sas`, a `roam` child process with bounded line waits, and the checks of a
//! `connected ...` line and of the server's SA that every success case makes.
//!
//! Without root each case prints `SKIPPED (needs root): <name>` to stderr and passes, unless
//! ROAM_REQUIRE_LAB=1 is set (CI): then a missing lab is a failure.

// A real-time test driver: bounded waits need the wall clock (the sans-IO rule is for core/proto).
#![allow(clippy::disallowed_methods)]
// each test crate uses its own part of this module
#![allow(dead_code)]

pub mod staying;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
pub const FAILURE_TIMEOUT: Duration = Duration::from_secs(40);
pub const SA_GONE_TIMEOUT: Duration = Duration::from_secs(10);

/// One lab, one case at a time.
static LAB_LOCK: Mutex<()> = Mutex::new(());
/// Whether this process already ran `lab.sh up` successfully.
static LAB_UP: Mutex<bool> = Mutex::new(false);

// ------------------------------------------------------------------ lab access --

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn lab_script() -> PathBuf {
    repo_root().join("scripts/lab.sh")
}

pub fn lab_required() -> bool {
    std::env::var("ROAM_REQUIRE_LAB")
        .map(|v| v == "1")
        .unwrap_or(false)
}

/// The effective uid, from /proc (no libc dependency).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Writes straight to the process's stderr: libtest does not capture this, so a skip is
/// visible in every `cargo test` run (and scripts/test.sh counts it).
pub fn loud(msg: &str) {
    let mut e = std::io::stderr();
    let _ = writeln!(e, "{msg}");
    let _ = e.flush();
}

/// Runs `lab.sh ARGS` with extra environment, bounded by `timeout(1)`.
pub fn lab_cmd(args: &[&str], env: &[(&str, &str)], limit_s: u32) -> Output {
    let mut c = Command::new("timeout");
    c.arg(limit_s.to_string()).arg(lab_script()).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running lab.sh {args:?}: {e}"))
}

pub fn lab_ok(args: &[&str], env: &[(&str, &str)], limit_s: u32) -> String {
    let out = lab_cmd(args, env, limit_s);
    assert!(
        out.status.success(),
        "lab.sh {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lab, held for the duration of one case.
pub struct Lab {
    pub _lock: MutexGuard<'static, ()>,
    pub env: HashMap<String, String>,
}

impl Lab {
    /// Takes the lab for test `name`; None (after a loud skip message) when it cannot run.
    pub fn acquire(name: &str) -> Option<Lab> {
        let lock = LAB_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        if !is_root() {
            if lab_required() {
                panic!("ROAM_REQUIRE_LAB=1 but not running as root: {name} cannot run");
            }
            loud(&format!("SKIPPED (needs root): {name}"));
            return None;
        }
        let mut up = LAB_UP.lock().unwrap_or_else(|p| p.into_inner());
        if !*up {
            let out = lab_cmd(&["up"], &[("KEY_TYPE", "rsa")], 300);
            if !out.status.success() {
                let why = format!(
                    "scripts/lab.sh up failed ({}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                if lab_required() {
                    panic!("ROAM_REQUIRE_LAB=1 and the lab did not come up: {why}");
                }
                loud(&format!("SKIPPED (lab did not come up): {name}\n{why}"));
                return None;
            }
            *up = true;
        }
        drop(up);
        // the strongSwan reference client would hold UDP 500/4500 in roam-c
        lab_ok(&["down-client"], &[], 30);
        let env = lab_ok(&["env", "--raw"], &[], 30)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim_start_matches("ROAM_LAB_").to_string(), v.to_string()))
            .collect();
        Some(Lab { _lock: lock, env })
    }

    pub fn get(&self, key: &str) -> String {
        self.env
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("lab.sh env has no ROAM_LAB_{key}"))
    }

    /// `lab.sh profile MODE OPTS...` -> the profile's path.
    pub fn profile(&self, mode: &str, opts: &[&str]) -> String {
        let mut args = vec!["profile", mode];
        args.extend_from_slice(opts);
        lab_ok(&args, &[], 30).trim().to_string()
    }

    pub fn server_log_len(&self) -> u64 {
        std::fs::metadata(self.get("SERVER_LOG"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The server log from byte `from` on.
    pub fn server_log_since(&self, from: u64) -> String {
        let mut f = match std::fs::File::open(self.get("SERVER_LOG")) {
            Ok(f) => f,
            Err(_) => return String::new(),
        };
        let mut all = Vec::new();
        let _ = f.read_to_end(&mut all);
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
        String::from_utf8_lossy(&all[from..]).into_owned()
    }

    pub fn server_sas(&self) -> Vec<IkeSa> {
        parse_list_sas(&lab_ok(
            &["swanctl", "server", "--list-sas", "--noblock"],
            &[],
            30,
        ))
    }

    pub fn sas_of(&self, identity: &str) -> Vec<IkeSa> {
        self.server_sas()
            .into_iter()
            .filter(|s| s.remote_id == identity)
            .collect()
    }

    /// Destroys leftovers of an earlier (failed) run with this identity, without DELETE.
    pub fn clear_identity(&self, identity: &str) {
        for sa in self.sas_of(identity) {
            let id = sa.unique_id.to_string();
            let _ = lab_cmd(
                &[
                    "swanctl",
                    "server",
                    "--terminate",
                    "--ike-id",
                    &id,
                    "--force",
                    "--timeout",
                    "3",
                ],
                &[],
                30,
            );
        }
    }

    /// Polls until the server lists no IKE SA for `identity`; returns what is left otherwise.
    pub fn wait_sas_gone(&self, identity: &str, limit: Duration) -> Vec<IkeSa> {
        let end = Instant::now() + limit;
        loop {
            let left = self.sas_of(identity);
            if left.is_empty() || Instant::now() >= end {
                return left;
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn server_log_tail(&self) -> String {
        let out = lab_cmd(&["logs", "server", "40"], &[], 10);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// After a server key type change: `lab.sh up` with the default (RSA) again, even on panic.
pub struct RestoreRsa;
impl Drop for RestoreRsa {
    fn drop(&mut self) {
        let out = lab_cmd(&["up"], &[("KEY_TYPE", "rsa")], 300);
        if !out.status.success() {
            loud(&format!(
                "lab.sh up (restoring the RSA server) failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
}

// ------------------------------------------------------------- swanctl parsing --

/// One IKE SA of `swanctl --list-sas`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IkeSa {
    pub conn: String,
    pub unique_id: u32,
    pub state: String,
    /// The IKE SPIs of the header line ("ba95593eb90ea20b_i" without the suffix).
    pub spi_i: String,
    pub spi_r: String,
    pub remote_id: String,
    /// "198.51.100.2[4500]"
    pub remote_addr: String,
    /// e.g. "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384"
    pub algorithms: String,
    pub children: Vec<ChildSa>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChildSa {
    pub name: String,
    pub unique_id: u32,
    pub state: String,
    /// The ESP SPIs of the `in XXXXXXXX, ...` / `out XXXXXXXX, ...` lines.
    pub spi_in: String,
    pub spi_out: String,
    /// e.g. "AES_GCM_16-256" (after "ESP:")
    pub algorithms: String,
    pub remote_ts: String,
}

/// Parses swanctl 5.9's text output. IKE SAs start in column 0 (`name: #N, STATE, IKEv2, ...`),
/// their details are indented by 2, CHILD SAs by 2 (`name: #N, reqid R, STATE, MODE, ESP:ALG`)
/// and their details by 4.
pub fn parse_list_sas(text: &str) -> Vec<IkeSa> {
    let mut sas: Vec<IkeSa> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if indent == 0 {
            // "rw-psk: #8, ESTABLISHED, IKEv2, 286d1f9bfee9df1a_i 8a16..._r*"
            let Some((conn, rest)) = t.split_once(": #") else {
                continue;
            };
            let parts: Vec<&str> = rest.split(", ").collect();
            let spis: Vec<&str> = parts
                .get(3)
                .map(|s| s.split_whitespace().collect())
                .unwrap_or_default();
            let spi = |suffix: &str| {
                spis.iter()
                    .find_map(|s| s.trim_end_matches('*').strip_suffix(suffix))
                    .unwrap_or("")
                    .to_string()
            };
            sas.push(IkeSa {
                conn: conn.to_string(),
                unique_id: parts.first().and_then(|n| n.parse().ok()).unwrap_or(0),
                state: parts.get(1).unwrap_or(&"").to_string(),
                spi_i: spi("_i"),
                spi_r: spi("_r"),
                ..Default::default()
            });
            continue;
        }
        let Some(sa) = sas.last_mut() else { continue };
        if indent == 2 {
            if let Some(r) = t.strip_prefix("remote ") {
                // "remote 'psk-client@example.org' @ 198.51.100.2[4500] [198.18.0.3 ...]"
                let r = r.trim_start();
                if let Some(rest) = r.strip_prefix('\'') {
                    if let Some((id, after)) = rest.split_once('\'') {
                        sa.remote_id = id.to_string();
                        sa.remote_addr = after
                            .trim_start()
                            .trim_start_matches('@')
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_string();
                    }
                }
            } else if t.contains(": #") && t.contains("reqid") {
                // "net: #6, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256"
                let (name, rest) = t.split_once(": #").unwrap_or(("", ""));
                let fields: Vec<&str> = rest.split(", ").collect();
                let state = fields.get(2).copied().unwrap_or("").to_string();
                let algorithms = fields
                    .iter()
                    .find_map(|f| f.strip_prefix("ESP:"))
                    .unwrap_or("")
                    .to_string();
                sa.children.push(ChildSa {
                    name: name.to_string(),
                    unique_id: fields.first().and_then(|n| n.parse().ok()).unwrap_or(0),
                    state,
                    algorithms,
                    ..Default::default()
                });
            } else if sa.algorithms.is_empty()
                && t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c))
            {
                sa.algorithms = t.to_string();
            }
        } else if indent >= 4 {
            let Some(child) = sa.children.last_mut() else {
                continue;
            };
            let mut words = t.split_whitespace();
            match (words.next(), words.next()) {
                (Some("remote"), _) => {
                    child.remote_ts = t.trim_start_matches("remote").trim().to_string()
                }
                (Some("in"), Some(spi)) => child.spi_in = spi.trim_end_matches(',').to_string(),
                (Some("out"), Some(spi)) => child.spi_out = spi.trim_end_matches(',').to_string(),
                _ => {}
            }
        }
    }
    sas
}

/// How strongSwan lists the IKE proposals the lab offers.
pub fn ike_display(name: &str) -> Option<&'static str> {
    Some(match name {
        "aes256gcm16-prfsha384-ecp384" => "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384",
        "aes256gcm16-prfsha256-curve25519" => "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519",
        "aes256-sha256-modp2048" => "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
        "chacha20poly1305-prfsha256-curve25519" => {
            "CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519"
        }
        _ => return None,
    })
}

/// How strongSwan lists the ESP proposals the lab offers (the CHILD SA of IKE_AUTH has no DH).
pub fn esp_display(name: &str) -> Option<&'static str> {
    Some(match name {
        "aes256gcm16" => "AES_GCM_16-256",
        "aes256-sha256" => "AES_CBC-256/HMAC_SHA2_256_128",
        "chacha20poly1305" => "CHACHA20_POLY1305",
        _ => return None,
    })
}

// ------------------------------------------------------------------ roam child --

/// The `roam` binary under test: ROAM_BIN runs another build (e.g. a release binary) through
/// the same cases.
pub fn roam_bin() -> String {
    std::env::var("ROAM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_roam").to_string())
}

fn help_of(args: &[&str]) -> Option<String> {
    let out = Command::new(roam_bin())
        .args(args)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this roam has the client TUN (`roam connect` knows `--no-tun`).
pub fn roam_has_tun() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| help_of(&["connect"]).is_some_and(|h| h.contains("--no-tun")))
}

/// Whether this roam has `roam serve`.
pub fn roam_has_serve() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| help_of(&["serve"]).is_some())
}

/// Skips (loudly) or, with ROAM_REQUIRE_LAB=1, fails a case whose feature is missing from
/// the binary under test. Returns whether the case can run.
pub fn require_feature(name: &str, have: bool, what: &str) -> bool {
    if have {
        return true;
    }
    if lab_required() {
        panic!(
            "ROAM_REQUIRE_LAB=1 but {} lacks {what}: {name} cannot run",
            roam_bin()
        );
    }
    loud(&format!("SKIPPED ({} lacks {what}): {name}", roam_bin()));
    false
}

/// The most stderr kept per process.
const STDERR_KEEP: usize = 4 << 20;

/// A running `roam` (client or server) in a lab namespace, killed on drop if it is still
/// running (a failed assertion must not leave a process behind in the namespace).
pub struct Roam {
    child: Child,
    stdout: Receiver<String>,
    pub seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Roam {
    /// `roam connect --profile P` in the client namespace, control plane only (`--no-tun`
    /// when this roam has a TUN, which is then its default).
    pub fn connect(lab: &Lab, profile: &str) -> Roam {
        let mut args = vec!["connect", "--profile", profile];
        if roam_has_tun() {
            args.push("--no-tun");
        }
        Roam::spawn(&lab.get("CLIENT_NS"), &args)
    }

    /// `ip netns exec NS roam ARGS...` (`ip netns exec` execs roam: the child's PID is roam's).
    pub fn spawn(ns: &str, args: &[&str]) -> Roam {
        let bin = roam_bin();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, &bin])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec roam");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                if s.len() > STDERR_KEEP {
                    // keep the newest half (debug logging during a bulk transfer)
                    let cut = s.len() - STDERR_KEEP / 2;
                    let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                    s.drain(..cut);
                }
                s.push_str(&line);
                s.push('\n');
            }
        });
        Roam {
            child,
            stdout: rx,
            seen: Vec::new(),
            stderr,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What roam printed so far, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- roam stdout:\n{}\n--- roam stderr:\n{}",
            self.seen.join("\n"),
            tail_lines(&self.stderr(), 200)
        )
    }

    /// Reads stdout lines until one starts with `prefix` (bounded).
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> Result<String, String> {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no '{prefix}' line within {limit:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("roam closed stdout before a '{prefix}' line"));
                }
            }
        }
    }

    /// Like `wait_line`, but a line already read (while waiting for another) counts too.
    pub fn line(&mut self, prefix: &str, limit: Duration) -> Result<String, String> {
        if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return Ok(l.clone());
        }
        self.wait_line(prefix, limit)
    }

    /// Whether the process has exited (without waiting).
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
            }
        }
        self.status.is_some()
    }

    /// Waits (bounded) for the process to exit; the rest of stdout is collected.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        while self.status.is_none() && Instant::now() < end {
            match self.child.try_wait() {
                Ok(Some(st)) => self.status = Some(st),
                Ok(None) => thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        if self.status.is_some() {
            // the reader thread ends at EOF
            while let Ok(line) = self.stdout.recv_timeout(Duration::from_millis(500)) {
                self.seen.push(line);
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.status
    }

    /// SIGTERM by PID.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// SIGKILL by PID, then reaps it (bounded).
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        self.wait_exit(Duration::from_secs(5))
    }
}

impl Drop for Roam {
    /// SIGTERM first (so that roam can remove its TUN and routes for the next case), SIGKILL
    /// if it is still running 5 s later.
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Ok(None) = self.child.try_wait() {
                self.terminate();
                let end = Instant::now() + Duration::from_secs(5);
                while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
                    thread::sleep(Duration::from_millis(50));
                }
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }
}

/// The last `n` lines of `text` (RUST_LOG=debug stderr can be long).
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    let mut out = String::new();
    if from > 0 {
        out.push_str(&format!("[... {from} earlier lines]\n"));
    }
    out.push_str(&lines[from..].join("\n"));
    out
}

/// `key=value` fields of a status line.
pub fn fields(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ------------------------------------------------------------ success checks --

/// What a successful case expects.
#[derive(Default)]
pub struct Expect<'a> {
    /// The identity the server sees (IDi).
    pub identity: &'a str,
    /// The connection strongSwan must select.
    pub conn: &'a str,
    pub ike: Option<&'a str>,
    pub esp: Option<&'a str>,
    /// The server sees us from this address (the NAT's outside address), if set.
    pub remote_addr: Option<&'a str>,
    pub nat: bool,
}

/// Checks a `connected ...` line (a virtual IPv4 from the pool, the pushed DNS, and what
/// `want` names) and returns its fields.
pub fn check_connected(connected: &str, want: &Expect<'_>) -> HashMap<String, String> {
    let f = fields(connected);
    let vip = f.get("vip").cloned().unwrap_or_default();
    assert!(
        vip.split(',').any(|a| a.starts_with("198.18.0.")),
        "no IPv4 pool address: {connected}"
    );
    let dns = f.get("dns").cloned().unwrap_or_default();
    assert!(
        dns.split(',').any(|a| a == "203.0.113.53"),
        "pushed DNS missing: {connected}"
    );
    if let Some(ike) = want.ike {
        assert_eq!(
            f.get("ike").map(String::as_str),
            Some(ike),
            "roam's ike=: {connected}"
        );
    }
    if let Some(esp) = want.esp {
        assert_eq!(
            f.get("esp").map(String::as_str),
            Some(esp),
            "roam's esp=: {connected}"
        );
    }
    if want.nat {
        assert_eq!(
            f.get("nat").map(String::as_str),
            Some("yes"),
            "NAT not detected: {connected}"
        );
    }
    f
}

/// strongSwan's view of a connected client (`f`: the fields of roam's `connected` line):
/// exactly one ESTABLISHED IKE SA for our identity on the expected connection, one INSTALLED
/// CHILD SA `net` whose remote TS is our virtual IP, the algorithms we asked for (or that
/// roam reported), and the address the server sees us at.
pub fn check_server_sa(lab: &Lab, want: &Expect<'_>, f: &HashMap<String, String>, roam: &Roam) {
    let vip = f.get("vip").cloned().unwrap_or_default();
    let sas = lab.sas_of(want.identity);
    let ctx = || {
        format!(
            "server SAs for '{}': {sas:#?}\n{}",
            want.identity,
            roam.transcript()
        )
    };
    assert_eq!(sas.len(), 1, "expected exactly one IKE SA: {}", ctx());
    let sa = &sas[0];
    assert_eq!(sa.state, "ESTABLISHED", "{}", ctx());
    assert_eq!(
        sa.conn,
        want.conn,
        "strongSwan selected the wrong connection: {}",
        ctx()
    );
    let installed: Vec<&ChildSa> = sa
        .children
        .iter()
        .filter(|c| c.state == "INSTALLED")
        .collect();
    assert_eq!(
        installed.len(),
        1,
        "expected one INSTALLED CHILD SA: {}",
        ctx()
    );
    assert_eq!(installed[0].name, "net", "{}", ctx());
    assert!(
        installed[0]
            .remote_ts
            .split_whitespace()
            .any(|ts| vip.split(',').any(|v| ts == format!("{v}/32"))),
        "the CHILD SA's remote TS is not our virtual IP {vip}: {}",
        ctx()
    );
    // the algorithms: what we asked for, else at least what roam reported
    let ike_name = want
        .ike
        .map(str::to_string)
        .or_else(|| f.get("ike").cloned())
        .unwrap_or_default();
    if let Some(d) = ike_display(&ike_name) {
        assert_eq!(sa.algorithms, d, "IKE proposal on the server: {}", ctx());
    } else {
        assert!(
            want.ike.is_none(),
            "no strongSwan name known for {ike_name}"
        );
    }
    let esp_name = want
        .esp
        .map(str::to_string)
        .or_else(|| f.get("esp").cloned())
        .unwrap_or_default();
    if let Some(d) = esp_display(&esp_name) {
        assert_eq!(
            installed[0].algorithms,
            d,
            "ESP proposal on the server: {}",
            ctx()
        );
    } else {
        assert!(
            want.esp.is_none(),
            "no strongSwan name known for {esp_name}"
        );
    }
    if let Some(addr) = want.remote_addr {
        assert!(
            sa.remote_addr.starts_with(&format!("{addr}[")),
            "server sees us at {}: {}",
            sa.remote_addr,
            ctx()
        );
    }
}

/// SIGTERM, then exit 0 within EXIT_TIMEOUT and the line `disconnected reason=closed`.
pub fn close_cleanly(roam: &mut Roam) {
    roam.terminate();
    let status = roam.wait_exit(EXIT_TIMEOUT);
    assert!(
        matches!(status, Some(s) if s.code() == Some(0)),
        "roam did not exit 0 within {EXIT_TIMEOUT:?} after SIGTERM: {status:?}\n{}",
        roam.transcript()
    );
    assert!(
        roam.seen
            .iter()
            .any(|l| untimed(l.trim()) == "disconnected reason=closed"),
        "no 'disconnected reason=closed'\n{}",
        roam.transcript()
    );
}

/// An event line without its ` at_ms=…` time.
pub fn untimed(line: &str) -> &str {
    line.rsplit_once(" at_ms=").map_or(line, |(l, _)| l)
}

// ------------------------------------------------------------------ test cases --

/// A case that needs the lab (root); it takes the lab for its whole run.
#[allow(unused_macros)] // each test crate uses some of these
macro_rules! lab_case {
    ($name:ident, |$lab:ident| $body:block) => {
        #[test]
        fn $name() {
            let Some($lab) = Lab::acquire(stringify!($name)) else {
                return;
            };
            $body
        }
    };
}

/// A case that needs the client TUN: the lab (root), then the feature.
#[allow(unused_macros)]
macro_rules! tun_case {
    ($name:ident, |$lab:ident| $body:block) => {
        #[test]
        fn $name() {
            let Some($lab) = Lab::acquire(stringify!($name)) else {
                return;
            };
            if !require_feature(stringify!($name), roam_has_tun(), "the client TUN") {
                return;
            }
            $body
        }
    };
}

/// After `roam serve` in the server namespace: charon back (`lab.sh serve-down`), also on
/// a failed assertion.
pub struct CharonBack;

impl Drop for CharonBack {
    fn drop(&mut self) {
        let out = lab_cmd(&["serve-down"], &[], 120);
        if !out.status.success() {
            loud(&format!(
                "lab.sh serve-down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
}
