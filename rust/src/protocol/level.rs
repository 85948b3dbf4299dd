//! Protocol levels (PROTOCOL section 5): how far a position has gone against us, and the ATR regime
//! that scales size and moves the delta target inside the band.

use super::exact;
use crate::error::{check, CoreError, CoreResult};

/// Level thresholds: excursion in ATR(5) units and loss as a share of account equity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelThresholds {
    /// Excursion x at which levels 1, 2 and 3 start.
    pub excursion: [f64; 3],
    /// Loss share (0.02 = 2%) at which levels 1, 2 and 3 start.
    pub loss: [f64; 3],
    /// ATR as a share of spot used when fewer than `atr_period` bars exist.
    pub atr_fallback_share: f64,
}

impl Default for LevelThresholds {
    fn default() -> Self {
        LevelThresholds {
            excursion: [1.0, 2.0, 3.0],
            loss: [0.02, 0.03, 0.05],
            atr_fallback_share: 0.02,
        }
    }
}

fn ascending(field: &str, xs: &[f64]) -> CoreResult<()> {
    check::all_finite(field, xs)?;
    if xs.windows(2).all(|w| w[0] < w[1]) {
        Ok(())
    } else {
        Err(CoreError::invalid(field, "must be strictly increasing"))
    }
}

impl LevelThresholds {
    /// Finite, increasing thresholds.
    pub fn validate(&self) -> CoreResult<()> {
        ascending("excursion", &self.excursion)?;
        ascending("loss", &self.loss)?;
        check::positive("atr_fallback_share", self.atr_fallback_share)?;
        Ok(())
    }
}

/// A level and the two measures that produced it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelReading {
    /// 0 normal, 1 enhanced, 2 recovery, 3 preservation.
    pub level: u8,
    /// Adverse excursion in ATR units (negative when the position is in our favour).
    pub excursion: f64,
    /// Loss as a share of account equity (0 when the position is not losing).
    pub loss_share: f64,
}

/// Level of one position. `reference` is the strike of a short put or the cost basis of stock/calls;
/// `atr` is ATR(5) (pass None with fewer than 5 bars: 2% of spot is used); `loss` is the position's
/// current loss in dollars (positive = losing) and `equity` the account's equity. Both measures are compared
/// with the thresholds on exact values (within 1e-9 relative of a threshold counts as on it).
pub fn protocol_level(
    reference: f64,
    spot: f64,
    atr: Option<f64>,
    loss: f64,
    equity: f64,
    t: &LevelThresholds,
) -> CoreResult<LevelReading> {
    t.validate()?;
    check::positive("reference", reference)?;
    check::positive("spot", spot)?;
    check::finite("loss", loss)?;
    check::positive("equity", equity)?;
    let atr = match atr {
        Some(a) => check::positive("atr", a)?,
        None => t.atr_fallback_share * spot,
    };
    let x = (reference - spot) / atr;
    let loss_share = (loss / equity).max(0.0);
    let by_x = t
        .excursion
        .iter()
        .filter(|&&e| exact::at_least(x, e))
        .count();
    let by_loss = t
        .loss
        .iter()
        .filter(|&&l| exact::at_least(loss_share, l))
        .count();
    let level = by_x.max(by_loss) as u8;
    Ok(LevelReading {
        level,
        excursion: x,
        loss_share,
    })
}

/// ATR regimes, from very low to very high volatility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtrRegime {
    VeryLow,
    Low,
    Normal,
    High,
    VeryHigh,
}

impl AtrRegime {
    /// Lower-case name used in explanations.
    pub fn name(self) -> &'static str {
        match self {
            AtrRegime::VeryLow => "very_low",
            AtrRegime::Low => "low",
            AtrRegime::Normal => "normal",
            AtrRegime::High => "high",
            AtrRegime::VeryHigh => "very_high",
        }
    }
}

/// ATR regime table: upper bounds of ATR(14) % of spot for the first four regimes, and per-regime size multipliers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AtrRegimeTable {
    pub upper_pct: [f64; 4],
    pub size_multiplier: [f64; 5],
}

impl Default for AtrRegimeTable {
    fn default() -> Self {
        AtrRegimeTable {
            upper_pct: [0.5, 1.0, 2.0, 3.5],
            size_multiplier: [1.2, 1.1, 1.0, 0.8, 0.6],
        }
    }
}

/// The regime of an ATR(14) expressed in percent of spot, and its size multiplier. A regime's upper bound is
/// inclusive on exact values: 1.0000000000000002 % is "low" (<= 1.0).
pub fn atr_regime(atr_pct: f64, table: &AtrRegimeTable) -> CoreResult<(AtrRegime, f64)> {
    ascending("upper_pct", &table.upper_pct)?;
    for (i, m) in table.size_multiplier.iter().enumerate() {
        if !(m.is_finite() && *m >= 0.0) {
            return Err(CoreError::invalid(
                "size_multiplier",
                format!("element {i} must be >= 0, got {m}"),
            ));
        }
    }
    let a = check::non_negative("atr_pct", atr_pct)?;
    let regimes = [
        AtrRegime::VeryLow,
        AtrRegime::Low,
        AtrRegime::Normal,
        AtrRegime::High,
        AtrRegime::VeryHigh,
    ];
    let idx = table
        .upper_pct
        .iter()
        .position(|&u| exact::at_most(a, u))
        .unwrap_or(4);
    Ok((regimes[idx], table.size_multiplier[idx]))
}

