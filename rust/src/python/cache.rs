//! Python binding of `crate::cache::TtlCache`: the class itself is `allsuse.cache.TTLCache`.
//!
//! Operations are O(1) and take well under a microsecond, so they keep the GIL (releasing it would
//! cost more than the work); the core's own mutex makes the class safe to share between threads, and
//! no Python code runs while that mutex is held.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt};

use crate::cache::TtlCache;
use crate::error::CoreError;
use crate::python::errors::{to_pyerr, IntoPyResult};

/// The bytes of a `bytes` argument, or InvalidInputError naming it.
fn bytes_arg<'a>(py: Python<'_>, field: &str, obj: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    match obj.cast::<PyBytes>() {
        Ok(b) => Ok(b.as_bytes()),
        Err(_) => {
            let type_name = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".to_string());
            Err(to_pyerr(
                py,
                CoreError::invalid(field, format!("must be bytes, got {type_name}")),
            ))
        }
    }
}

/// A number of seconds (int or float), or InvalidInputError naming it.
fn seconds_arg(py: Python<'_>, field: &str, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    if obj.is_instance_of::<PyBool>() {
        return Err(to_pyerr(
            py,
            CoreError::invalid(field, "must be a number of seconds, got bool"),
        ));
    }
    obj.extract::<f64>()
        .map_err(|_| to_pyerr(py, CoreError::invalid(field, "must be a number of seconds")))
}

/// An LRU cache of bytes with a time-to-live, safe to share between threads.
#[pyclass(frozen, name = "TTLCache", module = "allsuse.cache")]
pub struct PyTtlCache {
    inner: TtlCache,
}

#[pymethods]
impl PyTtlCache {
    #[new]
    #[pyo3(signature = (capacity, ttl_seconds))]
    fn new(
        py: Python<'_>,
        capacity: &Bound<'_, PyAny>,
        ttl_seconds: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let capacity =
            if capacity.is_instance_of::<PyInt>() && !capacity.is_instance_of::<PyBool>() {
                match capacity.extract::<i128>() {
                    Ok(c) if c < 1 => Err(CoreError::invalid(
                        "capacity",
                        format!("must be >= 1, got {c}"),
                    )),
                    Ok(c) => Ok(usize::try_from(c).unwrap_or(usize::MAX)),
                    Err(_) => Ok(usize::MAX),
                }
            } else {
                Err(CoreError::invalid("capacity", "must be an int"))
            }
            .py_err(py)?;
        let ttl = seconds_arg(py, "ttl_seconds", ttl_seconds)?;
        Ok(PyTtlCache {
            inner: TtlCache::new(capacity, ttl).py_err(py)?,
        })
    }

    /// The live value stored under `key`, or None; counts a hit or a miss.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = bytes_arg(py, "key", key)?;
        Ok(self.inner.get(key).map(|v| PyBytes::new(py, &v)))
    }

    /// Stores `value` under `key` for `ttl_seconds` (default: the cache's TTL).
    #[pyo3(signature = (key, value, ttl_seconds=None))]
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl_seconds: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let key = bytes_arg(py, "key", key)?;
        let value = bytes_arg(py, "value", value)?;
        let ttl = match ttl_seconds {
            Some(t) if !t.is_none() => Some(seconds_arg(py, "ttl_seconds", t)?),
            _ => None,
        };
        self.inner.put(key, value, ttl).py_err(py)
    }

    /// Removes `key`; True if a live entry was there.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.delete(bytes_arg(py, "key", key)?))
    }

    /// Removes every entry (the counters are kept).
    fn clear(&self) {
        self.inner.clear();
    }

    /// hits, misses, evictions, expirations and size (live entries).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("hits", s.hits)?;
        d.set_item("misses", s.misses)?;
        d.set_item("evictions", s.evictions)?;
        d.set_item("expirations", s.expirations)?;
        d.set_item("size", s.size)?;
        Ok(d)
    }

    /// The most entries the cache holds.
    #[getter]
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// The default time-to-live in seconds.
    #[getter]
    fn ttl_seconds(&self) -> f64 {
        self.inner.ttl_seconds()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.contains(bytes_arg(py, "key", key)?))
    }

    fn __repr__(&self) -> String {
        format!(
            "TTLCache(capacity={}, ttl_seconds={:?}, size={})",
            self.inner.capacity(),
            self.inner.ttl_seconds(),
            self.inner.len()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTtlCache>()
}
