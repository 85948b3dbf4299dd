//! Technical indicators over daily bars, as the market label (PROTOCOL section 2) and the protocol
//! levels and ATR regime (section 5) use them.
//!
//! Every indicator takes 1-D series of f64 and returns a series of the same length, with NaN at the
//! leading positions where there is not yet enough data. A series too short to produce a single value is
//! an error naming the window argument, as is a window of 0; non-finite inputs are errors naming the series
//! (and the first bad element). Nothing here panics.
//!
//! Conventions (each documented on its function):
//! - `rsi`: Wilder smoothing seeded with the simple mean of the first `period` gains and losses; 100 when the
//!   average loss is 0 and the average gain is not, 50 when both are 0 (a flat market).
//! - `atr`: true range of the first bar is high - low; ATR is first defined at index `period - 1` as the
//!   mean of the first `period` true ranges, then Wilder-smoothed.
//! - `hist_vol`: annualised sample standard deviation (ddof = 1) of log returns over a rolling window.
//! - `trend_strength`: R^2 of a least-squares line through the last `window` closes against time; 0 when
//!   the window is flat (no trend to explain).
//!
//! Rolling sums are updated in O(1) per step around a reference value that is reset, and the sums
//! recomputed exactly, once every `window` steps: amortised O(n) overall, with the rounding drift of a
//! plain running sum bounded to one window.

use crate::error::{check, CoreError, CoreResult};

/// Validates a series: non-empty and every element finite.
fn finite_series(field: &str, xs: &[f64]) -> CoreResult<()> {
    check::non_empty(field, xs)?;
    check::all_finite(field, xs)
}

/// Validates a series of prices that enter a logarithm: non-empty, finite and > 0.
fn positive_series(field: &str, xs: &[f64]) -> CoreResult<()> {
    check::non_empty(field, xs)?;
    match xs.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
        None => Ok(()),
        Some(i) => Err(CoreError::invalid(
            field,
            format!("element {i} must be a finite number > 0, got {}", xs[i]),
        )),
    }
}

/// Validates a window: at least `min` and small enough that `series_len` values yield one output.
/// `needed_extra` is how many values beyond the window the first output needs (1 when the indicator works
/// on differences or returns).
fn window_fits(
    field: &str,
    window: usize,
    min: usize,
    series_field: &str,
    series_len: usize,
    needed_extra: usize,
) -> CoreResult<()> {
    if window < min {
        return Err(CoreError::invalid(
            field,
            format!("must be >= {min}, got {window}"),
        ));
    }
    let needed = window.saturating_add(needed_extra);
    if needed > series_len {
        let max = series_len.saturating_sub(needed_extra);
        return Err(CoreError::invalid(
            field,
            format!("must be <= {max} for {series_field} of length {series_len} (needs {needed} values), got {window}"),
        ));
    }
    Ok(())
}

/// Simple moving average: `out[i]` is the mean of `values[i + 1 - window ..= i]`, NaN for `i < window - 1`.
///
/// Errors: `values` empty or non-finite; `window` < 1 or > `values.len()`.
pub fn sma(values: &[f64], window: usize) -> CoreResult<Vec<f64>> {
    finite_series("values", values)?;
    window_fits("window", window, 1, "values", values.len(), 0)?;
    let n = values.len();
    let w = window as f64;
    let mut out = vec![f64::NAN; n];
    // Sum of (x - reference) over the current window, re-centred every `window` steps.
    let mut reference = 0.0;
    let mut sum = 0.0;
    for end in (window - 1)..n {
        let start = end + 1 - window;
        if start.is_multiple_of(window) {
            let block = &values[start..=end];
            reference = block[0];
            sum = block.iter().map(|x| x - reference).sum();
        } else {
            sum += (values[end] - reference) - (values[start - 1] - reference);
        }
        out[end] = reference + sum / w;
    }
    Ok(out)
}

