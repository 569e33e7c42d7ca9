//! The lab's "staying connected" plumbing (`lab_staying.rs`): moving roam-c between its paths,
//! NAT rebinding, loss, server restarts and lifetimes through `lab.sh`; a pinger at 10/s with
//! per-reply timestamps; packet captures and the leak check; the SPIs of `swanctl --list-sas`;
//! the `at_ms=` of status lines; and the idle-wakeup count of a process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{lab_cmd, lab_ok, loud, parse_list_sas, IkeSa, Lab};

/// Unix epoch milliseconds (what `at_ms=` carries).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The `at_ms=` of a status line.
pub fn at_ms(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("at_ms="))
        .and_then(|v| v.parse().ok())
}

// ------------------------------------------------------------- lab.sh knobs --

/// `lab.sh client-path a|b|nat|both|all`.
pub fn client_path(path: &str) {
    lab_ok(&["client-path", path], &[], 30);
}

/// `lab.sh nat-rebind`.
pub fn nat_rebind() {
    lab_ok(&["nat-rebind"], &[], 30);
}

/// `lab.sh loss PCT|off`.
pub fn loss(pct: &str) {
    lab_ok(&["loss", pct], &[], 30);
}

/// `lab.sh server-restart [--kill]`: (stopped_at_ms, listening_at_ms). A SIGTERM'd charon
/// sends DELETE for its IKE SAs first (a clean restart); with `crash` it gets SIGKILL and
/// the client can only find out by DPD.
pub fn server_restart(crash: bool) -> (u64, u64) {
    let args: &[&str] = if crash {
        &["server-restart", "--kill"]
    } else {
        &["server-restart"]
    };
    let out = lab_ok(args, &[], 60);
    let line = out
        .lines()
        .rfind(|l| l.starts_with("server-restart "))
        .unwrap_or_else(|| panic!("lab.sh server-restart printed no summary: {out}"));
    let f = super::fields(line);
    let get = |k: &str| -> u64 {
        f.get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in '{line}'"))
    };
    (get("stopped_at_ms"), get("listening_at_ms"))
}

/// `lab.sh server-reconfig` with lifetimes (e.g. `[("SERVER_CHILD_REKEY", "20s")]`).
pub fn server_reconfig(env: &[(&str, &str)]) {
    lab_ok(&["server-reconfig"], env, 60);
}

