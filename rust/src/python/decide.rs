//! Python bindings of the decision's typed inputs: the compiled protocol thresholds (`ProtocolTables`, built once
//! per engine from config/protocol.yaml) and the rule context (`RuleContext`, one typed object per order instead of
//! a dict serialised to JSON). Every reading comes back as a small class with named fields.

use pyo3::prelude::*;

use super::errors::IntoPyResult;
use crate::error::CoreError;
use crate::protocol::decide::Tables;
use crate::protocol::drawdown::{ProtectionState, ProtectionTable, VixBreakers};
use crate::protocol::level::{AtrRegimeTable, LevelThresholds};
use crate::protocol::week_type::{self, WeekTypeBounds};
use crate::rules::{Chain, OrderContext};

fn fixed<const N: usize>(py: Python<'_>, field: &str, values: Vec<f64>) -> PyResult<[f64; N]> {
    let n = values.len();
    <[f64; N]>::try_from(values)
        .map_err(|_| CoreError::invalid(field, format!("must have {N} numbers, got {n}")))
        .py_err(py)
}

/// The protocol's thresholds, validated once when built; the engine keeps one per configuration.
#[pyclass(frozen, module = "allsuse._core")]
pub struct ProtocolTables {
    pub(crate) inner: Tables,
}

/// A classified week: code (e.g. "P-EW"), name, action, the expected week return range and the confidence.
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct WeekClass {
    code: &'static str,
    name: &'static str,
    action: &'static str,
    expected_low_pct: f64,
    expected_high_pct: f64,
    confidence: f64,
}

/// A position's protocol level (0..3), its excursion in ATRs and its loss as a share of equity.
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct LevelRead {
    level: u8,
    excursion: f64,
    loss_share: f64,
}

/// The ATR regime (very_low .. very_high) and its size multiplier.
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct RegimeRead {
    regime: &'static str,
    multiplier: f64,
}

/// An account's drawdown protection after a step: level 0 none .. 4 emergency, the trough drawdown, the day of
/// the last observation and the level changes made that day.
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct ProtectionStep {
    level: u8,
    trough: f64,
    day: i64,
    adjustments_today: u32,
}

/// The VIX breaker reading: size multiplier, whether hedged, and the trading state it implies.
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct VixRead {
    multiplier: f64,
    hedged: bool,
    state: &'static str,
}

