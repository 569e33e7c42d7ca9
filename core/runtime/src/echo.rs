//! A packet echo for demos and test fixtures: answers ICMP/ICMPv6 echo and UDP probes on a
//! responder's packet side (the app's end of a [`ChannelPackets`]), and builds and checks the
//! probes a client sends (see [`packets`]). It stands in for hosts behind a server; it is not
//! a network stack.
//!
//! [`ChannelPackets`]: crate::packet_io::ChannelPackets

pub mod packets;

use tokio::task::JoinHandle;

use crate::packet_io::AppPackets;

pub use packets::{echo_reply, probe, reply_tag, Kind, ECHO_PORT};

/// What an echo answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Probes answered.
    pub answered: u64,
    /// Packets not answered: not a probe, or lost on purpose.
    pub ignored: u64,
}

/// Spawns the echo on the current tokio runtime: it answers every probe out of `app` until
/// the packet path closes, except the first `lose` (a testing aid: loss a client must see),
/// and returns what it did.
pub fn echo(mut app: AppPackets, lose: u64) -> JoinHandle<EchoStats> {
    tokio::spawn(async move {
        let mut s = EchoStats::default();
        let mut lose = lose;
        while let Some(p) = app.from_tunnel.recv().await {
            if lose > 0 {
                lose -= 1;
                s.ignored += 1;
                continue;
            }
            match echo_reply(&p) {
                Some(reply) => {
                    if app.to_tunnel.send(reply).await.is_err() {
                        break;
                    }
                    s.answered += 1;
                }
                None => s.ignored += 1,
            }
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::packet_io::{ChannelPackets, PacketIo};

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn the_echo_answers_probes_and_ignores_the_rest() {
        let (mut side, app) = ChannelPackets::new(8);
        let task = echo(app, 0);
        let p = probe(Kind::Icmp, a("198.18.0.1"), a("203.0.113.1"), 42, 4).unwrap();
        side.send(b"junk").await.unwrap();
        side.send(&p).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let n = side.recv(&mut buf).await.unwrap();
        assert_eq!(reply_tag(&buf[..n]), Some((Kind::Icmp, 42)));
        drop(side);
        assert_eq!(
            task.await.unwrap(),
            EchoStats {
                answered: 1,
                ignored: 1
            }
        );
    }

    #[tokio::test]
    async fn the_echo_loses_the_first_probes_on_request() {
        let (mut side, app) = ChannelPackets::new(8);
        let task = echo(app, 2);
        let (src, dst) = (a("2001:db8:ffff::1"), a("2001:db8:203::1"));
        for tag in 1..=3 {
            side.send(&probe(Kind::Icmp6, src, dst, tag, 0).unwrap())
                .await
                .unwrap();
        }
        let mut buf = vec![0u8; 2048];
        let n = side.recv(&mut buf).await.unwrap();
        assert_eq!(reply_tag(&buf[..n]), Some((Kind::Icmp6, 3)));
        drop(side);
        assert_eq!(
            task.await.unwrap(),
            EchoStats {
                answered: 1,
                ignored: 2
            }
        );
    }
}