/// Puts the lab back on drop, also when a case fails: every client path up without host
/// routes, no loss, UDP not blocked, and, if the case changed them, the server's default lifetimes.
pub struct Restore {
    pub server_defaults: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        for args in [
            &["client-path", "all"][..],
            &["loss", "off"][..],
            &["block-udp", "off"][..],
        ] {
            let out = lab_cmd(args, &[], 30);
            if !out.status.success() {
                loud(&format!(
                    "lab.sh {args:?} (restoring the lab) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        if self.server_defaults {
            let out = lab_cmd(&["server-reconfig"], &[], 60);
            if !out.status.success() {
                loud(&format!(
                    "lab.sh server-reconfig (default lifetimes) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
}

// ------------------------------------------------------------------ pinger --

/// One echo reply: when it arrived (epoch ms, from `ping -D`) and its sequence number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    pub at_ms: u64,
    pub seq: u32,
}

/// What a `ping -D` run printed, parsed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PingRun {
    pub replies: Vec<Reply>,
    /// From ping's summary (None while it runs or when it was killed).
    pub transmitted: Option<u32>,
    pub received: Option<u32>,
}

impl PingRun {
    pub fn parse(text: &str) -> PingRun {
        let mut run = PingRun::default();
        for line in text.lines() {
            if let Some(r) = parse_reply(line) {
                run.replies.push(r);
            } else if line.contains("packets transmitted") {
                // "80 packets transmitted, 79 received, 1.25% packet loss, time 7904ms"
                let mut n = line.split(", ");
                run.transmitted = n
                    .next()
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|v| v.parse().ok());
                run.received = n
                    .next()
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|v| v.parse().ok());
            }
        }
        run
    }

    /// One line for failure messages: counts, first and last reply, the longest gap.
    pub fn summary(&self) -> String {
        format!(
            "ping: {:?} transmitted, {:?} received, replies seq {:?}..{:?}, max gap {} ms",
            self.transmitted,
            self.received,
            self.replies.first().map(|r| r.seq),
            self.replies.last().map(|r| r.seq),
            self.max_gap_ms()
        )
    }

    /// Requests without a reply (from the summary: every request was answered or timed out).
    pub fn lost(&self) -> Option<u32> {
        Some(self.transmitted?.saturating_sub(self.received?))
    }

    /// The longest time between two consecutive replies, in ms (100 when nothing is lost).
    pub fn max_gap_ms(&self) -> u64 {
        self.replies
            .windows(2)
            .map(|w| w[1].at_ms.saturating_sub(w[0].at_ms))
            .max()
            .unwrap_or(0)
    }

    /// The first reply that arrived after `ms`.
    pub fn first_reply_after(&self, ms: u64) -> Option<Reply> {
        self.replies.iter().copied().find(|r| r.at_ms > ms)
    }

    /// The last reply that arrived at or before `ms`.
    pub fn last_reply_before(&self, ms: u64) -> Option<Reply> {
        self.replies.iter().copied().rfind(|r| r.at_ms <= ms)
    }
}

/// "[1700000000.123456] 64 bytes from 203.0.113.2: icmp_seq=5 ttl=63 time=0.512 ms"
pub fn parse_reply(line: &str) -> Option<Reply> {
    let rest = line.strip_prefix('[')?;
    let (ts, rest) = rest.split_once(']')?;
    if !rest.contains(" bytes from ") {
        return None;
    }
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let secs: u64 = secs.parse().ok()?;
    let frac = format!("{frac:0<3}");
    let ms: u64 = frac.get(..3)?.parse().ok()?;
    let seq = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix("icmp_seq="))?
        .parse()
        .ok()?;
    Some(Reply {
        at_ms: secs * 1000 + ms,
        seq,
    })
}

/// `ping -D -i 0.1 -W 1 -c COUNT HOST` in a namespace, its output collected as it comes.
pub struct Pinger {
    child: Child,
    text: Arc<Mutex<String>>,
    pub started_ms: u64,
}

/// 10 pings per second.
pub const PING_INTERVAL: &str = "0.1";

impl Pinger {
    /// `count` requests, 100 ms apart; ping ends by itself `count / 10 + 1` s later (each
    /// request waits 1 s for its reply), so `lost()` is exact.
    pub fn start(ns: &str, host: &str, count: u32) -> Pinger {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "ping", "-D", "-n", "-i", PING_INTERVAL])
            .args(["-W", "1", "-c", &count.to_string(), host])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ping");
        let text = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&text);
        let out = child.stdout.take().expect("ping stdout");
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut t = sink.lock().unwrap_or_else(|p| p.into_inner());
                t.push_str(&line);
                t.push('\n');
            }
        });
        Pinger {
            child,
            text,
            started_ms: now_ms(),
        }
    }

    pub fn snapshot(&self) -> PingRun {
        PingRun::parse(&self.text.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Polls until a reply arrives after `ms` (bounded); the reply, or None.
    pub fn wait_reply_after(&self, ms: u64, limit: Duration) -> Option<Reply> {
        let end = Instant::now() + limit;
        loop {
            if let Some(r) = self.snapshot().first_reply_after(ms) {
                return Some(r);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for ping to end by itself and returns the whole run; SIGINT first
    /// when it is still running at the bound (then the summary counts the last request too).
    pub fn finish(mut self, limit: Duration) -> PingRun {
        let end = Instant::now() + limit;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
        // the reader thread ends at EOF
        thread::sleep(Duration::from_millis(100));
        self.snapshot()
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------ capture, leaks --

/// A `lab.sh capture` in roam-c on c-a, c-b and c-n, stopped on drop.
pub struct Capture {
    name: String,
    pub pcap: String,
    stopped: bool,
}

impl Capture {
    pub fn start(name: &str) -> Capture {
        let out = lab_ok(&["capture", "start", name, "c-a", "c-b", "c-n"], &[], 30);
        let pcap = out.lines().last().unwrap_or("").trim().to_string();
        assert!(pcap.ends_with(".pcap"), "lab.sh capture start: {out}");
        Capture {
            name: name.to_string(),
            pcap,
            stopped: false,
        }
    }

    pub fn stop(&mut self) {
        if !self.stopped {
            lab_ok(&["capture", "stop", &self.name], &[], 30);
            self.stopped = true;
        }
    }

    /// Stops the capture and runs the leak check: Ok(summary) or Err(the leaks).
    pub fn leaks(&mut self) -> Result<String, String> {
        self.stop();
        leaks(&self.pcap)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = lab_cmd(&["capture", "stop", &self.name], &[], 30);
        }
    }
}

/// `lab.sh leaks PCAP`: Ok(summary) when clean, Err(what it printed) otherwise.
pub fn leaks(pcap: &str) -> Result<String, String> {
    let out = lab_cmd(&["leaks", pcap], &[], 60);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text.trim().to_string())
    } else {
        Err(text)
    }
}

// ---------------------------------------------------------- SAs with SPIs --

/// The server's SAs for `identity`, with SPIs.
pub fn server_sa_ids(identity: &str) -> Vec<IkeSa> {
    parse_list_sas(&lab_ok(
        &["swanctl", "server", "--list-sas", "--noblock"],
        &[],
        30,
    ))
    .into_iter()
    .filter(|s| s.remote_id == identity)
    .collect()
}

impl Lab {
    /// The one ESTABLISHED IKE SA the server has for `identity`, or a panic with the list.
    pub fn one_sa(&self, identity: &str, ctx: &dyn Fn() -> String) -> IkeSa {
        let sas: Vec<IkeSa> = server_sa_ids(identity)
            .into_iter()
            .filter(|s| s.state == "ESTABLISHED")
            .collect();
        assert_eq!(
            sas.len(),
            1,
            "expected one ESTABLISHED IKE SA for {identity}: {sas:#?}\n{}",
            ctx()
        );
        sas.into_iter().next().unwrap_or_default()
    }
}

// ---------------------------------------------------------------- wakeups --

/// Context switches (voluntary + nonvoluntary) summed over every thread of `pid` now, from
/// /proc/PID/task/*/status; None when the process is gone.
pub fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = 0u64;
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue; // a thread that ended meanwhile
        };
        sum += status
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches:")
                    || l.starts_with("nonvoluntary_ctxt_switches:")
            })
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(sum)
}

/// Wakeups per minute of `pid` over `window` (the same measurement as `lab.sh wakeups`).
pub fn wakeups_per_minute(pid: u32, window: Duration) -> Option<u64> {
    let a = context_switches(pid)?;
    thread::sleep(window);
    let b = context_switches(pid)?;
    let secs = window.as_secs().max(1);
    Some(b.saturating_sub(a) * 60 / secs)
}

/// Figures a case prints (one line, `staying: NAME key=value ...`).
pub fn report(name: &str, figures: &[(&str, String)]) {
    let body: Vec<String> = figures.iter().map(|(k, v)| format!("{k}={v}")).collect();
    loud(&format!("staying: {name} {}", body.join(" ")));
}

/// `key=value` map helper for lines with `_`-joined SPIs (`spi=I_R`).
pub fn spi_pair(f: &HashMap<String, String>, key: &str) -> Option<(String, String)> {
    let v = f.get(key)?;
    let (a, b) = v.split_once('_')?;
    Some((a.to_string(), b.to_string()))
}
