//! Splitting a PEM file into its labelled blocks (RFC 7468), each decoded by `der`'s PEM
//! decoder. Text around and between the blocks (comments, "Bag Attributes") is ignored.

use zeroize::Zeroizing;

/// The largest PEM input we look at.
const MAX_PEM_LEN: usize = 1 << 20;

/// One decoded block: its label and its DER (zeroized on drop, as it may be a key).
pub(crate) struct Block {
    pub label: String,
    pub der: Zeroizing<Vec<u8>>,
}

/// Whether `data` looks like PEM rather than DER.
pub(crate) fn is_pem(data: &[u8]) -> bool {
    find(data, b"-----BEGIN ").is_some()
}

/// Every block of a PEM file, in order.
pub(crate) fn blocks(data: &[u8]) -> Result<Vec<Block>, String> {
    if data.len() > MAX_PEM_LEN {
        return Err("PEM input too large".into());
    }
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(start) = find(rest, b"-----BEGIN ") {
        let block = rest.get(start..).unwrap_or_default();
        let end_marker = find(block, b"-----END ").ok_or("PEM block without END line")?;
        let after_end = block.get(end_marker + 9..).unwrap_or_default();
        let close = find(after_end, b"-----").ok_or("PEM END line not terminated")?;
        let len = end_marker + 9 + close + 5;
        let text = block.get(..len).ok_or("truncated PEM block")?;
        let (label, der) = der::pem::decode_vec(text).map_err(|e| format!("bad PEM block: {e}"))?;
        out.push(Block {
            label: label.to_string(),
            der: Zeroizing::new(der),
        });
        rest = block.get(len..).unwrap_or_default();
    }
    if out.is_empty() {
        return Err("no PEM block found".into());
    }
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_blocks_and_skips_text() {
        let pem = b"junk\n-----BEGIN A-----\nAQID\n-----END A-----\nBag\n-----BEGIN B C-----\nBA==\n-----END B C-----\n";
        let b = blocks(pem).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "A");
        assert_eq!(*b[0].der, vec![1, 2, 3]);
        assert_eq!(b[1].label, "B C");
        assert_eq!(*b[1].der, vec![4]);
    }

    #[test]
    fn rejects_broken_blocks() {
        assert!(blocks(b"").is_err());
        assert!(blocks(b"-----BEGIN A-----\nAQID\n").is_err());
        assert!(blocks(b"-----BEGIN A-----\nAQID\n-----END A").is_err());
        assert!(blocks(b"-----BEGIN A-----\n!!!!\n-----END A-----\n").is_err());
    }
}
