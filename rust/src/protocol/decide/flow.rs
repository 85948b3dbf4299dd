//! The decision flow in the core (PROTOCOL section 10): from a typed `DecisionInput` to a typed `Decision`. The
//! compiled `Decider` (account specs, entry rules, strike grid, sizing and risk settings) is built once per engine
//! configuration; each decision reads it, picks the strike, sizes the order, measures ES before and after over the
//! day's scenarios, builds the rule context, runs the rules, gates by trust and writes the explanation.
//!
//! The whole flow runs here: managing open short options (protocol levels, expiry and week types, drawdown and
//! budget cuts, stop-loss, rolls, take-profit), shares (stop-loss, cuts, Com-Acc's top-ups and reinvestment puts,
//! covered calls), Com-Acc's round lots and new entries. The Python engine assembles the input, makes this one call
//! and keeps its runtime state (protection, freezes, cuts, the order-rate window) from what comes back.

use crate::error::{check, CoreError, CoreResult};
use crate::pricing::{bs_greeks, OptionKind};
use crate::protocol::decide::pyfmt::{
    fixed, general, iso_date, pct, repr, round, thousands, title,
};
use crate::protocol::decide::scenarios::{Held, Scenarios, OPTION_MULTIPLIER};
use crate::protocol::decide::sizing::{fit_to_es_budget, floor_exact, put_budget};
use crate::protocol::decide::strike::StrikePicker;
use crate::protocol::decide::Tables;
use crate::protocol::drawdown::allowed_exposure;
use crate::protocol::level::delta_target;
use crate::protocol::sizing::{size_covered_calls, PutSizing};
use crate::protocol::week_type::Position as WeekPosition;
use crate::risk::{expected_shortfall, PositionKind};
use crate::rules::{self, Chain, OrderContext, RuleResult, RuleSet, Severity};

/// Shares per contract.
pub const MULTIPLIER: f64 = OPTION_MULTIPLIER;

/// The labels, in the order entry rules are kept.
pub const LABELS: [&str; 3] = ["green", "red", "chop"];
/// The account types, in the order account rules are kept.
pub const ACCOUNT_KINDS: [&str; 3] = ["gen", "rev", "com"];
/// Trust's decision kinds, in the order their scores are given.
pub const TRUST_KINDS: [&str; 5] = ["entry", "exit", "roll", "risk_reduction", "emergency"];

/// Entry days, delta band and size multiplier for (account type, label), PROTOCOL sections 3 and 8.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRule {
    pub entry_days: Vec<u8>,
    pub band: Option<(f64, f64)>,
    pub m_label: f64,
}

/// One account type's compiled constants.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRules {
    pub kind: String,
    pub name: String,
    pub buffer: f64,
    pub max_drawdown: f64,
    /// The deployment target D as a share of equity.
    pub target_share: f64,
    /// R07's concentration limit for the type (the engine's override, else the account's, else the risk cap).
    pub max_symbol_weight: f64,
    pub allowed_symbols: Vec<String>,
    /// Entry rules for green, red and chop.
    pub entry: [EntryRule; 3],
}

/// Everything a decision reads from the configuration, compiled and validated once.
#[derive(Debug, Clone)]
pub struct Decider {
    pub accounts: [AccountRules; 3],
    pub tables: Tables,
    pub strikes: StrikePicker,
    pub atr_period: usize,
    pub atr_fallback_pct: f64,
    pub protection_multipliers: [f64; 5],
    pub drawdown_budget_k: f64,
    pub es_budget_share: f64,
    pub es_level: f64,
    pub entry_max_dte: i64,
    pub max_contracts_per_order: u32,
    /// covered_calls: band, recovery_band, roll_down_band, and the cover cap after a recovery week.
    pub call_band: (f64, f64),
    pub call_recovery_band: (f64, f64),
    pub call_roll_down_band: (f64, f64),
    pub covered_call_cap_share: f64,
    /// week_types.roll_max_debit_share.
    pub roll_max_debit_share: f64,
    /// protocol_levels: atr_period, atr_fallback_share, rev_roll_excursion, take_profit for gen, rev, com.
    pub level_atr_period: usize,
    pub level_atr_fallback_share: f64,
    pub rev_roll_excursion: f64,
    pub take_profit: [f64; 3],
    /// decision_confidence: hold_normal, hold_enhanced, close, roll.
    pub confidence: Confidences,
    /// drawdown_protection: the cut share per level, the light cut's vol floor and share, emergency's count.
    pub protection_cuts: [f64; 5],
    pub light_vol_above: f64,
    pub light_cut: f64,
    pub emergency_close_count: usize,
    /// Cash-settled indices (an ITM expiry pays intrinsic, no units change hands).
    pub cash_settled: Vec<String>,
}

/// The confidence of a decision that is not an entry (config `decision_confidence`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidences {
    pub hold_normal: f64,
    pub hold_enhanced: f64,
    pub close: f64,
    pub roll: f64,
}

impl Decider {
    /// Validates what the flow will read; an error names the setting.
    pub fn validate(&self) -> CoreResult<()> {
        for (a, kind) in self.accounts.iter().zip(ACCOUNT_KINDS) {
            if a.kind != kind {
                return Err(CoreError::invalid(
                    "accounts",
                    format!("expected {kind}, got '{}'", a.kind),
                ));
            }
            let field = |f: &str| format!("accounts.{kind}.{f}");
            check::finite(&field("buffer"), a.buffer)?;
            check::open_unit(&field("max_drawdown"), a.max_drawdown)?;
            check::finite(&field("target_share"), a.target_share)?;
            if !(a.max_symbol_weight > 0.0 && a.max_symbol_weight <= 0.95) {
                return Err(CoreError::invalid(
                    field("max_symbol_weight"),
                    format!("must be in (0, 0.95], got {}", a.max_symbol_weight),
                ));
            }
            for (rule, label) in a.entry.iter().zip(LABELS) {
                let f = format!("accounts.{kind}.entry.{label}");
                check::finite(&format!("{f}.m_label"), rule.m_label)?;
                if rule.entry_days.iter().any(|d| *d > 6) {
                    return Err(CoreError::invalid(
                        format!("{f}.entry_days"),
                        "days are 0 (Monday) .. 6",
                    ));
                }
                if let Some((lo, hi)) = rule.band {
                    check::finite(&format!("{f}.band"), lo)?;
                    check::finite(&format!("{f}.band"), hi)?;
                    if lo > hi {
                        return Err(CoreError::invalid(format!("{f}.band"), "low above high"));
                    }
                }
            }
        }
        if self.atr_period < 1 {
            return Err(CoreError::invalid("atr_regime.period", "must be >= 1"));
        }
        check::finite("atr_regime_fallback_pct", self.atr_fallback_pct)?;
        check::all_finite(
            "drawdown_protection.multipliers",
            &self.protection_multipliers,
        )?;
        check::positive("drawdown_budget.multiplier", self.drawdown_budget_k)?;
        check::finite("risk.es_budget_share", self.es_budget_share)?;
        check::open_unit("risk.es_confidence", self.es_level)?;
        if self.entry_max_dte < 1 {
            return Err(CoreError::invalid("expiry.entry_max_dte", "must be >= 1"));
        }
        for (name, (lo, hi)) in [
            ("covered_calls.band", self.call_band),
            ("covered_calls.recovery_band", self.call_recovery_band),
            ("covered_calls.roll_down_band", self.call_roll_down_band),
        ] {
            check::finite(name, lo)?;
            check::finite(name, hi)?;
        }
        for (name, x) in [
            ("sizing.covered_call_cap_share", self.covered_call_cap_share),
            ("week_types.roll_max_debit_share", self.roll_max_debit_share),
            (
                "protocol_levels.atr_fallback_share",
                self.level_atr_fallback_share,
            ),
            (
                "protocol_levels.rev_roll_excursion",
                self.rev_roll_excursion,
            ),
            (
                "drawdown_protection.light_vol_cut.annual_vol_above",
                self.light_vol_above,
            ),
            ("drawdown_protection.light_vol_cut.cut", self.light_cut),
            (
                "decision_confidence.hold_normal",
                self.confidence.hold_normal,
            ),
            (
                "decision_confidence.hold_enhanced",
                self.confidence.hold_enhanced,
            ),
            ("decision_confidence.close", self.confidence.close),
            ("decision_confidence.roll", self.confidence.roll),
        ] {
            check::finite(name, x)?;
        }
        check::all_finite("protocol_levels.take_profit", &self.take_profit)?;
        check::all_finite("drawdown_protection.cuts", &self.protection_cuts)?;
        if self.level_atr_period < 1 {
            return Err(CoreError::invalid(
                "protocol_levels.atr_period",
                "must be >= 1",
            ));
        }
        if self.max_contracts_per_order < 1 {
            return Err(CoreError::invalid(
                "sizing.max_contracts_per_order",
                "must be >= 1",
            ));
        }
        Ok(())
    }

    fn account(&self, kind: &str) -> CoreResult<&AccountRules> {
        self.accounts
            .iter()
            .find(|a| a.kind == kind)
            .ok_or_else(|| {
                CoreError::invalid(
                    "account.kind",
                    format!("must be one of gen, rev, com, got '{kind}'"),
                )
            })
    }
}

/// A position as the decision reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Holding {
    pub id: String,
    pub account_id: String,
    pub symbol: String,
    /// put, call or stock.
    pub kind: PositionKind,
    /// Signed: contracts for options (negative short), shares for stock.
    pub quantity: f64,
    pub strike: f64,
    /// Expiry (proleptic ordinal; None for stock) and the weekly expiry after it, where a roll goes.
    pub expiry: Option<i64>,
    pub roll_expiry: Option<i64>,
    /// Credit per share received at entry (options); cost per share (stock).
    pub premium: f64,
    pub cost_basis: f64,
    /// The delta band the position keeps for its rolls (for a put recorded without one: the band of its label on
    /// the day it was opened, found by the engine).
    pub band: Option<(f64, f64)>,
    /// The symbol's sector ("unknown" when none is known), its last close and its IV today.
    pub sector: String,
    pub last_close: f64,
    pub iv: f64,
    /// Index of the symbol in the day's scenario columns.
    pub column: usize,
    /// True when the position counts in the portfolio's book (its account's group not merged away): ES and
    /// sector exposure read these; free cash and the account's exposures read the account's own positions.
    pub in_book: bool,
}

