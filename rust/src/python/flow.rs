//! Python bindings of the decision flow: `Decider` (compiled once per engine configuration), the typed
//! `DecisionInput` the engine assembles, and the typed `CoreDecision` the core returns. Every field is named; no
//! JSON, dict or unnamed tuple crosses.

use numpy::PyReadonlyArray1;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};

use super::decide::{ProtocolTables, PyScenarioSet, PyStrikePicker, RuleVerdict};
use super::errors::IntoPyResult;
use crate::error::{CoreError, CoreResult};
use crate::protocol::decide::flow;
use crate::risk::PositionKind;

mod book;
pub use book::PositionBook;

fn band_of(field: &str, low: Option<f64>, high: Option<f64>) -> CoreResult<Option<(f64, f64)>> {
    match (low, high) {
        (Some(l), Some(h)) => Ok(Some((l, h))),
        (None, None) => Ok(None),
        _ => Err(CoreError::invalid(
            field,
            "give band_low and band_high, or neither",
        )),
    }
}

/// Entry days, delta band and size multiplier for (account type, label).
#[pyclass(frozen, module = "allsuse._core")]
#[derive(Clone)]
pub struct EntryRule {
    inner: flow::EntryRule,
}

#[pymethods]
impl EntryRule {
    #[new]
    #[pyo3(signature = (*, entry_days, band_low, band_high, m_label))]
    fn new(
        py: Python<'_>,
        entry_days: Vec<u8>,
        band_low: Option<f64>,
        band_high: Option<f64>,
        m_label: f64,
    ) -> PyResult<Self> {
        Ok(EntryRule {
            inner: flow::EntryRule {
                entry_days,
                band: band_of("band", band_low, band_high).py_err(py)?,
                m_label,
            },
        })
    }
}

/// One account type's constants and its entry rules for green, red and chop.
#[pyclass(frozen, module = "allsuse._core")]
#[derive(Clone)]
pub struct AccountRules {
    inner: flow::AccountRules,
}

#[pymethods]
impl AccountRules {
    #[new]
    #[pyo3(signature = (
        *, kind, name, buffer, max_drawdown, target_share, max_symbol_weight, allowed_symbols, green, red, chop
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: String,
        name: String,
        buffer: f64,
        max_drawdown: f64,
        target_share: f64,
        max_symbol_weight: f64,
        allowed_symbols: Vec<String>,
        green: PyRef<'_, EntryRule>,
        red: PyRef<'_, EntryRule>,
        chop: PyRef<'_, EntryRule>,
    ) -> Self {
        AccountRules {
            inner: flow::AccountRules {
                kind,
                name,
                buffer,
                max_drawdown,
                target_share,
                max_symbol_weight,
                allowed_symbols,
                entry: [green.inner.clone(), red.inner.clone(), chop.inner.clone()],
            },
        }
    }
}

/// The compiled decision settings of one engine configuration: built once (and on reload), read by every decision.
#[pyclass(frozen, module = "allsuse._core")]
pub struct Decider {
    inner: flow::Decider,
}

/// A position as the decision reads it (expiries as proleptic ordinals).
#[pyclass(frozen, module = "allsuse._core")]
#[derive(Clone)]
pub struct HeldPosition {
    inner: flow::Holding,
}

#[pymethods]
impl HeldPosition {
    #[new]
    #[pyo3(signature = (
        *, id, account_id, symbol, kind, quantity, strike, expiry, roll_expiry, premium, cost_basis, band_low,
        band_high, sector, last_close, iv, column, in_book
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        id: String,
        account_id: String,
        symbol: String,
        kind: &str,
        quantity: f64,
        strike: f64,
        expiry: Option<i64>,
        roll_expiry: Option<i64>,
        premium: f64,
        cost_basis: f64,
        band_low: Option<f64>,
        band_high: Option<f64>,
        sector: String,
        last_close: f64,
        iv: f64,
        column: usize,
        in_book: bool,
    ) -> PyResult<Self> {
        let kind = PositionKind::parse(kind)
            .map_err(|e| CoreError::invalid("kind", e.reason().to_string()))
            .py_err(py)?;
        Ok(HeldPosition {
            inner: flow::Holding {
                id,
                account_id,
                symbol,
                kind,
                quantity,
                strike,
                expiry,
                roll_expiry,
                premium,
                cost_basis,
                band: band_of("band", band_low, band_high).py_err(py)?,
                sector,
                last_close,
                iv,
                column,
                in_book,
            },
        })
    }
}

