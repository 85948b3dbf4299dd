//! Python bindings of `crate::indicators`: borrow the numpy arrays, release the GIL, compute, return arrays.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::error::{CoreError, CoreResult};
use crate::indicators;
use crate::python::errors::IntoPyResult;

/// A contiguous view of an array argument, or an error naming it.
fn slice<'a>(field: &str, array: &'a PyReadonlyArray1<'_, f64>) -> CoreResult<&'a [f64]> {
    array
        .as_slice()
        .map_err(|_| CoreError::invalid(field, "must be a contiguous 1-D float64 array"))
}

/// A window length from Python (an int that may be negative) as a count, or an error naming it.
fn count(field: &str, value: i64) -> CoreResult<usize> {
    usize::try_from(value)
        .map_err(|_| CoreError::invalid(field, format!("must be >= 1, got {value}")))
}

/// Runs one single-series indicator without the GIL.
fn single_series<'py>(
    py: Python<'py>,
    field: &str,
    values: &PyReadonlyArray1<'py, f64>,
    compute: impl FnOnce(&[f64]) -> CoreResult<Vec<f64>> + Send,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let xs = slice(field, values).py_err(py)?;
    let out = py.detach(|| compute(xs)).py_err(py)?;
    Ok(out.into_pyarray(py))
}

#[pyfunction]
#[pyo3(signature = (values, window))]
fn sma<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    window: i64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let window = count("window", window).py_err(py)?;
    single_series(py, "values", &values, |xs| indicators::sma(xs, window))
}

#[pyfunction]
#[pyo3(signature = (closes, period))]
fn rsi<'py>(
    py: Python<'py>,
    closes: PyReadonlyArray1<'py, f64>,
    period: i64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let period = count("period", period).py_err(py)?;
    single_series(py, "closes", &closes, |xs| indicators::rsi(xs, period))
}

#[pyfunction]
#[pyo3(signature = (high, low, close, period))]
fn atr<'py>(
    py: Python<'py>,
    high: PyReadonlyArray1<'py, f64>,
    low: PyReadonlyArray1<'py, f64>,
    close: PyReadonlyArray1<'py, f64>,
    period: i64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let period = count("period", period).py_err(py)?;
    let (h, l, c) = (
        slice("high", &high).py_err(py)?,
        slice("low", &low).py_err(py)?,
        slice("close", &close).py_err(py)?,
    );
    let out = py.detach(|| indicators::atr(h, l, c, period)).py_err(py)?;
    Ok(out.into_pyarray(py))
}

#[pyfunction]
#[pyo3(signature = (high, low, close))]
fn true_range<'py>(
    py: Python<'py>,
    high: PyReadonlyArray1<'py, f64>,
    low: PyReadonlyArray1<'py, f64>,
    close: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (h, l, c) = (
        slice("high", &high).py_err(py)?,
        slice("low", &low).py_err(py)?,
        slice("close", &close).py_err(py)?,
    );
    let out = py.detach(|| indicators::true_range(h, l, c)).py_err(py)?;
    Ok(out.into_pyarray(py))
}

#[pyfunction]
#[pyo3(signature = (closes, window, periods_per_year))]
fn hist_vol<'py>(
    py: Python<'py>,
    closes: PyReadonlyArray1<'py, f64>,
    window: i64,
    periods_per_year: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let window = count("window", window).py_err(py)?;
    single_series(py, "closes", &closes, |xs| {
        indicators::hist_vol(xs, window, periods_per_year)
    })
}

#[pyfunction]
#[pyo3(signature = (closes, window))]
fn trend_strength<'py>(
    py: Python<'py>,
    closes: PyReadonlyArray1<'py, f64>,
    window: i64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let window = count("window", window).py_err(py)?;
    single_series(py, "closes", &closes, |xs| {
        indicators::trend_strength(xs, window)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sma, m)?)?;
    m.add_function(wrap_pyfunction!(rsi, m)?)?;
    m.add_function(wrap_pyfunction!(atr, m)?)?;
    m.add_function(wrap_pyfunction!(true_range, m)?)?;
    m.add_function(wrap_pyfunction!(hist_vol, m)?)?;
    m.add_function(wrap_pyfunction!(trend_strength, m)?)?;
    Ok(())
}
