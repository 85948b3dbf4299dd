# Hand-written stubs for the compiled core, checked against the real module by mypy.stubtest.
# Users import the typed facades (allsuse.pricing, allsuse.risk, ...), never this module.

import numpy as np
import numpy.typing as npt

_F64 = npt.NDArray[np.float64]

__version__: str
# PyO3 lists every registered name in __all__; each area below extends this with its own.
__all__ = ["__version__", "build_profile"]

def build_profile() -> str: ...

# --- pricing ---

__all__ += [
    "bs_greeks",
    "bs_greeks_batch",
    "bs_price",
    "bs_price_batch",
    "implied_vol",
    "implied_vol_batch",
    "strike_for_delta",
    "strike_for_delta_batch",
]

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

# --- indicators ---

# --- cache ---
