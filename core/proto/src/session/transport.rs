//! The transport of the session's path: UDP (port 500, then NAT-T on 4500) or one TCP stream
//! per path (RFC 9329), which the runtime opens, frames and reads. Over TCP the session speaks
//! the NAT-T framing from the first message (the non-ESP marker in front of IKE, ESP as is: the
//! body of a TCP frame is exactly a NAT-T datagram), stays on the port it connected to, sends
//! no NAT keepalives, does not fragment IKE messages and does not retransmit requests (TCP
//! does; the request still gives up after the time its retransmissions would have taken). A
//! TCP connection that closes under an IKE SA is a lost path: the session reconnects.

use std::net::SocketAddr;
use std::time::Instant;

use super::{DisconnectReason, Session, State};
use crate::ike::initiator::Phase;

/// How the session's datagrams travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP datagrams (IKE on port 500, then NAT-T framing on port 4500).
    #[default]
    Udp,
    /// Frames on a TCP connection the runtime opened to the server (RFC 9329).
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        })
    }
}

impl Session {
    /// The transport of the current path (and of new attempts).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Sets the transport before `connect` (UDP unless told otherwise).
    pub fn set_transport(&mut self, transport: Transport) {
        if self.state == State::Idle {
            self.transport = transport;
        }
    }

    /// The runtime moves the session to `transport`: `locals` are the local addresses it can
    /// send from on that transport (for TCP, each connection's local address), `server` the
    /// server's address and port on it. An attempt whose IKE_SA_INIT went unanswered starts
    /// over at once (the fallback from UDP to TCP); a session waiting to reconnect uses it on
    /// its next attempt; an established connection is deleted on its path and replaced by a
    /// new one on the new transport (back to UDP after a network change).
    pub fn switch_transport(
        &mut self,
        now: Instant,
        transport: Transport,
        locals: &[SocketAddr],
        server: SocketAddr,
    ) {
        let changed = transport != self.transport || server != self.server;
        self.locals = locals.iter().take(16).copied().collect();
        match self.state {
            State::Idle | State::Disconnected | State::Closing => {
                self.transport = transport;
                self.server = server;
            }
            State::Reconnecting => {
                self.transport = transport;
                self.server = server;
                if let Some(b) = self.backoff.as_mut() {
                    b.hurry(now);
                }
            }
            State::Connecting if !self.ike.has_keys() => {
                log::info!("starting over on {transport} to {server}");
                self.transport = transport;
                self.server = server;
                self.start_attempt(now);
            }
            _ if !changed => {}
            _ => {
                log::info!(
                    "moving from {} to {transport}: a new connection",
                    self.transport
                );
                self.abandon_next(now);
                self.retry_next_at = None;
                if matches!(self.ike.phase(), Phase::Established | Phase::Auth) {
                    self.ike.close(now);
                    self.flush(now);
                }
                self.transport = transport;
                self.server = server;
                self.start_attempt(now);
            }
        }
    }

    /// A probe of the UDP path while the session runs on TCP: the IKE_SA_INIT request of a
    /// throwaway IKE SA (never continued) for the runtime to send from `local` to the
    /// server's UDP `server` address. Any answer shows that UDP gets through again, and the
    /// runtime moves the session back to it (RFC 9329 prefers UDP where it works). The answer
    /// itself, should it reach the session, is dropped like any message of an unknown SA.
    pub fn udp_probe(
        &mut self,
        now: Instant,
        local: SocketAddr,
        server: SocketAddr,
    ) -> Option<Vec<u8>> {
        let mut probe =
            crate::ike::initiator::Initiator::new(self.params.clone(), Box::new(self.rng.clone()));
        probe.set_transport(Transport::Udp);
        probe.start(now, local, server);
        probe.poll_message()
    }

    /// The runtime's TCP connection from `local` closed (reset, end of stream, a framing error):
    /// the IKE SA on it lost its path (RFC 9329 §6.2: only the initiator reopens, and a new
    /// IKE SA on a new connection is the simple way back). Ignored on UDP.
    pub fn transport_closed(&mut self, now: Instant, local: SocketAddr) {
        if self.transport != Transport::Tcp {
            return;
        }
        let on_current = self.ike.path().0 == local || self.local == local;
        if let Some(c) = self.next.as_mut().filter(|c| c.local == local) {
            c.ike.force_down(DisconnectReason::PathLost);
        }
        if !on_current {
            self.flush(now);
            return;
        }
        match self.state {
            State::Idle | State::Disconnected | State::Reconnecting => {}
            State::Closing => {
                // The DELETE cannot be answered any more.
                self.ike.force_down(DisconnectReason::Closed);
            }
            _ => {
                log::info!("the TCP connection from {local} closed: path lost");
                self.ike.force_down(DisconnectReason::PathLost);
            }
        }
        self.flush(now);
    }
}
