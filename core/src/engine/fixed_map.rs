//! A fixed-capacity open-addressing hash map from small integer keys to
//! `u32` arena slots, with linear probing and backward-shift deletion.
//!
//! Why not `std::collections::HashMap`: its tombstones can force a resize
//! (an allocation) on the steady-state path even when the number of live
//! entries never grows. This map allocates once, at construction, and never
//! again; deletion leaves no tombstones. Entries are 16 bytes — a key packed
//! into `(u64, u32)` plus the `u32` value — so the tables the engine probes
//! on every order stay as cache-resident as their capacity allows. Iteration
//! order never reaches the engine's output (the engine only looks keys up),
//! so the hash needs no seed and lookups are deterministic across runs.
//!
//! Single writer: the engine thread.

/// Keys the map can hold: packed into `(u64, u32)`. The pattern
/// `(0, u32::MAX)` is reserved to mark an empty bucket, so no key inserted
/// may pack to it ([`FixedMap::get`] answers `None` for it).
pub(crate) trait MapKey: Copy + Eq {
    fn pack(self) -> (u64, u32);
}

/// Order ids (never 0).
impl MapKey for u64 {
    #[inline]
    fn pack(self) -> (u64, u32) {
        (self, 0)
    }
}

/// (account, 64-bit id): accounts are below `u32::MAX` (checked by config validation).
impl MapKey for (u32, u64) {
    #[inline]
    fn pack(self) -> (u64, u32) {
        (self.1, self.0)
    }
}

/// Asks the CPU to start loading the cache line holding `value`. A hint
/// only: it changes no state and cannot fault.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only hints the cache; it never dereferences in a
    // way that can fault, and `value` is a valid reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    a: u64,
    b: u32,
    value: u32,
}

const EMPTY: Entry = Entry {
    a: 0,
    b: u32::MAX,
    value: 0,
};

impl Entry {
    #[inline]
    fn is_empty(&self) -> bool {
        self.a == EMPTY.a && self.b == EMPTY.b
    }
}

