//! Order book storage: price-level arrays with intrusive FIFO lists.
//!
//! Every instrument has a bounded price range (binary markets: 99 levels),
//! so a side of the book is an array of [`Level`]s indexed by
//! `(price - min_price) / tick`. Orders at a level form a doubly linked
//! FIFO through their arena slots, which gives O(1) insert at the back,
//! O(1) removal from anywhere (cancel by id), and time priority for free.
//! A [`LevelBits`] bitmap finds the next non-empty level when the best one
//! empties; the best level index is cached, so "best price" is O(1).
//!
//! Stop orders wait in a second pair of level arrays keyed by stop price,
//! created the first time an instrument receives a stop order.
//!
//! Single writer: the engine thread.

use super::level_bits::LevelBits;
use super::orders::{Order, NIL};
use crate::records::Side;

/// One price level: FIFO of order slots and its aggregate quantity.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) count: u32,
    pub(crate) quantity: u64,
}

impl Level {
    const EMPTY: Level = Level {
        head: NIL,
        tail: NIL,
        count: 0,
        quantity: 0,
    };
}

/// One side's levels plus the bitmap of non-empty ones.
pub(crate) struct Ladder {
    pub(crate) levels: Box<[Level]>,
    pub(crate) bits: LevelBits,
}

impl Ladder {
    fn new(n: usize) -> Self {
        Ladder {
            levels: vec![Level::EMPTY; n].into_boxed_slice(),
            bits: LevelBits::new(n),
        }
    }

    /// Appends `slot` at the back of level `idx` (time priority: last).
    #[inline(always)]
    pub(crate) fn push_back(&mut self, orders: &mut [Order], idx: usize, slot: u32) {
        let level = &mut self.levels[idx];
        let leaves = orders[slot as usize].leaves;
        orders[slot as usize].prev = level.tail;
        orders[slot as usize].next = NIL;
        if level.tail == NIL {
            level.head = slot;
            self.bits.set(idx);
        } else {
            orders[level.tail as usize].next = slot;
        }
        level.tail = slot;
        level.count += 1;
        level.quantity += leaves;
    }

    /// Unlinks `slot` from level `idx`; the caller has already subtracted any
    /// fills from `level.quantity`, so only the order's current leaves go.
    #[inline(always)]
    pub(crate) fn unlink(&mut self, orders: &mut [Order], idx: usize, slot: u32) -> bool {
        let (prev, next, leaves) = {
            let o = &orders[slot as usize];
            (o.prev, o.next, o.leaves)
        };
        let level = &mut self.levels[idx];
        if prev == NIL {
            level.head = next;
        } else {
            orders[prev as usize].next = next;
        }
        if next == NIL {
            level.tail = prev;
        } else {
            orders[next as usize].prev = prev;
        }
        level.count -= 1;
        level.quantity -= leaves;
        let emptied = level.count == 0;
        if emptied {
            self.bits.clear(idx);
        }
        emptied
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.levels) + self.bits.memory_bytes()
    }
}

/// Price grid of an instrument: maps prices to level indices.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PriceGrid {
    pub(crate) min_price: i64,
    pub(crate) tick: i64,
    pub(crate) levels: usize,
}

impl PriceGrid {
    #[inline(always)]
    pub(crate) fn index(&self, price: i64) -> usize {
        // Most grids have tick 1; skip the division for them.
        if self.tick == 1 {
            (price - self.min_price) as usize
        } else {
            ((price - self.min_price) / self.tick) as usize
        }
    }

    #[inline(always)]
    pub(crate) fn price(&self, idx: usize) -> i64 {
        self.min_price + idx as i64 * self.tick
    }
}

/// Both sides of a limit order book with cached best levels.
pub(crate) struct Book {
    pub(crate) grid: PriceGrid,
    pub(crate) sides: [Ladder; 2],
    /// Cached best level index per side (`usize::MAX` when empty): highest bid, lowest ask.
    pub(crate) best: [usize; 2],
    pub(crate) stops: Option<Box<[Ladder; 2]>>,
}

pub(crate) const NO_LEVEL: usize = usize::MAX;

impl Book {
    pub(crate) fn new(grid: PriceGrid) -> Self {
        Book {
            grid,
            sides: [Ladder::new(grid.levels), Ladder::new(grid.levels)],
            best: [NO_LEVEL; 2],
            stops: None,
        }
    }

    #[inline]
    pub(crate) fn best_price(&self, side: Side) -> Option<i64> {
        let idx = self.best[side as usize];
        (idx != NO_LEVEL).then(|| self.grid.price(idx))
    }

    /// Rests `slot` at the back of its price level.
    #[inline(always)]
    pub(crate) fn insert(&mut self, orders: &mut [Order], slot: u32) -> &Level {
        let (side, price) = {
            let o = &orders[slot as usize];
            (o.side, o.price)
        };
        let idx = self.grid.index(price);
        self.sides[side as usize].push_back(orders, idx, slot);
        let best = &mut self.best[side as usize];
        let better = match side {
            Side::Buy => *best == NO_LEVEL || idx > *best,
            Side::Sell => *best == NO_LEVEL || idx < *best,
        };
        if better {
            *best = idx;
        }
        &self.sides[side as usize].levels[idx]
    }

    /// Removes a resting order from its level and refreshes the best level.
    #[inline(always)]
    pub(crate) fn remove(&mut self, orders: &mut [Order], slot: u32) -> &Level {
        let (side, price) = {
            let o = &orders[slot as usize];
            (o.side, o.price)
        };
        let idx = self.grid.index(price);
        let ladder = &mut self.sides[side as usize];
        if ladder.unlink(orders, idx, slot) && self.best[side as usize] == idx {
            self.best[side as usize] = match side {
                Side::Buy => ladder.bits.next_at_or_below(idx).unwrap_or(NO_LEVEL),
                Side::Sell => ladder.bits.next_at_or_above(idx).unwrap_or(NO_LEVEL),
            };
        }
        &self.sides[side as usize].levels[idx]
    }

    pub(crate) fn stops_mut(&mut self) -> &mut [Ladder; 2] {
        let levels = self.grid.levels;
        self.stops
            .get_or_insert_with(|| Box::new([Ladder::new(levels), Ladder::new(levels)]))
    }

    /// The pending stop that should trigger next at last trade price `last`:
    /// the lowest buy stop at or below `last`, else the highest sell stop at
    /// or above it; FIFO within a level. This is the deterministic trigger order.
    #[inline]
    pub(crate) fn next_triggered_stop(&self, last: i64) -> Option<u32> {
        let stops = self.stops.as_ref()?;
        if let Some(idx) = stops[Side::Buy as usize].bits.next_at_or_above(0) {
            if self.grid.price(idx) <= last {
                return Some(stops[Side::Buy as usize].levels[idx].head);
            }
        }
        if let Some(idx) = stops[Side::Sell as usize]
            .bits
            .next_at_or_below(self.grid.levels - 1)
        {
            if self.grid.price(idx) >= last {
                return Some(stops[Side::Sell as usize].levels[idx].head);
            }
        }
        None
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.sides.iter().map(Ladder::memory_bytes).sum::<usize>()
            + self
                .stops
                .as_ref()
                .map_or(0, |s| s.iter().map(Ladder::memory_bytes).sum())
    }
}
