//! A backtest's market facts, computed ahead of its decisions: the market label (with its explanation line) and
//! the VIX proxy reading (with its note) of every daily window a run can show the engine. A backtest knows every
//! symbol's whole series up front, so the facts of all its windows are one call per symbol (windows in parallel)
//! instead of one label and one realised volatility per decision.
//!
//! Each window is computed by exactly the functions the engine calls on demand (`label::market_label`,
//! `indicators::hist_vol`) over exactly the window's bars, so every number is the same bit for bit (Wilder
//! smoothing and the re-centred sums depend on where a window starts, so nothing is shared between windows).
//! A window the on-demand path would refuse (too few bars, an IV that is not a finite number > 0, a price that is
//! not) has no fact: the engine computes it on demand and raises there, as it always has.

use rayon::prelude::*;

use super::label::{label_with_rsi, LabelReading, LabelTable};
use super::pyfmt;
use crate::error::{CoreError, CoreResult};
use crate::indicators;

/// Bars `start..end` of a series (end exclusive): the bars the engine is shown on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: usize,
    pub end: usize,
}

/// The windows `starts[i]..ends[i]` of a series of `len` bars, checked: as many starts as ends, and
/// `0 <= start <= end <= len` for each. Errors name `starts` or `ends`.
pub fn windows(starts: &[i64], ends: &[i64], len: usize) -> CoreResult<Vec<Window>> {
    if starts.len() != ends.len() {
        return Err(CoreError::invalid(
            "ends",
            format!("has {} entries, starts has {}", ends.len(), starts.len()),
        ));
    }
    starts
        .iter()
        .zip(ends)
        .enumerate()
        .map(|(i, (&s, &e))| {
            let end = usize::try_from(e)
                .ok()
                .filter(|e| *e <= len)
                .ok_or_else(|| {
                    CoreError::invalid(
                        "ends",
                        format!("entry {i} must be in [0, {len}] (the series' bars), got {e}"),
                    )
                })?;
            let start = usize::try_from(s)
                .ok()
                .filter(|s| *s <= end)
                .ok_or_else(|| {
                    CoreError::invalid(
                        "starts",
                        format!("entry {i} must be in [0, {end}] (its window's end), got {s}"),
                    )
                })?;
            Ok(Window { start, end })
        })
        .collect()
}

/// Python's `{x:.Nf}`, non-finite numbers included (`nan`, `inf`, `-inf`).
pub fn fixed(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        pyfmt::fixed(x, digits).to_string()
    }
}

/// Python's `{x:.N%}`, non-finite numbers included.
pub fn pct(x: f64, digits: usize) -> String {
    format!("{}%", fixed(x * 100.0, digits))
}

/// A market label as the engine holds it (`MarketLabel`: the confidence rounded to 10 decimals), the IV it was
/// read with, and its explanation line (`MarketLabel.explain()`).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelFact {
    pub reading: LabelReading,
    pub iv: f64,
    pub text: String,
}

/// `MarketLabel.explain()`: one line citing every number the label used, written as Python writes it.
pub fn label_line(r: &LabelReading, iv: f64) -> String {
    format!(
        "label={} confidence={} scores=green:{}/red:{}/chop:{} iv={}({}) trend={}({}, R2={}) rsi={} roc={}% \
         momentum={} volume_ratio={}",
        r.label.name(),
        fixed(r.confidence, 2),
        r.scores[0],
        r.scores[1],
        r.scores[2],
        fixed(iv, 3),
        r.vol_regime,
        r.trend,
        r.trend_grade,
        fixed(r.trend_strength, 2),
        fixed(r.rsi, 1),
        fixed(r.roc_pct, 2),
        r.momentum,
        fixed(r.volume_ratio, 2),
    )
}

/// Windows whose RSI is computed side by side (`wilder_rsi_lanes`).
const LANES: usize = 8;

