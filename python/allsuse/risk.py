"""Risk: the tail of a P&L distribution (VaR, ES), tail dependence, performance metrics of a return
series, and full revaluation of a book of options and stock over scenarios.

VaR and ES follow PROTOCOL section 6: over n outcomes at level c, k = ceil(n x (1 - c)) (at least 1,
robust to floating error so that 1000 x (1 - 0.975) gives 25); VaR is the k-th worst outcome and ES
the mean of the k worst, both reported as positive losses. Metrics follow empyrical-reloaded's
definitions (risk-free rate 0). Everything runs in the compiled core without the GIL; bad input
raises `InvalidInputError` naming the argument (for a book, the field: `book.strike`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

from allsuse import _core
from allsuse._arrays import ArrayLike, FloatArray, as_float_array, as_matrix, as_vector
from allsuse.errors import InvalidInputError

IntArray = npt.NDArray[np.int64]

DEFAULT_CONFIDENCE = 0.975
"""The Basel level PROTOCOL section 6 uses for ES."""
DEFAULT_TAIL_Q = 0.05
"""The tail level PROTOCOL section 6 uses for tail dependence."""
DEFAULT_HORIZON = 1.0 / 252.0
"""One trading day, in years: how far revaluation moves every option towards expiry."""

METRIC_NAMES: tuple[str, ...] = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "omega_ratio",
    "max_drawdown",
    "downside_risk",
    "stability",
    "tail_ratio",
    "value_at_risk",
    "expected_shortfall",
    "skew",
    "kurtosis",
    "win_rate",
    "profit_factor",
)
"""The keys of `metrics()`, in order; with a benchmark "alpha" and "beta" follow."""

STOCK, CALL, PUT = 0, 1, 2
"""Position kind codes of `Book.kind`."""
_KIND_CODES = {"stock": STOCK, "call": CALL, "put": PUT}
_OPTION_MULTIPLIER = 100.0


def _number(name: str, value: Any) -> float:
    """A real number argument as a float, or InvalidInputError naming it (NaN is left to the core)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError.of(name, f"must be a number, got {value!r}")
    return float(value)


