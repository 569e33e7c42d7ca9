//! One connection of the session besides the current one: an IKE SA (`Initiator`), the ESP
//! SAs of its CHILD SAs, its path and framing. Used for make-before-break when the server
//! cannot move the SAs (no MOBIKE): the `next` connection is made from the new path while the
//! current one carries traffic, and the `replaced` one keeps receiving for a grace time while
//! its DELETE is in flight. Also the helpers the session's current connection shares with
//! it: framing IKE for the path, keying a CHILD SA's ESP, opening ESP under the selectors.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::esp_set::{self, EspSet};
use super::{DataStats, PacketDrop, Received, Transmit};
use crate::esp::EspSa;
use crate::ike::initiator::{Initiator, Phase};
use crate::packet;
use crate::wire::natt;
use crate::wire::{IKE_PORT, NATT_PORT};

/// A connection that is not (or no longer) the session's current one.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) ike: Initiator,
    pub(crate) esp: EspSet,
    /// IKE goes to the NAT-T port with the non-ESP marker (RFC 3948).
    pub(crate) natt: bool,
    pub(crate) local: SocketAddr,
    /// The server, with the profile's port (500 unless it says otherwise).
    pub(crate) server: SocketAddr,
    /// A replaced connection: its ESP SAs receive until this instant.
    pub(crate) receive_until: Option<Instant>,
}

impl Connection {
    /// Starts IKE_SA_INIT of `ike` (a fresh IKE SA) from `local` to `server`.
    pub(crate) fn start(
        mut ike: Initiator,
        now: Instant,
        local: SocketAddr,
        server: SocketAddr,
        locals: &[SocketAddr],
    ) -> Self {
        ike.start(now, local, server);
        if !locals.is_empty() {
            // The IKE SA learns the addresses it may use later.
            let _ = ike.network_changed(now, locals);
        }
        let natt = server.port() != IKE_PORT || ike.transport() == super::Transport::Tcp;
        Self {
            ike,
            esp: EspSet::default(),
            natt,
            local,
            server,
            receive_until: None,
        }
    }

    /// Moves the IKE SA's datagrams (and a keepalive) into `out`, framed for its path.
    pub(crate) fn drain(&mut self, out: &mut VecDeque<Transmit>) {
        drain(&mut self.ike, &mut self.natt, self.local, self.server, out);
    }

    /// The IKE SA's timer, and the end of the ESP grace of a replaced connection.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let grace = self.receive_until.filter(|_| !self.esp.is_empty());
        match (self.ike.poll_timeout(), grace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the IKE SA's timers and ends the ESP grace once over.
    pub(crate) fn handle_timeout(&mut self, now: Instant, carry_into: &mut EspSet) {
        self.ike.handle_timeout(now);
        self.esp.on_timeout(now);
        if self.receive_until.is_some_and(|t| now >= t) && !self.esp.is_empty() {
            carry_into.carry(&self.esp.counters());
            self.esp.clear();
        }
    }

    /// Nothing is left to do: the IKE SA is over and the ESP SAs no longer receive.
    pub(crate) fn finished(&self) -> bool {
        matches!(self.ike.phase(), Phase::Dead | Phase::Idle) && self.esp.is_empty()
    }
}

/// The first eight octets of an IKE header: the initiator's SPI.
pub(crate) fn ike_spi_i(message: &[u8]) -> Option<u64> {
    message.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
}

/// Switches to the NAT-T port once IKE_SA_INIT showed the server does NAT-T, then frames the
/// IKE SA's messages for the path (non-ESP marker on port 4500) and queues a keepalive due.
pub(crate) fn drain(
    ike: &mut Initiator,
    natt: &mut bool,
    local: SocketAddr,
    server: SocketAddr,
    out: &mut VecDeque<Transmit>,
) {
    if !*natt && ike.has_keys() && ike.peer().nat.supported {
        *natt = true;
        ike.set_path(local, SocketAddr::new(server.ip(), NATT_PORT));
    }
    let (local, remote) = ike.ike_path();
    while let Some(msg) = ike.poll_message() {
        let payload = if *natt {
            let mut v = Vec::with_capacity(4 + msg.len());
            v.extend_from_slice(&natt::NON_ESP_MARKER);
            v.extend_from_slice(&msg);
            v
        } else {
            msg
        };
        out.push_back(Transmit {
            local,
            remote,
            payload,
        });
    }
    if ike.poll_keepalive() {
        let (local, remote) = ike.path();
        out.push_back(Transmit {
            local,
            remote,
            payload: vec![natt::KEEPALIVE],
        });
    }
}

/// Keys the ESP SA of `ike`'s CHILD SA `spi_in` and accepts inbound packets on it.
pub(crate) fn install_child(ike: &mut Initiator, esp: &mut EspSet, spi_in: u32) {
    let Some(child) = ike.child_sa(spi_in).cloned() else {
        return;
    };
    match EspSa::new(&child, ike.rng()) {
        Ok(sa) => esp.install(sa),
        Err(e) => log::warn!("ESP SA {spi_in:08x}: {e}"),
    }
}

/// Decrypts an ESP datagram in place with `esp`; the inner packet is for the TUN when
/// `ike`'s CHILD SA selectors allow it.
pub(crate) fn open_esp(
    ike: &mut Initiator,
    esp: &mut EspSet,
    stats: &mut DataStats,
    now: Instant,
    data: &mut [u8],
) -> Received {
    let range = match esp.decapsulate(data) {
        Ok(r) => r,
        Err(esp_set::Open::NoSa) => return Received::Dropped(PacketDrop::NotConnected),
        Err(esp_set::Open::Esp(e)) => return Received::Dropped(e.into()),
    };
    ike.note_inbound(now);
    let Some(child) = ike.child() else {
        return Received::Dropped(PacketDrop::NotConnected);
    };
    let inner = data.get(range.clone()).unwrap_or_default();
    // Inbound: the peer's side is the source, ours the destination.
    match packet::flow(inner) {
        Some(f) if packet::allowed(&f, &child.ts_remote, &child.ts_local) => {
            Received::Packet(range)
        }
        _ => {
            stats.dropped_inbound_selectors += 1;
            Received::Dropped(PacketDrop::OutsideSelectors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initiator_spi_is_read_from_the_header_only_when_present() {
        let mut h = [0u8; 28];
        h[..8].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(ike_spi_i(&h), Some(0x0102_0304_0506_0708));
        assert_eq!(ike_spi_i(&h[..7]), None);
        assert_eq!(ike_spi_i(&[]), None);
    }
}
