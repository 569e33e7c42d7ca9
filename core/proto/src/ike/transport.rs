//! What the IKE SA does differently over TCP (RFC 9329 §6): no NAT keepalives, no IKE
//! fragmentation, and no retransmission of requests (TCP delivers them; a request still gives
//! up after the time its UDP retransmissions would have taken). Also the session's way to end
//! the IKE SA when its TCP connection is gone.

use crate::ike::initiator::Initiator;
use crate::session::{DisconnectReason, Transport};

impl Initiator {
    /// The transport the IKE SA's messages travel on (set before `start`).
    pub fn set_transport(&mut self, transport: Transport) {
        self.transport = transport;
        self.tm.set_reliable(transport == Transport::Tcp);
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Over TCP: no NAT keepalives (the connection keeps the NAT mapping), no fragments.
    pub(super) fn over_tcp(&self) -> bool {
        self.transport == Transport::Tcp
    }

    /// Ends the IKE SA at once for `reason` (its path is gone; nothing can be sent).
    pub fn force_down(&mut self, reason: DisconnectReason) {
        self.finish(reason);
    }
}
