//! UDP encapsulation framing of RFC 3948: the non-ESP marker in front of IKE on port 4500,
//! the one-byte NAT keepalive, and ESP.

use super::header::HEADER_LEN;

/// The four zero bytes that precede IKE messages on the NAT-T port.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The NAT keepalive byte (RFC 3948 §2.3).
pub const KEEPALIVE: u8 = 0xff;

/// Smallest ESP packet we classify as such: SPI and sequence number.
const ESP_MIN_LEN: usize = 8;

/// What a datagram received on a NAT-T (port 4500) flow carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NattDatagram<'a> {
    /// An IKE message, marker removed.
    Ike(&'a [u8]),
    /// An ESP packet (starts with a non-zero SPI).
    Esp(&'a [u8]),
    /// A NAT keepalive (a single 0xFF byte).
    Keepalive,
    /// Too short or otherwise unusable.
    Invalid,
}

/// Classifies a datagram of a NAT-T flow.
pub fn classify(datagram: &[u8]) -> NattDatagram<'_> {
    if datagram == [KEEPALIVE] {
        return NattDatagram::Keepalive;
    }
    match datagram.split_first_chunk::<4>() {
        Some((marker, ike)) if *marker == NON_ESP_MARKER && ike.len() >= HEADER_LEN => {
            NattDatagram::Ike(ike)
        }
        Some((marker, _)) if *marker != NON_ESP_MARKER && datagram.len() >= ESP_MIN_LEN => {
            NattDatagram::Esp(datagram)
        }
        _ => NattDatagram::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive() {
        assert_eq!(classify(&[0xff]), NattDatagram::Keepalive);
        assert_eq!(classify(&[0xfe]), NattDatagram::Invalid);
        assert_eq!(classify(&[]), NattDatagram::Invalid);
    }

    #[test]
    fn ike_with_marker() {
        let mut d = vec![0, 0, 0, 0];
        d.extend_from_slice(&[0x42; 28]);
        assert_eq!(classify(&d), NattDatagram::Ike(&d[4..]));
        assert_eq!(classify(&d[..31]), NattDatagram::Invalid);
    }

    #[test]
    fn esp() {
        let d = [0, 0, 0x10, 0x01, 0, 0, 0, 1];
        assert_eq!(classify(&d), NattDatagram::Esp(&d));
        assert_eq!(classify(&d[..7]), NattDatagram::Invalid);
        // Two 0xFF bytes is not a keepalive; too short for ESP.
        assert_eq!(classify(&[0xff, 0xff]), NattDatagram::Invalid);
        // A zero SPI with too little behind it.
        assert_eq!(classify(&[0; 8]), NattDatagram::Invalid);
    }
}
