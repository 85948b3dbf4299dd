//! Elementary functions over pulp's portable SIMD vectors, shared by the vectorised
//! Black-Scholes kernels (risk revaluation and batch pricing).
//!
//! Each function is written once for any `S: pulp::Simd`; callers run it through
//! `pulp::Arch::dispatch`, which picks the widest instruction set the CPU offers at run time
//! (AVX-512 or AVX2 + FMA on x86-64, a scalar fallback elsewhere). No `unsafe` here.
//!
//! - `exp_non_positive` / `exp`: Cody-Waite reduction by ln 2 and a degree-13 Taylor polynomial
//!   on |r| <= ln(2)/2 (a few ulps), the power of two built in the exponent bits.
//! - `ln_1p_near_zero` / `ln`: the atanh series ln(1 + f) = 2 atanh(f / (2 + f)) on the mantissa,
//!   plus the exponent times ln 2 (about an ulp).

use pulp::{bytemuck, Simd};

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
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// 1.5 x 2^52: adding it rounds to an integer held in the low mantissa bits.
const ROUNDING_SHIFTER: f64 = 6_755_399_441_055_744.0;
/// Below this, exp underflows past the normal range; the result is taken as 0.
pub(crate) const EXP_FLOOR: f64 = -708.0;
/// ln(f64::MAX): above this, exp overflows.
const EXP_CEILING: f64 = 709.782_712_893_384;

/// The polynomial with `coefficients` (highest degree first) at x by Horner's rule; `mul_add_e`
/// fuses where the CPU can and multiplies-then-adds where it cannot (never a slow software fma).
#[inline(always)]
pub(crate) fn polynomial<S: Simd, const N: usize>(
    simd: S,
    coefficients: &[f64; N],
    x: S::f64s,
) -> S::f64s {
    let Some((&first, rest)) = coefficients.split_first() else {
        return simd.splat_f64s(0.0);
    };
    let mut acc = simd.splat_f64s(first);
    for &c in rest {
        acc = simd.mul_add_e_f64s(acc, x, simd.splat_f64s(c));
    }
    acc
}

/// x = k ln 2 + r with |r| <= ln(2)/2 (for |x| <= 709.79): returns `shifted`, whose low mantissa
/// bits hold the integer k, and exp(r).
#[inline(always)]
fn exp_reduced<S: Simd>(simd: S, clamped: S::f64s) -> (S::f64s, S::f64s) {
    let shifted = simd.mul_add_e_f64s(
        clamped,
        simd.splat_f64s(LOG2_E),
        simd.splat_f64s(ROUNDING_SHIFTER),
    );
    let k = simd.sub_f64s(shifted, simd.splat_f64s(ROUNDING_SHIFTER));
    let r = simd.mul_add_e_f64s(k, simd.splat_f64s(-LN2_HI), clamped);
    let r = simd.mul_add_e_f64s(k, simd.splat_f64s(-LN2_LO), r);
    (shifted, polynomial(simd, &EXP_TAYLOR, r))
}

/// The double 2^(k + offset) from `shifted` (k in its low mantissa bits): adding the bias and
/// moving it into the exponent field (x 2^52, wrapping) gives its bits. k + offset must lie in
/// [-1022, 1023].
#[inline(always)]
fn power_of_two<S: Simd>(simd: S, shifted: S::f64s, offset: u64) -> S::f64s {
    let biased = simd.add_u64s(
        simd.transmute_u64s_f64s(shifted),
        simd.splat_u64s(1023_u64.wrapping_add(offset)),
    );
    simd.transmute_f64s_u64s(simd.mul_u64s(biased, simd.splat_u64s(1 << 52)))
}

/// exp(x) for x <= 0 in every lane; 0 below -708 (and for NaN).
#[inline(always)]
pub(crate) fn exp_non_positive<S: Simd>(simd: S, x: S::f64s) -> S::f64s {
    let floor = simd.splat_f64s(EXP_FLOOR);
    let in_range = simd.greater_than_or_equal_f64s(x, floor);
    let clamped = simd.select_f64s(in_range, x, floor);
    // k is an integer in [-1022, 0].
    let (shifted, p) = exp_reduced(simd, clamped);
    let y = simd.mul_f64s(p, power_of_two(simd, shifted, 0));
    simd.select_f64s(in_range, y, simd.splat_f64s(0.0))
}

