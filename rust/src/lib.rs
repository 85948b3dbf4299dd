//! allsuse-core: the numbers behind the ALL-USE decision engine.
//!
//! Pure Rust: every public function returns `Result<_, CoreError>` and never panics on any input.
//! The PyO3 adapter lives in `python/` behind the `python` feature and is the only code that
//! knows about Python or numpy.

pub mod cache;
pub mod error;
pub mod indicators;
pub mod market;
pub mod pricing;
pub mod protocol;
pub mod risk;
pub mod rules;
mod simd;

#[cfg(feature = "python")]
mod python;

pub use error::{CoreError, CoreResult};

/// "release" or "debug": which profile this library was compiled with.
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}
