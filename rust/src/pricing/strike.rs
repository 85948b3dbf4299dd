//! The strike whose Black-Scholes-Merton delta equals a target, in closed form.
//!
//! A call's delta is `e^{-qt} N(d1)`, in (0, e^{-qt}). A put's is `-e^{-qt} N(-d1)`; a put
//! target is accepted with either sign and read as its magnitude |delta| in (0, e^{-qt})
//! (traders quote a "25 delta put" as 0.25 or -0.25). Inverting N gives d1, and
//! `ln K = ln S + (r - q + vol^2/2) t - d1 vol sqrt(t)`.

use super::{normal, OptionKind};
use crate::error::{check, CoreError, CoreResult};

/// Validates the inputs other than the delta: spot, t, vol > 0; rate, div finite.
pub fn validate_market(spot: f64, t: f64, vol: f64, rate: f64, div: f64) -> CoreResult<()> {
    check::positive("spot", spot)?;
    check::positive("t", t)?;
    check::positive("vol", vol)?;
    check::finite("rate", rate)?;
    check::finite("div", div)?;
    Ok(())
}

/// Strike at which an option of `kind` has delta `delta`.
///
/// Errors: `delta` when it is not finite or unreachable (a call delta outside (0, e^{-qt}),
/// a put delta whose magnitude is outside it, or a strike beyond the floating-point range);
/// the other inputs as in `validate_market`.
pub fn strike_for_delta(
    kind: OptionKind,
    delta: f64,
    spot: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> CoreResult<f64> {
    validate_market(spot, t, vol, rate, div)?;
    strike_for_delta_unchecked(kind, delta, spot, t, vol, rate, div)
}

/// `strike_for_delta` once the market inputs are known to be valid; still checks `delta`.
pub fn strike_for_delta_unchecked(
    kind: OptionKind,
    delta: f64,
    spot: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> CoreResult<f64> {
    check::finite("delta", delta)?;
    let df_div = (-div * t).exp();
    let magnitude = match kind {
        OptionKind::Call => delta,
        OptionKind::Put => delta.abs(),
    };
    if !(magnitude > 0.0 && magnitude < df_div) {
        let what = match kind {
            OptionKind::Call => "a call delta must lie strictly between 0 and e^{-qt}",
            OptionKind::Put => "a put delta's magnitude must lie strictly between 0 and e^{-qt}",
        };
        return Err(CoreError::invalid(
            "delta",
            format!("{what} = {df_div}, got {delta}"),
        ));
    }
    // N(w d1) = |delta| e^{qt}; the division keeps the probability below 1 when it is.
    let p = magnitude / df_div;
    let d1 = kind.sign() * normal::inv_cdf(p);
    let sd = vol * t.sqrt();
    let ln_k = spot.ln() + (rate - div + 0.5 * vol * vol) * t - d1 * sd;
    let strike = ln_k.exp();
    if strike.is_finite() && strike > 0.0 && d1.is_finite() {
        Ok(strike)
    } else {
        Err(CoreError::invalid(
            "delta",
            format!("{delta} needs a strike outside the floating-point range (ln K = {ln_k})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::greeks::bs_greeks;
    use super::*;

    #[test]
    fn delta_of_the_strike_is_the_target() {
        for kind in [OptionKind::Call, OptionKind::Put] {
            for &target in &[1e-6, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.97] {
                for &(t, vol, r, q) in &[
                    (1.0 / 365.0, 0.2, 0.0, 0.0),
                    (0.5, 0.35, 0.04, 0.02),
                    (2.0, 1.0, 0.01, 0.0),
                ] {
                    let signed = kind.sign() * target;
                    let k = strike_for_delta(kind, signed, 100.0, t, vol, r, q).unwrap_or(f64::NAN);
                    let d = bs_greeks(kind, 100.0, k, t, vol, r, q)
                        .map(|g| g.delta)
                        .unwrap_or(f64::NAN);
                    assert!(
                        (d / signed - 1.0).abs() < 1e-9,
                        "{kind:?} target={signed} t={t} k={k} d={d}"
                    );
                }
            }
        }
    }

    #[test]
    fn put_delta_sign_is_read_as_magnitude() {
        let a = strike_for_delta(OptionKind::Put, 0.25, 100.0, 0.25, 0.3, 0.02, 0.0);
        let b = strike_for_delta(OptionKind::Put, -0.25, 100.0, 0.25, 0.3, 0.02, 0.0);
        assert_eq!(a, b);
        assert!(a.is_ok());
    }

    #[test]
    fn unreachable_deltas_name_delta() {
        let q_bound = (-0.05f64 * 1.0).exp();
        for (kind, d) in [
            (OptionKind::Call, 0.0),
            (OptionKind::Call, -0.3),
            (OptionKind::Call, 1.0),
            (OptionKind::Call, q_bound),
            (OptionKind::Put, 0.0),
            (OptionKind::Put, -1.0),
            (OptionKind::Put, f64::NAN),
        ] {
            let e = strike_for_delta(kind, d, 100.0, 1.0, 0.2, 0.0, 0.05);
            assert_eq!(
                e.err().map(|e| e.field().to_string()),
                Some("delta".to_string()),
                "{kind:?} {d}"
            );
        }
        let e = strike_for_delta(OptionKind::Call, 0.5, 100.0, 1.0, 0.0, 0.0, 0.0);
        assert_eq!(
            e.err().map(|e| e.field().to_string()),
            Some("vol".to_string())
        );
    }
}
