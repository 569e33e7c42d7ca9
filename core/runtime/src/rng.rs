//! `OsRng`: the operating system's random generator behind `roam_proto::rng::Rng`.

use roam_proto::rng::Rng;

/// Random bytes from the operating system (getrandom(2) on Linux).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRng;

impl Rng for OsRng {
    /// # Panics
    /// When the operating system cannot give random bytes: no key may be made without them,
    /// and the trait has no way to report it.
    fn fill(&mut self, dst: &mut [u8]) {
        if let Err(e) = getrandom::fill(dst) {
            panic!("the operating system's random generator failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_with_distinct_random_bytes() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsRng.fill(&mut a);
        OsRng.fill(&mut b);
        assert_ne!(a, [0u8; 32]);
        assert_ne!(a, b);
        assert_ne!(OsRng.next_u64(), OsRng.next_u64());
    }

    #[test]
    fn fills_empty_and_odd_lengths() {
        OsRng.fill(&mut []);
        let mut odd = [0u8; 33];
        OsRng.fill(&mut odd);
        assert!(odd.iter().any(|&b| b != 0));
    }
}
