//! The decision flow in the core (PROTOCOL section 10): from a typed `DecisionInput` to a typed `Decision`. The
//! compiled `Decider` (account specs, entry rules, strike grid, sizing and risk settings) is built once per engine
//! configuration; each decision reads it, picks the strike, sizes the order, measures ES before and after over the
//! day's scenarios, builds the rule context, runs the rules, gates by trust and writes the explanation.
//!
//! The entry path (a gen or rev account with nothing open on the symbol) runs here; managing open options, shares
//! and Com-Acc's round lots still run in the Python engine (docs/architecture.md, "The decision flow").

use crate::error::{check, CoreError, CoreResult};
use crate::pricing::OptionKind;
use crate::protocol::decide::pyfmt::{
    fixed, general, iso_date, pct, repr, round, thousands, title,
};
use crate::protocol::decide::scenarios::{Held, Scenarios, OPTION_MULTIPLIER};
use crate::protocol::decide::sizing::{fit_to_es_budget, put_budget};
use crate::protocol::decide::strike::StrikePicker;
use crate::protocol::decide::Tables;
use crate::protocol::drawdown::allowed_exposure;
use crate::protocol::level::delta_target;
use crate::protocol::sizing::PutSizing;
use crate::risk::PositionKind;
use crate::rules::{self, OrderContext, RuleResult, RuleSet, Severity};

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
    pub account_id: String,
    pub symbol: String,
    /// put, call or stock.
    pub kind: PositionKind,
    /// Signed: contracts for options (negative short), shares for stock.
    pub quantity: f64,
    pub strike: f64,
    /// Days to expiry from today (None for stock).
    pub days_to_expiry: Option<i64>,
    /// The symbol's sector ("unknown" when none is known) and its last close.
    pub sector: String,
    pub last_close: f64,
    /// Index of the symbol in the day's scenario columns.
    pub column: usize,
    /// True when the position counts in the portfolio's book (its account's group not merged away): ES and
    /// sector exposure read these; free cash and the account's exposures read the account's own positions.
    pub in_book: bool,
}

impl Holding {
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

    fn years(&self) -> f64 {
        match self.days_to_expiry {
            Some(d) => d.max(0) as f64 / 365.0 + 1.0 / (365.0 * 24.0),
            None => 0.0,
        }
    }

