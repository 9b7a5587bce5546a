//! Fixed-size command and event records.
//!
//! These are the bytes that travel everywhere: gateways write [`Command`]s
//! into the input ring, the journaler appends them verbatim to the input
//! journal, the engine turns each one into zero or more [`Event`]s, and the
//! publisher and output journal carry those. Both records are `#[repr(C)]`,
//! [`bytemuck::Pod`], contain no padding, and are little-endian on the wire
//! (every supported target is little-endian; the journal format documents
//! the byte order explicitly).
//!
//! Each record starts with a `kind` byte and a `version` byte. A reader that
//! sees an unknown kind or a version it does not understand rejects the
//! record instead of guessing ([`Command::decode`], [`Event::decode`]).
//!
//! # Command layout (version 1, 80 bytes)
//!
//! ```text
//!  0       1       2       3       4       5       6       7       8
//!  +-------+-------+-------+-------+-------+-------+-------+-------+
//!  | kind  |version| side  |outcome| otype |  tif  | flags |  stp  |  0
//!  +-------+-------+-------+-------+-------+-------+-------+-------+
//!  |            account (u32)      |        instrument (u32)       |  8
//!  +-------------------------------+-------------------------------+
//!  |                     sequence (u64, set on entry)              | 16
//!  +---------------------------------------------------------------+
//!  |                timestamp (u64, ns since epoch, set on entry)  | 24
//!  +---------------------------------------------------------------+
//!  |                     client_order_id (u64)                     | 32
//!  +---------------------------------------------------------------+
//!  |                         price (i64)                           | 40
//!  +---------------------------------------------------------------+
//!  |                        quantity (u64)                         | 48
//!  +---------------------------------------------------------------+
//!  |                       stop_price (i64)                        | 56
//!  +---------------------------------------------------------------+
//!  |                          aux (u64)                            | 64
//!  +---------------------------------------------------------------+
//!  |                        order_id (u64)                         | 72
//!  +---------------------------------------------------------------+
//! ```
//!
//! Which fields a command uses depends on its kind; the typed constructors
//! on [`Command`] and the decoded [`CommandView`] name them. Unused fields
//! are zero.
//!
//! # Event layout (version 1, 96 bytes)
//!
//! ```text
//!  0       1       2       3       4                               8
//!  +-------+-------+-------+-------+-------------------------------+
//!  | kind  |version| side  |reason |        instrument (u32)       |  0
//!  +-------+-------+-------+-------+-------------------------------+
//!  |          account (u32)        |           code (u32)          |  8
//!  +-------------------------------+-------------------------------+
//!  |        sequence of the command that produced it (u64)         | 16
//!  +---------------------------------------------------------------+
//!  |                  words[0..9] (9 x u64, per kind)              | 24..96
//!  +---------------------------------------------------------------+
//! ```
//!
//! The meaning of `side`, `reason`, `account`, `code` and `words` per kind is
//! given by [`EventView`] and the constructors in the engine.

use bytemuck::{Pod, Zeroable};

/// Version written into every command record produced by this crate.
pub const COMMAND_VERSION: u8 = 1;
/// Version written into every event record produced by this crate.
pub const EVENT_VERSION: u8 = 1;
/// Size of a [`Command`] record in bytes.
pub const COMMAND_SIZE: usize = 80;
/// Size of an [`Event`] record in bytes.
pub const EVENT_SIZE: usize = 96;

/// Byte offsets of the command fields (see the module docs for the diagram).
pub mod command_offsets {
    /// `kind` (u8).
    pub const KIND: usize = 0;
    /// `version` (u8).
    pub const VERSION: usize = 1;
    /// `side` (u8).
    pub const SIDE: usize = 2;
    /// `outcome` (u8).
    pub const OUTCOME: usize = 3;
    /// `order_type` (u8).
    pub const ORDER_TYPE: usize = 4;
    /// `time_in_force` (u8).
    pub const TIME_IN_FORCE: usize = 5;
    /// `flags` (u8).
    pub const FLAGS: usize = 6;
    /// `stp` (u8).
    pub const STP: usize = 7;
    /// `account` (u32).
    pub const ACCOUNT: usize = 8;
    /// `instrument` (u32).
    pub const INSTRUMENT: usize = 12;
    /// `sequence` (u64).
    pub const SEQUENCE: usize = 16;
    /// `timestamp` (u64).
    pub const TIMESTAMP: usize = 24;
    /// `client_order_id` (u64).
    pub const CLIENT_ORDER_ID: usize = 32;
    /// `price` (i64).
    pub const PRICE: usize = 40;
    /// `quantity` (u64).
    pub const QUANTITY: usize = 48;
    /// `stop_price` (i64).
    pub const STOP_PRICE: usize = 56;
    /// `aux` (u64).
    pub const AUX: usize = 64;
    /// `order_id` (u64).
    pub const ORDER_ID: usize = 72;
}

/// Byte offsets of the event fields (see the module docs for the diagram).
pub mod event_offsets {
    /// `kind` (u8).
    pub const KIND: usize = 0;
    /// `version` (u8).
    pub const VERSION: usize = 1;
    /// `side` (u8).
    pub const SIDE: usize = 2;
    /// `reason` (u8).
    pub const REASON: usize = 3;
    /// `instrument` (u32).
    pub const INSTRUMENT: usize = 4;
    /// `account` (u32).
    pub const ACCOUNT: usize = 8;
    /// `code` (u32).
    pub const CODE: usize = 12;
    /// `sequence` (u64).
    pub const SEQUENCE: usize = 16;
    /// First of the nine `words` (u64 each).
    pub const WORDS: usize = 24;
}

