//! The standard normal distribution: density, cumulative probability, its inverse and the scaled
//! upper tail, accurate to about 1e-15 relative in both tails (the pricing tests compare with
//! QuantLib at 1e-8).
//!
//! The cumulative probability uses W. J. Cody's rational Chebyshev approximations (ACM TOMS
//! algorithm 715): a rational function of x^2 near the centre, and beyond |x| = 0.674 the upper
//! tail written as `e^{-x^2/2} m(x)` with `m` rational in x (up to sqrt(32)) or in 1/x^2 (beyond).
//! That form is fast (one or two exponentials, no erfc) and lets callers that already hold
//! `e^{-x^2/2}`, or want the tail without it, skip work.

use std::f64::consts::{PI, SQRT_2};

pub(super) const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// |x| up to which N(x) - 1/2 is a rational function of x^2.
pub(super) const CENTRAL_LIMIT: f64 = 0.674_489_75;
/// sqrt(32): beyond it the scaled tail is rational in 1/x^2.
pub(super) const FAR_LIMIT: f64 = 5.656_854_249_492_381;

// Cody's coefficients as published (a few carry one digit more than a double holds).
#[allow(clippy::excessive_precision)]
pub(super) const A: [f64; 5] = [
    2.235_252_035_460_683_9,
    161.028_231_068_555_88,
    1_067.689_485_460_370_9,
    18_154.981_253_343_561,
    0.065_682_337_918_207_45,
];
pub(super) const B: [f64; 4] = [
    47.202_581_904_688_24,
    976.098_551_737_776_7,
    10_260.932_208_618_978,
    45_507.789_335_026_73,
];
pub(super) const C: [f64; 9] = [
    0.398_941_512_088_134_66,
    8.883_149_794_388_376,
    93.506_656_132_177_86,
    597.270_276_394_800_3,
    2_494.537_585_290_372_7,
    6_848.190_450_536_283,
    11_602.651_437_647_35,
    9_842.714_838_383_978,
    1.076_557_677_372_019_2e-8,
];
pub(super) const D: [f64; 8] = [
    22.266_688_044_328_116,
    235.387_901_782_625,
    1_519.377_599_407_554_8,
    6_485.558_298_266_761,
    18_615.571_640_885_098,
    34_900.952_721_145_98,
    38_912.003_286_093_27,
    19_685.429_676_859_99,
];
pub(super) const P: [f64; 6] = [
    0.215_898_534_057_957,
    0.127_401_161_160_247_36,
    0.022_235_277_870_649_807,
    0.001_421_619_193_227_893_5,
    2.911_287_495_116_879e-5,
    0.023_073_441_764_940_173,
];
#[allow(clippy::excessive_precision)]
pub(super) const Q: [f64; 5] = [
    1.284_260_096_144_911_2,
    0.468_238_212_480_865_1,
    0.065_988_137_868_928_55,
    0.003_782_396_332_027_582_4,
    7.297_515_550_839_662e-5,
];

/// Density phi(x).
#[inline]
pub fn pdf(x: f64) -> f64 {
    INV_SQRT_2PI * (-0.5 * x * x).exp()
}

/// N(x) - 1/2 for |x| <= CENTRAL_LIMIT.
#[inline(always)]
fn central(x: f64) -> f64 {
    let z = x * x;
    let num = (((A[4] * z + A[0]) * z + A[1]) * z + A[2]) * z + A[3];
    let den = (((z + B[0]) * z + B[1]) * z + B[2]) * z + B[3];
    x * num / den
}

/// The upper tail with its Gaussian factor removed, m(u) = N(-u) e^{u^2/2}, for u >= CENTRAL_LIMIT
/// (or +inf, giving 0). m(u) = R(u) / sqrt(2 pi) with R the Mills ratio; m(u) ~ 1/(u sqrt(2 pi)).
#[inline(always)]
fn tail_rational(u: f64) -> f64 {
    if u <= FAR_LIMIT {
        let num = (((((((C[8] * u + C[0]) * u + C[1]) * u + C[2]) * u + C[3]) * u + C[4]) * u
            + C[5])
            * u
            + C[6])
            * u
            + C[7];
        let den = ((((((((u + D[0]) * u + D[1]) * u + D[2]) * u + D[3]) * u + D[4]) * u + D[5])
            * u
            + D[6])
            * u)
            + D[7];
        num / den
    } else {
        let z = 1.0 / (u * u);
        let num = ((((P[5] * z + P[0]) * z + P[1]) * z + P[2]) * z + P[3]) * z + P[4];
        let den = ((((z + Q[0]) * z + Q[1]) * z + Q[2]) * z + Q[3]) * z + Q[4];
        (INV_SQRT_2PI - z * num / den) / u
    }
}

