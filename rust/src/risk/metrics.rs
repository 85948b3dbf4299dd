//! Performance metrics of a series of periodic simple returns.
//!
//! Where empyrical-reloaded 0.7.1 defines a metric, this module follows its definition,
//! annualisation, sign and edge cases (risk-free rate 0, required return 0, omega threshold 0).
//! Skew and kurtosis are scipy.stats' biased moments (kurtosis as Fisher excess). VaR and ES follow
//! PROTOCOL section 6 (positive losses). Undefined values are NaN or +-inf, as empyrical gives
//! them; nothing here panics.

use super::tail::quantile_in_place;
use super::var::{tail_count, tail_risk_in_place};
use crate::error::{check, CoreError, CoreResult};

/// The VaR level of the metrics table.
pub const METRICS_VAR_CONFIDENCE: f64 = 0.95;
/// The ES level of the metrics table.
pub const METRICS_ES_CONFIDENCE: f64 = 0.975;

/// The 17 metrics of DESIGN.md, plus alpha and beta when a benchmark is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Compounded return over the whole series: prod(1 + r) - 1.
    pub total_return: f64,
    /// Compound annual growth rate: (1 + total)^(periods_per_year / n) - 1.
    pub annual_return: f64,
    /// Sample standard deviation (ddof 1) x sqrt(periods_per_year); NaN when n < 2.
    pub annual_volatility: f64,
    /// mean / std x sqrt(periods_per_year); +-inf for a constant non-zero series, NaN when n < 2.
    pub sharpe_ratio: f64,
    /// mean x periods_per_year / downside_risk; +inf with no downside and a positive mean.
    pub sortino_ratio: f64,
    /// annual_return / |max_drawdown|; NaN when there is no drawdown.
    pub calmar_ratio: f64,
    /// sum of gains / sum of losses (threshold 0); NaN when there are no losses or n < 2.
    pub omega_ratio: f64,
    /// Worst peak-to-trough fall of the compounded path (negative; the start counts as a peak).
    pub max_drawdown: f64,
    /// sqrt(mean(min(r, 0)^2)) x sqrt(periods_per_year).
    pub downside_risk: f64,
    /// R^2 of a linear fit of cumulative log returns against time; NaN when n < 2 or flat.
    pub stability: f64,
    /// |95th percentile| / |5th percentile| (numpy linear percentiles).
    pub tail_ratio: f64,
    /// VaR at 95% (PROTOCOL section 6), a positive loss in return units.
    pub value_at_risk: f64,
    /// ES at 97.5% (PROTOCOL section 6), a positive loss in return units.
    pub expected_shortfall: f64,
    /// Biased sample skewness m3 / m2^1.5 (scipy.stats.skew); NaN for a constant series.
    pub skew: f64,
    /// Biased excess kurtosis m4 / m2^2 - 3 (scipy.stats.kurtosis); NaN for a constant series.
    pub kurtosis: f64,
    /// Share of periods with a strictly positive return: #(r > 0) / n.
    pub win_rate: f64,
    /// sum of positive returns / |sum of negative returns|; +inf without losses, NaN with neither.
    pub profit_factor: f64,
    /// Annualised Jensen alpha against the benchmark: (1 + mean(r - beta b))^periods_per_year - 1.
    pub alpha: Option<f64>,
    /// Beta to the benchmark: cov(r, b) / var(b) (population); NaN when var(b) < 1e-30.
    pub beta: Option<f64>,
}

impl Metrics {
    /// (name, value) pairs in the documented order; alpha and beta only when computed.
    pub fn entries(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![
            ("total_return", self.total_return),
            ("annual_return", self.annual_return),
            ("annual_volatility", self.annual_volatility),
            ("sharpe_ratio", self.sharpe_ratio),
            ("sortino_ratio", self.sortino_ratio),
            ("calmar_ratio", self.calmar_ratio),
            ("omega_ratio", self.omega_ratio),
            ("max_drawdown", self.max_drawdown),
            ("downside_risk", self.downside_risk),
            ("stability", self.stability),
            ("tail_ratio", self.tail_ratio),
            ("value_at_risk", self.value_at_risk),
            ("expected_shortfall", self.expected_shortfall),
            ("skew", self.skew),
            ("kurtosis", self.kurtosis),
            ("win_rate", self.win_rate),
            ("profit_factor", self.profit_factor),
        ];
        if let Some(alpha) = self.alpha {
            out.push(("alpha", alpha));
        }
        if let Some(beta) = self.beta {
            out.push(("beta", beta));
        }
        out
    }
}

fn check_returns(returns: &[f64]) -> CoreResult<()> {
    check::non_empty("returns", returns)?;
    check::all_finite("returns", returns)
}