fn years_to(expiry: Option<i64>, today: i64) -> f64 {
    match expiry {
        Some(e) => (e - today).max(0) as f64 / 365.0 + 1.0 / (365.0 * 24.0),
        None => 0.0,
    }
}

impl Holding {
    fn is_option(&self) -> bool {
        self.kind != PositionKind::Stock
    }

    /// Cash a short put ties up: strike x 100 x contracts.
    pub fn collateral(&self) -> f64 {
        if self.kind == PositionKind::Put && self.quantity < 0.0 {
            self.strike * MULTIPLIER * -self.quantity
        } else {
            0.0
        }
    }

    /// Put collateral, or stock at `spot`.
    pub fn exposure(&self, spot: f64) -> f64 {
        if self.kind == PositionKind::Stock {
            self.quantity * spot
        } else {
            self.collateral()
        }
    }

    fn option_kind(&self) -> OptionKind {
        if self.kind == PositionKind::Call {
            OptionKind::Call
        } else {
            OptionKind::Put
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            PositionKind::Call => "call",
            PositionKind::Put => "put",
            _ => "stock",
        }
    }

    /// Value per share at `spot` and `iv` (the option's mark; the spot for stock).
    fn mark(&self, spot: f64, iv: f64, today: i64, rate: f64) -> CoreResult<f64> {
        if !self.is_option() {
            return Ok(spot);
        }
        let t = years_to(self.expiry, today);
        crate::pricing::bs_price(
            self.option_kind(),
            spot,
            self.strike,
            t,
            iv.max(1e-4),
            rate,
            0.0,
        )
    }

    fn unrealised_loss(&self, spot: f64, iv: f64, today: i64, rate: f64) -> CoreResult<f64> {
        if self.is_option() {
            Ok((self.mark(spot, iv, today, rate)? - self.premium) * MULTIPLIER * -self.quantity)
        } else {
            Ok((self.cost_basis - spot) * self.quantity)
        }
    }

    fn held(&self, today: i64) -> Held {
        let option = self.is_option();
        Held {
            kind: self.kind,
            underlying: self.column,
            quantity: self.quantity,
            strike: if option { self.strike } else { 1.0 },
            t: if option {
                years_to(self.expiry, today)
            } else {
                1.0
            },
        }
    }
}

/// Trust gating for the decision's kind (PROTOCOL section 10).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrustGate {
    /// Scores for entry, exit, roll, risk_reduction and emergency.
    pub scores: [f64; 5],
    pub auto_threshold: f64,
    pub confidence_threshold: f64,
}

impl TrustGate {
    fn score(&self, kind: &str) -> f64 {
        TRUST_KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0.0, |i| self.scores[i])
    }

    fn requires_approval(&self, kind: &str, confidence: f64) -> bool {
        if kind == "emergency" {
            return true;
        }
        !(self.score(kind) >= self.auto_threshold && confidence >= self.confidence_threshold)
    }
}

/// One strike of a given option chain: bid/ask, IV, open interest and volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainQuote {
    pub strike: f64,
    pub bid: f64,
    pub ask: f64,
    pub iv: f64,
    pub open_interest: f64,
    pub volume: f64,
}

/// A protection or budget cut already done: its key (a position id, `shares:SYM` or `budget:...:DAY`) and level.
#[derive(Debug, Clone, PartialEq)]
pub struct CutDone {
    pub key: String,
    pub level: i64,
}

/// What one decision needs, all named and typed.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionInput {
    pub account_id: String,
    /// gen, rev or com.
    pub account_kind: String,
    /// ACTIVE, REDUCING or HALTED.
    pub account_state: String,
    pub balance: f64,
    /// Com-Acc's quarterly reinvestment cash.
    pub reinvest_cash: f64,
    /// The account's high-water mark (already raised to today's equity).
    pub peak: f64,
    pub equity: f64,
    pub portfolio_equity: f64,
    pub symbol: String,
    pub sector: String,
    /// green, red or chop, and its confidence.
    pub label: String,
    pub label_confidence: f64,
    /// The explanation so far (the label line, VIX and IV sources, a REDUCING fact).
    pub notes: Vec<String>,
    /// Proleptic Gregorian ordinal of today and its weekday (0 = Monday).
    pub today: i64,
    pub weekday: u8,
    /// The weekly expiry a new entry takes today (ordinal).
    pub entry_expiry: i64,
    /// New entries frozen until this day (ordinal), protocol level 2.
    pub frozen_until: Option<i64>,
    pub spot: f64,
    pub iv: f64,
    pub rate: f64,
    /// The symbol's bars up to today: days (ordinals), high, low, close.
    pub days: Vec<i64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    /// Drawdown protection's level (0..4) and the drawdown it read.
    pub protection_level: u8,
    pub drawdown: f64,
    pub vix: Option<f64>,
    pub vix_multiplier: f64,
    pub vix_state: String,
    pub system_state: String,
    pub orders_last_minute: u32,
    pub earnings_in_week: Option<bool>,
    /// The symbol's tail-dependent group (PROTOCOL section 6); None when it could not be measured (a decision
    /// that needs it then fails, naming `group_symbols`).
    pub group_symbols: Option<Vec<String>>,
    /// Every position of the account, and every other position of the portfolio's book.
    pub book: Vec<Holding>,
    /// Scenario column of the decision's symbol.
    pub column: usize,
    pub trust: TrustGate,
    /// Cuts already done on the account.
    pub cuts_done: Vec<CutDone>,
    /// A caller's answer to "is a roll available?" (None: the core looks at next week's chain).
    pub roll_available: Option<bool>,
    /// The symbol's option chain, when one was given (else strikes come from the synthetic chain).
    pub chain_puts: Vec<ChainQuote>,
    pub chain_calls: Vec<ChainQuote>,
}

impl DecisionInput {
    /// Numbers must be finite and the shape consistent; an error names the field.
    pub fn validate(&self) -> CoreResult<()> {
        for (name, x) in [
            ("balance", self.balance),
            ("reinvest_cash", self.reinvest_cash),
            ("peak", self.peak),
            ("equity", self.equity),
            ("portfolio_equity", self.portfolio_equity),
            ("label_confidence", self.label_confidence),
            ("spot", self.spot),
            ("iv", self.iv),
            ("rate", self.rate),
            ("drawdown", self.drawdown),
            ("vix_multiplier", self.vix_multiplier),
        ] {
            check::finite(name, x)?;
        }
        check::positive("spot", self.spot)?;
        check::positive("iv", self.iv)?;
        if let Some(v) = self.vix {
            check::finite("vix", v)?;
        }
        if !LABELS.contains(&self.label.as_str()) {
            return Err(CoreError::invalid(
                "label",
                format!("must be one of green, red, chop, got '{}'", self.label),
            ));
        }
        if self.weekday > 6 {
            return Err(CoreError::invalid("weekday", "must be 0 (Monday) .. 6"));
        }
        if self.protection_level > 4 {
            return Err(CoreError::invalid("protection_level", "must be 0..4"));
        }
        self.bars().validate()?;
        for s in self.trust.scores {
            check::finite("trust.scores", s)?;
        }
        for (name, quotes) in [
            ("chain_puts", &self.chain_puts),
            ("chain_calls", &self.chain_calls),
        ] {
            for (k, q) in quotes.iter().enumerate() {
                for (field, x) in [
                    ("strike", q.strike),
                    ("bid", q.bid),
                    ("ask", q.ask),
                    ("iv", q.iv),
                    ("open_interest", q.open_interest),
                    ("volume", q.volume),
                ] {
                    // The field's name is formatted only for the error.
                    if !x.is_finite() {
                        check::finite(&format!("{name}[{k}].{field}"), x)?;
                    }
                }
            }
        }
        validate_book(&self.book, 0)
    }

    /// The input's own bars.
    pub fn bars(&self) -> Bars<'_> {
        Bars {
            days: &self.days,
            high: &self.high,
            low: &self.low,
            close: &self.close,
        }
    }

    fn cut_level(&self, key: &str) -> Option<i64> {
        self.cuts_done
            .iter()
            .find(|c| c.key == key)
            .map(|c| c.level)
    }
}

/// Every number of every position finite; an error names the position by its index in the whole book, the first
/// of `holdings` being `first` (a book given in two parts is checked part by part).
pub(crate) fn validate_book(holdings: &[Holding], first: usize) -> CoreResult<()> {
    for (k, h) in holdings.iter().enumerate() {
        let i = first + k;
        // The field's name is formatted only for the error.
        let finite = |n: &str, x: f64| -> CoreResult<()> {
            if !x.is_finite() {
                check::finite(&format!("book[{i}].{n}"), x)?;
            }
            Ok(())
        };
        finite("quantity", h.quantity)?;
        finite("strike", h.strike)?;
        finite("premium", h.premium)?;
        finite("cost_basis", h.cost_basis)?;
        finite("last_close", h.last_close)?;
        finite("iv", h.iv)?;
        if let Some((lo, hi)) = h.band {
            finite("band", lo)?;
            finite("band", hi)?;
        }
    }
    Ok(())
}

/// The decision symbol's bars up to today (days as ordinals), borrowed: the input's own, or arrays its caller
/// holds for the call (the Python binding reads the engine's arrays in place instead of copying them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bars<'a> {
    pub days: &'a [i64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
}

impl Bars<'_> {
    /// Every column as long as `close`, and every price finite; an error names the column.
    pub fn validate(&self) -> CoreResult<()> {
        let n = self.close.len();
        for (name, len) in [
            ("days", self.days.len()),
            ("high", self.high.len()),
            ("low", self.low.len()),
        ] {
            if len != n {
                return Err(CoreError::invalid(
                    name,
                    format!("has {len} values, close has {n}"),
                ));
            }
        }
        for (name, xs) in [
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ] {
            if !all_finite(xs) {
                check::all_finite(name, xs)?;
            }
        }
        Ok(())
    }
}