/// A whole book given column by column (one value per position in each column, the fields of `HeldPosition`):
/// the positions of one decision without a Python object per position. A column of another length, a bad kind
/// or half a band is named with the position's index.
#[pyclass(frozen, module = "allsuse._core")]
pub struct HeldBook {
    inner: Vec<flow::Holding>,
    /// From `PositionBook.held`: the book's symbols sorted (the scenario columns), the account's positions'
    /// symbols in book order, and the decision symbol's column. Empty and 0 for a book given column by column.
    symbols: Vec<String>,
    own_symbols: Vec<String>,
    column: usize,
}

#[pymethods]
impl HeldBook {
    #[new]
    #[pyo3(signature = (
        *, id, account_id, symbol, kind, quantity, strike, expiry, roll_expiry, premium, cost_basis, band_low,
        band_high, sector, last_close, iv, column, in_book
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        id: Vec<String>,
        account_id: Vec<String>,
        symbol: Vec<String>,
        kind: Vec<String>,
        quantity: Vec<f64>,
        strike: Vec<f64>,
        expiry: Vec<Option<i64>>,
        roll_expiry: Vec<Option<i64>>,
        premium: Vec<f64>,
        cost_basis: Vec<f64>,
        band_low: Vec<Option<f64>>,
        band_high: Vec<Option<f64>>,
        sector: Vec<String>,
        last_close: Vec<f64>,
        iv: Vec<f64>,
        column: Vec<usize>,
        in_book: Vec<bool>,
    ) -> PyResult<Self> {
        let n = id.len();
        for (name, len) in [
            ("account_id", account_id.len()),
            ("symbol", symbol.len()),
            ("kind", kind.len()),
            ("quantity", quantity.len()),
            ("strike", strike.len()),
            ("expiry", expiry.len()),
            ("roll_expiry", roll_expiry.len()),
            ("premium", premium.len()),
            ("cost_basis", cost_basis.len()),
            ("band_low", band_low.len()),
            ("band_high", band_high.len()),
            ("sector", sector.len()),
            ("last_close", last_close.len()),
            ("iv", iv.len()),
            ("column", column.len()),
            ("in_book", in_book.len()),
        ] {
            if len != n {
                return Err(CoreError::invalid(
                    name,
                    format!("has {len} values for {n} positions"),
                ))
                .py_err(py);
            }
        }
        let mut inner = Vec::with_capacity(n);
        let columns = id
            .into_iter()
            .zip(account_id)
            .zip(symbol)
            .zip(sector)
            .enumerate();
        for (i, (((id, account_id), symbol), sector)) in columns {
            let kind = PositionKind::parse(&kind[i])
                .map_err(|e| CoreError::invalid(format!("kind[{i}]"), e.reason().to_string()))
                .py_err(py)?;
            inner.push(flow::Holding {
                id,
                account_id,
                symbol,
                kind,
                quantity: quantity[i],
                strike: strike[i],
                expiry: expiry[i],
                roll_expiry: roll_expiry[i],
                premium: premium[i],
                cost_basis: cost_basis[i],
                // The field is named with the index only for the error.
                band: band_of("band", band_low[i], band_high[i])
                    .map_err(|e| CoreError::invalid(format!("band[{i}]"), e.reason().to_string()))
                    .py_err(py)?,
                sector,
                last_close: last_close[i],
                iv: iv[i],
                column: column[i],
                in_book: in_book[i],
            });
        }
        Ok(HeldBook {
            inner,
            symbols: Vec::new(),
            own_symbols: Vec::new(),
            column: 0,
        })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The book's symbols, sorted: the scenario columns (from `PositionBook.held`; empty otherwise).
    #[getter]
    fn symbols(&self) -> Vec<String> {
        self.symbols.clone()
    }

    /// The symbols of the deciding account's positions, in book order (from `PositionBook.held`).
    #[getter]
    fn own_symbols(&self) -> Vec<String> {
        self.own_symbols.clone()
    }

    /// The decision symbol's scenario column (from `PositionBook.held`; 0 otherwise).
    #[getter]
    fn column(&self) -> usize {
        self.column
    }
}

