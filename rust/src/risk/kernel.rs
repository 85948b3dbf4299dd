//! The Black-Scholes inner loop of revaluation: branch-free, so the compiler vectorises it over
//! scenarios, with one exponential per option per scenario.
//!
//! For Black-Scholes, exp(-d2^2 / 2) = exp(-d1^2 / 2) x F / K_disc (F the discounted forward,
//! K_disc the discounted strike), so N(d1) and N(d2) share one exponential, taken of whichever
//! argument is nearer zero. Each tail probability N(-|d|) is that exponential times Hart's
//! rational function (Hart 1968, as given by G. West, "Better approximations to cumulative normal
//! functions", Wilmott 2005): absolute error below 2e-16 over the whole line, so prices agree with
//! `pricing::bs_price_unchecked` to rounding. The exponential is an inline Cody-Waite reduction
//! with a degree-13 Taylor polynomial (a few ulps), because a call to libm cannot be vectorised.

/// Numerator of Hart's approximation, highest degree first.
const HART_P: [f64; 7] = [
    3.526_249_659_989_11e-2,
    0.700_383_064_443_688,
    6.373_962_203_531_65,
    33.912_866_078_383,
    112.079_291_497_871,
    221.213_596_169_931,
    220.206_867_912_376,
];
/// Denominator of Hart's approximation, highest degree first.
const HART_Q: [f64; 8] = [
    8.838_834_764_831_84e-2,
    1.755_667_163_182_64,
    16.064_177_579_207,
    86.780_732_202_946_1,
    296.564_248_779_674,
    637.333_633_378_831,
    793.826_512_519_948,
    440.413_735_824_752,
];
/// Past this |d| the tail is below 1e-300 and its exponential factor is exactly 0; clamping the
/// rational function's argument keeps it finite (0 x finite = 0, never 0 x inf).
const TAIL_CLAMP: f64 = 40.0;

/// 1 / n! for n = 13 down to 0: exp(r) on |r| <= ln(2) / 2 to about 1e-17.
const EXP_TAYLOR: [f64; 14] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];
const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split so that k x LN2_HI is exact for |k| < 2^20 (Cody-Waite).
const LN2_HI: f64 = 6.931_471_803_691_238_164_9e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
/// 1.5 x 2^52: adding it rounds to an integer held in the low mantissa bits.
const ROUNDING_SHIFTER: f64 = 6_755_399_441_055_744.0;
/// Below this, exp underflows past the normal range; the result is taken as 0.
const EXP_FLOOR: f64 = -708.0;

#[inline(always)]
fn horner<const N: usize>(coefficients: &[f64; N], x: f64) -> f64 {
    coefficients.iter().fold(0.0, |acc, &c| acc * x + c)
}

/// exp(x) for x <= 0 (0 below -708 and for NaN), branch-free.
#[inline(always)]
pub(super) fn exp_non_positive(x: f64) -> f64 {
    let clamped = if x >= EXP_FLOOR { x } else { EXP_FLOOR };
    let shifted = clamped * LOG2_E + ROUNDING_SHIFTER;
    let k = shifted - ROUNDING_SHIFTER;
    let r = (clamped - k * LN2_HI) - k * LN2_LO;
    // k is an integer in [-1022, 0]: its low mantissa bits plus the bias form 2^k's exponent.
    let scale = f64::from_bits(shifted.to_bits().wrapping_add(1023) << 52);
    let y = horner(&EXP_TAYLOR, r) * scale;
    if x >= EXP_FLOOR {
        y
    } else {
        0.0
    }
}

/// A live option's constants (t - horizon > 0), hoisted out of the scenario loop.
#[derive(Debug, Clone, Copy)]
pub(super) struct LiveOption {
    /// +1 for a call, -1 for a put.
    pub sign: f64,
    pub ln_strike: f64,
    pub sqrt_t: f64,
    pub vol: f64,
    /// (rate - div) x t.
    pub drift: f64,
    /// exp(-div x t).
    pub fwd_disc: f64,
    /// strike x exp(-rate x t).
    pub strike_disc: f64,
    /// fwd_disc / strike_disc and its inverse: F / K_disc per unit of spot.
    pub fwd_over_strike: f64,
    pub strike_over_fwd: f64,
}

