//! TCP encapsulation of IKE and ESP (RFC 9329): the "IKETCP" stream prefix the initiator
//! sends once at the start of a connection, the frame encoder (a 16-bit length that counts
//! itself, then the non-ESP marker and an IKE message, or an ESP packet), and a bounded stream
//! decoder. The frame body is exactly what a UDP datagram on the NAT-T port carries, so the
//! session and the responder handle it like one; only NAT keepalives never travel over TCP.
//!
//! The decoder is fed bytes as the stream delivers them and yields whole frames. It never
//! holds more than one frame (at most its cap, 65 535 bytes by default); a length under the
//! minimum, a frame over the cap, a bad prefix or a keepalive-sized frame is a [`TcpFrameError`]
//! after which the connection must be closed (the stream cannot be resynchronised).

use super::header::HEADER_LEN;
use super::natt::NON_ESP_MARKER;

/// The six octets the initiator sends first on every TCP connection (RFC 9329 §4).
pub const STREAM_PREFIX: [u8; 6] = *b"IKETCP";
/// The length field in front of every frame (it counts itself).
pub const LENGTH_LEN: usize = 2;
/// The largest frame the length field can describe, length field included.
pub const MAX_FRAME: usize = u16::MAX as usize;
/// The smallest frame body: an ESP header (SPI and sequence number).
pub const MIN_BODY: usize = 8;
/// The smallest IKE frame body: the non-ESP marker and an IKE header.
pub const MIN_IKE_BODY: usize = NON_ESP_MARKER.len() + HEADER_LEN;

/// Why a TCP stream must be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpFrameError {
    /// The stream did not start with "IKETCP".
    #[error("the stream does not start with the IKETCP prefix")]
    BadPrefix,
    /// A length field under the minimum frame (`MIN_BODY` bytes behind the field).
    #[error("frame length {len} is under the minimum {min}")]
    TooShort { len: usize, min: usize },
    /// A frame longer than this decoder's cap, or a body the length field cannot describe.
    #[error("frame length {len} is over the cap {max}")]
    TooLong { len: usize, max: usize },
}

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// The non-ESP marker and an IKE message.
    Ike,
    /// An ESP packet.
    Esp,
}

/// The length field for a frame whose body is `body_len` bytes.
pub fn length_field(body_len: usize) -> Result<[u8; LENGTH_LEN], TcpFrameError> {
    let len = body_len.saturating_add(LENGTH_LEN);
    if body_len < MIN_BODY {
        return Err(TcpFrameError::TooShort {
            len,
            min: MIN_BODY + LENGTH_LEN,
        });
    }
    let field = u16::try_from(len).map_err(|_| TcpFrameError::TooLong {
        len,
        max: MAX_FRAME,
    })?;
    Ok(field.to_be_bytes())
}

/// Appends a frame carrying `body` (a NAT-T datagram: marker and IKE, or ESP) to `out`.
pub fn encode_frame(body: &[u8], out: &mut Vec<u8>) -> Result<(), TcpFrameError> {
    let field = length_field(body.len())?;
    out.reserve(LENGTH_LEN + body.len());
    out.extend_from_slice(&field);
    out.extend_from_slice(body);
    Ok(())
}

/// Appends a frame carrying the IKE message `message` (the marker is added here) to `out`.
pub fn encode_ike(message: &[u8], out: &mut Vec<u8>) -> Result<(), TcpFrameError> {
    let body_len = NON_ESP_MARKER.len() + message.len();
    let field = length_field(body_len)?;
    out.reserve(LENGTH_LEN + body_len);
    out.extend_from_slice(&field);
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(message);
    Ok(())
}

/// The kind of a frame body, checking the minimum for it.
fn classify(body: &[u8]) -> Result<FrameKind, TcpFrameError> {
    let len = body.len() + LENGTH_LEN;
    match body.first_chunk::<4>() {
        Some(m) if *m == NON_ESP_MARKER && body.len() >= MIN_IKE_BODY => Ok(FrameKind::Ike),
        Some(m) if *m == NON_ESP_MARKER => Err(TcpFrameError::TooShort {
            len,
            min: MIN_IKE_BODY + LENGTH_LEN,
        }),
        _ if body.len() >= MIN_BODY => Ok(FrameKind::Esp),
        _ => Err(TcpFrameError::TooShort {
            len,
            min: MIN_BODY + LENGTH_LEN,
        }),
    }
}

