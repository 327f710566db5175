//! A small, fast, non-cryptographic hasher for the registry's indexes.
//!
//! The keys are event-type strings and `TypeId`s chosen by the program itself,
//! and the ids of its own requests in flight, not by an adversary, so
//! SipHash's flooding resistance buys nothing here and its cost would sit on
//! every publish to a filtered subscriber (and every routed response).

use std::hash::{BuildHasher, Hasher};

/// Builds [`FastHasher`]s.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FastHashBuilder;

impl BuildHasher for FastHashBuilder {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

/// Multiply-rotate hashing over 64-bit words (the scheme of rustc's FxHasher).
pub(crate) struct FastHasher(u64);

impl FastHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn equal_keys_hash_equal_and_tails_matter() {
        let b = FastHashBuilder;
        assert_eq!(b.hash_one("route.added"), b.hash_one("route.added"));
        assert_ne!(b.hash_one("route.added"), b.hash_one("route.addee"));
        assert_ne!(b.hash_one("abcdefgh1"), b.hash_one("abcdefgh2"));
    }
}