/// True when every value is finite: `x - x` is 0 for a finite x and NaN otherwise, added into eight independent
/// lanes (no early exit, no reordering of any one lane's sums), a loop the compiler vectorises even on baseline
/// x86-64 (the bars are checked twice a decision, ~750 of each; `check::all_finite` then names the first value that
/// is not finite).
#[allow(clippy::eq_op)] // `x - x` is the point: 0 exactly when x is finite
fn all_finite(xs: &[f64]) -> bool {
    let mut chunks = xs.chunks_exact(8);
    let mut lanes = [0.0f64; 8];
    for chunk in &mut chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x - x;
        }
    }
    lanes.iter().all(|lane| *lane == 0.0) && chunks.remainder().iter().all(|x| x.is_finite())
}

/// An order the decision proposes.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// put, call or stock.
    pub kind: &'static str,
    /// sell_to_open, buy_to_close, roll, buy_to_open or sell_to_close.
    pub side: &'static str,
    pub strike: f64,
    /// Expiry ordinal (None for stock).
    pub expiry: Option<i64>,
    pub contracts: u32,
    pub limit_price: f64,
    pub delta: f64,
    pub premium: f64,
    pub band: Option<(f64, f64)>,
}

/// The decision the core returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: &'static str,
    pub order: Option<Order>,
    /// `order` sliced into children of at most max_contracts_per_order, plus any further leg.
    pub orders: Vec<Order>,
    pub es_before: f64,
    pub es_after: f64,
    pub compliance: Vec<RuleResult>,
    pub outcome: &'static str,
    pub requires_approval: bool,
    pub confidence: f64,
    pub trust_kind: &'static str,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    pub week_type: Option<&'static str>,
    pub protocol_level: u8,
    pub position_id: Option<String>,
    pub account_state: String,
    /// Effects once executed or approved: the order enters the rate window, a level-2 freeze, a cut done, the
    /// account going REDUCING.
    pub counts_order: bool,
    pub freeze_until: Option<i64>,
    pub cut: Option<CutDone>,
    pub reducing: bool,
    /// True when a rule context was built during the flow (the engine prunes its rate window then).
    pub rules_checked: bool,
    /// Decision records the flow built (a rejected roll builds one before its close): the engine's running ids.
    pub records: u32,
}

/// A week's classification as the flow keeps it.
#[derive(Debug, Clone, Copy)]
struct Week {
    code: &'static str,
    name: &'static str,
    action: &'static str,
    confidence: f64,
}

/// What `finish` is given beyond the action and order.
struct Made {
    confidence: f64,
    ctx: Option<OrderContext>,
    es: Option<(f64, f64)>,
    position_id: Option<String>,
    trust_kind: Option<&'static str>,
    legs: Vec<Order>,
}

impl Made {
    fn plain(confidence: f64) -> Self {
        Made {
            confidence,
            ctx: None,
            es: None,
            position_id: None,
            trust_kind: None,
            legs: Vec::new(),
        }
    }
}

/// One decision in progress.
struct Deciding<'a> {
    d: &'a Decider,
    i: &'a DecisionInput,
    bars: Bars<'a>,
    /// Every position of the account, and every other position of the portfolio's book (the input's own, or a
    /// book its caller holds for the call).
    book: &'a [Holding],
    spec: &'a AccountRules,
    rule: &'a EntryRule,
    scenarios: &'a dyn ScenarioSource,
    rules: &'a RuleSet,
    notes: Vec<String>,
    warnings: Vec<String>,
    size_cap: Option<f64>,
    week: Option<Week>,
    level: u8,
    freeze: Option<i64>,
    cut: Option<CutDone>,
    reducing: bool,
    rules_checked: bool,
    records: u32,
    /// The level's and the regime's ATRs (`atr_last_pair`), made the first time either is read.
    atrs: std::cell::Cell<Option<Option<(f64, f64)>>>,
}

/// Where the day's scenarios come from: built only when a decision values an order (most decisions hold or make no
/// trade, and never need them).
pub trait ScenarioSource {
    /// The scenarios, or an error naming `scenarios` when the market cannot give them.
    fn scenarios(&self) -> CoreResult<&Scenarios>;

    /// The tail-dependent group of the input's symbol, measured on demand when the input carries none (only a
    /// decision that builds a rule context reads it). `Ok(None)`: this source does not measure it; an error names
    /// `group_symbols`.
    fn group_symbols(&self) -> CoreResult<Option<&[String]>> {
        Ok(None)
    }
}

impl ScenarioSource for Option<&Scenarios> {
    fn scenarios(&self) -> CoreResult<&Scenarios> {
        self.ok_or_else(|| {
            CoreError::invalid("scenarios", "no scenarios could be built from the market")
        })
    }
}

fn check_columns(input: &DecisionInput, book: &[Holding], scenarios: &Scenarios) -> CoreResult<()> {
    if input.column >= scenarios.cols() {
        return Err(CoreError::invalid(
            "column",
            format!("index {} of {} symbols", input.column, scenarios.cols()),
        ));
    }
    for (i, h) in book.iter().enumerate() {
        if h.in_book && h.column >= scenarios.cols() {
            return Err(CoreError::invalid(
                format!("book[{i}].column"),
                format!("index {} of {} symbols", h.column, scenarios.cols()),
            ));
        }
    }
    Ok(())
}

/// The decision for the input's account and symbol (PROTOCOL section 10), over the day's scenarios (asked for when
/// an order is valued) and the rule set in force.
pub fn decide(
    d: &Decider,
    input: &DecisionInput,
    scenarios: &dyn ScenarioSource,
    rules: &RuleSet,
) -> CoreResult<Decision> {
    input.validate()?;
    decide_validated(d, input, scenarios, rules)
}

/// `decide` for an input already validated (the Python binding's `DecisionInput` is validated when it is built and
/// cannot change afterwards), so it is not checked twice.
pub(crate) fn decide_validated(
    d: &Decider,
    input: &DecisionInput,
    scenarios: &dyn ScenarioSource,
    rules: &RuleSet,
) -> CoreResult<Decision> {
    decide_over(d, input, input.bars(), &input.book, scenarios, rules)
}

/// `decide_validated` over `bars` and `book` (validated by the caller) in place of the input's own (then left
/// empty): the Python binding reads the bars' arrays and a `HeldBook`'s positions where they are, without copies.
pub(crate) fn decide_over(
    d: &Decider,
    input: &DecisionInput,
    bars: Bars<'_>,
    book: &[Holding],
    scenarios: &dyn ScenarioSource,
    rules: &RuleSet,
) -> CoreResult<Decision> {
    let spec = d.account(&input.account_kind)?;
    let li = LABELS
        .iter()
        .position(|l| *l == input.label)
        .unwrap_or_default();
    let mut run = Deciding {
        d,
        i: input,
        bars,
        book,
        spec,
        rule: &spec.entry[li],
        scenarios,
        rules,
        notes: input.notes.clone(),
        warnings: Vec::new(),
        size_cap: None,
        week: None,
        level: 0,
        freeze: None,
        cut: None,
        reducing: false,
        rules_checked: false,
        records: 0,
        atrs: std::cell::Cell::new(None),
    };
    let mut decision = run.run()?;
    decision.rules_checked = run.rules_checked;
    decision.records = run.records;
    Ok(decision)
}

fn at_least(x: f64, bound: f64) -> bool {
    x >= bound - 1e-9 * bound.abs().max(x.abs()).max(1e-300)
}

fn at_most(x: f64, bound: f64) -> bool {
    x <= bound + 1e-9 * bound.abs().max(x.abs()).max(1e-300)
}

/// ceil(x - 1e-9) as the engine counts contracts to cut.
fn ceil_count(x: f64) -> i64 {
    (x - 1e-9).ceil() as i64
}

impl<'a> Deciding<'a> {
    /// The deciding account's own positions, in book order.
    fn own(&self) -> impl Iterator<Item = &'a Holding> + 'a {
        let account: &'a str = &self.i.account_id;
        self.book.iter().filter(move |h| h.account_id == account)
    }

    fn scen(&self) -> CoreResult<&Scenarios> {
        let s = self.scenarios.scenarios()?;
        check_columns(self.i, self.book, s)?;
        Ok(s)
    }

    // --- the flow ------------------------------------------------------------------------------------------
    fn run(&mut self) -> CoreResult<Decision> {
        let i = self.i;
        let positions: Vec<&Holding> = self.own().filter(|h| h.symbol == i.symbol).collect();
        let options: Vec<&Holding> = positions
            .iter()
            .copied()
            .filter(|h| h.is_option() && h.quantity < 0.0)
            .collect();
        let shares = one_holding(
            positions
                .iter()
                .copied()
                .filter(|h| h.kind == PositionKind::Stock && h.quantity > 0.0)
                .collect(),
        );
        let mut holding: Option<Decision> = None;
        for opt in &options {
            let stock = if opt.kind == PositionKind::Call {
                shares.as_ref()
            } else {
                None
            };
            let decision = self.manage_option(opt, stock)?;
            if decision.action != "HOLD" {
                return Ok(decision);
            }
            if holding.is_none() {
                holding = Some(decision);
            }
        }
        let covered = options.iter().any(|o| o.kind == PositionKind::Call);
        if let Some(h) = holding {
            if shares.is_none() || covered {
                return Ok(h);
            }
        }
        if let Some(stock) = &shares {
            let has_put = options.iter().any(|o| o.kind == PositionKind::Put);
            return self.manage_stock(stock, has_put);
        }
        if i.account_kind == "com" {
            return self.buy_round_lots(None);
        }
        self.entry()
    }

    fn conf(&self) -> Confidences {
        self.d.confidence
    }