#[pymethods]
impl ProtocolTables {
    #[new]
    #[pyo3(signature = (
        *, put_worthless_min, put_assigned_min, deep_drawdown_below, call_strong_min, call_appreciation_min,
        call_premium_min, call_roll_min, confidence_margin, confidence_high, confidence_low,
        level_excursion, level_loss, atr_fallback_share, regime_upper_pct, regime_size_multiplier,
        protection_thresholds, protection_multipliers, step_down_recovery, off_recovery, max_adjustments_per_day,
        vix_hedged_at, vix_hedged_multiplier, vix_reducing_at, vix_halted_at
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        put_worthless_min: f64,
        put_assigned_min: f64,
        deep_drawdown_below: f64,
        call_strong_min: f64,
        call_appreciation_min: f64,
        call_premium_min: f64,
        call_roll_min: f64,
        confidence_margin: f64,
        confidence_high: f64,
        confidence_low: f64,
        level_excursion: Vec<f64>,
        level_loss: Vec<f64>,
        atr_fallback_share: f64,
        regime_upper_pct: Vec<f64>,
        regime_size_multiplier: Vec<f64>,
        protection_thresholds: Vec<f64>,
        protection_multipliers: Vec<f64>,
        step_down_recovery: f64,
        off_recovery: f64,
        max_adjustments_per_day: u32,
        vix_hedged_at: f64,
        vix_hedged_multiplier: f64,
        vix_reducing_at: f64,
        vix_halted_at: f64,
    ) -> PyResult<Self> {
        let week = WeekTypeBounds {
            put_worthless_min,
            put_assigned_min,
            deep_drawdown_below,
            call_strong_min,
            call_appreciation_min,
            call_premium_min,
            call_roll_min,
            confidence_margin,
            confidence_high,
            confidence_low,
        };
        let level = LevelThresholds {
            excursion: fixed(py, "level_excursion", level_excursion)?,
            loss: fixed(py, "level_loss", level_loss)?,
            atr_fallback_share,
        };
        let regime = AtrRegimeTable {
            upper_pct: fixed(py, "regime_upper_pct", regime_upper_pct)?,
            size_multiplier: fixed(py, "regime_size_multiplier", regime_size_multiplier)?,
        };
        let protection = ProtectionTable {
            thresholds: fixed(py, "protection_thresholds", protection_thresholds)?,
            multipliers: fixed(py, "protection_multipliers", protection_multipliers)?,
            step_down_recovery,
            off_recovery,
            max_adjustments_per_day,
        };
        let vix = VixBreakers {
            hedged_at: vix_hedged_at,
            hedged_multiplier: vix_hedged_multiplier,
            reducing_at: vix_reducing_at,
            halted_at: vix_halted_at,
        };
        Ok(ProtocolTables {
            inner: Tables::compile(week, level, regime, protection, vix).py_err(py)?,
        })
    }

    /// The week type of (position, move in percent, roll availability).
    fn classify_week(
        &self,
        py: Python<'_>,
        position: &str,
        move_pct: f64,
        roll_available: bool,
    ) -> PyResult<WeekClass> {
        let pos = week_type::Position::parse(position).py_err(py)?;
        let c = self
            .inner
            .classify_week(pos, move_pct, roll_available)
            .py_err(py)?;
        let (lo, hi) = c.week_type.expected_return_pct();
        Ok(WeekClass {
            code: c.week_type.code(),
            name: c.week_type.name(),
            action: c.week_type.action(),
            expected_low_pct: lo,
            expected_high_pct: hi,
            confidence: c.confidence,
        })
    }

    /// The protocol level of a position.
    #[pyo3(signature = (reference, spot, atr, loss, equity))]
    fn protocol_level(
        &self,
        py: Python<'_>,
        reference: f64,
        spot: f64,
        atr: Option<f64>,
        loss: f64,
        equity: f64,
    ) -> PyResult<LevelRead> {
        let r = self
            .inner
            .protocol_level(reference, spot, atr, loss, equity)
            .py_err(py)?;
        Ok(LevelRead {
            level: r.level,
            excursion: r.excursion,
            loss_share: r.loss_share,
        })
    }

    /// The ATR regime of ATR as a percent of spot.
    fn atr_regime(&self, py: Python<'_>, atr_pct: f64) -> PyResult<RegimeRead> {
        let (regime, multiplier) = self.inner.atr_regime(atr_pct).py_err(py)?;
        Ok(RegimeRead {
            regime: regime.name(),
            multiplier,
        })
    }

    /// One day's step of drawdown protection from its state (level, trough, day, adjustments_today).
    #[allow(clippy::too_many_arguments)]
    fn step_protection(
        &self,
        py: Python<'_>,
        level: u8,
        trough: f64,
        day: i64,
        adjustments_today: u32,
        drawdown: f64,
        today: i64,
    ) -> PyResult<ProtectionStep> {
        let state = ProtectionState {
            level,
            trough,
            day,
            adjustments_today,
        };
        let n = self
            .inner
            .step_protection(state, drawdown, today)
            .py_err(py)?;
        Ok(ProtectionStep {
            level: n.level,
            trough: n.trough,
            day: n.day,
            adjustments_today: n.adjustments_today,
        })
    }

    /// The new-exposure multiplier of a protection level.
    fn protection_multiplier(&self, py: Python<'_>, level: u8) -> PyResult<f64> {
        self.inner.protection_multiplier(level).py_err(py)
    }

    /// The VIX breaker reading of a VIX value.
    fn vix_breaker(&self, py: Python<'_>, vix: f64) -> PyResult<VixRead> {
        let r = self.inner.vix_breaker(vix).py_err(py)?;
        Ok(VixRead {
            multiplier: r.multiplier,
            hedged: r.hedged,
            state: r.state.name(),
        })
    }
}

