//! What a rule looks at: the proposed order and the state around it.

use serde::Deserialize;

use crate::error::{check, CoreError, CoreResult};

/// Option chain data for the chosen strike, when a chain was given.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    pub open_interest: f64,
    pub volume: f64,
    pub bid: f64,
    pub ask: f64,
}

/// The order under review. Optional fields are absent when they do not apply to the decision kind.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OrderContext {
    /// entry, roll, close, reduce, assignment or withdrawal.
    pub kind: String,
    pub account_id: String,
    /// gen, rev or com.
    pub account_type: String,
    /// green, red or chop.
    pub label: String,
    pub symbol: String,
    pub sector: String,
    /// Absolute delta in whole numbers (40 = 0.40) and the band for (account, label).
    pub delta: Option<f64>,
    pub band_low: Option<f64>,
    pub band_high: Option<f64>,
    pub dte: Option<f64>,
    /// 0 = Monday .. 6 = Sunday, and the entry days for (account, label).
    pub weekday: Option<u8>,
    pub entry_days: Vec<u8>,
    pub allowed_symbols: Vec<String>,
    pub strike: Option<f64>,
    pub contracts: Option<f64>,
    pub multiplier: Option<f64>,
    pub free_cash: Option<f64>,
    /// Position notional and the size cap of section 3, in dollars.
    pub notional: Option<f64>,
    pub size_cap: Option<f64>,
    pub account_equity: Option<f64>,
    pub symbol_exposure_after: Option<f64>,
    pub portfolio_equity: Option<f64>,
    pub sector_exposure_after: Option<f64>,
    pub es_after: Option<f64>,
    /// ACTIVE, REDUCING, HALTED.
    pub account_state: String,
    pub system_state: String,
    pub vix_state: String,
    pub vix: Option<f64>,
    /// True when the order lowers exposure (closing, reducing, rolling down without adding).
    pub reduces_exposure: bool,
    pub chain: Option<Chain>,
    pub limit_price: Option<f64>,
    pub mid: Option<f64>,
    pub orders_last_minute: Option<f64>,
    pub idempotency_seen: bool,
    /// None when no earnings calendar was given.
    pub earnings_in_week: Option<bool>,
    pub withdrawal_amount: Option<f64>,
    /// What the order trades: put, call or stock. R17 (earnings) checks puts only; absent, R17 checks entries
    /// as before v2.
    pub option_kind: Option<String>,
    /// The symbol's tail-dependent group (PROTOCOL section 6: pairwise lower-tail coefficient > 0.5) and the
    /// group's combined exposure after the trade; R07 checks max(symbol, group). Absent: the symbol alone.
    pub group_symbols: Vec<String>,
    pub group_exposure_after: Option<f64>,
    /// The account's own concentration limit (a single-symbol account, PROTOCOL section 8), which replaces R07's
    /// `max_share`; 0 < w <= the rule's `max_symbol_weight_ceiling` (0.95). Absent: R07's `max_share`.
    pub max_symbol_weight: Option<f64>,
}

/// The option kinds an order may trade.
pub const OPTION_KINDS: [&str; 3] = ["put", "call", "stock"];

impl OrderContext {
    /// Parses a context from JSON; an unknown or mistyped field is named.
    pub fn from_json(text: &str) -> CoreResult<Self> {
        serde_json::from_str(text).map_err(|e| CoreError::invalid("context", e.to_string()))
    }

    /// Numeric fields must be finite when present.
    pub fn validate(&self) -> CoreResult<()> {
        const KINDS: [&str; 6] = [
            "entry",
            "roll",
            "close",
            "reduce",
            "assignment",
            "withdrawal",
        ];
        if !KINDS.contains(&self.kind.as_str()) {
            return Err(CoreError::invalid(
                "kind",
                format!("must be one of {}, got '{}'", KINDS.join(", "), self.kind),
            ));
        }
        let numbers = [
            ("delta", self.delta),
            ("band_low", self.band_low),
            ("band_high", self.band_high),
            ("dte", self.dte),
            ("strike", self.strike),
            ("contracts", self.contracts),
            ("multiplier", self.multiplier),
            ("free_cash", self.free_cash),
            ("notional", self.notional),
            ("size_cap", self.size_cap),
            ("account_equity", self.account_equity),
            ("symbol_exposure_after", self.symbol_exposure_after),
            ("portfolio_equity", self.portfolio_equity),
            ("sector_exposure_after", self.sector_exposure_after),
            ("es_after", self.es_after),
            ("vix", self.vix),
            ("limit_price", self.limit_price),
            ("mid", self.mid),
            ("orders_last_minute", self.orders_last_minute),
            ("withdrawal_amount", self.withdrawal_amount),
            ("group_exposure_after", self.group_exposure_after),
            ("max_symbol_weight", self.max_symbol_weight),
        ];
        for (name, v) in numbers {
            if let Some(x) = v {
                check::finite(name, x)?;
            }
        }
        if let Some(k) = &self.option_kind {
            if !OPTION_KINDS.contains(&k.as_str()) {
                return Err(CoreError::invalid(
                    "option_kind",
                    format!("must be one of {}, got '{k}'", OPTION_KINDS.join(", ")),
                ));
            }
        }
        if let Some(c) = &self.chain {
            check::finite("chain.open_interest", c.open_interest)?;
            check::finite("chain.volume", c.volume)?;
            check::finite("chain.bid", c.bid)?;
            check::finite("chain.ask", c.ask)?;
        }
        Ok(())
    }

    /// True for orders that open or enlarge a position.
    pub fn is_new_exposure(&self) -> bool {
        matches!(self.kind.as_str(), "entry") || (self.kind == "roll" && !self.reduces_exposure)
    }

    /// A buy-back of a short option: a CLOSE (every contract) or a REDUCE (some).
    pub fn is_buy_back(&self) -> bool {
        matches!(self.kind.as_str(), "close" | "reduce")
    }

    /// What a REDUCING state lets through: an order that lowers exposure.
    pub fn lowers_exposure(&self) -> bool {
        self.reduces_exposure || self.is_buy_back()
    }

    /// What a HALTED state lets through: cancels, closes and reduce orders (a buy-back is a closing order).
    /// Entries and rolls open a new option, so they never pass, even a roll that lowers exposure.
    pub fn is_closing(&self) -> bool {
        self.is_buy_back()
            || (self.reduces_exposure && !matches!(self.kind.as_str(), "entry" | "roll"))
    }
}
