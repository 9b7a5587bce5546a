//! A three-level bitmap over price-level indices, used to find the next
//! non-empty price level above or below a given one in a few word
//! operations, whatever the width of the price range.
//!
//! Single writer: the engine thread.

pub(crate) struct LevelBits {
    l0: Box<[u64]>,
    l1: Box<[u64]>,
    l2: Box<[u64]>,
}

impl LevelBits {
    pub(crate) fn new(bits: usize) -> Self {
        let w0 = bits.div_ceil(64).max(1);
        let w1 = w0.div_ceil(64);
        let w2 = w1.div_ceil(64);
        LevelBits {
            l0: vec![0; w0].into_boxed_slice(),
            l1: vec![0; w1].into_boxed_slice(),
            l2: vec![0; w2].into_boxed_slice(),
        }
    }

    #[inline]
    pub(crate) fn set(&mut self, i: usize) {
        let word = &mut self.l0[i >> 6];
        let was_empty = *word == 0;
        *word |= 1 << (i & 63);
        // The summary levels only record which words are non-empty: a word
        // that already had a bit set is already recorded above.
        if was_empty {
            let word1 = &mut self.l1[i >> 12];
            let was_empty1 = *word1 == 0;
            *word1 |= 1 << ((i >> 6) & 63);
            if was_empty1 {
                self.l2[i >> 18] |= 1 << ((i >> 12) & 63);
            }
        }
    }

    #[inline]
    pub(crate) fn clear(&mut self, i: usize) {
        self.l0[i >> 6] &= !(1 << (i & 63));
        if self.l0[i >> 6] == 0 {
            self.l1[i >> 12] &= !(1 << ((i >> 6) & 63));
            if self.l1[i >> 12] == 0 {
                self.l2[i >> 18] &= !(1 << ((i >> 12) & 63));
            }
        }
    }

    pub(crate) fn get(&self, i: usize) -> bool {
        self.l0[i >> 6] & (1 << (i & 63)) != 0
    }

    /// Lowest set index `>= from`.
    #[inline]
    pub(crate) fn next_at_or_above(&self, from: usize) -> Option<usize> {
        let w = from >> 6;
        if w >= self.l0.len() {
            return None;
        }
        let word = self.l0[w] & (u64::MAX << (from & 63));
        if word != 0 {
            return Some((w << 6) | word.trailing_zeros() as usize);
        }
        // Next non-empty l0 word above w, via l1.
        let w1 = w >> 6;
        let rest = if (w & 63) == 63 {
            0
        } else {
            self.l1[w1] & (u64::MAX << ((w & 63) + 1))
        };
        let w0 = if rest != 0 {
            (w1 << 6) | rest.trailing_zeros() as usize
        } else {
            let w1n = self.next_l1_word_above(w1)?;
            (w1n << 6) | self.l1[w1n].trailing_zeros() as usize
        };
        Some((w0 << 6) | self.l0[w0].trailing_zeros() as usize)
    }

    fn next_l1_word_above(&self, w1: usize) -> Option<usize> {
        let w2 = w1 >> 6;
        let rest = if (w1 & 63) == 63 {
            0
        } else {
            self.l2[w2] & (u64::MAX << ((w1 & 63) + 1))
        };
        if rest != 0 {
            return Some((w2 << 6) | rest.trailing_zeros() as usize);
        }
        (w2 + 1..self.l2.len())
            .find(|&k| self.l2[k] != 0)
            .map(|k| (k << 6) | self.l2[k].trailing_zeros() as usize)
    }

    /// Highest set index `<= from`.
    #[inline]
    pub(crate) fn next_at_or_below(&self, from: usize) -> Option<usize> {
        let w = (from >> 6).min(self.l0.len() - 1);
        let from_bit = if (from >> 6) > w { 63 } else { from & 63 };
        let word = self.l0[w] & (u64::MAX >> (63 - from_bit));
        if word != 0 {
            return Some((w << 6) | (63 - word.leading_zeros() as usize));
        }
        let w1 = w >> 6;
        let rest = if (w & 63) == 0 {
            0
        } else {
            self.l1[w1] & (u64::MAX >> (64 - (w & 63)))
        };
        let w0 = if rest != 0 {
            (w1 << 6) | (63 - rest.leading_zeros() as usize)
        } else {
            let w1p = self.prev_l1_word_below(w1)?;
            (w1p << 6) | (63 - self.l1[w1p].leading_zeros() as usize)
        };
        Some((w0 << 6) | (63 - self.l0[w0].leading_zeros() as usize))
    }

    fn prev_l1_word_below(&self, w1: usize) -> Option<usize> {
        let w2 = w1 >> 6;
        let rest = if (w1 & 63) == 0 {
            0
        } else {
            self.l2[w2] & (u64::MAX >> (64 - (w1 & 63)))
        };
        if rest != 0 {
            return Some((w2 << 6) | (63 - rest.leading_zeros() as usize));
        }
        (0..w2)
            .rev()
            .find(|&k| self.l2[k] != 0)
            .map(|k| (k << 6) | (63 - self.l2[k].leading_zeros() as usize))
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        8 * (self.l0.len() + self.l1.len() + self.l2.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn finds_neighbours_like_a_btreeset_across_word_boundaries() {
        for &size in &[1usize, 99, 64, 4096, 4097, 300_000] {
            let mut bits = LevelBits::new(size);
            let mut set = BTreeSet::new();
            let mut x = 99u64 + size as u64;
            for _ in 0..2_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % size as u64) as usize;
                if x & 3 == 0 {
                    bits.clear(i);
                    set.remove(&i);
                } else {
                    bits.set(i);
                    set.insert(i);
                }
                let probe = ((x >> 20) % size as u64) as usize;
                assert_eq!(
                    bits.next_at_or_above(probe),
                    set.range(probe..).next().copied()
                );
                assert_eq!(
                    bits.next_at_or_below(probe),
                    set.range(..=probe).next_back().copied()
                );
                assert_eq!(bits.get(i), set.contains(&i));
            }
        }
    }
}