/// What the compliance rules look at for one order (PROTOCOL section 7), built by the engine with named, typed
/// fields and validated on construction (a non-finite number or unknown kind is refused, naming the field).
#[pyclass(frozen, module = "allsuse._core")]
pub struct RuleContext {
    pub(crate) inner: OrderContext,
}

#[pymethods]
impl RuleContext {
    #[new]
    #[pyo3(signature = (
        *, kind, account_id=String::new(), account_type=String::new(), label=String::new(), symbol=String::new(),
        sector=String::new(), delta=None, band_low=None, band_high=None, dte=None, weekday=None,
        entry_days=Vec::new(), allowed_symbols=Vec::new(), strike=None, contracts=None, multiplier=None,
        free_cash=None, notional=None, size_cap=None, account_equity=None, symbol_exposure_after=None,
        portfolio_equity=None, sector_exposure_after=None, es_after=None, account_state=String::new(),
        system_state=String::new(), vix_state=String::new(), vix=None, reduces_exposure=false,
        chain_open_interest=None, chain_volume=None, chain_bid=None, chain_ask=None, limit_price=None, mid=None,
        orders_last_minute=None, idempotency_seen=false, earnings_in_week=None, withdrawal_amount=None,
        option_kind=None, group_symbols=Vec::new(), group_exposure_after=None, max_symbol_weight=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        kind: String,
        account_id: String,
        account_type: String,
        label: String,
        symbol: String,
        sector: String,
        delta: Option<f64>,
        band_low: Option<f64>,
        band_high: Option<f64>,
        dte: Option<f64>,
        weekday: Option<u8>,
        entry_days: Vec<u8>,
        allowed_symbols: Vec<String>,
        strike: Option<f64>,
        contracts: Option<f64>,
        multiplier: Option<f64>,
        free_cash: Option<f64>,
        notional: Option<f64>,
        size_cap: Option<f64>,
        account_equity: Option<f64>,
        symbol_exposure_after: Option<f64>,
        portfolio_equity: Option<f64>,
        sector_exposure_after: Option<f64>,
        es_after: Option<f64>,
        account_state: String,
        system_state: String,
        vix_state: String,
        vix: Option<f64>,
        reduces_exposure: bool,
        chain_open_interest: Option<f64>,
        chain_volume: Option<f64>,
        chain_bid: Option<f64>,
        chain_ask: Option<f64>,
        limit_price: Option<f64>,
        mid: Option<f64>,
        orders_last_minute: Option<f64>,
        idempotency_seen: bool,
        earnings_in_week: Option<bool>,
        withdrawal_amount: Option<f64>,
        option_kind: Option<String>,
        group_symbols: Vec<String>,
        group_exposure_after: Option<f64>,
        max_symbol_weight: Option<f64>,
    ) -> PyResult<Self> {
        let chain = match (chain_open_interest, chain_volume, chain_bid, chain_ask) {
            (Some(open_interest), Some(volume), Some(bid), Some(ask)) => Some(Chain {
                open_interest,
                volume,
                bid,
                ask,
            }),
            (None, None, None, None) => None,
            _ => return Err(CoreError::invalid(
                "chain",
                "give all of chain_open_interest, chain_volume, chain_bid and chain_ask, or none",
            ))
            .py_err(py),
        };
        let inner = OrderContext {
            kind,
            account_id,
            account_type,
            label,
            symbol,
            sector,
            delta,
            band_low,
            band_high,
            dte,
            weekday,
            entry_days,
            allowed_symbols,
            strike,
            contracts,
            multiplier,
            free_cash,
            notional,
            size_cap,
            account_equity,
            symbol_exposure_after,
            portfolio_equity,
            sector_exposure_after,
            es_after,
            account_state,
            system_state,
            vix_state,
            vix,
            reduces_exposure,
            chain,
            limit_price,
            mid,
            orders_last_minute,
            idempotency_seen,
            earnings_in_week,
            withdrawal_amount,
            option_kind,
            group_symbols,
            group_exposure_after,
            max_symbol_weight,
        };
        inner.validate().py_err(py)?;
        Ok(RuleContext { inner })
    }

    /// The decision kind: entry, roll, close, reduce, assignment or withdrawal.
    #[getter]
    fn kind(&self) -> &str {
        &self.inner.kind
    }

    /// The ES after the order, when one was measured.
    #[getter]
    fn es_after(&self) -> Option<f64> {
        self.inner.es_after
    }
}