/// One strike of a given option chain.
#[pyclass(frozen, get_all, module = "allsuse._core")]
#[derive(Clone)]
pub struct ChainQuote {
    strike: f64,
    bid: f64,
    ask: f64,
    iv: f64,
    open_interest: f64,
    volume: f64,
}

#[pymethods]
impl ChainQuote {
    #[new]
    #[pyo3(signature = (*, strike, bid, ask, iv, open_interest, volume))]
    fn new(strike: f64, bid: f64, ask: f64, iv: f64, open_interest: f64, volume: f64) -> Self {
        ChainQuote {
            strike,
            bid,
            ask,
            iv,
            open_interest,
            volume,
        }
    }
}

fn quotes_of(quotes: &[PyRef<'_, ChainQuote>]) -> Vec<flow::ChainQuote> {
    quotes
        .iter()
        .map(|q| flow::ChainQuote {
            strike: q.strike,
            bid: q.bid,
            ask: q.ask,
            iv: q.iv,
            open_interest: q.open_interest,
            volume: q.volume,
        })
        .collect()
}

/// A protection or budget cut already done on the account: its key and the level it was done at.
#[pyclass(frozen, get_all, module = "allsuse._core")]
#[derive(Clone)]
pub struct CutDone {
    key: String,
    level: i64,
}

#[pymethods]
impl CutDone {
    #[new]
    #[pyo3(signature = (*, key, level))]
    fn new(key: String, level: i64) -> Self {
        CutDone { key, level }
    }
}

/// Trust scores per decision kind and the thresholds that gate automation.
#[pyclass(frozen, module = "allsuse._core")]
#[derive(Clone)]
pub struct TrustGate {
    inner: flow::TrustGate,
}

#[pymethods]
impl TrustGate {
    #[new]
    #[pyo3(signature = (*, entry, exit, roll, risk_reduction, emergency, auto_threshold, confidence_threshold))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        entry: f64,
        exit: f64,
        roll: f64,
        risk_reduction: f64,
        emergency: f64,
        auto_threshold: f64,
        confidence_threshold: f64,
    ) -> Self {
        TrustGate {
            inner: flow::TrustGate {
                scores: [entry, exit, roll, risk_reduction, emergency],
                auto_threshold,
                confidence_threshold,
            },
        }
    }
}

/// What one decision needs: the account, its book, the symbol's market columns and the day's readings.
#[pyclass(frozen, module = "allsuse._core")]
pub struct DecisionInput {
    /// The input; its `book` holds the `book` argument's positions only, and `held`'s are read where they are.
    inner: flow::DecisionInput,
    /// The book given column by column (its positions follow `inner.book`'s), read in place by `Decider.decide`.
    held: Option<Py<HeldBook>>,
    /// The bars' arrays as given (days, high, low, close), read in place by `Decider.decide` (checked when the input
    /// is built and again when read, since an array can change in between); the inner input's columns stay empty.
    bars: BarArrays,
}

struct BarArrays {
    days: Py<numpy::PyArray1<i64>>,
    high: Py<numpy::PyArray1<f64>>,
    low: Py<numpy::PyArray1<f64>>,
    close: Py<numpy::PyArray1<f64>>,
}

/// A shared borrow of an input's array; one being written to is refused naming `field`.
fn readable<'py, T: numpy::Element>(
    py: Python<'py>,
    array: &Py<numpy::PyArray1<T>>,
    field: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    use numpy::PyArrayMethods;
    array
        .bind(py)
        .try_readonly()
        .map_err(|_| CoreError::invalid(field, "is being written to"))
        .py_err(py)
}

/// An array's values in place when contiguous, else a copy.
fn slice_of<'a, T: numpy::Element + Copy>(
    array: &'a PyReadonlyArray1<'_, T>,
    copy: &'a mut Vec<T>,
) -> &'a [T] {
    match array.as_slice() {
        Ok(s) => s,
        Err(_) => {
            *copy = array.as_array().to_vec();
            copy
        }
    }
}

