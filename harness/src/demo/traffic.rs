//! The demo's traffic: the client's app sends probes into its tunnel one at a time and waits
//! for each echo (round-trip time, loss); the server's app is `roam_runtime::echo`. Both ends
//! talk to a `ChannelPackets` pair: no TUN, no root.

use std::net::IpAddr;
use std::time::Duration;

use roam_runtime::echo::{probe, reply_tag, Kind};
use roam_runtime::packet_io::AppPackets;

/// What to send in one traffic phase.
#[derive(Clone, Debug)]
pub struct Plan {
    /// (kind, how many) in the order sent; IPv6 kinds are skipped without an IPv6 address.
    pub probes: Vec<(Kind, u32)>,
    /// Padding bytes after each probe's tag.
    pub pad: usize,
    /// How long to wait for each echo before counting the probe lost.
    pub timeout: Duration,
}

/// What one traffic phase saw, from the client's app.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub sent: u32,
    pub sent_bytes: u64,
    pub received: u32,
    pub received_bytes: u64,
    /// Probes without an echo within the timeout.
    pub lost: u32,
    /// Packets out of the tunnel that were not an awaited echo (late, corrupt, stray).
    pub unexpected: u32,
    pub rtts: Vec<Duration>,
    /// Probes sent per kind, for the timeline.
    pub kinds: Vec<(Kind, u32)>,
}

impl Report {
    fn rtt_ms(&self) -> Option<(f64, f64, f64)> {
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let min = self.rtts.iter().map(ms).reduce(f64::min)?;
        let max = self.rtts.iter().map(ms).reduce(f64::max)?;
        let avg = self.rtts.iter().map(ms).sum::<f64>() / self.rtts.len() as f64;
        Some((min, avg, max))
    }

    /// One line: counts each way, loss, round trips.
    pub fn summary(&self) -> String {
        let rtt = match self.rtt_ms() {
            Some((min, avg, max)) => {
                format!("round trip min {min:.3} ms avg {avg:.3} ms max {max:.3} ms")
            }
            None => "no round trip".into(),
        };
        format!(
            "client -> server {} packets {} bytes, server -> client {} packets {} bytes, lost {}, {rtt}",
            self.sent, self.sent_bytes, self.received, self.received_bytes, self.lost
        )
    }

    /// What was sent, e.g. "20 ICMP echo, 10 UDP, 10 ICMPv6 echo".
    pub fn what(&self) -> String {
        let parts: Vec<String> = self
            .kinds
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        parts.join(", ")
    }
}

/// Sends the plan's probes from the virtual IPs to `target4` / `target6` through `app`, one
/// at a time, and waits for each echo.
pub async fn exchange(
    app: &mut AppPackets,
    vips: &[IpAddr],
    target4: IpAddr,
    target6: IpAddr,
    plan: &Plan,
) -> Result<Report, String> {
    let vip4 = vips.iter().copied().find(IpAddr::is_ipv4);
    let vip6 = vips.iter().copied().find(IpAddr::is_ipv6);
    let mut r = Report::default();
    let mut tag = 0u32;
    for &(kind, count) in &plan.probes {
        let (src, dst) = match kind {
            Kind::Icmp | Kind::Udp => (vip4, target4),
            Kind::Icmp6 => (vip6, target6),
        };
        let Some(src) = src else { continue };
        r.kinds.push((kind, count));
        for _ in 0..count {
            tag += 1;
            let p = probe(kind, src, dst, tag, plan.pad)
                .ok_or_else(|| format!("cannot build a {kind} probe from {src} to {dst}"))?;
            let sent_at = tokio::time::Instant::now();
            app.to_tunnel
                .send(p.clone())
                .await
                .map_err(|_| "the client's packet path is closed")?;
            r.sent += 1;
            r.sent_bytes += p.len() as u64;
            let deadline = sent_at + plan.timeout;
            loop {
                match tokio::time::timeout_at(deadline, app.from_tunnel.recv()).await {
                    Err(_) => {
                        r.lost += 1;
                        break;
                    }
                    Ok(None) => return Err("the client's packet path closed".into()),
                    Ok(Some(reply)) => {
                        if reply_tag(&reply) == Some((kind, tag)) {
                            r.rtts.push(sent_at.elapsed());
                            r.received += 1;
                            r.received_bytes += reply.len() as u64;
                            break;
                        }
                        r.unexpected += 1;
                    }
                }
            }
        }
    }
    Ok(r)
}

