"""Scalar arguments of the protocol facades: a real number becomes a float, anything else raises
`InvalidInputError` naming the argument. Domain checks (NaN, negative, out of range) are the core's, which names
the same argument."""

from __future__ import annotations

import numbers
import operator
from decimal import Decimal

import numpy as np

from allsuse.errors import InvalidInputError


def number(name: str, value: object) -> float:
    """A real number (int, float, Decimal, numpy scalar) as a float; a bool or anything else is refused."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real | Decimal):
        raise InvalidInputError.of(name, f"must be a number, got {value!r}")
    return float(value)


def integer(name: str, value: object) -> int:
    """An integer (not a bool) as an int."""
    if isinstance(value, bool | np.bool_):
        raise InvalidInputError.of(name, f"must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInputError.of(name, f"must be an integer, got {value!r}") from None