#[pymethods]
impl DecisionInput {
    #[new]
    #[pyo3(signature = (
        *, account_id, account_kind, account_state, balance, reinvest_cash, peak, equity, portfolio_equity, symbol,
        sector, label, label_confidence, notes, today, weekday, entry_expiry, frozen_until, spot, iv, rate, days,
        high, low, close, protection_level, drawdown, vix, vix_multiplier, vix_state, system_state,
        orders_last_minute, earnings_in_week, group_symbols, book, column, trust, cuts_done, roll_available,
        chain_puts=Vec::new(), chain_calls=Vec::new(), held=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        account_id: String,
        account_kind: String,
        account_state: String,
        balance: f64,
        reinvest_cash: f64,
        peak: f64,
        equity: f64,
        portfolio_equity: f64,
        symbol: String,
        sector: String,
        label: String,
        label_confidence: f64,
        notes: Vec<String>,
        today: i64,
        weekday: u8,
        entry_expiry: i64,
        frozen_until: Option<i64>,
        spot: f64,
        iv: f64,
        rate: f64,
        days: PyReadonlyArray1<'_, i64>,
        high: PyReadonlyArray1<'_, f64>,
        low: PyReadonlyArray1<'_, f64>,
        close: PyReadonlyArray1<'_, f64>,
        protection_level: u8,
        drawdown: f64,
        vix: Option<f64>,
        vix_multiplier: f64,
        vix_state: String,
        system_state: String,
        orders_last_minute: u32,
        earnings_in_week: Option<bool>,
        group_symbols: Option<Vec<String>>,
        book: Vec<PyRef<'_, HeldPosition>>,
        column: usize,
        trust: PyRef<'_, TrustGate>,
        cuts_done: Vec<PyRef<'_, CutDone>>,
        roll_available: Option<bool>,
        chain_puts: Vec<PyRef<'_, ChainQuote>>,
        chain_calls: Vec<PyRef<'_, ChainQuote>>,
        held: Option<PyRef<'_, HeldBook>>,
    ) -> PyResult<Self> {
        let inner = flow::DecisionInput {
            account_id,
            account_kind,
            account_state,
            balance,
            reinvest_cash,
            peak,
            equity,
            portfolio_equity,
            symbol,
            sector,
            label,
            label_confidence,
            notes,
            today,
            weekday,
            entry_expiry,
            frozen_until,
            spot,
            iv,
            rate,
            days: Vec::new(),
            high: Vec::new(),
            low: Vec::new(),
            close: Vec::new(),
            protection_level,
            drawdown,
            vix,
            vix_multiplier,
            vix_state,
            system_state,
            orders_last_minute,
            earnings_in_week,
            group_symbols,
            // `book`'s positions; `held`'s (a book given column by column) follow them, kept where they are.
            book: book.iter().map(|h| h.inner.clone()).collect(),
            column,
            trust: trust.inner,
            cuts_done: cuts_done
                .iter()
                .map(|c| flow::CutDone {
                    key: c.key.clone(),
                    level: c.level,
                })
                .collect(),
            roll_available,
            chain_puts: quotes_of(&chain_puts),
            chain_calls: quotes_of(&chain_calls),
        };
        inner.validate().py_err(py)?;
        if let Some(h) = &held {
            flow::validate_book(&h.inner, inner.book.len()).py_err(py)?;
        }
        let (mut c0, mut c1, mut c2, mut c3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        flow::Bars {
            days: slice_of(&days, &mut c0),
            high: slice_of(&high, &mut c1),
            low: slice_of(&low, &mut c2),
            close: slice_of(&close, &mut c3),
        }
        .validate()
        .py_err(py)?;
        Ok(DecisionInput {
            inner,
            held: held.map(|h| h.into()),
            bars: BarArrays {
                days: days.as_unbound().clone_ref(py),
                high: high.as_unbound().clone_ref(py),
                low: low.as_unbound().clone_ref(py),
                close: close.as_unbound().clone_ref(py),
            },
        })
    }
}

/// An order the core proposes; `expiry` is a proleptic Gregorian ordinal (None for stock).
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct CoreOrder {
    kind: &'static str,
    side: &'static str,
    strike: f64,
    expiry: Option<i64>,
    contracts: u32,
    limit_price: f64,
    delta: f64,
    premium: f64,
    band_low: Option<f64>,
    band_high: Option<f64>,
}