macro_rules! u8_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $($(#[$vmeta])* $variant = $value),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Decodes the wire byte, or `None` for a value this version does not know.
            #[inline]
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

u8_enum! {
    /// What a [`Command`] asks the engine to do.
    CommandKind {
        /// Register an instrument (binary event contract or spot pair).
        AddInstrument = 1,
        /// Register an account.
        AddAccount = 2,
        /// Credit an asset balance.
        Deposit = 3,
        /// Debit an available asset balance.
        Withdraw = 4,
        /// Enter a new order.
        NewOrder = 5,
        /// Cancel one order.
        Cancel = 6,
        /// Change the price and/or quantity of a resting order.
        Replace = 7,
        /// Cancel all of an account's orders, optionally in one instrument.
        MassCancel = 8,
        /// Set an account's pre-trade risk limits.
        SetLimits = 9,
        /// Turn a kill switch (global or per account) on or off.
        KillSwitch = 10,
        /// Halt trading in an instrument.
        Halt = 11,
        /// Resume trading in a halted instrument.
        Resume = 12,
        /// Settle a binary market at YES or NO.
        Settle = 13,
        /// Advance engine time: expires GTD orders whose time has come.
        TimerTick = 14,
        /// Ask for a digest of the whole engine state.
        StateDigest = 15,
    }
}

u8_enum! {
    /// Side of the normalised book an order rests on, or the aggressor side of a trade.
    Side {
        /// Buy (for binary markets: a YES bid).
        Buy = 0,
        /// Sell (for binary markets: a YES ask).
        Sell = 1,
    }
}

impl Side {
    /// The other side.
    #[inline]
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

u8_enum! {
    /// Which leg of a binary contract an order names. Spot orders use `None`.
    Outcome {
        /// Not a binary order (spot instruments).
        None = 0,
        /// The YES leg.
        Yes = 1,
        /// The NO leg: normalised to the YES book at `100 - price` on the other side.
        No = 2,
    }
}

u8_enum! {
    /// Order type.
    OrderType {
        /// Limit order at `price`.
        Limit = 0,
        /// Market order, bounded by a protection price (or, for spot buys, a quote budget).
        Market = 1,
        /// Market order released when the last trade price reaches `stop_price`.
        StopMarket = 2,
        /// Limit order at `price` released when the last trade price reaches `stop_price`.
        StopLimit = 3,
    }
}

u8_enum! {
    /// Time in force.
    TimeInForce {
        /// Good till cancelled.
        Gtc = 0,
        /// Immediate or cancel: the unfilled remainder is cancelled.
        Ioc = 1,
        /// Fill or kill: all or nothing, checked before any fill.
        Fok = 2,
        /// Good till date: expires at `aux` (ns) when a timer tick reaches it.
        Gtd = 3,
    }
}

u8_enum! {
    /// Self-trade prevention mode of an incoming order.
    SelfTradePrevention {
        /// Self-trades are allowed.
        None = 0,
        /// Cancel the incoming (taker) order's remainder.
        CancelTaker = 1,
        /// Cancel the resting (maker) order and keep matching.
        CancelMaker = 2,
        /// Cancel both.
        CancelBoth = 3,
    }
}

u8_enum! {
    /// Kind of instrument.
    InstrumentKind {
        /// Binary event contract: YES prices 1..=99 cents, settles at 0 or 100.
        Binary = 0,
        /// Spot pair BASE/QUOTE.
        Spot = 1,
    }
}

u8_enum! {
    /// Trading status of an instrument.
    InstrumentStatus {
        /// Open for trading.
        Trading = 0,
        /// Halted: no new orders or replaces; cancels allowed.
        Halted = 1,
        /// Closed (a settled binary market): nothing but queries.
        Closed = 2,
    }
}

u8_enum! {
    /// Why an order left the book without being filled.
    CancelReason {
        /// The owner asked.
        User = 0,
        /// Remainder of an IOC (or market) order.
        IocRemainder = 1,
        /// A FOK order that could not be filled in full.
        FokUnfilled = 2,
        /// Self-trade prevention.
        SelfTrade = 3,
        /// A GTD order reached its expiry time.
        Expired = 4,
        /// Mass cancel.
        MassCancel = 5,
        /// A kill switch was turned on.
        KillSwitch = 6,
        /// The market settled.
        Settlement = 7,
        /// A spot market buy ran out of quote budget.
        BudgetExhausted = 8,
        /// A triggered stop-limit that was post-only would have crossed.
        PostOnlyWouldCross = 9,
    }
}

/// Bit in [`Command::flags`]: the order must rest (rejected if it would cross).
pub const FLAG_POST_ONLY: u8 = 1;

macro_rules! reject_reasons {
    ($($variant:ident = $value:expr => $text:expr),+ $(,)?) => {
        /// Why a command was rejected. Every reject has a code (the wire
        /// value) and a human-readable [`RejectReason::text`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum RejectReason {
            $(#[doc = $text] $variant = $value),+
        }

        impl RejectReason {
            /// Every reason, in code order.
            pub const ALL: &'static [RejectReason] = &[$(RejectReason::$variant),+];

            /// Decodes a wire code.
            pub const fn from_u16(code: u16) -> Option<Self> {
                match code { $($value => Some(RejectReason::$variant),)+ _ => None }
            }

            /// Human-readable explanation, fit for a FIX `Text` field or a JSON error.
            pub const fn text(self) -> &'static str {
                match self { $(RejectReason::$variant => $text),+ }
            }
        }
    };
}

reject_reasons! {
    MalformedCommand = 1 => "malformed command: unknown kind, version or enum value",
    UnknownInstrument = 2 => "unknown instrument",
    UnknownAccount = 3 => "unknown account",
    UnknownOrder = 4 => "unknown order (never existed, already finished, or not yours)",
    InstrumentExists = 5 => "instrument id already in use",
    AccountExists = 6 => "account id already in use",
    InvalidInstrumentSpec = 7 => "invalid instrument definition (tick, lot, bounds, assets or fees)",
    InvalidAsset = 8 => "asset id out of range",
    InvalidAmount = 9 => "amount must be positive",
    InsufficientFunds = 10 => "insufficient available balance",
    InvalidOutcome = 11 => "outcome must be YES or NO for binary markets and absent for spot",
    InvalidPrice = 12 => "price out of the instrument's bounds",
    PriceNotOnTick = 13 => "price is not a multiple of the tick size",
    InvalidQuantity = 14 => "quantity must be positive",
    QuantityNotOnLot = 15 => "quantity is not a multiple of the lot size",
    InvalidTimeInForce = 16 => "time in force not allowed for this order type",
    ExpireTimeInPast = 17 => "GTD expiry time is not after the command time",
    InvalidStopPrice = 18 => "stop price out of bounds or off tick",
    InvalidOrderCombination = 19 => "invalid combination of order type, flags and budget",
    DuplicateClientOrderId = 20 => "client order id already used by this account",
    InstrumentHalted = 21 => "instrument is halted",
    InstrumentClosed = 22 => "instrument is closed",
    KillSwitchActive = 23 => "kill switch is active",
    MaxOrderQuantityExceeded = 24 => "order quantity above the account's limit",
    MaxOpenOrdersExceeded = 25 => "account has too many open orders",
    MaxNotionalExceeded = 26 => "order notional above the account's limit",
    MaxPositionExceeded = 27 => "order could take the position beyond the account's limit",
    PostOnlyWouldCross = 28 => "post-only order would cross the book",
    TooLate = 29 => "order is no longer open (too late to cancel or replace)",
    ReplaceNotAllowed = 30 => "only resting limit orders can be replaced",
    ReplaceQuantityTooLow = 31 => "new quantity is not above the filled quantity",
    OrderCapacityExhausted = 32 => "engine order capacity exhausted",
    CapacityExhausted = 33 => "engine capacity exhausted (accounts, instruments or positions)",
    NotBinaryMarket = 34 => "settlement applies to binary markets only",
    InvalidStatusTransition = 35 => "instrument is not in a state that allows this",
    ReservedAccount = 36 => "account 0 is the fee account and cannot trade",
    BudgetOnlyForSpotMarketBuy = 37 => "a quote budget is allowed only on spot market buy orders",
}

/// The input record: one command for the engine.
///
/// See the module docs for the byte layout. Build commands with the typed
/// constructors ([`Command::new_order`], [`Command::cancel`], ...), which
/// set `kind` and `version`; `sequence` and `timestamp` are assigned on
/// entry to the pipeline ([`Command::stamped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Pod, Zeroable)]
#[repr(C)]
pub struct Command {
    /// [`CommandKind`] wire value.
    pub kind: u8,
    /// Record version ([`COMMAND_VERSION`]).
    pub version: u8,
    /// [`Side`] for orders; [`InstrumentKind`] for `AddInstrument`; 1 = on for `KillSwitch`.
    pub side: u8,
    /// [`Outcome`] for orders and `Settle`.
    pub outcome: u8,
    /// [`OrderType`].
    pub order_type: u8,
    /// [`TimeInForce`].
    pub time_in_force: u8,
    /// Order flags ([`FLAG_POST_ONLY`]).
    pub flags: u8,
    /// [`SelfTradePrevention`].
    pub stp: u8,
    /// Account the command acts for (0 for global commands).
    pub account: u32,
    /// Instrument (or asset id for deposits and withdrawals).
    pub instrument: u32,
    /// Sequence number assigned on entry (the journal sequence).
    pub sequence: u64,
    /// Nanoseconds since the Unix epoch, assigned on entry. The engine's only clock.
    pub timestamp: u64,
    /// Client order id (idempotency key per account).
    pub client_order_id: u64,
    /// Limit price or protection price, in ticks of the YES book (binary) or quote units (spot).
    pub price: i64,
    /// Quantity in lots (orders), amount (deposits), or per-kind meaning.
    pub quantity: u64,
    /// Stop trigger price for stop orders; per-kind meaning otherwise.
    pub stop_price: i64,
    /// GTD expiry (ns), spot market quote budget, or per-kind meaning.
    pub aux: u64,
    /// Target order id (cancel/replace) or per-kind meaning.
    pub order_id: u64,
}

const _: () = assert!(std::mem::size_of::<Command>() == COMMAND_SIZE);

/// Parameters of a new order, for [`Command::new_order`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderSpec {
    /// Account placing the order.
    pub account: u32,
    /// Instrument.
    pub instrument: u32,
    /// Client order id (unique per account).
    pub client_order_id: u64,
    /// Buy or sell (of `outcome` for binary markets).
    pub side: Side,
    /// YES/NO for binary markets, `None` for spot.
    pub outcome: Outcome,
    /// Order type.
    pub order_type: OrderType,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// Limit price (limit, stop-limit) or protection price (market, stop-market; 0 = default).
    pub price: i64,
    /// Quantity, a positive multiple of the lot size (for a spot market buy with a budget: the most to buy).
    pub quantity: u64,
    /// Stop trigger price (stop orders only).
    pub stop_price: i64,
    /// GTD expiry time in ns.
    pub expire_time: u64,
    /// Spot market buy: quote budget.
    pub quote_budget: u64,
    /// Post-only.
    pub post_only: bool,
    /// Self-trade prevention.
    pub stp: SelfTradePrevention,
}

impl OrderSpec {
    /// A GTC limit order with no extras.
    pub fn limit(
        account: u32,
        instrument: u32,
        client_order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
    ) -> Self {
        OrderSpec {
            account,
            instrument,
            client_order_id,
            side,
            outcome: Outcome::None,
            order_type: OrderType::Limit,
            time_in_force: TimeInForce::Gtc,
            price,
            quantity,
            stop_price: 0,
            expire_time: 0,
            quote_budget: 0,
            post_only: false,
            stp: SelfTradePrevention::None,
        }
    }
}

/// Parameters of a new instrument, for [`Command::add_instrument`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstrumentSpec {
    /// Instrument id (dense, below the engine's instrument capacity).
    pub id: u32,
    /// Binary or spot.
    pub kind: InstrumentKind,
    /// Prices must be multiples of this.
    pub tick_size: i64,
    /// Quantities must be multiples of this.
    pub lot_size: u64,
    /// Lowest allowed price (binary: at least 1).
    pub min_price: i64,
    /// Highest allowed price (binary: at most 99).
    pub max_price: i64,
    /// Maker fee in basis points.
    pub maker_fee_bps: u16,
    /// Taker fee in basis points.
    pub taker_fee_bps: u16,
    /// Base asset (spot); unused for binary.
    pub base_asset: u16,
    /// Quote (cash) asset; binary markets settle in it.
    pub quote_asset: u16,
}