    // --- drawdown protection on existing positions (section 6) ---------------------------------------------
    fn drawdown_cut(&mut self, opt: &Holding) -> CoreResult<Option<Decision>> {
        let level = self.i.protection_level;
        if level == 0 || self.i.cut_level(&opt.id).unwrap_or(0) >= i64::from(level) {
            return Ok(None);
        }
        const NAMES: [&str; 5] = ["none", "light", "moderate", "aggressive", "emergency"];
        let mut share = self.d.protection_cuts[usize::from(level)];
        let mut why = format!(
            "drawdown {}: protection {}",
            pct(self.i.drawdown, 2),
            NAMES[usize::from(level)]
        );
        if level == 1 {
            let Some((cut, note)) = self.light_cut()? else {
                return Ok(None);
            };
            share = cut;
            why.push_str(&note);
        } else if level == 4 {
            let i = self.i;
            let mut risk: Vec<(&str, f64)> = Vec::new();
            for p in self.own().filter(|p| p.is_option() && p.quantity < 0.0) {
                let value =
                    p.quantity * MULTIPLIER * p.mark(p.last_close, p.iv, i.today, i.rate)?;
                let r = p.iv * value.abs();
                // One entry per id, as a dict keyed by id keeps the last value at the first place.
                match risk.iter_mut().find(|(id, _)| *id == p.id) {
                    Some(slot) => slot.1 = r,
                    None => risk.push((&p.id, r)),
                }
            }
            risk.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
            risk.truncate(self.d.emergency_close_count);
            if !risk.iter().any(|(id, _)| *id == opt.id) {
                return Ok(None);
            }
            share = 1.0;
            why.push_str(&format!(
                ": {} is among the {} riskiest positions (vol x market value)",
                opt.id,
                risk.len()
            ));
        }
        let held = -opt.quantity as i64;
        let contracts = held.min(ceil_count(-opt.quantity * share));
        if contracts <= 0 {
            return Ok(None);
        }
        self.cut = Some(CutDone {
            key: opt.id.clone(),
            level: i64::from(level),
        });
        self.notes.push(format!(
            "{why}: cut {} of {held} contracts = {contracts}",
            pct(share, 0)
        ));
        let kind = if level == 4 {
            "emergency"
        } else {
            "risk_reduction"
        };
        self.buy_back(opt, contracts as u32, "REDUCE", kind, None)
            .map(Some)
    }

    /// Light protection cuts only symbols whose 20-day annualised vol is above the floor: (share, why).
    fn light_cut(&self) -> CoreResult<Option<(f64, String)>> {
        let close = self.bars.close;
        let hv = if close.len() > 21 {
            *crate::indicators::hist_vol(&close[close.len() - 21..], 20, 252.0)?
                .last()
                .unwrap_or(&f64::NAN)
        } else {
            f64::NAN
        };
        let above = self.d.light_vol_above;
        if !(hv.is_finite() && hv > above) {
            return Ok(None);
        }
        Ok(Some((
            self.d.light_cut,
            format!(
                ", {} annualised vol {} > {}",
                self.i.symbol,
                pct(hv, 0),
                pct(above, 0)
            ),
        )))
    }

    fn budget_cut(&mut self, opt: &Holding) -> CoreResult<Option<Decision>> {
        let key = format!("budget:{}:{}", opt.id, iso_date(self.i.today));
        let Some((share, why)) = self.budget_excess(&key)? else {
            return Ok(None);
        };
        let held = -opt.quantity as i64;
        let contracts = held.min(ceil_count(-opt.quantity * share));
        if contracts <= 0 {
            return Ok(None);
        }
        self.cut = Some(CutDone { key, level: 1 });
        self.notes.push(format!(
            "{why}: reduce {} = {contracts} contracts",
            pct(share, 0)
        ));
        self.buy_back(opt, contracts as u32, "REDUCE", "risk_reduction", None)
            .map(Some)
    }

    fn committed(&self) -> f64 {
        self.own()
            .map(|p| {
                p.collateral()
                    + if p.kind == PositionKind::Stock {
                        p.exposure(p.last_close).max(0.0)
                    } else {
                        0.0
                    }
            })
            .fold(0.0, |a, b| a + b)
    }

    /// The drawdown budget's excess as the share of committed exposure to shed, with the reason.
    fn budget_excess(&self, key: &str) -> CoreResult<Option<(f64, String)>> {
        let i = self.i;
        if i.equity <= 0.0 {
            return Ok(None);
        }
        let committed = self.committed();
        let allowed = self.allowed()?;
        let cap = allowed * self.spec.target_share * i.equity;
        if allowed >= 1.0
            || committed <= 0.0
            || at_most(committed, cap)
            || i.cut_level(key).is_some()
        {
            return Ok(None);
        }
        let why = format!(
            "drawdown budget: exposure {} over the allowed {} ({} of the {} target)",
            fixed(committed, 2),
            fixed(cap, 2),
            pct(allowed, 0),
            pct(self.spec.target_share, 0)
        );
        Ok(Some(((committed - cap) / committed, why)))
    }

    // --- open short option ---------------------------------------------------------------------------------
    fn atr(&self, period: usize) -> CoreResult<Option<f64>> {
        let b = self.bars;
        if b.close.len() <= period {
            return Ok(None);
        }
        // The flow reads at most the level's and the regime's ATRs: both are made in one pass the first time
        // either is asked for, and kept for the decision.
        let (level, regime) = (self.d.level_atr_period, self.d.atr_period);
        let pair = match self.atrs.get() {
            Some(pair) => pair,
            None => {
                let pair = crate::indicators::atr_last_pair(b.high, b.low, b.close, level, regime);
                self.atrs.set(Some(pair));
                pair
            }
        };
        let v = match pair {
            Some((v, _)) if period == level => v,
            Some((_, v)) if period == regime => v,
            _ => crate::indicators::atr_last(b.high, b.low, b.close, period)?,
        };
        Ok((v.is_finite() && v > 0.0).then_some(v))
    }

    /// Reads the protocol level of a position (section 5); returns the excursion.
    fn read_level(&mut self, reference: f64, loss: f64) -> CoreResult<f64> {
        let i = self.i;
        let atr5 = self.atr(self.d.level_atr_period)?;
        let r = self
            .d
            .tables
            .protocol_level(reference, i.spot, atr5, loss, i.equity.max(1e-9))?;
        self.level = r.level;
        let atr_text = match atr5 {
            Some(a) => fixed(a, 2).to_string(),
            None => format!(
                "fallback {} of spot",
                pct(self.d.level_atr_fallback_share, 0)
            ),
        };
        self.notes.push(format!(
            "level={} excursion={} ATR(5)={atr_text} loss={} ({} of equity)",
            r.level,
            fixed(r.excursion, 2),
            fixed(loss, 2),
            pct(r.loss_share, 2)
        ));
        Ok(r.excursion)
    }

    fn can_roll(&self, opt: &Holding) -> CoreResult<bool> {
        match self.i.roll_available {
            Some(given) => Ok(given),
            None => self.roll_available(opt),
        }
    }

    fn manage_option(&mut self, opt: &Holding, stock: Option<&Holding>) -> CoreResult<Decision> {
        let i = self.i;
        let reference = if opt.kind == PositionKind::Put {
            opt.strike
        } else {
            stock.map_or(opt.strike, |s| s.cost_basis)
        };
        let mut loss = opt.unrealised_loss(i.spot, i.iv, i.today, i.rate)?;
        if let Some(s) = stock {
            loss += s.unrealised_loss(i.spot, i.iv, i.today, i.rate)?;
        }
        let x = self.read_level(reference, loss)?;
        if self.level >= 3 {
            return self.stop_loss(opt, stock, "level 3 (preservation): close at a stop-loss");
        }
        let position = if opt.kind == PositionKind::Put {
            WeekPosition::ShortPut
        } else {
            WeekPosition::ShortCall
        };
        if let Some(expiry) = opt.expiry.filter(|e| i.today >= *e) {
            let _ = expiry;
            let can_roll = self.can_roll(opt)?;
            let move_pct = self.week_move(false);
            let c = self.d.tables.classify_week(position, move_pct, can_roll)?;
            let week = Week {
                code: c.week_type.code(),
                name: c.week_type.name(),
                action: c.week_type.action(),
                confidence: c.confidence,
            };
            self.week = Some(week);
            self.notes.push(format!(
                "week_type={} ({}) move={}% roll_available={}",
                week.code,
                week.name,
                fixed(move_pct, 2),
                if can_roll { "True" } else { "False" }
            ));
            return self.at_expiry(opt, stock, week);
        }
        if opt.kind == PositionKind::Put {
            if let Some(cut) = self.drawdown_cut(opt)? {
                return Ok(cut);
            }
            if let Some(cut) = self.budget_cut(opt)? {
                return Ok(cut);
            }
        }
        let conf = self.conf();
        if self.level == 2 {
            self.freeze = opt.expiry;
            self.notes
                .push("level 2 (recovery): new entries frozen on this account".into());
            if self.can_roll(opt)? {
                return self.roll(opt, None);
            }
            self.notes
                .push("no roll inside the band for a credit or an acceptable debit: close".into());
            return self.close(opt, "risk_reduction", None);
        }
        if self.level == 1 {
            let rolls_now = i.account_kind == "gen"
                || (i.account_kind == "rev" && at_least(x, self.d.rev_roll_excursion));
            if rolls_now && self.can_roll(opt)? {
                return self.roll(opt, None);
            }
            self.notes
                .push("level 1 (enhanced): roll prepared, holding".into());
            return self.finish("HOLD", None, Made::plain(conf.hold_enhanced));
        }
        let decayed = 1.0 - opt.mark(i.spot, i.iv, i.today, i.rate)? / opt.premium.max(1e-12);
        let ki = ACCOUNT_KINDS
            .iter()
            .position(|k| *k == i.account_kind)
            .unwrap_or_default();
        let take = self.d.take_profit[ki];
        if at_least(decayed, take) {
            self.notes.push(format!(
                "premium decayed {} >= take-profit {}: close",
                pct(decayed, 0),
                pct(take, 0)
            ));
            return self.close(opt, "exit", None);
        }
        self.notes.push(format!(
            "level 0 (normal): premium decayed {} < {}: hold",
            pct(decayed, 0),
            pct(take, 0)
        ));
        self.finish("HOLD", None, Made::plain(conf.hold_normal))
    }

