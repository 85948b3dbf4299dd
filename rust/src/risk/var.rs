//! Value at risk and expected shortfall over a set of P&L outcomes, exactly as PROTOCOL section 6:
//! at level c over n outcomes, k = ceil(n x (1 - c)); VaR is the k-th worst outcome and ES the mean
//! of the k worst outcomes, both reported as positive losses.
//!
//! The k worst outcomes are found by O(n) selection (`select_nth_unstable_by` with the IEEE total
//! order), never by a full sort.

use crate::error::{check, CoreError, CoreResult};

/// The Basel level used when the caller gives none.
pub const DEFAULT_CONFIDENCE: f64 = 0.975;

/// A product n x (1 - c) within this relative distance of an integer counts as that integer, so
/// that 1000 x (1 - 0.975) = 25.000000000000025 in floating point gives k = 25, not 26.
const INTEGRAL_TOLERANCE: f64 = 1e-9;

/// VaR and ES at one level, from one selection pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailRisk {
    /// The k-th worst outcome, as a positive loss (negative when even that outcome is a gain).
    pub value_at_risk: f64,
    /// The mean of the k worst outcomes, as a positive loss.
    pub expected_shortfall: f64,
    /// How many outcomes form the tail: k = ceil(n x (1 - c)), at least 1.
    pub tail_count: usize,
}

/// The number of outcomes in the tail, k = ceil(n x (1 - confidence)), robust to floating error
/// and clamped to 1..=n. `n` must be at least 1 (the error names `pnl`).
pub fn tail_count(n: usize, confidence: f64) -> CoreResult<usize> {
    check::open_unit("confidence", confidence)?;
    if n == 0 {
        return Err(CoreError::invalid("pnl", "must not be empty"));
    }
    let exact = n as f64 * (1.0 - confidence);
    let nearest = exact.round();
    let k = if (exact - nearest).abs() <= INTEGRAL_TOLERANCE * nearest.max(1.0) {
        nearest
    } else {
        exact.ceil()
    };
    // `as` saturates (never panics); the clamp keeps k inside 1..=n whatever the rounding did.
    Ok((k as usize).clamp(1, n))
}

/// VaR and ES of `pnl` at `confidence` (validated: every outcome finite, 0 < confidence < 1).
pub fn tail_risk(pnl: &[f64], confidence: f64) -> CoreResult<TailRisk> {
    check::non_empty("pnl", pnl)?;
    let k = tail_count(pnl.len(), confidence)?;
    all_finite("pnl", pnl)?;
    Ok(tail_risk_of(pnl, k))
}

/// `check::all_finite`, with a branch-free scan first so the common all-finite case is fast.
pub(crate) fn all_finite(field: &str, xs: &[f64]) -> CoreResult<()> {
    if xs.iter().fold(true, |ok, x| ok & x.is_finite()) {
        Ok(())
    } else {
        check::all_finite(field, xs)
    }
}

/// The tail measures of finite `pnl` (left untouched) with 1 <= k <= n.
pub(crate) fn tail_risk_of(pnl: &[f64], k: usize) -> TailRisk {
    if pnl.len() >= PREFILTER_MIN_LEN && k <= pnl.len() / 4 {
        if let Some(mut candidates) = tail_candidates(pnl, k) {
            return tail_risk_in_place(&mut candidates, k);
        }
    }
    let mut scratch = pnl.to_vec();
    tail_risk_in_place(&mut scratch, k)
}

/// From this many outcomes on, a sampled threshold narrows the selection to a candidate set.
const PREFILTER_MIN_LEN: usize = 1 << 14;
/// Outcomes sampled (at a fixed stride) to place the threshold.
const PREFILTER_SAMPLE: usize = 4096;

