# Hand-written stubs for the compiled core, checked against the real module by mypy.stubtest.
# Users import the typed facades (allsuse.pricing, allsuse.risk, ...), never this module.

from collections.abc import Sequence
from typing import final

import numpy as np
import numpy.typing as npt

_F64 = npt.NDArray[np.float64]

__version__: str

def build_profile() -> str: ...

class PanicException(BaseException):
    """Raised when Rust code panics (pyo3_runtime.PanicException); the core is built never to panic."""

# --- protocol ---

def classify_week(
    position: str,
    move_pct: float,
    roll_available: bool,
    bounds: tuple[float, float, float, float, float, float, float, float, float, float],
) -> tuple[str, str, str, float, float, float]: ...
def protocol_level(
    reference: float,
    spot: float,
    atr: float | None,
    loss: float,
    equity: float,
    excursion: tuple[float, float, float],
    loss_thresholds: tuple[float, float, float],
    atr_fallback_share: float,
) -> tuple[int, float, float]: ...
def atr_regime(
    atr_pct: float,
    upper_pct: tuple[float, float, float, float],
    size_multiplier: tuple[float, float, float, float, float],
) -> tuple[str, float]: ...
def delta_target(band_low: float, band_high: float, regime: str) -> float: ...
def step_protection(
    state: tuple[int, float, int, int],
    drawdown: float,
    day: int,
    thresholds: tuple[float, float, float, float],
    multipliers: tuple[float, float, float, float, float],
    step_down_recovery: float,
    off_recovery: float,
    max_adjustments_per_day: int,
) -> tuple[int, float, int, int]: ...
def allowed_exposure(peak: float, equity: float, cap: float, multiplier: float) -> float: ...
def vix_breaker(
    vix: float, hedged_at: float, hedged_multiplier: float, reducing_at: float, halted_at: float
) -> tuple[float, bool, str]: ...
def size_put(
    equity: float,
    free_cash: float,
    strike: float,
    target_share: float,
    max_symbol_weight: float,
    existing_exposure: float,
    m_label: float,
    m_atr: float,
    m_drawdown: float,
    m_vix: float,
    allowed_exposure: float,
    multiplier: float,
) -> tuple[float, int, str]: ...
def size_covered_calls(shares: float, max_cover_share: float, multiplier: float) -> int: ...
def select_strike(
    kind: str, strikes: _F64, abs_deltas: _F64, band_low: float, band_high: float, target: float
) -> tuple[int, float, float] | None: ...
def select_synthetic_strike(
    kind: str,
    spot: float,
    t: float,
    vol: float,
    rate: float,
    div: float,
    band_low: float,
    band_high: float,
    target: float,
    grid: Sequence[tuple[float, float]] | None = None,
) -> tuple[float, float] | None: ...

@final
class RuleSet:
    def __new__(cls, json: str) -> RuleSet: ...
    def codes(self) -> list[str]: ...
    @property
    def version(self) -> int: ...
    def __len__(self) -> int: ...
    def number_param(self, code: str, name: str) -> float | None: ...
    def evaluate(self, context_json: str) -> tuple[list[tuple[str, str, bool, str]], str]: ...

# --- pricing ---

def bs_price(kind: str, spot: float, strike: float, t: float, vol: float, rate: float, div: float) -> float: ...
def bs_price_batch(kind: str, spot: _F64, strike: _F64, t: _F64, vol: _F64, rate: _F64, div: _F64) -> _F64: ...
def bs_greeks(
    kind: str, spot: float, strike: float, t: float, vol: float, rate: float, div: float
) -> tuple[float, float, float, float, float, float]: ...
def bs_greeks_batch(
    kind: str, spot: _F64, strike: _F64, t: _F64, vol: _F64, rate: _F64, div: _F64
) -> tuple[_F64, _F64, _F64, _F64, _F64, _F64]: ...
def implied_vol(kind: str, price: float, spot: float, strike: float, t: float, rate: float, div: float) -> float: ...
def implied_vol_batch(
    kind: str, price: _F64, spot: _F64, strike: _F64, t: _F64, rate: _F64, div: _F64
) -> tuple[_F64, int]: ...
def strike_for_delta(kind: str, delta: float, spot: float, t: float, vol: float, rate: float, div: float) -> float: ...
def strike_for_delta_batch(kind: str, delta: _F64, spot: _F64, t: _F64, vol: _F64, rate: _F64, div: _F64) -> _F64: ...

# --- risk ---

def value_at_risk(pnl: _F64, confidence: float) -> float: ...
def expected_shortfall(pnl: _F64, confidence: float) -> float: ...
def tail_dependence(x: _F64, y: _F64, q: float) -> float: ...
def max_drawdown(returns: _F64) -> float: ...
def performance_metrics(returns: _F64, periods_per_year: float, benchmark: _F64 | None = None) -> dict[str, float]: ...
def revalue(
    kind: npt.NDArray[np.int64],
    underlying: npt.NDArray[np.int64],
    quantity: _F64,
    multiplier: _F64,
    strike: _F64,
    t: _F64,
    vol: _F64,
    rate: _F64,
    div: _F64,
    spot: _F64,
    scenario_returns: _F64,
    vol_shifts: _F64 | None,
    horizon: float,
    confidence: float,
) -> tuple[_F64, float, float]: ...

# --- indicators ---

def sma(values: _F64, window: int) -> _F64: ...
def rsi(closes: _F64, period: int) -> _F64: ...
def true_range(high: _F64, low: _F64, close: _F64) -> _F64: ...
def atr(high: _F64, low: _F64, close: _F64, period: int) -> _F64: ...
def hist_vol(closes: _F64, window: int, periods_per_year: float) -> _F64: ...
def trend_strength(closes: _F64, window: int) -> _F64: ...

# --- cache ---

@final
class TTLCache:
    """An LRU cache of bytes with a time-to-live, safe to share between threads."""

    def __new__(cls, capacity: int, ttl_seconds: float) -> TTLCache: ...
    @property
    def capacity(self) -> int: ...
    @property
    def ttl_seconds(self) -> float: ...
    def get(self, key: bytes) -> bytes | None: ...
    def put(self, key: bytes, value: bytes, ttl_seconds: float | None = None) -> None: ...
    def delete(self, key: bytes) -> bool: ...
    def clear(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...

# --- market ---

def bar_columns(
    data: bytes, field: str, max_bars: int, tag: int = 0, bars_tag: int = 0
) -> tuple[npt.NDArray[np.int64], _F64, _F64, _F64, _F64, _F64, bool]: ...
