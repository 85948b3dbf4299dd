//! Implied volatility of a European option under Black-Scholes-Merton.
//!
//! The price is first moved to the out-of-the-money side by put-call parity (an in-the-money
//! option's time value is the out-of-the-money option's price), then normalised to Black's
//! dimensionless form
//!
//! ```text
//!   b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2),   x = -|ln(F/K)| <= 0,  s = vol sqrt(t)
//! ```
//!
//! which is increasing in `s` from 0 to `e^{x/2}`, convex below the inflection point
//! `s_c = sqrt(2|x|)` and concave above it. Below the inflection point the solver works on
//! `ln b` (nearly linear in 1/s^2 there, so tiny prices of deep out-of-the-money or one-day options
//! converge as fast as at the money); above it, on `b` itself. Each step is a Halley step kept
//! inside a bracket that every evaluation tightens, with bisection as the fall-back, so the
//! iteration cannot leave the region where the root is.

use super::{normal, OptionKind};
use crate::error::{check, CoreError, CoreResult};

const MAX_ITERATIONS: usize = 100;
/// Relative change in `s` at which the iteration stops (well below what a price can resolve).
const S_TOLERANCE: f64 = 1e-14;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Validates the inputs other than the price: spot, strike, t > 0; rate, div finite.
pub fn validate_market(spot: f64, strike: f64, t: f64, rate: f64, div: f64) -> CoreResult<()> {
    check::positive("spot", spot)?;
    check::positive("strike", strike)?;
    check::positive("t", t)?;
    check::finite("rate", rate)?;
    check::finite("div", div)?;
    Ok(())
}

/// Implied volatility (per year, the `vol` that `bs_price` takes) of one option.
///
/// Errors: `price` when it is not finite or not strictly inside the no-arbitrage bounds
/// (above the discounted intrinsic value, below `S e^{-qt}` for a call or `K e^{-rt}` for a put);
/// the other inputs as in `validate_market`.
pub fn implied_vol(
    kind: OptionKind,
    price: f64,
    spot: f64,
    strike: f64,
    t: f64,
    rate: f64,
    div: f64,
) -> CoreResult<f64> {
    validate_market(spot, strike, t, rate, div)?;
    check::finite("price", price)?;
    implied_vol_unchecked(kind, price, spot, strike, t, rate, div)
}

/// Implied volatility once the market inputs are known to be valid (`validate_market`);
/// still checks the price against its bounds and returns an error rather than a wrong number.
pub fn implied_vol_unchecked(
    kind: OptionKind,
    price: f64,
    spot: f64,
    strike: f64,
    t: f64,
    rate: f64,
    div: f64,
) -> CoreResult<f64> {
    let fwd_disc = spot * (-div * t).exp(); // S e^{-qt}
    let k_disc = strike * (-rate * t).exp(); // K e^{-rt}
    let intrinsic = (kind.sign() * (fwd_disc - k_disc)).max(0.0);
    let upper = match kind {
        OptionKind::Call => fwd_disc,
        OptionKind::Put => k_disc,
    };
    if !(price > intrinsic && price < upper) {
        return Err(out_of_bounds(price, intrinsic, upper));
    }
    // x = ln(F/K) with F = S e^{(r-q)t}, written as pricing writes it.
    let log_moneyness = (spot / strike).ln() + (rate - div) * t;
    // The out-of-the-money side: a call when F <= K, a put when F > K.
    let otm_kind = if log_moneyness > 0.0 {
        OptionKind::Put
    } else {
        OptionKind::Call
    };
    let otm_price = if otm_kind == kind {
        price
    } else {
        price - kind.sign() * (fwd_disc - k_disc)
    };
    // sqrt(F K) e^{-rt} = sqrt(S e^{-qt} K e^{-rt}), taken as a product of roots to avoid overflow.
    let beta = otm_price / (fwd_disc.sqrt() * k_disc.sqrt());
    let x = -log_moneyness.abs();
    if !(beta > 0.0 && beta.is_finite()) {
        return Err(out_of_bounds(price, intrinsic, upper));
    }
    let s = normalised_implied_sd(x, beta).map_err(|e| match e {
        Solve::AboveSupremum => CoreError::invalid(
            "price",
            format!(
                "{price} is so close to the upper no-arbitrage bound {upper} that no volatility \
                 reproduces it in double precision"
            ),
        ),
        Solve::NoConvergence => CoreError::no_convergence(
            "price",
            format!("implied volatility did not converge within {MAX_ITERATIONS} iterations"),
        ),
    })?;
    let vol = s / t.sqrt();
    if vol.is_finite() && vol > 0.0 {
        Ok(vol)
    } else {
        Err(CoreError::invalid(
            "price",
            format!("implies a volatility outside the representable range ({vol})"),
        ))
    }
}