/// One rule's verdict: code, severity (CRITICAL, HIGH, MEDIUM, LOW), whether it passed, and `CODE: key=value ...`.
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct RuleVerdict {
    pub(crate) code: String,
    pub(crate) severity: &'static str,
    pub(crate) passed: bool,
    pub(crate) message: String,
}

/// Every applicable rule's verdict and the outcome they imply.
#[pyclass(frozen, get_all, module = "allsuse._core")]
pub struct RuleCheck {
    pub(crate) results: Vec<Py<RuleVerdict>>,
    pub(crate) outcome: &'static str,
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ProtocolTables>()?;
    m.add_class::<WeekClass>()?;
    m.add_class::<LevelRead>()?;
    m.add_class::<RegimeRead>()?;
    m.add_class::<ProtectionStep>()?;
    m.add_class::<VixRead>()?;
    m.add_class::<RuleContext>()?;
    m.add_class::<RuleVerdict>()?;
    m.add_class::<RuleCheck>()?;
    m.add_class::<LabelRules>()?;
    m.add_class::<LabelRead>()?;
    m.add_class::<PyPutBudget>()?;
    m.add_class::<PyEsFit>()?;
    m.add_class::<PyStrikePicker>()?;
    m.add_class::<PyStrikePick>()?;
    m.add_class::<PyScenarioSet>()?;
    m.add_function(wrap_pyfunction!(tail_group, m)?)?;
    m.add_function(wrap_pyfunction!(equity_at_market, m)?)?;
    m.add_class::<PyEquities>()?;
    m.add_function(wrap_pyfunction!(put_budget, m)?)?;
    m.add_function(wrap_pyfunction!(fit_to_es_budget, m)?)?;
    Ok(())
}

/// config/protocol.yaml `market_label`, compiled once per configuration.
#[pyclass(frozen, module = "allsuse._core")]
pub struct LabelRules {
    pub(crate) inner: crate::protocol::decide::label::LabelTable,
}

/// The market label of the last bar and every reading behind it (confidence unrounded); a window's `LabelFact` is
/// one too.
#[pyclass(frozen, get_all, subclass, module = "allsuse._core")]
pub struct LabelRead {
    label: &'static str,
    confidence: f64,
    green: i64,
    red: i64,
    chop: i64,
    vol_regime: &'static str,
    trend: &'static str,
    trend_strength: f64,
    trend_grade: &'static str,
    rsi: f64,
    roc_pct: f64,
    momentum: &'static str,
    volume_ratio: f64,
}

