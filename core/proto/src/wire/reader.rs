//! A bounds-checked big-endian cursor over untrusted bytes: every read returns a typed
//! `WireError` instead of panicking.

use super::error::WireError;

/// Reads fields front to back from a borrowed buffer.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`; `what` names the structure in errors.
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// How many bytes were read so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let truncated = WireError::Truncated {
            what: self.what,
            need: n,
            have: self.remaining(),
        };
        let end = self.pos.checked_add(n).ok_or(truncated.clone())?;
        let out = self.buf.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// Everything not yet read.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        out
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        <[u8; N]>::try_from(self.take(N)?)
            .map_err(|_| WireError::Invalid("internal length mismatch"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_be_bytes)
    }

    /// Skips `n` bytes (reserved fields).
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), WireError> {
        self.take(n).map(|_| ())
    }
}

/// Appends a 16-bit length placeholder's final value at `at` (two bytes, big-endian) once the
/// structure it measures has been written. Lengths that do not fit saturate (callers keep
/// payloads far below 64 KiB; a UDP datagram cannot carry more anyway).
pub(crate) fn patch_u16(out: &mut [u8], at: usize, value: usize) {
    let v = u16::try_from(value).unwrap_or(u16::MAX);
    if let Some(slot) = out.get_mut(at..at + 2) {
        slot.copy_from_slice(&v.to_be_bytes());
    }
}

/// The same for a 32-bit field.
pub(crate) fn patch_u32(out: &mut [u8], at: usize, value: usize) {
    let v = u32::try_from(value).unwrap_or(u32::MAX);
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_fields() {
        let buf = [1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 9];
        let mut r = Reader::new(&buf, "t");
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 2);
        assert_eq!(r.u32().unwrap(), 3);
        assert_eq!(r.u64().unwrap(), 4);
        assert_eq!(r.position(), 15);
        assert_eq!(r.rest(), &[9]);
        assert!(r.is_empty());
    }

    #[test]
    fn truncation_is_an_error() {
        let mut r = Reader::new(&[1, 2, 3], "thing");
        assert_eq!(
            r.u32(),
            Err(WireError::Truncated {
                what: "thing",
                need: 4,
                have: 3
            })
        );
        assert_eq!(
            r.take(usize::MAX),
            Err(WireError::Truncated {
                what: "thing",
                need: usize::MAX,
                have: 3
            })
        );
        // A failed read consumes nothing.
        assert_eq!(r.take(3).unwrap(), &[1, 2, 3]);
    }

    #[test]
    fn patch_writes_in_place_and_ignores_out_of_range() {
        let mut v = vec![0u8; 6];
        patch_u16(&mut v, 0, 0x1234);
        patch_u32(&mut v, 2, 0x0102_0304);
        patch_u16(&mut v, 5, 1); // out of range: no panic, no change
        assert_eq!(v, [0x12, 0x34, 1, 2, 3, 4]);
    }
}
