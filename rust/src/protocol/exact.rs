//! Exact threshold comparisons (PROTOCOL section 5): a quantity computed in floating point that lies within
//! 1e-9 (relative) of a boundary counts as on it, so (100 - 97.9) / 0.7 = 2.999999999999992 is 3.0 and a
//! budget of 4.9999999999 contracts buys 5.
//!
//! The tolerance is `REL_TOL x max(|x|, |bound|, SCALE_FLOOR)`. Relative to a bound of 0 nothing but 0 itself
//! would be "within 1e-9", while a difference of two nearly equal numbers lands a few 1e-16 away from 0; the
//! floor makes the tolerance at (and near) a bound of 0 an absolute 1e-12. Every protocol threshold other than 0
//! is far above 1e-3 in magnitude, where the rule is purely relative.

/// Relative tolerance of every threshold comparison.
pub const REL_TOL: f64 = 1e-9;

/// Magnitude under which the tolerance stops shrinking (absolute tolerance REL_TOL x SCALE_FLOOR = 1e-12).
pub const SCALE_FLOOR: f64 = 1e-3;

/// How far from `bound` a value `x` may be and still count as on it. Infinite when either is infinite,
/// NaN when either is NaN; callers compare with the plain operators in that case.
fn tolerance(x: f64, bound: f64) -> f64 {
    REL_TOL * x.abs().max(bound.abs()).max(SCALE_FLOOR)
}

/// `x >= bound`, counting a value within the tolerance under `bound` as on it. NaN is never at least anything.
pub fn at_least(x: f64, bound: f64) -> bool {
    let tol = tolerance(x, bound);
    if tol.is_finite() {
        x >= bound - tol
    } else {
        x >= bound
    }
}

/// `x <= bound`, counting a value within the tolerance over `bound` as on it. NaN is never at most anything.
pub fn at_most(x: f64, bound: f64) -> bool {
    let tol = tolerance(x, bound);
    if tol.is_finite() {
        x <= bound + tol
    } else {
        x <= bound
    }
}

/// `x < bound` on exact values: not at least `bound`.
pub fn below(x: f64, bound: f64) -> bool {
    !at_least(x, bound) && !x.is_nan() && !bound.is_nan()
}

/// `x > bound` on exact values: not at most `bound`.
pub fn above(x: f64, bound: f64) -> bool {
    !at_most(x, bound) && !x.is_nan() && !bound.is_nan()
}

/// `floor(x)` on exact values: a value within the tolerance under the next integer is that integer
/// (4.9999999999 -> 5). Non-finite input comes back unchanged.
pub fn floor(x: f64) -> f64 {
    let f = x.floor();
    if f.is_finite() && at_least(x, f + 1.0) {
        f + 1.0
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn within_one_billionth_counts_as_on_the_bound() {
        assert!(at_least(2.999_999_999_999_992, 3.0));
        assert!(at_least(3.0 * (1.0 - 0.9e-9), 3.0));
        assert!(!at_least(3.0 * (1.0 - 1.1e-9), 3.0));
        assert!(at_most(3.5 * (1.0 + 0.9e-9), 3.5));
        assert!(!at_most(3.5 * (1.0 + 1.1e-9), 3.5));
        assert!(at_least(-(1.0 + 0.9e-9), -1.0));
        assert!(!at_least(-(1.0 + 1.1e-9), -1.0));
        assert!(below(2.9, 3.0) && !below(2.999_999_999_999_992, 3.0));
        assert!(above(3.6, 3.5) && !above(3.500_000_000_1, 3.5));
    }

    #[test]
    fn a_bound_of_zero_has_an_absolute_tolerance_of_1e12() {
        assert!(at_least(-1e-16, 0.0));
        assert!(at_most(1e-13, 0.0));
        assert!(!at_least(-2e-12, 0.0));
        assert!(!at_most(2e-12, 0.0));
        assert!(at_least(0.0, 0.0) && at_most(0.0, 0.0));
    }

    #[test]
    fn floor_rounds_up_only_within_the_tolerance() {
        assert_eq!(floor(4.999_999_999_9), 5.0);
        assert_eq!(floor(4.999_999), 4.0);
        assert_eq!(floor(5.0), 5.0);
        assert_eq!(floor(0.0), 0.0);
        assert_eq!(floor(-1e-15), 0.0);
        assert_eq!(floor(-0.5), -1.0);
        assert!(floor(f64::NAN).is_nan());
        assert_eq!(floor(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn infinities_and_nan_compare_plainly() {
        assert!(!at_least(f64::NEG_INFINITY, 5.0));
        assert!(at_least(f64::INFINITY, 5.0));
        assert!(!at_most(f64::INFINITY, 5.0));
        assert!(at_most(f64::NEG_INFINITY, 5.0));
        assert!(!at_least(f64::NAN, 0.0) && !at_most(f64::NAN, 0.0));
        assert!(!below(f64::NAN, 0.0) && !above(f64::NAN, 0.0));
    }

    proptest! {
        #[test]
        fn exactly_one_side_of_every_bound(x in proptest::num::f64::ANY, b in -1e6f64..1e6) {
            if !x.is_nan() {
                prop_assert!(at_least(x, b) != below(x, b));
                prop_assert!(at_most(x, b) != above(x, b));
                prop_assert!(at_least(x, b) || at_most(x, b));
            }
            let _ = floor(x);
        }

        #[test]
        fn agrees_with_plain_comparison_away_from_the_bound(x in -1e6f64..1e6, b in -1e6f64..1e6) {
            let tol = 2e-9 * x.abs().max(b.abs()).max(1e-3);
            if (x - b).abs() > tol {
                prop_assert_eq!(at_least(x, b), x >= b);
                prop_assert_eq!(at_most(x, b), x <= b);
            }
        }
    }
}
