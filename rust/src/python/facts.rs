//! Python bindings of `crate::protocol::decide::facts`: a backtest's labels and VIX proxy readings of every window,
//! one call per symbol, computed without the GIL (windows in parallel).

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::PyClassInitializer;

use crate::error::{CoreError, CoreResult};
use crate::protocol::decide::facts::{self, Window};
use crate::python::decide::{LabelRead, LabelRules};
use crate::python::errors::IntoPyResult;

/// A window's market label as `MarketLabel` holds it (confidence rounded to 10 decimals): the `LabelRead` of the
/// window, with the IV it was read with and its explanation line (`MarketLabel.explain()`).
#[pyclass(frozen, get_all, extends = LabelRead, module = "allsuse._core")]
pub struct LabelFact {
    iv: f64,
    text: String,
}

#[pymethods]
impl LabelFact {
    /// The fields of the `MarketLabel` this fact is (`scores` a new dict), read with `iv`: what the engine's
    /// label is made from in one call.
    #[pyo3(signature = (iv,))]
    fn fields<'py>(slf: &Bound<'py, Self>, iv: f64) -> PyResult<Bound<'py, PyDict>> {
        slf.as_super().get().fields(slf.py(), iv)
    }
}

fn slice<'a, T: numpy::Element>(
    field: &str,
    array: &'a PyReadonlyArray1<'_, T>,
) -> CoreResult<&'a [T]> {
    array
        .as_slice()
        .map_err(|_| CoreError::invalid(field, "must be a contiguous 1-D array"))
}

fn windows_of(
    starts: &PyReadonlyArray1<'_, i64>,
    ends: &PyReadonlyArray1<'_, i64>,
    len: usize,
) -> CoreResult<Vec<Window>> {
    facts::windows(slice("starts", starts)?, slice("ends", ends)?, len)
}

/// The label of each window `close[starts[i]:ends[i]]` (with the volumes, when given) read with `ivs[i]`, as
/// `market_label` makes it; None for a window it would refuse (fewer than `min_bars` bars, an IV that is not a
/// finite number > 0, a price that is not).
#[pyfunction]
#[pyo3(signature = (rules, close, volume, starts, ends, ivs, min_bars))]
#[allow(clippy::too_many_arguments)]
fn label_facts<'py>(
    py: Python<'py>,
    rules: PyRef<'py, LabelRules>,
    close: PyReadonlyArray1<'py, f64>,
    volume: Option<PyReadonlyArray1<'py, f64>>,
    starts: PyReadonlyArray1<'py, i64>,
    ends: PyReadonlyArray1<'py, i64>,
    ivs: PyReadonlyArray1<'py, f64>,
    min_bars: i64,
) -> PyResult<Vec<Option<Py<LabelFact>>>> {
    let table = rules.inner;
    let close = slice("close", &close).py_err(py)?;
    let volume = match &volume {
        Some(v) => Some(slice("volume", v).py_err(py)?),
        None => None,
    };
    let ws = windows_of(&starts, &ends, close.len()).py_err(py)?;
    let ivs = slice("ivs", &ivs).py_err(py)?;
    let min_bars = usize::try_from(min_bars)
        .map_err(|_| CoreError::invalid("min_bars", format!("must be >= 1, got {min_bars}")))
        .py_err(py)?;
    let out = py
        .detach(|| facts::label_facts(close, volume, &ws, ivs, min_bars, &table))
        .py_err(py)?;
    out.into_iter()
        .map(|f| {
            f.map(|f| {
                let fact =
                    PyClassInitializer::from(LabelRead::from(f.reading)).add_subclass(LabelFact {
                        iv: f.iv,
                        text: f.text,
                    });
                Py::new(py, fact)
            })
            .transpose()
        })
        .collect()
}

/// (value or None, source, note) of the VIX proxy read from each window `close[starts[i]:ends[i]]` of `source`
/// as `Engine.vix_reading` reads it without a VIX (`window` returns, x 100 x `ratio`); None for a window whose
/// closes it would refuse.
type ProxyReading = (Option<f64>, &'static str, String);

#[pyfunction]
#[pyo3(signature = (close, starts, ends, window, ratio, source))]
fn proxy_facts<'py>(
    py: Python<'py>,
    close: PyReadonlyArray1<'py, f64>,
    starts: PyReadonlyArray1<'py, i64>,
    ends: PyReadonlyArray1<'py, i64>,
    window: i64,
    ratio: f64,
    source: &str,
) -> PyResult<Vec<Option<ProxyReading>>> {
    let close = slice("close", &close).py_err(py)?;
    let ws = windows_of(&starts, &ends, close.len()).py_err(py)?;
    let window = usize::try_from(window)
        .map_err(|_| CoreError::invalid("window", format!("must be >= 2, got {window}")))
        .py_err(py)?;
    let out = py
        .detach(|| facts::proxy_facts(close, &ws, window, ratio, source))
        .py_err(py)?;
    Ok(out
        .into_iter()
        .map(|f| f.map(|f| (f.value, f.source, f.note)))
        .collect())
}

/// Python's float formatting as the facts write it (`{x:.Nf}`, `{x:.N%}`, `{x:g}`, `round(x, N)`): exposed so the
/// tests can hold it to Python's own over many numbers.
#[pyfunction]
#[pyo3(signature = (x, digits))]
fn format_fixed(py: Python<'_>, x: f64, digits: i64) -> PyResult<String> {
    Ok(facts::fixed(x, decimals(digits).py_err(py)?))
}

#[pyfunction]
#[pyo3(signature = (x, digits))]
fn format_pct(py: Python<'_>, x: f64, digits: i64) -> PyResult<String> {
    Ok(facts::pct(x, decimals(digits).py_err(py)?))
}

#[pyfunction]
#[pyo3(signature = (x,))]
fn format_general(x: f64) -> String {
    crate::protocol::decide::pyfmt::general(x)
}

#[pyfunction]
#[pyo3(signature = (x, digits))]
fn round_decimals(py: Python<'_>, x: f64, digits: i64) -> PyResult<f64> {
    Ok(crate::protocol::decide::pyfmt::round(
        x,
        decimals(digits).py_err(py)?,
    ))
}

/// A count of decimals from Python: 0 to 30.
fn decimals(digits: i64) -> CoreResult<usize> {
    usize::try_from(digits)
        .ok()
        .filter(|d| *d <= 30)
        .ok_or_else(|| CoreError::invalid("digits", format!("must be in [0, 30], got {digits}")))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LabelFact>()?;
    m.add_function(wrap_pyfunction!(label_facts, m)?)?;
    m.add_function(wrap_pyfunction!(proxy_facts, m)?)?;
    m.add_function(wrap_pyfunction!(format_fixed, m)?)?;
    m.add_function(wrap_pyfunction!(format_pct, m)?)?;
    m.add_function(wrap_pyfunction!(format_general, m)?)?;
    m.add_function(wrap_pyfunction!(round_decimals, m)?)?;
    Ok(())
}
