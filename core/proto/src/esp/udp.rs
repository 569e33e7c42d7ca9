//! UDP encapsulation of ESP (RFC 3948) on the NAT-T port: an ESP packet is the whole UDP
//! payload, with no marker (IKE is the one with the four-zero-byte marker), and a lone 0xFF
//! byte is a NAT keepalive. The session layer owns the sockets; this module gives it the
//! sizes, the keepalive datagram, the UDP header for raw paths, and the demultiplexing.

pub use crate::wire::natt::{classify, NattDatagram, KEEPALIVE, NON_ESP_MARKER};

use super::{EspError, Outbound};

/// The NAT-T port (RFC 3948 §2).
pub const NATT_PORT: u16 = 4500;
/// Bytes of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Bytes of an outer IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Bytes of an outer IPv6 header without extension headers.
pub const IPV6_HEADER_LEN: usize = 40;

/// The NAT keepalive datagram (RFC 3948 §2.3), sent to the peer's port 4500.
pub const KEEPALIVE_DATAGRAM: [u8; 1] = [KEEPALIVE];

/// Room left for the ESP packet in an outer packet of `path_mtu` bytes: the outer IP header
/// and, with UDP encapsulation, the UDP header come off. Feed the result to
/// [`super::Outbound::max_payload`] to get the inner MTU.
pub fn esp_mtu(path_mtu: usize, outer_ipv6: bool, udp_encap: bool) -> usize {
    let ip = if outer_ipv6 {
        IPV6_HEADER_LEN
    } else {
        IPV4_HEADER_LEN
    };
    let udp = if udp_encap { UDP_HEADER_LEN } else { 0 };
    path_mtu.saturating_sub(ip + udp)
}

/// Writes the UDP header of an encapsulated ESP packet of `esp_len` bytes. The checksum is
/// zero, as RFC 3948 §2.1 says senders should send it over IPv4 (IPv6 needs one computed
/// over the pseudo-header: leave that to the stack). Returns None if the length cannot be
/// expressed.
pub fn udp_header(src_port: u16, dst_port: u16, esp_len: usize) -> Option<[u8; UDP_HEADER_LEN]> {
    let len = u16::try_from(esp_len.checked_add(UDP_HEADER_LEN)?).ok()?;
    let mut h = [0u8; UDP_HEADER_LEN];
    let [a, b, c, d, e, f, _, _] = &mut h;
    [*a, *b] = src_port.to_be_bytes();
    [*c, *d] = dst_port.to_be_bytes();
    [*e, *f] = len.to_be_bytes();
    Some(h)
}

/// Bytes in front of an inner packet when it is encapsulated into a whole UDP datagram in
/// place by [`encapsulate_udp_in_place`]: the UDP header, then the ESP header and IV.
pub fn udp_headroom(sa: &Outbound) -> usize {
    UDP_HEADER_LEN + sa.headroom()
}

/// Encapsulates in place into a UDP datagram (for raw sockets and batched sends that build
/// whole datagrams): the inner packet is `buf[udp_headroom(sa)..][..payload_len]` (a TUN
/// read straight into that offset), the datagram `UDP header | ESP packet` is written over
/// `buf[..n]`, `n` returned. No copy of the packet is made. `buf` needs
/// [`UDP_HEADER_LEN`] + [`Outbound::encapsulated_len`] bytes.
pub fn encapsulate_udp_in_place(
    sa: &mut Outbound,
    buf: &mut [u8],
    payload_len: usize,
    src_port: u16,
    dst_port: u16,
) -> Result<usize, EspError> {
    let needed = UDP_HEADER_LEN.saturating_add(sa.encapsulated_len(payload_len));
    let have = buf.len();
    if have < needed || u16::try_from(needed).is_err() {
        return Err(EspError::BufferTooSmall { needed, have });
    }
    let (head, esp) = buf.split_at_mut(UDP_HEADER_LEN);
    let n = sa.encapsulate_in_place(esp, payload_len)?;
    let h = udp_header(src_port, dst_port, n).ok_or(EspError::BufferTooSmall { needed, have })?;
    head.copy_from_slice(&h);
    Ok(UDP_HEADER_LEN + n)
}