/// Below this, exp(x) rounds to 0 even as a subnormal (exp(-745.14) is half the smallest one).
const SUBNORMAL_FLOOR: f64 = -745.2;
/// 2^-600.
const TWO_POW_MINUS_600: f64 = f64::from_bits((1023 - 600) << 52);

/// exp(x) for x <= 0 in every lane with gradual underflow: below -708 the subnormal results
/// libm gives (scaled by 2^(k + 600) and then by 2^-600, so they are rounded once), 0 below
/// -745.2 and for NaN.
#[inline(always)]
pub(crate) fn exp_non_positive_gradual<S: Simd>(simd: S, x: S::f64s) -> S::f64s {
    let floor = simd.splat_f64s(SUBNORMAL_FLOOR);
    let in_range = simd.greater_than_or_equal_f64s(x, floor);
    let clamped = simd.select_f64s(in_range, x, floor);
    // k is an integer in [-1075, 0], so k + 600 is a normal exponent.
    let (shifted, p) = exp_reduced(simd, clamped);
    let y = simd.mul_f64s(
        simd.mul_f64s(p, power_of_two(simd, shifted, 600)),
        simd.splat_f64s(TWO_POW_MINUS_600),
    );
    simd.select_f64s(in_range, y, simd.splat_f64s(0.0))
}

/// exp(x) in every lane: 0 below -708 (where the true value is subnormal or 0), +inf above
/// ln(f64::MAX), NaN for NaN.
#[inline(always)]
pub(crate) fn exp<S: Simd>(simd: S, x: S::f64s) -> S::f64s {
    let (floor, ceiling) = (simd.splat_f64s(EXP_FLOOR), simd.splat_f64s(EXP_CEILING));
    let above_floor = simd.greater_than_or_equal_f64s(x, floor);
    let below_ceiling = simd.less_than_or_equal_f64s(x, ceiling);
    let clamped = simd.min_f64s(simd.max_f64s(x, floor), ceiling);
    // k is an integer in [-1021, 1024]: scale by 2^(k - 1) after doubling exp(r), so that both
    // factors are normal and the product is exact wherever the result is.
    let (shifted, p) = exp_reduced(simd, clamped);
    let y = simd.mul_f64s(
        simd.add_f64s(p, p),
        power_of_two(simd, shifted, u64::MAX), // offset -1, wrapping
    );
    let outside = simd.select_f64s(
        above_floor,
        simd.splat_f64s(f64::INFINITY),
        simd.select_f64s(
            simd.less_than_f64s(x, floor),
            simd.splat_f64s(0.0),
            simd.splat_f64s(f64::NAN),
        ),
    );
    simd.select_f64s(simd.and_m64s(above_floor, below_ceiling), y, outside)
}

/// 1 / (2k + 1) for k = 10 down to 0: the atanh series, ln(1 + r) = 2 atanh(r / (2 + r)).
const ATANH_SERIES: [f64; 11] = [
    1.0 / 21.0,
    1.0 / 19.0,
    1.0 / 17.0,
    1.0 / 15.0,
    1.0 / 13.0,
    1.0 / 11.0,
    1.0 / 9.0,
    1.0 / 7.0,
    1.0 / 5.0,
    1.0 / 3.0,
    1.0,
];

/// ln(1 + r) in every lane, accurate for r in [sqrt(1/2) - 1, sqrt(2) - 1] = [-0.293, 0.415]
/// (|r / (2 + r)| < 0.172, series truncation below 1e-18).
#[inline(always)]
pub(crate) fn ln_1p_near_zero<S: Simd>(simd: S, r: S::f64s) -> S::f64s {
    let s = simd.div_f64s(r, simd.add_f64s(simd.splat_f64s(2.0), r));
    let series = polynomial(simd, &ATANH_SERIES, simd.mul_f64s(s, s));
    simd.mul_f64s(simd.add_f64s(s, s), series)
}

