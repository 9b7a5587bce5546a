//! The preallocated order arena.
//!
//! Every live order (resting, pending stop, or a taker being matched) sits
//! in one slot of a `Vec<Order>` whose capacity is fixed at start-up; freed
//! slots go on a free list threaded through `next`. Slots are addressed by
//! `u32` so the intrusive links stay small.
//!
//! Single writer: the engine thread.

use crate::records::{OrderType, Outcome, SelfTradePrevention, Side, TimeInForce};

/// "No slot" marker for intrusive links.
pub(crate) const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum OrderState {
    Free = 0,
    /// Being matched as the aggressor of the current command.
    Taking = 1,
    /// Resting in the book.
    Resting = 2,
    /// A stop order waiting for its trigger.
    PendingStop = 3,
}

/// A live order. Prices are on the normalised YES book.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) client_id: u64,
    /// Limit price, or the protection price of a market order.
    pub(crate) price: i64,
    pub(crate) quantity: u64,
    pub(crate) leaves: u64,
    pub(crate) filled: u64,
    pub(crate) stop_price: i64,
    /// GTD expiry (ns), 0 if none.
    pub(crate) expire: u64,
    /// Amount of the order's collateral asset still reserved for it.
    pub(crate) reserved: u64,
    /// Binary: leaves that close an existing position (no cash reserved).
    pub(crate) covered: u64,
    /// Binary: leaves whose cover was consumed by another fill and now hold 100 each.
    pub(crate) converted: u64,
    /// Spot market buy: the order is limited by `reserved` (its budget), not its price.
    pub(crate) budget: bool,
    pub(crate) account: u32,
    pub(crate) instrument: u32,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) acct_prev: u32,
    pub(crate) acct_next: u32,
    pub(crate) side: Side,
    pub(crate) outcome: Outcome,
    pub(crate) order_type: OrderType,
    pub(crate) tif: TimeInForce,
    pub(crate) post_only: bool,
    pub(crate) stp: SelfTradePrevention,
    pub(crate) state: OrderState,
}

impl Order {
    pub(crate) const FREE: Order = Order {
        id: 0,
        client_id: 0,
        price: 0,
        quantity: 0,
        leaves: 0,
        filled: 0,
        stop_price: 0,
        expire: 0,
        reserved: 0,
        covered: 0,
        converted: 0,
        budget: false,
        account: 0,
        instrument: 0,
        prev: NIL,
        next: NIL,
        acct_prev: NIL,
        acct_next: NIL,
        side: Side::Buy,
        outcome: Outcome::None,
        order_type: OrderType::Limit,
        tif: TimeInForce::Gtc,
        post_only: false,
        stp: SelfTradePrevention::None,
        state: OrderState::Free,
    };
}

pub(crate) struct Arena {
    pub(crate) slots: Vec<Order>,
    free_head: u32,
    capacity: usize,
    live: usize,
}

impl Arena {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Arena {
            slots: Vec::with_capacity(capacity),
            free_head: NIL,
            capacity,
            live: 0,
        }
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.live >= self.capacity
    }

    #[inline]
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The slot the next [`Arena::alloc`] will return.
    #[inline]
    pub(crate) fn next_slot(&self) -> u32 {
        if self.free_head != NIL {
            self.free_head
        } else {
            self.slots.len() as u32
        }
    }

    /// Takes a slot; the caller checked `is_full` first.
    #[inline]
    pub(crate) fn alloc(&mut self, order: Order) -> u32 {
        self.live += 1;
        if self.free_head != NIL {
            let slot = self.free_head;
            self.free_head = self.slots[slot as usize].next;
            self.slots[slot as usize] = order;
            slot
        } else {
            // Never beyond the capacity reserved at start-up: no reallocation.
            debug_assert!(self.slots.len() < self.capacity);
            self.slots.push(order);
            (self.slots.len() - 1) as u32
        }
    }

    #[inline]
    pub(crate) fn free(&mut self, slot: u32) {
        self.live -= 1;
        let o = &mut self.slots[slot as usize];
        *o = Order::FREE;
        o.next = self.free_head;
        self.free_head = slot;
    }

    /// The free slots in the order [`Arena::alloc`] will hand them out
    /// (a snapshot keeps this order so future order ids are identical).
    pub(crate) fn free_list(&self) -> impl Iterator<Item = u32> + '_ {
        let mut cursor = self.free_head;
        std::iter::from_fn(move || {
            (cursor != NIL).then(|| {
                let slot = cursor;
                cursor = self.slots[slot as usize].next;
                slot
            })
        })
    }

    /// Snapshot restore: threads the free list through `free` (slots that
    /// hold [`Order::FREE`]), in that order, and sets the live count. The
    /// caller validated that `free` and the live slots partition `slots`.
    pub(crate) fn restore_free_list(&mut self, free: &[u32], live: usize) {
        self.free_head = free.first().copied().unwrap_or(NIL);
        for (k, &slot) in free.iter().enumerate() {
            self.slots[slot as usize].next = free.get(k + 1).copied().unwrap_or(NIL);
        }
        self.live = live;
    }

    /// The slot count the arena may grow to.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Order>()
    }
}