/// The scaled upper tail m(u) = N(-u) e^{u^2/2} for any u (it grows like e^{u^2/2} for u < 0).
///
/// Differences of tails that share a Gaussian factor (Black's normalised price below the
/// inflection point) are computed on m, so that factor is taken out exactly once.
#[inline]
pub fn scaled_upper_tail(u: f64) -> f64 {
    if u >= CENTRAL_LIMIT {
        tail_rational(u)
    } else {
        (0.5 - central_or_tail(u)) * (0.5 * u * u).exp()
    }
}

/// N(u) - 1/2 for u < CENTRAL_LIMIT (the complement side is taken through the tail below -0.674).
#[inline(always)]
fn central_or_tail(u: f64) -> f64 {
    if u >= -CENTRAL_LIMIT {
        central(u)
    } else {
        gaussian_factor(-u) * tail_rational(-u) - 0.5
    }
}

/// e^{-y^2/2} for y >= 0 with y^2 split so the exponent's rounding is not amplified in the tails.
#[inline(always)]
fn gaussian_factor(y: f64) -> f64 {
    if y >= 40.0 {
        return 0.0; // e^{-800} underflows; also keeps y = inf away from inf - inf
    }
    let head = (y * 16.0).trunc() / 16.0;
    let rest = (y - head) * (y + head);
    (-0.5 * head * head).exp() * (-0.5 * rest).exp()
}

/// Cumulative probability N(x), keeping its relative accuracy in the lower tail.
#[inline]
pub fn cdf(x: f64) -> f64 {
    let y = x.abs();
    if y <= CENTRAL_LIMIT {
        0.5 + central(x)
    } else {
        let tail = gaussian_factor(y) * tail_rational(y);
        if x > 0.0 {
            1.0 - tail
        } else {
            tail
        }
    }
}

/// N(x) when the caller already holds `gauss = e^{-x^2/2}` (e.g. for the density): saves the
/// exponentials of `cdf`. Accurate to the rounding of `gauss` itself.
#[inline(always)]
pub fn cdf_with_gaussian(x: f64, gauss: f64) -> f64 {
    let y = x.abs();
    if y <= CENTRAL_LIMIT {
        0.5 + central(x)
    } else {
        let tail = gauss * tail_rational(y);
        if x > 0.0 {
            1.0 - tail
        } else {
            tail
        }
    }
}

/// The scaled complementary error function erfcx(x) = e^{x^2} erfc(x) for x >= 0 (NaN below 0):
/// 2 m(x sqrt 2) with m the scaled upper tail.
pub fn erfcx(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    2.0 * scaled_upper_tail(x * SQRT_2)
}

/// Inverse N^-1(p) for p in (0, 1): a rational first guess refined by two Halley steps on `cdf`.
/// Returns NaN outside (0, 1); the callers validate their input first.
pub fn inv_cdf(p: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    let mut x = inv_cdf_approx(p);
    // Halley refinement. In the upper half, work on the complement so precision is not lost near 1.
    for _ in 0..2 {
        let e = if x <= 0.0 {
            cdf(x) - p
        } else {
            (1.0 - p) - cdf(-x)
        };
        let u = e * (2.0 * PI).sqrt() * (0.5 * x * x).exp();
        let step = u / (1.0 + 0.5 * x * u);
        if step.is_finite() {
            x -= step;
        }
    }
    x
}

/// A rational approximation of N^-1(p) for p in (0, 1), relative error about 1e-9: the starting
/// point of `inv_cdf`, and good enough on its own for solver initial guesses.
pub fn inv_cdf_approx(p: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    const P_LOW: f64 = 0.024_25;
    if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((RC[0] * q + RC[1]) * q + RC[2]) * q + RC[3]) * q + RC[4]) * q + RC[5])
            / ((((RD[0] * q + RD[1]) * q + RD[2]) * q + RD[3]) * q + 1.0)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((RA[0] * r + RA[1]) * r + RA[2]) * r + RA[3]) * r + RA[4]) * r + RA[5]) * q
            / (((((RB[0] * r + RB[1]) * r + RB[2]) * r + RB[3]) * r + RB[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((RC[0] * q + RC[1]) * q + RC[2]) * q + RC[3]) * q + RC[4]) * q + RC[5])
            / ((((RD[0] * q + RD[1]) * q + RD[2]) * q + RD[3]) * q + 1.0)
    }
}

