//! The session's data path: ESP opened in place for the TUN (with the connection holding
//! the SPI), packets from the TUN sealed into ESP under the negotiated selectors (never in
//! the clear), the volume and sequence-number check that asks for a CHILD SA rekey, and the
//! counters.

use std::time::Instant;

use super::{connection, DataStats, Datagram, PacketDrop, Received, Session};
use crate::esp::peek_spi;
use crate::packet;

impl Session {
    /// Opens ESP with the connection holding the packet's SPI (the current one by default).
    pub(super) fn decapsulate(&mut self, now: Instant, data: &mut [u8]) -> Received {
        let spi = peek_spi(data).unwrap_or(0);
        if !self.esp.contains(spi) {
            for side in [&mut self.next, &mut self.replaced] {
                if let Some(c) = side.as_mut().filter(|c| c.esp.contains(spi)) {
                    return connection::open_esp(
                        &mut c.ike,
                        &mut c.esp,
                        &mut self.stats,
                        now,
                        data,
                    );
                }
            }
        }
        connection::open_esp(&mut self.ike, &mut self.esp, &mut self.stats, now, data)
    }

    /// An IP packet from the TUN: encapsulated into `out` as an ESP datagram for the server
    /// when connected and the selectors allow it; otherwise dropped (never sent in the clear).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<Datagram, PacketDrop> {
        let result = self.encapsulate(packet, out);
        if result.is_ok() {
            self.ike.note_outbound(now);
            self.check_volume(now);
        }
        if matches!(
            result,
            Err(PacketDrop::NotConnected | PacketDrop::NotIp | PacketDrop::OutsideSelectors)
        ) {
            self.stats.dropped_outbound += 1;
        }
        result
    }

    fn encapsulate(&mut self, packet: &[u8], out: &mut [u8]) -> Result<Datagram, PacketDrop> {
        let (Some(esp), Some(child)) = (self.esp.outbound(), self.ike.child()) else {
            return Err(PacketDrop::NotConnected);
        };
        let flow = packet::flow(packet).ok_or(PacketDrop::NotIp)?;
        if !packet::allowed(&flow, &child.ts_local, &child.ts_remote) {
            return Err(PacketDrop::OutsideSelectors);
        }
        let len = esp.encapsulate(packet, out)?;
        let (local, remote) = self.ike.path();
        Ok(Datagram { local, remote, len })
    }

    /// Asks IKE for a CHILD SA rekey once the current SA nears the end of its sequence
    /// numbers or crosses the configured volume (a few comparisons per packet).
    fn check_volume(&mut self, now: Instant) {
        if self.volume_rekey_asked {
            return;
        }
        let l = self.ike.lifetimes();
        let Some(esp) = self.esp.current() else {
            return;
        };
        let c = esp.counters();
        let due =
            crate::ike::lifetime::seq_exhausting(esp.outbound.packets_left(), esp.outbound.esn())
                || crate::ike::lifetime::volume_exceeded(
                    c.packets_out + c.packets_in,
                    c.bytes_out + c.bytes_in,
                    l.child_rekey_packets,
                    l.child_rekey_bytes,
                );
        if due {
            self.volume_rekey_asked = true;
            self.ike.rekey_child(now);
            self.flush(now);
        }
    }

    /// The data path's counters (summed over the CHILD SAs since connecting).
    pub fn data_stats(&self) -> DataStats {
        let replaced = self.replaced.as_ref().map(|c| c.esp.counters());
        DataStats {
            esp: self.esp.counters().sum(&replaced.unwrap_or_default()),
            ..self.stats
        }
    }

    /// The largest inner packet that fits the path MTU `mtu` after ESP in UDP, or in a TCP
    /// frame (TCP header with timestamps, and the length field) (0 before the CHILD SA exists).
    pub fn max_packet(&self, mtu: usize) -> usize {
        let transport = match self.transport {
            super::Transport::Udp => 8,
            super::Transport::Tcp => 32 + crate::wire::tcp::LENGTH_LEN,
        };
        let outer = if self.ike.path().1.is_ipv6() { 40 } else { 20 } + transport;
        self.esp
            .current()
            .map(|e| e.outbound.max_payload(mtu.saturating_sub(outer)))
            .unwrap_or(0)
    }
}