    fn held(&self) -> Held {
        let option = self.kind != PositionKind::Stock;
        Held {
            kind: self.kind,
            underlying: self.column,
            quantity: self.quantity,
            strike: if option { self.strike } else { 1.0 },
            t: if option { self.years() } else { 1.0 },
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

/// What one decision needs, all named and typed.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionInput {
    pub account_id: String,
    /// gen, rev or com.
    pub account_kind: String,
    /// ACTIVE, REDUCING or HALTED.
    pub account_state: String,
    pub balance: f64,
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
    /// The symbol's bars up to today.
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub protection_level: u8,
    pub vix: Option<f64>,
    pub vix_multiplier: f64,
    pub vix_state: String,
    pub system_state: String,
    pub orders_last_minute: u32,
    pub earnings_in_week: Option<bool>,
    /// The symbol's tail-dependent group (PROTOCOL section 6).
    pub group_symbols: Vec<String>,
    /// Every position of the portfolio's accounts not merged away (the book ES is measured on).
    pub book: Vec<Holding>,
    /// Scenario column of the decision's symbol.
    pub column: usize,
    pub trust: TrustGate,
}

impl DecisionInput {
    /// Numbers must be finite and the shape consistent; an error names the field.
    pub fn validate(&self) -> CoreResult<()> {
        for (name, x) in [
            ("balance", self.balance),
            ("peak", self.peak),
            ("equity", self.equity),
            ("portfolio_equity", self.portfolio_equity),
            ("label_confidence", self.label_confidence),
            ("spot", self.spot),
            ("iv", self.iv),
            ("rate", self.rate),
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
        if self.low.len() != self.high.len() || self.close.len() != self.high.len() {
            return Err(CoreError::invalid(
                "close",
                "high, low and close must have the same length",
            ));
        }
        check::all_finite("high", &self.high)?;
        check::all_finite("low", &self.low)?;
        check::all_finite("close", &self.close)?;
        for s in self.trust.scores {
            check::finite("trust.scores", s)?;
        }
        for (i, h) in self.book.iter().enumerate() {
            let f = |n: &str| format!("book[{i}].{n}");
            check::finite(&f("quantity"), h.quantity)?;
            check::finite(&f("strike"), h.strike)?;
            check::finite(&f("last_close"), h.last_close)?;
        }
        Ok(())
    }

    fn own(&self) -> impl Iterator<Item = &Holding> {
        self.book.iter().filter(|h| h.account_id == self.account_id)
    }
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
    /// `order` sliced into children of at most max_contracts_per_order.
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
    /// True when the order enters the account's order-rate window once executed.
    pub counts_order: bool,
    /// True when a rule context was built and the rules ran (the rate window is pruned then).
    pub rules_checked: bool,
    pub account_state: String,
}

/// One decision in progress.
struct Deciding<'a> {
    d: &'a Decider,
    i: &'a DecisionInput,
    spec: &'a AccountRules,
    rule: &'a EntryRule,
    scenarios: &'a Scenarios,
    rules: &'a RuleSet,
    notes: Vec<String>,
    warnings: Vec<String>,
    size_cap: Option<f64>,
}

/// Whether the core runs this decision's flow: a gen or rev account with nothing open on the symbol (the entry
/// path). The Python engine checks the same before it calls.
pub fn runs_in_core(input: &DecisionInput) -> bool {
    input.account_kind != "com"
        && !input.own().any(|h| {
            h.symbol == input.symbol && (h.kind == PositionKind::Stock || h.quantity < 0.0)
        })
}

/// The decision for the input's account and symbol (the entry path; see `runs_in_core`).
pub fn decide(
    d: &Decider,
    input: &DecisionInput,
    scenarios: &Scenarios,
    rules: &RuleSet,
) -> CoreResult<Decision> {
    input.validate()?;
    let spec = d.account(&input.account_kind)?;
    let li = LABELS
        .iter()
        .position(|l| *l == input.label)
        .unwrap_or_default();
    if input.column >= scenarios.cols() {
        return Err(CoreError::invalid(
            "column",
            format!("index {} of {} symbols", input.column, scenarios.cols()),
        ));
    }
    for (i, h) in input.book.iter().enumerate() {
        if h.column >= scenarios.cols() {
            return Err(CoreError::invalid(
                format!("book[{i}].column"),
                format!("index {} of {} symbols", h.column, scenarios.cols()),
            ));
        }
    }
    if !runs_in_core(input) {
        return Err(CoreError::invalid(
            "account_kind",
            "the core decides the entry path only (gen or rev, nothing open on the symbol)",
        ));
    }
    let mut run = Deciding {
        d,
        i: input,
        spec,
        rule: &spec.entry[li],
        scenarios,
        rules,
        notes: input.notes.clone(),
        warnings: Vec::new(),
        size_cap: None,
    };
    run.entry()
}

impl Deciding<'_> {
    fn no_trade(&mut self, es: Option<(f64, f64)>) -> CoreResult<Decision> {
        self.finish("NO_TRADE", None, self.i.label_confidence, None, es)
    }

    fn entry(&mut self) -> CoreResult<Decision> {
        let (i, rule) = (self.i, self.rule);
        let label = title(&i.label);
        let Some(band) = rule.band.filter(|_| !rule.entry_days.is_empty()) else {
            self.notes.push(format!(
                "{} makes no new entries in {label}",
                self.spec.name
            ));
            self.affordability(None);
            return self.no_trade(None);
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
            return self.no_trade(None);
        }
        if let Some(frozen) = i.frozen_until.filter(|f| i.today <= *f) {
            self.notes.push(format!(
                "new entries frozen until {} (protocol level 2)",
                iso_date(frozen)
            ));
            return self.no_trade(None);
        }
        self.open_put(band, rule.m_label)
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

    fn regime(&mut self) -> CoreResult<(crate::protocol::level::AtrRegime, f64)> {
        let i = self.i;
        let period = self.d.atr_period;
        let atr = if i.close.len() > period {
            let v = *crate::indicators::atr(&i.high, &i.low, &i.close, period)?
                .last()
                .unwrap_or(&f64::NAN);
            (v.is_finite() && v > 0.0).then_some(v)
        } else {
            None
        };
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
        let held = self
            .i
            .own()
            .map(Holding::collateral)
            .fold(0.0, |a, b| a + b);
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

    fn open_put(&mut self, band: (f64, f64), m_label: f64) -> CoreResult<Decision> {
        let i = self.i;
        let (regime, m_atr) = self.regime()?;
        let target = delta_target(band.0, band.1, regime)?;
        let dte = i.entry_expiry - i.today;
        if dte > self.d.entry_max_dte {
            self.notes.push(format!(
                "no weekly expiry within {} days (next {}, a holiday week): no entry",
                self.d.entry_max_dte,
                iso_date(i.entry_expiry)
            ));
            return self.no_trade(None);
        }
        let t = dte as f64 / 365.0;
        let picked = self.d.strikes.pick(
            OptionKind::Put,
            i.spot,
            t,
            i.iv,
            i.rate,
            band.0,
            band.1,
            target,
        )?;
        let Some(pick) = picked else {
            self.notes.push(format!(
                "no strike inside the band {}-{}",
                fixed(band.0, 0),
                fixed(band.1, 0)
            ));
            return self.no_trade(None);
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
        let (contracts, note) = self.put_budget(strike, m_label, m_atr, prot)?;
        self.notes.push(format!("sizing: {note}"));
        if contracts == 0 {
            self.affordability(Some(strike));
        }
        let held: Vec<Held> = i
            .book
            .iter()
            .filter(|h| h.in_book)
            .map(Holding::held)
            .collect();
        let base = self.scenarios.book_pnl(&held)?;
        let unit = self.scenarios.book_pnl(&[Held {
            kind: PositionKind::Put,
            underlying: i.column,
            quantity: -1.0,
            strike,
            t: dte.max(0) as f64 / 365.0 + 1.0 / (365.0 * 24.0),
        }])?;
        let limit_es = self.d.es_budget_share * i.portfolio_equity;
        let fit = fit_to_es_budget(
            &base,
            &unit,
            !held.is_empty(),
            contracts,
            true,
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
            return self.no_trade(Some((fit.es_before, fit.es_before)));
        }
        self.notes.push(format!(
            "ES(97.5%) before={} after={} budget={}",
            fixed(fit.es_before, 2),
            fixed(fit.es_after, 2),
            fixed(limit_es, 2)
        ));
        let limit_price = round(mid, 2);
        let order = Order {
            kind: "put",
            side: "sell_to_open",
            strike,
            expiry: Some(i.entry_expiry),
            contracts: fit.contracts,
            limit_price,
            delta,
            premium: round(limit_price * MULTIPLIER * f64::from(fit.contracts), 2),
            band: Some(band),
        };
        let ctx = self.context("entry", &order, Some(dte), fit.es_after, false);
        self.finish(
            "OPEN_PUT",
            Some(order),
            i.label_confidence,
            Some(ctx),
            Some((fit.es_before, fit.es_after)),
        )
    }

    fn put_budget(
        &mut self,
        strike: f64,
        m_label: f64,
        m_atr: f64,
        prot: f64,
    ) -> CoreResult<(u32, String)> {
        let i = self.i;
        let free_cash = self.free_cash();
        let allowed = self.allowed()?;
        let (share, cap) = self.symbol_share();
        let existing = i
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

    /// `order` as child orders of at most max_contracts_per_order contracts, premiums split in proportion.
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
        &self,
        kind: &str,
        order: &Order,
        dte: Option<i64>,
        es_after: f64,
        reduces: bool,
    ) -> OrderContext {
        let i = self.i;
        let band = order.band;
        let symbol_exposure = i
            .own()
            .filter(|h| h.symbol == i.symbol)
            .map(|h| h.exposure(i.spot))
            .fold(0.0, |a, b| a + b);
        let added = if kind == "entry" && order.kind == "put" {
            order.strike * MULTIPLIER * f64::from(order.contracts)
        } else {
            0.0
        };
        let sector_exposure = i
            .book
            .iter()
            .filter(|h| h.in_book && h.sector == i.sector)
            .map(|h| h.exposure(h.last_close))
            .fold(0.0, |a, b| a + b);
        let (share, cap) = self.symbol_share();
        let size_cap = self.size_cap.unwrap_or(share.min(cap) * i.equity);
        let children = self.slices(order);
        let last = children.last().map_or(0, |c| c.contracts);
        let before_last = if order.contracts > 0 {
            f64::from(order.contracts - last) / f64::from(order.contracts)
        } else {
            0.0
        };
        let group_exposure = i
            .own()
            .filter(|h| i.group_symbols.contains(&h.symbol))
            .map(|h| h.exposure(h.last_close))
            .fold(0.0, |a, b| a + b);
        OrderContext {
            kind: kind.into(),
            account_id: i.account_id.clone(),
            account_type: i.account_kind.clone(),
            label: i.label.clone(),
            symbol: i.symbol.clone(),
            sector: i.sector.clone(),
            delta: Some(order.delta),
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
            strike: Some(order.strike),
            contracts: Some(f64::from(last)),
            multiplier: Some(MULTIPLIER),
            free_cash: Some(self.free_cash() - added * before_last),
            notional: Some(added),
            size_cap: Some(size_cap),
            account_equity: Some(i.equity),
            symbol_exposure_after: Some(symbol_exposure + added),
            portfolio_equity: Some(i.portfolio_equity),
            sector_exposure_after: Some(sector_exposure + added),
            es_after: Some(es_after),
            account_state: i.account_state.clone(),
            system_state: i.system_state.clone(),
            vix_state: i.vix_state.clone(),
            vix: i.vix,
            reduces_exposure: reduces,
            chain: None,
            limit_price: Some(order.limit_price),
            // Without a chain quote the rules see the order's own limit as the mid.
            mid: Some(order.limit_price),
            orders_last_minute: Some(f64::from(i.orders_last_minute)),
            idempotency_seen: false,
            earnings_in_week: i.earnings_in_week,
            withdrawal_amount: None,
            option_kind: Some(order.kind.into()),
            group_symbols: i.group_symbols.clone(),
            group_exposure_after: Some(group_exposure + added),
            max_symbol_weight: Some(cap),
        }
    }

    /// Runs the rules, gates by trust and writes the decision record.
    fn finish(
        &mut self,
        action: &'static str,
        order: Option<Order>,
        confidence: f64,
        ctx: Option<OrderContext>,
        es: Option<(f64, f64)>,
    ) -> CoreResult<Decision> {
        let compliance = match &ctx {
            Some(c) => rules::evaluate(self.rules, c)?,
            None => Vec::new(),
        };
        let outcome = rules::outcome(&compliance);
        let critical = || {
            compliance
                .iter()
                .filter(|r| !r.passed && r.severity == Severity::Critical)
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut final_action = action;
        if outcome == rules::Outcome::Rejected {
            if matches!(action, "OPEN_PUT" | "OPEN_CALL" | "BUY_SHARES") {
                final_action = "NO_TRADE";
            }
            self.notes.push(format!("rejected by {}", critical()));
        } else if compliance.iter().any(|r| !r.passed) {
            let failed: Vec<&str> = compliance
                .iter()
                .filter(|r| !r.passed)
                .map(|r| r.message.as_str())
                .collect();
            self.notes.push(format!("warnings: {}", failed.join("; ")));
        }
        let kind = trust_kind(final_action);
        let acts = !matches!(final_action, "HOLD" | "NO_TRADE");
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
        let (mut es_before, mut es_after) = es.unwrap_or((0.0, 0.0));
        if es.is_none() {
            if let Some(c) = &ctx {
                es_before = 0.0;
                es_after = c.es_after.unwrap_or(0.0);
            }
        }
        let kept = if acts { order } else { None };
        let orders = kept.as_ref().map(|o| self.slices(o)).unwrap_or_default();
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
        for w in &self.warnings {
            if !self.notes.contains(w) {
                self.notes.push(w.clone());
            }
        }
        Ok(Decision {
            action: final_action,
            counts_order: kept.is_some(),
            rules_checked: ctx.is_some(),
            order: kept,
            orders,
            es_before,
            es_after,
            compliance,
            outcome: outcome.name(),
            requires_approval: requires,
            confidence,
            trust_kind: kind,
            notes: std::mem::take(&mut self.notes),
            warnings: self.warnings.clone(),
            account_state: self.i.account_state.clone(),
        })
    }
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