/// Every outcome at or below a threshold placed, from a strided sample, safely above the k-th
/// worst outcome; None when fewer than k outcomes fall below it (the caller then selects over
/// everything). When at least k outcomes are <= the threshold, the k worst are all among them,
/// so the result is exact either way; the sample only decides how much work is saved.
fn tail_candidates(pnl: &[f64], k: usize) -> Option<Vec<f64>> {
    let n = pnl.len();
    let stride = n / PREFILTER_SAMPLE;
    if stride < 2 {
        return None;
    }
    let mut sample: Vec<f64> = pnl
        .iter()
        .step_by(stride)
        .take(PREFILTER_SAMPLE)
        .copied()
        .collect();
    let expected = k as f64 * sample.len() as f64 / n as f64;
    // Four binomial standard deviations of headroom (plus a constant for tiny tails).
    let rank = (expected + 4.0 * expected.sqrt() + 8.0).ceil() as usize;
    if rank >= sample.len() {
        return None;
    }
    let (_, threshold, _) = sample.select_nth_unstable_by(rank, f64::total_cmp);
    let threshold = *threshold;
    let mut candidates = Vec::with_capacity(((rank + 1) * stride).min(n));
    candidates.extend(pnl.iter().copied().filter(|&x| x <= threshold));
    (candidates.len() >= k).then_some(candidates)
}

/// VaR at `confidence`: the k-th worst outcome as a positive loss.
pub fn value_at_risk(pnl: &[f64], confidence: f64) -> CoreResult<f64> {
    tail_risk(pnl, confidence).map(|r| r.value_at_risk)
}

/// ES at `confidence`: the mean of the k worst outcomes as a positive loss.
pub fn expected_shortfall(pnl: &[f64], confidence: f64) -> CoreResult<f64> {
    tail_risk(pnl, confidence).map(|r| r.expected_shortfall)
}

/// The tail measures of already validated, finite outcomes; reorders `outcomes`.
/// Requires 1 <= k <= outcomes.len() (callers get k from `tail_count`); returns NaNs otherwise.
pub(crate) fn tail_risk_in_place(outcomes: &mut [f64], k: usize) -> TailRisk {
    if k == 0 || k > outcomes.len() {
        return TailRisk {
            value_at_risk: f64::NAN,
            expected_shortfall: f64::NAN,
            tail_count: k,
        };
    }
    let (worse, kth, _) = outcomes.select_nth_unstable_by(k - 1, f64::total_cmp);
    let kth = *kth;
    let sum = compensated_sum(worse.iter().copied().chain(std::iter::once(kth)));
    TailRisk {
        value_at_risk: -kth,
        expected_shortfall: -(sum / k as f64),
        tail_count: k,
    }
}

