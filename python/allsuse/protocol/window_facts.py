"""The market facts of a backtest's daily windows, known before its first decision (issue 10).

A backtest knows every symbol's whole series and the IV of every day up front, and each day it shows the engine
a window of each series (its last bars up to the day). The market label of a window (PROTOCOL section 2, with its
explanation line) and the VIX proxy read from it (section 6, with its note) depend on that window and IV alone, so
the core computes them for every window of a run in one call per symbol (without the GIL, windows in parallel),
with exactly the functions the engine calls on demand: `market_label`'s core label and `hist_vol`. The engine then
reads a decision's label and proxy from here instead of computing them; a window this does not hold (another
window, another IV, one the on-demand path refuses) is computed on demand as before.

A window is found by its last day and checked against its first day, length and last close (and the IV for the
label), and its closes must be a view of the very close series the table was built from (the same memory, not equal
values), so bars that are not the run's window of that symbol never read another window's facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from allsuse import _core
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.market import Bars
from allsuse.protocol.market_label import MarketLabel

# (VIX value or None, source, note), as Engine.vix_reading returns it.
ProxyReading = tuple[float | None, str, str]


@dataclass(frozen=True)
class SeriesWindows:
    """A symbol's whole series and the windows of it a run shows the engine: bars starts[i] to ends[i] - 1,
    labelled with IV ivs[i] (NaN where the IV is not known ahead: that window's label is computed on demand)."""

    bars: Bars
    starts: Sequence[int]
    ends: Sequence[int]
    ivs: Sequence[float]


_new = object.__new__

# One window's entry: [first day (ordinal), bars, last close, IV, LabelFact or None, (MarketLabel, line) once made,
# proxy reading or None].
_FIRST, _SIZE, _CLOSE, _IV, _FACT, _MADE, _PROXY = range(7)


class WindowFacts:
    """The label (with its line) and the VIX proxy reading of each window of each symbol a run shows the engine."""

    __slots__ = ("_by_symbol", "_last", "_owner")

    def __init__(
        self,
        series: Mapping[str, SeriesWindows],
        *,
        config: settings.ProtocolConfig,
        proxy_window: int,
        proxy_ratio: float,
    ) -> None:
        self._by_symbol: dict[str, dict[int, list[Any]]] = {}
        # The array owning each symbol's closes: a window's closes are read only when they share its memory.
        self._owner: dict[str, np.ndarray] = {}
        self._last: dict[str, tuple[Bars, list[Any] | None]] = {}
        rules, min_bars = config.label_rules, config.label_min_bars
        for symbol, windows in series.items():
            bars = windows.bars
            if not isinstance(bars, Bars):
                raise InvalidInputError.of(f"series.{symbol}.bars", f"must be Bars, got {type(bars).__name__}")
            starts = _counts(f"series.{symbol}.starts", windows.starts)
            ends = _counts(f"series.{symbol}.ends", windows.ends)
            ivs = np.ascontiguousarray(np.asarray(windows.ivs, dtype=np.float64))
            if ivs.shape != ends.shape:
                raise InvalidInputError.of(f"series.{symbol}.ivs", f"has {ivs.size} entries, ends has {ends.size}")
            close = np.ascontiguousarray(bars.close, dtype=np.float64)
            volume = np.ascontiguousarray(bars.volume, dtype=np.float64)
            labels = _core.label_facts(rules, close, volume, starts, ends, ivs, min_bars)
            proxies = _core.proxy_facts(close, starts, ends, proxy_window, proxy_ratio, symbol)
            days, closes = bars.days.tolist(), close.tolist()
            table: dict[int, list[Any]] = {}
            for start, end, iv, fact, proxy in zip(
                starts.tolist(), ends.tolist(), ivs.tolist(), labels, proxies, strict=True
            ):
                if end > start:
                    table[days[end - 1]] = [days[start], end - start, closes[end - 1], iv, fact, None, proxy]
            self._by_symbol[symbol] = table
            self._owner[symbol] = _owner(bars.close)

    def _entry(self, symbol: str, bars: Bars) -> list[Any] | None:
        """The entry of `bars` when they are a window of `symbol` held here. The last answer per symbol is kept
        with the Bars object it was for (Bars are immutable): a day's label and VIX proxy of a symbol read the same
        window, and a decision made again the same day reads it again."""
        last = self._last.get(symbol)
        if last is not None and last[0] is bars:
            return last[1]
        entry = self._find(symbol, bars)
        self._last[symbol] = (bars, entry)
        return entry

    def _find(self, symbol: str, bars: Bars) -> list[Any] | None:
        table = self._by_symbol.get(symbol)
        if table is None:
            return None
        days = bars.days
        size = len(days)
        if not size or _owner(bars.close) is not self._owner[symbol]:
            return None
        # Python numbers (`item`): a numpy scalar as a key compares slowly with the table's ints.
        entry = table.get(days.item(-1))
        if (
            entry is None
            or entry[_SIZE] != size
            or entry[_FIRST] != days.item(0)
            or entry[_CLOSE] != bars.close.item(-1)
        ):
            return None
        return entry

    def label(self, symbol: str, bars: Bars, iv: float) -> tuple[MarketLabel, str] | None:
        """(label, explanation line) of `bars` read with `iv`, as `market_label(...)` and its `explain()` give them;
        None when not held (compute it on demand)."""
        entry = self._entry(symbol, bars)
        if entry is None or entry[_IV] != iv:
            return None
        known: tuple[MarketLabel, str] | None = entry[_MADE]
        if known is None:
            f: _core.LabelFact | None = entry[_FACT]
            if f is None:
                return None
            # The instance MarketLabel(**fields) would be (no __post_init__, no slots), its fields made by the core.
            label = _new(MarketLabel)
            label.__dict__.update(f.fields(iv))
            known = entry[_MADE] = (label, f.text)
        return known

    def proxy(self, symbol: str, bars: Bars) -> ProxyReading | None:
        """The VIX proxy read from `bars` of `symbol` (no VIX given), as `Engine.vix_reading` reads it; None when
        not held."""
        entry = self._entry(symbol, bars)
        return None if entry is None else entry[_PROXY]


def _owner(array: np.ndarray) -> np.ndarray:
    """The array owning `array`'s memory (numpy keeps a view's `base` pointing at the owner, not at a view)."""
    base = array.base
    return array if base is None else base


def _counts(field: str, values: Sequence[int]) -> np.ndarray:
    """Bar counts as a contiguous int64 array, or InvalidInputError naming `field`."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as e:
        raise InvalidInputError.of(field, f"must be whole numbers: {e}") from None
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise InvalidInputError.of(field, "must be a 1-D sequence of whole numbers")
    return np.ascontiguousarray(array, dtype=np.int64)
