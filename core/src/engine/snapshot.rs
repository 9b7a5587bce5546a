//! Engine snapshots: the complete trading state as versioned,
//! little-endian bytes, and the engine rebuilt from them.
//!
//! The property that matters: for any command stream and any split point
//! `k`, an engine that applies the whole stream and one that applies the
//! first `k` commands, is snapshotted, restored and applies the rest emit
//! byte-identical events and reach the same [`Engine::state_digest`]. So a
//! snapshot holds everything that can reach an event — including what the
//! digest does not cover: the order arena's high-water mark and free-list
//! order (order ids are `(counter << 24) | slot`), the client-id index with
//! the slot each id names, the duplicate-detection window in age order,
//! the GTD heap and whether an instrument's stop ladders exist (they are
//! allocated on a market's first stop order).
//!
//! Snapshots are canonical: a restored engine snapshots to the same bytes.
//!
//! # Format (version 1)
//!
//! A header, thirteen sections in a fixed order — each opening with a
//! 4-byte ASCII tag so an error can name where it happened — and a trailer.
//! All integers little-endian; `i128` as 16 bytes; `bool` as one byte 0/1.
//!
//! ```text
//!  0       1       2       3       4       5       6       7       8
//!  +-------+-------+-------+-------+-------+-------+-------+-------+
//!  |                  magic "RGXENGIN" (8 bytes)                   |  0
//!  +---------------+---------------+-------------------------------+
//!  | version (u16) | reserved (u16)|         reserved (u32)        |  8
//!  +---------------+---------------+-------------------------------+
//!  | "CONF" max_orders u32, max_accounts u32, max_instruments u32, |  16
//!  |        max_assets u16, risk u8, 0 u8, max_positions u32,      |
//!  |        dedup_window u32, max_price_levels u32                 |
//!  | "CNTR" order_seq u64, next_trade_id u64, global_kill u64,     |
//!  |        now u64, seq u64, ts u64, commands_applied u64         |
//!  | "ASST" per asset (max_assets): deposited i128, withdrawn i128 |
//!  | "INST" count u32; per instrument, by id: id u32, kind u8,     |
//!  |        status u8, has_stop_ladders u8, has_last_price u8,     |
//!  |        tick i64, lot u64, min i64, max i64, maker_bps u16,    |
//!  |        taker_bps u16, base u16, quote u16, last_price i64,    |
//!  |        open_interest u64                                      |
//!  | "ACCT" count u32; per account, by id: id u32, kill_switch u8, |
//!  |        0 u8 x3, max_order_quantity u64, max_open_orders u32,  |
//!  |        max_notional u64, max_position u64, then per asset:    |
//!  |        available i64, reserved i64                            |
//!  | "POSN" count u32; per position record, in creation order:     |
//!  |        account u32, instrument u32, position i64,             |
//!  |        committed [u64; 2], open_qty [u64; 2]                  |
//!  | "ORDR" high_water u32, count u32; per live order, in queue    |
//!  |        order (instrument, book side bid/ask, level, FIFO;     |
//!  |        then the stop ladders the same way): slot u32, id u64, |
//!  |        client_id u64, price i64, quantity u64, leaves u64,    |
//!  |        filled u64, stop_price i64, expire u64, reserved u64,  |
//!  |        covered u64, converted u64, account u32,               |
//!  |        instrument u32, side u8, outcome u8, order_type u8,    |
//!  |        tif u8, post_only u8, stp u8, state u8, budget u8      |
//!  | "AOQS" count u32; per account with live orders, by id:        |
//!  |        account u32, n u32, n slots u32 (oldest first)         |
//!  | "FREE" count u32; free arena slots u32 in allocation order    |
//!  | "CIDX" count u32; per client-id entry, sorted:                |
//!  |        account u32, client_order_id u64, slot u32             |
//!  | "DEDU" count u32; finished client ids, oldest first:          |
//!  |        account u32, client_order_id u64                       |
//!  | "GTDH" count u32; GTD heap entries, sorted: expire u64, id u64|
//!  | "END!"                                                        |
//!  +-------------------------------+-------------------------------+
//!  |    checksum (u32): CRC32C of every byte before it             |
//!  +---------------------------------------------------------------+
//! ```
//!
//! A level's FIFO is rebuilt from the order of the `ORDR` records, an
//! account's order list from `AOQS`, the free list from `FREE`; the
//! position records' per-market lists follow from their creation order.
//!
//! # Validation
//!
//! [`Engine::from_snapshot`] never panics on any input. It checks the
//! magic, version and checksum, that the snapshot was taken with the same
//! [`EngineConfig`] (capacities change behaviour, so replay would diverge),
//! every count against its capacity, every enum byte, every reference
//! (order → account, instrument, slot; position → account, binary market),
//! that live and free slots partition the arena, that every live order is in
//! exactly one queue and one account list, and finally every engine
//! invariant ([`Engine::check_invariants`]: conservation, reservations,
//! book aggregates). A rejected snapshot is an [`Error::Snapshot`] naming
//! the byte offset, the section and the problem.
//!
//! # Memory
//!
//! The restored engine is built by [`Engine::try_new`] and filled in
//! place, so it holds exactly the preallocated capacities a fresh engine
//! has; the zero-allocation steady state holds after a restore.
//!
//! Single writer: the engine thread (writing only reads the engine; a
//! restored engine is handed to the thread that will own it).