fn out_of_bounds(price: f64, lower: f64, upper: f64) -> CoreError {
    CoreError::invalid(
        "price",
        format!(
            "must lie strictly between the no-arbitrage bounds {lower} and {upper}, got {price}"
        ),
    )
}

/// Why the normalised solver stopped without a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Solve {
    /// `beta` is at or above every representable `b(x, s)`.
    AboveSupremum,
    NoConvergence,
}

/// Black's normalised out-of-the-money call at one log-moneyness x <= 0, with e^{+-x/2} kept so
/// that each evaluation costs one exponential.
#[derive(Debug, Clone, Copy)]
struct Normalised {
    x: f64,
    /// e^{x/2}
    up: f64,
    /// e^{-x/2}
    down: f64,
}

impl Normalised {
    fn new(x: f64) -> Self {
        Normalised {
            x,
            up: (0.5 * x).exp(),
            down: (-0.5 * x).exp(),
        }
    }

    /// b(x, s) and db/ds for s > 0.
    ///
    /// With h = x/s and t = s/2, db/ds = g / sqrt(2 pi) where g = e^{-(h^2+t^2)/2}, and the two
    /// Gaussian factors of N(h +- t) are g e^{-+x/2} (since 2ht = x): one exponential serves all.
    /// Below the inflection point (h + t < 0, both arguments negative) g is taken out of the
    /// difference, b = g [m(-(h+t)) - m(-(h-t))] with m(u) = N(-u) e^{u^2/2} the scaled upper tail,
    /// so the rounding of h +- t is not amplified by the cancellation of two nearly equal tails.
    #[inline]
    fn eval(&self, s: f64) -> (f64, f64) {
        let h = self.x / s;
        let t = 0.5 * s;
        let g = (-0.5 * (h * h + t * t)).exp();
        let b = if h + t < 0.0 {
            g * (normal::scaled_upper_tail(-(h + t)) - normal::scaled_upper_tail(-(h - t)))
        } else {
            self.up * normal::cdf_with_gaussian(h + t, g * self.down)
                - self.down * normal::cdf_with_gaussian(h - t, g * self.up)
        };
        (b, INV_SQRT_2PI * g)
    }
}

/// The root s > 0 of b(x, s) = beta for x <= 0 and 0 < beta < e^{x/2}.
fn normalised_implied_sd(x: f64, beta: f64) -> Result<f64, Solve> {
    solve_normalised(x, beta).map(|(s, _)| s)
}

