//! Strike selection (PROTOCOL section 9): the strike whose absolute delta is closest to the target
//! while inside the band; ties go to the strike further out of the money.

use crate::error::{check, CoreError, CoreResult};
use crate::pricing::{bs_greeks_unchecked, validate_inputs, OptionKind};

/// Black-Scholes delta of one option (QuantLib convention: put delta is negative), from the pricing module.
pub fn delta(
    kind: OptionKind,
    spot: f64,
    strike: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> CoreResult<f64> {
    validate_inputs(spot, strike, t, vol, rate, div)?;
    Ok(bs_greeks_unchecked(kind, spot, strike, t, vol, rate, div).delta)
}

/// The synthetic strike grid (PROTOCOL section 9): `(below, step)` tiers in increasing order, the step of the first
/// tier whose bound is above the strike applies; the last tier's bound may be infinite.
#[derive(Debug, Clone, PartialEq)]
pub struct StrikeGrid {
    pub tiers: Vec<(f64, f64)>,
}

/// Strikes a synthetic chain may hold at the most (the range x 1 / step must stay a chain, not a table).
pub const MAX_SYNTHETIC_STRIKES: usize = 20_000;

impl Default for StrikeGrid {
    /// $0.10 steps under $5, $0.50 under $25, $1 under $200, $5 above.
    fn default() -> Self {
        StrikeGrid {
            tiers: vec![
                (5.0, 0.10),
                (25.0, 0.50),
                (200.0, 1.0),
                (f64::INFINITY, 5.0),
            ],
        }
    }
}

impl StrikeGrid {
    /// Tiers must have positive finite steps and strictly increasing bounds; the last bound must be infinite.
    pub fn validate(&self) -> CoreResult<()> {
        if self.tiers.is_empty() {
            return Err(CoreError::invalid("strike_grid", "needs at least one tier"));
        }
        for (i, &(below, step)) in self.tiers.iter().enumerate() {
            // Strikes are whole cents: a step under a cent could not advance the grid.
            if !(step.is_finite() && step >= 0.01) {
                return Err(CoreError::invalid(
                    "strike_grid",
                    format!("tier {i}: step must be at least 0.01, got {step}"),
                ));
            }
            if below.is_nan() || below <= 0.0 {
                return Err(CoreError::invalid(
                    "strike_grid",
                    format!("tier {i}: bound must be > 0, got {below}"),
                ));
            }
            if i > 0 && below <= self.tiers[i - 1].0 {
                return Err(CoreError::invalid(
                    "strike_grid",
                    format!("tier {i}: bounds must increase"),
                ));
            }
        }
        if self.tiers.last().is_some_and(|t| t.0.is_finite()) {
            return Err(CoreError::invalid(
                "strike_grid",
                "the last tier must have no upper bound (infinity)",
            ));
        }
        Ok(())
    }

    fn step_at(&self, k: f64) -> f64 {
        self.tiers
            .iter()
            .find(|t| k < t.0)
            .or(self.tiers.last())
            .map_or(1.0, |t| t.1)
    }
}

/// The synthetic strikes covering [low, high] on `grid`, each a multiple of its tier's step (to the cent).
pub fn synthetic_strikes(low: f64, high: f64, grid: &StrikeGrid) -> CoreResult<Vec<f64>> {
    check::positive("low", low)?;
    check::positive("high", high)?;
    grid.validate()?;
    if low > high {
        return Err(CoreError::invalid(
            "low",
            format!("must not exceed high ({low} > {high})"),
        ));
    }
    if high / low > 1e4 || high > 1e9 {
        return Err(CoreError::invalid(
            "high",
            "the strike range is too wide for a synthetic chain",
        ));
    }
    let mut out = Vec::new();
    let mut k = low;
    while k <= high {
        let step = grid.step_at(k);
        // The next multiple of the step at or above k, to the cent (steps are cents or more).
        let aligned = ((k / step - 1e-9).ceil() * step * 100.0).round() / 100.0;
        if aligned > high {
            break;
        }
        if aligned > 0.0 && out.last().is_none_or(|&last: &f64| aligned > last) {
            out.push(aligned);
            if out.len() > MAX_SYNTHETIC_STRIKES {
                return Err(CoreError::invalid(
                    "strike_grid",
                    format!("more than {MAX_SYNTHETIC_STRIKES} strikes between {low} and {high}"),
                ));
            }
        }
        k = aligned + step * 0.5;
    }
    Ok(out)
}

/// The chosen strike and its delta (absolute, in whole numbers: 40 = 0.40).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrikeChoice {
    pub index: usize,
    pub strike: f64,
    pub abs_delta: f64,
}

