//! The responder's data path: one ESP SA per client, found by its inbound SPI for ESP from
//! the network and by the client's virtual IP for packets from the server's packet side.
//! Decrypted packets leave only when the client's selectors allow them (a client cannot
//! spoof another's address), authentic ESP from a new address moves the client (NAT
//! rebinding; unless `set_follow_nat(false)`, then only MOBIKE moves it), and every refused
//! packet is counted.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Instant;

use log::{debug, info, warn};

use super::{Responder, ResponderSa};
use crate::esp::{self, Counters as EspCounters, EspSa};
use crate::packet;
use crate::wire::natt::KEEPALIVE;

/// The responder's data path counters, over all clients since it started. Byte counts are
/// inner (plaintext IP) bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataStats {
    /// Decrypted packets handed to the packet side, and their bytes.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets encapsulated to clients, and their bytes.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// NAT keepalives (ignored).
    pub keepalives: u64,
    /// ESP for an SPI no client has (or too short to have one).
    pub unknown_spi: u64,
    /// ESP the client's SA refused: forged, replayed, malformed, bad padding...
    pub esp_rejected: u64,
    /// Authentic packets whose addresses the client's selectors do not allow.
    pub outside_selectors_in: u64,
    /// Packets from the packet side to an address no client has.
    pub no_route: u64,
    /// Packets to a client that its selectors do not allow (or not IP at all).
    pub outside_selectors_out: u64,
    /// Packets ESP could not encapsulate (buffer too small, sequence numbers exhausted).
    pub out_errors: u64,
    /// Clients whose address changed under authentic ESP.
    pub moved: u64,
}

impl DataStats {
    /// Datagrams from the network that carried no packet to the packet side (keepalives aside).
    pub fn dropped_inbound(&self) -> u64 {
        self.unknown_spi + self.esp_rejected + self.outside_selectors_in
    }
    /// Packets from the packet side that reached no client.
    pub fn dropped_outbound(&self) -> u64 {
        self.no_route + self.outside_selectors_out + self.out_errors
    }
}

impl Responder {
    /// An ESP datagram (UDP-encapsulated, no marker) arrived from `remote`. Decrypts it in place
    /// and returns the inner packet's range in `data` for the packet side, or None when it was
    /// dropped (and counted) or was a NAT keepalive.
    pub fn handle_esp(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: &mut [u8],
    ) -> Option<Range<usize>> {
        let _ = now;
        if data == [KEEPALIVE] {
            self.data.keepalives += 1;
            return None;
        }
        let follow = self.mobility.follow_nat;
        let Some(spi_r) = esp::peek_spi(data).and_then(|spi| self.by_spi.get(&spi).copied()) else {
            self.data.unknown_spi += 1;
            return None;
        };
        let Some(sa) = self.sas.get_mut(&spi_r) else {
            self.data.unknown_spi += 1;
            return None;
        };
        let spi = esp::peek_spi(data).unwrap_or(0);
        let esp = match sa.esp.as_mut() {
            Some(e) if e.inbound.spi() == spi => Some(e),
            _ => sa.rekey.old_esp(spi),
        };
        let (Some(esp), Some(child)) = (esp, sa.child.as_ref()) else {
            self.data.unknown_spi += 1;
            return None;
        };
        let range = match esp.decapsulate(data) {
            Ok(r) => r,
            Err(e) => {
                if !e.is_silent() {
                    debug!("responder: ESP from {remote} dropped: {e}");
                    self.data.esp_rejected += 1;
                }
                return None;
            }
        };
        // Authentic and fresh: the client is where this came from.
        if sa.peer != remote && follow {
            info!(
                "responder: client of IKE SA {spi_r:016x} moved from {} to {remote}",
                sa.peer
            );
            sa.peer = remote;
            self.data.moved += 1;
        }
        let inner = data.get(range.clone())?;
        // Inbound: the client's side (TSi) is the source, ours (TSr) the destination.
        match packet::flow(inner) {
            Some(f) if packet::allowed(&f, &child.ts_remote, &child.ts_local) => {
                self.data.packets_in += 1;
                self.data.bytes_in += inner.len() as u64;
                Some(range)
            }
            _ => {
                debug!("responder: packet from {remote} outside its selectors");
                self.data.outside_selectors_in += 1;
                None
            }
        }
    }

