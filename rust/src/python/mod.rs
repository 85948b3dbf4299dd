//! The PyO3 adapter: extract arguments, release the GIL, compute in the pure core, convert back.
//! Each area registers its functions from its own file; errors map in `errors.rs` only.

mod cache;
mod decide;
pub mod errors;
mod facts;
mod flow;
mod indicators;
mod market;
mod pricing;
mod protocol;
mod risk;

use pyo3::prelude::*;

/// Which profile the extension was built with: "release" or "debug".
#[pyfunction]
fn build_profile() -> &'static str {
    crate::build_profile()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(build_profile, m)?)?;
    // The class PyO3 raises when Rust code panics (a BaseException): exported so the server can catch exactly it.
    m.add(
        "PanicException",
        m.py().get_type::<pyo3::panic::PanicException>(),
    )?;
    pricing::register(m)?;
    risk::register(m)?;
    indicators::register(m)?;
    cache::register(m)?;
    protocol::register(m)?;
    decide::register(m)?;
    flow::register(m)?;
    market::register(m)?;
    facts::register(m)?;
    // _core is private (users import the facades): no star-import surface for stubtest to track.
    if m.hasattr("__all__")? {
        m.delattr("__all__")?;
    }
    Ok(())
}