/// A step's gain, `d.max(0.0)` for any d that is not NaN (finite closes make none), written as a comparison the
/// compiler can do for several windows at once; a zero's sign cannot reach the averages (x + -0.0 is x).
#[inline]
fn up(d: f64) -> f64 {
    if d > 0.0 {
        d
    } else {
        0.0
    }
}

/// A step's loss, `(-d).max(0.0)` likewise.
#[inline]
fn down(d: f64) -> f64 {
    if d < 0.0 {
        -d
    } else {
        0.0
    }
}

/// `indicators::rsi_last` of the closes of each of LANES windows of one length `m` (> `period`), bit for bit: the
/// same differences, the same first mean and the same Wilder steps in the same order, for the LANES windows at
/// once. Each step of one window waits on its previous step (a division), so the windows' steps interleave and
/// the processor overlaps them: several windows for about the time of one.
pub fn wilder_rsi_lanes(
    close: &[f64],
    starts: [usize; LANES],
    m: usize,
    period: usize,
) -> [f64; LANES] {
    let p = period as f64;
    let (mut gain, mut loss) = ([0.0f64; LANES], [0.0f64; LANES]);
    for j in 0..period {
        for k in 0..LANES {
            let i = starts[k] + j;
            let d = close[i + 1] - close[i];
            gain[k] += up(d);
            loss[k] += down(d);
        }
    }
    for k in 0..LANES {
        gain[k] /= p;
        loss[k] /= p;
    }
    for j in period..m.saturating_sub(1) {
        for k in 0..LANES {
            let i = starts[k] + j;
            let d = close[i + 1] - close[i];
            gain[k] = (gain[k] * (p - 1.0) + up(d)) / p;
            loss[k] = (loss[k] * (p - 1.0) + down(d)) / p;
        }
    }
    let mut out = [0.0; LANES];
    for k in 0..LANES {
        // As the core's RSI: the ratio first (never above 100 after rounding); 50 without any move.
        let total = gain[k] + loss[k];
        out[k] = if total > 0.0 {
            100.0 * (gain[k] / total)
        } else {
            50.0
        };
    }
    out
}

/// The RSIs of a chunk of at most LANES windows when they can be had side by side (LANES windows of one length
/// above the RSI period, every close of the series finite: `finite`); None otherwise (each label then reads its own, as on demand).
fn chunk_rsi(close: &[f64], finite: bool, ws: &[Window], period: usize) -> Option<[f64; LANES]> {
    let first = ws.first()?;
    let m = first.end - first.start;
    if !finite || ws.len() != LANES || m <= period || ws.iter().any(|w| w.end - w.start != m) {
        return None;
    }
    let mut starts = [0usize; LANES];
    for (s, w) in starts.iter_mut().zip(ws) {
        *s = w.start;
    }
    Some(wilder_rsi_lanes(close, starts, m, period))
}

/// The label of one window's last bar as the engine's `market_label` makes it, or None where it would refuse the
/// window (fewer than `min_bars` bars, an IV that is not a finite number > 0, a price the core refuses). `rsi` is
/// the window's RSI when already known.
fn label_of(
    close: &[f64],
    volume: Option<&[f64]>,
    w: Window,
    iv: f64,
    min_bars: usize,
    t: &LabelTable,
    rsi: Option<f64>,
) -> Option<LabelFact> {
    if w.end - w.start < min_bars || !(iv.is_finite() && iv > 0.0) {
        return None;
    }
    let vols = volume.map(|v| &v[w.start..w.end]);
    let mut reading = label_with_rsi(&close[w.start..w.end], iv, vols, t, |c| match rsi {
        Some(value) => Ok(value),
        None => indicators::rsi_last(c, t.rsi_period),
    })
    .ok()?;
    reading.confidence = pyfmt::round(reading.confidence, 10);
    let text = label_line(&reading, iv);
    Some(LabelFact { reading, iv, text })
}