const EXPONENT_BITS: u64 = 0x7ff0_0000_0000_0000;
const MANTISSA_BITS: u64 = 0x000f_ffff_ffff_ffff;
const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;
/// 2^52: a double whose low mantissa bits hold a small integer is 2^52 + that integer.
const TWO_POW_52: f64 = 4_503_599_627_370_496.0;

/// ln(x) for x in [f64::MIN_POSITIVE, f64::MAX] (positive normal numbers); NaN in lanes outside
/// that range, which callers route to `f64::ln`.
///
/// x = 2^e m with m in [sqrt(1/2), sqrt(2)), ln x = e ln 2 + ln(1 + (m - 1)). The exponent is read
/// from the bits with a 32-bit lane shift where the instruction set has one; the scalar fallback
/// (whose 64-bit lanes cannot be viewed as 32-bit ones) takes `f64::ln` lane by lane.
#[inline(always)]
pub(crate) fn ln<S: Simd>(simd: S, x: S::f64s) -> S::f64s {
    let normal = simd.and_m64s(
        simd.greater_than_or_equal_f64s(x, simd.splat_f64s(f64::MIN_POSITIVE)),
        simd.less_than_or_equal_f64s(x, simd.splat_f64s(f64::MAX)),
    );
    let bits = simd.transmute_u64s_f64s(x);
    let Some(biased_exponent) = exponent_field(simd, bits) else {
        return map_lanes(simd, x, |v| {
            if (f64::MIN_POSITIVE..=f64::MAX).contains(&v) {
                v.ln()
            } else {
                f64::NAN
            }
        });
    };
    // m in [1, 2), halved (and the exponent raised) above sqrt(2).
    let m = simd.transmute_f64s_u64s(simd.or_u64s(
        simd.and_u64s(bits, simd.splat_u64s(MANTISSA_BITS)),
        simd.splat_u64s(ONE_BITS),
    ));
    let high = simd.greater_than_f64s(m, simd.splat_f64s(std::f64::consts::SQRT_2));
    let m = simd.select_f64s(high, simd.mul_f64s(m, simd.splat_f64s(0.5)), m);
    let e = simd.add_f64s(
        biased_exponent,
        simd.select_f64s(high, simd.splat_f64s(-1022.0), simd.splat_f64s(-1023.0)),
    );
    let f = simd.sub_f64s(m, simd.splat_f64s(1.0)); // exact (Sterbenz)
    let low_part = simd.mul_add_e_f64s(e, simd.splat_f64s(LN2_LO), ln_1p_near_zero(simd, f));
    let y = simd.mul_add_e_f64s(e, simd.splat_f64s(LN2_HI), low_part);
    simd.select_f64s(normal, y, simd.splat_f64s(f64::NAN))
}

/// The biased exponent field of each lane's bits as a double (0..=2047), or None on an
/// instruction set whose 64-bit lanes cannot be reinterpreted as pairs of 32-bit lanes.
#[inline(always)]
fn exponent_field<S: Simd>(simd: S, bits: S::u64s) -> Option<S::f64s> {
    let exponent = simd.and_u64s(bits, simd.splat_u64s(EXPONENT_BITS));
    let words: S::u32s = bytemuck::try_cast(exponent).ok()?;
    // Each 64-bit lane is (low word, high word); shifting both words right by 20 leaves the
    // 11-bit field at bit 32 of the lane (the low word is already 0).
    let shifted = simd.wrapping_dyn_shr_u32s(words, simd.splat_u32s(20));
    let at_bit_32: S::u64s = bytemuck::try_cast(shifted).ok()?;
    // 2^52 + E 2^32 exactly, then E.
    let magic =
        simd.transmute_f64s_u64s(simd.or_u64s(at_bit_32, simd.splat_u64s(TWO_POW_52.to_bits())));
    let scaled = simd.sub_f64s(magic, simd.splat_f64s(TWO_POW_52));
    Some(simd.mul_f64s(scaled, simd.splat_f64s(1.0 / 4_294_967_296.0)))
}