#[pymethods]
impl LabelRules {
    #[new]
    #[pyo3(signature = (
        *, iv_low, iv_high, trend_weak, trend_strong, trend_window, rsi_period, rsi_bull, rsi_bear, roc_period,
        roc_bull, roc_bear, volume_window, volume_spike, win_min_score, score_vol_low_green, score_vol_high_red,
        score_vol_chop, score_trend, score_trend_chop, score_momentum, score_momentum_chop, score_volume,
        confidence_base, confidence_strong_trend, confidence_moderate_trend, confidence_clear_vol,
        confidence_momentum_agrees, confidence_cap
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        iv_low: f64,
        iv_high: f64,
        trend_weak: f64,
        trend_strong: f64,
        trend_window: usize,
        rsi_period: usize,
        rsi_bull: f64,
        rsi_bear: f64,
        roc_period: usize,
        roc_bull: f64,
        roc_bear: f64,
        volume_window: usize,
        volume_spike: f64,
        win_min_score: f64,
        score_vol_low_green: i64,
        score_vol_high_red: i64,
        score_vol_chop: i64,
        score_trend: i64,
        score_trend_chop: i64,
        score_momentum: i64,
        score_momentum_chop: i64,
        score_volume: i64,
        confidence_base: f64,
        confidence_strong_trend: f64,
        confidence_moderate_trend: f64,
        confidence_clear_vol: f64,
        confidence_momentum_agrees: f64,
        confidence_cap: f64,
    ) -> PyResult<Self> {
        use crate::protocol::decide::label::{LabelConfidence, LabelScores, LabelTable};
        let inner = LabelTable {
            iv_low,
            iv_high,
            trend_weak,
            trend_strong,
            trend_window,
            rsi_period,
            rsi_bull,
            rsi_bear,
            roc_period,
            roc_bull,
            roc_bear,
            volume_window,
            volume_spike,
            win_min_score,
            scores: LabelScores {
                vol_low_green: score_vol_low_green,
                vol_high_red: score_vol_high_red,
                vol_chop: score_vol_chop,
                trend: score_trend,
                trend_chop: score_trend_chop,
                momentum: score_momentum,
                momentum_chop: score_momentum_chop,
                volume: score_volume,
            },
            confidence: LabelConfidence {
                base: confidence_base,
                strong_trend: confidence_strong_trend,
                moderate_trend: confidence_moderate_trend,
                clear_vol: confidence_clear_vol,
                momentum_agrees: confidence_momentum_agrees,
                cap: confidence_cap,
            },
        };
        inner.validate().py_err(py)?;
        Ok(LabelRules { inner })
    }

    /// Labels the last bar of `close` with implied vol `iv` (and the volumes, when given).
    #[pyo3(signature = (close, iv, volume=None))]
    fn label<'py>(
        &self,
        py: Python<'py>,
        close: numpy::PyReadonlyArray1<'py, f64>,
        iv: f64,
        volume: Option<numpy::PyReadonlyArray1<'py, f64>>,
    ) -> PyResult<LabelRead> {
        let close = close
            .as_slice()
            .map_err(|_| CoreError::invalid("close", "must be a contiguous float64 array"))
            .py_err(py)?;
        let volume = match &volume {
            Some(v) => Some(
                v.as_slice()
                    .map_err(|_| CoreError::invalid("volume", "must be a contiguous float64 array"))
                    .py_err(py)?,
            ),
            None => None,
        };
        let r = crate::protocol::decide::label::market_label(close, iv, volume, &self.inner)
            .py_err(py)?;
        Ok(r.into())
    }
}

impl LabelRead {
    /// The fields of a `MarketLabel` of this reading (`scores` a new dict) read with `iv`.
    pub(crate) fn fields<'py>(
        &self,
        py: Python<'py>,
        iv: f64,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        use pyo3::intern;
        use pyo3::types::PyDict;
        let scores = PyDict::new(py);
        scores.set_item(intern!(py, "green"), self.green)?;
        scores.set_item(intern!(py, "red"), self.red)?;
        scores.set_item(intern!(py, "chop"), self.chop)?;
        let d = PyDict::new(py);
        d.set_item(intern!(py, "label"), self.label)?;
        d.set_item(intern!(py, "confidence"), self.confidence)?;
        d.set_item(intern!(py, "scores"), scores)?;
        d.set_item(intern!(py, "iv"), iv)?;
        d.set_item(intern!(py, "vol_regime"), self.vol_regime)?;
        d.set_item(intern!(py, "trend"), self.trend)?;
        d.set_item(intern!(py, "trend_strength"), self.trend_strength)?;
        d.set_item(intern!(py, "trend_grade"), self.trend_grade)?;
        d.set_item(intern!(py, "rsi"), self.rsi)?;
        d.set_item(intern!(py, "roc_pct"), self.roc_pct)?;
        d.set_item(intern!(py, "momentum"), self.momentum)?;
        d.set_item(intern!(py, "volume_ratio"), self.volume_ratio)?;
        Ok(d)
    }
}

impl From<crate::protocol::decide::label::LabelReading> for LabelRead {
    fn from(r: crate::protocol::decide::label::LabelReading) -> Self {
        LabelRead {
            label: r.label.name(),
            confidence: r.confidence,
            green: r.scores[0],
            red: r.scores[1],
            chop: r.scores[2],
            vol_regime: r.vol_regime,
            trend: r.trend,
            trend_strength: r.trend_strength,
            trend_grade: r.trend_grade,
            rsi: r.rsi,
            roc_pct: r.roc_pct,
            momentum: r.momentum,
            volume_ratio: r.volume_ratio,
        }
    }
}