impl CoreOrder {
    fn of(o: flow::Order) -> Self {
        CoreOrder {
            kind: o.kind,
            side: o.side,
            strike: o.strike,
            expiry: o.expiry,
            contracts: o.contracts,
            limit_price: o.limit_price,
            delta: o.delta,
            premium: o.premium,
            band_low: o.band.map(|b| b.0),
            band_high: o.band.map(|b| b.1),
        }
    }
}

/// The core's decision: action, order and its child orders, ES before and after, every rule's verdict, the
/// outcome and trust gating, and the explanation's parts.
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct CoreDecision {
    action: &'static str,
    order: Option<Py<CoreOrder>>,
    orders: Vec<Py<CoreOrder>>,
    /// The verdicts made as the caller's `rule_result` class, the orders as its `order` class (else None).
    results: Option<Py<PyTuple>>,
    made_order: Option<Py<PyAny>>,
    made_orders: Option<Py<PyTuple>>,
    es_before: f64,
    es_after: f64,
    compliance: Vec<Py<RuleVerdict>>,
    outcome: &'static str,
    requires_approval: bool,
    confidence: f64,
    trust_kind: &'static str,
    notes: Vec<String>,
    warnings: Vec<String>,
    week_type: Option<&'static str>,
    protocol_level: u8,
    position_id: Option<String>,
    account_state: String,
    counts_order: bool,
    freeze_until: Option<i64>,
    cut: Option<Py<CutDone>>,
    reducing: bool,
    rules_checked: bool,
    records: u32,
}