/// Neumaier-compensated sum: the tail mean stays accurate to a few ulps whatever k is.
pub(crate) fn compensated_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut sum = 0.0_f64;
    let mut carry = 0.0_f64;
    for v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            carry += (sum - t) + v;
        } else {
            carry += (v - t) + sum;
        }
        sum = t;
    }
    sum + carry
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted_reference(pnl: &[f64], k: usize) -> (f64, f64) {
        let mut s = pnl.to_vec();
        s.sort_by(f64::total_cmp);
        let es = -s[..k].iter().sum::<f64>() / k as f64;
        (-s[k - 1], es)
    }

    #[test]
    fn tail_count_is_robust_to_floating_error() {
        assert_eq!(tail_count(1000, 0.975), Ok(25));
        assert_eq!(tail_count(100, 0.95), Ok(5));
        assert_eq!(tail_count(500, 0.975), Ok(13)); // 12.5 -> 13
        assert_eq!(tail_count(1, 0.975), Ok(1));
        assert_eq!(tail_count(10, 0.99), Ok(1)); // 0.1 -> 1
        assert_eq!(tail_count(3, 0.001), Ok(3));
        assert_eq!(tail_count(1_000_000, 0.975), Ok(25_000));
        assert_eq!(tail_count(40, 0.975), Ok(1));
        assert_eq!(tail_count(41, 0.975), Ok(2));
        assert!(tail_count(0, 0.975).is_err());
        assert_eq!(
            tail_count(10, 1.0).map_err(|e| e.field().to_string()),
            Err("confidence".to_string())
        );
        assert!(tail_count(10, 0.0).is_err());
        assert!(tail_count(10, f64::NAN).is_err());
    }

    #[test]
    fn hand_made_cases() {
        // 20 outcomes -1..-20 and c = 0.9: k = 2, VaR = 19, ES = (20 + 19) / 2.
        let pnl: Vec<f64> = (1..=20).map(|i| -(i as f64)).collect();
        let r = tail_risk(&pnl, 0.9).unwrap_or(TailRisk {
            value_at_risk: 0.0,
            expected_shortfall: 0.0,
            tail_count: 0,
        });
        assert_eq!(r.tail_count, 2);
        assert_eq!(r.value_at_risk, 19.0);
        assert_eq!(r.expected_shortfall, 19.5);
        // Ties: the worst three are all -5.
        let ties = [1.0, -5.0, 3.0, -5.0, -5.0, 2.0];
        assert_eq!(value_at_risk(&ties, 0.5), Ok(5.0));
        assert_eq!(expected_shortfall(&ties, 0.5), Ok(5.0));
        // n = 1: both are the single outcome's loss.
        assert_eq!(value_at_risk(&[7.0], 0.975), Ok(-7.0));
        assert_eq!(expected_shortfall(&[-7.0], 0.975), Ok(7.0));
    }

    #[test]
    fn bad_input_names_the_argument_and_index() {
        let e = expected_shortfall(&[1.0, f64::NAN], 0.975).err();
        assert_eq!(e.as_ref().map(|e| e.field()), Some("pnl"));
        assert!(e.map(|e| e.reason().contains("element 1")).unwrap_or(false));
        assert_eq!(
            value_at_risk(&[], 0.975)
                .err()
                .map(|e| e.field().to_string()),
            Some("pnl".to_string())
        );
        assert_eq!(
            value_at_risk(&[1.0], 1.5)
                .err()
                .map(|e| e.field().to_string()),
            Some("confidence".to_string())
        );
        assert!(tail_risk_in_place(&mut [1.0], 0).value_at_risk.is_nan());
    }

    #[test]
    fn compensated_sum_keeps_small_terms() {
        let v = [1e16, 1.0, -1e16, 1.0];
        assert_eq!(compensated_sum(v.iter().copied()), 2.0);
    }

    #[test]
    fn prefilter_is_exact_on_large_and_adversarial_inputs() {
        let n = 100_003;
        let shapes: Vec<Vec<f64>> = vec![
            (0..n)
                .map(|i| ((i * 7919) % 100_003) as f64 - 50_000.0)
                .collect(), // a permutation
            (0..n).map(|i| i as f64).collect(), // sorted ascending
            (0..n).map(|i| -(i as f64)).collect(), // sorted descending
            // The strided sample (every 24th outcome here) sees only highs, then only lows (fallback).
            (0..n)
                .map(|i| if i % 24 == 0 { 1e6 } else { -((i % 97) as f64) })
                .collect(),
            (0..n)
                .map(|i| {
                    if i % 24 == 0 {
                        -1e6 - i as f64
                    } else {
                        (i % 97) as f64
                    }
                })
                .collect(),
            (0..n)
                .map(|i| if i % 3 == 0 { -1.0 } else { 0.0 })
                .collect(), // heavy ties
        ];
        for pnl in &shapes {
            for &c in &[0.5, 0.9, 0.975, 0.99, 0.99999] {
                let k = tail_count(n, c).unwrap();
                let (var, es) = sorted_reference(pnl, k);
                let r = tail_risk(pnl, c).unwrap();
                assert_eq!(r.value_at_risk, var);
                assert!((r.expected_shortfall - es).abs() <= 1e-12 * (1.0 + es.abs()));
            }
        }
    }

    proptest! {
        #[test]
        fn matches_sorted_reference(pnl in prop::collection::vec(-1e6f64..1e6, 1..400), c in 0.5f64..0.999) {
            let k = tail_count(pnl.len(), c).unwrap_or(1);
            let (var, es) = sorted_reference(&pnl, k);
            let r = tail_risk(&pnl, c);
            prop_assert!(r.is_ok());
            let r = r.unwrap_or(TailRisk { value_at_risk: f64::NAN, expected_shortfall: f64::NAN, tail_count: 0 });
            prop_assert_eq!(r.value_at_risk, var);
            prop_assert!((r.expected_shortfall - es).abs() <= 1e-9 * (1.0 + es.abs()));
            prop_assert!(r.expected_shortfall >= r.value_at_risk - 1e-9 * (1.0 + es.abs()));
        }

        #[test]
        fn never_panics(pnl in prop::collection::vec(prop::num::f64::ANY, 0..50), c in prop::num::f64::ANY) {
            let _ = tail_risk(&pnl, c);
            let _ = value_at_risk(&pnl, c);
            let _ = expected_shortfall(&pnl, c);
            let _ = tail_count(pnl.len(), c);
        }
    }
}