/// Picks among `strikes` (with their absolute deltas in whole numbers) the one closest to `target` inside
/// [band_low, band_high]. None when no strike of the chain lies inside the band.
pub fn select_strike(
    kind: OptionKind,
    strikes: &[f64],
    abs_deltas: &[f64],
    band_low: f64,
    band_high: f64,
    target: f64,
) -> CoreResult<Option<StrikeChoice>> {
    check::non_empty("strikes", strikes)?;
    if strikes.len() != abs_deltas.len() {
        return Err(CoreError::invalid(
            "deltas",
            format!(
                "has length {}, strikes has {}",
                abs_deltas.len(),
                strikes.len()
            ),
        ));
    }
    check::all_finite("strikes", strikes)?;
    check::finite("band_low", band_low)?;
    check::finite("band_high", band_high)?;
    check::finite("target", target)?;
    if band_low > band_high {
        return Err(CoreError::invalid("band_low", "must not exceed band_high"));
    }
    let mut best: Option<StrikeChoice> = None;
    for (i, (&k, &d)) in strikes.iter().zip(abs_deltas).enumerate() {
        if !d.is_finite() || d < band_low || d > band_high {
            continue;
        }
        let cand = StrikeChoice {
            index: i,
            strike: k,
            abs_delta: d,
        };
        best = match best {
            None => Some(cand),
            Some(b) => {
                let (db, dc) = ((b.abs_delta - target).abs(), (d - target).abs());
                let further_otm = match kind {
                    OptionKind::Put => k < b.strike,
                    OptionKind::Call => k > b.strike,
                };
                if dc < db - 1e-12 || ((dc - db).abs() <= 1e-12 && further_otm) {
                    Some(cand)
                } else {
                    Some(b)
                }
            }
        };
    }
    Ok(best)
}

/// Builds the synthetic chain around `spot` (50%..150%) with one IV and selects a strike.
#[allow(clippy::too_many_arguments)]
pub fn select_synthetic(
    kind: OptionKind,
    spot: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
    band_low: f64,
    band_high: f64,
    target: f64,
    grid: &StrikeGrid,
) -> CoreResult<Option<StrikeChoice>> {
    validate_inputs(spot, spot, t, vol, rate, div)?;
    let strikes = synthetic_strikes(spot * 0.5, spot * 1.5, grid)?;
    if strikes.is_empty() {
        return Ok(None);
    }
    let deltas = strikes
        .iter()
        .map(|&k| delta(kind, spot, k, t, vol, rate, div).map(|d| d.abs() * 100.0))
        .collect::<CoreResult<Vec<f64>>>()?;
    select_strike(kind, &strikes, &deltas, band_low, band_high, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_steps() {
        let grid = StrikeGrid::default();
        let g = synthetic_strikes(195.0, 212.0, &grid).unwrap();
        assert_eq!(
            g,
            vec![195.0, 196.0, 197.0, 198.0, 199.0, 200.0, 205.0, 210.0]
        );
        // Prices under $5 get $0.10 strikes, under $25 $0.50 (split-adjusted history at $0.26 still has a chain).
        assert_eq!(
            synthetic_strikes(0.13, 0.39, &grid).unwrap(),
            vec![0.2, 0.3]
        );
        assert_eq!(
            synthetic_strikes(4.8, 6.1, &grid).unwrap(),
            vec![4.8, 4.9, 5.0, 5.5, 6.0]
        );
        assert_eq!(
            synthetic_strikes(24.2, 26.3, &grid).unwrap(),
            vec![24.5, 25.0, 26.0]
        );
    }

    #[test]
    fn bad_grids_are_named() {
        let bad = StrikeGrid {
            tiers: vec![(5.0, 0.0), (f64::INFINITY, 1.0)],
        };
        assert!(synthetic_strikes(1.0, 2.0, &bad).is_err());
        let bounded = StrikeGrid {
            tiers: vec![(5.0, 0.1)],
        };
        assert!(synthetic_strikes(1.0, 2.0, &bounded).is_err());
        let tiny = StrikeGrid {
            tiers: vec![(f64::INFINITY, 0.01)],
        };
        assert!(synthetic_strikes(1.0, 1e4, &tiny).is_err());
        let sub_cent = StrikeGrid {
            tiers: vec![(f64::INFINITY, 1e-6)],
        };
        assert!(synthetic_strikes(1.0, 2.0, &sub_cent).is_err());
    }

    #[test]
    fn picks_inside_band_closest_to_target_ties_further_otm() {
        let strikes = [90.0, 95.0, 100.0];
        let deltas = [30.0, 40.0, 50.0];
        let c = select_strike(OptionKind::Put, &strikes, &deltas, 35.0, 45.0, 40.0).unwrap();
        assert_eq!(c.map(|c| c.strike), Some(95.0));
        let tie = select_strike(
            OptionKind::Put,
            &[94.0, 96.0],
            &[39.0, 41.0],
            35.0,
            45.0,
            40.0,
        )
        .unwrap();
        assert_eq!(tie.map(|c| c.strike), Some(94.0));
        let tie = select_strike(
            OptionKind::Call,
            &[104.0, 106.0],
            &[41.0, 39.0],
            35.0,
            45.0,
            40.0,
        )
        .unwrap();
        assert_eq!(tie.map(|c| c.strike), Some(106.0));
        let none = select_strike(OptionKind::Put, &strikes, &deltas, 60.0, 70.0, 65.0).unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn synthetic_selection_lands_in_band() {
        let c = select_synthetic(
            OptionKind::Put,
            250.0,
            5.0 / 365.0,
            0.35,
            0.04,
            0.0,
            40.0,
            50.0,
            45.0,
            &StrikeGrid::default(),
        )
        .unwrap()
        .unwrap();
        assert!((40.0..=50.0).contains(&c.abs_delta));
        assert_eq!(c.strike % 5.0, 0.0);
    }
}
