//! A fast hasher for keys no client chooses.
//!
//! [`FxHasher`] is the multiply-rotate hash of `rustc`'s FxHash. The FIX
//! dictionaries' tables (tag numbers, MsgTypes, enumerated values, built
//! from the compiled-in dictionaries) and the WebSocket gateway's
//! connection tokens (assigned by the gateway) use it: input cannot pick
//! colliding keys there, so SipHash's flooding resistance buys nothing,
//! and its cost showed up in both hot paths (validation lookups per field,
//! two lookups per subscriber per event), and so do the FIX exchange
//! application's order tables keyed by ids the engine or the application
//! assigns. Maps keyed by client input (ClOrdIDs) keep the standard hasher. Any thread: it holds no state beyond one hash.

use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hashed with [`FxHasher`].
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;
/// A `HashSet` hashed with [`FxHasher`].
pub type FxHashSet<K> = std::collections::HashSet<K, BuildHasherDefault<FxHasher>>;

/// FxHash's multiply-rotate hasher.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits depending on the low input bits
        // only, and the table picks buckets by the low bits: keys that
        // differ only above bit 24 (engine order ids, `counter << 24 |
        // slot`, with few slots in use) would all share a bucket chain.
        // Rotating brings the well-mixed high bits down (as rustc-hash 2).
        self.0.rotate_left(26)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn keys_that_differ_only_in_high_bits_spread_over_low_bits() {
        // Engine order ids of one reused arena slot: `counter << 24 | 5`.
        let build = BuildHasherDefault::<FxHasher>::default();
        let low: FxHashSet<u64> = (1..=1024u64)
            .map(|n| build.hash_one((n << 24) | 5) & 1023)
            .collect();
        assert!(low.len() > 500, "{} distinct buckets of 1024", low.len());
    }
}