/// The label fact of every window (`ivs[i]` the IV window i is read with; `volume`, when given, as long as
/// `close`), computed in parallel. Errors name the argument that does not fit (`ivs`, `volume`, `min_bars`,
/// `close`), never a window: a window the engine would refuse has None.
pub fn label_facts(
    close: &[f64],
    volume: Option<&[f64]>,
    windows: &[Window],
    ivs: &[f64],
    min_bars: usize,
    t: &LabelTable,
) -> CoreResult<Vec<Option<LabelFact>>> {
    t.validate()?;
    if ivs.len() != windows.len() {
        return Err(CoreError::invalid(
            "ivs",
            format!(
                "has {} entries, there are {} windows",
                ivs.len(),
                windows.len()
            ),
        ));
    }
    if let Some(v) = volume {
        if v.len() != close.len() {
            return Err(CoreError::invalid(
                "volume",
                format!("has {} bars, close has {}", v.len(), close.len()),
            ));
        }
    }
    if min_bars < 1 {
        return Err(CoreError::invalid("min_bars", "must be >= 1, got 0"));
    }
    check_windows(windows, close.len())?;
    let finite = close.iter().all(|x| x.is_finite());
    Ok(windows
        .par_chunks(LANES)
        .zip(ivs.par_chunks(LANES))
        .flat_map_iter(|(ws, ivs)| {
            let rsi = chunk_rsi(close, finite, ws, t.rsi_period);
            ws.iter().zip(ivs).enumerate().map(move |(k, (w, iv))| {
                label_of(close, volume, *w, *iv, min_bars, t, rsi.map(|r| r[k]))
            })
        })
        .collect())
}

/// The VIX proxy read from one window, as `Engine.vix_reading` reads it without a VIX: (value, source, note).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyFact {
    /// The proxy's value; None when it cannot be had.
    pub value: Option<f64>,
    /// "proxy", or "none" without a value.
    pub source: &'static str,
    pub note: String,
}

/// The proxy of one window: its last `window` + 1 closes' realised volatility x 100 x `ratio`; None where the
/// engine's reading would raise (a close that is not a finite price > 0).
fn proxy_of(
    close: &[f64],
    w: Window,
    window: usize,
    ratio: f64,
    source: &str,
) -> Option<ProxyFact> {
    if w.end - w.start <= window {
        return Some(ProxyFact {
            value: None,
            source: "none",
            note: format!("no VIX and too few bars of {source} for the proxy"),
        });
    }
    let last = &close[w.end - window - 1..w.end];
    let hv = *indicators::hist_vol(last, window, 252.0).ok()?.last()?;
    if !hv.is_finite() {
        return Some(ProxyFact {
            value: None,
            source: "none",
            note: format!("no VIX and no finite realised volatility of {source}"),
        });
    }
    let value = hv * 100.0 * ratio;
    let note = format!(
        "VIX proxy={} ({window}-day realised vol of {source} {} x {})",
        fixed(value, 2),
        pct(hv, 1),
        pyfmt::general(ratio),
    );
    Some(ProxyFact {
        value: Some(value),
        source: "proxy",
        note,
    })
}

/// The VIX proxy fact of every window of `source`'s closes (`window` >= 2 returns, `ratio` finite and >= 0),
/// computed in parallel. A window a reading would raise on has None.
pub fn proxy_facts(
    close: &[f64],
    windows: &[Window],
    window: usize,
    ratio: f64,
    source: &str,
) -> CoreResult<Vec<Option<ProxyFact>>> {
    if window < 2 {
        return Err(CoreError::invalid(
            "window",
            format!("must be >= 2, got {window}"),
        ));
    }
    if !(ratio.is_finite() && ratio >= 0.0) {
        return Err(CoreError::invalid(
            "ratio",
            format!("must be a finite number >= 0, got {ratio}"),
        ));
    }
    check_windows(windows, close.len())?;
    Ok(windows
        .par_iter()
        .map(|w| proxy_of(close, *w, window, ratio, source))
        .collect())
}

