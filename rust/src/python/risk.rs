//! Python bindings for the risk area: extract arrays, release the GIL, compute in `crate::risk`,
//! convert back. The typed facade is python/allsuse/risk.py.

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{CoreError, CoreResult};
use crate::python::decide::PyScenarioSet;
use crate::python::errors::IntoPyResult;
use crate::risk::{self, Book, PositionKind, ScenarioMatrix};

/// The contiguous data of a 1-D array, or InvalidInputError naming `field`.
fn slice<'a, T: numpy::Element>(
    py: Python<'_>,
    field: &str,
    arr: &'a PyReadonlyArray1<'_, T>,
) -> PyResult<&'a [T]> {
    arr.as_slice()
        .map_err(|_| CoreError::invalid(field, "must be a contiguous one-dimensional array"))
        .py_err(py)
}

/// The contiguous row-major data and shape of a 2-D array, or InvalidInputError naming `field`.
fn matrix<'a>(
    py: Python<'_>,
    field: &str,
    arr: &'a PyReadonlyArray2<'_, f64>,
) -> PyResult<(&'a [f64], usize, usize)> {
    let shape = arr.shape();
    let (rows, cols) = (shape[0], shape[1]);
    let data = arr
        .as_slice()
        .map_err(|_| CoreError::invalid(field, "must be a C-contiguous two-dimensional array"))
        .py_err(py)?;
    Ok((data, rows, cols))
}

/// VaR of `pnl` at `confidence` (PROTOCOL section 6), a positive loss.
#[pyfunction]
fn value_at_risk(py: Python<'_>, pnl: PyReadonlyArray1<'_, f64>, confidence: f64) -> PyResult<f64> {
    let pnl = slice(py, "pnl", &pnl)?;
    py.detach(|| risk::value_at_risk(pnl, confidence))
        .py_err(py)
}

/// ES of `pnl` at `confidence` (PROTOCOL section 6), a positive loss.
#[pyfunction]
fn expected_shortfall(
    py: Python<'_>,
    pnl: PyReadonlyArray1<'_, f64>,
    confidence: f64,
) -> PyResult<f64> {
    let pnl = slice(py, "pnl", &pnl)?;
    py.detach(|| risk::expected_shortfall(pnl, confidence))
        .py_err(py)
}

/// Empirical lower-tail dependence of `x` and `y` at `q`.
#[pyfunction]
fn tail_dependence(
    py: Python<'_>,
    x: PyReadonlyArray1<'_, f64>,
    y: PyReadonlyArray1<'_, f64>,
    q: f64,
) -> PyResult<f64> {
    let x = slice(py, "x", &x)?;
    let y = slice(py, "y", &y)?;
    py.detach(|| risk::tail_dependence(x, y, q)).py_err(py)
}

/// Maximum drawdown of the compounded return path (negative).
#[pyfunction]
fn max_drawdown(py: Python<'_>, returns: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
    let returns = slice(py, "returns", &returns)?;
    py.detach(|| risk::max_drawdown(returns)).py_err(py)
}

/// The performance metrics of `returns` as a dict (alpha and beta only with a benchmark).
#[pyfunction]
#[pyo3(signature = (returns, periods_per_year, benchmark=None))]
fn performance_metrics<'py>(
    py: Python<'py>,
    returns: PyReadonlyArray1<'py, f64>,
    periods_per_year: f64,
    benchmark: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let returns = slice(py, "returns", &returns)?;
    let benchmark = match &benchmark {
        Some(b) => Some(slice(py, "benchmark", b)?),
        None => None,
    };
    let m = py
        .detach(|| risk::metrics(returns, periods_per_year, benchmark))
        .py_err(py)?;
    let out = PyDict::new(py);
    for (name, value) in m.entries() {
        out.set_item(name, value)?;
    }
    Ok(out)
}

/// The book's kind codes and underlying indexes as core types, errors naming `book.<field>`.
fn book_indexes(kind: &[i64], underlying: &[i64]) -> CoreResult<(Vec<PositionKind>, Vec<usize>)> {
    let kinds = kind
        .iter()
        .enumerate()
        .map(|(i, &code)| {
            PositionKind::from_code(code).ok_or_else(|| {
                CoreError::invalid(
                    "book.kind",
                    format!("position {i}: unknown code {code} (0 stock, 1 call, 2 put)"),
                )
            })
        })
        .collect::<CoreResult<Vec<_>>>()?;
    let underlyings = underlying
        .iter()
        .enumerate()
        .map(|(i, &u)| {
            usize::try_from(u).map_err(|_| {
                CoreError::invalid(
                    "book.underlying",
                    format!("position {i}: index {u} must be >= 0"),
                )
            })
        })
        .collect::<CoreResult<Vec<_>>>()?;
    Ok((kinds, underlyings))
}