/// What one call to [`FrameDecoder::feed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input consumed (the rest belongs to later frames: feed it again).
    pub consumed: usize,
    /// A whole frame is ready: [`FrameDecoder::frame`] gives it until the next `feed`.
    pub frame: Option<FrameKind>,
}

/// Where the decoder is in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// Reading the stream prefix (this many bytes of it matched so far).
    Prefix(usize),
    /// Reading frames.
    Frames,
    /// This error was seen: nothing more is accepted.
    Failed(TcpFrameError),
}

/// A bounded decoder of one TCP stream of frames.
#[derive(Debug)]
pub struct FrameDecoder {
    stage: Stage,
    /// The frame being read: its length field, then its body.
    buf: Vec<u8>,
    /// A whole frame sits in `buf` (cleared by the next `feed`).
    ready: bool,
    /// The largest frame accepted, length field included.
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder for the responder's side: the stream starts with "IKETCP".
    pub fn with_prefix(max_frame: usize) -> Self {
        Self::new(Stage::Prefix(0), max_frame)
    }

    /// A decoder for the initiator's side: frames from the first byte.
    pub fn without_prefix(max_frame: usize) -> Self {
        Self::new(Stage::Frames, max_frame)
    }

    fn new(stage: Stage, max_frame: usize) -> Self {
        let max_frame = max_frame.clamp(LENGTH_LEN + MIN_IKE_BODY, MAX_FRAME);
        Self {
            stage,
            buf: Vec::new(),
            ready: false,
            max_frame,
        }
    }

    /// The largest frame this decoder accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whether the stream is between frames (an end of stream here loses nothing).
    pub fn at_boundary(&self) -> bool {
        matches!(self.stage, Stage::Frames) && (self.ready || self.buf.is_empty())
    }

    /// Whether the stream prefix is behind us (always for the initiator's side).
    pub fn past_prefix(&self) -> bool {
        matches!(self.stage, Stage::Frames)
    }

    /// Bytes held for the frame being read.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Consumes bytes of `input` up to the end of the next whole frame (or all of it when no
    /// frame completes). The previous frame is dropped first. After an error every call
    /// fails: close the connection.
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, TcpFrameError> {
        if self.ready {
            self.ready = false;
            self.buf.clear();
        }
        let mut consumed = 0;
        if let Stage::Failed(ref e) = self.stage {
            return Err(e.clone());
        }
        if let Stage::Prefix(matched) = self.stage {
            let want = STREAM_PREFIX.get(matched..).unwrap_or_default();
            let take = want.len().min(input.len());
            let (got, expected) = (input.get(..take), want.get(..take));
            if got != expected {
                return Err(self.fail(TcpFrameError::BadPrefix));
            }
            consumed = take;
            self.stage = if matched + take == STREAM_PREFIX.len() {
                Stage::Frames
            } else {
                Stage::Prefix(matched + take)
            };
        }
        match self.stage {
            Stage::Prefix(_) => {
                return Ok(Fed {
                    consumed,
                    frame: None,
                })
            }
            Stage::Failed(ref e) => return Err(e.clone()),
            Stage::Frames => {}
        }
        let rest = input.get(consumed..).unwrap_or_default();
        let (used, frame) = self.read_frame(rest)?;
        Ok(Fed {
            consumed: consumed + used,
            frame,
        })
    }

