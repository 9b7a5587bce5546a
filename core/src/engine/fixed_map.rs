//! A fixed-capacity open-addressing hash map with linear probing and
//! backward-shift deletion.
//!
//! Why not `std::collections::HashMap`: its tombstones can force a resize
//! (an allocation) on the steady-state path even when the number of live
//! entries never grows. This map allocates once, at construction, and never
//! again; deletion leaves no tombstones. Iteration order never reaches the
//! engine's output (the engine only looks keys up), so the hash function
//! needs no seed and lookups are deterministic across runs.
//!
//! Single writer: the engine thread.

/// Keys the map can hold: plain integers, hashed with a fixed multiplier.
pub(crate) trait MapKey: Copy + Eq {
    fn hash64(self) -> u64;
}

impl MapKey for u64 {
    #[inline]
    fn hash64(self) -> u64 {
        // Fibonacci hashing: multiply by 2^64 / phi, then use the high bits.
        self.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl MapKey for (u32, u64) {
    #[inline]
    fn hash64(self) -> u64 {
        (self.1 ^ (u64::from(self.0).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))).hash64()
    }
}

pub(crate) struct FixedMap<K: MapKey, V: Copy> {
    slots: Box<[Option<(K, V)>]>,
    shift: u32,
    len: usize,
    capacity: usize,
}

impl<K: MapKey, V: Copy> FixedMap<K, V> {
    /// A map that holds up to `capacity` entries; its table is at least twice that.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let buckets = (capacity.max(4) * 2).next_power_of_two();
        FixedMap {
            slots: vec![None; buckets].into_boxed_slice(),
            shift: 64 - buckets.trailing_zeros(),
            len: 0,
            capacity,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn home(&self, key: K) -> usize {
        (key.hash64() >> self.shift) as usize
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn get(&self, key: K) -> Option<V> {
        let mut i = self.home(key);
        loop {
            match self.slots[i] {
                None => return None,
                Some((k, v)) if k == key => return Some(v),
                Some(_) => i = (i + 1) & self.mask(),
            }
        }
    }

    /// Inserts or overwrites. Returns `false` (and changes nothing) when the
    /// key is new and the map is at capacity.
    #[inline]
    pub(crate) fn insert(&mut self, key: K, value: V) -> bool {
        let mut i = self.home(key);
        loop {
            match self.slots[i] {
                None => {
                    if self.len >= self.capacity {
                        return false;
                    }
                    self.slots[i] = Some((key, value));
                    self.len += 1;
                    return true;
                }
                Some((k, _)) if k == key => {
                    self.slots[i] = Some((key, value));
                    return true;
                }
                Some(_) => i = (i + 1) & self.mask(),
            }
        }
    }

    /// Removes the key, shifting later members of its probe run back so no
    /// tombstone is needed.
    #[inline]
    pub(crate) fn remove(&mut self, key: K) -> Option<V> {
        let mask = self.mask();
        let mut i = self.home(key);
        let value = loop {
            match self.slots[i] {
                None => return None,
                Some((k, v)) if k == key => break v,
                Some(_) => i = (i + 1) & mask,
            }
        };
        self.slots[i] = None;
        self.len -= 1;
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while let Some((k, v)) = self.slots[j] {
            let home = self.home(k);
            // Move the entry into the hole if its home is not cyclically in (hole, j].
            let dist_home = j.wrapping_sub(home) & mask;
            let dist_hole = j.wrapping_sub(hole) & mask;
            if dist_home >= dist_hole {
                self.slots[hole] = Some((k, v));
                self.slots[j] = None;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        Some(value)
    }

    /// Bytes of table memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_std_hashmap_under_random_insert_and_remove() {
        let mut fixed = FixedMap::<u64, u32>::with_capacity(64);
        let mut model = HashMap::new();
        let mut x = 12345u64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 97;
            if x & 1 == 0 {
                let ok = fixed.insert(key, step);
                if ok {
                    model.insert(key, step);
                } else {
                    assert!(!model.contains_key(&key) && model.len() >= 64);
                }
            } else {
                assert_eq!(fixed.remove(key), model.remove(&key));
            }
            assert_eq!(fixed.len(), model.len());
            assert_eq!(fixed.get(key), model.get(&key).copied());
        }
        for (k, v) in &model {
            assert_eq!(fixed.get(*k), Some(*v));
        }
    }

    #[test]
    fn refuses_a_new_key_at_capacity_but_overwrites_an_old_one() {
        let mut map = FixedMap::<(u32, u64), u8>::with_capacity(2);
        assert!(map.insert((1, 1), 1));
        assert!(map.insert((1, 2), 2));
        assert!(!map.insert((2, 1), 3));
        assert!(map.insert((1, 2), 4));
        assert_eq!(map.get((1, 2)), Some(4));
    }
}