impl InstrumentSpec {
    /// A binary market on prices 1..=99 with tick 1, lot 1, no fees, settling in `cash_asset`.
    pub fn binary(id: u32, cash_asset: u16) -> Self {
        InstrumentSpec {
            id,
            kind: InstrumentKind::Binary,
            tick_size: 1,
            lot_size: 1,
            min_price: 1,
            max_price: 99,
            maker_fee_bps: 0,
            taker_fee_bps: 0,
            base_asset: 0,
            quote_asset: cash_asset,
        }
    }
}

/// Account risk limits, for [`Command::set_limits`]. Zero means "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountLimits {
    /// Largest quantity of one order.
    pub max_order_quantity: u64,
    /// Largest number of open (resting or pending stop) orders.
    pub max_open_orders: u32,
    /// Largest notional of one order (price x quantity, in quote units; binary: cents).
    pub max_notional: u64,
    /// Largest absolute position per binary market, counting open orders on the same side.
    pub max_position: u64,
}

impl Command {
    fn base(kind: CommandKind) -> Command {
        Command {
            kind: kind as u8,
            version: COMMAND_VERSION,
            ..Command::zeroed()
        }
    }

    /// Returns a copy with the entry sequence number and timestamp set.
    #[inline]
    pub fn stamped(mut self, sequence: u64, timestamp: u64) -> Command {
        self.sequence = sequence;
        self.timestamp = timestamp;
        self
    }