def value_at_risk(pnl: ArrayLike, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """VaR of P&L outcomes at `confidence`: the k-th worst outcome as a positive loss (PROTOCOL 6).

    >>> value_at_risk([-5.0, 1.0, -2.0, 3.0], confidence=0.5)  # k = 2: second worst is -2
    2.0
    """
    return _core.value_at_risk(as_vector("pnl", pnl), _number("confidence", confidence))


def expected_shortfall(pnl: ArrayLike, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """ES of P&L outcomes at `confidence`: the mean of the k worst outcomes as a positive loss.

    >>> expected_shortfall([-5.0, 1.0, -2.0, 3.0], confidence=0.5)
    3.5
    """
    return _core.expected_shortfall(as_vector("pnl", pnl), _number("confidence", confidence))


def tail_dependence(x: ArrayLike, y: ArrayLike, q: float = DEFAULT_TAIL_Q) -> float:
    """Empirical lower-tail dependence of two return series at level `q` (PROTOCOL section 6).

    #(x <= Qx(q) and y <= Qy(q)) / #(x <= Qx(q)), with Q numpy's default (linear) quantile.
    Pairs above 0.5 count as one risk for concentration.
    """
    return _core.tail_dependence(as_vector("x", x), as_vector("y", y), _number("q", q))


def max_drawdown(returns: ArrayLike) -> float:
    """Worst peak-to-trough fall of the compounded return path, as a negative fraction.

    As empyrical: the path starts at 1 before the first return, so an initial loss counts.

    >>> max_drawdown([0.1, -0.5, 0.2])
    -0.5
    """
    return _core.max_drawdown(as_vector("returns", returns))


def metrics(returns: ArrayLike, periods_per_year: float = 252, benchmark: ArrayLike | None = None) -> dict[str, float]:
    """The 17 performance metrics of periodic simple `returns` (see METRIC_NAMES), computed in Rust.

    Definitions, annualisation and signs follow empyrical-reloaded with a zero risk-free rate;
    value_at_risk (95%) and expected_shortfall (97.5%) follow PROTOCOL section 6; skew and kurtosis
    (excess) are scipy's biased moments; win_rate = #(r > 0) / n; profit_factor = sum of gains /
    |sum of losses|. With a `benchmark` of the same length, "alpha" (annualised) and "beta" too.
    Undefined values are NaN or inf, as empyrical gives them (docs/api.md lists each case).
    """
    bench = None if benchmark is None else as_vector("benchmark", benchmark)
    return _core.performance_metrics(
        as_vector("returns", returns), _number("periods_per_year", periods_per_year), bench
    )


@dataclass(frozen=True)
class BookPosition:
    """One position of a book. `kind` is "stock", "call" or "put"; `quantity` is signed (negative
    is short) in shares or contracts; `multiplier` defaults to 100 for options and 1 for stock.
    Option fields (`strike`, `t` in years, `vol`, `rate`, `div`) are ignored for stock."""

    kind: str
    underlying: int
    quantity: float
    strike: float = math.nan
    t: float = math.nan
    vol: float = math.nan
    rate: float = 0.0
    div: float = 0.0
    multiplier: float | None = None


def _kind_codes(value: Any) -> IntArray:
    """Kind codes from strings ("stock", "call", "put") or the integer codes 0, 1, 2."""
    arr = np.asarray(value)
    if arr.ndim > 1:
        raise InvalidInputError.of("book.kind", f"must be one-dimensional, got shape {arr.shape}")
    arr = arr.reshape(-1)
    if arr.dtype.kind in "USO":
        codes = []
        for i, k in enumerate(arr.tolist()):
            code = _KIND_CODES.get(k.lower()) if isinstance(k, str) else None
            if code is None:
                raise InvalidInputError.of("book.kind", f"position {i}: must be 'stock', 'call' or 'put', got {k!r}")
            codes.append(code)
        return np.asarray(codes, dtype=np.int64)
    return _integers("book.kind", arr)


def _integers(name: str, value: Any) -> IntArray:
    """A 1-D int64 array from integer-valued input, or InvalidInputError naming it."""
    raw = np.asarray(value)
    arr = raw if raw.dtype.kind in "iu" else as_float_array(name, value)
    if arr.ndim > 1:
        raise InvalidInputError.of(name, f"must be one-dimensional, got shape {arr.shape}")
    arr = arr.reshape(-1)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError.of(name, f"position {i}: must be an integer, got {arr[i]}")
    return np.ascontiguousarray(arr, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Book:
    """A book of positions as a struct of arrays, one entry per position in every field.

    `kind` holds codes (STOCK 0, CALL 1, PUT 2; strings are accepted and converted), `underlying`
    the index of each position's underlying in the spot vector and the scenario columns. Float
    fields given as a scalar apply to every position. Arrays are copied and made read-only.
    Build one from rows with `Book.from_positions`.
    """

    kind: IntArray
    underlying: IntArray
    quantity: FloatArray
    multiplier: FloatArray
    strike: FloatArray
    t: FloatArray
    vol: FloatArray
    rate: FloatArray
    div: FloatArray

    _FLOAT_FIELDS: ClassVar[tuple[str, ...]] = ("quantity", "multiplier", "strike", "t", "vol", "rate", "div")

    def __post_init__(self) -> None:
        kind = _kind_codes(self.kind)
        n = kind.size
        normalised: dict[str, npt.NDArray[Any]] = {
            "kind": kind,
            "underlying": _integers("book.underlying", self.underlying),
        }
        if normalised["underlying"].size != n:
            raise InvalidInputError.of(
                "book.underlying", f"has {normalised['underlying'].size} entries, but book.kind has {n} positions"
            )
        for name in self._FLOAT_FIELDS:
            arr = as_float_array(f"book.{name}", getattr(self, name))
            if arr.ndim > 1:
                raise InvalidInputError.of(f"book.{name}", f"must be one-dimensional, got shape {arr.shape}")
            arr = arr.reshape(-1)
            if arr.size == 1 and n != 1:
                arr = np.full(n, arr[0])
            if arr.size != n:
                raise InvalidInputError.of(f"book.{name}", f"has {arr.size} entries, but book.kind has {n} positions")
            normalised[name] = arr
        for name, arr in normalised.items():
            arr = np.array(arr, copy=True, order="C")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.kind.size)

    @classmethod
    def from_arrays(
        cls,
        kind: Any,
        underlying: Any,
        quantity: ArrayLike,
        *,
        strike: ArrayLike = math.nan,
        t: ArrayLike = math.nan,
        vol: ArrayLike = math.nan,
        rate: ArrayLike = 0.0,
        div: ArrayLike = 0.0,
        multiplier: ArrayLike | None = None,
    ) -> Book:
        """A book from column arrays (or scalars); `multiplier` defaults to 100 for options, 1 for stock."""
        codes = _kind_codes(kind)
        if multiplier is None:
            multiplier = np.where(codes == STOCK, 1.0, _OPTION_MULTIPLIER)
        return cls(codes, underlying, quantity, multiplier, strike, t, vol, rate, div)  # type: ignore[arg-type]

    @classmethod
    def from_positions(cls, positions: Iterable[BookPosition | Mapping[str, Any]]) -> Book:
        """A book from rows: `BookPosition`s or dicts with the same keys."""
        names = [f.name for f in fields(BookPosition)]
        rows: list[BookPosition] = []
        for i, p in enumerate(positions):
            if isinstance(p, BookPosition):
                rows.append(p)
                continue
            if not isinstance(p, Mapping):
                raise InvalidInputError.of("positions", f"position {i}: must be a BookPosition or a dict, got {p!r}")
            unknown = sorted(set(p) - set(names))
            if unknown:
                raise InvalidInputError.of("positions", f"position {i}: unknown field(s) {', '.join(unknown)}")
            try:
                rows.append(BookPosition(**p))
            except TypeError as exc:
                raise InvalidInputError.of("positions", f"position {i}: {exc}") from None
        kinds = [p.kind for p in rows]
        codes = _kind_codes(np.asarray(kinds, dtype=object)) if rows else np.zeros(0, dtype=np.int64)
        multiplier = [
            (1.0 if code == STOCK else _OPTION_MULTIPLIER) if p.multiplier is None else p.multiplier
            for p, code in zip(rows, codes.tolist(), strict=True)
        ]

        def column(name: str) -> list[Any]:
            return [getattr(p, name) for p in rows]

        # The lists are converted and checked (naming book.<field>) by __post_init__.
        return cls(
            codes,
            column("underlying"),  # type: ignore[arg-type]
            column("quantity"),  # type: ignore[arg-type]
            multiplier,  # type: ignore[arg-type]
            column("strike"),  # type: ignore[arg-type]
            column("t"),  # type: ignore[arg-type]
            column("vol"),  # type: ignore[arg-type]
            column("rate"),  # type: ignore[arg-type]
            column("div"),  # type: ignore[arg-type]
        )


class Revaluation(NamedTuple):
    """The P&L of every scenario and its tail measures (positive losses) at the requested level."""

    pnl: FloatArray
    expected_shortfall: float
    value_at_risk: float


def revalue(
    book: Book,
    spot: ArrayLike,
    scenario_returns: ArrayLike,
    vol_shifts: ArrayLike | None = None,
    horizon: float = DEFAULT_HORIZON,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Revaluation:
    """Full revaluation of `book` over scenarios, with the ES and VaR of the resulting P&L.

    `spot` holds today's price per underlying; `scenario_returns` is (n_scenarios, n_underlyings)
    simple returns (each > -1); `vol_shifts` (same shape, default zero) is added to the implied vol
    of every option on that underlying; every option's t shrinks by `horizon` years, and one with
    t - horizon <= 0 is worth its intrinsic value. P&L(s) = sum quantity x multiplier x
    (value in scenario s - value today); options by Black-Scholes, stock linearly.
    """
    if not isinstance(book, Book):
        raise InvalidInputError.of("book", f"must be an allsuse.risk.Book, got {type(book).__name__}")
    spot_v = as_vector("spot", spot)
    raw = as_float_array("scenario_returns", scenario_returns)
    if raw.ndim == 1 and spot_v.size == 1:
        raw = raw.reshape(-1, 1)
    returns = as_matrix("scenario_returns", raw)
    shifts = None if vol_shifts is None else as_matrix("vol_shifts", vol_shifts)
    pnl, es, var = _core.revalue(
        book.kind,
        book.underlying,
        book.quantity,
        book.multiplier,
        book.strike,
        book.t,
        book.vol,
        book.rate,
        book.div,
        spot_v,
        returns,
        shifts,
        _number("horizon", horizon),
        _number("confidence", confidence),
    )
    return Revaluation(pnl, es, var)


__all__ = [
    "CALL",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_HORIZON",
    "DEFAULT_TAIL_Q",
    "METRIC_NAMES",
    "PUT",
    "STOCK",
    "Book",
    "BookPosition",
    "Revaluation",
    "expected_shortfall",
    "max_drawdown",
    "metrics",
    "revalue",
    "tail_dependence",
    "value_at_risk",
]