impl LiveOption {
    /// The option's value at `spot` (with its log and inverse) and vol + `vol_shift`.
    #[inline(always)]
    pub fn value(&self, spot: f64, ln_spot: f64, inv_spot: f64, vol_shift: f64) -> f64 {
        let sd = (self.vol + vol_shift) * self.sqrt_t;
        let d1 = (ln_spot - self.ln_strike + self.drift) / sd + 0.5 * sd;
        let d2 = d1 - sd;
        let (a1, a2) = (d1.abs(), d2.abs());
        let first_is_nearer = a1 <= a2;
        let near = if first_is_nearer { a1 } else { a2 };
        let e = exp_non_positive(-0.5 * near * near);
        // Plain selects of computed values, so the loop stays branch-free.
        let up = spot * self.fwd_over_strike;
        let down = inv_spot * self.strike_over_fwd;
        let e1 = e * if first_is_nearer { 1.0 } else { down };
        let e2 = e * if first_is_nearer { up } else { 1.0 };
        let b1 = if a1 < TAIL_CLAMP { a1 } else { TAIL_CLAMP };
        let b2 = if a2 < TAIL_CLAMP { a2 } else { TAIL_CLAMP };
        let (p1, q1) = (horner(&HART_P, b1), horner(&HART_Q, b1));
        let (p2, q2) = (horner(&HART_P, b2), horner(&HART_Q, b2));
        let inv = 1.0 / (q1 * q2);
        // tails N(-|d1|), N(-|d2|)
        let t1 = e1 * p1 * q2 * inv;
        let t2 = e2 * p2 * q1 * inv;
        // N(sign x d) for the sign of the option: the tail when sign x d < 0, else 1 - tail.
        let n1 = if self.sign * d1 < 0.0 { t1 } else { 1.0 - t1 };
        let n2 = if self.sign * d2 < 0.0 { t2 } else { 1.0 - t2 };
        self.sign * (spot * self.fwd_disc * n1 - self.strike_disc * n2)
    }

    /// out[s] += scale x (value in scenario s - today) over one chunk of scenario columns.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn accumulate(
        &self,
        scale: f64,
        today: f64,
        spot: &[f64],
        ln_spot: &[f64],
        inv_spot: &[f64],
        vol_shift: &[f64],
        out: &mut [f64],
    ) {
        let columns = spot.iter().zip(ln_spot).zip(inv_spot).zip(vol_shift);
        for (slot, (((&s, &ln_s), &inv_s), &dv)) in out.iter_mut().zip(columns) {
            *slot += scale * (self.value(s, ln_s, inv_s, dv) - today);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{bs_price_unchecked, normal, OptionKind};

    #[test]
    fn exp_matches_std() {
        let mut worst = 0.0_f64;
        for i in 0..=200_000 {
            let x = -(i as f64) * 0.003_54;
            let want = x.exp();
            let got = exp_non_positive(x);
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 1e-15, "worst relative error {worst}");
        assert_eq!(exp_non_positive(0.0), 1.0);
        assert_eq!(exp_non_positive(-800.0), 0.0);
        assert_eq!(exp_non_positive(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_non_positive(f64::NAN), 0.0);
    }

    fn leg(kind: OptionKind, strike: f64, t: f64, vol: f64, rate: f64, div: f64) -> LiveOption {
        let fwd_disc = (-div * t).exp();
        let strike_disc = strike * (-rate * t).exp();
        LiveOption {
            sign: kind.sign(),
            ln_strike: strike.ln(),
            sqrt_t: t.sqrt(),
            vol,
            drift: (rate - div) * t,
            fwd_disc,
            strike_disc,
            fwd_over_strike: fwd_disc / strike_disc,
            strike_over_fwd: strike_disc / fwd_disc,
        }
    }

    #[test]
    fn prices_match_the_reference_pricer() {
        let mut worst = 0.0_f64;
        for kind in [OptionKind::Call, OptionKind::Put] {
            for &strike in &[50.0, 90.0, 100.0, 110.0, 200.0] {
                for &t in &[1e-6, 1.0 / 365.0, 0.1, 1.0, 30.0] {
                    for &vol in &[0.01, 0.2, 0.8, 5.0] {
                        for i in 0..200 {
                            let spot = 20.0 + i as f64 * 1.4;
                            let (rate, div) = (0.05, 0.02);
                            let option = leg(kind, strike, t, vol - 0.005, rate, div);
                            let got = option.value(spot, spot.ln(), 1.0 / spot, 0.005);
                            let want = bs_price_unchecked(kind, spot, strike, t, vol, rate, div);
                            worst = worst.max((got - want).abs() / spot.max(strike));
                        }
                    }
                }
            }
        }
        assert!(worst < 1e-14, "worst error per unit of spot {worst}");
    }

    #[test]
    fn hart_tail_is_accurate() {
        let tail = |a: f64| {
            exp_non_positive(-0.5 * a * a) * horner(&HART_P, a.min(TAIL_CLAMP))
                / horner(&HART_Q, a.min(TAIL_CLAMP))
        };
        for i in 0..=5000 {
            let a = i as f64 * 0.01;
            let want = normal::cdf(-a);
            let got = tail(a);
            assert!((got - want).abs() < 2e-16, "a = {a}: {got} vs {want}");
            if a < 7.0 {
                assert!((got / want - 1.0).abs() < 3e-9, "a = {a}");
            }
        }
        assert_eq!(tail(1e300), 0.0);
    }
}