/// Full revaluation of a struct-of-arrays book; returns (pnl, expected_shortfall, value_at_risk).
#[pyfunction]
#[pyo3(signature = (
    kind, underlying, quantity, multiplier, strike, t, vol, rate, div,
    spot, scenario_returns, vol_shifts, horizon, confidence
))]
#[allow(clippy::too_many_arguments)]
fn revalue<'py>(
    py: Python<'py>,
    kind: PyReadonlyArray1<'py, i64>,
    underlying: PyReadonlyArray1<'py, i64>,
    quantity: PyReadonlyArray1<'py, f64>,
    multiplier: PyReadonlyArray1<'py, f64>,
    strike: PyReadonlyArray1<'py, f64>,
    t: PyReadonlyArray1<'py, f64>,
    vol: PyReadonlyArray1<'py, f64>,
    rate: PyReadonlyArray1<'py, f64>,
    div: PyReadonlyArray1<'py, f64>,
    spot: PyReadonlyArray1<'py, f64>,
    scenario_returns: PyReadonlyArray2<'py, f64>,
    vol_shifts: Option<PyReadonlyArray2<'py, f64>>,
    horizon: f64,
    confidence: f64,
) -> PyResult<(Bound<'py, PyArray1<f64>>, f64, f64)> {
    let kind = slice(py, "book.kind", &kind)?;
    let underlying = slice(py, "book.underlying", &underlying)?;
    let quantity = slice(py, "book.quantity", &quantity)?;
    let multiplier = slice(py, "book.multiplier", &multiplier)?;
    let strike = slice(py, "book.strike", &strike)?;
    let t = slice(py, "book.t", &t)?;
    let vol = slice(py, "book.vol", &vol)?;
    let rate = slice(py, "book.rate", &rate)?;
    let div = slice(py, "book.div", &div)?;
    let spot = slice(py, "spot", &spot)?;
    let (returns, rows, cols) = matrix(py, "scenario_returns", &scenario_returns)?;
    let shifts = match &vol_shifts {
        Some(m) => Some(matrix(py, "vol_shifts", m)?),
        None => None,
    };
    let result = py.detach(|| {
        let (kinds, underlyings) = book_indexes(kind, underlying)?;
        let book = Book {
            kind: kinds,
            underlying: underlyings,
            quantity: quantity.to_vec(),
            multiplier: multiplier.to_vec(),
            strike: strike.to_vec(),
            t: t.to_vec(),
            vol: vol.to_vec(),
            rate: rate.to_vec(),
            div: div.to_vec(),
        };
        let returns = ScenarioMatrix::new("scenario_returns", returns, rows, cols)?;
        let shifts = match shifts {
            Some((data, r, c)) => Some(ScenarioMatrix::new("vol_shifts", data, r, c)?),
            None => None,
        };
        risk::revalue_with_risk(&book, spot, &returns, shifts.as_ref(), horizon, confidence)
    });
    let out = result.py_err(py)?;
    Ok((
        PyArray1::from_vec(py, out.pnl),
        out.expected_shortfall,
        out.value_at_risk,
    ))
}

/// The arrays of `columns` (a sequence of one-dimensional float64 arrays), or InvalidInputError naming `columns`
/// or the element `columns[i]` that is not such an array.
fn column_arrays<'py>(
    py: Python<'py>,
    columns: &Bound<'py, PyAny>,
) -> PyResult<Vec<PyReadonlyArray1<'py, f64>>> {
    let items: Vec<Bound<'py, PyAny>> = columns
        .extract()
        .map_err(|_| CoreError::invalid("columns", "must be a sequence of float64 arrays"))
        .py_err(py)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.extract::<PyReadonlyArray1<'py, f64>>()
                .map_err(|_| {
                    CoreError::invalid(
                        format!("columns[{i}]"),
                        "must be a one-dimensional float64 array",
                    )
                })
                .py_err(py)
        })
        .collect()
}

/// The contiguous data of each column, or InvalidInputError naming `columns[i]`.
fn column_slices<'a>(
    py: Python<'_>,
    arrays: &'a [PyReadonlyArray1<'_, f64>],
) -> PyResult<Vec<&'a [f64]>> {
    arrays
        .iter()
        .enumerate()
        .map(|(i, a)| slice(py, &format!("columns[{i}]"), a))
        .collect()
}

/// The tail-dependent group (PROTOCOL sections 6 and 7) from the symbols' return columns (column 0 the symbol,
/// all of one length): the indexes `tail_group` gives for the matrix of those columns, without building it.
#[pyfunction]
#[pyo3(signature = (columns, *, q, limit))]
fn tail_group_of_columns<'py>(
    py: Python<'py>,
    columns: &Bound<'py, PyAny>,
    q: f64,
    limit: f64,
) -> PyResult<Vec<usize>> {
    let arrays = column_arrays(py, columns)?;
    let views = column_slices(py, &arrays)?;
    py.detach(|| crate::protocol::decide::group::tail_group_of_columns(&views, q, limit))
        .py_err(py)
}

/// `ScenarioSet` from the symbols' return columns (all of one length), laid out row by row in the core: the set
/// `ScenarioSet(numpy.column_stack(columns), ...)` builds, without the matrix.
#[pyfunction]
#[pyo3(signature = (columns, *, spot, iv, iv_move_sensitivity, horizon, rate))]
fn scenario_set_of_columns<'py>(
    py: Python<'py>,
    columns: &Bound<'py, PyAny>,
    spot: Vec<f64>,
    iv: Vec<f64>,
    iv_move_sensitivity: f64,
    horizon: f64,
    rate: f64,
) -> PyResult<PyScenarioSet> {
    let arrays = column_arrays(py, columns)?;
    let views = column_slices(py, &arrays)?;
    let inner = crate::protocol::decide::scenarios::Scenarios::from_columns(
        &views,
        spot,
        iv,
        iv_move_sensitivity,
        horizon,
        rate,
    )
    .py_err(py)?;
    Ok(PyScenarioSet { inner })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tail_group_of_columns, m)?)?;
    m.add_function(wrap_pyfunction!(scenario_set_of_columns, m)?)?;
    m.add_function(wrap_pyfunction!(value_at_risk, m)?)?;
    m.add_function(wrap_pyfunction!(expected_shortfall, m)?)?;
    m.add_function(wrap_pyfunction!(tail_dependence, m)?)?;
    m.add_function(wrap_pyfunction!(max_drawdown, m)?)?;
    m.add_function(wrap_pyfunction!(performance_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(revalue, m)?)?;
    Ok(())
}