/// `normalised_implied_sd` and the number of objective evaluations it took.
fn solve_normalised(x: f64, beta: f64) -> Result<(f64, usize), Solve> {
    let b_max = (0.5 * x).exp();
    if beta.is_nan() || beta >= b_max {
        return Err(Solve::AboveSupremum);
    }
    let black = Normalised::new(x);
    let s_c = (-2.0 * x).sqrt();
    let (b_c, vega_c) = if s_c > 0.0 {
        black.eval(s_c)
    } else {
        (0.0, 0.0)
    };
    if beta == b_c {
        return Ok((s_c, 0));
    }
    let lower_region = beta < b_c;
    let ln_beta = beta.ln();

    // Bracket [lo, hi] with b(lo) < beta < b(hi); hi = inf until a point above the root is seen.
    let (mut lo, mut hi) = if lower_region {
        (0.0, s_c)
    } else {
        (s_c, f64::INFINITY)
    };
    let mut s = if lower_region {
        lower_guess(x, ln_beta, s_c, b_c, vega_c)
    } else {
        upper_guess(beta, b_max, s_c)
    };
    if !(s > lo && s < hi) {
        s = if hi.is_finite() {
            0.5 * (lo + hi)
        } else {
            lo.max(1.0) * 2.0
        };
    }

    for evaluation in 1..=MAX_ITERATIONS {
        let (b, vega) = black.eval(s);
        // Objective and its first two derivatives in s; b''/b' = x^2/s^3 - s/4.
        let curvature = x * x / (s * s * s) - 0.25 * s;
        let (f, d1, d2, floor) = if lower_region {
            let r = vega / b;
            // ln b carries the rounding of the Gaussian factor (~h^2/2 ulps) and of the erfcx
            // difference, whose cancellation grows like (|h| + 1.25)/s.
            let h = x / s;
            let floor = 4.0 * f64::EPSILON * (1.0 + 0.5 * h * h + (1.25 - h) / s);
            (b.ln() - ln_beta, r, r * curvature - r * r, floor)
        } else {
            (b - beta, vega, vega * curvature, 2.0 * f64::EPSILON * beta)
        };
        // At the rounding floor of the objective no step can do better.
        if f.abs() <= floor {
            return Ok((s, evaluation));
        }
        if f < 0.0 || (f.is_nan() && b < beta) {
            lo = s;
        } else {
            hi = s;
        }
        // Halley step, plain Newton when the Halley correction is unreliable.
        let newton = -f / d1;
        let halley_den = 1.0 + 0.5 * newton * d2 / d1;
        let step = if halley_den.is_finite() && halley_den > 0.5 {
            newton / halley_den
        } else {
            newton
        };
        if step.abs() <= S_TOLERANCE * s {
            return Ok((s + step, evaluation));
        }
        let mut next = s + step;
        if !(next.is_finite() && next > lo && next < hi) {
            // Bisect the bracket (geometrically when it spans a wide range), or grow an open one.
            next = if hi.is_finite() {
                if lo > 0.0 && hi > 4.0 * lo {
                    (lo * hi).sqrt()
                } else {
                    0.5 * (lo + hi)
                }
            } else {
                2.0 * s.max(lo)
            };
        }
        if (hi - lo) <= S_TOLERANCE * s {
            return Ok((next, evaluation));
        }
        s = next;
        if s > 1e150 {
            return Err(Solve::AboveSupremum);
        }
    }
    Err(Solve::NoConvergence)
}

/// Below the inflection point: a model ln b ~ A + c ln s - x^2/(2 s^2) that has the exact s -> 0
/// exponent and matches b and its slope at s_c, solved by two Newton steps in u = 1/s^2 (in which
/// it is convex and nearly linear).
fn lower_guess(x: f64, ln_beta: f64, s_c: f64, b_c: f64, vega_c: f64) -> f64 {
    let half_x2 = 0.5 * x * x;
    let c = (s_c * vega_c / b_c + 0.5 * x).max(0.0); // 0.5 x = -|x|/2
    let a = b_c.ln() - c * s_c.ln() + half_x2 / (s_c * s_c);
    let mut u = 1.0 / (s_c * s_c);
    for _ in 0..2 {
        let g = a - 0.5 * c * u.ln() - half_x2 * u - ln_beta;
        let dg = -0.5 * c / u - half_x2;
        u -= g / dg;
    }
    let s = 1.0 / u.sqrt();
    if s.is_finite() && s > 0.0 {
        s.min(s_c)
    } else {
        0.5 * s_c
    }
}

