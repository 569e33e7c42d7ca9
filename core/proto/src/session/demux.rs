//! Where a datagram from the server goes: which connection (current, the one being made,
//! the replaced one) owns it, IKE (framed or not) to that IKE SA, ESP to the data path.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::connection::{self, Connection};
use super::{PacketDrop, Received, Session};
use crate::wire::natt::{self, NattDatagram};
use crate::wire::IKE_PORT;

/// Which connection a datagram is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    Current,
    Next,
    Replaced,
}

impl Session {
    /// A datagram arrived from `remote` on the socket bound to `local`. IKE is handled here
    /// (poll for answers and events); ESP is decrypted in place and the inner packet, if the
    /// selectors allow it, is `data[range]` for the TUN.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &mut [u8],
    ) -> Received {
        let _ = local;
        if !self.is_server_address(remote.ip()) {
            self.dropped += 1;
            return Received::Dropped(PacketDrop::NotConnected);
        }
        // Unframed IKE on port 500 (before the switch to NAT-T) may be for a new connection.
        let raw = remote.port() == IKE_PORT
            && match self.ike_owner(connection::ike_spi_i(data)) {
                Conn::Current => !self.natt,
                Conn::Next => self.next.as_ref().is_some_and(|c| !c.natt),
                Conn::Replaced => self.replaced.as_ref().is_some_and(|c| !c.natt),
            };
        let received = if raw {
            let owner = self.ike_owner(connection::ike_spi_i(data));
            self.handle_ike(owner, now, remote, data);
            Received::Control
        } else {
            match natt::classify(data) {
                NattDatagram::Ike(ike) => {
                    let owner = self.ike_owner(connection::ike_spi_i(ike));
                    self.handle_ike(owner, now, remote, ike);
                    Received::Control
                }
                NattDatagram::Keepalive => Received::Control,
                NattDatagram::Esp(_) => self.decapsulate(now, data),
                NattDatagram::Invalid => {
                    self.dropped += 1;
                    Received::Dropped(PacketDrop::NotIp)
                }
            }
        };
        self.flush(now);
        received
    }

    /// Whether `ip` may be the server for any of our connections.
    fn is_server_address(&self, ip: IpAddr) -> bool {
        self.ike.is_server_address(ip)
            || [&self.next, &self.replaced]
                .into_iter()
                .flatten()
                .any(|c| c.ike.is_server_address(ip))
    }

    /// The connection whose IKE SA has initiator SPI `spi_i` (the current one by default:
    /// it counts what nobody owns).
    fn ike_owner(&self, spi_i: Option<u64>) -> Conn {
        let owns = |c: &Option<Box<Connection>>| {
            c.as_ref()
                .is_some_and(|c| spi_i == Some(c.ike.spis().0) && spi_i != Some(self.ike.spis().0))
        };
        if owns(&self.next) {
            Conn::Next
        } else if owns(&self.replaced) {
            Conn::Replaced
        } else {
            Conn::Current
        }
    }

    fn handle_ike(&mut self, owner: Conn, now: Instant, remote: SocketAddr, msg: &[u8]) {
        let ike = match owner {
            Conn::Current => Some(&mut self.ike),
            Conn::Next => self.next.as_mut().map(|c| &mut c.ike),
            Conn::Replaced => self.replaced.as_mut().map(|c| &mut c.ike),
        };
        if let Some(ike) = ike {
            ike.handle_message_from(now, remote, msg);
        }
    }
}