/// A put's size: budget and binding, contracts before and after the R07 room, and the size cap R06 checks.
#[pyclass(frozen, get_all, name = "PutBudget", module = "allsuse._core")]
pub struct PyPutBudget {
    budget: f64,
    binding: &'static str,
    sized_contracts: u32,
    room: u32,
    contracts: u32,
    size_cap: f64,
}

/// An order fitted to the ES budget.
#[pyclass(frozen, get_all, name = "EsFit", module = "allsuse._core")]
pub struct PyEsFit {
    contracts: u32,
    es_before: f64,
    es_after: f64,
    over_budget: Option<f64>,
}

/// The put budget of section 8 within the room R07 leaves.
#[pyfunction]
#[pyo3(signature = (
    *, equity, free_cash, strike, target_share, max_symbol_weight, existing_exposure,
    m_label, m_atr, m_drawdown, m_vix, allowed_exposure, multiplier
))]
#[allow(clippy::too_many_arguments)]
fn put_budget(
    py: Python<'_>,
    equity: f64,
    free_cash: f64,
    strike: f64,
    target_share: f64,
    max_symbol_weight: f64,
    existing_exposure: f64,
    m_label: f64,
    m_atr: f64,
    m_drawdown: f64,
    m_vix: f64,
    allowed_exposure: f64,
    multiplier: f64,
) -> PyResult<PyPutBudget> {
    let p = crate::protocol::sizing::PutSizing {
        equity,
        free_cash,
        strike,
        target_share,
        max_symbol_weight,
        existing_exposure,
        m_label,
        m_atr,
        m_drawdown,
        m_vix,
        allowed_exposure,
        multiplier,
    };
    let b = crate::protocol::decide::sizing::put_budget(&p).py_err(py)?;
    Ok(PyPutBudget {
        budget: b.budget,
        binding: b.binding.name(),
        sized_contracts: b.sized_contracts,
        room: b.room,
        contracts: b.contracts,
        size_cap: b.size_cap,
    })
}

/// Fits an order to the ES budget from the held book's P&L per scenario and one contract's.
#[pyfunction]
#[pyo3(signature = (base, unit, *, held, contracts, resize, limit, level))]
#[allow(clippy::too_many_arguments)]
fn fit_to_es_budget<'py>(
    py: Python<'py>,
    base: numpy::PyReadonlyArray1<'py, f64>,
    unit: numpy::PyReadonlyArray1<'py, f64>,
    held: bool,
    contracts: u32,
    resize: bool,
    limit: f64,
    level: f64,
) -> PyResult<PyEsFit> {
    let base = base
        .as_slice()
        .map_err(|_| CoreError::invalid("base", "must be a contiguous float64 array"))
        .py_err(py)?;
    let unit = unit
        .as_slice()
        .map_err(|_| CoreError::invalid("unit", "must be a contiguous float64 array"))
        .py_err(py)?;
    let f = crate::protocol::decide::sizing::fit_to_es_budget(
        base, unit, held, contracts, resize, limit, level,
    )
    .py_err(py)?;
    Ok(PyEsFit {
        contracts: f.contracts,
        es_before: f.es_before,
        es_after: f.es_after,
        over_budget: f.over_budget,
    })
}

/// Section 9's synthetic strike grid, validated once per configuration, picking an order's strike and its mid.
#[pyclass(frozen, name = "StrikePicker", module = "allsuse._core")]
pub struct PyStrikePicker {
    pub(crate) inner: crate::protocol::decide::strike::StrikePicker,
}

/// A picked strike: the strike, its absolute delta in whole numbers (40 = 0.40) and its mid per share.
#[pyclass(frozen, get_all, name = "StrikePick", module = "allsuse._core")]
pub struct PyStrikePick {
    strike: f64,
    abs_delta: f64,
    mid: f64,
}