/// The delta target inside a band [low, high] for a regime: the middle of the upper third (very low), the middle
/// of the upper half (low), the middle (normal), the middle of the lower half (high), the band minimum (very high).
pub fn delta_target(low: f64, high: f64, regime: AtrRegime) -> CoreResult<f64> {
    check::finite("band_low", low)?;
    check::finite("band_high", high)?;
    if low > high {
        return Err(CoreError::invalid(
            "band_low",
            format!("must not exceed band_high ({low} > {high})"),
        ));
    }
    let w = high - low;
    let frac = match regime {
        AtrRegime::VeryLow => 5.0 / 6.0,
        AtrRegime::Low => 0.75,
        AtrRegime::Normal => 0.5,
        AtrRegime::High => 0.25,
        AtrRegime::VeryHigh => 0.0,
    };
    Ok(low + frac * w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![proptest::num::f64::ANY, -1e3f64..1e3, Just(0.0)]
    }

    proptest! {
        #[test]
        fn never_panics(
            r in any_f64(), s in any_f64(), atr in proptest::option::of(any_f64()), loss in any_f64(),
            e in any_f64(), pct in any_f64(), lo in any_f64(), hi in any_f64(),
        ) {
            if let Ok(l) = protocol_level(r, s, atr, loss, e, &LevelThresholds::default()) {
                prop_assert!(l.level <= 3);
            }
            if let Ok((regime, _)) = atr_regime(pct, &AtrRegimeTable::default()) {
                let _ = delta_target(lo, hi, regime);
            }
        }
    }

    #[test]
    fn levels_by_excursion_and_loss() {
        let t = LevelThresholds::default();
        let lv = |r: f64, s: f64, atr: f64, loss: f64| {
            protocol_level(r, s, Some(atr), loss, 100_000.0, &t)
                .map(|l| l.level)
                .unwrap_or(99)
        };
        assert_eq!(lv(100.0, 101.0, 1.0, 0.0), 0);
        assert_eq!(lv(100.0, 99.0, 1.0, 0.0), 1); // x = 1.0
        assert_eq!(lv(100.0, 98.0, 1.0, 0.0), 2); // x = 2.0
        assert_eq!(lv(100.0, 97.0, 1.0, 0.0), 3); // x = 3.0
        assert_eq!(lv(100.0, 101.0, 1.0, 2_000.0), 1); // loss 2%
        assert_eq!(lv(100.0, 101.0, 1.0, 3_000.0), 2);
        assert_eq!(lv(100.0, 101.0, 1.0, 5_000.0), 3);
        assert_eq!(lv(100.0, 98.5, 1.0, 5_000.0), 3); // worse of the two
    }

    #[test]
    fn atr_fallback_is_two_percent_of_spot() {
        let t = LevelThresholds::default();
        let r = protocol_level(104.0, 100.0, None, 0.0, 1.0, &t).map(|l| l.excursion);
        assert_eq!(r, Ok(2.0));
    }

    #[test]
    fn regimes_and_targets() {
        let tb = AtrRegimeTable::default();
        assert_eq!(atr_regime(0.5, &tb).map(|r| r.0), Ok(AtrRegime::VeryLow));
        assert_eq!(atr_regime(0.51, &tb).map(|r| r.0), Ok(AtrRegime::Low));
        assert_eq!(atr_regime(2.0, &tb).map(|r| r.1), Ok(1.0));
        assert_eq!(atr_regime(3.6, &tb).map(|r| r.1), Ok(0.6));
        assert_eq!(delta_target(40.0, 50.0, AtrRegime::Normal), Ok(45.0));
        assert_eq!(delta_target(40.0, 50.0, AtrRegime::High), Ok(42.5));
        assert_eq!(delta_target(40.0, 50.0, AtrRegime::VeryHigh), Ok(40.0));
        assert!(atr_regime(f64::NAN, &tb).is_err());
    }

    #[test]
    fn excursion_within_1e9_relative_of_a_threshold_is_on_it() {
        let t = LevelThresholds::default();
        // (100 - 97.9) / 0.7 = 2.999999999999992 in floating point: level 3 (PROTOCOL section 5).
        let r = protocol_level(100.0, 97.9, Some(0.7), 0.0, 100_000.0, &t).unwrap();
        assert!(r.excursion < 3.0);
        assert_eq!(r.level, 3);
        // a loss share a hair under 5% is 5%
        let r = protocol_level(
            100.0,
            101.0,
            Some(1.0),
            5_000.0 * (1.0 - 1e-12),
            100_000.0,
            &t,
        );
        assert_eq!(r.map(|l| l.level), Ok(3));
        // clearly below stays below
        let r = protocol_level(100.0, 101.0, Some(1.0), 4_999.0, 100_000.0, &t);
        assert_eq!(r.map(|l| l.level), Ok(2));
    }

    #[test]
    fn atr_regime_boundaries_are_exact() {
        let tb = AtrRegimeTable::default();
        // 0.1 x 3 x 10 / 6 x 2 = 1.0000000000000002: on the "low" bound (<= 1.0)
        let pct = 0.1 * 3.0 * 10.0 / 6.0 * 2.0;
        assert!(pct > 1.0);
        assert_eq!(atr_regime(pct, &tb).map(|r| r.0), Ok(AtrRegime::Low));
        assert_eq!(
            atr_regime(3.5 * (1.0 + 5e-10), &tb).map(|r| r.0),
            Ok(AtrRegime::High)
        );
        assert_eq!(
            atr_regime(3.5 * (1.0 + 2e-9), &tb).map(|r| r.0),
            Ok(AtrRegime::VeryHigh)
        );
    }
}