/// Relative strength index with Wilder smoothing.
///
/// With `d[i] = closes[i] - closes[i-1]`, gains `max(d, 0)` and losses `max(-d, 0)`: the averages are
/// seeded at index `period` with the simple mean of the first `period` gains and losses
/// (`d[1] ..= d[period]`), then `avg[i] = (avg[i-1] * (period - 1) + x[i]) / period`.
/// `RSI = 100 - 100 / (1 + avg_gain / avg_loss)`, computed as `100 * (avg_gain / (avg_gain + avg_loss))`;
/// it is 100 when the average loss is 0 and the average gain is positive, and 50 when both are 0
/// (an all-flat stretch: no side has strength). NaN for `i < period`.
///
/// Errors: `closes` empty or non-finite; `period` < 1 or > `closes.len() - 1`.
pub fn rsi(closes: &[f64], period: usize) -> CoreResult<Vec<f64>> {
    let mut out = vec![f64::NAN; closes.len()];
    for (slot, (gain, loss)) in out[period.min(closes.len())..]
        .iter_mut()
        .zip(wilder_averages(closes, period)?)
    {
        *slot = rsi_value(gain, loss);
    }
    Ok(out)
}

/// Wilder's average gain and loss after each step from the `period`-th on (the first is the plain mean of the first
/// `period` steps; step j moves from closes[j] to closes[j + 1]): what `rsi` and `rsi_last` read, in one order of
/// operations so both give the same bits. Errors: as `rsi`.
fn wilder_averages(
    closes: &[f64],
    period: usize,
) -> CoreResult<impl Iterator<Item = (f64, f64)> + '_> {
    finite_series("closes", closes)?;
    window_fits("period", period, 1, "closes", closes.len(), 1)?;
    let p = period as f64;
    let mut steps = closes.windows(2).map(|pair| {
        let d = pair[1] - pair[0];
        (d.max(0.0), (-d).max(0.0))
    });
    let (mut gain, mut loss) = (0.0, 0.0);
    for (g, l) in steps.by_ref().take(period) {
        gain += g;
        loss += l;
    }
    let first = (gain / p, loss / p);
    let rest = steps.scan(first, move |state, (g, l)| {
        state.0 = (state.0 * (p - 1.0) + g) / p;
        state.1 = (state.1 * (p - 1.0) + l) / p;
        Some(*state)
    });
    Ok(std::iter::once(first).chain(rest))
}

#[inline]
fn rsi_value(avg_gain: f64, avg_loss: f64) -> f64 {
    let total = avg_gain + avg_loss;
    if total > 0.0 {
        // The ratio first: it is <= 1 after rounding, so the result never exceeds 100.
        100.0 * (avg_gain / total)
    } else {
        50.0
    }
}

/// Validates a bar series (high, low, close): each non-empty and finite, equal lengths, high >= low.
fn validate_bars(high: &[f64], low: &[f64], close: &[f64]) -> CoreResult<()> {
    finite_series("high", high)?;
    finite_series("low", low)?;
    finite_series("close", close)?;
    let n = high.len();
    for (field, len) in [("low", low.len()), ("close", close.len())] {
        if len != n {
            return Err(CoreError::invalid(
                field,
                format!("has length {len}, which does not match high's length {n}"),
            ));
        }
    }
    if let Some(i) = high.iter().zip(low).position(|(h, l)| h < l) {
        return Err(CoreError::invalid(
            "high",
            format!("element {i} ({}) is below low ({})", high[i], low[i]),
        ));
    }
    Ok(())
}

/// True range of each bar: `max(high - low, |high - prev_close|, |low - prev_close|)`, and `high - low`
/// for the first bar (it has no previous close).
///
/// Errors: as `atr` (without the period).
pub fn true_range(high: &[f64], low: &[f64], close: &[f64]) -> CoreResult<Vec<f64>> {
    validate_bars(high, low, close)?;
    Ok(true_range_unchecked(high, low, close))
}

fn true_range_unchecked(high: &[f64], low: &[f64], close: &[f64]) -> Vec<f64> {
    (0..high.len())
        .map(|i| true_range_at(high, low, close, i))
        .collect()
}