#[pymethods]
impl Decider {
    #[new]
    #[pyo3(signature = (
        *, tables, strikes, gen, rev, com, atr_period, atr_fallback_pct, protection_multipliers,
        drawdown_budget_k, es_budget_share, es_level, entry_max_dte, max_contracts_per_order, call_band,
        call_recovery_band, call_roll_down_band, covered_call_cap_share, roll_max_debit_share, level_atr_period,
        level_atr_fallback_share, rev_roll_excursion, take_profit, confidence, protection_cuts, light_vol_above,
        light_cut, emergency_close_count, cash_settled
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        tables: PyRef<'_, ProtocolTables>,
        strikes: PyRef<'_, PyStrikePicker>,
        gen: PyRef<'_, AccountRules>,
        rev: PyRef<'_, AccountRules>,
        com: PyRef<'_, AccountRules>,
        atr_period: usize,
        atr_fallback_pct: f64,
        protection_multipliers: Vec<f64>,
        drawdown_budget_k: f64,
        es_budget_share: f64,
        es_level: f64,
        entry_max_dte: i64,
        max_contracts_per_order: u32,
        call_band: PyRef<'_, Band>,
        call_recovery_band: PyRef<'_, Band>,
        call_roll_down_band: PyRef<'_, Band>,
        covered_call_cap_share: f64,
        roll_max_debit_share: f64,
        level_atr_period: usize,
        level_atr_fallback_share: f64,
        rev_roll_excursion: f64,
        take_profit: PyRef<'_, TakeProfit>,
        confidence: PyRef<'_, Confidences>,
        protection_cuts: Vec<f64>,
        light_vol_above: f64,
        light_cut: f64,
        emergency_close_count: usize,
        cash_settled: Vec<String>,
    ) -> PyResult<Self> {
        let multipliers: [f64; 5] = protection_multipliers
            .try_into()
            .map_err(|v: Vec<f64>| {
                CoreError::invalid(
                    "protection_multipliers",
                    format!("must have 5 values, got {}", v.len()),
                )
            })
            .py_err(py)?;
        let cuts: [f64; 5] = protection_cuts
            .try_into()
            .map_err(|v: Vec<f64>| {
                CoreError::invalid(
                    "protection_cuts",
                    format!("must have 5 values, got {}", v.len()),
                )
            })
            .py_err(py)?;
        let inner = flow::Decider {
            accounts: [gen.inner.clone(), rev.inner.clone(), com.inner.clone()],
            tables: tables.inner.clone(),
            strikes: strikes.inner.clone(),
            atr_period,
            atr_fallback_pct,
            protection_multipliers: multipliers,
            drawdown_budget_k,
            es_budget_share,
            es_level,
            entry_max_dte,
            max_contracts_per_order,
            call_band: (call_band.low, call_band.high),
            call_recovery_band: (call_recovery_band.low, call_recovery_band.high),
            call_roll_down_band: (call_roll_down_band.low, call_roll_down_band.high),
            covered_call_cap_share,
            roll_max_debit_share,
            level_atr_period,
            level_atr_fallback_share,
            rev_roll_excursion,
            take_profit: [take_profit.gen, take_profit.rev, take_profit.com],
            confidence: confidence.inner,
            protection_cuts: cuts,
            light_vol_above,
            light_cut,
            emergency_close_count,
            cash_settled,
        };
        inner.validate().py_err(py)?;
        Ok(Decider { inner })
    }

    /// The decision for the input over the rule set in force. `scenarios` gives the day's ScenarioSet, called
    /// only when the decision values an order; `group` (optional) gives the tail group when the input's
    /// `group_symbols` is None, called only when a rule context is built. An error either raises is raised as it is.
    ///
    /// With `rule_result` (a frozen dataclass of fields code, severity, passed, message) the verdicts come back
    /// made as its instances in `results` (and `compliance` is empty); with `order` (a frozen dataclass of fields
    /// kind, side, strike, expiry, contracts, limit_price, delta, premium, band) the orders come back made as its
    /// instances in `made_order` and `made_orders` (expiry a `datetime.date`, band a pair or None) and `order` and
    /// `orders` are empty: each instance is the one its class would build from those values.
    #[pyo3(signature = (input, rules, *, scenarios, group=None, rule_result=None, order=None))]
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        py: Python<'_>,
        input: PyRef<'_, DecisionInput>,
        rules: PyRef<'_, super::protocol::RuleSet>,
        scenarios: Bound<'_, PyAny>,
        group: Option<Bound<'_, PyAny>>,
        rule_result: Option<Bound<'_, PyAny>>,
        order: Option<Bound<'_, PyAny>>,
    ) -> PyResult<CoreDecision> {
        let source = LazyScenarios {
            call: scenarios,
            built: std::cell::OnceCell::new(),
            group,
            group_built: std::cell::OnceCell::new(),
            failed: std::cell::RefCell::new(None),
        };
        // The input was validated when it was built (a frozen class: it cannot have changed since); the bars' arrays
        // are read in place and checked again, as their owner may have written to them since.
        let arrays = &input.bars;
        let (days, high, low, close) = (
            readable(py, &arrays.days, "days")?,
            readable(py, &arrays.high, "high")?,
            readable(py, &arrays.low, "low")?,
            readable(py, &arrays.close, "close")?,
        );
        let (mut c0, mut c1, mut c2, mut c3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let bars = flow::Bars {
            days: slice_of(&days, &mut c0),
            high: slice_of(&high, &mut c1),
            low: slice_of(&low, &mut c2),
            close: slice_of(&close, &mut c3),
        };
        bars.validate().py_err(py)?;
        // The whole book: the input's positions, then its `HeldBook`'s, borrowed (joined only when both are given).
        let joined: Vec<flow::Holding>;
        let book: &[flow::Holding] = match &input.held {
            Some(h) if input.inner.book.is_empty() => &h.get().inner,
            Some(h) => {
                joined = input
                    .inner
                    .book
                    .iter()
                    .chain(&h.get().inner)
                    .cloned()
                    .collect();
                &joined
            }
            None => &input.inner.book,
        };
        let decided =
            flow::decide_over(&self.inner, &input.inner, bars, book, &source, &rules.inner);
        if let Some(err) = source.failed.borrow_mut().take() {
            return Err(err);
        }
        let d = decided.py_err(py)?;
        let (compliance, results) = match &rule_result {
            None => (
                d.compliance
                    .into_iter()
                    .map(|r| {
                        Py::new(
                            py,
                            RuleVerdict {
                                code: r.code,
                                severity: r.severity.name(),
                                passed: r.passed,
                                message: r.message,
                            },
                        )
                    })
                    .collect::<PyResult<Vec<_>>>()?,
                None,
            ),
            Some(cls) => {
                let made = d
                    .compliance
                    .into_iter()
                    .map(|r| {
                        made_instance(
                            cls,
                            &[
                                (intern!(py, "code"), r.code.into_pyobject(py)?.into_any()),
                                (
                                    intern!(py, "severity"),
                                    r.severity.name().into_pyobject(py)?.into_any(),
                                ),
                                (
                                    intern!(py, "passed"),
                                    PyBool::new(py, r.passed).to_owned().into_any(),
                                ),
                                (
                                    intern!(py, "message"),
                                    r.message.into_pyobject(py)?.into_any(),
                                ),
                            ],
                        )
                    })
                    .collect::<PyResult<Vec<_>>>()?;
                (Vec::new(), Some(PyTuple::new(py, made)?.unbind()))
            }
        };
        let (order, orders, made_order, made_orders) = match &order {
            None => (
                d.order.map(|o| Py::new(py, CoreOrder::of(o))).transpose()?,
                d.orders
                    .into_iter()
                    .map(|o| Py::new(py, CoreOrder::of(o)))
                    .collect::<PyResult<Vec<_>>>()?,
                None,
                None,
            ),
            Some(cls) => {
                let one = d.order.map(|o| made_order_of(cls, o)).transpose()?;
                let all = d
                    .orders
                    .into_iter()
                    .map(|o| made_order_of(cls, o))
                    .collect::<PyResult<Vec<_>>>()?;
                (
                    None,
                    Vec::new(),
                    one.map(Bound::unbind),
                    Some(PyTuple::new(py, all)?.unbind()),
                )
            }
        };
        Ok(CoreDecision {
            action: d.action,
            order,
            orders,
            results,
            made_order,
            made_orders,
            es_before: d.es_before,
            es_after: d.es_after,
            compliance,
            outcome: d.outcome,
            requires_approval: d.requires_approval,
            confidence: d.confidence,
            trust_kind: d.trust_kind,
            notes: d.notes,
            warnings: d.warnings,
            week_type: d.week_type,
            protocol_level: d.protocol_level,
            position_id: d.position_id,
            account_state: d.account_state,
            counts_order: d.counts_order,
            freeze_until: d.freeze_until,
            cut: d
                .cut
                .map(|c| {
                    Py::new(
                        py,
                        CutDone {
                            key: c.key,
                            level: c.level,
                        },
                    )
                })
                .transpose()?,
            reducing: d.reducing,
            rules_checked: d.rules_checked,
            records: d.records,
        })
    }
}