#[inline]
fn hash((a, b): (u64, u32)) -> u64 {
    // Fibonacci hashing: multiply by 2^64 / phi, then use the high bits.
    (a ^ u64::from(b).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Result of [`FixedMap::insert_new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InsertNew {
    Inserted,
    Exists,
    Full,
}

pub(crate) struct FixedMap<K: MapKey> {
    slots: Box<[Entry]>,
    shift: u32,
    len: usize,
    capacity: usize,
    _key: std::marker::PhantomData<K>,
}

impl<K: MapKey> FixedMap<K> {
    /// A map that holds up to `capacity` entries; its table is at least twice that.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let buckets = (capacity.max(4) * 2).next_power_of_two();
        FixedMap {
            slots: vec![EMPTY; buckets].into_boxed_slice(),
            shift: 64 - buckets.trailing_zeros(),
            len: 0,
            capacity,
            _key: std::marker::PhantomData,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn home(&self, packed: (u64, u32)) -> usize {
        (hash(packed) >> self.shift) as usize
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value of `key`. Unlike the inserts, lookups take keys straight
    /// from commands and queries, so `key` may pack to the empty-bucket
    /// pattern: the empty check comes first, so such a key is absent
    /// instead of matching the first empty bucket.
    #[inline]
    pub(crate) fn get(&self, key: K) -> Option<u32> {
        let (a, b) = key.pack();
        let mut i = self.home((a, b));
        loop {
            let e = &self.slots[i];
            if e.is_empty() {
                return None;
            }
            if e.a == a && e.b == b {
                return Some(e.value);
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Inserts or overwrites. Returns `false` (and changes nothing) when the
    /// key is new and the map is at capacity.
    #[inline]
    pub(crate) fn insert(&mut self, key: K, value: u32) -> bool {
        match self.insert_new(key, value) {
            InsertNew::Inserted => true,
            InsertNew::Full => false,
            InsertNew::Exists => {
                let (a, b) = key.pack();
                let mut i = self.home((a, b));
                while !(self.slots[i].a == a && self.slots[i].b == b) {
                    i = (i + 1) & self.mask();
                }
                self.slots[i].value = value;
                true
            }
        }
    }

    /// Inserts `key` only if it is absent: one probe serves as both the
    /// duplicate check and the insert.
    #[inline(always)]
    pub(crate) fn insert_new(&mut self, key: K, value: u32) -> InsertNew {
        let (a, b) = key.pack();
        let mut i = self.home((a, b));
        loop {
            let e = &self.slots[i];
            if e.a == a && e.b == b {
                return InsertNew::Exists;
            }
            if e.is_empty() {
                if self.len >= self.capacity {
                    return InsertNew::Full;
                }
                self.slots[i] = Entry { a, b, value };
                self.len += 1;
                return InsertNew::Inserted;
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Removes the key, shifting later members of its probe run back so no
    /// tombstone is needed.
    #[inline(always)]
    pub(crate) fn remove(&mut self, key: K) -> Option<u32> {
        let mask = self.mask();
        let (a, b) = key.pack();
        let mut i = self.home((a, b));
        let value = loop {
            let e = &self.slots[i];
            if e.a == a && e.b == b {
                break e.value;
            }
            if e.is_empty() {
                return None;
            }
            i = (i + 1) & mask;
        };
        self.slots[i] = EMPTY;
        self.len -= 1;
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while !self.slots[j].is_empty() {
            let e = self.slots[j];
            let home = self.home((e.a, e.b));
            // Move the entry into the hole if its home is not cyclically in (hole, j].
            let dist_home = j.wrapping_sub(home) & mask;
            let dist_hole = j.wrapping_sub(hole) & mask;
            if dist_home >= dist_hole {
                self.slots[hole] = e;
                self.slots[j] = EMPTY;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        Some(value)
    }

    /// Hints the CPU to fetch the bucket where `key`'s probe starts, so a
    /// later lookup overlaps its cache miss with other work.
    #[inline]
    pub(crate) fn prefetch(&self, key: K) {
        prefetch(&self.slots[self.home(key.pack())]);
    }

    /// Every entry as (packed key, value), in table order (which depends on
    /// the insertion history; callers that need a canonical order sort).
    pub(crate) fn packed_entries(&self) -> impl Iterator<Item = ((u64, u32), u32)> + '_ {
        self.slots
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| ((e.a, e.b), e.value))
    }

    /// Bytes of table memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_std_hashmap_under_random_insert_and_remove() {
        let mut fixed = FixedMap::<u64>::with_capacity(64);
        let mut model = HashMap::new();
        let mut x = 12345u64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = 1 + x % 97;
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
    fn a_key_that_packs_to_the_empty_pattern_is_absent() {
        let mut map = FixedMap::<(u32, u64)>::with_capacity(4);
        assert_eq!(map.get((u32::MAX, 0)), None);
        assert!(map.insert((1, 1), 7));
        assert_eq!(map.get((u32::MAX, 0)), None);
        assert_eq!(map.get((1, 1)), Some(7));
    }

    #[test]
    fn insert_new_reports_existing_keys_and_a_full_table() {
        let mut map = FixedMap::<u64>::with_capacity(2);
        assert_eq!(map.insert_new(1, 1), InsertNew::Inserted);
        assert_eq!(map.insert_new(1, 2), InsertNew::Exists);
        assert_eq!(map.get(1), Some(1));
        assert_eq!(map.insert_new(2, 2), InsertNew::Inserted);
        assert_eq!(map.insert_new(3, 3), InsertNew::Full);
    }

    #[test]
    fn refuses_a_new_key_at_capacity_but_overwrites_an_old_one() {
        let mut map = FixedMap::<(u32, u64)>::with_capacity(2);
        assert!(map.insert((1, 1), 1));
        assert!(map.insert((1, 2), 2));
        assert!(!map.insert((2, 1), 3));
        assert!(map.insert((1, 2), 4));
        assert_eq!(map.get((1, 2)), Some(4));
    }
}
