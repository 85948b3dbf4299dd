//! Python bindings for the protocol rules that are numbers and for the compliance rules engine.
//! Thresholds arrive as plain tuples built by the facades from config/protocol.yaml.

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

use super::errors::IntoPyResult;
use crate::error::CoreError;
use crate::pricing::OptionKind;
use crate::protocol::{drawdown, level, sizing, strike, week_type};
use crate::rules;

type Bounds10 = (f64, f64, f64, f64, f64, f64, f64, f64, f64, f64);

/// (code, name, action, expected_low_pct, expected_high_pct, confidence)
type WeekTypeTuple = (&'static str, &'static str, &'static str, f64, f64, f64);

#[pyfunction]
fn classify_week(
    py: Python<'_>,
    position: &str,
    move_pct: f64,
    roll_available: bool,
    bounds: Bounds10,
) -> PyResult<WeekTypeTuple> {
    let b = week_type::WeekTypeBounds {
        put_worthless_min: bounds.0,
        put_assigned_min: bounds.1,
        deep_drawdown_below: bounds.2,
        call_strong_min: bounds.3,
        call_appreciation_min: bounds.4,
        call_premium_min: bounds.5,
        call_roll_min: bounds.6,
        confidence_margin: bounds.7,
        confidence_high: bounds.8,
        confidence_low: bounds.9,
    };
    let pos = week_type::Position::parse(position).py_err(py)?;
    let c = week_type::classify_week(pos, move_pct, roll_available, &b).py_err(py)?;
    let (lo, hi) = c.week_type.expected_return_pct();
    Ok((
        c.week_type.code(),
        c.week_type.name(),
        c.week_type.action(),
        lo,
        hi,
        c.confidence,
    ))
}

#[pyfunction]
#[pyo3(signature = (reference, spot, atr, loss, equity, excursion, loss_thresholds, atr_fallback_share))]
#[allow(clippy::too_many_arguments)]
fn protocol_level(
    py: Python<'_>,
    reference: f64,
    spot: f64,
    atr: Option<f64>,
    loss: f64,
    equity: f64,
    excursion: (f64, f64, f64),
    loss_thresholds: (f64, f64, f64),
    atr_fallback_share: f64,
) -> PyResult<(u8, f64, f64)> {
    let t = level::LevelThresholds {
        excursion: [excursion.0, excursion.1, excursion.2],
        loss: [loss_thresholds.0, loss_thresholds.1, loss_thresholds.2],
        atr_fallback_share,
    };
    let r = level::protocol_level(reference, spot, atr, loss, equity, &t).py_err(py)?;
    Ok((r.level, r.excursion, r.loss_share))
}

#[pyfunction]
fn atr_regime(
    py: Python<'_>,
    atr_pct: f64,
    upper_pct: (f64, f64, f64, f64),
    size_multiplier: (f64, f64, f64, f64, f64),
) -> PyResult<(&'static str, f64)> {
    let table = level::AtrRegimeTable {
        upper_pct: [upper_pct.0, upper_pct.1, upper_pct.2, upper_pct.3],
        size_multiplier: [
            size_multiplier.0,
            size_multiplier.1,
            size_multiplier.2,
            size_multiplier.3,
            size_multiplier.4,
        ],
    };
    let (regime, m) = level::atr_regime(atr_pct, &table).py_err(py)?;
    Ok((regime.name(), m))
}

#[pyfunction]
fn delta_target(py: Python<'_>, band_low: f64, band_high: f64, regime: &str) -> PyResult<f64> {
    let r = match regime {
        "very_low" => level::AtrRegime::VeryLow,
        "low" => level::AtrRegime::Low,
        "normal" => level::AtrRegime::Normal,
        "high" => level::AtrRegime::High,
        "very_high" => level::AtrRegime::VeryHigh,
        other => {
            return Err(super::errors::to_pyerr(
                py,
                CoreError::invalid(
                    "regime",
                    format!("must be very_low, low, normal, high or very_high, got '{other}'"),
                ),
            ))
        }
    };
    level::delta_target(band_low, band_high, r).py_err(py)
}

/// (level, trough, day, adjustments_today): level 0 none .. 4 emergency; trough the worst drawdown since protection
/// last left none (0 while none); day the day number of the last observation; adjustments_today the level changes
/// made that day. A fresh account passes (0, 0.0, -1, 0).
type ProtectionTuple = (u8, f64, i64, u32);

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn step_protection(
    py: Python<'_>,
    state: ProtectionTuple,
    drawdown: f64,
    day: i64,
    thresholds: (f64, f64, f64, f64),
    multipliers: (f64, f64, f64, f64, f64),
    step_down_recovery: f64,
    off_recovery: f64,
    max_adjustments_per_day: u32,
) -> PyResult<ProtectionTuple> {
    let table = drawdown::ProtectionTable {
        thresholds: [thresholds.0, thresholds.1, thresholds.2, thresholds.3],
        multipliers: [
            multipliers.0,
            multipliers.1,
            multipliers.2,
            multipliers.3,
            multipliers.4,
        ],
        step_down_recovery,
        off_recovery,
        max_adjustments_per_day,
    };
    let s = drawdown::ProtectionState {
        level: state.0,
        trough: state.1,
        day: state.2,
        adjustments_today: state.3,
    };
    let n = drawdown::step_protection(s, drawdown, day, &table).py_err(py)?;
    Ok((n.level, n.trough, n.day, n.adjustments_today))
}

#[pyfunction]
fn allowed_exposure(
    py: Python<'_>,
    peak: f64,
    equity: f64,
    cap: f64,
    multiplier: f64,
) -> PyResult<f64> {
    drawdown::allowed_exposure(peak, equity, cap, multiplier).py_err(py)
}

#[pyfunction]
fn vix_breaker(
    py: Python<'_>,
    vix: f64,
    hedged_at: f64,
    hedged_multiplier: f64,
    reducing_at: f64,
    halted_at: f64,
) -> PyResult<(f64, bool, &'static str)> {
    let b = drawdown::VixBreakers {
        hedged_at,
        hedged_multiplier,
        reducing_at,
        halted_at,
    };
    let r = drawdown::vix_breaker(vix, &b).py_err(py)?;
    Ok((r.multiplier, r.hedged, r.state.name()))
}

/// (budget, contracts, binding): binding is "target", "symbol_cap", "free_cash" or "zero_multiplier".
#[pyfunction]
#[pyo3(signature = (
    equity, free_cash, strike, target_share, max_symbol_weight, existing_exposure,
    m_label, m_atr, m_drawdown, m_vix, allowed_exposure, multiplier
))]
#[allow(clippy::too_many_arguments)]
fn size_put(
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
) -> PyResult<(f64, u32, &'static str)> {
    let p = sizing::PutSizing {
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
    let r = sizing::size_put(&p).py_err(py)?;
    Ok((r.budget, r.contracts, r.binding.name()))
}

#[pyfunction]
fn size_covered_calls(
    py: Python<'_>,
    shares: f64,
    max_cover_share: f64,
    multiplier: f64,
) -> PyResult<u32> {
    sizing::size_covered_calls(shares, max_cover_share, multiplier).py_err(py)
}

#[pyfunction]
fn select_strike<'py>(
    py: Python<'py>,
    kind: &str,
    strikes: PyReadonlyArray1<'py, f64>,
    abs_deltas: PyReadonlyArray1<'py, f64>,
    band_low: f64,
    band_high: f64,
    target: f64,
) -> PyResult<Option<(usize, f64, f64)>> {
    let k = OptionKind::parse(kind).py_err(py)?;
    let s = strikes.as_slice().map_err(|_| {
        super::errors::to_pyerr(
            py,
            CoreError::invalid("strikes", "must be a contiguous float64 array"),
        )
    })?;
    let d = abs_deltas.as_slice().map_err(|_| {
        super::errors::to_pyerr(
            py,
            CoreError::invalid("deltas", "must be a contiguous float64 array"),
        )
    })?;
    let c = strike::select_strike(k, s, d, band_low, band_high, target).py_err(py)?;
    Ok(c.map(|c| (c.index, c.strike, c.abs_delta)))
}