/// A delta band in whole numbers (40 = 0.40).
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct Band {
    low: f64,
    high: f64,
}

#[pymethods]
impl Band {
    #[new]
    #[pyo3(signature = (*, low, high))]
    fn new(py: Python<'_>, low: f64, high: f64) -> PyResult<Self> {
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return Err(CoreError::invalid(
                "band",
                format!("must be finite with low <= high, got {low}-{high}"),
            ))
            .py_err(py);
        }
        Ok(Band { low, high })
    }
}

/// The take-profit share of the credit per account type.
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct TakeProfit {
    gen: f64,
    rev: f64,
    com: f64,
}

#[pymethods]
impl TakeProfit {
    #[new]
    #[pyo3(signature = (*, gen, rev, com))]
    fn new(gen: f64, rev: f64, com: f64) -> Self {
        TakeProfit { gen, rev, com }
    }
}

/// The confidence of decisions that are not entries (config `decision_confidence`).
#[pyclass(frozen, module = "allsuse._core")]
pub struct Confidences {
    inner: flow::Confidences,
}

#[pymethods]
impl Confidences {
    #[new]
    #[pyo3(signature = (*, hold_normal, hold_enhanced, close, roll))]
    fn new(hold_normal: f64, hold_enhanced: f64, close: f64, roll: f64) -> Self {
        Confidences {
            inner: flow::Confidences {
                hold_normal,
                hold_enhanced,
                close,
                roll,
            },
        }
    }
}

/// An instance of the frozen dataclass `cls` with its fields set to `items` (in field order), as
/// `allsuse._frozen.made` builds it: `object.__new__(cls)` and the fields written to its `__dict__`.
fn made_instance<'py>(
    cls: &Bound<'py, PyAny>,
    items: &[(&Bound<'py, PyString>, Bound<'py, PyAny>)],
) -> PyResult<Bound<'py, PyAny>> {
    static NEW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = cls.py();
    let new = NEW.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("builtins")?
            .getattr("object")?
            .getattr("__new__")?
            .unbind())
    })?;
    let instance = new.bind(py).call1((cls,))?;
    let fields = instance
        .getattr(intern!(py, "__dict__"))?
        .cast_into::<PyDict>()?;
    for (name, value) in items {
        fields.set_item(name, value)?;
    }
    Ok(instance)
}