use std::cmp::Reverse;

use super::orders::{Order, OrderState, NIL};
use super::{Engine, EngineConfig, RiskMode, FEE_ACCOUNT, ORDER_SLOT_BITS};
use crate::records::{
    AccountLimits, Event, EventSink, InstrumentKind, InstrumentSpec, InstrumentStatus, OrderType,
    Outcome, SelfTradePrevention, Side, TimeInForce,
};
use crate::Error;

/// Magic bytes at the start of an engine snapshot.
pub const ENGINE_SNAPSHOT_MAGIC: [u8; 8] = *b"RGXENGIN";
/// The engine snapshot format version this build writes and reads.
pub const ENGINE_SNAPSHOT_VERSION: u16 = 1;
/// Bytes before the first section (magic, version, reserved).
pub const ENGINE_SNAPSHOT_HEADER_SIZE: usize = 16;
/// Bytes of the trailing checksum.
pub const ENGINE_SNAPSHOT_TRAILER_SIZE: usize = 4;

/// The checksum an engine snapshot ends with: CRC32C of every byte before
/// the trailer (for tools that build or patch snapshots).
pub fn engine_snapshot_checksum(body: &[u8]) -> u32 {
    crc32c::crc32c(body)
}

const SLOT_MASK: u64 = (1 << ORDER_SLOT_BITS) - 1;

struct Discard;

