//! The Black-Scholes inner loop of revaluation, written once over pulp's portable SIMD vectors:
//! at run time the widest instruction set the CPU offers is used (AVX2 + FMA on current x86-64,
//! four scenarios per instruction), with a scalar fallback everywhere else.
//!
//! For Black-Scholes, exp(-d2^2 / 2) = exp(-d1^2 / 2) x F / K_disc (F the discounted forward,
//! K_disc the discounted strike), so N(d1) and N(d2) share one exponential, taken of whichever
//! argument is nearer zero. Each tail probability N(-|d|) is that exponential times Hart's
//! rational function (Hart 1968, as given by G. West, "Better approximations to cumulative normal
//! functions", Wilmott 2005): absolute error below 2e-16 over the whole line, so prices agree with
//! `pricing::bs_price_unchecked` to rounding. The exponential and logarithm are the shared vector
//! versions in `crate::simd`.

use pulp::Simd;

use crate::simd::{exp_non_positive, ln_1p_near_zero, polynomial};

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

/// Returns inside this range use the series (|r / (2 + r)| < 0.171, truncation below 1e-18);
/// others, rare for daily moves, take the scalar logarithm.
const LOG1P_LOW: f64 = -0.29;
const LOG1P_HIGH: f64 = 0.41;

/// ln_spot[i] = ln(spot0 x (1 + ret[i])) for one underlying's column of scenario returns
/// (each > -1): ln(spot0) + ln(1 + r) in vector registers, the scalar logarithm for large moves.
#[inline(always)]
pub(super) fn log_spot_column<S: Simd>(simd: S, spot0: f64, ret: &[f64], ln_spot: &mut [f64]) {
    let ln_spot0 = spot0.ln();
    {
        let base = simd.splat_f64s(ln_spot0);
        let (ret_head, ret_tail) = S::as_simd_f64s(ret);
        let (out_head, out_tail) = S::as_mut_simd_f64s(&mut *ln_spot);
        for (slot, &r) in out_head.iter_mut().zip(ret_head) {
            *slot = simd.add_f64s(base, ln_1p_near_zero(simd, r));
        }
        if !out_tail.is_empty() && out_tail.len() == ret_tail.len() {
            let r = simd.partial_load_f64s(ret_tail);
            simd.partial_store_f64s(out_tail, simd.add_f64s(base, ln_1p_near_zero(simd, r)));
        }
    }
    for (slot, &r) in ln_spot.iter_mut().zip(ret) {
        if !(LOG1P_LOW..=LOG1P_HIGH).contains(&r) {
            *slot = (spot0 * (1.0 + r)).ln();
        }
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

/// Scenario inputs of one underlying, one lane per scenario.
#[derive(Clone, Copy)]
pub(super) struct Lanes<V> {
    pub spot: V,
    pub ln_spot: V,
    pub inv_spot: V,
    pub vol_shift: V,
}

impl LiveOption {
    /// The option's value in every lane: spot (with its log and inverse) and vol + vol_shift.
    #[inline(always)]
    pub fn value<S: Simd>(&self, simd: S, x: Lanes<S::f64s>) -> S::f64s {
        let splat = |v: f64| simd.splat_f64s(v);
        let (zero, one) = (splat(0.0), splat(1.0));
        let sd = simd.mul_f64s(
            simd.add_f64s(splat(self.vol), x.vol_shift),
            splat(self.sqrt_t),
        );
        let log_moneyness = simd.add_f64s(
            simd.sub_f64s(x.ln_spot, splat(self.ln_strike)),
            splat(self.drift),
        );
        let d1 = simd.mul_add_e_f64s(splat(0.5), sd, simd.div_f64s(log_moneyness, sd));
        let d2 = simd.sub_f64s(d1, sd);
        let (a1, a2) = (simd.abs_f64s(d1), simd.abs_f64s(d2));
        let first_is_nearer = simd.less_than_or_equal_f64s(a1, a2);
        let near = simd.select_f64s(first_is_nearer, a1, a2);
        let e = exp_non_positive(simd, simd.mul_f64s(simd.mul_f64s(splat(-0.5), near), near));
        // The other exponential follows from exp(-d2^2/2) = exp(-d1^2/2) F / K_disc.
        let up = simd.mul_f64s(x.spot, splat(self.fwd_over_strike));
        let down = simd.mul_f64s(x.inv_spot, splat(self.strike_over_fwd));
        let e1 = simd.mul_f64s(e, simd.select_f64s(first_is_nearer, one, down));
        let e2 = simd.mul_f64s(e, simd.select_f64s(first_is_nearer, up, one));
        let b1 = simd.min_f64s(a1, splat(TAIL_CLAMP));
        let b2 = simd.min_f64s(a2, splat(TAIL_CLAMP));
        let (p1, q1) = (polynomial(simd, &HART_P, b1), polynomial(simd, &HART_Q, b1));
        let (p2, q2) = (polynomial(simd, &HART_P, b2), polynomial(simd, &HART_Q, b2));
        let inv = simd.div_f64s(one, simd.mul_f64s(q1, q2));
        // Tails N(-|d1|), N(-|d2|).
        let t1 = simd.mul_f64s(simd.mul_f64s(e1, p1), simd.mul_f64s(q2, inv));
        let t2 = simd.mul_f64s(simd.mul_f64s(e2, p2), simd.mul_f64s(q1, inv));
        // N(sign x d): the tail where sign x d < 0, else 1 - tail.
        let sign = splat(self.sign);
        let n1 = simd.select_f64s(
            simd.less_than_f64s(simd.mul_f64s(sign, d1), zero),
            t1,
            simd.sub_f64s(one, t1),
        );
        let n2 = simd.select_f64s(
            simd.less_than_f64s(simd.mul_f64s(sign, d2), zero),
            t2,
            simd.sub_f64s(one, t2),
        );
        let fwd = simd.mul_f64s(x.spot, splat(self.fwd_disc));
        let call_like = simd.sub_f64s(
            simd.mul_f64s(fwd, n1),
            simd.mul_f64s(splat(self.strike_disc), n2),
        );
        simd.mul_f64s(sign, call_like)
    }

    /// out[s] += scale x (value in scenario s - today) over one chunk of scenario columns
    /// (all of the same length as `out`).
    #[inline(always)]
    pub fn accumulate<S: Simd>(
        &self,
        simd: S,
        scale: f64,
        today: f64,
        columns: Lanes<&[f64]>,
        out: &mut [f64],
    ) {
        let n = out.len();
        if columns.spot.len() != n
            || columns.ln_spot.len() != n
            || columns.inv_spot.len() != n
            || columns.vol_shift.len() != n
        {
            return;
        }
        let (scale, today) = (simd.splat_f64s(scale), simd.splat_f64s(today));
        let (out_head, out_tail) = S::as_mut_simd_f64s(out);
        let (spot_head, spot_tail) = S::as_simd_f64s(columns.spot);
        let (ln_head, ln_tail) = S::as_simd_f64s(columns.ln_spot);
        let (inv_head, inv_tail) = S::as_simd_f64s(columns.inv_spot);
        let (shift_head, shift_tail) = S::as_simd_f64s(columns.vol_shift);
        let lanes = |i: usize| Lanes {
            spot: spot_head[i],
            ln_spot: ln_head[i],
            inv_spot: inv_head[i],
            vol_shift: shift_head[i],
        };
        let len = out_head
            .len()
            .min(spot_head.len())
            .min(ln_head.len())
            .min(inv_head.len())
            .min(shift_head.len());
        let mut i = 0;
        // Two independent vectors per step keep more of the long dependency chains in flight.
        while i + 1 < len {
            let v0 = self.value(simd, lanes(i));
            let v1 = self.value(simd, lanes(i + 1));
            out_head[i] = simd.mul_add_e_f64s(scale, simd.sub_f64s(v0, today), out_head[i]);
            out_head[i + 1] = simd.mul_add_e_f64s(scale, simd.sub_f64s(v1, today), out_head[i + 1]);
            i += 2;
        }
        if i < len {
            let v = self.value(simd, lanes(i));
            out_head[i] = simd.mul_add_e_f64s(scale, simd.sub_f64s(v, today), out_head[i]);
        }
        if !out_tail.is_empty() {
            let lanes = Lanes {
                spot: simd.partial_load_f64s(spot_tail),
                ln_spot: simd.partial_load_f64s(ln_tail),
                inv_spot: simd.partial_load_f64s(inv_tail),
                vol_shift: simd.partial_load_f64s(shift_tail),
            };
            let v = self.value(simd, lanes);
            let acc = simd.mul_add_e_f64s(
                scale,
                simd.sub_f64s(v, today),
                simd.partial_load_f64s(out_tail),
            );
            simd.partial_store_f64s(out_tail, acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{bs_price_unchecked, normal, OptionKind};
    use pulp::{Arch, Scalar, WithSimd};

    /// exp_non_positive of every x, lane by lane.
    struct ExpEach<'a>(&'a [f64]);
    impl WithSimd for ExpEach<'_> {
        type Output = Vec<f64>;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> Vec<f64> {
            self.0
                .iter()
                .map(|&x| {
                    let mut out = [0.0];
                    simd.partial_store_f64s(
                        &mut out,
                        exp_non_positive(simd, simd.partial_load_f64s(&[x])),
                    );
                    out[0]
                })
                .collect()
        }
    }

    /// scale x (value - today) + 1 for each spot, through `accumulate` (vector body and tail).
    struct Revalue<'a> {
        option: &'a LiveOption,
        spot: &'a [f64],
        vol_shift: f64,
    }
    impl WithSimd for Revalue<'_> {
        type Output = Vec<f64>;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> Vec<f64> {
            let ln: Vec<f64> = self.spot.iter().map(|s| s.ln()).collect();
            let inv: Vec<f64> = self.spot.iter().map(|s| 1.0 / s).collect();
            let shift = vec![self.vol_shift; self.spot.len()];
            let mut out = vec![1.0; self.spot.len()];
            let columns = Lanes {
                spot: self.spot,
                ln_spot: &ln,
                inv_spot: &inv,
                vol_shift: &shift,
            };
            self.option.accumulate(simd, 2.0, 0.25, columns, &mut out);
            out
        }
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
    fn exp_matches_std_on_every_arch() {
        let xs: Vec<f64> = (0..=200_000).map(|i| -(i as f64) * 0.003_54).collect();
        for got in [
            ExpEach(&xs).with_simd(Scalar),
            Arch::new().dispatch(ExpEach(&xs)),
        ] {
            let worst = xs
                .iter()
                .zip(&got)
                .map(|(x, g)| ((g - x.exp()) / x.exp()).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-15, "worst relative error {worst}");
        }
        let edges = [0.0, -800.0, f64::NEG_INFINITY, f64::NAN];
        for got in [
            ExpEach(&edges).with_simd(Scalar),
            Arch::new().dispatch(ExpEach(&edges)),
        ] {
            assert_eq!(got, vec![1.0, 0.0, 0.0, 0.0]);
        }
    }

    #[test]
    fn prices_match_the_reference_pricer_on_every_arch() {
        // 203 spots: not a multiple of any vector width, so the tail path runs too.
        let spots: Vec<f64> = (0..203).map(|i| 20.0 + i as f64 * 1.4).collect();
        let mut worst = 0.0_f64;
        for kind in [OptionKind::Call, OptionKind::Put] {
            for &strike in &[50.0, 90.0, 100.0, 110.0, 200.0] {
                for &t in &[1e-6, 1.0 / 365.0, 0.1, 1.0, 30.0] {
                    for &vol in &[0.01, 0.2, 0.8, 5.0] {
                        let (rate, div) = (0.05, 0.02);
                        let option = leg(kind, strike, t, vol - 0.005, rate, div);
                        let run = Revalue {
                            option: &option,
                            spot: &spots,
                            vol_shift: 0.005,
                        };
                        let scalar = Revalue {
                            option: &option,
                            spot: &spots,
                            vol_shift: 0.005,
                        }
                        .with_simd(Scalar);
                        for got in [scalar, Arch::new().dispatch(run)] {
                            for (&spot, &g) in spots.iter().zip(&got) {
                                let want =
                                    bs_price_unchecked(kind, spot, strike, t, vol, rate, div);
                                let value = (g - 1.0) / 2.0 + 0.25;
                                worst = worst.max((value - want).abs() / spot.max(strike));
                            }
                        }
                    }
                }
            }
        }
        assert!(worst < 1e-14, "worst error per unit of spot {worst}");
    }

    #[test]
    fn accumulate_ignores_mismatched_columns() {
        let option = leg(OptionKind::Call, 100.0, 0.5, 0.2, 0.0, 0.0);
        let mut out = vec![7.0; 3];
        let columns = Lanes {
            spot: &[100.0; 3][..],
            ln_spot: &[0.0; 2][..],
            inv_spot: &[0.01; 3][..],
            vol_shift: &[0.0; 3][..],
        };
        option.accumulate(Scalar, 1.0, 0.0, columns, &mut out);
        assert_eq!(out, vec![7.0; 3]);
    }

    struct LogColumn<'a>(f64, &'a [f64]);
    impl WithSimd for LogColumn<'_> {
        type Output = Vec<f64>;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> Vec<f64> {
            let mut out = vec![0.0; self.1.len()];
            log_spot_column(simd, self.0, self.1, &mut out);
            out
        }
    }

    #[test]
    fn log_spot_matches_std_on_every_arch() {
        // Inside and outside the series' range, and an odd length so the tail path runs.
        let ret: Vec<f64> = (0..2001)
            .map(|i| -0.999 + i as f64 * 0.0025)
            .chain([0.0, 1e-12, 5.0, 1e6])
            .collect();
        for spot0 in [0.01, 1.0, 123.45, 1e7] {
            for got in [
                LogColumn(spot0, &ret).with_simd(Scalar),
                Arch::new().dispatch(LogColumn(spot0, &ret)),
            ] {
                for (&r, &g) in ret.iter().zip(&got) {
                    let want = (spot0 * (1.0 + r)).ln();
                    assert!(
                        (g - want).abs() <= 4e-16 * want.abs().max(1.0),
                        "spot {spot0} r {r}: {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn hart_tail_is_accurate() {
        let tail = |a: f64| {
            let b = a.min(TAIL_CLAMP);
            exp_non_positive(Scalar, -0.5 * a * a) * polynomial(Scalar, &HART_P, b)
                / polynomial(Scalar, &HART_Q, b)
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