    /// `AddInstrument`. Fees are packed into `client_order_id` (maker bps in
    /// bits 0..16, taker in 16..32) and assets into `order_id` (quote in
    /// bits 0..16, base in 16..32); tick in `price`, lot in `quantity`,
    /// bounds in `stop_price` (min) and `aux` (max, as i64 bits).
    pub fn add_instrument(spec: InstrumentSpec) -> Command {
        Command {
            side: spec.kind as u8,
            instrument: spec.id,
            price: spec.tick_size,
            quantity: spec.lot_size,
            stop_price: spec.min_price,
            aux: spec.max_price as u64,
            client_order_id: u64::from(spec.maker_fee_bps) | (u64::from(spec.taker_fee_bps) << 16),
            order_id: u64::from(spec.quote_asset) | (u64::from(spec.base_asset) << 16),
            ..Command::base(CommandKind::AddInstrument)
        }
    }

    /// `AddAccount`.
    pub fn add_account(account: u32) -> Command {
        Command {
            account,
            ..Command::base(CommandKind::AddAccount)
        }
    }

    /// `Deposit` of `amount` of `asset` (carried in the `instrument` field).
    pub fn deposit(account: u32, asset: u16, amount: u64) -> Command {
        Command {
            account,
            instrument: u32::from(asset),
            quantity: amount,
            ..Command::base(CommandKind::Deposit)
        }
    }

    /// `Withdraw` of `amount` of `asset`.
    pub fn withdraw(account: u32, asset: u16, amount: u64) -> Command {
        Command {
            account,
            instrument: u32::from(asset),
            quantity: amount,
            ..Command::base(CommandKind::Withdraw)
        }
    }

    /// `NewOrder`.
    pub fn new_order(spec: OrderSpec) -> Command {
        Command {
            side: spec.side as u8,
            outcome: spec.outcome as u8,
            order_type: spec.order_type as u8,
            time_in_force: spec.time_in_force as u8,
            flags: if spec.post_only { FLAG_POST_ONLY } else { 0 },
            stp: spec.stp as u8,
            account: spec.account,
            instrument: spec.instrument,
            client_order_id: spec.client_order_id,
            price: spec.price,
            quantity: spec.quantity,
            stop_price: spec.stop_price,
            aux: if spec.time_in_force == TimeInForce::Gtd {
                spec.expire_time
            } else {
                spec.quote_budget
            },
            ..Command::base(CommandKind::NewOrder)
        }
    }

    /// `Cancel` by engine order id.
    pub fn cancel(account: u32, order_id: u64) -> Command {
        Command {
            account,
            order_id,
            ..Command::base(CommandKind::Cancel)
        }
    }

    /// `Cancel` by the client order id the order was entered with (`order_id` = 0).
    pub fn cancel_by_client_id(account: u32, client_order_id: u64) -> Command {
        Command {
            account,
            client_order_id,
            ..Command::base(CommandKind::Cancel)
        }
    }