    /// A packet from the server's packet side (a TUN): encapsulated into `out` for the client
    /// whose virtual IP is its destination. Returns where to send `out[..len]` (from the NAT-T
    /// port, no marker); None when it was dropped (and counted).
    pub fn route_packet(&mut self, packet: &[u8], out: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let Some(flow) = packet::flow(packet) else {
            self.data.outside_selectors_out += 1;
            return None;
        };
        let Some(sa) = self
            .by_vip
            .get(&flow.dst)
            .and_then(|spi_r| self.sas.get_mut(spi_r))
        else {
            self.data.no_route += 1;
            return None;
        };
        let (Some(esp), Some(child)) = (sa.esp.as_mut(), sa.child.as_ref()) else {
            self.data.no_route += 1;
            return None;
        };
        if !packet::allowed(&flow, &child.ts_local, &child.ts_remote) {
            self.data.outside_selectors_out += 1;
            return None;
        }
        match esp.encapsulate(packet, out) {
            Ok(len) => {
                self.data.packets_out += 1;
                self.data.bytes_out += packet.len() as u64;
                Some((sa.peer, len))
            }
            Err(e) => {
                debug!("responder: cannot encapsulate for {}: {e}", sa.peer);
                self.data.out_errors += 1;
                None
            }
        }
    }

    /// The data path's counters over all clients.
    pub fn data_stats(&self) -> DataStats {
        self.data
    }

    /// The ESP counters of the client of IKE SA `spi_r`.
    pub fn client_esp_stats(&self, spi_r: u64) -> Option<EspCounters> {
        self.sas
            .get(&spi_r)
            .and_then(|s| s.esp.as_ref())
            .map(EspSa::counters)
    }

    /// The client's current address (it follows NAT rebinding and moves).
    pub fn client_addr(&self, spi_r: u64) -> Option<SocketAddr> {
        self.sas.get(&spi_r).map(|s| s.peer)
    }

    /// The IKE SA of the client that has virtual IP `vip`.
    pub fn client_by_vip(&self, vip: IpAddr) -> Option<u64> {
        self.by_vip.get(&vip).copied()
    }

    /// Keys the ESP SA of `sa`'s CHILD SA and makes the client reachable by SPI and address.
    pub(in crate::ike) fn install_data_path(&mut self, sa: &mut ResponderSa) {
        let Some(child) = sa.child.as_ref() else {
            return;
        };
        match EspSa::new(child, self.rng.as_mut()) {
            Ok(esp) => {
                self.by_spi.insert(esp.inbound.spi(), sa.handle);
                sa.esp = Some(esp);
            }
            Err(e) => {
                warn!("responder: no ESP for IKE SA {:016x}: {e}", sa.spi_r);
                return;
            }
        }
        for a in &sa.leases {
            self.by_vip.insert(*a, sa.handle);
        }
    }

    /// Whether an inbound SPI is taken by some client.
    pub(in crate::ike) fn spi_in_use(&self, spi: u32) -> bool {
        self.by_spi.contains_key(&spi)
    }

    /// The IKE SA `sa` is gone: its ESP SA, its routes, and its leases back to the pools.
    pub(super) fn forget(&mut self, sa: &mut ResponderSa) {
        if let Some(esp) = sa.esp.take() {
            let spi = esp.inbound.spi();
            if self.by_spi.get(&spi) == Some(&sa.handle) {
                self.by_spi.remove(&spi);
            }
        }
        for a in std::mem::take(&mut sa.leases) {
            if self.by_vip.get(&a) == Some(&sa.handle) {
                self.by_vip.remove(&a);
            }
            self.release_lease(a);
        }
        let spi_r = sa.handle;
        self.half_open.retain(|_, v| *v != spi_r);
        self.by_ike_spi.retain(|_, v| *v != spi_r);
        for spi in sa.rekey.inbound_spis() {
            if self.by_spi.get(&spi) == Some(&spi_r) {
                self.by_spi.remove(&spi);
            }
        }
    }
}