impl EventSink for Discard {
    fn emit(&mut self, _event: &Event) {}
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn tag(&mut self, tag: &[u8; 4]) {
        self.out.extend_from_slice(tag);
    }
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn i128(&mut self, v: i128) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn count(&mut self, n: usize) {
        // Every count is bounded by a u32 capacity of the configuration.
        self.u32(n as u32);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    section: &'static str,
}

type Res<T> = Result<T, Error>;

impl<'a> Reader<'a> {
    fn fail<T>(&self, problem: impl Into<String>) -> Res<T> {
        Err(Error::Snapshot {
            offset: self.pos,
            section: self.section,
            problem: problem.into(),
        })
    }
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        if self.bytes.len() - self.pos < n {
            return self.fail(format!(
                "truncated: {n} more bytes needed, {} left",
                self.bytes.len() - self.pos
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn section(&mut self, tag: &[u8; 4], name: &'static str) -> Res<()> {
        self.section = name;
        let found = self.array::<4>()?;
        if &found != tag {
            self.pos -= 4;
            return self.fail(format!(
                "expected section tag {:?}, found {:?}",
                String::from_utf8_lossy(tag),
                String::from_utf8_lossy(&found)
            ));
        }
        Ok(())
    }
    fn u8(&mut self) -> Res<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn bool(&mut self, what: &str) -> Res<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => self.fail(format!("{what}: {v} is not a boolean")),
        }
    }
    fn u16(&mut self) -> Res<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Res<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn i128(&mut self) -> Res<i128> {
        Ok(i128::from_le_bytes(self.array()?))
    }
    /// A count, at most `max` (a capacity).
    fn count(&mut self, max: usize, what: &str) -> Res<usize> {
        let n = self.u32()? as usize;
        if n > max {
            return self.fail(format!("{n} {what}, more than the capacity {max}"));
        }
        Ok(n)
    }
    fn enum_u8<T>(&mut self, what: &str, decode: fn(u8) -> Option<T>) -> Res<T> {
        let v = self.u8()?;
        match decode(v) {
            Some(t) => Ok(t),
            None => self.fail(format!("unknown {what} {v}")),
        }
    }
}

fn write_config(w: &mut Writer<'_>, c: &EngineConfig) {
    w.tag(b"CONF");
    w.u32(c.max_orders);
    w.u32(c.max_accounts);
    w.u32(c.max_instruments);
    w.u16(c.max_assets);
    w.u8(match c.risk {
        RiskMode::Enabled => 1,
        RiskMode::Disabled => 0,
    });
    w.u8(0);
    w.u32(c.max_positions);
    w.u32(c.dedup_window);
    w.u32(c.max_price_levels);
}

fn read_config(r: &mut Reader<'_>) -> Res<EngineConfig> {
    r.section(b"CONF", "config")?;
    let max_orders = r.u32()?;
    let max_accounts = r.u32()?;
    let max_instruments = r.u32()?;
    let max_assets = r.u16()?;
    let risk = match r.u8()? {
        1 => RiskMode::Enabled,
        0 => RiskMode::Disabled,
        v => return r.fail(format!("unknown risk mode {v}")),
    };
    if r.u8()? != 0 {
        return r.fail("non-zero padding");
    }
    Ok(EngineConfig {
        max_orders,
        max_accounts,
        max_instruments,
        max_assets,
        max_positions: r.u32()?,
        dedup_window: r.u32()?,
        max_price_levels: r.u32()?,
        risk,
    })
}

impl Engine {
    /// Appends a snapshot of the complete engine state to `out` (see the
    /// module docs for the format). Allocates (it is not on the order path).
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let mut w = Writer { out };
        w.out.extend_from_slice(&ENGINE_SNAPSHOT_MAGIC);
        w.u16(ENGINE_SNAPSHOT_VERSION);
        w.u16(0);
        w.u32(0);
        write_config(&mut w, &self.config);

        w.tag(b"CNTR");
        for v in [
            self.order_seq,
            self.next_trade_id,
            u64::from(self.global_kill),
            self.now,
            self.seq,
            self.ts,
            self.commands_applied,
        ] {
            w.u64(v);
        }

        w.tag(b"ASST");
        for (d, wd) in self.deposited.iter().zip(self.withdrawn.iter()) {
            w.i128(*d);
            w.i128(*wd);
        }

        w.tag(b"INST");
        w.count(self.instruments.iter().flatten().count());
        for inst in self.instruments.iter().flatten() {
            let s = &inst.spec;
            w.u32(s.id);
            w.u8(s.kind as u8);
            w.u8(inst.status as u8);
            w.u8(u8::from(inst.book.stops.is_some()));
            w.u8(u8::from(inst.last_price.is_some()));
            w.i64(s.tick_size);
            w.u64(s.lot_size);
            w.i64(s.min_price);
            w.i64(s.max_price);
            w.u16(s.maker_fee_bps);
            w.u16(s.taker_fee_bps);
            w.u16(s.base_asset);
            w.u16(s.quote_asset);
            w.i64(inst.last_price.unwrap_or(0));
            w.u64(inst.open_interest);
        }

        w.tag(b"ACCT");
        w.count(self.accounts.iter().flatten().count());
        for (id, acct) in self.accounts.iter().enumerate() {
            let Some(acct) = acct else { continue };
            w.u32(id as u32);
            w.u8(u8::from(acct.kill_switch));
            for _ in 0..3 {
                w.u8(0);
            }
            let l = &acct.limits;
            w.u64(l.max_order_quantity);
            w.u32(l.max_open_orders);
            w.u64(l.max_notional);
            w.u64(l.max_position);
            for b in self.account_balances(id as u32) {
                w.i64(b.available);
                w.i64(b.reserved);
            }
        }