    /// `Replace`: give order `order_id` a new price and total quantity, under a
    /// new client order id. Reducing quantity at the same price keeps priority.
    pub fn replace(
        account: u32,
        order_id: u64,
        new_client_order_id: u64,
        new_price: i64,
        new_quantity: u64,
    ) -> Command {
        Command {
            account,
            order_id,
            client_order_id: new_client_order_id,
            price: new_price,
            quantity: new_quantity,
            ..Command::base(CommandKind::Replace)
        }
    }

    /// `Replace` addressing the order by its current client order id (carried in `aux`).
    pub fn replace_by_client_id(
        account: u32,
        orig_client_order_id: u64,
        new_client_order_id: u64,
        new_price: i64,
        new_quantity: u64,
    ) -> Command {
        Command {
            aux: orig_client_order_id,
            ..Command::replace(account, 0, new_client_order_id, new_price, new_quantity)
        }
    }

    /// `MassCancel` of an account's orders; `instrument` 0 means all instruments
    /// (instrument ids start at 1).
    pub fn mass_cancel(account: u32, instrument: Option<u32>) -> Command {
        Command {
            account,
            instrument: instrument.unwrap_or(0),
            ..Command::base(CommandKind::MassCancel)
        }
    }

    /// `SetLimits`: max order quantity in `quantity`, max open orders in
    /// `order_id`, max notional in `aux`, max position in `stop_price`.
    pub fn set_limits(account: u32, limits: AccountLimits) -> Command {
        Command {
            account,
            quantity: limits.max_order_quantity,
            order_id: u64::from(limits.max_open_orders),
            aux: limits.max_notional,
            stop_price: limits.max_position as i64,
            ..Command::base(CommandKind::SetLimits)
        }
    }

    /// `KillSwitch` for one account, or globally when `account` is `None`.
    /// Turning it on cancels the affected open orders and blocks new ones.
    pub fn kill_switch(account: Option<u32>, on: bool) -> Command {
        Command {
            account: account.unwrap_or(0),
            side: u8::from(on),
            order_type: u8::from(account.is_none()),
            ..Command::base(CommandKind::KillSwitch)
        }
    }

    /// `Halt` an instrument.
    pub fn halt(instrument: u32) -> Command {
        Command {
            instrument,
            ..Command::base(CommandKind::Halt)
        }
    }

    /// `Resume` a halted instrument.
    pub fn resume(instrument: u32) -> Command {
        Command {
            instrument,
            ..Command::base(CommandKind::Resume)
        }
    }

    /// `Settle` a binary market at `outcome` (YES or NO).
    pub fn settle(instrument: u32, outcome: Outcome) -> Command {
        Command {
            instrument,
            outcome: outcome as u8,
            ..Command::base(CommandKind::Settle)
        }
    }

    /// `TimerTick`: the engine's time moves to the command timestamp.
    pub fn timer_tick() -> Command {
        Command::base(CommandKind::TimerTick)
    }

    /// `StateDigest` query.
    pub fn state_digest() -> Command {
        Command::base(CommandKind::StateDigest)
    }

    /// Decodes the record into a typed view, or says why it cannot.
    pub fn decode(&self) -> Result<CommandView, RejectReason> {
        if self.version != COMMAND_VERSION {
            return Err(RejectReason::MalformedCommand);
        }
        let kind = CommandKind::from_u8(self.kind).ok_or(RejectReason::MalformedCommand)?;
        let bad = RejectReason::MalformedCommand;
        Ok(match kind {
            CommandKind::AddInstrument => CommandView::AddInstrument(InstrumentSpec {
                id: self.instrument,
                kind: InstrumentKind::from_u8(self.side).ok_or(bad)?,
                tick_size: self.price,
                lot_size: self.quantity,
                min_price: self.stop_price,
                max_price: self.aux as i64,
                maker_fee_bps: self.client_order_id as u16,
                taker_fee_bps: (self.client_order_id >> 16) as u16,
                quote_asset: self.order_id as u16,
                base_asset: (self.order_id >> 16) as u16,
            }),
            CommandKind::AddAccount => CommandView::AddAccount {
                account: self.account,
            },
            CommandKind::Deposit | CommandKind::Withdraw => {
                let asset =
                    u16::try_from(self.instrument).map_err(|_| RejectReason::InvalidAsset)?;
                if kind == CommandKind::Deposit {
                    CommandView::Deposit {
                        account: self.account,
                        asset,
                        amount: self.quantity,
                    }
                } else {
                    CommandView::Withdraw {
                        account: self.account,
                        asset,
                        amount: self.quantity,
                    }
                }
            }
            CommandKind::NewOrder => {
                let time_in_force = TimeInForce::from_u8(self.time_in_force).ok_or(bad)?;
                if self.flags & !FLAG_POST_ONLY != 0 {
                    return Err(bad);
                }
                CommandView::NewOrder(OrderSpec {
                    account: self.account,
                    instrument: self.instrument,
                    client_order_id: self.client_order_id,
                    side: Side::from_u8(self.side).ok_or(bad)?,
                    outcome: Outcome::from_u8(self.outcome).ok_or(bad)?,
                    order_type: OrderType::from_u8(self.order_type).ok_or(bad)?,
                    time_in_force,
                    price: self.price,
                    quantity: self.quantity,
                    stop_price: self.stop_price,
                    expire_time: if time_in_force == TimeInForce::Gtd {
                        self.aux
                    } else {
                        0
                    },
                    quote_budget: if time_in_force == TimeInForce::Gtd {
                        0
                    } else {
                        self.aux
                    },
                    post_only: self.flags & FLAG_POST_ONLY != 0,
                    stp: SelfTradePrevention::from_u8(self.stp).ok_or(bad)?,
                })
            }
            CommandKind::Cancel => CommandView::Cancel {
                account: self.account,
                order_id: self.order_id,
                client_order_id: self.client_order_id,
            },
            CommandKind::Replace => CommandView::Replace {
                account: self.account,
                order_id: self.order_id,
                orig_client_order_id: self.aux,
                new_client_order_id: self.client_order_id,
                price: self.price,
                quantity: self.quantity,
            },
            CommandKind::MassCancel => CommandView::MassCancel {
                account: self.account,
                instrument: (self.instrument != 0).then_some(self.instrument),
            },
            CommandKind::SetLimits => CommandView::SetLimits {
                account: self.account,
                limits: AccountLimits {
                    max_order_quantity: self.quantity,
                    max_open_orders: u32::try_from(self.order_id).map_err(|_| bad)?,
                    max_notional: self.aux,
                    max_position: u64::try_from(self.stop_price).map_err(|_| bad)?,
                },
            },
            CommandKind::KillSwitch => {
                if self.side > 1 || self.order_type > 1 {
                    return Err(bad);
                }
                CommandView::KillSwitch {
                    account: (self.order_type == 0).then_some(self.account),
                    on: self.side == 1,
                }
            }
            CommandKind::Halt => CommandView::Halt {
                instrument: self.instrument,
            },
            CommandKind::Resume => CommandView::Resume {
                instrument: self.instrument,
            },
            CommandKind::Settle => CommandView::Settle {
                instrument: self.instrument,
                outcome: Outcome::from_u8(self.outcome).ok_or(bad)?,
            },
            CommandKind::TimerTick => CommandView::TimerTick,
            CommandKind::StateDigest => CommandView::StateDigest,
        })
    }
}

