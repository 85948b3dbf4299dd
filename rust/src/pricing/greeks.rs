//! Black-Scholes-Merton price and sensitivities in one pass, in QuantLib's conventions
//! (AnalyticEuropeanEngine): delta and gamma per unit of spot, vega per 1.00 of volatility,
//! theta per year of calendar time (the derivative with respect to the valuation date, so usually
//! negative), rho per 1.00 of the continuously compounded rate.

use super::{normal, out_of_range, validate_inputs, OptionKind};
use crate::error::CoreResult;

const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Price and the five sensitivities of one European option.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Greeks {
    pub price: f64,
    pub delta: f64,
    pub gamma: f64,
    pub vega: f64,
    pub theta: f64,
    pub rho: f64,
}

/// What the price and greeks of one option are computed from (shared by `bs_price_unchecked`
/// and `bs_greeks_unchecked`, so a price and its greeks agree to the last bit).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stage {
    pub sqrt_t: f64,
    pub sd: f64,
    pub d1: f64,
    pub d2: f64,
    pub df_div: f64,
    /// S e^{-qt}
    pub fwd_disc: f64,
    /// K e^{-rt}
    pub k_disc: f64,
    /// e^{-d1^2/2}
    pub gauss1: f64,
    /// e^{-d2^2/2} = e^{-d1^2/2} F/K, unless that product under- or overflowed (see `probabilities`).
    pub gauss2: f64,
}

#[inline(always)]
pub(crate) fn stage(spot: f64, strike: f64, t: f64, vol: f64, rate: f64, div: f64) -> Stage {
    let sqrt_t = t.sqrt();
    let sd = vol * sqrt_t;
    let d1 = (f64::ln(spot / strike) + (rate - div) * t) / sd + 0.5 * sd;
    let d2 = d1 - sd;
    let df_div = f64::exp(-div * t);
    let fwd_disc = spot * df_div;
    let k_disc = strike * f64::exp(-rate * t);
    let gauss1 = f64::exp(-0.5 * d1 * d1);
    // d1^2 - d2^2 = 2 ln(F/K), so e^{-d2^2/2} = e^{-d1^2/2} (S e^{-qt}) / (K e^{-rt}).
    let gauss2 = gauss1 * (fwd_disc / k_disc);
    Stage {
        sqrt_t,
        sd,
        d1,
        d2,
        df_div,
        fwd_disc,
        k_disc,
        gauss1,
        gauss2,
    }
}

/// N(w d1) and N(w d2) for w = +1 (call) or -1 (put).
///
/// The tail on the side the price needs is taken directly (a put uses N(-d), not 1 - N(d)), so
/// deep out-of-the-money values keep their relative accuracy.
#[inline(always)]
pub(crate) fn probabilities(w: f64, st: &Stage) -> (f64, f64) {
    let gauss2 = if st.gauss2 > 0.0 && st.gauss2 <= 1.0 {
        st.gauss2
    } else {
        f64::exp(-0.5 * st.d2 * st.d2)
    };
    (
        normal::cdf_with_gaussian(w * st.d1, st.gauss1),
        normal::cdf_with_gaussian(w * st.d2, gauss2),
    )
}

/// The price from the stage and the probabilities.
#[inline(always)]
pub(crate) fn price_of(w: f64, st: &Stage, n1: f64, n2: f64) -> f64 {
    w * (st.fwd_disc * n1 - st.k_disc * n2)
}