    fn stop_loss(
        &mut self,
        opt: &Holding,
        stock: Option<&Holding>,
        why: &str,
    ) -> CoreResult<Decision> {
        self.reducing = true;
        let shares = stock.map_or(String::new(), |s| {
            format!(" and sell the {} assigned shares", general(s.quantity))
        });
        self.notes
            .push(format!("{why}{shares}; account goes REDUCING until reset"));
        self.close(opt, "emergency", stock)
    }

    fn manage_stock(&mut self, stock: &Holding, has_put: bool) -> CoreResult<Decision> {
        let i = self.i;
        let loss = stock.unrealised_loss(i.spot, i.iv, i.today, i.rate)?;
        self.read_level(stock.cost_basis, loss)?;
        if self.level >= 3 {
            self.reducing = true;
            self.notes.push(format!(
                "level 3 (preservation): sell the {} shares at a stop-loss; account goes REDUCING until reset",
                general(stock.quantity)
            ));
            return self.sell_shares(stock, "emergency");
        }
        if let Some(cut) = self.share_cut(stock)? {
            return Ok(cut);
        }
        if i.account_kind == "com"
            && i.account_state == "ACTIVE"
            && self.rule.entry_days.contains(&i.weekday)
        {
            if !has_put && i.reinvest_cash > 0.0 {
                if let Some(put) = self.reinvestment_put()? {
                    return Ok(put);
                }
            }
            let (lots, _) = self.round_lots_to_buy(Some(stock))?;
            if lots > 0 {
                return self.buy_round_lots(Some(stock));
            }
        }
        self.covered_call(stock)
    }

    fn reinvestment_put(&mut self) -> CoreResult<Option<Decision>> {
        let i = self.i;
        let Some(band) = self.rule.band else {
            return Ok(None);
        };
        let cash = i.reinvest_cash.min(self.free_cash());
        if cash < i.spot * MULTIPLIER * 0.5 {
            return Ok(None);
        }
        self.notes.push(format!(
            "reinvestment cash {} (free {}) for puts",
            fixed(i.reinvest_cash, 2),
            fixed(cash, 2)
        ));
        let decision = self.open("put", band, self.rule.m_label, 0.0, 1.0, Some(cash))?;
        Ok((decision.action == "OPEN_PUT").then_some(decision))
    }

    fn share_cut(&mut self, stock: &Holding) -> CoreResult<Option<Decision>> {
        let i = self.i;
        let level = i.protection_level;
        let lots_held = (stock.quantity / MULTIPLIER).floor() as i64;
        let mut share = 0.0;
        let key = format!("shares:{}", i.symbol);
        let mut why = String::new();
        let mut cut = None;
        if level > 0 && i.cut_level(&key).unwrap_or(0) < i64::from(level) {
            share = self.d.protection_cuts[usize::from(level)];
            why = format!("drawdown {}: protection level {level}", pct(i.drawdown, 2));
            if level == 1 {
                share = self.light_cut()?.map_or(0.0, |l| l.0);
            }
            cut = Some(CutDone {
                key: key.clone(),
                level: i64::from(level),
            });
        }
        if share <= 0.0 {
            let day_key = format!("budget:{key}:{}", iso_date(i.today));
            let Some((excess, reason)) = self.budget_excess(&day_key)? else {
                return Ok(None);
            };
            share = excess;
            why = reason;
            cut = Some(CutDone {
                key: day_key,
                level: 1,
            });
        }
        let lots = lots_held.min(ceil_count(lots_held as f64 * share));
        if lots <= 0 {
            return Ok(None);
        }
        self.cut = cut;
        self.notes.push(format!(
            "{why}: sell {} of {lots_held} round lots = {lots} lots",
            pct(share, 0)
        ));
        let mut order = self.share_sale(stock);
        order.contracts = (lots * 100) as u32;
        order.premium = round(order.limit_price * f64::from(order.contracts), 2);
        let ctx = self.context("reduce", &order, None, None, true, None)?;
        let made = Made {
            ctx: Some(ctx),
            position_id: Some(stock.id.clone()),
            trust_kind: Some("risk_reduction"),
            ..Made::plain(self.conf().close)
        };
        self.finish("REDUCE", Some(order), made).map(Some)
    }

    /// The week's move in percent against the previous Friday's close; with `previous`, the last completed week's.
    fn week_move(&self, previous: bool) -> f64 {
        let i = self.i;
        let days = self.bars.days;
        let close = self.bars.close;
        let mut week_start = i.today - i64::from(i.weekday);
        let mut end = days.len() as i64 - 1;
        if previous {
            while end >= 0 && days[end as usize] >= week_start {
                end -= 1;
            }
            week_start -= 7;
        }
        let mut reference = None;
        let mut k = end;
        while k >= 0 {
            if days[k as usize] < week_start {
                reference = Some(k as usize);
                break;
            }
            k -= 1;
        }
        match reference {
            Some(r) if end >= 0 => {
                let base = close[r];
                (close[end as usize] - base) / base * 100.0
            }
            _ => 0.0,
        }
    }

    fn at_expiry(
        &mut self,
        opt: &Holding,
        stock: Option<&Holding>,
        week: Week,
    ) -> CoreResult<Decision> {
        let i = self.i;
        let itm = (opt.kind == PositionKind::Put && i.spot < opt.strike)
            || (opt.kind == PositionKind::Call && i.spot > opt.strike);
        match week.code {
            "P-DD" => return self.stop_loss(opt, stock, "deep drawdown: protocol level 3, close"),
            "C-RO" => {
                self.notes
                    .push("call roll-over: roll the call down to the current price".into());
                return self.roll(opt, Some(self.d.call_roll_down_band));
            }
            "P-RO" | "C-REC" if itm => return self.roll(opt, None),
            _ => {}
        }
        let made = Made {
            position_id: Some(opt.id.clone()),
            ..Made::plain(week.confidence)
        };
        if itm {
            if self.d.cash_settled.contains(&i.symbol) {
                let intrinsic = (i.spot - opt.strike).abs();
                self.notes.push(format!(
                    "in the money at expiry (spot {} vs strike {}): cash-settled, pays intrinsic {} x 100 x {} = {}; \
                     no units change hands",
                    fixed(i.spot, 2),
                    fixed(opt.strike, 2),
                    fixed(intrinsic, 2),
                    -opt.quantity as i64,
                    fixed(intrinsic * MULTIPLIER * -opt.quantity, 2)
                ));
            } else {
                self.notes.push(format!(
                    "in the money at expiry (spot {} vs strike {}): {}",
                    fixed(i.spot, 2),
                    fixed(opt.strike, 2),
                    week.action
                ));
            }
            return self.finish("ACCEPT_ASSIGNMENT", None, made);
        }
        self.notes
            .push(format!("out of the money at expiry: {}", week.action));
        self.finish("HOLD", None, made)
    }

    /// A roll is available when next week's expiry offers a strike inside the band for a net credit or a debit of
    /// at most the configured share of the original credit.
    fn roll_available(&self, opt: &Holding) -> CoreResult<bool> {
        let i = self.i;
        let (Some(band), Some(expiry)) = (self.position_band(opt), opt.roll_expiry) else {
            return Ok(false);
        };
        if opt.expiry.is_none() {
            return Ok(false);
        }
        let t = (expiry - i.today).max(1) as f64 / 365.0;
        let Some(pick) = self.pick_strike(opt.option_kind(), t, band, (band.0 + band.1) / 2.0)?
        else {
            return Ok(false);
        };
        let new_premium =
            crate::pricing::bs_price(opt.option_kind(), i.spot, pick.strike, t, i.iv, i.rate, 0.0)?;
        let close_cost = opt.mark(i.spot, i.iv, i.today, i.rate)?;
        let debit = close_cost - new_premium;
        let limit = self.d.roll_max_debit_share * opt.premium;
        Ok(at_most(debit, limit))
    }

    // --- orders --------------------------------------------------------------------------------------------
    fn call_band_now(&self) -> (f64, f64) {
        if self.week.is_some_and(|w| w.code == "C-REC") {
            self.d.call_recovery_band
        } else {
            self.d.call_band
        }
    }

    fn band_of(&self, kind: &str) -> Option<(f64, f64)> {
        if kind == "call" {
            Some(self.call_band_now())
        } else {
            self.rule.band
        }
    }

    fn position_band(&self, opt: &Holding) -> Option<(f64, f64)> {
        if opt.band.is_some() {
            return opt.band;
        }
        if opt.kind == PositionKind::Call {
            return Some(self.call_band_now());
        }
        None
    }

    fn pick_strike(
        &self,
        kind: OptionKind,
        t: f64,
        band: (f64, f64),
        target: f64,
    ) -> CoreResult<Option<crate::protocol::decide::strike::Pick>> {
        let i = self.i;
        let quotes = self.quotes(kind);
        if quotes.is_empty() {
            return self
                .d
                .strikes
                .pick(kind, i.spot, t, i.iv, i.rate, band.0, band.1, target);
        }
        // The given chain: each strike's delta at its own IV, the strike nearest the target inside the band, and
        // its quoted mid.
        let n = quotes.len();
        let strikes: Vec<f64> = quotes.iter().map(|q| q.strike).collect();
        let ivs: Vec<f64> = quotes.iter().map(|q| q.iv).collect();
        let greeks = crate::pricing::bs_greeks_batch(
            kind,
            &vec![i.spot; n],
            &strikes,
            &vec![t; n],
            &ivs,
            &vec![i.rate; n],
            &vec![0.0; n],
        )?;
        let deltas: Vec<f64> = greeks.delta.iter().map(|d| d.abs() * 100.0).collect();
        let Some(choice) = crate::protocol::strike::select_strike(
            kind, &strikes, &deltas, band.0, band.1, target,
        )?
        else {
            return Ok(None);
        };
        let q = quotes.get(choice.index).ok_or_else(|| {
            CoreError::invalid("chain", format!("no quote at index {}", choice.index))
        })?;
        Ok(Some(crate::protocol::decide::strike::Pick {
            strike: choice.strike,
            abs_delta: choice.abs_delta,
            mid: (q.bid + q.ask) / 2.0,
        }))
    }