/// A decoded [`Command`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // field names are the documentation; see the constructors on `Command`
pub enum CommandView {
    AddInstrument(InstrumentSpec),
    AddAccount {
        account: u32,
    },
    Deposit {
        account: u32,
        asset: u16,
        amount: u64,
    },
    Withdraw {
        account: u32,
        asset: u16,
        amount: u64,
    },
    NewOrder(OrderSpec),
    Cancel {
        account: u32,
        order_id: u64,
        client_order_id: u64,
    },
    Replace {
        account: u32,
        order_id: u64,
        orig_client_order_id: u64,
        new_client_order_id: u64,
        price: i64,
        quantity: u64,
    },
    MassCancel {
        account: u32,
        instrument: Option<u32>,
    },
    SetLimits {
        account: u32,
        limits: AccountLimits,
    },
    KillSwitch {
        account: Option<u32>,
        on: bool,
    },
    Halt {
        instrument: u32,
    },
    Resume {
        instrument: u32,
    },
    Settle {
        instrument: u32,
        outcome: Outcome,
    },
    TimerTick,
    StateDigest,
}

u8_enum! {
    /// What an [`Event`] reports.
    EventKind {
        /// A new order was accepted. words: order_id, client_order_id, price (YES book),
        /// quantity, stop_price, expire/budget, packed(order_type | tif<<8 | flags<<16 | stp<<24 | outcome<<32).
        /// side = normalised book side.
        OrderAccepted = 1,
        /// A command was rejected. code = [`RejectReason`]; reason = [`CommandKind`];
        /// words: client_order_id, order_id.
        Rejected = 2,
        /// A trade. side = aggressor side; account = taker account; code = maker account.
        /// words: trade_id, maker_order_id, taker_order_id, price, quantity,
        /// maker_fee, taker_fee, maker_leaves, taker_leaves.
        Trade = 3,
        /// An order left the book unfilled. reason = [`CancelReason`].
        /// words: order_id, client_order_id, cancelled quantity, filled quantity.
        OrderCancelled = 4,
        /// An order was replaced. words: order_id, new client_order_id, old client_order_id,
        /// new price, new quantity, leaves, kept priority (0/1).
        OrderReplaced = 5,
        /// A stop order was triggered. words: order_id, client_order_id, stop_price, last trade price.
        StopTriggered = 6,
        /// An L2 level changed. side = book side; words: price, total quantity, order count.
        BookLevel = 7,
        /// A balance changed. code = asset; words: available, reserved (as i64).
        BalanceChanged = 8,
        /// A binary position changed. words: position (i64), open interest of the market.
        PositionChanged = 9,
        /// An instrument's status changed. reason = [`InstrumentStatus`]; code = [`InstrumentKind`].
        InstrumentStatusChanged = 10,
        /// A binary market settled. reason = [`Outcome`]; words: open interest settled, total paid.
        MarketSettled = 11,
        /// An admin command took effect. reason = [`CommandKind`]; words per kind (amount for
        /// deposits and withdrawals, 1/0 for kill switches).
        Ack = 12,
        /// Answer to `StateDigest`. words: digest, orders open, accounts, instruments.
        StateDigest = 13,
    }
}

/// The output record: one thing that happened. See the module docs for the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Pod, Zeroable)]
#[repr(C)]
pub struct Event {
    /// [`EventKind`] wire value.
    pub kind: u8,
    /// Record version ([`EVENT_VERSION`]).
    pub version: u8,
    /// Side (per kind).
    pub side: u8,
    /// Reason / status / outcome (per kind).
    pub reason: u8,
    /// Instrument (0 if none).
    pub instrument: u32,
    /// Account (0 if none).
    pub account: u32,
    /// Per-kind code (reject reason, asset, maker account, ...).
    pub code: u32,
    /// Sequence of the command that produced the event.
    pub sequence: u64,
    /// Per-kind payload words.
    pub words: [u64; 9],
}

const _: () = assert!(std::mem::size_of::<Event>() == EVENT_SIZE);

