//! Sizing a new put and fitting an order to the ES budget (PROTOCOL sections 6 and 8), as the decision does them:
//! the put budget with the size cap R06 checks and the room R07 leaves, then the largest contract count whose
//! ES after the order stays within the budget.

use crate::error::{check, CoreError, CoreResult};
use crate::protocol::sizing::{self, Binding, PutSizing};
use crate::risk;

/// `floor(x)` where a value within 1e-9 (relative, at least absolute 1e-9) under the next whole number counts as
/// that number; 0 for non-finite or non-positive `x` (the engine's own rule for the R07 room).
pub fn floor_exact(x: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 0.0;
    }
    let n = x.floor();
    if x - n >= 1.0 - 1e-9 * x.max(1.0) {
        n + 1.0
    } else {
        n
    }
}

/// A put's size: the budget and its binding constraint, contracts after the R07 room, and the size cap R06 checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PutBudget {
    pub budget: f64,
    pub binding: Binding,
    /// floor(budget / (K x M)) before the room.
    pub sized_contracts: u32,
    /// What R07 allows: floor((cap x E - existing) / (K x M)).
    pub room: u32,
    /// min(sized_contracts, room).
    pub contracts: u32,
    /// min(t, cap) x E x m_label x m_ATR x m_drawdown x m_VIX x allowed.
    pub size_cap: f64,
}

/// The put budget of section 8 (`p.existing_exposure` may be negative: it counts as 0), kept within what R07
/// allows so the engine never proposes what its own rules flag.
pub fn put_budget(p: &PutSizing) -> CoreResult<PutBudget> {
    let existing = p.existing_exposure.max(0.0);
    let sized = sizing::size_put(&PutSizing {
        existing_exposure: existing,
        ..*p
    })?;
    let share = if p.max_symbol_weight < p.target_share {
        p.max_symbol_weight
    } else {
        p.target_share
    };
    let size_cap =
        share * p.equity * p.m_label * p.m_atr * p.m_drawdown * p.m_vix * p.allowed_exposure;
    let room = floor_exact(
        (p.max_symbol_weight * p.equity - existing).max(0.0) / (p.strike * p.multiplier),
    );
    if room > f64::from(u32::MAX) {
        return Err(CoreError::invalid("strike", "the R07 room is out of range"));
    }
    let room = room as u32;
    Ok(PutBudget {
        budget: sized.budget,
        binding: sized.binding,
        sized_contracts: sized.contracts,
        room,
        contracts: sized.contracts.min(room),
        size_cap,
    })
}

/// An order fitted to the ES budget: contracts, ES before and after, and the ES the unfitted order would have
/// had when it was over the budget (the resize the explanation cites).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EsFit {
    pub contracts: u32,
    pub es_before: f64,
    pub es_after: f64,
    pub over_budget: Option<f64>,
}

fn es_with(base: &[f64], unit: &[f64], n: u32, level: f64, buf: &mut Vec<f64>) -> CoreResult<f64> {
    let k = f64::from(n);
    buf.clear();
    buf.extend(base.iter().zip(unit).map(|(b, u)| b + k * u));
    risk::expected_shortfall(buf, level)
}

/// `base` is the held book's P&L per scenario (`held` false: nothing held, ES 0), `unit` one contract's. A put
/// over `limit` is resized down to the largest count within it (ES grows with contracts: bisection); a call is
/// measured, never resized (it is covered by shares).
pub fn fit_to_es_budget(
    base: &[f64],
    unit: &[f64],
    held: bool,
    contracts: u32,
    resize: bool,
    limit: f64,
    level: f64,
) -> CoreResult<EsFit> {
    if base.len() != unit.len() {
        return Err(CoreError::invalid(
            "unit",
            format!("has {} scenarios, base has {}", unit.len(), base.len()),
        ));
    }
    check::finite("limit", limit)?;
    let mut buf = Vec::with_capacity(base.len());
    let es_before = if held {
        risk::expected_shortfall(base, level)?
    } else {
        0.0
    };
    if contracts == 0 {
        return Ok(EsFit {
            contracts,
            es_before,
            es_after: es_before,
            over_budget: None,
        });
    }
    let es_after = es_with(base, unit, contracts, level, &mut buf)?;
    if !resize || es_after <= limit {
        return Ok(EsFit {
            contracts,
            es_before,
            es_after,
            over_budget: None,
        });
    }
    let (mut lo, mut hi) = (0u32, contracts);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if es_with(base, unit, mid, level, &mut buf)? <= limit {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let fitted = if lo > 0 {
        es_with(base, unit, lo, level, &mut buf)?
    } else {
        es_before
    };
    Ok(EsFit {
        contracts: lo,
        es_before,
        es_after: fitted,
        over_budget: Some(es_after),
    })
}