        w.tag(b"POSN");
        w.count(self.positions.len());
        for p in &self.positions {
            w.u32(p.account);
            w.u32(p.instrument);
            w.i64(p.position);
            for v in p.committed.iter().chain(&p.open_qty) {
                w.u64(*v);
            }
        }

        w.tag(b"ORDR");
        w.count(self.orders.slots.len());
        w.count(self.orders.live());
        for inst in self.instruments.iter().flatten() {
            let book = &inst.book;
            let stops = book.stops.as_deref().into_iter().flatten();
            for ladder in book.sides.iter().chain(stops) {
                for level in ladder.levels.iter().filter(|l| l.count > 0) {
                    let mut cursor = level.head;
                    while cursor != NIL {
                        let o = &self.orders.slots[cursor as usize];
                        write_order(&mut w, cursor, o);
                        cursor = o.next;
                    }
                }
            }
        }

        w.tag(b"AOQS");
        w.count(
            self.accounts
                .iter()
                .flatten()
                .filter(|a| a.open_orders > 0)
                .count(),
        );
        for (id, acct) in self.accounts.iter().enumerate() {
            let Some(acct) = acct.as_ref().filter(|a| a.open_orders > 0) else {
                continue;
            };
            w.u32(id as u32);
            w.u32(acct.open_orders);
            let mut cursor = acct.orders_head;
            while cursor != NIL {
                w.u32(cursor);
                cursor = self.orders.slots[cursor as usize].acct_next;
            }
        }

        w.tag(b"FREE");
        w.count(self.orders.slots.len() - self.orders.live());
        for slot in self.orders.free_list() {
            w.u32(slot);
        }

        w.tag(b"CIDX");
        let mut index: Vec<(u32, u64, u32)> = self
            .client_index
            .packed_entries()
            .map(|((client_id, account), slot)| (account, client_id, slot))
            .collect();
        index.sort_unstable();
        w.count(index.len());
        for (account, client_id, slot) in index {
            w.u32(account);
            w.u64(client_id);
            w.u32(slot);
        }

        w.tag(b"DEDU");
        w.count(self.finished_len);
        let window = self.finished_ring.len();
        for k in 0..self.finished_len {
            let (account, client_id) = self.finished_ring[(self.finished_head + k) % window];
            w.u32(account);
            w.u64(client_id);
        }

        w.tag(b"GTDH");
        let mut gtd: Vec<(u64, u64)> = self.gtd.iter().map(|Reverse(e)| *e).collect();
        gtd.sort_unstable();
        w.count(gtd.len());
        for (expire, id) in gtd {
            w.u64(expire);
            w.u64(id);
        }

        w.tag(b"END!");
        let checksum = engine_snapshot_checksum(&w.out[start..]);
        w.u32(checksum);
    }