/// Price and greeks without validation (inputs must satisfy `validate_inputs`; otherwise the
/// fields may be NaN, never a panic).
#[inline]
pub fn bs_greeks_unchecked(
    kind: OptionKind,
    spot: f64,
    strike: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> Greeks {
    let w = kind.sign();
    let st = stage(spot, strike, t, vol, rate, div);
    let (n1, n2) = probabilities(w, &st);
    let pdf = INV_SQRT_2PI * st.gauss1;
    let fwd_pdf = st.fwd_disc * pdf; // S e^{-qt} phi(d1) = K e^{-rt} phi(d2)
    Greeks {
        price: price_of(w, &st, n1, n2),
        delta: w * st.df_div * n1,
        gamma: st.df_div * pdf / (spot * st.sd),
        vega: fwd_pdf * st.sqrt_t,
        theta: -fwd_pdf * vol / (2.0 * st.sqrt_t)
            - w * (rate * st.k_disc * n2 - div * st.fwd_disc * n1),
        rho: w * t * st.k_disc * n2,
    }
}

impl Greeks {
    /// Every field is a finite number.
    pub fn is_finite(&self) -> bool {
        [
            self.price, self.delta, self.gamma, self.vega, self.theta, self.rho,
        ]
        .iter()
        .all(|x| x.is_finite())
    }
}

/// Validated price and greeks of one European option; an error (never NaN) when valid but
/// extreme inputs overflow.
pub fn bs_greeks(
    kind: OptionKind,
    spot: f64,
    strike: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> CoreResult<Greeks> {
    validate_inputs(spot, strike, t, vol, rate, div)?;
    let g = bs_greeks_unchecked(kind, spot, strike, t, vol, rate, div);
    if g.is_finite() {
        Ok(g)
    } else {
        Err(out_of_range(spot, strike, t, vol, rate, div))
    }
}

#[cfg(test)]
mod tests {
    use super::super::bs_price;
    use super::*;

    fn g(kind: OptionKind, s: f64, k: f64, t: f64, v: f64, r: f64, q: f64) -> Greeks {
        bs_greeks(kind, s, k, t, v, r, q).unwrap_or_default()
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
    }

    #[test]
    fn reference_values_from_quantlib() {
        // QuantLib 1.44 AnalyticEuropeanEngine, S=100 K=95 t=182/365 vol=0.25 r=0.03 q=0.01.
        let c = g(
            OptionKind::Call,
            100.0,
            95.0,
            182.0 / 365.0,
            0.25,
            0.03,
            0.01,
        );
        assert!(close(c.price, 10.150_873_147_045_932, 1e-12));
        assert!(close(c.delta, 0.665_008_946_329_592_5, 1e-12));
        assert!(close(c.gamma, 0.020_453_424_064_978_89, 1e-12));
        assert!(close(c.vega, 25.496_734_108_398_33, 1e-12));
        assert!(close(c.theta, -7.417_186_718_553_733, 1e-12));
        assert!(close(c.rho, 28.097_818_932_701_976, 1e-12));
    }

    #[test]
    fn price_matches_bs_price_and_parity_of_greeks() {
        let (s, k, t, v, r, q) = (80.0, 100.0, 0.75, 0.4, 0.05, 0.02);
        let c = g(OptionKind::Call, s, k, t, v, r, q);
        let p = g(OptionKind::Put, s, k, t, v, r, q);
        let cp = bs_price(OptionKind::Call, s, k, t, v, r, q).unwrap_or(f64::NAN);
        assert!(close(c.price, cp, 1e-14));
        let (dq, dr) = ((-q * t).exp(), (-r * t).exp());
        assert!(close(c.delta - p.delta, dq, 1e-14));
        assert!(close(c.gamma, p.gamma, 1e-14));
        assert!(close(c.vega, p.vega, 1e-14));
        assert!(close(c.rho - p.rho, k * t * dr, 1e-13));
        // d/dt of the forward minus strike: theta_c - theta_p = q S e^{-qt} - r K e^{-rt}
        assert!(close(c.theta - p.theta, q * s * dq - r * k * dr, 1e-12));
    }

    #[test]
    fn finite_differences_agree() {
        let (s, k, t, v, r, q) = (100.0, 110.0, 0.5, 0.3, 0.04, 0.015);
        for kind in [OptionKind::Call, OptionKind::Put] {
            let x = g(kind, s, k, t, v, r, q);
            let px = |s: f64, t: f64, v: f64, r: f64| {
                bs_price(kind, s, k, t, v, r, q).unwrap_or(f64::NAN)
            };
            let h = 1e-4;
            let delta = (px(s + h, t, v, r) - px(s - h, t, v, r)) / (2.0 * h);
            let gamma = (px(s + h, t, v, r) - 2.0 * px(s, t, v, r) + px(s - h, t, v, r)) / (h * h);
            let vega = (px(s, t, v + h, r) - px(s, t, v - h, r)) / (2.0 * h);
            let theta = -(px(s, t + h, v, r) - px(s, t - h, v, r)) / (2.0 * h);
            let rho = (px(s, t, v, r + h) - px(s, t, v, r - h)) / (2.0 * h);
            assert!(
                close(x.delta, delta, 1e-7),
                "{kind:?} delta {} {delta}",
                x.delta
            );
            assert!(
                close(x.gamma, gamma, 1e-4),
                "{kind:?} gamma {} {gamma}",
                x.gamma
            );
            assert!(close(x.vega, vega, 1e-7), "{kind:?} vega {} {vega}", x.vega);
            assert!(
                close(x.theta, theta, 1e-6),
                "{kind:?} theta {} {theta}",
                x.theta
            );
            assert!(close(x.rho, rho, 1e-7), "{kind:?} rho {} {rho}", x.rho);
        }
    }

    #[test]
    fn deep_out_of_the_money_put_keeps_relative_accuracy() {
        // N(-d) is taken directly, so a tiny put price is not lost to 1 - N(d) cancellation.
        let p = g(OptionKind::Put, 100.0, 50.0, 30.0 / 365.0, 0.2, 0.0, 0.0);
        assert!(p.price > 0.0 && p.price < 1e-20);
        assert!(p.delta < 0.0 && p.gamma > 0.0 && p.vega > 0.0);
    }

    #[test]
    fn rejects_bad_inputs_by_name() {
        let e = bs_greeks(OptionKind::Put, 100.0, 100.0, 0.0, 0.2, 0.0, 0.0);
        assert_eq!(
            e.err().map(|e| e.field().to_string()),
            Some("t".to_string())
        );
        let e = bs_greeks(OptionKind::Put, 100.0, 100.0, 1.0, 0.2, f64::INFINITY, 0.0);
        assert_eq!(
            e.err().map(|e| e.field().to_string()),
            Some("rate".to_string())
        );
    }
}