/// Maximum drawdown of the compounded path (empyrical's `max_drawdown`): the path starts at 100
/// before the first return, so an initial loss is a drawdown from the start; the result is <= 0.
pub fn max_drawdown(returns: &[f64]) -> CoreResult<f64> {
    check_returns(returns)?;
    Ok(max_drawdown_of(returns))
}

fn max_drawdown_of(returns: &[f64]) -> f64 {
    // As empyrical: value_i = 100 x prod_{j <= i}(1 + r_j), peak = running fmax including the
    // starting 100, drawdown = (value - peak) / peak, result = nanmin over the returns' values.
    const START: f64 = 100.0;
    let mut growth = 1.0_f64;
    let mut peak = START;
    let mut worst = f64::NAN;
    for &r in returns {
        growth *= 1.0 + r;
        let value = growth * START;
        peak = peak.max(value); // f64::max ignores NaN like numpy's fmax
        let drawdown = (value - peak) / peak;
        worst = worst.min(drawdown); // f64::min ignores NaN like numpy's nanmin
    }
    worst
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Every metric of `returns` (periodic simple returns, finite, at least one) with
/// `periods_per_year` (> 0) for annualisation; with a `benchmark` of the same length also alpha
/// and beta.
pub fn metrics(
    returns: &[f64],
    periods_per_year: f64,
    benchmark: Option<&[f64]>,
) -> CoreResult<Metrics> {
    check_returns(returns)?;
    check::positive("periods_per_year", periods_per_year)?;
    if let Some(b) = benchmark {
        if b.len() != returns.len() {
            return Err(CoreError::invalid(
                "benchmark",
                format!(
                    "has length {}, which does not match the length of returns ({})",
                    b.len(),
                    returns.len()
                ),
            ));
        }
        check::all_finite("benchmark", b)?;
    }
    let n = returns.len();
    let nf = n as f64;
    let ann = periods_per_year;
    let sqrt_ann = ann.sqrt();

    let growth: f64 = returns.iter().map(|r| 1.0 + r).product();
    let total_return = growth - 1.0;
    let annual_return = growth.powf(1.0 / (nf / ann)) - 1.0;

    let m = mean(returns);
    let (min, max) = returns
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
            (lo.min(r), hi.max(r))
        });
    let constant = min == max;
    let sum_sq_dev: f64 = returns.iter().map(|r| (r - m) * (r - m)).sum();
    let std = if n < 2 {
        f64::NAN
    } else {
        (sum_sq_dev / (nf - 1.0)).sqrt()
    };
    let annual_volatility = std * ann.powf(0.5);
    let sharpe_ratio = if n < 2 {
        f64::NAN
    } else {
        // empyrical zeroes the deviation of a constant series (the mean may be off by an ulp).
        let std = if constant { 0.0 } else { std };
        m / std * sqrt_ann
    };

    let downside_risk = (returns
        .iter()
        .map(|&r| r.min(0.0) * r.min(0.0))
        .sum::<f64>()
        / nf)
        .sqrt()
        * sqrt_ann;
    let sortino_ratio = if n < 2 {
        f64::NAN
    } else {
        m * ann / downside_risk
    };

    let max_drawdown = max_drawdown_of(returns);
    let calmar_ratio = if max_drawdown < 0.0 {
        let c = annual_return / max_drawdown.abs();
        if c.is_infinite() {
            f64::NAN
        } else {
            c
        }
    } else {
        f64::NAN
    };

    let gains: f64 = returns.iter().filter(|&&r| r > 0.0).sum();
    let losses: f64 = -returns.iter().filter(|&&r| r < 0.0).sum::<f64>();
    let omega_ratio = if n < 2 || losses.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        f64::NAN
    } else {
        gains / losses
    };
    let profit_factor = gains / losses.abs();
    let win_rate = returns.iter().filter(|&&r| r > 0.0).count() as f64 / nf;

    let stability = stability_of(returns);

    let mut scratch = returns.to_vec();
    let p95 = quantile_in_place(&mut scratch, 95.0 / 100.0);
    let p5 = quantile_in_place(&mut scratch, 5.0 / 100.0);
    let tail_ratio = p95.abs() / p5.abs();

    let k95 = tail_count(n, METRICS_VAR_CONFIDENCE)?;
    let value_at_risk = tail_risk_in_place(&mut scratch, k95).value_at_risk;
    let k975 = tail_count(n, METRICS_ES_CONFIDENCE)?;
    let expected_shortfall = tail_risk_in_place(&mut scratch, k975).expected_shortfall;

    let (skew, kurtosis) = if constant {
        (f64::NAN, f64::NAN)
    } else {
        moments(returns, m)
    };

    let (alpha, beta) = match benchmark {
        None => (None, None),
        Some(b) => {
            let (alpha, beta) = alpha_beta(returns, b, ann);
            (Some(alpha), Some(beta))
        }
    };

    Ok(Metrics {
        total_return,
        annual_return,
        annual_volatility,
        sharpe_ratio,
        sortino_ratio,
        calmar_ratio,
        omega_ratio,
        max_drawdown,
        downside_risk,
        stability,
        tail_ratio,
        value_at_risk,
        expected_shortfall,
        skew,
        kurtosis,
        win_rate,
        profit_factor,
        alpha,
        beta,
    })
}