#[pymethods]
impl PyStrikePicker {
    /// Tiers as two lists of the same length: each tier's upper bound (the last infinite) and its step.
    #[new]
    #[pyo3(signature = (*, below, step))]
    fn new(py: Python<'_>, below: Vec<f64>, step: Vec<f64>) -> PyResult<Self> {
        if below.len() != step.len() {
            return Err(CoreError::invalid(
                "strike_grid",
                format!("has {} bounds and {} steps", below.len(), step.len()),
            ))
            .py_err(py);
        }
        let grid = crate::protocol::strike::StrikeGrid {
            tiers: below.into_iter().zip(step).collect(),
        };
        Ok(PyStrikePicker {
            inner: crate::protocol::decide::strike::StrikePicker::new(grid).py_err(py)?,
        })
    }

    /// The strike nearest `target` delta inside the band on the synthetic chain, with its mid; None when none is.
    #[allow(clippy::too_many_arguments)]
    fn pick(
        &self,
        py: Python<'_>,
        kind: &str,
        spot: f64,
        t: f64,
        vol: f64,
        rate: f64,
        band_low: f64,
        band_high: f64,
        target: f64,
    ) -> PyResult<Option<PyStrikePick>> {
        let k = crate::pricing::OptionKind::parse(kind).py_err(py)?;
        let p = self
            .inner
            .pick(k, spot, t, vol, rate, band_low, band_high, target)
            .py_err(py)?;
        Ok(p.map(|p| PyStrikePick {
            strike: p.strike,
            abs_delta: p.abs_delta,
            mid: p.mid,
        }))
    }
}

/// The scenarios of one market (joint returns of the book's symbols, their IV shifts, spot and IV), built once
/// and reused by every revaluation of the day.
#[pyclass(frozen, name = "ScenarioSet", module = "allsuse._core")]
pub struct PyScenarioSet {
    pub(crate) inner: crate::protocol::decide::scenarios::Scenarios,
}

#[pymethods]
impl PyScenarioSet {
    #[new]
    #[pyo3(signature = (returns, *, spot, iv, iv_move_sensitivity, horizon, rate))]
    fn new<'py>(
        py: Python<'py>,
        returns: numpy::PyReadonlyArray2<'py, f64>,
        spot: Vec<f64>,
        iv: Vec<f64>,
        iv_move_sensitivity: f64,
        horizon: f64,
        rate: f64,
    ) -> PyResult<Self> {
        use numpy::PyUntypedArrayMethods;
        let shape = returns.shape();
        let (rows, cols) = (shape[0], shape[1]);
        let data = returns
            .as_slice()
            .map_err(|_| CoreError::invalid("returns", "must be a C-contiguous float64 matrix"))
            .py_err(py)?
            .to_vec();
        let inner = crate::protocol::decide::scenarios::Scenarios::new(
            data,
            rows,
            cols,
            spot,
            iv,
            iv_move_sensitivity,
            horizon,
            rate,
        )
        .py_err(py)?;
        Ok(PyScenarioSet { inner })
    }

    /// Scenarios (rows).
    #[getter]
    fn rows(&self) -> usize {
        self.inner.rows()
    }

    /// P&L per scenario of the positions given column by column: kind (stock, call or put), index of the symbol,
    /// signed quantity, strike (1.0 for stock) and years to expiry (1.0 for stock).
    #[pyo3(signature = (*, kind, underlying, quantity, strike, t))]
    fn book_pnl<'py>(
        &self,
        py: Python<'py>,
        kind: Vec<String>,
        underlying: Vec<usize>,
        quantity: Vec<f64>,
        strike: Vec<f64>,
        t: Vec<f64>,
    ) -> PyResult<Bound<'py, numpy::PyArray1<f64>>> {
        use crate::protocol::decide::scenarios::Held;
        let n = kind.len();
        same_lengths(
            n,
            &[
                ("underlying", underlying.len()),
                ("quantity", quantity.len()),
                ("strike", strike.len()),
                ("t", t.len()),
            ],
        )
        .py_err(py)?;
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            let k = kind_of(i, &kind[i]).py_err(py)?;
            held.push(Held {
                kind: k,
                underlying: underlying[i],
                quantity: quantity[i],
                strike: strike[i],
                t: t[i],
            });
        }
        let pnl = py.detach(|| self.inner.book_pnl(&held)).py_err(py)?;
        Ok(numpy::PyArray1::from_vec(py, pnl))
    }
}

