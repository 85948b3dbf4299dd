//! The market label (PROTOCOL section 2): Green, Red or Chop for a symbol from its daily closes, volumes and
//! implied volatility, scored on volatility regime, trend, momentum and volume. The thresholds are compiled once
//! per configuration (`LabelTable`); one call reads the last bar.

use crate::error::{check, CoreError, CoreResult};
use crate::indicators;

/// Points each reading adds to a label's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelScores {
    pub vol_low_green: i64,
    pub vol_high_red: i64,
    pub vol_chop: i64,
    pub trend: i64,
    pub trend_chop: i64,
    pub momentum: i64,
    pub momentum_chop: i64,
    pub volume: i64,
}

/// What the label's confidence is made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelConfidence {
    pub base: f64,
    pub strong_trend: f64,
    pub moderate_trend: f64,
    pub clear_vol: f64,
    pub momentum_agrees: f64,
    pub cap: f64,
}

/// config/protocol.yaml `market_label`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelTable {
    pub iv_low: f64,
    pub iv_high: f64,
    pub trend_weak: f64,
    pub trend_strong: f64,
    pub trend_window: usize,
    pub rsi_period: usize,
    pub rsi_bull: f64,
    pub rsi_bear: f64,
    pub roc_period: usize,
    pub roc_bull: f64,
    pub roc_bear: f64,
    pub volume_window: usize,
    pub volume_spike: f64,
    pub win_min_score: f64,
    pub scores: LabelScores,
    pub confidence: LabelConfidence,
}