impl Event {
    /// An event of `kind` with the header filled and the payload zeroed.
    #[inline]
    pub fn new(kind: EventKind, sequence: u64) -> Event {
        Event {
            kind: kind as u8,
            version: EVENT_VERSION,
            sequence,
            ..Event::zeroed()
        }
    }

    /// The event kind, if known to this version.
    #[inline]
    pub fn event_kind(&self) -> Option<EventKind> {
        if self.version != EVENT_VERSION {
            return None;
        }
        EventKind::from_u8(self.kind)
    }

    /// Decodes the record into a typed view.
    pub fn decode(&self) -> Option<EventView> {
        let w = &self.words;
        Some(match self.event_kind()? {
            EventKind::OrderAccepted => EventView::OrderAccepted {
                instrument: self.instrument,
                account: self.account,
                side: Side::from_u8(self.side)?,
                order_id: w[0],
                client_order_id: w[1],
                price: w[2] as i64,
                quantity: w[3],
                stop_price: w[4] as i64,
                order_type: OrderType::from_u8(w[6] as u8)?,
                time_in_force: TimeInForce::from_u8((w[6] >> 8) as u8)?,
                outcome: Outcome::from_u8((w[6] >> 32) as u8)?,
            },
            EventKind::Rejected => EventView::Rejected {
                account: self.account,
                instrument: self.instrument,
                command: CommandKind::from_u8(self.reason),
                reason: RejectReason::from_u16(self.code as u16)?,
                client_order_id: w[0],
                order_id: w[1],
            },
            EventKind::Trade => EventView::Trade {
                instrument: self.instrument,
                aggressor: Side::from_u8(self.side)?,
                taker_account: self.account,
                maker_account: self.code,
                trade_id: w[0],
                maker_order_id: w[1],
                taker_order_id: w[2],
                price: w[3] as i64,
                quantity: w[4],
                maker_fee: w[5] as i64,
                taker_fee: w[6] as i64,
                maker_leaves: w[7],
                taker_leaves: w[8],
            },
            EventKind::OrderCancelled => EventView::OrderCancelled {
                instrument: self.instrument,
                account: self.account,
                reason: CancelReason::from_u8(self.reason)?,
                order_id: w[0],
                client_order_id: w[1],
                cancelled_quantity: w[2],
                filled_quantity: w[3],
            },
            EventKind::OrderReplaced => EventView::OrderReplaced {
                instrument: self.instrument,
                account: self.account,
                order_id: w[0],
                client_order_id: w[1],
                orig_client_order_id: w[2],
                price: w[3] as i64,
                quantity: w[4],
                leaves: w[5],
                kept_priority: w[6] != 0,
            },
            EventKind::StopTriggered => EventView::StopTriggered {
                instrument: self.instrument,
                account: self.account,
                order_id: w[0],
                client_order_id: w[1],
                stop_price: w[2] as i64,
                last_price: w[3] as i64,
            },
            EventKind::BookLevel => EventView::BookLevel {
                instrument: self.instrument,
                side: Side::from_u8(self.side)?,
                price: w[0] as i64,
                quantity: w[1],
                orders: w[2] as u32,
            },
            EventKind::BalanceChanged => EventView::BalanceChanged {
                account: self.account,
                asset: self.code as u16,
                available: w[0] as i64,
                reserved: w[1] as i64,
            },
            EventKind::PositionChanged => EventView::PositionChanged {
                account: self.account,
                instrument: self.instrument,
                position: w[0] as i64,
                open_interest: w[1],
            },
            EventKind::InstrumentStatusChanged => EventView::InstrumentStatusChanged {
                instrument: self.instrument,
                status: InstrumentStatus::from_u8(self.reason)?,
            },
            EventKind::MarketSettled => EventView::MarketSettled {
                instrument: self.instrument,
                outcome: Outcome::from_u8(self.reason)?,
                open_interest: w[0],
                paid: w[1],
            },
            EventKind::Ack => EventView::Ack {
                command: CommandKind::from_u8(self.reason)?,
                account: self.account,
                instrument: self.instrument,
                value: w[0],
            },
            EventKind::StateDigest => EventView::StateDigest {
                digest: w[0],
                open_orders: w[1],
                accounts: w[2],
                instruments: w[3],
            },
        })
    }
}

/// A decoded [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // see the per-kind docs on `EventKind`
pub enum EventView {
    OrderAccepted {
        instrument: u32,
        account: u32,
        side: Side,
        order_id: u64,
        client_order_id: u64,
        price: i64,
        quantity: u64,
        stop_price: i64,
        order_type: OrderType,
        time_in_force: TimeInForce,
        outcome: Outcome,
    },
    Rejected {
        account: u32,
        instrument: u32,
        command: Option<CommandKind>,
        reason: RejectReason,
        client_order_id: u64,
        order_id: u64,
    },
    Trade {
        instrument: u32,
        aggressor: Side,
        taker_account: u32,
        maker_account: u32,
        trade_id: u64,
        maker_order_id: u64,
        taker_order_id: u64,
        price: i64,
        quantity: u64,
        maker_fee: i64,
        taker_fee: i64,
        maker_leaves: u64,
        taker_leaves: u64,
    },
    OrderCancelled {
        instrument: u32,
        account: u32,
        reason: CancelReason,
        order_id: u64,
        client_order_id: u64,
        cancelled_quantity: u64,
        filled_quantity: u64,
    },
    OrderReplaced {
        instrument: u32,
        account: u32,
        order_id: u64,
        client_order_id: u64,
        orig_client_order_id: u64,
        price: i64,
        quantity: u64,
        leaves: u64,
        kept_priority: bool,
    },
    StopTriggered {
        instrument: u32,
        account: u32,
        order_id: u64,
        client_order_id: u64,
        stop_price: i64,
        last_price: i64,
    },
    BookLevel {
        instrument: u32,
        side: Side,
        price: i64,
        quantity: u64,
        orders: u32,
    },
    BalanceChanged {
        account: u32,
        asset: u16,
        available: i64,
        reserved: i64,
    },
    PositionChanged {
        account: u32,
        instrument: u32,
        position: i64,
        open_interest: u64,
    },
    InstrumentStatusChanged {
        instrument: u32,
        status: InstrumentStatus,
    },
    MarketSettled {
        instrument: u32,
        outcome: Outcome,
        open_interest: u64,
        paid: u64,
    },
    Ack {
        command: CommandKind,
        account: u32,
        instrument: u32,
        value: u64,
    },
    StateDigest {
        digest: u64,
        open_orders: u64,
        accounts: u64,
        instruments: u64,
    },
}