/// Columns of `returns` (column 0 the symbol) in the symbol's tail-dependent group, in column order.
#[pyfunction]
#[pyo3(signature = (returns, *, q, limit))]
fn tail_group<'py>(
    py: Python<'py>,
    returns: numpy::PyReadonlyArray2<'py, f64>,
    q: f64,
    limit: f64,
) -> PyResult<Vec<usize>> {
    use numpy::PyUntypedArrayMethods;
    let shape = returns.shape();
    let (rows, cols) = (shape[0], shape[1]);
    let data = returns
        .as_slice()
        .map_err(|_| CoreError::invalid("returns", "must be a C-contiguous float64 matrix"))
        .py_err(py)?;
    py.detach(|| crate::protocol::decide::group::tail_group(data, rows, cols, q, limit))
        .py_err(py)
}

/// The equities of some accounts and of the portfolio (section 10).
#[pyclass(frozen, get_all, name = "Equities", module = "allsuse._core")]
pub struct PyEquities {
    accounts: Vec<f64>,
    portfolio: f64,
}

/// Equity at market from the positions given column by column (kind stock, call or put; signed quantity;
/// strike; calendar days to expiry, None without one; today's spot and IV of the position's symbol): each
/// account's cash (`account_cash`, indexed by `account`, None for a position of an account not asked for) plus
/// its positions' market value, and `portfolio_cash` plus the value of the positions `counted`, added in order.
#[pyfunction]
#[pyo3(signature = (
    account_cash, portfolio_cash, *, account, counted, kind, quantity, strike, days_to_expiry, spot, iv, rate
))]
#[allow(clippy::too_many_arguments)]
fn equity_at_market(
    py: Python<'_>,
    account_cash: Vec<f64>,
    portfolio_cash: f64,
    account: Vec<Option<usize>>,
    counted: Vec<bool>,
    kind: Vec<String>,
    quantity: Vec<f64>,
    strike: Vec<f64>,
    days_to_expiry: Vec<Option<i64>>,
    spot: Vec<f64>,
    iv: Vec<f64>,
    rate: f64,
) -> PyResult<PyEquities> {
    use crate::protocol::decide::equity::{self, Holding, Marked};
    let n = kind.len();
    same_lengths(
        n,
        &[
            ("account", account.len()),
            ("counted", counted.len()),
            ("quantity", quantity.len()),
            ("strike", strike.len()),
            ("days_to_expiry", days_to_expiry.len()),
            ("spot", spot.len()),
            ("iv", iv.len()),
        ],
    )
    .py_err(py)?;
    let mut book = Vec::with_capacity(n);
    for (i, k) in kind.iter().enumerate() {
        let kind = kind_of(i, k).py_err(py)?;
        book.push(Holding {
            marked: Marked {
                kind,
                quantity: quantity[i],
                strike: strike[i],
                days_to_expiry: days_to_expiry[i],
                spot: spot[i],
                iv: iv[i],
            },
            account: account[i],
            counted: counted[i],
        });
    }
    let e = equity::equities(account_cash, portfolio_cash, &book, rate).py_err(py)?;
    Ok(PyEquities {
        accounts: e.accounts,
        portfolio: e.portfolio,
    })
}

/// Every column of a positions table has one value per position; a short one is named.
fn same_lengths(n: usize, columns: &[(&'static str, usize)]) -> crate::error::CoreResult<()> {
    for &(name, len) in columns {
        if len != n {
            return Err(CoreError::invalid(
                name,
                format!("has {len} values for {n} positions"),
            ));
        }
    }
    Ok(())
}

/// A position's kind, exactly "stock", "call" or "put" (the engine's own spelling).
fn kind_of(i: usize, kind: &str) -> crate::error::CoreResult<crate::risk::PositionKind> {
    use crate::risk::PositionKind;
    match kind {
        "stock" => Ok(PositionKind::Stock),
        "call" => Ok(PositionKind::Call),
        "put" => Ok(PositionKind::Put),
        other => Err(CoreError::invalid(
            "kind",
            format!("position {i}: must be stock, call or put, got '{other}'"),
        )),
    }
}
