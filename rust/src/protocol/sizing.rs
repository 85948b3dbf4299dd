//! Position sizing (PROTOCOL section 8).

use crate::error::{check, CoreError, CoreResult};

/// Inputs of a cash-secured put's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PutSizing {
    /// Account equity E.
    pub equity: f64,
    /// Free cash F after the buffer.
    pub free_cash: f64,
    /// Strike K.
    pub strike: f64,
    /// Size share of equity (the middle of the section 3 range, e.g. 0.125).
    pub size_share: f64,
    /// Per-symbol cap as a share of equity (0.25).
    pub symbol_cap_share: f64,
    /// Exposure the account already has to the symbol, in dollars.
    pub existing_exposure: f64,
    /// ATR-regime, drawdown-protection and VIX multipliers.
    pub m_atr: f64,
    pub m_drawdown: f64,
    pub m_vix: f64,
    /// Shares per contract (100).
    pub multiplier: f64,
}

/// The budget and the contracts it buys, with the binding constraint named for the explanation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeResult {
    pub budget: f64,
    pub contracts: u32,
    /// "size", "symbol_cap" or "free_cash": which of the three limits bound the budget.
    pub binding: &'static str,
}

/// budget = min(size% x E, cap x E - existing, F) x m_ATR x m_drawdown x m_VIX;
/// contracts = floor(budget / (K x 100)); zero means no trade (never rounded up).
pub fn size_put(p: &PutSizing) -> CoreResult<SizeResult> {
    check::positive("equity", p.equity)?;
    check::non_negative("free_cash", p.free_cash)?;
    check::positive("strike", p.strike)?;
    check::non_negative("size_share", p.size_share)?;
    check::non_negative("symbol_cap_share", p.symbol_cap_share)?;
    check::non_negative("existing_exposure", p.existing_exposure)?;
    check::non_negative("m_atr", p.m_atr)?;
    check::non_negative("m_drawdown", p.m_drawdown)?;
    check::non_negative("m_vix", p.m_vix)?;
    check::positive("multiplier", p.multiplier)?;
    let by_size = p.size_share * p.equity;
    let by_cap = (p.symbol_cap_share * p.equity - p.existing_exposure).max(0.0);
    let (mut base, mut binding) = (by_size, "size");
    if by_cap < base {
        base = by_cap;
        binding = "symbol_cap";
    }
    if p.free_cash < base {
        base = p.free_cash;
        binding = "free_cash";
    }
    let budget = base * p.m_atr * p.m_drawdown * p.m_vix;
    let per_contract = p.strike * p.multiplier;
    let raw = (budget / per_contract).floor();
    if !raw.is_finite() || raw > f64::from(u32::MAX) {
        return Err(CoreError::invalid(
            "strike",
            "budget / (strike x multiplier) is out of range",
        ));
    }
    Ok(SizeResult {
        budget,
        contracts: raw.max(0.0) as u32,
        binding,
    })
}

/// Covered calls: floor(shares / 100) contracts, at most `max_cover_share` of them (0.5 in C-REC or under
/// moderate-or-worse drawdown protection, else 1.0).
pub fn size_covered_calls(shares: f64, max_cover_share: f64, multiplier: f64) -> CoreResult<u32> {
    check::non_negative("shares", shares)?;
    check::positive("multiplier", multiplier)?;
    if !(max_cover_share.is_finite() && (0.0..=1.0).contains(&max_cover_share)) {
        return Err(CoreError::invalid(
            "max_cover_share",
            format!("must be in [0, 1], got {max_cover_share}"),
        ));
    }
    let full = (shares / multiplier).floor();
    let capped = (full * max_cover_share).floor();
    if capped > f64::from(u32::MAX) {
        return Err(CoreError::invalid("shares", "too many shares"));
    }
    Ok(capped as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PutSizing {
        PutSizing {
            equity: 38_000.0,
            free_cash: 38_000.0,
            strike: 30.0,
            size_share: 0.125,
            symbol_cap_share: 0.25,
            existing_exposure: 0.0,
            m_atr: 1.0,
            m_drawdown: 1.0,
            m_vix: 1.0,
            multiplier: 100.0,
        }
    }

    #[test]
    fn floors_and_never_rounds_up() {
        // 12.5% of 38,000 = 4,750; 4,750 / 3,000 = 1.58 -> 1 contract
        let r = size_put(&base()).unwrap();
        assert_eq!((r.contracts, r.binding), (1, "size"));
        let r = size_put(&PutSizing {
            strike: 50.0,
            ..base()
        })
        .unwrap();
        assert_eq!(r.contracts, 0);
    }

    #[test]
    fn binding_constraints_and_multipliers() {
        let r = size_put(&PutSizing {
            existing_exposure: 8_000.0,
            ..base()
        })
        .unwrap();
        assert_eq!(r.binding, "symbol_cap"); // 9,500 - 8,000 = 1,500 < 4,750
        let r = size_put(&PutSizing {
            free_cash: 1_000.0,
            ..base()
        })
        .unwrap();
        assert_eq!(r.binding, "free_cash");
        let r = size_put(&PutSizing {
            m_vix: 0.5,
            strike: 10.0,
            ..base()
        })
        .unwrap();
        assert_eq!(r.contracts, 2); // 4,750 x 0.5 = 2,375 / 1,000
        assert!(size_put(&PutSizing {
            strike: 0.0,
            ..base()
        })
        .is_err());
    }

    #[test]
    fn covered_calls() {
        assert_eq!(size_covered_calls(350.0, 1.0, 100.0), Ok(3));
        assert_eq!(size_covered_calls(350.0, 0.5, 100.0), Ok(1));
        assert!(size_covered_calls(-1.0, 1.0, 100.0).is_err());
    }
}