/// A core order as an instance of the engine's `Order` class (expiry a date, band a pair or None).
fn made_order_of<'py>(cls: &Bound<'py, PyAny>, o: flow::Order) -> PyResult<Bound<'py, PyAny>> {
    static DATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = cls.py();
    let expiry = match o.expiry {
        Some(ordinal) => DATE
            .import(py, "datetime", "date")?
            .call_method1(intern!(py, "fromordinal"), (ordinal,))?,
        None => py.None().into_bound(py),
    };
    let band = match o.band {
        Some((low, high)) => PyTuple::new(py, [low, high])?.into_any(),
        None => py.None().into_bound(py),
    };
    made_instance(
        cls,
        &[
            (intern!(py, "kind"), o.kind.into_pyobject(py)?.into_any()),
            (intern!(py, "side"), o.side.into_pyobject(py)?.into_any()),
            (
                intern!(py, "strike"),
                o.strike.into_pyobject(py)?.into_any(),
            ),
            (intern!(py, "expiry"), expiry),
            (
                intern!(py, "contracts"),
                o.contracts.into_pyobject(py)?.into_any(),
            ),
            (
                intern!(py, "limit_price"),
                o.limit_price.into_pyobject(py)?.into_any(),
            ),
            (intern!(py, "delta"), o.delta.into_pyobject(py)?.into_any()),
            (
                intern!(py, "premium"),
                o.premium.into_pyobject(py)?.into_any(),
            ),
            (intern!(py, "band"), band),
        ],
    )
}

/// The day's scenarios from the engine, asked for once and only when an order is valued; likewise the tail group,
/// asked for once and only when a rule context is built.
struct LazyScenarios<'py> {
    call: Bound<'py, PyAny>,
    built: std::cell::OnceCell<Py<PyScenarioSet>>,
    group: Option<Bound<'py, PyAny>>,
    group_built: std::cell::OnceCell<Vec<String>>,
    failed: std::cell::RefCell<Option<PyErr>>,
}

impl flow::ScenarioSource for LazyScenarios<'_> {
    fn scenarios(&self) -> CoreResult<&crate::protocol::decide::scenarios::Scenarios> {
        if self.built.get().is_none() {
            let made = self
                .call
                .call0()
                .and_then(|s| s.extract::<Py<PyScenarioSet>>().map_err(PyErr::from));
            match made {
                Ok(s) => {
                    let _ = self.built.set(s);
                }
                Err(e) => {
                    *self.failed.borrow_mut() = Some(e);
                    return Err(CoreError::invalid(
                        "scenarios",
                        "the market gave no scenarios",
                    ));
                }
            }
        }
        self.built
            .get()
            .map(|s| &s.get().inner)
            .ok_or_else(|| CoreError::invalid("scenarios", "the market gave no scenarios"))
    }

    fn group_symbols(&self) -> CoreResult<Option<&[String]>> {
        let Some(call) = &self.group else {
            return Ok(None);
        };
        if self.group_built.get().is_none() {
            match call.call0().and_then(|g| g.extract::<Vec<String>>()) {
                Ok(g) => {
                    let _ = self.group_built.set(g);
                }
                Err(e) => {
                    *self.failed.borrow_mut() = Some(e);
                    return Err(CoreError::invalid(
                        "group_symbols",
                        "the tail group could not be measured",
                    ));
                }
            }
        }
        Ok(self.group_built.get().map(Vec::as_slice))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Band>()?;
    m.add_class::<TakeProfit>()?;
    m.add_class::<Confidences>()?;
    m.add_class::<CutDone>()?;
    m.add_class::<ChainQuote>()?;
    m.add_class::<EntryRule>()?;
    m.add_class::<AccountRules>()?;
    m.add_class::<Decider>()?;
    m.add_class::<HeldPosition>()?;
    m.add_class::<HeldBook>()?;
    m.add_class::<PositionBook>()?;
    m.add_class::<TrustGate>()?;
    m.add_class::<DecisionInput>()?;
    m.add_class::<CoreOrder>()?;
    m.add_class::<CoreDecision>()?;
    Ok(())
}