    /// Reads from `input` into the frame being read; returns the bytes used and whether it
    /// is whole.
    fn read_frame(&mut self, input: &[u8]) -> Result<(usize, Option<FrameKind>), TcpFrameError> {
        let mut used = 0;
        if self.buf.len() < LENGTH_LEN {
            let take = (LENGTH_LEN - self.buf.len()).min(input.len());
            self.buf
                .extend_from_slice(input.get(..take).unwrap_or_default());
            used = take;
            if self.buf.len() < LENGTH_LEN {
                return Ok((used, None));
            }
        }
        let len = match self.buf.first_chunk::<2>() {
            Some(b) => usize::from(u16::from_be_bytes(*b)),
            None => return Ok((used, None)),
        };
        if len < LENGTH_LEN + MIN_BODY {
            return Err(self.fail(TcpFrameError::TooShort {
                len,
                min: LENGTH_LEN + MIN_BODY,
            }));
        }
        if len > self.max_frame {
            return Err(self.fail(TcpFrameError::TooLong {
                len,
                max: self.max_frame,
            }));
        }
        let rest = input.get(used..).unwrap_or_default();
        let take = len.saturating_sub(self.buf.len()).min(rest.len());
        self.buf
            .extend_from_slice(rest.get(..take).unwrap_or_default());
        used += take;
        if self.buf.len() < len {
            return Ok((used, None));
        }
        let kind = classify(self.buf.get(LENGTH_LEN..).unwrap_or_default());
        match kind {
            Ok(k) => {
                self.ready = true;
                Ok((used, Some(k)))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The whole frame's body (a NAT-T datagram: marker and IKE, or ESP), writable so ESP can
    /// be decrypted in place; None unless the last `feed` completed a frame.
    pub fn frame(&mut self) -> Option<&mut [u8]> {
        if !self.ready {
            return None;
        }
        self.buf.get_mut(LENGTH_LEN..)
    }

    /// Feeds all of `input`, calling `on_frame` with each whole frame's kind and body.
    pub fn decode(
        &mut self,
        mut input: &[u8],
        mut on_frame: impl FnMut(FrameKind, &mut [u8]),
    ) -> Result<(), TcpFrameError> {
        if let Stage::Failed(e) = &self.stage {
            return Err(e.clone());
        }
        while !input.is_empty() {
            let fed = self.feed(input)?;
            input = input.get(fed.consumed..).unwrap_or_default();
            if let (Some(kind), Some(body)) = (fed.frame, self.frame()) {
                on_frame(kind, body);
            }
            if fed.consumed == 0 && fed.frame.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn fail(&mut self, e: TcpFrameError) -> TcpFrameError {
        self.stage = Stage::Failed(e.clone());
        self.buf = Vec::new();
        self.ready = false;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 + 1).collect()
    }

    fn esp(len: usize) -> Vec<u8> {
        let mut v = vec![0x11, 0x22, 0x33, 0x44];
        v.extend((4..len).map(|i| i as u8));
        v
    }

    /// Every frame `decode` yields, as (kind, body).
    fn all(d: &mut FrameDecoder, input: &[u8]) -> Result<Vec<(FrameKind, Vec<u8>)>, TcpFrameError> {
        let mut out = Vec::new();
        d.decode(input, |k, b| out.push((k, b.to_vec())))?;
        Ok(out)
    }

    #[test]
    fn the_length_counts_itself_and_ike_gets_the_marker() {
        let msg = ike(28);
        let mut out = Vec::new();
        encode_ike(&msg, &mut out).unwrap();
        assert_eq!(&out[..2], &34u16.to_be_bytes(), "2 + 4 + 28");
        assert_eq!(&out[2..6], &NON_ESP_MARKER);
        assert_eq!(&out[6..], &msg[..]);
        let mut e = Vec::new();
        encode_frame(&esp(100), &mut e).unwrap();
        assert_eq!(&e[..2], &102u16.to_be_bytes());
    }

    #[test]
    fn the_encoder_refuses_what_the_length_cannot_describe() {
        let mut out = Vec::new();
        assert!(matches!(
            encode_frame(&vec![1; MAX_FRAME - 1], &mut out),
            Err(TcpFrameError::TooLong { len: 65536, .. })
        ));
        assert!(encode_frame(&vec![1; MAX_FRAME - 2], &mut out).is_ok());
        assert!(matches!(
            encode_frame(&[1, 2, 3], &mut Vec::new()),
            Err(TcpFrameError::TooShort { .. })
        ));
    }

    #[test]
    fn the_responder_side_checks_the_prefix_then_reads_frames() {
        let mut stream = STREAM_PREFIX.to_vec();
        encode_ike(&ike(40), &mut stream).unwrap();
        encode_frame(&esp(60), &mut stream).unwrap();
        let mut d = FrameDecoder::with_prefix(MAX_FRAME);
        let frames = all(&mut d, &stream).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, FrameKind::Ike);
        assert_eq!(&frames[0].1[..4], &NON_ESP_MARKER);
        assert_eq!(&frames[0].1[4..], &ike(40)[..]);
        assert_eq!(frames[1], (FrameKind::Esp, esp(60)));
        assert!(d.at_boundary());
    }

    #[test]
    fn a_wrong_prefix_is_refused_even_one_byte_at_a_time() {
        let mut d = FrameDecoder::with_prefix(MAX_FRAME);
        assert_eq!(d.feed(b"IKE").unwrap().consumed, 3);
        assert_eq!(d.feed(b"X"), Err(TcpFrameError::BadPrefix));
        // The stream stays failed.
        assert_eq!(d.feed(b"TCP"), Err(TcpFrameError::BadPrefix));
        let mut d = FrameDecoder::with_prefix(MAX_FRAME);
        assert_eq!(
            all(&mut d, b"GET / HTTP/1.1\r\n"),
            Err(TcpFrameError::BadPrefix)
        );
    }

    #[test]
    fn the_initiator_side_has_no_prefix() {
        let mut stream = Vec::new();
        encode_ike(&ike(30), &mut stream).unwrap();
        let mut d = FrameDecoder::without_prefix(MAX_FRAME);
        assert_eq!(all(&mut d, &stream).unwrap().len(), 1);
        // "IK" read as a length is 18 763: over a client's cap of 8 KiB.
        let mut d = FrameDecoder::without_prefix(8192);
        let mut with = STREAM_PREFIX.to_vec();
        with.extend_from_slice(&stream);
        assert!(
            matches!(
                all(&mut d, &with),
                Err(TcpFrameError::TooLong { len: 18763, .. })
            ),
            "a prefix is not a frame"
        );
    }

    #[test]
    fn lengths_under_the_minimum_close_the_stream() {
        for len in [0u16, 1, 2, 9] {
            let mut d = FrameDecoder::without_prefix(MAX_FRAME);
            let mut s = len.to_be_bytes().to_vec();
            s.extend_from_slice(&[0xaa; 16]);
            assert!(
                matches!(all(&mut d, &s), Err(TcpFrameError::TooShort { .. })),
                "length {len}"
            );
        }
        // A marker with less than an IKE header behind it.
        let mut d = FrameDecoder::without_prefix(MAX_FRAME);
        let mut s = 20u16.to_be_bytes().to_vec();
        s.extend_from_slice(&[0; 18]);
        assert!(matches!(
            all(&mut d, &s),
            Err(TcpFrameError::TooShort { .. })
        ));
        // A NAT keepalive never travels over TCP.
        let mut d = FrameDecoder::without_prefix(MAX_FRAME);
        assert!(all(&mut d, &[0, 3, 0xff]).is_err());
    }

    #[test]
    fn a_frame_over_the_cap_closes_the_stream_before_it_is_buffered() {
        let mut d = FrameDecoder::without_prefix(2048);
        let header = 4000u16.to_be_bytes();
        assert_eq!(
            d.feed(&header),
            Err(TcpFrameError::TooLong {
                len: 4000,
                max: 2048
            })
        );
        assert_eq!(d.buffered(), 0);
        let mut d = FrameDecoder::without_prefix(2048);
        let mut ok = Vec::new();
        encode_frame(&esp(2046), &mut ok).unwrap();
        assert_eq!(
            all(&mut d, &ok).unwrap().len(),
            1,
            "exactly the cap is fine"
        );
    }

    #[test]
    fn feed_stops_after_each_frame_and_holds_at_most_one() {
        let mut stream = Vec::new();
        for n in 0..5 {
            encode_frame(&esp(20 + n), &mut stream).unwrap();
        }
        let mut d = FrameDecoder::without_prefix(MAX_FRAME);
        let mut rest = &stream[..];
        let mut n = 0;
        while !rest.is_empty() {
            let fed = d.feed(rest).unwrap();
            assert_eq!(fed.frame, Some(FrameKind::Esp));
            assert_eq!(d.frame().unwrap().len(), 20 + n);
            assert!(d.buffered() <= 2 + 20 + n);
            rest = &rest[fed.consumed..];
            n += 1;
        }
        assert_eq!(n, 5);
        // The frame is writable in place (ESP is decrypted there).
        d.frame().unwrap()[4] = 0;
        assert!(d.feed(&[]).unwrap().frame.is_none());
        assert!(d.frame().is_none(), "the next feed drops the frame");
    }

    #[test]
    fn a_partial_frame_is_not_a_boundary() {
        let mut s = Vec::new();
        encode_frame(&esp(40), &mut s).unwrap();
        let mut d = FrameDecoder::without_prefix(MAX_FRAME);
        assert!(all(&mut d, &s[..10]).unwrap().is_empty());
        assert!(!d.at_boundary());
        assert_eq!(all(&mut d, &s[10..]).unwrap().len(), 1);
        assert!(d.at_boundary());
        let mut p = FrameDecoder::with_prefix(MAX_FRAME);
        assert!(!p.at_boundary(), "not even the prefix came");
        assert!(!p.past_prefix());
        p.feed(b"IKETCP").unwrap();
        assert!(p.past_prefix() && p.at_boundary());
    }
}