fn check_windows(windows: &[Window], len: usize) -> CoreResult<()> {
    match windows.iter().position(|w| w.start > w.end || w.end > len) {
        None => Ok(()),
        Some(i) => Err(CoreError::invalid(
            "ends",
            format!("window {i} does not fit a series of {len} bars"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::label::{market_label, LabelConfidence, LabelScores};
    use super::*;
    use proptest::prelude::*;

    fn table() -> LabelTable {
        LabelTable {
            iv_low: 0.15,
            iv_high: 0.30,
            trend_weak: 0.3,
            trend_strong: 0.7,
            trend_window: 20,
            rsi_period: 14,
            rsi_bull: 55.0,
            rsi_bear: 45.0,
            roc_period: 10,
            roc_bull: 2.0,
            roc_bear: -2.0,
            volume_window: 20,
            volume_spike: 1.5,
            win_min_score: 2.0,
            scores: LabelScores {
                vol_low_green: 1,
                vol_high_red: 1,
                vol_chop: 1,
                trend: 2,
                trend_chop: 1,
                momentum: 2,
                momentum_chop: 1,
                volume: 1,
            },
            confidence: LabelConfidence {
                base: 0.5,
                strong_trend: 0.2,
                moderate_trend: 0.1,
                clear_vol: 0.1,
                momentum_agrees: 0.1,
                cap: 0.95,
            },
        }
    }

    fn series(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 100.0 + (i as f64 * 0.37).sin() * 5.0 + i as f64 * 0.05)
            .collect()
    }

    #[test]
    fn each_window_is_the_label_of_its_own_bars() -> CoreResult<()> {
        let close = series(400);
        let volume: Vec<f64> = (0..400).map(|i| 1e6 + (i % 7) as f64 * 1e5).collect();
        let ws = windows(&[0, 100, 150, 0], &[300, 400, 400, 10], close.len())?;
        let ivs = [0.2, 0.35, f64::NAN, 0.2];
        let got = label_facts(&close, Some(&volume), &ws, &ivs, 60, &table())?;
        for (i, w) in ws.iter().enumerate().take(2) {
            let mut want = market_label(
                &close[w.start..w.end],
                ivs[i],
                Some(&volume[w.start..w.end]),
                &table(),
            )?;
            want.confidence = pyfmt::round(want.confidence, 10);
            let fact = got[i]
                .as_ref()
                .ok_or_else(|| CoreError::invalid("fact", "none"))?;
            assert_eq!(fact.reading, want);
            assert_eq!(fact.text, label_line(&want, ivs[i]));
        }
        // An IV that is not a number > 0 and too few bars: no fact (the engine refuses those windows itself).
        assert!(got[2].is_none() && got[3].is_none());
        Ok(())
    }

    #[test]
    fn writes_the_line_as_python_does() -> CoreResult<()> {
        let close = series(300);
        let volume = vec![0.0; 300];
        let ws = windows(&[0], &[300], 300)?;
        let got = label_facts(&close, Some(&volume), &ws, &[0.25], 60, &table())?;
        let fact = got[0]
            .as_ref()
            .ok_or_else(|| CoreError::invalid("fact", "none"))?;
        // Close-only data: no volume, the ratio is NaN and Python writes it "nan".
        assert!(fact.text.ends_with("volume_ratio=nan"), "{}", fact.text);
        assert!(fact.text.contains(" iv=0.250(medium) "), "{}", fact.text);
        assert_eq!(fixed(f64::INFINITY, 2), "inf");
        assert_eq!(fixed(f64::NEG_INFINITY, 1), "-inf");
        assert_eq!(fixed(-0.0, 2), "-0.00");
        assert_eq!(pct(f64::NAN, 1), "nan%");
        assert_eq!(pct(0.1234, 1), "12.3%");
        Ok(())
    }

    #[test]
    fn the_proxy_reads_the_last_window_closes() -> CoreResult<()> {
        let close = series(200);
        let ws = windows(&[0, 0, 150], &[20, 21, 200], 200)?;
        let got = proxy_facts(&close, &ws, 20, 1.2, "SPX")?;
        let few = got[0]
            .as_ref()
            .ok_or_else(|| CoreError::invalid("fact", "none"))?;
        assert_eq!(few.value, None);
        assert_eq!(few.note, "no VIX and too few bars of SPX for the proxy");
        let last = got[2]
            .as_ref()
            .ok_or_else(|| CoreError::invalid("fact", "none"))?;
        let hv = indicators::hist_vol(&close[179..200], 20, 252.0)?[20];
        assert_eq!(last.value, Some(hv * 100.0 * 1.2));
        assert!(last.note.starts_with("VIX proxy="), "{}", last.note);
        assert!(last.note.ends_with(" x 1.2)"), "{}", last.note);
        // Closes whose log returns overflow: the reading is what hist_vol gives (it clamps a NaN variance to 0).
        let wild = [1e-300, 1e300, 1e-300, 1e300, 1e-300];
        let got = proxy_facts(&wild, &windows(&[0], &[5], 5)?, 3, 1.0, "X")?;
        let fact = got[0]
            .as_ref()
            .ok_or_else(|| CoreError::invalid("fact", "none"))?;
        let hv = indicators::hist_vol(&wild[1..], 3, 252.0)?[3];
        assert_eq!(fact.value, Some(hv * 100.0));
        // A close that is not a price: no fact (the engine's own reading raises on it).
        let bad = [1.0, 2.0, -1.0, 2.0];
        assert_eq!(
            proxy_facts(&bad, &windows(&[0], &[4], 4)?, 2, 1.0, "X")?,
            vec![None]
        );
        Ok(())
    }

    #[test]
    fn bad_arguments_name_their_field() {
        let field = |r: CoreResult<Vec<Window>>| r.err().map(|e| e.field().to_string());
        assert_eq!(field(windows(&[0], &[], 5)).as_deref(), Some("ends"));
        assert_eq!(field(windows(&[0], &[6], 5)).as_deref(), Some("ends"));
        assert_eq!(field(windows(&[-1], &[3], 5)).as_deref(), Some("starts"));
        assert_eq!(field(windows(&[4], &[3], 5)).as_deref(), Some("starts"));
        let close = series(10);
        let ws = [Window { start: 0, end: 10 }];
        let err = |r: CoreResult<Vec<Option<LabelFact>>>| r.err().map(|e| e.field().to_string());
        assert_eq!(
            err(label_facts(&close, None, &ws, &[], 5, &table())).as_deref(),
            Some("ivs")
        );
        assert_eq!(
            err(label_facts(&close, Some(&[1.0]), &ws, &[0.2], 5, &table())).as_deref(),
            Some("volume")
        );
        assert_eq!(
            err(label_facts(&close, None, &ws, &[0.2], 0, &table())).as_deref(),
            Some("min_bars")
        );
        let out = [Window { start: 0, end: 11 }];
        assert_eq!(
            err(label_facts(&close, None, &out, &[0.2], 5, &table())).as_deref(),
            Some("ends")
        );
        let perr = |r: CoreResult<Vec<Option<ProxyFact>>>| r.err().map(|e| e.field().to_string());
        assert_eq!(
            perr(proxy_facts(&close, &ws, 1, 1.0, "X")).as_deref(),
            Some("window")
        );
        assert_eq!(
            perr(proxy_facts(&close, &ws, 2, f64::NAN, "X")).as_deref(),
            Some("ratio")
        );
    }

    proptest! {
        /// Side by side, each window's RSI is `rsi_last` of its closes bit for bit.
        #[test]
        fn lanes_give_each_window_s_own_rsi(
            close in prop::collection::vec(prop_oneof![0.01f64..1e4, 1.0f64..1.0001, Just(5.0)], 2..300),
            period in 1usize..30,
            offsets in prop::collection::vec(0usize..300, LANES),
            m in 2usize..300,
        ) {
            let m = m.min(close.len());
            prop_assume!(m > period);
            let mut starts = [0usize; LANES];
            for (s, o) in starts.iter_mut().zip(&offsets) {
                *s = o % (close.len() - m + 1);
            }
            let got = wilder_rsi_lanes(&close, starts, m, period);
            for (k, s) in starts.iter().enumerate() {
                let want = indicators::rsi_last(&close[*s..*s + m], period);
                prop_assert_eq!(Ok(got[k].to_bits()), want.map(f64::to_bits));
            }
        }

        /// Every window's fact is `market_label` of its own bars (and nothing where it refuses them).
        #[test]
        fn facts_are_the_labels_of_their_windows(
            close in prop::collection::vec(prop_oneof![1.0f64..200.0, Just(50.0), Just(-1.0)], 1..160),
            volume in prop::collection::vec(prop_oneof![0.0f64..1e6, Just(0.0)], 160),
            bounds in prop::collection::vec((0usize..160, 0usize..160), 1..12),
            iv in prop_oneof![0.01f64..1.0, Just(f64::NAN), Just(0.0)],
        ) {
            let n = close.len();
            let (starts, ends): (Vec<i64>, Vec<i64>) = bounds
                .iter()
                .map(|(a, b)| {
                    let (lo, hi) = ((*a).min(*b) % (n + 1), (*a).max(*b) % (n + 1));
                    let (lo, hi) = (lo.min(hi), lo.max(hi));
                    (lo as i64, hi as i64)
                })
                .unzip();
            let ws = windows(&starts, &ends, n).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ivs = vec![iv; ws.len()];
            let vols = &volume[..n];
            let got = label_facts(&close, Some(vols), &ws, &ivs, 55, &table())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            for (w, fact) in ws.iter().zip(&got) {
                let want = if w.end - w.start < 55 || !(iv.is_finite() && iv > 0.0) {
                    None
                } else {
                    market_label(&close[w.start..w.end], iv, Some(&vols[w.start..w.end]), &table()).ok()
                };
                match (fact, want) {
                    (None, None) => {}
                    (Some(f), Some(mut r)) => {
                        r.confidence = pyfmt::round(r.confidence, 10);
                        prop_assert_eq!(format!("{:?}", f.reading), format!("{r:?}"));
                    }
                    (f, r) => prop_assert!(false, "fact {:?} against {:?}", f, r),
                }
            }
        }

        #[test]
        fn any_input_gives_facts_or_an_error_never_a_panic(
            close in prop::collection::vec(prop_oneof![any::<f64>(), 0.1f64..1e4], 0..120),
            volume in prop::option::of(prop::collection::vec(any::<f64>(), 0..120)),
            bounds in prop::collection::vec((any::<i64>(), any::<i64>()), 0..8),
            small in prop::collection::vec((0i64..130, 0i64..130), 0..8),
            ivs in prop::collection::vec(any::<f64>(), 0..16),
            min_bars in 0usize..200,
            window in 0usize..40,
            ratio in any::<f64>(),
        ) {
            let (starts, ends): (Vec<i64>, Vec<i64>) = bounds.into_iter().chain(small).unzip();
            if let Ok(ws) = windows(&starts, &ends, close.len()) {
                let ivs: Vec<f64> = ivs.iter().copied().cycle().take(ws.len()).collect();
                if let Ok(facts) = label_facts(&close, volume.as_deref(), &ws, &ivs, min_bars, &table()) {
                    prop_assert_eq!(facts.len(), ws.len());
                }
                if let Ok(facts) = proxy_facts(&close, &ws, window, ratio, "X") {
                    prop_assert_eq!(facts.len(), ws.len());
                }
            }
        }
    }
}