    fn quotes(&self, kind: OptionKind) -> &[ChainQuote] {
        match kind {
            OptionKind::Call => &self.i.chain_calls,
            OptionKind::Put => &self.i.chain_puts,
        }
    }

    fn entry(&mut self) -> CoreResult<Decision> {
        let (i, rule) = (self.i, self.rule);
        let label = title(&i.label);
        let conf = i.label_confidence;
        let Some(band) = rule.band.filter(|_| !rule.entry_days.is_empty()) else {
            self.notes.push(format!(
                "{} makes no new entries in {label}",
                self.spec.name
            ));
            self.affordability(None);
            return self.finish("NO_TRADE", None, Made::plain(conf));
        };
        if !rule.entry_days.contains(&i.weekday) {
            const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let days: Vec<&str> = rule
                .entry_days
                .iter()
                .map(|d| DAYS[usize::from(*d).min(6)])
                .collect();
            self.notes.push(format!(
                "not an entry day for {} in {label} (entry days {})",
                self.spec.name,
                days.join(",")
            ));
            self.affordability(None);
            return self.finish("NO_TRADE", None, Made::plain(conf));
        }
        if let Some(frozen) = i.frozen_until.filter(|f| i.today <= *f) {
            self.notes.push(format!(
                "new entries frozen until {} (protocol level 2)",
                iso_date(frozen)
            ));
            return self.finish("NO_TRADE", None, Made::plain(conf));
        }
        self.open("put", band, rule.m_label, 0.0, 1.0, None)
    }

    /// (t, cap): the per-symbol target share D / n and the concentration limit that caps it.
    fn symbol_share(&self) -> (f64, f64) {
        let n = self.spec.allowed_symbols.len().max(1) as f64;
        (self.spec.target_share / n, self.spec.max_symbol_weight)
    }

    fn affordability(&mut self, strike: Option<f64>) -> bool {
        let i = self.i;
        let need = strike.unwrap_or(i.spot) * MULTIPLIER;
        let (share, cap) = self.symbol_share();
        let per_symbol = share.min(cap) * i.equity;
        let deployable = (i.balance - self.spec.buffer * i.equity).max(0.0);
        if need <= per_symbol.min(deployable) * (1.0 + 1e-9) {
            return true;
        }
        let instrument = if i.account_kind != "com" {
            "put"
        } else {
            "round lot"
        };
        self.warnings.push(format!(
            "{}: one {} {instrument} needs ${} of collateral; deployable ${} (per-symbol target ${})",
            i.account_id,
            i.symbol,
            thousands(need),
            thousands(deployable),
            thousands(per_symbol)
        ));
        false
    }

    fn round_lots_to_buy(&mut self, held: Option<&Holding>) -> CoreResult<(i64, String)> {
        let i = self.i;
        let (share, cap) = self.symbol_share();
        let allowed = self.allowed()?;
        let prot = self.d.protection_multipliers[usize::from(i.protection_level)];
        let m_vix = if i.vix_state == "ACTIVE" {
            i.vix_multiplier
        } else {
            1.0
        };
        let target = share.min(cap) * i.equity * allowed * prot * m_vix;
        self.size_cap = Some(target);
        let value = held.map_or(0.0, |h| h.quantity * i.spot);
        let cash = self.free_cash();
        let budget = (target - value).min(cash).max(0.0);
        let lots = if i.spot > 0.0 {
            floor_exact(budget / (i.spot * MULTIPLIER)) as i64
        } else {
            0
        };
        let note = format!(
            "round lots of {} up to the per-symbol target min({}, cap {}) x {} x allowed {} x drawdown {} x VIX {} = \
             {}, held {}, free cash {}: floor({} / ({} x 100)) = {lots} lots",
            i.symbol,
            pct(share, 1),
            pct(cap, 0),
            fixed(i.equity, 2),
            pct(allowed, 0),
            general(prot),
            general(m_vix),
            fixed(target, 2),
            fixed(value, 2),
            fixed(cash, 2),
            fixed(budget, 2),
            general(i.spot)
        );
        Ok((lots, note))
    }

    fn buy_round_lots(&mut self, held: Option<&Holding>) -> CoreResult<Decision> {
        let i = self.i;
        let conf = i.label_confidence;
        if !self.rule.entry_days.contains(&i.weekday) {
            self.notes.push(format!(
                "{} buys round lots on its entry days only",
                self.spec.name
            ));
            return self.finish("NO_TRADE", None, Made::plain(conf));
        }
        let (lots, note) = self.round_lots_to_buy(held)?;
        self.notes.push(format!("{}: {note}", self.spec.name));
        if lots <= 0 {
            if held.is_none() {
                self.affordability(None);
            }
            return self.finish("NO_TRADE", None, Made::plain(conf));
        }
        let shares = (lots * 100) as u32;
        let order = Order {
            kind: "stock",
            side: "buy_to_open",
            strike: 0.0,
            expiry: None,
            contracts: shares,
            limit_price: round(i.spot, 2),
            delta: 100.0,
            premium: -round(i.spot * f64::from(shares), 2),
            band: None,
        };
        let ctx = self.context("entry", &order, None, None, false, None)?;
        let made = Made {
            ctx: Some(ctx),
            ..Made::plain(conf)
        };
        self.finish("BUY_SHARES", Some(order), made)
    }

    fn covered_call(&mut self, stock: &Holding) -> CoreResult<Decision> {
        let mut cover = 1.0;
        let half = self.d.covered_call_cap_share;
        let move_pct = self.week_move(true);
        let c = self
            .d
            .tables
            .classify_week(WeekPosition::LongStock, move_pct, true)?;
        if c.week_type.code() == "C-REC" {
            self.week = Some(Week {
                code: c.week_type.code(),
                name: c.week_type.name(),
                action: c.week_type.action(),
                confidence: c.confidence,
            });
            cover = half;
            self.notes.push(format!(
                "last week C-REC (move {}%): cover at most {}, 20-30 delta",
                fixed(move_pct, 2),
                pct(cover, 0)
            ));
        }
        if self.i.protection_level >= 2 {
            cover = if half < cover { half } else { cover };
            self.notes.push(format!(
                "drawdown protection level {}: cover at most {}",
                self.i.protection_level,
                pct(cover, 0)
            ));
        }
        let band = self.call_band_now();
        self.open("call", band, 0.0, stock.quantity, cover, None)
    }

    fn regime(&mut self) -> CoreResult<(crate::protocol::level::AtrRegime, f64)> {
        let i = self.i;
        let atr = self.atr(self.d.atr_period)?;
        let pct_of_spot = atr.map_or(self.d.atr_fallback_pct, |a| a / i.spot * 100.0);
        let (regime, m) = self.d.tables.atr_regime(pct_of_spot)?;
        self.notes.push(format!(
            "ATR(14)={}% of spot: regime {}, size x{}",
            fixed(pct_of_spot, 2),
            regime.name(),
            repr(m)
        ));
        Ok((regime, m))
    }

    fn free_cash(&self) -> f64 {
        let held = self.own().map(Holding::collateral).fold(0.0, |a, b| a + b);
        (self.i.balance - self.spec.buffer * self.i.equity - held).max(0.0)
    }

    fn allowed(&self) -> CoreResult<f64> {
        let i = self.i;
        if i.equity <= 0.0 {
            return Ok(0.0);
        }
        allowed_exposure(
            i.peak.max(i.equity),
            i.equity,
            self.spec.max_drawdown,
            self.d.drawdown_budget_k,
        )
    }

    fn book_held(&self) -> Vec<Held> {
        let today = self.i.today;
        self.book
            .iter()
            .filter(|h| h.in_book)
            .map(|h| h.held(today))
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        kind: &'static str,
        band: (f64, f64),
        m_label: f64,
        shares: f64,
        cover: f64,
        cash_limit: Option<f64>,
    ) -> CoreResult<Decision> {
        let i = self.i;
        let conf = i.label_confidence;
        let option = if kind == "call" {
            OptionKind::Call
        } else {
            OptionKind::Put
        };
        let (regime, m_atr) = self.regime()?;
        let target = delta_target(band.0, band.1, regime)?;
        let dte = i.entry_expiry - i.today;
        if dte > self.d.entry_max_dte {
            self.notes.push(format!(
                "no weekly expiry within {} days (next {}, a holiday week): no entry",
                self.d.entry_max_dte,
                iso_date(i.entry_expiry)
            ));
            return self.finish("NO_TRADE", None, Made::plain(conf));
        }
        let t = dte as f64 / 365.0;
        let Some(pick) = self.pick_strike(option, t, band, target)? else {
            self.notes.push(format!(
                "no strike inside the band {}-{}",
                fixed(band.0, 0),
                fixed(band.1, 0)
            ));
            return self.finish("NO_TRADE", None, Made::plain(conf));
        };
        let (strike, delta, mid) = (pick.strike, pick.abs_delta, pick.mid);
        self.notes.push(format!(
            "strike {} delta={} (target {} in band {}-{}) expiry {} DTE={dte} mid={} IV={}",
            general(strike),
            fixed(delta, 1),
            fixed(target, 1),
            fixed(band.0, 0),
            fixed(band.1, 0),
            iso_date(i.entry_expiry),
            fixed(mid, 2),
            fixed(i.iv, 3)
        ));
        let prot = self.d.protection_multipliers[usize::from(i.protection_level)];
        let (contracts, note) = if kind == "call" {
            let n = size_covered_calls(shares, cover, MULTIPLIER)?;
            (
                n,
                format!(
                    "cover floor({}/100) x {} = {n}",
                    general(shares),
                    pct(cover, 0)
                ),
            )
        } else {
            self.put_budget(strike, m_label, m_atr, prot, cash_limit)?
        };
        self.notes.push(format!("sizing: {note}"));
        if kind == "put" && contracts == 0 {
            self.affordability(Some(strike));
        }
        let held = self.book_held();
        let base = self.scen()?.book_pnl(&held)?;
        let unit = self.scen()?.book_pnl(&[Held {
            kind: if kind == "call" {
                PositionKind::Call
            } else {
                PositionKind::Put
            },
            underlying: i.column,
            quantity: -1.0,
            strike,
            t: years_to(Some(i.entry_expiry), i.today),
        }])?;
        let limit_es = self.d.es_budget_share * i.portfolio_equity;
        let fit = fit_to_es_budget(
            &base,
            &unit,
            !held.is_empty(),
            contracts,
            kind == "put",
            limit_es,
            self.d.es_level,
        )?;
        if let Some(over) = fit.over_budget {
            self.notes.push(format!(
                "ES after {} over budget {}: resize {contracts} -> {}",
                fixed(over, 2),
                fixed(limit_es, 2),
                fit.contracts
            ));
        }
        if fit.contracts == 0 {
            self.notes
                .push("zero contracts: no trade (never rounded up to one)".into());
            let made = Made {
                es: Some((fit.es_before, fit.es_before)),
                ..Made::plain(conf)
            };
            return self.finish("NO_TRADE", None, made);
        }
        self.notes.push(format!(
            "ES(97.5%) before={} after={} budget={}",
            fixed(fit.es_before, 2),
            fixed(fit.es_after, 2),
            fixed(limit_es, 2)
        ));
        let limit_price = round(mid, 2);
        let order = Order {
            kind,
            side: "sell_to_open",
            strike,
            expiry: Some(i.entry_expiry),
            contracts: fit.contracts,
            limit_price,
            delta,
            premium: round(limit_price * MULTIPLIER * f64::from(fit.contracts), 2),
            band: Some(band),
        };
        let ctx = self.context("entry", &order, Some(dte), Some(fit.es_after), false, None)?;
        let action = if kind == "put" {
            "OPEN_PUT"
        } else {
            "OPEN_CALL"
        };
        let made = Made {
            ctx: Some(ctx),
            es: Some((fit.es_before, fit.es_after)),
            ..Made::plain(conf)
        };
        self.finish(action, Some(order), made)
    }