/// Above the inflection point: b_max - b ~ 2 b_max N(-s/2) for large s (exact at x = 0).
fn upper_guess(beta: f64, b_max: f64, s_c: f64) -> f64 {
    let tail = (b_max - beta) / (2.0 * b_max);
    let s = -2.0 * normal::inv_cdf_approx(tail);
    s.max(s_c)
}

#[cfg(test)]
mod tests {
    use super::super::bs_price;
    use super::*;

    fn normalised_call(x: f64, s: f64) -> f64 {
        Normalised::new(x).eval(s).0
    }

    fn normalised_vega(x: f64, s: f64) -> f64 {
        Normalised::new(x).eval(s).1
    }

    fn iv(kind: OptionKind, p: f64, s: f64, k: f64, t: f64, r: f64, q: f64) -> f64 {
        implied_vol(kind, p, s, k, t, r, q).unwrap_or(f64::NAN)
    }

    #[test]
    fn round_trips_across_moneyness_and_expiry() {
        for kind in [OptionKind::Call, OptionKind::Put] {
            for &k in &[50.0, 70.0, 90.0, 99.0, 100.0, 101.0, 120.0, 150.0, 200.0] {
                for &days in &[1.0, 7.0, 30.0, 91.0, 365.0, 730.0] {
                    for &vol in &[0.05, 0.2, 0.6, 1.5] {
                        for &(r, q) in &[(0.0, 0.0), (0.05, 0.02)] {
                            let t = days / 365.0;
                            let p = bs_price(kind, 100.0, k, t, vol, r, q).unwrap_or(f64::NAN);
                            let got = implied_vol(kind, p, 100.0, k, t, r, q);
                            let Ok(v) = got else {
                                // Only a price with no time value left in double precision may fail.
                                let intrinsic = (kind.sign()
                                    * (100.0 * (-q * t).exp() - k * (-r * t).exp()))
                                .max(0.0);
                                assert!(
                                    p - intrinsic <= 1e-14 * p.max(1.0),
                                    "{kind:?} k={k} d={days} v={vol} p={p}"
                                );
                                continue;
                            };
                            let back = bs_price(kind, 100.0, k, t, v, r, q).unwrap_or(f64::NAN);
                            assert!(
                                (back - p).abs() <= 1e-12 * p.max(1e-300) + 1e-14,
                                "{kind:?} k={k} d={days} {p} {back}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn recovers_vol_where_vega_is_meaningful() {
        let p = bs_price(OptionKind::Call, 100.0, 90.0, 1.0 / 365.0, 0.9, 0.01, 0.0)
            .unwrap_or(f64::NAN);
        assert!((iv(OptionKind::Call, p, 100.0, 90.0, 1.0 / 365.0, 0.01, 0.0) - 0.9).abs() < 1e-9);
        let p = bs_price(OptionKind::Put, 100.0, 50.0, 30.0 / 365.0, 0.35, 0.03, 0.01)
            .unwrap_or(f64::NAN);
        assert!(p < 1e-8);
        assert!(
            (iv(OptionKind::Put, p, 100.0, 50.0, 30.0 / 365.0, 0.03, 0.01) - 0.35).abs() < 1e-12
        );
        let p = bs_price(OptionKind::Call, 100.0, 100.0, 2.0, 4.0, 0.0, 0.0).unwrap_or(f64::NAN);
        assert!((iv(OptionKind::Call, p, 100.0, 100.0, 2.0, 0.0, 0.0) - 4.0).abs() < 1e-8);
    }

    #[test]
    fn prices_outside_the_bounds_are_errors_naming_price() {
        let cases = [
            (OptionKind::Call, 0.0),
            (OptionKind::Call, -1.0),
            (OptionKind::Call, 100.0),
            (OptionKind::Call, 150.0),
            (OptionKind::Call, 4.999),
            (OptionKind::Put, 0.0),
            (OptionKind::Put, 105.0),
            (OptionKind::Put, f64::NAN),
        ];
        for (kind, p) in cases {
            // S=100, K=95 (call intrinsic 5), no rates.
            let e = implied_vol(kind, p, 100.0, 95.0, 0.5, 0.0, 0.0);
            assert_eq!(
                e.err().map(|e| e.field().to_string()),
                Some("price".to_string()),
                "{kind:?} {p}"
            );
        }
        let e = implied_vol(OptionKind::Call, 5.0, 100.0, 95.0, -0.5, 0.0, 0.0);
        assert_eq!(
            e.err().map(|e| e.field().to_string()),
            Some("t".to_string())
        );
    }

    #[test]
    fn few_evaluations_across_the_normalised_plane() {
        let (mut total, mut count, mut worst) = (0usize, 0usize, 0usize);
        for &x in &[
            0.0, -1e-6, -1e-3, -0.01, -0.05, -0.1, -0.2, -0.4, -0.7, -1.0, -2.0,
        ] {
            for &s in &[
                1e-3, 3e-3, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0,
            ] {
                let b = normalised_call(x, s);
                if b.is_nan() || b <= 1e-250 {
                    continue;
                }
                let Ok((_, n)) = solve_normalised(x, b) else {
                    unreachable!("x={x} s={s}")
                };
                total += n;
                count += 1;
                worst = worst.max(n);
            }
        }
        let mean = total as f64 / count as f64;
        eprintln!("mean evaluations {mean:.2}, worst {worst}, over {count} cases");
        assert!(mean < 5.0 && worst <= 12, "mean {mean} worst {worst}");
    }

    #[test]
    fn few_evaluations_on_a_random_book() {
        // Strikes 50%..200% of spot, 1 day..2 years, vol 5%..100%, as in bench_pricing.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut uniform = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut total, mut solved, mut worst) = (0usize, 0usize, 0usize);
        for _ in 0..20_000 {
            let (k, t, v) = (
                50.0 + 150.0 * uniform(),
                (1.0 + (730.0 * uniform()).floor()) / 365.0,
                0.05 + 0.95 * uniform(),
            );
            let (r, q) = (0.06 * uniform(), 0.03 * uniform());
            let x = ((100.0f64 / k).ln() + (r - q) * t).abs();
            let s = v * t.sqrt();
            let b = normalised_call(-x, s);
            if b.is_nan() || b <= 1e-300 {
                continue;
            }
            let Ok((got, n)) = solve_normalised(-x, b) else {
                unreachable!("x={x} s={s}")
            };
            assert!(
                (got / s - 1.0).abs() < 1e-9 + 4.0 * f64::EPSILON * b / normalised_vega(-x, s) / s
            );
            total += n;
            solved += 1;
            worst = worst.max(n);
        }
        let mean = total as f64 / solved as f64;
        eprintln!("random book: mean evaluations {mean:.2}, worst {worst}, over {solved} options");
        assert!(mean < 4.0 && worst <= 12, "mean {mean} worst {worst}");
    }

    #[test]
    fn normalised_solver_hits_its_own_prices() {
        for &x in &[0.0, -1e-8, -0.01, -0.3, -1.0, -3.0, -10.0] {
            for &s in &[1e-3, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0] {
                let b = normalised_call(x, s);
                if b.is_nan() || b <= 1e-280 || b >= (0.5 * x).exp() {
                    continue;
                }
                let got = normalised_implied_sd(x, b).unwrap_or(f64::NAN);
                // What beta's own rounding allows: an ulp of b moves s by ulp / vega.
                let conditioning = 4.0 * f64::EPSILON * b / normalised_vega(x, s);
                assert!(
                    (got - s).abs() < 1e-12 * s + conditioning,
                    "x={x} s={s} got={got} b={b}"
                );
            }
        }
    }
}
