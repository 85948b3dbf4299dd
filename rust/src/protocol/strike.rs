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

/// The synthetic strike grid: $1 steps under $200, $5 steps from $200, covering [low, high].
pub fn synthetic_strikes(low: f64, high: f64) -> CoreResult<Vec<f64>> {
    check::positive("low", low)?;
    check::positive("high", high)?;
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
    let mut k = low.ceil().max(1.0);
    while k <= high {
        if k < 200.0 {
            out.push(k);
            k += 1.0;
        } else {
            let aligned = (k / 5.0).ceil() * 5.0;
            if aligned <= high {
                out.push(aligned);
            }
            k = aligned + 5.0;
        }
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
) -> CoreResult<Option<StrikeChoice>> {
    validate_inputs(spot, spot, t, vol, rate, div)?;
    let strikes = synthetic_strikes(spot * 0.5, spot * 1.5)?;
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
        let g = synthetic_strikes(195.0, 212.0).unwrap();
        assert_eq!(
            g,
            vec![195.0, 196.0, 197.0, 198.0, 199.0, 200.0, 205.0, 210.0]
        );
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
        )
        .unwrap()
        .unwrap();
        assert!((40.0..=50.0).contains(&c.abs_delta));
        assert_eq!(c.strike % 5.0, 0.0);
    }
}