    fn put_budget(
        &mut self,
        strike: f64,
        m_label: f64,
        m_atr: f64,
        prot: f64,
        cash_limit: Option<f64>,
    ) -> CoreResult<(u32, String)> {
        let i = self.i;
        let free_cash = cash_limit.unwrap_or_else(|| self.free_cash());
        let allowed = self.allowed()?;
        let (share, cap) = self.symbol_share();
        let existing = self
            .own()
            .filter(|h| h.symbol == i.symbol)
            .map(|h| h.exposure(i.spot))
            .fold(0.0, |a, b| a + b);
        let m_vix = if i.vix_state == "ACTIVE" {
            i.vix_multiplier
        } else {
            1.0
        };
        let sized = put_budget(&PutSizing {
            equity: i.equity,
            free_cash,
            strike,
            target_share: share,
            max_symbol_weight: cap,
            existing_exposure: existing,
            m_label,
            m_atr,
            m_drawdown: prot,
            m_vix,
            allowed_exposure: allowed,
            multiplier: MULTIPLIER,
        })?;
        self.size_cap = Some(sized.size_cap);
        let mut note = format!(
            "budget=min(min(t {}, cap {}) x E {} x label {} x ATR {} x drawdown {} x VIX {} x allowed {} - \
             existing {}, free cash {}) = {} ({} binds); contracts=floor({}/({} x 100))={}",
            pct(share, 1),
            pct(cap, 0),
            fixed(i.equity, 2),
            general(m_label),
            general(m_atr),
            general(prot),
            general(m_vix),
            pct(allowed, 0),
            fixed(existing, 2),
            fixed(free_cash, 2),
            fixed(sized.budget, 2),
            sized.binding.name(),
            fixed(sized.budget, 2),
            general(strike),
            sized.sized_contracts
        );
        if sized.room < sized.sized_contracts {
            note.push_str(&format!(
                "; R07 room floor(({} x {} - {})/({} x 100))={}",
                pct(cap, 0),
                fixed(i.equity, 2),
                fixed(existing, 2),
                general(strike),
                sized.room
            ));
        }
        Ok((sized.contracts, note))
    }

    fn roll(&mut self, opt: &Holding, band: Option<(f64, f64)>) -> CoreResult<Decision> {
        let i = self.i;
        let band = band
            .or_else(|| self.position_band(opt))
            .unwrap_or(self.d.call_recovery_band);
        let expiry = match (opt.expiry, opt.roll_expiry) {
            (Some(e), Some(next)) if e > i.today => next,
            _ => i.entry_expiry,
        };
        let dte = expiry - i.today;
        let target = (band.0 + band.1) / 2.0;
        let Some(pick) =
            self.pick_strike(opt.option_kind(), dte.max(1) as f64 / 365.0, band, target)?
        else {
            self.notes
                .push("no strike inside the band for the roll: close instead".into());
            return self.close(opt, "risk_reduction", None);
        };
        let (strike, delta, mid) = (pick.strike, pick.abs_delta, pick.mid);
        let contracts = -opt.quantity as i64;
        let close_cost = opt.mark(i.spot, i.iv, i.today, i.rate)?;
        let net = mid - close_cost;
        self.notes.push(format!(
            "roll to {} expiring {} (DTE {dte}) delta={} band {}-{}: new credit {} - close {} = net {} per share",
            general(strike),
            iso_date(expiry),
            fixed(delta, 1),
            general(band.0),
            general(band.1),
            fixed(mid, 2),
            fixed(close_cost, 2),
            crate::protocol::decide::pyfmt::signed(net, 2)
        ));
        let base = self.scen()?.book_pnl(&self.book_held())?;
        let es_before = expected_shortfall(&base, self.d.es_level)?;
        let old = self.scen()?.book_pnl(&[opt.held(i.today)])?;
        let new = self.scen()?.book_pnl(&[Held {
            kind: opt.kind,
            underlying: opt.column,
            quantity: -(contracts as f64),
            strike,
            t: years_to(Some(expiry), i.today),
        }])?;
        let after: Vec<f64> = base
            .iter()
            .zip(&old)
            .zip(&new)
            .map(|((b, o), n)| (b - o) + n)
            .collect();
        let es_after = expected_shortfall(&after, self.d.es_level)?;
        self.notes.push(format!(
            "ES(97.5%) before={} after the roll={}",
            fixed(es_before, 2),
            fixed(es_after, 2)
        ));
        let contracts = u32::try_from(contracts.max(0)).unwrap_or(u32::MAX);
        let order = Order {
            kind: opt.kind_name(),
            side: "roll",
            strike,
            expiry: Some(expiry),
            contracts,
            limit_price: round(mid, 2),
            delta,
            premium: round(net * MULTIPLIER * f64::from(contracts), 2),
            band: Some(band),
        };
        let reduces = if opt.kind == PositionKind::Put {
            strike <= opt.strike
        } else {
            true
        };
        let ctx = self.context(
            "roll",
            &order,
            Some(dte),
            Some(es_after),
            reduces,
            Some(band),
        )?;
        let made = Made {
            ctx: Some(ctx),
            es: Some((es_before, es_after)),
            position_id: Some(opt.id.clone()),
            trust_kind: Some("roll"),
            ..Made::plain(self.conf().roll)
        };
        let decision = self.finish("ROLL", Some(order), made)?;
        if decision.outcome == "REJECTED" {
            let failed: Vec<&str> = decision
                .compliance
                .iter()
                .filter(|r| !r.passed && r.severity == Severity::Critical)
                .map(|r| r.message.as_str())
                .collect();
            self.notes.push(format!(
                "roll rejected by {}: close instead",
                failed.join(", ")
            ));
            return self.close(opt, "risk_reduction", None);
        }
        Ok(decision)
    }

    fn close(
        &mut self,
        opt: &Holding,
        trust_kind: &'static str,
        stock: Option<&Holding>,
    ) -> CoreResult<Decision> {
        let contracts = u32::try_from((-opt.quantity as i64).max(0)).unwrap_or(u32::MAX);
        self.buy_back(opt, contracts, "CLOSE", trust_kind, stock)
    }

    /// A CLOSE (every contract) or REDUCE (some) of a short option at today's mark; with `stock`, the shares of
    /// the assigned position are sold in the same decision (a level-3 close).
    fn buy_back(
        &mut self,
        opt: &Holding,
        contracts: u32,
        action: &'static str,
        trust_kind: &'static str,
        stock: Option<&Holding>,
    ) -> CoreResult<Decision> {
        let i = self.i;
        let cost = opt.mark(i.spot, i.iv, i.today, i.rate)?;
        let t = years_to(opt.expiry, i.today);
        let delta = bs_greeks(opt.option_kind(), i.spot, opt.strike, t, i.iv, i.rate, 0.0)?.delta;
        let order = Order {
            kind: opt.kind_name(),
            side: "buy_to_close",
            strike: opt.strike,
            expiry: opt.expiry,
            contracts,
            limit_price: round(cost, 2),
            delta: delta.abs() * 100.0,
            premium: -round(cost * MULTIPLIER * f64::from(contracts), 2),
            band: None,
        };
        let legs = stock.map(|s| vec![self.share_sale(s)]).unwrap_or_default();
        let kind = if action == "CLOSE" { "close" } else { "reduce" };
        let ctx = self.context(kind, &order, None, None, true, None)?;
        let made = Made {
            ctx: Some(ctx),
            position_id: Some(opt.id.clone()),
            trust_kind: Some(trust_kind),
            legs,
            ..Made::plain(self.conf().close)
        };
        self.finish(action, Some(order), made)
    }

    fn share_sale(&self, stock: &Holding) -> Order {
        let spot = self.i.spot;
        let shares = stock.quantity.trunc();
        Order {
            kind: "stock",
            side: "sell_to_close",
            strike: 0.0,
            expiry: None,
            contracts: shares.max(0.0) as u32,
            limit_price: round(spot, 2),
            delta: 100.0,
            premium: round(spot * shares, 2),
            band: None,
        }
    }

    fn sell_shares(&mut self, stock: &Holding, trust_kind: &'static str) -> CoreResult<Decision> {
        let order = self.share_sale(stock);
        let ctx = self.context("close", &order, None, None, true, None)?;
        let made = Made {
            ctx: Some(ctx),
            position_id: Some(stock.id.clone()),
            trust_kind: Some(trust_kind),
            ..Made::plain(self.conf().close)
        };
        self.finish("CLOSE", Some(order), made)
    }

