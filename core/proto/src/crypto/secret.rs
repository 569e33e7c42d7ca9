//! `Secret`: bytes that are zeroized on drop, compared in constant time, and never printed.

use zeroize::Zeroize;

/// Key material: zeroized on drop; equality runs in constant time (for equal lengths);
/// `Debug` shows only the length.
#[derive(Clone, Default)]
pub struct Secret(Vec<u8>);

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        super::ct_eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

impl zeroize::ZeroizeOnDrop for Secret {}

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_length() {
        let s = Secret::new(vec![0xde, 0xad, 0xbe, 0xef]);
        let dbg = format!("{s:?}");
        assert_eq!(dbg, "Secret(4 bytes)");
        assert!(!dbg.contains("222") && !dbg.contains("dead"));
        assert_eq!(format!("{:#?}", s), "Secret(4 bytes)");
    }

    #[test]
    fn equality_compares_every_byte() {
        let a = Secret::from_slice(&[1, 2, 3, 4]);
        assert_eq!(a, Secret::from_slice(&[1, 2, 3, 4]));
        assert_ne!(a, Secret::from_slice(&[1, 2, 3, 5]));
        assert_ne!(a, Secret::from_slice(&[9, 2, 3, 4]));
        assert_ne!(a, Secret::from_slice(&[1, 2, 3]));
        assert_eq!(Secret::default(), Secret::new(Vec::new()));
    }

    #[test]
    fn accessors() {
        let s = Secret::from_slice(b"abc");
        assert_eq!(s.as_bytes(), b"abc");
        assert_eq!(s.len(), 3);
        assert!(!s.is_empty());
        assert!(Secret::default().is_empty());
    }
}
