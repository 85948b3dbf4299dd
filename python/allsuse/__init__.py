"""allsuse: a decision engine for the ALL-USE options-income protocol.

The numbers (pricing, risk, indicators, cache) come from the compiled core `allsuse._core`;
use the typed facades `allsuse.pricing`, `allsuse.risk`, `allsuse.indicators`, `allsuse.cache`.
"""

from __future__ import annotations

from allsuse import _core

__version__: str = _core.__version__


def build_profile() -> str:
    """Which profile the loaded core was compiled with: "release" or "debug".

    Benchmarks and load tests refuse to run on "debug".
    """
    return _core.build_profile()


__all__ = ["__version__", "build_profile"]
