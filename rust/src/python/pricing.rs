//! Python bindings for pricing: scalar calls take floats; `*_batch` calls take contiguous float64
//! 1-D arrays of length 1 or n, release the GIL while computing, and return new arrays (moved, not
//! copied, into numpy). Shapes, broadcasting and type conversion are the facade's job
//! (python/allsuse/pricing.py).

// The bindings mirror the Python signatures (kind + six market arguments + the GIL token).
#![allow(clippy::too_many_arguments)]

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::error::{CoreError, CoreResult};
use crate::pricing::batch::{GreeksSlices, MarketSlices};
use crate::pricing::{self, OptionKind};
use crate::python::errors::IntoPyResult;

type Array<'py> = Bound<'py, PyArray1<f64>>;

/// The contiguous data of one array argument, or InvalidInputError naming it.
fn slice<'a>(
    py: Python<'_>,
    field: &str,
    array: &'a PyReadonlyArray1<'_, f64>,
) -> PyResult<&'a [f64]> {
    array
        .as_slice()
        .map_err(|e| CoreError::invalid(field, format!("must be a contiguous float64 array ({e})")))
        .py_err(py)
}

fn kind(py: Python<'_>, name: &str) -> PyResult<OptionKind> {
    OptionKind::parse(name).py_err(py)
}

/// Black-Scholes-Merton price of one option.
#[pyfunction]
fn bs_price(
    py: Python<'_>,
    kind: &str,
    spot: f64,
    strike: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> PyResult<f64> {
    let kind = self::kind(py, kind)?;
    pricing::bs_price(kind, spot, strike, t, vol, rate, div).py_err(py)
}

/// The market slices of a batch call, or InvalidInputError naming a non-contiguous argument.
fn market<'a>(
    py: Python<'_>,
    spot: &'a PyReadonlyArray1<'_, f64>,
    strike: &'a PyReadonlyArray1<'_, f64>,
    t: &'a PyReadonlyArray1<'_, f64>,
    vol: &'a PyReadonlyArray1<'_, f64>,
    rate: &'a PyReadonlyArray1<'_, f64>,
    div: &'a PyReadonlyArray1<'_, f64>,
) -> PyResult<MarketSlices<'a>> {
    Ok(MarketSlices {
        spot: slice(py, "spot", spot)?,
        strike: slice(py, "strike", strike)?,
        t: slice(py, "t", t)?,
        vol: slice(py, "vol", vol)?,
        rate: slice(py, "rate", rate)?,
        div: slice(py, "div", div)?,
    })
}

/// A new float64 array of length n from `numpy.empty`, which the batch kernel then fills
/// completely (it writes every element or returns an error, and the array is dropped on error).
///
/// numpy's allocator asks the kernel for huge pages on large arrays, so writing millions of
/// results costs fewer page faults than a Rust Vec; `empty` rather than `zeros` skips the zero
/// fill (a memset whenever the allocator reuses memory instead of mapping fresh pages).
fn output(py: Python<'_>, n: usize) -> PyResult<Array<'_>> {
    static EMPTY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let array = EMPTY.import(py, "numpy", "empty")?.call1((n,))?;
    Ok(array.cast_into::<PyArray1<f64>>()?)
}

/// Black-Scholes-Merton prices of a batch.
#[pyfunction]
fn bs_price_batch<'py>(
    py: Python<'py>,
    kind: &str,
    spot: PyReadonlyArray1<'py, f64>,
    strike: PyReadonlyArray1<'py, f64>,
    t: PyReadonlyArray1<'py, f64>,
    vol: PyReadonlyArray1<'py, f64>,
    rate: PyReadonlyArray1<'py, f64>,
    div: PyReadonlyArray1<'py, f64>,
) -> PyResult<Array<'py>> {
    let kind = self::kind(py, kind)?;
    let m = market(py, &spot, &strike, &t, &vol, &rate, &div)?;
    let prices = output(py, m.batch_len().py_err(py)?)?;
    {
        let mut out = prices.readwrite();
        let out = out
            .as_slice_mut()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        py.detach(|| pricing::batch::bs_price_batch_into(kind, &m, out))
            .py_err(py)?;
    }
    Ok(prices)
}

/// Price, delta, gamma, vega, theta, rho of one option (QuantLib conventions).
#[pyfunction]
fn bs_greeks(
    py: Python<'_>,
    kind: &str,
    spot: f64,
    strike: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> PyResult<(f64, f64, f64, f64, f64, f64)> {
    let kind = self::kind(py, kind)?;
    let g = pricing::bs_greeks(kind, spot, strike, t, vol, rate, div).py_err(py)?;
    Ok((g.price, g.delta, g.gamma, g.vega, g.theta, g.rho))
}

type SixArrays<'py> = (
    Array<'py>,
    Array<'py>,
    Array<'py>,
    Array<'py>,
    Array<'py>,
    Array<'py>,
);

