"""Turning the numeric arguments of the facades into what the core's batch calls take.

Every batch call in the core accepts float64 1-D arrays whose lengths are 1 (a scalar, broadcast)
or the common length n. This module converts, validates shapes, and restores the output shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from allsuse.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | int | npt.ArrayLike


@dataclass(frozen=True)
class Batch:
    """Flattened float64 inputs (each of length 1 or n), the output shape, and whether all were scalars."""

    arrays: dict[str, FloatArray]
    shape: tuple[int, ...]
    scalar: bool

    def restore(self, flat: FloatArray) -> float | FloatArray:
        """Gives a core output back the broadcast shape (or a float when every input was a scalar)."""
        if self.scalar:
            return float(flat[0])
        return flat.reshape(self.shape)


def as_float_array(name: str, value: Any) -> FloatArray:
    """One argument as a float64 numpy array, or InvalidInputError naming it."""
    if isinstance(value, (str, bytes)):
        raise InvalidInputError.of(name, f"must be a number or an array of numbers, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError.of(name, f"must be a number or an array of numbers ({exc})") from None
    return arr


def as_vector(name: str, value: Any, *, allow_empty: bool = False) -> FloatArray:
    """A 1-D contiguous float64 array (a scalar becomes length 1), or InvalidInputError naming it."""
    arr = as_float_array(name, value)
    if arr.ndim > 1:
        raise InvalidInputError.of(name, f"must be one-dimensional, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr.reshape(-1))
    if arr.size == 0 and not allow_empty:
        raise InvalidInputError.of(name, "must not be empty")
    return arr


def as_matrix(name: str, value: Any) -> FloatArray:
    """A 2-D C-contiguous float64 array, or InvalidInputError naming it."""
    arr = as_float_array(name, value)
    if arr.ndim != 2:
        raise InvalidInputError.of(name, f"must be two-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidInputError.of(name, "must not be empty")
    return np.ascontiguousarray(arr)


def broadcast(named: Mapping[str, Any]) -> Batch:
    """Broadcasts the named numeric arguments numpy-style, cheaply when shapes already agree."""
    arrays = {name: as_float_array(name, value) for name, value in named.items()}
    for name, arr in arrays.items():
        if arr.size == 0:
            raise InvalidInputError.of(name, "must not be empty")
    scalar = all(arr.ndim == 0 for arr in arrays.values())
    shape: tuple[int, ...] = ()
    for name, arr in arrays.items():
        try:
            shape = np.broadcast_shapes(shape, arr.shape)
        except ValueError:
            described = ", ".join(f"{n}{a.shape}" for n, a in arrays.items() if a.ndim)
            raise InvalidInputError.of(name, f"shape does not broadcast with the others: {described}") from None
    flat: dict[str, FloatArray] = {}
    for name, arr in arrays.items():
        if arr.size == 1:
            flat[name] = np.ascontiguousarray(arr.reshape(1))
        elif arr.shape == shape:
            flat[name] = np.ascontiguousarray(arr).reshape(-1)
        else:
            flat[name] = np.ascontiguousarray(np.broadcast_to(arr, shape)).reshape(-1)
    return Batch(flat, tuple(shape), scalar)
