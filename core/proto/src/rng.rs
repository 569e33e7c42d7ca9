//! Randomness as an injected dependency: the runtime passes the OS generator, tests pass a
//! seeded one so every exchange replays the same way.

use sha2::{Digest, Sha256};

/// A source of cryptographically strong random bytes.
pub trait Rng: Send {
    /// Fills `dst` with random bytes.
    fn fill(&mut self, dst: &mut [u8]);

    /// A random `u64`.
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// A deterministic generator for tests and simulations: SHA-256 in counter mode over a seed.
/// Never use it for real keys.
#[derive(Clone)]
pub struct SeededRng {
    seed: [u8; 32],
    counter: u64,
}

impl SeededRng {
    /// A generator whose output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Self {
            seed: s,
            counter: 0,
        }
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(32) {
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.counter.to_le_bytes());
            self.counter += 1;
            let out = h.finalize();
            chunk.copy_from_slice(&out[..chunk.len()]);
        }
    }
}

impl std::fmt::Debug for SeededRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededRng")
    }
}

/// One generator shared by several owners (the IKE SAs a session makes one after another,
/// and the session's own jitter): each clone draws from the same stream.
#[derive(Clone)]
pub struct SharedRng(std::sync::Arc<std::sync::Mutex<Box<dyn Rng>>>);

impl SharedRng {
    pub fn new(rng: Box<dyn Rng>) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(rng)))
    }
}

impl Rng for SharedRng {
    fn fill(&mut self, dst: &mut [u8]) {
        // A panic elsewhere cannot leave the generator half-updated in a way that matters.
        let mut rng = self.0.lock().unwrap_or_else(|e| e.into_inner());
        rng.fill(dst);
    }
}

impl std::fmt::Debug for SharedRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedRng")
    }
}