/// Price, delta, gamma, vega, theta, rho arrays of a batch.
#[pyfunction]
fn bs_greeks_batch<'py>(
    py: Python<'py>,
    kind: &str,
    spot: PyReadonlyArray1<'py, f64>,
    strike: PyReadonlyArray1<'py, f64>,
    t: PyReadonlyArray1<'py, f64>,
    vol: PyReadonlyArray1<'py, f64>,
    rate: PyReadonlyArray1<'py, f64>,
    div: PyReadonlyArray1<'py, f64>,
) -> PyResult<SixArrays<'py>> {
    let kind = self::kind(py, kind)?;
    let m = market(py, &spot, &strike, &t, &vol, &rate, &div)?;
    let n = m.batch_len().py_err(py)?;
    let arrays = (
        output(py, n)?,
        output(py, n)?,
        output(py, n)?,
        output(py, n)?,
        output(py, n)?,
        output(py, n)?,
    );
    {
        let (mut p, mut d, mut g) = (
            arrays.0.readwrite(),
            arrays.1.readwrite(),
            arrays.2.readwrite(),
        );
        let (mut v, mut th, mut r) = (
            arrays.3.readwrite(),
            arrays.4.readwrite(),
            arrays.5.readwrite(),
        );
        let fresh = |e: numpy::AsSliceError| PyRuntimeError::new_err(e.to_string());
        let out = GreeksSlices {
            price: p.as_slice_mut().map_err(fresh)?,
            delta: d.as_slice_mut().map_err(fresh)?,
            gamma: g.as_slice_mut().map_err(fresh)?,
            vega: v.as_slice_mut().map_err(fresh)?,
            theta: th.as_slice_mut().map_err(fresh)?,
            rho: r.as_slice_mut().map_err(fresh)?,
        };
        py.detach(|| pricing::batch::bs_greeks_batch_into(kind, &m, out))
            .py_err(py)?;
    }
    Ok(arrays)
}

/// Implied volatility of one option; a price outside the no-arbitrage bounds is an error.
#[pyfunction]
fn implied_vol(
    py: Python<'_>,
    kind: &str,
    price: f64,
    spot: f64,
    strike: f64,
    t: f64,
    rate: f64,
    div: f64,
) -> PyResult<f64> {
    let kind = self::kind(py, kind)?;
    pricing::implied_vol(kind, price, spot, strike, t, rate, div).py_err(py)
}

/// Implied volatilities of a batch and how many are NaN (no solution).
#[pyfunction]
fn implied_vol_batch<'py>(
    py: Python<'py>,
    kind: &str,
    price: PyReadonlyArray1<'py, f64>,
    spot: PyReadonlyArray1<'py, f64>,
    strike: PyReadonlyArray1<'py, f64>,
    t: PyReadonlyArray1<'py, f64>,
    rate: PyReadonlyArray1<'py, f64>,
    div: PyReadonlyArray1<'py, f64>,
) -> PyResult<(Array<'py>, usize)> {
    let kind = self::kind(py, kind)?;
    let (p, s, k) = (
        slice(py, "price", &price)?,
        slice(py, "spot", &spot)?,
        slice(py, "strike", &strike)?,
    );
    let (tt, r, q) = (
        slice(py, "t", &t)?,
        slice(py, "rate", &rate)?,
        slice(py, "div", &div)?,
    );
    let out = py
        .detach(|| pricing::implied_vol_batch(kind, p, s, k, tt, r, q))
        .py_err(py)?;
    Ok((PyArray1::from_vec(py, out.vol), out.failed))
}

/// Strike at which one option has the target delta.
#[pyfunction]
fn strike_for_delta(
    py: Python<'_>,
    kind: &str,
    delta: f64,
    spot: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> PyResult<f64> {
    let kind = self::kind(py, kind)?;
    pricing::strike_for_delta(kind, delta, spot, t, vol, rate, div).py_err(py)
}

/// Strikes for a batch of target deltas.
#[pyfunction]
fn strike_for_delta_batch<'py>(
    py: Python<'py>,
    kind: &str,
    delta: PyReadonlyArray1<'py, f64>,
    spot: PyReadonlyArray1<'py, f64>,
    t: PyReadonlyArray1<'py, f64>,
    vol: PyReadonlyArray1<'py, f64>,
    rate: PyReadonlyArray1<'py, f64>,
    div: PyReadonlyArray1<'py, f64>,
) -> PyResult<Array<'py>> {
    let kind = self::kind(py, kind)?;
    let (d, s, tt) = (
        slice(py, "delta", &delta)?,
        slice(py, "spot", &spot)?,
        slice(py, "t", &t)?,
    );
    let (v, r, q) = (
        slice(py, "vol", &vol)?,
        slice(py, "rate", &rate)?,
        slice(py, "div", &div)?,
    );
    let strikes: CoreResult<Vec<f64>> =
        py.detach(|| pricing::strike_for_delta_batch(kind, d, s, tt, v, r, q));
    Ok(PyArray1::from_vec(py, strikes.py_err(py)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bs_price, m)?)?;
    m.add_function(wrap_pyfunction!(bs_price_batch, m)?)?;
    m.add_function(wrap_pyfunction!(bs_greeks, m)?)?;
    m.add_function(wrap_pyfunction!(bs_greeks_batch, m)?)?;
    m.add_function(wrap_pyfunction!(implied_vol, m)?)?;
    m.add_function(wrap_pyfunction!(implied_vol_batch, m)?)?;
    m.add_function(wrap_pyfunction!(strike_for_delta, m)?)?;
    m.add_function(wrap_pyfunction!(strike_for_delta_batch, m)?)?;
    Ok(())
}