/// Sends a probe from `src` to `dst` every `every` until one comes back: the time from the
/// call to that answer (the outage the app sees while the path is disrupted) and the probes
/// sent unanswered before it. An error after `limit`.
pub async fn until_answered(
    app: &mut AppPackets,
    src: IpAddr,
    dst: IpAddr,
    every: Duration,
    limit: Duration,
) -> Result<(Duration, u32), String> {
    let kind = if src.is_ipv4() {
        Kind::Icmp
    } else {
        Kind::Icmp6
    };
    let started = tokio::time::Instant::now();
    let deadline = started + limit;
    // Tags far from the exchange phases' so a late echo of theirs is not taken for ours.
    let first_tag = 0x4000_0000u32;
    let mut tag = first_tag;
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!("no answer within {limit:?}"));
                }
                tag += 1;
                let p = probe(kind, src, dst, tag, 8)
                    .ok_or_else(|| format!("cannot build a probe from {src} to {dst}"))?;
                // A full queue while the tunnel is down is loss like any other.
                let _ = app.to_tunnel.try_send(p);
            }
            reply = app.from_tunnel.recv() => match reply {
                None => return Err("the client's packet path closed".into()),
                Some(reply) => {
                    if let Some((k, t)) = reply_tag(&reply) {
                        if k == kind && t > first_tag {
                            return Ok((started.elapsed(), t - first_tag - 1));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roam_runtime::echo::echo_reply;
    use roam_runtime::packet_io::{ChannelPackets, PacketIo};

    fn plan(timeout_ms: u64) -> Plan {
        Plan {
            probes: vec![(Kind::Icmp, 3), (Kind::Udp, 2), (Kind::Icmp6, 2)],
            pad: 16,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    async fn run(app: &mut AppPackets, vips: &[IpAddr], p: &Plan) -> Report {
        exchange(
            app,
            vips,
            "203.0.113.1".parse().unwrap(),
            "2001:db8:203::1".parse().unwrap(),
            p,
        )
        .await
        .unwrap()
    }

    fn vips() -> Vec<IpAddr> {
        vec![
            "198.18.0.1".parse().unwrap(),
            "2001:db8:ffff::1".parse().unwrap(),
        ]
    }

    /// The client's channel answered by an echo on the other end: every probe comes back.
    #[tokio::test]
    async fn probes_come_back_through_an_echo() {
        let (mut side, mut app) = ChannelPackets::new(8);
        let relay = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let n = side.recv(&mut buf).await.unwrap();
                // A stray packet first, then the echo.
                side.send(&buf[..n]).await.unwrap();
                if let Some(r) = echo_reply(&buf[..n]) {
                    side.send(&r).await.unwrap();
                }
            }
        });
        let r = run(&mut app, &vips(), &plan(2000)).await;
        relay.abort();
        assert_eq!((r.sent, r.received, r.lost, r.unexpected), (7, 7, 0, 7));
        assert_eq!(r.sent_bytes, r.received_bytes);
        assert_eq!(r.rtts.len(), 7);
        assert_eq!(r.what(), "3 ICMP echo, 2 UDP, 2 ICMPv6 echo");
        assert!(
            r.summary().contains("lost 0, round trip min"),
            "{}",
            r.summary()
        );
    }

    #[tokio::test]
    async fn silence_is_loss_and_ipv6_needs_an_address() {
        let (_side, mut app) = ChannelPackets::new(8);
        let r = run(&mut app, &vips()[..1], &plan(20)).await;
        assert_eq!((r.sent, r.received, r.lost), (5, 0, 5));
        assert_eq!(r.what(), "3 ICMP echo, 2 UDP");
        assert!(r.summary().contains("no round trip"));
    }
}
