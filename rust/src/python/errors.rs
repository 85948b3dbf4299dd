//! The one place where a `CoreError` becomes a Python exception of the `allsuse.errors` hierarchy.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::error::CoreError;

static INVALID_INPUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static NO_CONVERGENCE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Converts a core error into `allsuse.errors.InvalidInputError` / `ConvergenceError`,
/// carrying `field` and `reason` attributes and the message "field: reason".
pub fn to_pyerr(py: Python<'_>, err: CoreError) -> PyErr {
    let (cell, name) = match err {
        CoreError::InvalidInput { .. } => (&INVALID_INPUT, "InvalidInputError"),
        CoreError::NoConvergence { .. } => (&NO_CONVERGENCE, "ConvergenceError"),
    };
    match cell.import(py, "allsuse.errors", name) {
        Ok(cls) => match cls.call1((err.to_string(), err.field(), err.reason())) {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// Extension trait: `core_call().py_err(py)?` in the adapter.
pub trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, CoreError> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_pyerr(py, e))
    }
}
