//! The one error type of the core. Every fallible function returns `Result<_, CoreError>`;
//! the Python adapter maps it to the `allsuse.errors` hierarchy in exactly one place.

use std::fmt;

/// What went wrong inside the core, with the argument it concerns.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// An argument is outside its domain (NaN, infinite, non-positive, wrong length, unknown name...).
    InvalidInput { field: String, reason: String },
    /// An iterative method did not reach its tolerance within its iteration budget.
    NoConvergence { field: String, reason: String },
}

impl CoreError {
    /// Bad input on `field`, for `reason` (a short phrase a caller can act on).
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A solver on `field` failed to converge, for `reason`.
    pub fn no_convergence(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::NoConvergence {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The argument this error names.
    pub fn field(&self) -> &str {
        match self {
            CoreError::InvalidInput { field, .. } | CoreError::NoConvergence { field, .. } => field,
        }
    }

    /// Why the argument was refused.
    pub fn reason(&self) -> &str {
        match self {
            CoreError::InvalidInput { reason, .. } | CoreError::NoConvergence { reason, .. } => {
                reason
            }
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field(), self.reason())
    }
}

impl std::error::Error for CoreError {}

/// Result alias used across the core.
pub type CoreResult<T> = Result<T, CoreError>;

/// Checks shared by every numeric entry point: each returns the value or an error naming the field.
pub mod check {
    use super::{CoreError, CoreResult};

    /// A finite number.
    pub fn finite(field: &str, x: f64) -> CoreResult<f64> {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(CoreError::invalid(
                field,
                format!("must be a finite number, got {x}"),
            ))
        }
    }

    /// A finite number strictly greater than zero.
    pub fn positive(field: &str, x: f64) -> CoreResult<f64> {
        if x.is_finite() && x > 0.0 {
            Ok(x)
        } else {
            Err(CoreError::invalid(
                field,
                format!("must be a finite number > 0, got {x}"),
            ))
        }
    }

    /// A finite number greater than or equal to zero.
    pub fn non_negative(field: &str, x: f64) -> CoreResult<f64> {
        if x.is_finite() && x >= 0.0 {
            Ok(x)
        } else {
            Err(CoreError::invalid(
                field,
                format!("must be a finite number >= 0, got {x}"),
            ))
        }
    }

    /// A probability level strictly between 0 and 1.
    pub fn open_unit(field: &str, x: f64) -> CoreResult<f64> {
        if x.is_finite() && x > 0.0 && x < 1.0 {
            Ok(x)
        } else {
            Err(CoreError::invalid(
                field,
                format!("must be strictly between 0 and 1, got {x}"),
            ))
        }
    }

    /// A slice that is not empty.
    pub fn non_empty<T>(field: &str, xs: &[T]) -> CoreResult<()> {
        if xs.is_empty() {
            Err(CoreError::invalid(field, "must not be empty"))
        } else {
            Ok(())
        }
    }

    /// A slice whose every element is finite; the error names the first bad index.
    pub fn all_finite(field: &str, xs: &[f64]) -> CoreResult<()> {
        match xs.iter().position(|x| !x.is_finite()) {
            None => Ok(()),
            Some(i) => Err(CoreError::invalid(
                field,
                format!("element {i} must be a finite number, got {}", xs[i]),
            )),
        }
    }

    /// Length of a broadcast batch: every input has length 1 or the common length n >= 1.
    pub fn broadcast_len(inputs: &[(&str, usize)]) -> CoreResult<usize> {
        let mut n = 1usize;
        for &(field, len) in inputs {
            if len == 0 {
                return Err(CoreError::invalid(field, "must not be empty"));
            }
            if len != 1 {
                if n != 1 && n != len {
                    return Err(CoreError::invalid(
                        field,
                        format!("has length {len}, which does not match the batch length {n}"),
                    ));
                }
                n = len;
            }
        }
        Ok(n)
    }
}
