"""The exceptions allsuse raises. Every error has `AllsuseError` as its base.

The compiled core maps its single error type here (rust/src/python/errors.rs), so a caller
catches the same classes whether the failure came from Python or from Rust.
"""

from __future__ import annotations


class AllsuseError(Exception):
    """Base of every allsuse error."""


class InvalidInputError(AllsuseError, ValueError):
    """An argument is outside its domain. `field` names the argument, `reason` says why."""

    def __init__(self, message: str, field: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason

    @classmethod
    def of(cls, field: str, reason: str) -> InvalidInputError:
        """Builds the error with the standard message "field: reason"."""
        return cls(f"{field}: {reason}", field, reason)


class ConvergenceError(AllsuseError, ArithmeticError):
    """An iterative solver did not reach its tolerance. `field` names the input it was solving for."""

    def __init__(self, message: str, field: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


__all__ = ["AllsuseError", "ConvergenceError", "InvalidInputError"]