/// Where the engine writes its events. The pipeline's output ring, a `Vec`,
/// and a counting sink for benchmarks all implement it.
pub trait EventSink {
    /// Receives one event. Must not fail: a sink that can run out of room
    /// is sized (or made to drop) by its owner, never by the engine.
    fn emit(&mut self, event: &Event);
}

impl EventSink for Vec<Event> {
    #[inline]
    fn emit(&mut self, event: &Event) {
        self.push(*event);
    }
}

/// A sink that only counts events (benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingSink {
    /// Events received.
    pub events: u64,
    /// Trades among them.
    pub trades: u64,
}

impl EventSink for CountingSink {
    #[inline]
    fn emit(&mut self, event: &Event) {
        self.events += 1;
        self.trades += u64::from(event.kind == EventKind::Trade as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_constructors_round_trip_through_decode() {
        let spec = OrderSpec {
            outcome: Outcome::No,
            order_type: OrderType::StopLimit,
            time_in_force: TimeInForce::Gtd,
            stop_price: 40,
            expire_time: 99,
            post_only: true,
            stp: SelfTradePrevention::CancelBoth,
            ..OrderSpec::limit(7, 3, 11, Side::Sell, 42, 5)
        };
        assert_eq!(
            Command::new_order(spec).decode(),
            Ok(CommandView::NewOrder(spec))
        );
        let inst = InstrumentSpec {
            maker_fee_bps: 5,
            taker_fee_bps: 700,
            base_asset: 3,
            ..InstrumentSpec::binary(9, 1)
        };
        assert_eq!(
            Command::add_instrument(inst).decode(),
            Ok(CommandView::AddInstrument(inst))
        );
        let limits = AccountLimits {
            max_order_quantity: 1,
            max_open_orders: 2,
            max_notional: 3,
            max_position: 4,
        };
        assert_eq!(
            Command::set_limits(5, limits).decode(),
            Ok(CommandView::SetLimits { account: 5, limits })
        );
        assert_eq!(
            Command::kill_switch(None, true).decode(),
            Ok(CommandView::KillSwitch {
                account: None,
                on: true
            })
        );
    }

    #[test]
    fn unknown_kind_version_or_enum_value_is_malformed() {
        let mut cmd = Command::timer_tick();
        cmd.version = 2;
        assert_eq!(cmd.decode(), Err(RejectReason::MalformedCommand));
        let mut cmd = Command::timer_tick();
        cmd.kind = 200;
        assert_eq!(cmd.decode(), Err(RejectReason::MalformedCommand));
        let mut cmd = Command::new_order(OrderSpec::limit(1, 1, 1, Side::Buy, 1, 1));
        cmd.side = 9;
        assert_eq!(cmd.decode(), Err(RejectReason::MalformedCommand));
    }

    #[test]
    fn every_reject_reason_has_a_distinct_code_and_text() {
        for (i, a) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(RejectReason::from_u16(*a as u16), Some(*a));
            assert!(!a.text().is_empty());
            for b in &RejectReason::ALL[i + 1..] {
                assert_ne!(*a as u16, *b as u16);
            }
        }
    }

    #[test]
    fn records_are_little_endian_at_their_documented_offsets() {
        let cmd = Command::new_order(OrderSpec::limit(0x0102_0304, 7, 9, Side::Sell, -2, 5))
            .stamped(0x1122, 0x3344);
        let bytes = bytemuck::bytes_of(&cmd);
        use command_offsets as o;
        assert_eq!(bytes[o::KIND], CommandKind::NewOrder as u8);
        assert_eq!(bytes[o::SIDE], Side::Sell as u8);
        assert_eq!(
            &bytes[o::ACCOUNT..o::ACCOUNT + 4],
            &0x0102_0304u32.to_le_bytes()
        );
        assert_eq!(
            &bytes[o::SEQUENCE..o::SEQUENCE + 8],
            &0x1122u64.to_le_bytes()
        );
        assert_eq!(
            &bytes[o::TIMESTAMP..o::TIMESTAMP + 8],
            &0x3344u64.to_le_bytes()
        );
        assert_eq!(&bytes[o::PRICE..o::PRICE + 8], &(-2i64).to_le_bytes());
        assert_eq!(&bytes[o::QUANTITY..o::QUANTITY + 8], &5u64.to_le_bytes());
        let mut ev = Event::new(EventKind::Trade, 77);
        ev.words[8] = 0xAB;
        let bytes = bytemuck::bytes_of(&ev);
        assert_eq!(
            &bytes[event_offsets::SEQUENCE..event_offsets::SEQUENCE + 8],
            &77u64.to_le_bytes()
        );
        assert_eq!(bytes[event_offsets::WORDS + 64], 0xAB);
    }
}
