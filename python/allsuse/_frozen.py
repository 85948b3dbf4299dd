"""Frozen dataclasses made on a hot path (the engine's `Decision`, `Effects`, `RuleResult`, the `MarketLabel`)
without their generated __init__, whose one object.__setattr__ per field costs ~7 us for a `Decision`: a
noticeable share of a backtest decision (issue 10). The instance is the one `cls(**values)` would build."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

_T = TypeVar("_T")
_new = object.__new__
_FIELDS: dict[type, frozenset[str]] = {}


def made(cls: type[_T], **values: Any) -> _T:
    """The frozen dataclass `cls` with its fields set to `values`. Every field must be given (no defaults are
    filled in) and `cls` must have no __post_init__ and no __slots__: a class that has either, or a field left out
    or unknown, fails at once with TypeError."""
    names = _FIELDS.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
            raise TypeError(f"{cls.__name__} is not a dataclass made by its fields alone")
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    if values.keys() != names:
        raise TypeError(f"{cls.__name__} needs exactly its fields, got {sorted(values)}")
    instance = _new(cls)
    instance.__dict__.update(values)
    return instance