/// Wilder's average true range.
///
/// Convention: true range as in `true_range` (the first bar's is `high - low`); ATR is first defined at
/// index `period - 1`, as the simple mean of the first `period` true ranges (bars `0 ..= period - 1`);
/// afterwards `atr[i] = (atr[i-1] * (period - 1) + tr[i]) / period`. NaN for `i < period - 1`.
///
/// Errors: any series empty or non-finite; `low` or `close` of a different length than `high`
/// (the error names the mismatched one); `high[i] < low[i]` (names `high`); `period` < 1 or > length.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> CoreResult<Vec<f64>> {
    validate_bars(high, low, close)?;
    window_fits("period", period, 1, "high", high.len(), 0)?;
    let tr = true_range_unchecked(high, low, close);
    let p = period as f64;
    let mut out = vec![f64::NAN; tr.len()];
    let mut avg = tr[..period].iter().sum::<f64>() / p;
    out[period - 1] = avg;
    for i in period..tr.len() {
        avg = (avg * (p - 1.0) + tr[i]) / p;
        out[i] = avg;
    }
    Ok(out)
}

/// Bar i's true range: its high - low, widened to the gaps from the previous close (Wilder); the first bar has no
/// previous close. The one formula of `true_range`, `atr_last` and `atr_last_pair` (i < len).
#[inline]
fn true_range_at(high: &[f64], low: &[f64], close: &[f64], i: usize) -> f64 {
    let range = high[i] - low[i];
    if i == 0 {
        range
    } else {
        let prev = close[i - 1];
        range.max((high[i] - prev).abs()).max((low[i] - prev).abs())
    }
}

/// The last value of `atr`, bit for bit (the same sums in the same order), without building the true-range and
/// average series: one pass and no allocation. For bars whose columns are already known finite (a validated
/// decision input reads two ATRs per decision); any other input, or a bar with high below low, goes through
/// `atr` itself, so the errors are `atr`'s.
pub fn atr_last(high: &[f64], low: &[f64], close: &[f64], period: usize) -> CoreResult<f64> {
    let n = high.len();
    let plain = period == 0
        || period > n
        || low.len() != n
        || close.len() != n
        || high
            .iter()
            .zip(low)
            .any(|(h, l)| !(h.is_finite() && l.is_finite()) || h < l)
        || !close.iter().all(|c| c.is_finite());
    if plain {
        return Ok(*atr(high, low, close, period)?.last().unwrap_or(&f64::NAN));
    }
    let tr = |i: usize| true_range_at(high, low, close, i);
    let p = period as f64;
    let mut avg = (0..period).map(tr).sum::<f64>() / p;
    for i in period..n {
        avg = (avg * (p - 1.0) + tr(i)) / p;
    }
    Ok(avg)
}

/// `atr_last` of two periods at once, bit for bit (each chain the same sums in the same order): one pass computes
/// every bar's true range once and carries both Wilder averages, whose divisions overlap instead of waiting on
/// each other, and checks the bars in the same pass instead of a pass of its own. `None` unless both periods
/// are in 1..=len and the bars are plain (columns of one length, every value finite, no high below its low):
/// then `atr_last` of each period gives its value or its error.
pub fn atr_last_pair(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    first: usize,
    second: usize,
) -> Option<(f64, f64)> {
    let n = high.len();
    if low.len() != n || close.len() != n || first == 0 || second == 0 || first > n || second > n {
        return None;
    }
    let tr = |i: usize| true_range_at(high, low, close, i);
    // Every bar plain, without an early exit (the loop is not held up by a branch per bar).
    let plain = |i: usize| -> bool {
        let (h, l, c) = (high[i], low[i], close[i]);
        (h >= l) & h.is_finite() & l.is_finite() & c.is_finite()
    };
    let (short, long) = (first.min(second), first.max(second));
    let (ps, pl) = (short as f64, long as f64);
    let mut ok = (0..short).fold(true, |ok, i| ok & plain(i));
    let mut a = (0..short).map(tr).sum::<f64>() / ps;
    for i in short..long {
        ok &= plain(i);
        a = (a * (ps - 1.0) + tr(i)) / ps;
    }
    let mut b = (0..long).map(tr).sum::<f64>() / pl;
    for i in long..n {
        ok &= plain(i);
        let t = tr(i);
        a = (a * (ps - 1.0) + t) / ps;
        b = (b * (pl - 1.0) + t) / pl;
    }
    if !ok {
        return None;
    }
    Some(if first <= second { (a, b) } else { (b, a) })
}