    /// Rebuilds an engine from [`Engine::write_snapshot`] bytes. `config`
    /// must be the configuration the snapshot was taken with. Any defect —
    /// truncation, corruption, an unknown version, a state that breaks an
    /// invariant — is an [`Error::Snapshot`] (or [`Error::InvalidConfig`]);
    /// this never panics. See the module docs.
    pub fn from_snapshot(config: EngineConfig, bytes: &[u8]) -> crate::Result<Engine> {
        let mut r = Reader {
            bytes,
            pos: 0,
            section: "header",
        };
        if bytes.len() < ENGINE_SNAPSHOT_HEADER_SIZE + ENGINE_SNAPSHOT_TRAILER_SIZE {
            return r.fail(format!(
                "{} bytes is shorter than an engine snapshot's header and trailer",
                bytes.len()
            ));
        }
        if r.array::<8>()? != ENGINE_SNAPSHOT_MAGIC {
            r.pos = 0;
            return r.fail("bad magic (not an engine snapshot)");
        }
        let version = r.u16()?;
        if version != ENGINE_SNAPSHOT_VERSION {
            return r.fail(format!(
                "unsupported engine snapshot version {version} (this build reads {ENGINE_SNAPSHOT_VERSION})"
            ));
        }
        if r.u16()? != 0 || r.u32()? != 0 {
            return r.fail("non-zero reserved header bytes");
        }
        let body_end = bytes.len() - ENGINE_SNAPSHOT_TRAILER_SIZE;
        let mut trailer = [0u8; 4];
        trailer.copy_from_slice(&bytes[body_end..]);
        let stored = u32::from_le_bytes(trailer);
        let computed = engine_snapshot_checksum(&bytes[..body_end]);
        if stored != computed {
            r.pos = body_end;
            r.section = "trailer";
            return r.fail(format!(
                "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ));
        }
        // Sections must end exactly at the trailer.
        r.bytes = &bytes[..body_end];

        let taken_with = read_config(&mut r)?;
        if taken_with != config {
            return r.fail(format!(
                "taken with {taken_with:?}, but the engine is configured with {config:?}"
            ));
        }
        let mut e = Engine::try_new(config)?;
        e.restore_sections(&mut r)?;
        r.section(b"END!", "end")?;
        if r.pos != r.bytes.len() {
            return r.fail(format!(
                "{} unexpected bytes before the trailer",
                r.bytes.len() - r.pos
            ));
        }
        r.section = "invariants";
        if let Err(violation) = e.check_invariants() {
            return r.fail(format!(
                "the restored state breaks an invariant: {violation}"
            ));
        }
        Ok(e)
    }

    fn restore_sections(&mut self, r: &mut Reader<'_>) -> Res<()> {
        let config = self.config;
        let assets = config.max_assets as usize;

        r.section(b"CNTR", "counters")?;
        self.order_seq = r.u64()?;
        if self.order_seq == 0 || self.order_seq >= 1 << (64 - ORDER_SLOT_BITS) {
            return r.fail(format!("order counter {} out of range", self.order_seq));
        }
        self.next_trade_id = r.u64()?;
        if self.next_trade_id == 0 {
            return r.fail("trade id counter is 0");
        }
        self.global_kill = match r.u64()? {
            0 => false,
            1 => true,
            v => return r.fail(format!("global kill switch {v} is not a boolean")),
        };
        self.now = r.u64()?;
        self.seq = r.u64()?;
        self.ts = r.u64()?;
        self.commands_applied = r.u64()?;

        r.section(b"ASST", "assets")?;
        for asset in 0..assets {
            let (deposited, withdrawn) = (r.i128()?, r.i128()?);
            // What `deposit` and `withdraw` allow: never more out than in,
            // and the outstanding total within i64.
            if withdrawn < 0
                || withdrawn > deposited
                || deposited - withdrawn > i128::from(i64::MAX)
            {
                return r.fail(format!(
                    "asset {asset}: deposited {deposited}, withdrawn {withdrawn} out of range"
                ));
            }
            self.deposited[asset] = deposited;
            self.withdrawn[asset] = withdrawn;
        }

        r.section(b"INST", "instruments")?;
        let n = r.count(config.max_instruments as usize, "instruments")?;
        let mut last_id = 0;
        for _ in 0..n {
            let id = r.u32()?;
            if id <= last_id {
                return r.fail(format!("instrument {id} out of order or repeated"));
            }
            last_id = id;
            let kind = r.enum_u8("instrument kind", InstrumentKind::from_u8)?;
            let status = r.enum_u8("instrument status", InstrumentStatus::from_u8)?;
            let has_stops = r.bool("stop ladders flag")?;
            let has_last = r.bool("last price flag")?;
            let spec = InstrumentSpec {
                id,
                kind,
                tick_size: r.i64()?,
                lot_size: r.u64()?,
                min_price: r.i64()?,
                max_price: r.i64()?,
                maker_fee_bps: r.u16()?,
                taker_fee_bps: r.u16()?,
                base_asset: r.u16()?,
                quote_asset: r.u16()?,
            };
            let last_price = r.i64()?;
            let open_interest = r.u64()?;
            // The same validation and construction as the AddInstrument command.
            if let Err(reason) = self.add_instrument(&spec, &mut Discard) {
                return r.fail(format!("instrument {id}: {reason:?}"));
            }
            if has_last && !(spec.min_price..=spec.max_price).contains(&last_price) {
                return r.fail(format!(
                    "instrument {id}: last price {last_price} outside its range"
                ));
            }
            let inst = self.instrument_mut(id);
            inst.status = status;
            inst.last_price = has_last.then_some(last_price);
            inst.open_interest = open_interest;
            if has_stops {
                inst.book.stops_mut();
            }
        }

        r.section(b"ACCT", "accounts")?;
        let n = r.count(config.max_accounts as usize, "accounts")?;
        let mut previous: Option<u32> = None;
        for _ in 0..n {
            let id = r.u32()?;
            let in_order = match previous {
                None => id == FEE_ACCOUNT,
                Some(p) => id > p && id < config.max_accounts,
            };
            if !in_order {
                return r.fail(format!(
                    "account {id}: out of range, out of order or repeated (the first must be the fee account 0)"
                ));
            }
            previous = Some(id);
            if id != FEE_ACCOUNT {
                self.open_account(id);
            }
            let kill_switch = r.bool("kill switch")?;
            if r.array::<3>()? != [0; 3] {
                return r.fail("non-zero padding");
            }
            let limits = AccountLimits {
                max_order_quantity: r.u64()?,
                max_open_orders: r.u32()?,
                max_notional: r.u64()?,
                max_position: r.u64()?,
            };
            let acct = self.account_mut(id);
            acct.kill_switch = kill_switch;
            acct.limits = limits;
            for asset in 0..assets {
                let b = self.balance_mut(id, asset);
                b.available = r.i64()?;
                b.reserved = r.i64()?;
            }
        }
        if n == 0 {
            return r.fail("the fee account (0) is missing");
        }

        r.section(b"POSN", "positions")?;
        let n = r.count(config.max_positions as usize, "positions")?;
        for _ in 0..n {
            let account = r.u32()?;
            let instrument = r.u32()?;
            if self.account(account).is_none() {
                return r.fail(format!("position of unknown account {account}"));
            }
            if self
                .instrument(instrument)
                .is_none_or(|i| i.spec.kind != InstrumentKind::Binary)
            {
                return r.fail(format!(
                    "position in {instrument}, which is not a binary market"
                ));
            }
            if self.position_slot(account, instrument).is_some() {
                return r.fail(format!(
                    "two position records for account {account} in market {instrument}"
                ));
            }
            let position = r.i64()?;
            if position == i64::MIN {
                return r.fail("position out of range");
            }
            let slot = self.position_slot_or_create(account, instrument);
            let p = &mut self.positions[slot as usize];
            p.position = position;
            for v in p.committed.iter_mut().chain(p.open_qty.iter_mut()) {
                *v = r.u64()?;
            }
        }

        self.restore_orders(r)
    }

    fn restore_orders(&mut self, r: &mut Reader<'_>) -> Res<()> {
        let config = self.config;
        r.section(b"ORDR", "orders")?;
        let high_water = r.count(self.orders.capacity(), "arena slots")?;
        let live = r.count(high_water, "live orders")?;
        // Within the capacity reserved by `try_new`: no reallocation.
        self.orders.slots.resize(high_water, Order::FREE);
        for _ in 0..live {
            let (slot, o) = read_order(r)?;
            self.place_restored_order(r, slot, o, config.max_accounts)?;
        }

        r.section(b"AOQS", "account order lists")?;
        let n = r.count(config.max_accounts as usize, "accounts with orders")?;
        let mut linked = vec![false; high_water];
        let mut linked_total = 0usize;
        let mut previous: Option<u32> = None;
        for _ in 0..n {
            let account = r.u32()?;
            if previous.is_some_and(|p| account <= p) || self.account(account).is_none() {
                return r.fail(format!(
                    "order list of account {account}: unknown, out of order or repeated"
                ));
            }
            previous = Some(account);
            let count = r.count(live, "orders on one account")?;
            if count == 0 {
                return r.fail(format!("empty order list for account {account}"));
            }
            for _ in 0..count {
                let slot = r.u32()? as usize;
                let ok = slot < high_water
                    && !linked[slot]
                    && self.orders.slots[slot].state != OrderState::Free
                    && self.orders.slots[slot].account == account;
                if !ok {
                    return r.fail(format!(
                        "slot {slot} on account {account}'s list is not a live order of it, or listed twice"
                    ));
                }
                linked[slot] = true;
                linked_total += 1;
                self.link_account_order(account, slot as u32);
            }
        }
        if linked_total != live {
            return r.fail(format!(
                "{live} live orders but {linked_total} on account lists"
            ));
        }

        r.section(b"FREE", "free list")?;
        let n = r.count(high_water, "free slots")?;
        if n != high_water - live {
            return r.fail(format!(
                "{n} free slots, but {high_water} slots with {live} live orders"
            ));
        }
        let mut free = Vec::with_capacity(n);
        let mut seen = vec![false; high_water];
        for _ in 0..n {
            let slot = r.u32()? as usize;
            if slot >= high_water || seen[slot] || self.orders.slots[slot].state != OrderState::Free
            {
                return r.fail(format!(
                    "free slot {slot} is out of range, live or repeated"
                ));
            }
            seen[slot] = true;
            free.push(slot as u32);
        }
        self.orders.restore_free_list(&free, live);

        r.section(b"CIDX", "client id index")?;
        let window = self.finished_ring.len();
        let n = r.count(config.max_orders as usize + window, "client ids")?;
        for _ in 0..n {
            let account = r.u32()?;
            let client_id = r.u64()?;
            let slot = r.u32()?;
            if account >= config.max_accounts || client_id == 0 || slot as usize >= high_water {
                return r.fail(format!(
                    "client id ({account}, {client_id}) -> slot {slot} out of range"
                ));
            }
            match self.client_index.insert_new((account, client_id), slot) {
                super::fixed_map::InsertNew::Inserted => {}
                _ => return r.fail(format!("client id ({account}, {client_id}) repeated")),
            }
        }
        for (slot, o) in self.orders.slots.iter().enumerate() {
            if o.state != OrderState::Free
                && o.client_id != 0
                && self.client_index.get((o.account, o.client_id)) != Some(slot as u32)
            {
                return r.fail(format!(
                    "order {} carries client id {} but the index does not name it",
                    o.id, o.client_id
                ));
            }
        }

        r.section(b"DEDU", "duplicate window")?;
        let n = r.count(window, "finished client ids")?;
        for k in 0..n {
            let account = r.u32()?;
            let client_id = r.u64()?;
            if account >= config.max_accounts || client_id == 0 {
                return r.fail(format!(
                    "finished client id ({account}, {client_id}) invalid"
                ));
            }
            self.finished_ring[k] = (account, client_id);
        }
        self.finished_head = 0;
        self.finished_len = n;

        r.section(b"GTDH", "GTD heap")?;
        let n = r.count(self.gtd.capacity(), "GTD entries")?;
        for _ in 0..n {
            let expire = r.u64()?;
            let id = r.u64()?;
            self.gtd.push(Reverse((expire, id)));
        }
        Ok(())
    }

    /// Validates one restored order and queues it at the back of its level
    /// (the `ORDR` records come in queue order).
    fn place_restored_order(
        &mut self,
        r: &Reader<'_>,
        slot: u32,
        o: Order,
        max_accounts: u32,
    ) -> Res<()> {
        let s = slot as usize;
        if s >= self.orders.slots.len() || self.orders.slots[s].state != OrderState::Free {
            return r.fail(format!("order slot {slot} out of range or used twice"));
        }
        if o.id & SLOT_MASK != u64::from(slot)
            || !(1..self.order_seq).contains(&(o.id >> ORDER_SLOT_BITS))
        {
            return r.fail(format!(
                "order id {} does not match slot {slot} and the counter",
                o.id
            ));
        }
        if o.account == FEE_ACCOUNT
            || o.account >= max_accounts
            || self.account(o.account).is_none()
        {
            return r.fail(format!("order {} of unknown account {}", o.id, o.account));
        }
        if o.leaves == 0 || o.leaves.checked_add(o.filled) != Some(o.quantity) {
            return r.fail(format!("order {}: leaves + filled != quantity", o.id));
        }
        let Some(inst) = self.instrument(o.instrument) else {
            return r.fail(format!(
                "order {} on unknown instrument {}",
                o.id, o.instrument
            ));
        };
        if inst.status == InstrumentStatus::Closed {
            return r.fail(format!(
                "order {} on closed instrument {}",
                o.id, o.instrument
            ));
        }
        let spec = inst.spec;
        let on_grid = |p: i64| {
            (spec.min_price..=spec.max_price).contains(&p)
                && (p - spec.min_price) % spec.tick_size == 0
        };
        let key_price = match o.state {
            OrderState::Resting => o.price,
            OrderState::PendingStop => o.stop_price,
            _ => {
                return r.fail(format!(
                    "order {} in state {:?} between commands",
                    o.id, o.state
                ))
            }
        };
        if !on_grid(o.price) || !on_grid(key_price) {
            return r.fail(format!("order {}: price off the instrument's grid", o.id));
        }
        let book = &mut self.instruments[o.instrument as usize]
            .as_mut()
            .expect("checked above")
            .book;
        let idx = book.grid.index(key_price);
        let ladder = match o.state {
            OrderState::Resting => &book.sides[o.side as usize],
            _ => &book.stops_mut()[o.side as usize],
        };
        if ladder.levels[idx].quantity.checked_add(o.leaves).is_none() {
            return r.fail(format!("order {}: level quantity overflows", o.id));
        }
        self.orders.slots[s] = o;
        let slots = &mut self.orders.slots;
        match o.state {
            OrderState::Resting => {
                book.insert(slots, slot);
            }
            _ => book.stops_mut()[o.side as usize].push_back(slots, idx, slot),
        }
        Ok(())
    }
}

fn write_order(w: &mut Writer<'_>, slot: u32, o: &Order) {
    w.u32(slot);
    w.u64(o.id);
    w.u64(o.client_id);
    w.i64(o.price);
    w.u64(o.quantity);
    w.u64(o.leaves);
    w.u64(o.filled);
    w.i64(o.stop_price);
    w.u64(o.expire);
    w.u64(o.reserved);
    w.u64(o.covered);
    w.u64(o.converted);
    w.u32(o.account);
    w.u32(o.instrument);
    w.u8(o.side as u8);
    w.u8(o.outcome as u8);
    w.u8(o.order_type as u8);
    w.u8(o.tif as u8);
    w.u8(u8::from(o.post_only));
    w.u8(o.stp as u8);
    w.u8(o.state as u8);
    w.u8(u8::from(o.budget));
}

fn order_state(v: u8) -> Option<OrderState> {
    match v {
        2 => Some(OrderState::Resting),
        3 => Some(OrderState::PendingStop),
        _ => None,
    }
}

fn read_order(r: &mut Reader<'_>) -> Res<(u32, Order)> {
    let slot = r.u32()?;
    let o = Order {
        id: r.u64()?,
        client_id: r.u64()?,
        price: r.i64()?,
        quantity: r.u64()?,
        leaves: r.u64()?,
        filled: r.u64()?,
        stop_price: r.i64()?,
        expire: r.u64()?,
        reserved: r.u64()?,
        covered: r.u64()?,
        converted: r.u64()?,
        account: r.u32()?,
        instrument: r.u32()?,
        side: r.enum_u8("side", Side::from_u8)?,
        outcome: r.enum_u8("outcome", Outcome::from_u8)?,
        order_type: r.enum_u8("order type", OrderType::from_u8)?,
        tif: r.enum_u8("time in force", TimeInForce::from_u8)?,
        post_only: r.bool("post-only flag")?,
        stp: r.enum_u8("self-trade prevention", SelfTradePrevention::from_u8)?,
        state: r.enum_u8("order state (resting or pending stop)", order_state)?,
        budget: r.bool("budget flag")?,
        ..Order::FREE
    };
    Ok((slot, o))
}
