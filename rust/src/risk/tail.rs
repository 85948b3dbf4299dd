//! Quantiles (numpy's default "linear", Hyndman-Fan type 7) and the empirical lower-tail
//! dependence coefficient of PROTOCOL section 6.

use super::var::all_finite;
use crate::error::{check, CoreError, CoreResult};

/// The tail level PROTOCOL section 6 uses for tail dependence.
pub const DEFAULT_TAIL_Q: f64 = 0.05;

/// The q-quantile of `xs` exactly as `numpy.quantile(xs, q)` computes it (method "linear"),
/// including numpy's interpolation formula, so thresholds compare equal to numpy's bit for bit.
pub fn quantile(xs: &[f64], q: f64) -> CoreResult<f64> {
    check::non_empty("x", xs)?;
    check::all_finite("x", xs)?;
    if !(q.is_finite() && (0.0..=1.0).contains(&q)) {
        return Err(CoreError::invalid(
            "q",
            format!("must be between 0 and 1, got {q}"),
        ));
    }
    let mut scratch = xs.to_vec();
    Ok(quantile_in_place(&mut scratch, q))
}

/// numpy's linear quantile of finite, non-empty `values` (reordered) for q in [0, 1].
/// O(n): one selection for the lower neighbour, a scan for the upper one. NaN when empty.
pub(crate) fn quantile_in_place(values: &mut [f64], q: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let last = n - 1;
    let virtual_index = last as f64 * q;
    if virtual_index >= last as f64 || virtual_index.is_nan() {
        // numpy takes the last order statistic when the virtual index reaches n - 1.
        return values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    }
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    // 0 <= below < n - 1 here; `as` saturates, `min` keeps the index in range regardless.
    let i = (below.max(0.0) as usize).min(last - 1);
    let (_, lower, above) = values.select_nth_unstable_by(i, f64::total_cmp);
    let lower = *lower;
    let upper = above.iter().copied().fold(f64::INFINITY, f64::min);
    lerp(lower, upper, gamma)
}

/// numpy's `_lerp`: a + (b - a) t, evaluated from the nearer end so that t = 1 gives b exactly.
#[inline]
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Empirical lower-tail dependence of `x` and `y` at level `q` (PROTOCOL section 6):
/// #(x <= Qx(q) and y <= Qy(q)) / #(x <= Qx(q)), with Q numpy's default quantile.
/// `x` and `y` must be finite and of the same length (a mismatch names `y`); 0 < q < 1.
pub fn tail_dependence(x: &[f64], y: &[f64], q: f64) -> CoreResult<f64> {
    check::non_empty("x", x)?;
    if y.len() != x.len() {
        return Err(CoreError::invalid(
            "y",
            format!(
                "has length {}, which does not match the length of x ({})",
                y.len(),
                x.len()
            ),
        ));
    }
    all_finite("x", x)?;
    all_finite("y", y)?;
    check::open_unit("q", q)?;
    let mut scratch = x.to_vec();
    let qx = quantile_in_place(&mut scratch, q);
    scratch.copy_from_slice(y);
    let qy = quantile_in_place(&mut scratch, q);
    let (mut in_x, mut in_both) = (0usize, 0usize);
    for (&a, &b) in x.iter().zip(y) {
        if a <= qx {
            in_x += 1;
            if b <= qy {
                in_both += 1;
            }
        }
    }
    // The q-quantile is never below the minimum, so in_x >= 1.
    Ok(in_both as f64 / in_x as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sort-based type-7 quantile, the textbook way.
    fn sorted_quantile(xs: &[f64], q: f64) -> f64 {
        let mut s = xs.to_vec();
        s.sort_by(f64::total_cmp);
        let h = (s.len() - 1) as f64 * q;
        let lo = h.floor() as usize;
        let hi = (lo + 1).min(s.len() - 1);
        lerp(s[lo], s[hi], h - lo as f64)
    }

    #[test]
    fn quantile_known_values() {
        let xs = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(quantile(&xs, 0.0), Ok(1.0));
        assert_eq!(quantile(&xs, 1.0), Ok(5.0));
        assert_eq!(quantile(&xs, 0.5), Ok(3.0));
        assert_eq!(quantile(&xs, 0.1), Ok(1.4)); // numpy: 1.4
        assert_eq!(quantile(&[2.0], 0.3), Ok(2.0));
        assert!(quantile(&xs, 1.5).is_err());
        assert!(quantile(&[], 0.5).is_err());
    }

    #[test]
    fn tail_dependence_known_values() {
        // Identical series: every x-tail point is a y-tail point.
        let x: Vec<f64> = (0..100).map(|i| ((i * 37) % 100) as f64).collect();
        assert_eq!(tail_dependence(&x, &x, 0.05), Ok(1.0));
        // Reversed ranks: the lower tails never meet.
        let y: Vec<f64> = x.iter().map(|v| -v).collect();
        assert_eq!(tail_dependence(&x, &y, 0.05), Ok(0.0));
        let e = tail_dependence(&x, &y[..10], 0.05)
            .err()
            .map(|e| e.field().to_string());
        assert_eq!(e, Some("y".to_string()));
        let e = tail_dependence(&x, &x, 0.0)
            .err()
            .map(|e| e.field().to_string());
        assert_eq!(e, Some("q".to_string()));
        let mut bad = x.clone();
        bad[3] = f64::INFINITY;
        let e = tail_dependence(&x, &bad, 0.05).err().map(|e| e.to_string());
        assert!(e.unwrap().starts_with("y: element 3"));
    }

    proptest! {
        #[test]
        fn quantile_matches_sorting(xs in prop::collection::vec(-1e3f64..1e3, 1..200), q in 0.0f64..=1.0) {
            prop_assert_eq!(quantile(&xs, q).unwrap(), sorted_quantile(&xs, q));
        }

        #[test]
        fn tail_dependence_is_a_share(
            xy in prop::collection::vec((-1.0f64..1.0, -1.0f64..1.0), 1..200), q in 0.001f64..0.999
        ) {
            let (x, y): (Vec<f64>, Vec<f64>) = xy.into_iter().unzip();
            let d = tail_dependence(&x, &y, q).unwrap();
            prop_assert!((0.0..=1.0).contains(&d));
        }

        #[test]
        fn never_panics(
            x in prop::collection::vec(prop::num::f64::ANY, 0..40),
            y in prop::collection::vec(prop::num::f64::ANY, 0..40),
            q in prop::num::f64::ANY,
        ) {
            let _ = quantile(&x, q);
            let _ = tail_dependence(&x, &y, q);
            let _ = tail_dependence(&x, &x, q);
        }
    }
}