/// Annualised historical volatility: the sample standard deviation (ddof = 1) of the last `window` log
/// returns `ln(closes[i] / closes[i-1])`, times `sqrt(periods_per_year)`. `out[i]` uses the returns ending
/// at bar `i`, so it is NaN for `i < window`.
///
/// Errors: `closes` empty, non-finite or <= 0; `window` < 2 (one return has no sample deviation) or
/// > `closes.len() - 1`; `periods_per_year` not finite or <= 0.
pub fn hist_vol(closes: &[f64], window: usize, periods_per_year: f64) -> CoreResult<Vec<f64>> {
    positive_series("closes", closes)?;
    window_fits("window", window, 2, "closes", closes.len(), 1)?;
    check::positive("periods_per_year", periods_per_year)?;
    let returns: Vec<f64> = closes
        .windows(2)
        .map(|pair| (pair[1] / pair[0]).ln())
        .collect();
    let scale = periods_per_year.sqrt();
    let w = window as f64;
    let mut out = vec![f64::NAN; closes.len()];
    // Sums of (r - reference) and its square over the window, re-centred every `window` steps.
    let (mut reference, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for end in (window - 1)..returns.len() {
        let start = end + 1 - window;
        if start.is_multiple_of(window) {
            let block = &returns[start..=end];
            reference = block.iter().sum::<f64>() / w;
            s1 = block.iter().map(|r| r - reference).sum();
            s2 = block
                .iter()
                .map(|r| (r - reference) * (r - reference))
                .sum();
        } else {
            let (new, old) = (returns[end] - reference, returns[start - 1] - reference);
            s1 += new - old;
            s2 += new * new - old * old;
        }
        let variance = ((s2 - s1 * s1 / w) / (w - 1.0)).max(0.0);
        out[end + 1] = variance.sqrt() * scale;
    }
    Ok(out)
}

/// Trend strength: the R^2 of a least-squares line fitted to the last `window` closes against time
/// (0, 1, ..., window - 1), rolling. `out[i]` uses closes `i + 1 - window ..= i`; NaN for `i < window - 1`.
/// A flat window (all closes equal) has nothing to explain and scores 0 (no trend).
///
/// Errors: `closes` empty or non-finite; `window` < 2 or > `closes.len()`.
pub fn trend_strength(closes: &[f64], window: usize) -> CoreResult<Vec<f64>> {
    finite_series("closes", closes)?;
    window_fits("window", window, 2, "closes", closes.len(), 0)?;
    let n = closes.len();
    let w = window as f64;
    // Time is centred: t_k = k - (w - 1) / 2, so sum(t) = 0 and sum(t^2) = w (w^2 - 1) / 12.
    let t_mid = (w - 1.0) / 2.0;
    let stt = w * (w * w - 1.0) / 12.0;
    let mut out = vec![f64::NAN; n];
    // Over the window, with y = close - reference: sy = sum(y), syy = sum(y^2), sky = sum(k y) with k the
    // position 0..w-1 inside the window. Re-centred every `window` steps.
    let (mut reference, mut sy, mut syy, mut sky) = (0.0, 0.0, 0.0, 0.0);
    for end in (window - 1)..n {
        let start = end + 1 - window;
        if start.is_multiple_of(window) {
            let block = &closes[start..=end];
            reference = block.iter().sum::<f64>() / w;
            (sy, syy, sky) = (0.0, 0.0, 0.0);
            for (k, x) in block.iter().enumerate() {
                let y = x - reference;
                sy += y;
                syy += y * y;
                sky += k as f64 * y;
            }
        } else {
            let (new, old) = (closes[end] - reference, closes[start - 1] - reference);
            // Dropping the oldest value shifts every remaining position down by one.
            sky = sky - (sy - old) + (w - 1.0) * new;
            sy += new - old;
            syy += new * new - old * old;
        }
        let sty = sky - t_mid * sy;
        let syy_centred = syy - sy * sy / w;
        out[end] = if syy_centred > 0.0 {
            (sty * sty / (stt * syy_centred)).clamp(0.0, 1.0)
        } else {
            0.0
        };
    }
    Ok(out)
}

/// The last value of `sma(values, window)`, bit for bit, without the series: the same re-centred block (the last
/// one starting at a multiple of `window`) and the same running steps after it. Errors: as `sma`.
pub fn sma_last(values: &[f64], window: usize) -> CoreResult<f64> {
    finite_series("values", values)?;
    window_fits("window", window, 1, "values", values.len(), 0)?;
    let w = window as f64;
    let last_start = values.len() - window;
    let block_start = last_start - last_start % window;
    let block = &values[block_start..block_start + window];
    let reference = block[0];
    let mut sum: f64 = block.iter().map(|x| x - reference).sum();
    for start in block_start + 1..=last_start {
        let end = start + window - 1;
        sum += (values[end] - reference) - (values[start - 1] - reference);
    }
    Ok(reference + sum / w)
}

/// The last value of `rsi(closes, period)`, bit for bit, without the series (the same Wilder steps). Errors: as
/// `rsi`.
pub fn rsi_last(closes: &[f64], period: usize) -> CoreResult<f64> {
    let (gain, loss) = wilder_averages(closes, period)?
        .last()
        .unwrap_or((f64::NAN, f64::NAN));
    Ok(rsi_value(gain, loss))
}

/// The last value of `trend_strength(closes, window)`, bit for bit, without the series: the same re-centred block
/// and the same running sums after it. Errors: as `trend_strength`.
pub fn trend_strength_last(closes: &[f64], window: usize) -> CoreResult<f64> {
    finite_series("closes", closes)?;
    window_fits("window", window, 2, "closes", closes.len(), 0)?;
    let w = window as f64;
    let t_mid = (w - 1.0) / 2.0;
    let stt = w * (w * w - 1.0) / 12.0;
    let last_start = closes.len() - window;
    let block_start = last_start - last_start % window;
    let block = &closes[block_start..block_start + window];
    let reference = block.iter().sum::<f64>() / w;
    let (mut sy, mut syy, mut sky) = (0.0, 0.0, 0.0);
    for (k, x) in block.iter().enumerate() {
        let y = x - reference;
        sy += y;
        syy += y * y;
        sky += k as f64 * y;
    }
    for start in block_start + 1..=last_start {
        let end = start + window - 1;
        let (new, old) = (closes[end] - reference, closes[start - 1] - reference);
        sky = sky - (sy - old) + (w - 1.0) * new;
        sy += new - old;
        syy += new * new - old * old;
    }
    let sty = sky - t_mid * sy;
    let syy_centred = syy - sy * sy / w;
    Ok(if syy_centred > 0.0 {
        (sty * sty / (stt * syy_centred)).clamp(0.0, 1.0)
    } else {
        0.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The `_last` forms give the series' last value bit for bit (the label reads only that), and the same
        /// errors.
        #[test]
        fn last_values_are_the_series_last_bit_for_bit(
            xs in proptest::collection::vec(0.5f64..500.0, 1..400),
            window in 1usize..60,
        ) {
            let same = |a: CoreResult<f64>, b: CoreResult<Vec<f64>>| match (a, b) {
                (Ok(x), Ok(v)) => x.to_bits() == v.last().copied().unwrap_or(f64::NAN).to_bits(),
                (Err(e), Err(f)) => e.to_string() == f.to_string(),
                _ => false,
            };
            prop_assert!(same(sma_last(&xs, window), sma(&xs, window)));
            prop_assert!(same(rsi_last(&xs, window), rsi(&xs, window)));
            prop_assert!(same(trend_strength_last(&xs, window), trend_strength(&xs, window)));
        }

        /// `atr_last` is `atr`'s last value bit for bit, with `atr`'s errors (high below low, a short or
        /// non-finite column, a bad period).
        #[test]
        fn atr_last_is_the_series_last_bit_for_bit(
            bars in proptest::collection::vec((0.5f64..500.0, 0.0f64..20.0, 0.0f64..1.0), 1..400),
            period in 0usize..60,
            broken in proptest::option::of((0usize..400, 0u8..4)),
        ) {
            // 3 here is the short close column (the helper's 5).
            let (high, low, close) =
                ohlc_broken(&bars, broken.map(|(at, how)| (at, if how < 3 { how } else { 5 })));
            let a = atr_last(&high, &low, &close, period);
            let b = atr(&high, &low, &close, period);
            let same = match (a, b) {
                (Ok(x), Ok(v)) => x.to_bits() == v.last().copied().unwrap_or(f64::NAN).to_bits(),
                (Err(e), Err(f)) => e.to_string() == f.to_string(),
                _ => false,
            };
            prop_assert!(same);
        }
    }

    proptest! {
        /// `atr_last_pair` is `atr_last` of each period bit for bit when it answers, and answers for every plain
        /// input with both periods in 1..=len (so a decision takes its fallback only where `atr_last` errs or the
        /// window is short).
        #[test]
        fn atr_last_pair_is_atr_last_of_each_period(
            bars in proptest::collection::vec((0.5f64..500.0, 0.0f64..20.0, 0.0f64..1.0), 1..400),
            first in 0usize..60,
            second in 0usize..60,
            broken in proptest::option::of((0usize..400, 0u8..6)),
        ) {
            let (high, low, close) = ohlc_broken(&bars, broken);
            let plain = high.len() == low.len()
                && close.len() == high.len()
                && high.iter().zip(&low).zip(&close).all(|((h, l), c)| {
                    h.is_finite() && l.is_finite() && c.is_finite() && h >= l
                });
            let fits = |p: usize| p >= 1 && p <= high.len();
            match atr_last_pair(&high, &low, &close, first, second) {
                Some((a, b)) => {
                    prop_assert!(plain && fits(first) && fits(second));
                    let one = atr_last(&high, &low, &close, first);
                    let two = atr_last(&high, &low, &close, second);
                    prop_assert!(matches!(one, Ok(x) if x.to_bits() == a.to_bits()));
                    prop_assert!(matches!(two, Ok(x) if x.to_bits() == b.to_bits()));
                }
                None => prop_assert!(!(plain && fits(first) && fits(second))),
            }
        }
    }

    /// High, low and close columns from (low, range, where the close sits in the range) triples, with at most one
    /// bar broken: 0 low above high, 1 a NaN close, 2 an infinite high, 3 an infinite low, 4 high equal to low,
    /// otherwise the close column one short.
    fn ohlc_broken(
        bars: &[(f64, f64, f64)],
        broken: Option<(usize, u8)>,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut high: Vec<f64> = bars.iter().map(|b| b.0 + b.1).collect();
        let mut low: Vec<f64> = bars.iter().map(|b| b.0).collect();
        let mut close: Vec<f64> = bars.iter().map(|b| b.0 + b.1 * b.2).collect();
        if let Some((at, how)) = broken {
            let at = at % bars.len();
            match how {
                0 => low[at] = high[at] + 1.0,
                1 => close[at] = f64::NAN,
                2 => high[at] = f64::INFINITY,
                3 => low[at] = f64::NEG_INFINITY,
                4 => high[at] = low[at],
                _ => {
                    close.pop();
                }
            }
        }
        (high, low, close)
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol * (1.0 + b.abs())
    }

    fn naive_sma(xs: &[f64], w: usize) -> Vec<f64> {
        (0..xs.len())
            .map(|i| {
                if i + 1 < w {
                    f64::NAN
                } else {
                    xs[i + 1 - w..=i].iter().sum::<f64>() / w as f64
                }
            })
            .collect()
    }

    fn naive_r2(ys: &[f64]) -> f64 {
        let n = ys.len() as f64;
        let tm = (n - 1.0) / 2.0;
        let ym = ys.iter().sum::<f64>() / n;
        let (mut stt, mut sty, mut syy) = (0.0, 0.0, 0.0);
        for (k, y) in ys.iter().enumerate() {
            let t = k as f64 - tm;
            stt += t * t;
            sty += t * (y - ym);
            syy += (y - ym) * (y - ym);
        }
        if syy > 0.0 {
            sty * sty / (stt * syy)
        } else {
            0.0
        }
    }

    fn err_field<T: std::fmt::Debug>(r: CoreResult<T>) -> String {
        match r {
            Err(e) => e.field().to_string(),
            Ok(v) => format!("unexpected Ok({v:?})"),
        }
    }

    #[test]
    fn sma_matches_naive_mean() -> CoreResult<()> {
        let xs: Vec<f64> = (0..57)
            .map(|i| 100.0 + (i as f64 * 0.7).sin() * 5.0 + i as f64)
            .collect();
        for w in [1, 2, 3, 10, 20, 57] {
            let got = sma(&xs, w)?;
            for (a, b) in got.iter().zip(naive_sma(&xs, w)) {
                assert!(close(*a, b, 1e-12), "w={w}: {a} vs {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn sma_rejects_bad_window_and_values() {
        assert_eq!(err_field(sma(&[1.0, 2.0], 0)), "window");
        assert_eq!(err_field(sma(&[1.0, 2.0], 3)), "window");
        assert_eq!(err_field(sma(&[], 1)), "values");
        assert_eq!(err_field(sma(&[1.0, f64::NAN], 1)), "values");
    }

    #[test]
    fn rsi_hand_example() -> CoreResult<()> {
        // period 2: d = +1, -1, +2, 0
        let got = rsi(&[10.0, 11.0, 10.0, 12.0, 12.0], 2)?;
        assert!(got[0].is_nan() && got[1].is_nan());
        // seed: gain 0.5, loss 0.5 -> 50
        assert!(close(got[2], 50.0, 1e-12));
        // gain (0.5 + 2) / 2 = 1.25, loss 0.25 -> 100 * 1.25 / 1.5
        assert!(close(got[3], 100.0 * 1.25 / 1.5, 1e-12));
        // gain 0.625, loss 0.125
        assert!(close(got[4], 100.0 * 0.625 / 0.75, 1e-12));
        Ok(())
    }

    #[test]
    fn rsi_edge_cases() -> CoreResult<()> {
        let up: Vec<f64> = (0..20).map(f64::from).collect();
        assert!(rsi(&up, 14)?[14..].iter().all(|v| *v == 100.0));
        let down: Vec<f64> = (0..20).map(|i| 100.0 - f64::from(i)).collect();
        assert!(rsi(&down, 14)?[14..].iter().all(|v| *v == 0.0));
        let flat = vec![5.0; 20];
        assert!(rsi(&flat, 14)?[14..].iter().all(|v| *v == 50.0));
        assert_eq!(err_field(rsi(&flat, 20)), "period");
        assert_eq!(err_field(rsi(&flat, 0)), "period");
        assert_eq!(rsi(&flat, 19)?.len(), 20);
        Ok(())
    }

    #[test]
    fn atr_hand_example() -> CoreResult<()> {
        let high = [10.0, 11.0, 12.0, 11.5];
        let low = [9.0, 10.0, 10.5, 9.0];
        let close_ = [9.5, 10.8, 11.0, 9.2];
        // TR: 1.0, max(1, 1.5, 0.5) = 1.5, max(1.5, 1.2, 0.3) = 1.5, max(2.5, 0.5, 2.0) = 2.5
        assert_eq!(true_range(&high, &low, &close_)?, vec![1.0, 1.5, 1.5, 2.5]);
        let got = atr(&high, &low, &close_, 2)?;
        assert!(got[0].is_nan());
        assert!(close(got[1], 1.25, 1e-15));
        assert!(close(got[2], (1.25 + 1.5) / 2.0, 1e-15));
        assert!(close(got[3], (1.375 + 2.5) / 2.0, 1e-15));
        let one = atr(&high, &low, &close_, 1)?;
        assert_eq!(one, vec![1.0, 1.5, 1.5, 2.5]);
        Ok(())
    }

    #[test]
    fn atr_validation_names_the_argument() {
        let h = [2.0, 3.0];
        assert_eq!(err_field(atr(&h, &[1.0], &[1.5, 2.5], 1)), "low");
        assert_eq!(err_field(atr(&h, &[1.0, 2.0], &[1.5], 1)), "close");
        assert_eq!(err_field(atr(&h, &[1.0, 3.5], &[1.5, 2.5], 1)), "high");
        assert_eq!(
            err_field(atr(&h, &[1.0, 2.0], &[1.5, f64::INFINITY], 1)),
            "close"
        );
        assert_eq!(err_field(atr(&h, &[1.0, 2.0], &[1.5, 2.5], 3)), "period");
        assert_eq!(err_field(atr(&h, &[1.0, 2.0], &[1.5, 2.5], 0)), "period");
    }

    #[test]
    fn hist_vol_matches_two_pass_std() -> CoreResult<()> {
        let closes: Vec<f64> = (0..80)
            .map(|i| 100.0 * (0.01 * i as f64 + 0.03 * (i as f64 * 1.3).sin()).exp())
            .collect();
        let w = 7;
        let got = hist_vol(&closes, w, 252.0)?;
        let r: Vec<f64> = closes.windows(2).map(|p| (p[1] / p[0]).ln()).collect();
        for i in 0..closes.len() {
            if i < w {
                assert!(got[i].is_nan());
                continue;
            }
            let block = &r[i - w..i];
            let m = block.iter().sum::<f64>() / w as f64;
            let v = block.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (w as f64 - 1.0);
            assert!(close(got[i], (v * 252.0).sqrt(), 1e-10), "i={i}");
        }
        assert_eq!(err_field(hist_vol(&closes, 1, 252.0)), "window");
        assert_eq!(err_field(hist_vol(&closes, 80, 252.0)), "window");
        assert_eq!(err_field(hist_vol(&closes, 5, 0.0)), "periods_per_year");
        assert_eq!(err_field(hist_vol(&[1.0, 0.0, 2.0], 2, 252.0)), "closes");
        // constant growth: zero volatility, never negative
        let growth: Vec<f64> = (0..30).map(|i| 1.01f64.powi(i)).collect();
        assert!(hist_vol(&growth, 5, 252.0)?[5..]
            .iter()
            .all(|v| *v >= 0.0 && *v < 1e-6));
        Ok(())
    }

    #[test]
    fn trend_strength_cases() -> CoreResult<()> {
        let line: Vec<f64> = (0..30).map(|i| 3.0 * f64::from(i) - 7.0).collect();
        assert!(trend_strength(&line, 20)?[19..]
            .iter()
            .all(|v| close(*v, 1.0, 1e-12)));
        let flat = vec![4.0; 25];
        assert!(trend_strength(&flat, 20)?[19..].iter().all(|v| *v == 0.0));
        let wiggle: Vec<f64> = (0..90)
            .map(|i| 50.0 + (f64::from(i) * 0.9).sin() * 3.0 + 0.1 * f64::from(i))
            .collect();
        let got = trend_strength(&wiggle, 20)?;
        for i in 19..90 {
            assert!(close(got[i], naive_r2(&wiggle[i - 19..=i]), 1e-9), "i={i}");
        }
        assert_eq!(err_field(trend_strength(&flat, 1)), "window");
        assert_eq!(err_field(trend_strength(&flat, 26)), "window");
        Ok(())
    }

    fn series() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(
            prop_oneof![
                4 => -1e6f64..1e6,
                1 => Just(0.0),
                1 => Just(f64::NAN),
                1 => Just(f64::INFINITY),
                1 => Just(f64::NEG_INFINITY),
                1 => Just(f64::MAX),
                1 => Just(1e-300),
            ],
            0..40,
        )
    }

    proptest! {
        #[test]
        fn never_panics(a in series(), b in series(), c in series(), w in 0usize..50, ppy in -10.0f64..400.0) {
            let results = [sma(&a, w), rsi(&a, w), hist_vol(&a, w, ppy), trend_strength(&a, w), atr(&a, &b, &c, w),
                           true_range(&a, &b, &c)];
            for v in results.into_iter().flatten() {
                prop_assert_eq!(v.len(), a.len());
            }
        }

        #[test]
        fn outputs_in_range(xs in prop::collection::vec(1.0f64..1000.0, 2..80), w in 2usize..30) {
            prop_assume!(w < xs.len());
            for v in rsi(&xs, w)?.iter().skip(w) {
                prop_assert!((0.0..=100.0).contains(v));
            }
            for v in trend_strength(&xs, w)?.iter().skip(w - 1) {
                prop_assert!((0.0..=1.0).contains(v));
            }
            for v in hist_vol(&xs, w, 252.0)?.iter().skip(w) {
                prop_assert!(*v >= 0.0 && v.is_finite());
            }
            for (a, b) in sma(&xs, w)?.iter().zip(naive_sma(&xs, w)) {
                prop_assert!(close(*a, b, 1e-9));
            }
        }
    }
}