/// empyrical's `stability_of_timeseries`: r^2 of scipy's linregress of cumsum(log1p(r)) on 0..n.
fn stability_of(returns: &[f64]) -> f64 {
    let n = returns.len();
    if n < 2 {
        return f64::NAN;
    }
    let nf = n as f64;
    let mut cumulative = Vec::with_capacity(n);
    let mut acc = 0.0_f64;
    for &r in returns {
        acc += r.ln_1p();
        cumulative.push(acc);
    }
    let x_mean = (nf - 1.0) / 2.0;
    let y_mean = mean(&cumulative);
    let (mut sxx, mut sxy, mut syy) = (0.0_f64, 0.0_f64, 0.0_f64);
    for (i, &y) in cumulative.iter().enumerate() {
        let dx = i as f64 - x_mean;
        let dy = y - y_mean;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    let (sxx, sxy, syy) = (sxx / nf, sxy / nf, syy / nf);
    let r = if sxx == 0.0 || syy == 0.0 {
        // scipy: a flat series has no correlation defined.
        if sxy == 0.0 {
            f64::NAN
        } else {
            0.0
        }
    } else {
        (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)
    };
    r * r
}

/// scipy.stats.skew and kurtosis (bias=True, Fisher) around the mean `m`; NaN when the second
/// moment vanishes against the mean's rounding (scipy's test).
fn moments(xs: &[f64], m: f64) -> (f64, f64) {
    let nf = xs.len() as f64;
    let (mut m2, mut m3, mut m4) = (0.0_f64, 0.0_f64, 0.0_f64);
    for &x in xs {
        let d = x - m;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    let (m2, m3, m4) = (m2 / nf, m3 / nf, m4 / nf);
    if m2 <= (f64::EPSILON * m) * (f64::EPSILON * m) {
        return (f64::NAN, f64::NAN);
    }
    (m3 / m2.powf(1.5), m4 / (m2 * m2) - 3.0)
}

/// empyrical's `alpha_beta_aligned` with risk-free 0.
fn alpha_beta(returns: &[f64], benchmark: &[f64], ann: f64) -> (f64, f64) {
    let n = returns.len();
    if n < 2 {
        return (f64::NAN, f64::NAN);
    }
    let nf = n as f64;
    let b_mean = mean(benchmark);
    let (mut cov, mut var) = (0.0_f64, 0.0_f64);
    for (&r, &b) in returns.iter().zip(benchmark) {
        let res = b - b_mean;
        cov += res * r;
        var += res * res;
    }
    let (cov, var) = (cov / nf, var / nf);
    let beta = if var < 1.0e-30 { f64::NAN } else { cov / var };
    let alpha_mean = returns
        .iter()
        .zip(benchmark)
        .map(|(&r, &b)| r - beta * b)
        .sum::<f64>()
        / nf;
    let alpha = (alpha_mean + 1.0).powf(ann) - 1.0;
    (alpha, beta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    #[test]
    fn max_drawdown_counts_the_start_as_a_peak() {
        assert!(close(max_drawdown(&[-0.1, 0.05]).unwrap(), -0.1));
        // Up 10%, then down to 0.99 of the start: peak 110, trough 99 -> -10%.
        assert!(close(max_drawdown(&[0.1, -0.1]).unwrap(), -0.1));
        assert_eq!(max_drawdown(&[0.01, 0.02]).unwrap(), 0.0);
        assert_eq!(max_drawdown(&[-1.0]).unwrap(), -1.0);
        assert_eq!(
            max_drawdown(&[]).err().map(|e| e.field().to_string()),
            Some("returns".into())
        );
    }

    #[test]
    fn simple_series() {
        let r = [0.01, -0.02, 0.03, 0.0, -0.01];
        let m = metrics(&r, 252.0, None).unwrap();
        let growth: f64 = 1.01 * 0.98 * 1.03 * 1.0 * 0.99;
        assert!(close(m.total_return, growth - 1.0));
        assert!(close(m.annual_return, growth.powf(252.0 / 5.0) - 1.0));
        assert!(close(m.win_rate, 0.4));
        assert!(close(m.profit_factor, 0.04 / 0.03));
        assert!(close(m.omega_ratio, 0.04 / 0.03));
        assert!(close(m.value_at_risk, 0.02)); // k = ceil(5 x 0.05) = 1: the worst return
        assert!(close(m.expected_shortfall, 0.02));
        assert!(close(
            m.downside_risk,
            ((0.0004 + 0.0001) / 5.0_f64).sqrt() * 252.0_f64.sqrt()
        ));
        assert!(m.alpha.is_none() && m.beta.is_none());
        assert_eq!(m.entries().len(), 17);
    }

    #[test]
    fn edge_cases_follow_empyrical() {
        let zeros = [0.0; 10];
        let m = metrics(&zeros, 252.0, None).unwrap();
        assert_eq!(m.total_return, 0.0);
        assert!(m.sharpe_ratio.is_nan()); // 0 / 0
        assert!(m.sortino_ratio.is_nan());
        assert!(m.omega_ratio.is_nan());
        assert!(m.calmar_ratio.is_nan());
        assert!(m.stability.is_nan());
        assert!(m.tail_ratio.is_nan());
        assert!(m.skew.is_nan() && m.kurtosis.is_nan());
        assert!(m.profit_factor.is_nan());
        assert_eq!(m.win_rate, 0.0);

        let up = [0.01; 10];
        let m = metrics(&up, 252.0, Some(&[0.02; 10])).unwrap();
        assert_eq!(m.sharpe_ratio, f64::INFINITY);
        assert_eq!(m.sortino_ratio, f64::INFINITY);
        assert_eq!(m.profit_factor, f64::INFINITY);
        assert!(m.omega_ratio.is_nan());
        assert!(m.beta.unwrap().is_nan()); // constant benchmark: no variance
        assert!(m.alpha.unwrap().is_nan());

        let one = metrics(&[0.05], 252.0, Some(&[0.01])).unwrap();
        assert!(
            one.annual_volatility.is_nan() && one.sharpe_ratio.is_nan() && one.stability.is_nan()
        );
        assert!(one.alpha.unwrap().is_nan() && one.beta.unwrap().is_nan());
        assert_eq!(one.value_at_risk, -0.05);
    }

    #[test]
    fn beta_of_a_scaled_benchmark() {
        let b = [0.01, -0.02, 0.015, 0.003, -0.007, 0.02];
        let r: Vec<f64> = b.iter().map(|x| 2.0 * x).collect();
        let m = metrics(&r, 252.0, Some(&b)).unwrap();
        assert!(close(m.beta.unwrap(), 2.0));
        assert!(m.alpha.unwrap().abs() < 1e-12);
    }

    #[test]
    fn bad_input_names_the_argument() {
        let field = |r: CoreResult<Metrics>| r.err().map(|e| e.field().to_string());
        assert_eq!(
            field(metrics(&[0.1, f64::NAN], 252.0, None)),
            Some("returns".into())
        );
        assert_eq!(
            field(metrics(&[0.1], 0.0, None)),
            Some("periods_per_year".into())
        );
        assert_eq!(
            field(metrics(&[0.1], 252.0, Some(&[0.1, 0.2]))),
            Some("benchmark".into())
        );
        assert_eq!(
            field(metrics(&[0.1], 252.0, Some(&[f64::INFINITY]))),
            Some("benchmark".into())
        );
    }

    proptest! {
        #[test]
        fn sane_ranges(r in prop::collection::vec(-0.5f64..0.5, 2..300)) {
            let m = metrics(&r, 252.0, Some(&r)).unwrap();
            prop_assert!(m.max_drawdown <= 0.0 && m.max_drawdown >= -1.0);
            prop_assert!((0.0..=1.0).contains(&m.win_rate));
            prop_assert!(m.stability.is_nan() || (0.0..=1.0).contains(&m.stability));
            // ES at 97.5% averages a tail no wider than VaR at 95%'s, so it is never smaller.
            prop_assert!(m.expected_shortfall >= m.value_at_risk - 1e-12);
            if let Some(beta) = m.beta {
                prop_assert!(beta.is_nan() || (beta - 1.0).abs() < 1e-9);
            }
        }

        #[test]
        fn never_panics(
            r in prop::collection::vec(prop::num::f64::ANY, 0..40),
            b in prop::collection::vec(prop::num::f64::ANY, 0..40),
            ppy in prop::num::f64::ANY,
        ) {
            let _ = metrics(&r, ppy, None);
            let _ = metrics(&r, ppy, Some(&b));
            let _ = metrics(&r, 252.0, Some(&r));
            let _ = max_drawdown(&r);
        }

        #[test]
        fn never_panics_on_extreme_finite_returns(r in prop::collection::vec(-1e300f64..1e300, 1..40)) {
            let m = metrics(&r, 252.0, Some(&r));
            prop_assert!(m.is_ok());
        }
    }
}