/// The ESP packet in a datagram received on the NAT-T port, if it holds one.
pub fn esp_payload(datagram: &[u8]) -> Option<&[u8]> {
    match classify(datagram) {
        NattDatagram::Esp(p) => Some(p),
        _ => None,
    }
}

/// The same for a mutable datagram, for decapsulating in place.
pub fn esp_payload_mut(datagram: &mut [u8]) -> Option<&mut [u8]> {
    match classify(datagram) {
        NattDatagram::Esp(_) => Some(datagram),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(esp_mtu(1500, false, true), 1472);
        assert_eq!(esp_mtu(1500, true, true), 1452);
        assert_eq!(esp_mtu(1500, false, false), 1480);
        assert_eq!(esp_mtu(10, true, true), 0);
    }

    #[test]
    fn header() {
        assert_eq!(
            udp_header(4500, 4500, 100),
            Some([0x11, 0x94, 0x11, 0x94, 0, 108, 0, 0])
        );
        assert_eq!(
            udp_header(1, 2, 65535 - 8).map(|h| h[4..6] == [0xff, 0xff]),
            Some(true)
        );
        assert_eq!(udp_header(1, 2, 65535 - 7), None);
        assert_eq!(udp_header(1, 2, usize::MAX), None);
    }

    /// A datagram built in place carries the same ESP packet as the copying path, and opens.
    #[test]
    fn in_place_datagram() {
        use crate::crypto::aead::Backend;
        use crate::esp::cipher::Cipher;
        use crate::esp::Inbound;
        use crate::rng::SeededRng;
        use crate::wire::{EncrId, IntegId};

        let key = [7u8; 36];
        let cipher = || {
            Cipher::with_backend(
                Backend::DEFAULT,
                EncrId::AES_GCM_16,
                Some(256),
                IntegId::NONE,
                &key,
                &[],
            )
            .unwrap()
        };
        let mut a =
            Outbound::with_cipher(0x0102_0304, false, cipher(), &mut SeededRng::new(1)).unwrap();
        let mut b =
            Outbound::with_cipher(0x0102_0304, false, cipher(), &mut SeededRng::new(1)).unwrap();
        let mut inb = Inbound::with_cipher(0x0102_0304, false, cipher()).unwrap();
        let mut inner = vec![0x33u8; 100];
        inner[0] = 0x45;

        let mut copied = vec![0u8; b.encapsulated_len(100)];
        let m = b.encapsulate(&inner, &mut copied).unwrap();

        let head = udp_headroom(&a);
        assert_eq!(head, 8 + 8 + 8);
        let mut buf = vec![0u8; 8 + a.encapsulated_len(100) + 5];
        buf[head..head + 100].copy_from_slice(&inner);
        let n = encapsulate_udp_in_place(&mut a, &mut buf, 100, 4500, 4501).unwrap();
        assert_eq!(n, 8 + m);
        assert_eq!(buf[..8], udp_header(4500, 4501, m).unwrap());
        assert_eq!(&buf[8..n], &copied[..m], "same packet as the copying path");
        let esp = esp_payload_mut(&mut buf[8..n]).unwrap();
        let r = inb.decapsulate(esp).unwrap();
        assert_eq!(&buf[8..n][r], &inner[..]);

        let mut small = vec![0u8; 8 + a.encapsulated_len(100) - 1];
        assert!(matches!(
            encapsulate_udp_in_place(&mut a, &mut small, 100, 1, 2),
            Err(EspError::BufferTooSmall { .. })
        ));
        let mut huge = vec![0u8; 70_000];
        huge[head] = 0x45;
        assert!(matches!(
            encapsulate_udp_in_place(&mut a, &mut huge, 65_535, 1, 2),
            Err(EspError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn demux() {
        let esp = [0xc0, 0xff, 0xee, 0x01, 0, 0, 0, 1, 0xaa];
        assert_eq!(esp_payload(&esp), Some(&esp[..]));
        let mut m = esp;
        assert_eq!(esp_payload_mut(&mut m).map(|p| p.len()), Some(esp.len()));
        assert_eq!(esp_payload(&KEEPALIVE_DATAGRAM), None);
        assert_eq!(classify(&KEEPALIVE_DATAGRAM), NattDatagram::Keepalive);
        let mut ike = [0u8; 40];
        assert_eq!(esp_payload(&ike), None);
        assert_eq!(esp_payload_mut(&mut ike), None);
    }
}