    // --- slicing, compliance and the decision record -------------------------------------------------------
    /// `order` as child orders of at most max_contracts_per_order contracts (100-share lots for stock), premiums
    /// split in proportion.
    fn slices(&self, order: &Order) -> Vec<Order> {
        let unit = if order.kind == "stock" { 100 } else { 1 };
        let size = self.d.max_contracts_per_order.saturating_mul(unit);
        if order.contracts <= size {
            return vec![order.clone()];
        }
        let mut children = Vec::new();
        let mut left = order.contracts;
        while left > 0 {
            let n = size.min(left);
            children.push(Order {
                contracts: n,
                premium: round(order.premium * f64::from(n) / f64::from(order.contracts), 2),
                ..order.clone()
            });
            left -= n;
        }
        children
    }

    /// The typed rule context of `order` (PROTOCOL section 7).
    fn context(
        &mut self,
        kind: &str,
        order: &Order,
        dte: Option<i64>,
        es_after: Option<f64>,
        reduces: bool,
        band: Option<(f64, f64)>,
    ) -> CoreResult<OrderContext> {
        self.rules_checked = true;
        let group: &[String] = match &self.i.group_symbols {
            Some(g) => g,
            None => self.scenarios.group_symbols()?.ok_or_else(|| {
                CoreError::invalid("group_symbols", "the tail group could not be measured")
            })?,
        };
        let i = self.i;
        let stock = order.kind == "stock";
        let band = match band {
            Some(b) => Some(b),
            None if !stock => order.band.or_else(|| self.band_of(order.kind)),
            None => None,
        };
        let symbol_exposure = self
            .own()
            .filter(|h| h.symbol == i.symbol)
            .map(|h| h.exposure(i.spot))
            .fold(0.0, |a, b| a + b);
        let added = if stock {
            if order.side == "buy_to_open" {
                order.limit_price * f64::from(order.contracts)
            } else {
                0.0
            }
        } else if kind == "entry" && order.kind == "put" {
            order.strike * MULTIPLIER * f64::from(order.contracts)
        } else {
            0.0
        };
        let sector_exposure = self
            .book
            .iter()
            .filter(|h| h.in_book && h.sector == i.sector)
            .map(|h| h.exposure(h.last_close))
            .fold(0.0, |a, b| a + b);
        let (share, cap) = self.symbol_share();
        let size_cap = self.size_cap.unwrap_or(share.min(cap) * i.equity);
        let released = if kind == "roll" {
            self.own()
                .filter(|h| h.symbol == i.symbol)
                .map(Holding::collateral)
                .fold(0.0, |a, b| a + b)
        } else {
            0.0
        };
        let children = self.slices(order);
        let unit = if stock { 100.0 } else { 1.0 };
        let last = children.last().map_or(0, |c| c.contracts);
        let before_last = if order.contracts > 0 {
            f64::from(order.contracts - last) / f64::from(order.contracts)
        } else {
            0.0
        };
        let quote = match order.kind {
            "put" => self.quotes(OptionKind::Put),
            "call" => self.quotes(OptionKind::Call),
            _ => &[],
        }
        .iter()
        .rev()
        .find(|q| q.strike == order.strike)
        .copied();
        let mid = quote.map(|q| (q.bid + q.ask) / 2.0).filter(|m| *m != 0.0);
        let group_exposure = self
            .own()
            .filter(|h| group.contains(&h.symbol))
            .map(|h| h.exposure(h.last_close))
            .fold(0.0, |a, b| a + b);
        Ok(OrderContext {
            kind: kind.into(),
            account_id: i.account_id.clone(),
            account_type: i.account_kind.clone(),
            label: i.label.clone(),
            symbol: i.symbol.clone(),
            sector: i.sector.clone(),
            delta: (!stock).then_some(order.delta),
            band_low: band.map(|b| b.0),
            band_high: band.map(|b| b.1),
            dte: dte.map(|d| d as f64),
            weekday: Some(i.weekday),
            entry_days: if order.kind == "put" {
                self.rule.entry_days.clone()
            } else {
                vec![i.weekday]
            },
            allowed_symbols: self.spec.allowed_symbols.clone(),
            strike: Some(if stock {
                order.limit_price
            } else {
                order.strike
            }),
            contracts: Some(f64::from(last) / unit),
            multiplier: Some(MULTIPLIER),
            free_cash: Some(self.free_cash() + released - added * before_last),
            notional: Some(added),
            size_cap: Some(size_cap),
            account_equity: Some(i.equity),
            symbol_exposure_after: Some(symbol_exposure + added),
            portfolio_equity: Some(i.portfolio_equity),
            sector_exposure_after: Some(sector_exposure + added),
            es_after: Some(es_after.unwrap_or(0.0)),
            account_state: i.account_state.clone(),
            system_state: i.system_state.clone(),
            vix_state: i.vix_state.clone(),
            vix: i.vix,
            reduces_exposure: reduces,
            chain: quote.map(|q| Chain {
                open_interest: q.open_interest,
                volume: q.volume,
                bid: q.bid,
                ask: q.ask,
            }),
            limit_price: Some(order.limit_price),
            // Without a chain quote (or with a zero mid) the rules see the order's own limit as the mid.
            mid: Some(mid.unwrap_or(order.limit_price)),
            orders_last_minute: Some(f64::from(i.orders_last_minute)),
            idempotency_seen: false,
            earnings_in_week: i.earnings_in_week,
            withdrawal_amount: None,
            option_kind: Some(order.kind.into()),
            group_symbols: group.to_vec(),
            group_exposure_after: Some(group_exposure + added),
            max_symbol_weight: Some(cap),
        })
    }

    /// Runs the rules, gates by trust and writes the decision record.
    fn finish(
        &mut self,
        action: &'static str,
        order: Option<Order>,
        made: Made,
    ) -> CoreResult<Decision> {
        self.records += 1;
        let compliance = match &made.ctx {
            Some(c) => rules::evaluate(self.rules, c)?,
            None => Vec::new(),
        };
        let outcome = rules::outcome(&compliance);
        let mut final_action = action;
        if outcome == rules::Outcome::Rejected {
            if matches!(action, "OPEN_PUT" | "OPEN_CALL" | "BUY_SHARES") {
                final_action = "NO_TRADE";
            }
            let failed: Vec<&str> = compliance
                .iter()
                .filter(|r| !r.passed && r.severity == Severity::Critical)
                .map(|r| r.message.as_str())
                .collect();
            self.notes
                .push(format!("rejected by {}", failed.join(", ")));
        } else if compliance.iter().any(|r| !r.passed) {
            let failed: Vec<&str> = compliance
                .iter()
                .filter(|r| !r.passed)
                .map(|r| r.message.as_str())
                .collect();
            self.notes.push(format!("warnings: {}", failed.join("; ")));
        }
        let kind = made.trust_kind.unwrap_or_else(|| trust_kind(final_action));
        let acts = !matches!(final_action, "HOLD" | "NO_TRADE");
        let confidence = made.confidence;
        let requires = outcome == rules::Outcome::RequiresApproval
            || (acts && self.i.trust.requires_approval(kind, confidence));
        if acts {
            self.notes.push(format!(
                "trust[{kind}]={} confidence={}: {}",
                fixed(self.i.trust.score(kind), 2),
                fixed(confidence, 2),
                if requires {
                    "human approval required"
                } else {
                    "runs without approval"
                }
            ));
        }
        let (es_before, mut es_after) = made.es.unwrap_or((0.0, 0.0));
        if made.es.is_none() {
            if let Some(c) = &made.ctx {
                es_after = c.es_after.unwrap_or(0.0);
            }
        }
        let kept = if acts { order } else { None };
        let mut orders = Vec::new();
        if let Some(o) = &kept {
            orders = self.slices(o);
            for leg in &made.legs {
                orders.extend(self.slices(leg));
            }
            if orders.len() > 1 {
                let parts: Vec<String> = orders
                    .iter()
                    .map(|c| format!("{} {}", c.contracts, c.kind))
                    .collect();
                self.notes.push(format!(
                    "{} child orders: {}",
                    orders.len(),
                    parts.join(", ")
                ));
            }
        }
        for w in &self.warnings {
            if !self.notes.contains(w) {
                self.notes.push(w.clone());
            }
        }
        let state = if self.reducing && self.i.account_state == "ACTIVE" {
            "REDUCING".to_string()
        } else {
            self.i.account_state.clone()
        };
        Ok(Decision {
            action: final_action,
            counts_order: kept.is_some(),
            order: kept,
            orders,
            es_before,
            es_after,
            compliance,
            outcome: outcome.name(),
            requires_approval: requires,
            confidence,
            trust_kind: kind,
            notes: self.notes.clone(),
            warnings: self.warnings.clone(),
            week_type: self.week.map(|w| w.code),
            protocol_level: self.level,
            position_id: made.position_id,
            account_state: state,
            freeze_until: self.freeze,
            cut: self.cut.clone(),
            reducing: self.reducing,
            rules_checked: false,
            records: 0,
        })
    }
}

/// The account's lots of one symbol as one holding: total shares at their weighted cost basis (the first lot's id).
fn one_holding(lots: Vec<&Holding>) -> Option<Holding> {
    let first = (*lots.first()?).clone();
    if lots.len() == 1 {
        return Some(first);
    }
    let total = lots.iter().map(|p| p.quantity).fold(0.0, |a, b| a + b);
    let basis = lots
        .iter()
        .map(|p| p.quantity * p.cost_basis)
        .fold(0.0, |a, b| a + b)
        / total;
    Some(Holding {
        quantity: total,
        cost_basis: basis,
        ..first
    })
}

/// The trust kind of an action (PROTOCOL section 10).
pub fn trust_kind(action: &str) -> &'static str {
    match action {
        "ROLL" => "roll",
        "CLOSE" | "HOLD" | "ACCEPT_ASSIGNMENT" => "exit",
        "REDUCE" => "risk_reduction",
        _ => "entry",
    }
}