impl LabelTable {
    /// Every threshold finite; windows at least 1 (the trend window at least 2).
    pub fn validate(&self) -> CoreResult<()> {
        let c = &self.confidence;
        for (name, v) in [
            ("iv_low", self.iv_low),
            ("iv_high", self.iv_high),
            ("trend_weak", self.trend_weak),
            ("trend_strong", self.trend_strong),
            ("rsi_bull", self.rsi_bull),
            ("rsi_bear", self.rsi_bear),
            ("roc_bull", self.roc_bull),
            ("roc_bear", self.roc_bear),
            ("volume_spike", self.volume_spike),
            ("win_min_score", self.win_min_score),
            ("confidence.base", c.base),
            ("confidence.strong_trend", c.strong_trend),
            ("confidence.moderate_trend", c.moderate_trend),
            ("confidence.clear_vol", c.clear_vol),
            ("confidence.momentum_agrees", c.momentum_agrees),
            ("confidence.cap", c.cap),
        ] {
            check::finite(name, v)?;
        }
        for (name, v, low) in [
            ("trend_window", self.trend_window, 2),
            ("rsi_period", self.rsi_period, 1),
            ("roc_period", self.roc_period, 1),
            ("volume_window", self.volume_window, 1),
        ] {
            if v < low {
                return Err(CoreError::invalid(
                    name,
                    format!("must be >= {low}, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Green, Red or Chop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Green,
    Red,
    Chop,
}

impl Label {
    /// green, red or chop.
    pub fn name(self) -> &'static str {
        match self {
            Label::Green => "green",
            Label::Red => "red",
            Label::Chop => "chop",
        }
    }
}

/// The label of the last bar with every reading that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelReading {
    pub label: Label,
    /// Unrounded; capped at `confidence.cap`.
    pub confidence: f64,
    /// green, red, chop.
    pub scores: [i64; 3],
    /// low, medium, high.
    pub vol_regime: &'static str,
    /// bullish, bearish, neutral.
    pub trend: &'static str,
    /// R^2 of the trend window's linear fit.
    pub trend_strength: f64,
    /// weak, moderate, strong.
    pub trend_grade: &'static str,
    pub rsi: f64,
    pub roc_pct: f64,
    /// bullish, bearish, neutral.
    pub momentum: &'static str,
    /// The last volume over the mean of the window before it; NaN without volumes or a positive mean.
    pub volume_ratio: f64,
}

/// The sum numpy's `mean` takes (pairwise: blocks of eight partial sums up to 128 values, halves above), so the
/// volume ratio is the same number the Python engine computed.
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, x| acc + x)
    } else if n <= 128 {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let half = n / 2;
        let half = half - half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

fn last(field: &str, xs: &[f64]) -> CoreResult<f64> {
    xs.last()
        .copied()
        .ok_or_else(|| CoreError::invalid(field, "needs at least one value"))
}

/// Labels the last bar of `close` (oldest first, finite and > 0) with implied vol `iv`; `volume`, when given,
/// has the same length as `close`.
pub fn market_label(
    close: &[f64],
    iv: f64,
    volume: Option<&[f64]>,
    t: &LabelTable,
) -> CoreResult<LabelReading> {
    label_with_rsi(close, iv, volume, t, |c| {
        indicators::rsi_last(c, t.rsi_period)
    })
}

/// `market_label` with the RSI of `close` (Wilder, `rsi_period`) given by `rsi`, called where `market_label` reads
/// it: a caller that has it already (the facts of many windows, `facts::wilder_rsi_lanes`) passes it, bit for bit
/// the same number.
pub fn label_with_rsi(
    close: &[f64],
    iv: f64,
    volume: Option<&[f64]>,
    t: &LabelTable,
    rsi: impl FnOnce(&[f64]) -> CoreResult<f64>,
) -> CoreResult<LabelReading> {
    check::finite("iv", iv)?;
    if close.iter().any(|x| !x.is_finite() || *x <= 0.0) {
        return Err(CoreError::invalid("close", "must hold finite prices > 0"));
    }
    let sc = &t.scores;
    let (mut green, mut red, mut chop) = (0i64, 0i64, 0i64);

    // Volatility regime.
    let vol_regime = if iv < t.iv_low {
        green += sc.vol_low_green;
        "low"
    } else if iv > t.iv_high {
        red += sc.vol_high_red;
        chop += sc.vol_chop;
        "high"
    } else {
        chop += sc.vol_chop;
        "medium"
    };

    // Trend: moving-average stack and the R^2 of a linear fit.
    let price = last("close", close)?;
    let ma10 = indicators::sma_last(close, 10)?;
    let ma20 = indicators::sma_last(close, 20)?;
    let ma50 = indicators::sma_last(close, 50)?;
    let trend = if ma10 > ma20 && ma20 > ma50 && price > ma10 {
        "bullish"
    } else if ma10 < ma20 && ma20 < ma50 && price < ma10 {
        "bearish"
    } else {
        "neutral"
    };
    let r2 = indicators::trend_strength_last(close, t.trend_window)?;
    let grade = if r2 < t.trend_weak {
        "weak"
    } else if r2 > t.trend_strong {
        "strong"
    } else {
        "moderate"
    };
    if trend == "bullish" && grade != "weak" {
        green += sc.trend;
    } else if trend == "bearish" && grade != "weak" {
        red += sc.trend;
    } else {
        chop += sc.trend_chop;
    }

    // Momentum: RSI (Wilder) and rate of change.
    let rsi = rsi(close)?;
    let base = close
        .len()
        .checked_sub(1 + t.roc_period)
        .and_then(|i| close.get(i))
        .copied()
        .ok_or_else(|| {
            CoreError::invalid(
                "close",
                format!(
                    "needs more than {} bars for the rate of change",
                    t.roc_period
                ),
            )
        })?;
    let roc = (price / base - 1.0) * 100.0;
    let momentum = if rsi > t.rsi_bull && roc > t.roc_bull {
        green += sc.momentum;
        "bullish"
    } else if rsi < t.rsi_bear && roc < t.roc_bear {
        red += sc.momentum;
        "bearish"
    } else {
        chop += sc.momentum_chop;
        "neutral"
    };

    // A volume spike adds to whichever of Green or Red leads.
    let mut volume_ratio = f64::NAN;
    if let Some(vols) = volume {
        if vols.len() != close.len() {
            return Err(CoreError::invalid(
                "volume",
                format!("has {} bars, close has {}", vols.len(), close.len()),
            ));
        }
        let end = vols.len() - 1;
        let previous = &vols[end.saturating_sub(t.volume_window)..end];
        let avg = if previous.is_empty() {
            f64::NAN
        } else {
            pairwise_sum(previous) / previous.len() as f64
        };
        volume_ratio = if avg > 0.0 { vols[end] / avg } else { f64::NAN };
        if volume_ratio > t.volume_spike && green != red {
            if green > red {
                green += sc.volume;
            } else {
                red += sc.volume;
            }
        }
    }

    // A label wins only with the strictly highest score above the minimum; a tie is Chop.
    let win = t.win_min_score;
    let label = if green > red && green > chop && green as f64 > win {
        Label::Green
    } else if red > green && red > chop && red as f64 > win {
        Label::Red
    } else {
        Label::Chop
    };

    let c = &t.confidence;
    let mut confidence = c.base;
    confidence += match grade {
        "strong" => c.strong_trend,
        "moderate" => c.moderate_trend,
        _ => 0.0,
    };
    if vol_regime != "medium" {
        confidence += c.clear_vol;
    }
    if momentum != "neutral" && momentum == trend {
        confidence += c.momentum_agrees;
    }
    let confidence = confidence.min(c.cap);
    Ok(LabelReading {
        label,
        confidence,
        scores: [green, red, chop],
        vol_regime,
        trend,
        trend_strength: r2,
        trend_grade: grade,
        rsi,
        roc_pct: roc,
        momentum,
        volume_ratio,
    })
}
