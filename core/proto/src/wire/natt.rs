//! UDP encapsulation framing of RFC 3948: the non-ESP marker in front of IKE on port 4500,
//! the one-byte NAT keepalive, and ESP.

/// The four zero bytes that precede IKE messages on the NAT-T port.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

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
    let _ = datagram;
    NattDatagram::Invalid
}