#[pyfunction]
#[pyo3(signature = (kind, spot, t, vol, rate, div, band_low, band_high, target, grid=None))]
#[allow(clippy::too_many_arguments)]
fn select_synthetic_strike(
    py: Python<'_>,
    kind: &str,
    spot: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
    band_low: f64,
    band_high: f64,
    target: f64,
    grid: Option<Vec<(f64, f64)>>,
) -> PyResult<Option<(f64, f64)>> {
    let k = OptionKind::parse(kind).py_err(py)?;
    let grid = grid.map_or_else(strike::StrikeGrid::default, |tiers| strike::StrikeGrid {
        tiers,
    });
    let c = py
        .detach(|| {
            strike::select_synthetic(
                k, spot, t, vol, rate, div, band_low, band_high, target, &grid,
            )
        })
        .py_err(py)?;
    Ok(c.map(|c| (c.strike, c.abs_delta)))
}

/// (code, severity, passed, message)
type RuleTuple = (String, &'static str, bool, String);

/// A compiled compliance rule set. Built from the JSON form of config/rules.yaml; immutable, so a reload
/// builds a new one and swaps it only when it compiled.
#[pyclass(frozen, module = "allsuse._core")]
pub(crate) struct RuleSet {
    pub(crate) inner: rules::RuleSet,
}

#[pymethods]
impl RuleSet {
    #[new]
    fn new(py: Python<'_>, json: &str) -> PyResult<Self> {
        Ok(RuleSet {
            inner: rules::compile(json).py_err(py)?,
        })
    }

    /// The rule codes, in file order.
    fn codes(&self) -> Vec<String> {
        self.inner.rules.iter().map(|r| r.code.clone()).collect()
    }

    #[getter]
    fn version(&self) -> i64 {
        self.inner.version
    }

    fn __len__(&self) -> usize {
        self.inner.rules.len()
    }

    /// A numeric parameter of a rule (e.g. ("R11_VIX_BREAKER", "halted_at")); None when the set has no such
    /// rule or the rule no such parameter.
    fn number_param(&self, code: &str, name: &str) -> Option<f64> {
        self.inner
            .rules
            .iter()
            .find(|r| r.code == code)
            .and_then(|r| r.number_param(name))
    }

    /// Evaluates the rules that apply to a typed context: every verdict and the outcome.
    fn check(
        &self,
        py: Python<'_>,
        context: &super::decide::RuleContext,
    ) -> PyResult<super::decide::RuleCheck> {
        let results = rules::evaluate(&self.inner, &context.inner).py_err(py)?;
        let outcome = rules::outcome(&results).name();
        let verdicts = results
            .into_iter()
            .map(|r| {
                Py::new(
                    py,
                    super::decide::RuleVerdict {
                        code: r.code,
                        severity: r.severity.name(),
                        passed: r.passed,
                        message: r.message,
                    },
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(super::decide::RuleCheck {
            results: verdicts,
            outcome,
        })
    }

    /// Evaluates the rules that apply to the context (JSON); returns (results, outcome), each result
    /// (code, severity, passed, message).
    fn evaluate(
        &self,
        py: Python<'_>,
        context_json: &str,
    ) -> PyResult<(Vec<RuleTuple>, &'static str)> {
        let ctx = rules::OrderContext::from_json(context_json).py_err(py)?;
        let results = rules::evaluate(&self.inner, &ctx).py_err(py)?;
        let outcome = rules::outcome(&results).name();
        Ok((
            results
                .into_iter()
                .map(|r| (r.code, r.severity.name(), r.passed, r.message))
                .collect(),
            outcome,
        ))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(classify_week, m)?)?;
    m.add_function(wrap_pyfunction!(protocol_level, m)?)?;
    m.add_function(wrap_pyfunction!(atr_regime, m)?)?;
    m.add_function(wrap_pyfunction!(delta_target, m)?)?;
    m.add_function(wrap_pyfunction!(step_protection, m)?)?;
    m.add_function(wrap_pyfunction!(allowed_exposure, m)?)?;
    m.add_function(wrap_pyfunction!(vix_breaker, m)?)?;
    m.add_function(wrap_pyfunction!(size_put, m)?)?;
    m.add_function(wrap_pyfunction!(size_covered_calls, m)?)?;
    m.add_function(wrap_pyfunction!(select_strike, m)?)?;
    m.add_function(wrap_pyfunction!(select_synthetic_strike, m)?)?;
    m.add_class::<RuleSet>()?;
    Ok(())
}
