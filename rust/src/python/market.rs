//! Python bindings of `crate::market`: a message's packed bar columns, checked, as numpy arrays (no Python loop).

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use crate::market::{self, ORDINAL_OF_EPOCH};
use crate::python::errors::IntoPyResult;

/// (days as proleptic ordinals, open, high, low, close, volume, whether `bars_tag` entries were present)
type Columns<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    bool,
);

/// The BarColumns under field `tag` of the serialized message `data` (tag 0: `data` is a BarColumns), checked
/// against the snapshot rules with errors naming `field`; days come back as `date.toordinal()` numbers.
#[pyfunction]
#[pyo3(signature = (data, field, max_bars, tag = 0, bars_tag = 0))]
fn bar_columns<'py>(
    py: Python<'py>,
    data: &[u8],
    field: &str,
    max_bars: usize,
    tag: u64,
    bars_tag: u64,
) -> PyResult<Columns<'py>> {
    let (c, has_bars) = py
        .detach(|| {
            market::read_columns(data, tag, bars_tag, field, max_bars).map(|(mut c, has)| {
                for d in &mut c.days {
                    *d += ORDINAL_OF_EPOCH;
                }
                (c, has)
            })
        })
        .py_err(py)?;
    Ok((
        c.days.into_pyarray(py),
        c.open.into_pyarray(py),
        c.high.into_pyarray(py),
        c.low.into_pyarray(py),
        c.close.into_pyarray(py),
        c.volume.into_pyarray(py),
        has_bars,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bar_columns, m)?)?;
    Ok(())
}