/// Applies `f` to each lane (the scalar fallback of a vector function); NaN in every lane if
/// there were ever more than 16.
#[inline(always)]
fn map_lanes<S: Simd>(simd: S, x: S::f64s, f: impl Fn(f64) -> f64) -> S::f64s {
    let mut lanes = [0.0; 16]; // as many as any instruction set's f64 lanes (8), and more
    if S::F64_LANES > lanes.len() {
        return simd.splat_f64s(f64::NAN);
    }
    simd.partial_store_f64s(&mut lanes, x);
    for v in lanes.iter_mut().take(S::F64_LANES) {
        *v = f(*v);
    }
    simd.partial_load_f64s(&lanes)
}

/// Whether any lane of the mask is set.
#[inline(always)]
pub(crate) fn any<S: Simd>(simd: S, mask: S::m64s) -> bool {
    simd.first_true_m64s(mask) < S::F64_LANES
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulp::{Arch, Scalar, WithSimd};

    /// `f` of every x through the vector code, lane by lane (so each lane position is exercised
    /// by the tail of a batch of any length).
    struct Each<'a, F> {
        xs: &'a [f64],
        f: F,
    }
    trait LaneFn {
        fn apply<S: Simd>(&self, simd: S, x: S::f64s) -> S::f64s;
    }
    impl<F: LaneFn> WithSimd for Each<'_, F> {
        type Output = Vec<f64>;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> Vec<f64> {
            let mut out = vec![0.0; self.xs.len()];
            for (o, x) in out
                .chunks_mut(S::F64_LANES)
                .zip(self.xs.chunks(S::F64_LANES))
            {
                let y = self.f.apply(simd, simd.partial_load_f64s(x));
                simd.partial_store_f64s(o, y);
            }
            out
        }
    }
    #[derive(Clone, Copy)]
    struct Exp;
    impl LaneFn for Exp {
        fn apply<S: Simd>(&self, simd: S, x: S::f64s) -> S::f64s {
            exp(simd, x)
        }
    }
    #[derive(Clone, Copy)]
    struct Ln;
    impl LaneFn for Ln {
        fn apply<S: Simd>(&self, simd: S, x: S::f64s) -> S::f64s {
            ln(simd, x)
        }
    }
    #[derive(Clone, Copy)]
    struct AnyPositive;
    impl LaneFn for AnyPositive {
        fn apply<S: Simd>(&self, simd: S, x: S::f64s) -> S::f64s {
            let hit = any(simd, simd.greater_than_f64s(x, simd.splat_f64s(0.0)));
            simd.splat_f64s(if hit { 1.0 } else { 0.0 })
        }
    }

    /// The function on every instruction set this CPU has: scalar, AVX2 + FMA, AVX-512.
    fn on_every_arch<F: LaneFn + Copy>(xs: &[f64], f: F) -> Vec<Vec<f64>> {
        let mut runs = vec![
            Each { xs, f }.with_simd(Scalar),
            Arch::new().dispatch(Each { xs, f }),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(v3) = pulp::x86::V3::try_new() {
                runs.push(Simd::vectorize(v3, Each { xs, f }));
            }
            if let Some(v4) = pulp::x86::V4::try_new() {
                runs.push(Simd::vectorize(v4, Each { xs, f }));
            }
        }
        runs
    }

    #[test]
    fn exp_matches_std_over_the_whole_normal_range() {
        let xs: Vec<f64> = (0..=400_000)
            .map(|i| -708.0 + f64::from(i) * 0.003_544_5)
            .chain([0.0, -0.0, 1e-300, -1e-300, 709.78, EXP_CEILING])
            .collect();
        for got in on_every_arch(&xs, Exp) {
            let worst = xs
                .iter()
                .zip(&got)
                .map(|(x, g)| ((g - x.exp()) / x.exp()).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-15, "worst relative error {worst}");
        }
        let edges = [-708.5, -1e6, f64::NEG_INFINITY, 709.8, 1e6, f64::INFINITY];
        for got in on_every_arch(&edges, Exp) {
            assert_eq!(
                got,
                vec![0.0, 0.0, 0.0, f64::INFINITY, f64::INFINITY, f64::INFINITY]
            );
        }
        for got in on_every_arch(&[f64::NAN], Exp) {
            assert!(got[0].is_nan());
        }
    }

    #[derive(Clone, Copy)]
    struct ExpGradual;
    impl LaneFn for ExpGradual {
        fn apply<S: Simd>(&self, simd: S, x: S::f64s) -> S::f64s {
            exp_non_positive_gradual(simd, x)
        }
    }

    #[test]
    fn gradual_exp_gives_libm_subnormals() {
        let xs: Vec<f64> = (0..=300_000)
            .map(|i| -f64::from(i) * 0.002_484)
            .chain([-745.13, -745.14, -745.2, -746.0, f64::NEG_INFINITY])
            .collect();
        for got in on_every_arch(&xs, ExpGradual) {
            for (&x, &g) in xs.iter().zip(&got) {
                let want = x.exp();
                // A few ulps where normal; within one subnormal step below f64::MIN_POSITIVE.
                assert!(
                    (g - want).abs() <= 1e-15 * want + 5e-324,
                    "exp({x}) = {g:e}, libm {want:e}"
                );
            }
        }
        for got in on_every_arch(&[f64::NAN], ExpGradual) {
            assert_eq!(got, vec![0.0]);
        }
    }

    #[test]
    fn exp_agrees_with_exp_non_positive_bit_for_bit() {
        struct Both;
        impl WithSimd for Both {
            type Output = bool;
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) -> bool {
                (0..=200_000).all(|i| {
                    let x = simd.splat_f64s(-f64::from(i) * 0.003_54);
                    let (a, b) = (exp(simd, x), exp_non_positive(simd, x));
                    let (mut a1, mut b1) = ([0.0], [0.0]);
                    simd.partial_store_f64s(&mut a1, a);
                    simd.partial_store_f64s(&mut b1, b);
                    a1[0].to_bits() == b1[0].to_bits()
                })
            }
        }
        assert!(Both.with_simd(Scalar));
        assert!(Arch::new().dispatch(Both));
    }

    #[test]
    fn ln_is_within_an_ulp_or_two_of_std() {
        let mut xs: Vec<f64> = (0..200_001)
            .map(|i| 0.2 + f64::from(i) * 2.4e-5) // around 1, where ln is small
            .collect();
        xs.extend((-1020..1020).map(|e| 1.234_567_f64 * 2f64.powi(e)));
        xs.extend([
            f64::MIN_POSITIVE,
            f64::MAX,
            1.0,
            std::f64::consts::SQRT_2,
            std::f64::consts::FRAC_1_SQRT_2,
            1.0 - f64::EPSILON,
            1.0 + f64::EPSILON,
        ]);
        for got in on_every_arch(&xs, Ln) {
            for (&x, &g) in xs.iter().zip(&got) {
                let want = x.ln();
                assert!(
                    (g - want).abs() <= 2.5 * f64::EPSILON * want.abs() + 1e-300,
                    "ln({x}) = {g}, std {want}"
                );
            }
        }
        let outside = [0.0, -1.0, 1e-310, f64::INFINITY, f64::NAN];
        for got in on_every_arch(&outside, Ln) {
            assert!(got.iter().all(|g| g.is_nan()), "{got:?}");
        }
    }

    #[test]
    fn any_sees_each_lane() {
        for hot in 0..8 {
            let xs: Vec<f64> = (0..8).map(|i| if i == hot { 1.0 } else { -1.0 }).collect();
            for got in on_every_arch(&xs, AnyPositive) {
                assert_eq!(got[hot], 1.0, "lane {hot}: {got:?}");
            }
        }
        for got in on_every_arch(&[-1.0; 8], AnyPositive) {
            assert!(got.iter().all(|g| *g == 0.0));
        }
    }
}