// Rational approximation of the inverse normal (P. J. Acklam's coefficients), used as a first guess.
const RA: [f64; 6] = [
    -3.969_683_028_665_376e1,
    2.209_460_984_245_205e2,
    -2.759_285_104_469_687e2,
    1.383_577_518_672_69e2,
    -3.066_479_806_614_716e1,
    2.506_628_277_459_239,
];
const RB: [f64; 5] = [
    -5.447_609_879_822_406e1,
    1.615_858_368_580_409e2,
    -1.556_989_798_598_866e2,
    6.680_131_188_771_972e1,
    -1.328_068_155_288_572e1,
];
const RC: [f64; 6] = [
    -7.784_894_002_430_293e-3,
    -3.223_964_580_411_365e-1,
    -2.400_758_277_161_838,
    -2.549_732_539_343_734,
    4.374_664_141_464_968,
    2.938_163_982_698_783,
];
const RD: [f64; 4] = [
    7.784_695_709_041_462e-3,
    3.224_671_290_700_398e-1,
    2.445_134_137_142_996,
    3.754_408_661_907_416,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_known_values() {
        assert!((cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-15);
        // N(-10) = 7.619853024160527e-24 (tail keeps relative accuracy)
        assert!((cdf(-10.0) / 7.619_853_024_160_527e-24 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn cdf_is_continuous_across_the_rational_pieces() {
        for &edge in &[CENTRAL_LIMIT, FAR_LIMIT] {
            for &sign in &[-1.0, 1.0] {
                let x = sign * edge;
                let (below, above) = (cdf(x * (1.0 - 1e-15)), cdf(x * (1.0 + 1e-15)));
                assert!((below / above - 1.0).abs() < 1e-13, "x={x} {below} {above}");
            }
        }
        assert_eq!(cdf(f64::INFINITY), 1.0);
        assert_eq!(cdf(f64::NEG_INFINITY), 0.0);
        assert!(cdf(f64::NAN).is_nan());
        // N(-38) = 2.885428351e-316 is subnormal; N(-40) underflows to 0.
        assert!(cdf(-38.0) > 0.0 && cdf(-40.0) == 0.0);
    }

    #[test]
    fn scaled_tail_and_cdf_with_gaussian_agree_with_cdf() {
        for i in 0..=400 {
            let x = -20.0 + 0.1 * f64::from(i);
            let m = scaled_upper_tail(x);
            let direct = cdf(-x) * (0.5 * x * x).exp();
            assert!(
                (m / direct - 1.0).abs() < 1e-13,
                "x={x} m={m} direct={direct}"
            );
            let via = cdf_with_gaussian(x, (-0.5 * x * x).exp());
            assert!((via / cdf(x) - 1.0).abs() < 1e-13, "x={x}");
        }
    }

    #[test]
    fn erfcx_known_values_and_continuity() {
        assert!((erfcx(0.0) - 1.0).abs() < 1e-16);
        // erfcx(1) = e * erfc(1) = 0.42758357615580700442
        assert!((erfcx(1.0) / 0.427_583_576_155_807 - 1.0).abs() < 1e-14);
        // erfcx(10) = 0.05614099274382259 (scipy.special.erfcx)
        assert!((erfcx(10.0) / 0.056_140_992_743_822_59 - 1.0).abs() < 1e-14);
        // erfcx(26) = 0.02168358485056291 (scipy.special.erfcx)
        assert!((erfcx(26.0) / 0.021_683_584_850_562_91 - 1.0).abs() < 1e-14);
        assert!(erfcx(-1.0).is_nan() && erfcx(f64::NAN).is_nan());
        assert!((erfcx(1e300) * 1e300 * std::f64::consts::PI.sqrt() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn inverse_round_trips() {
        for &p in &[
            1e-300, 1e-12, 1e-6, 0.001, 0.02425, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.999_999,
        ] {
            let x = inv_cdf(p);
            let back = cdf(x);
            assert!((back / p - 1.0).abs() < 1e-12, "p={p} x={x} back={back}");
        }
        assert!(inv_cdf(0.0).is_nan());
        assert!(inv_cdf(1.0).is_nan());
        assert!(inv_cdf(f64::NAN).is_nan());
    }
}
