"""Position sizing (PROTOCOL section 8): cash-secured puts sized to the account's deployment target, and covered
calls. The arithmetic is the compiled core's; thresholds are compared on exact values (a budget of 4.9999999999
contracts buys 5).

    budget    = min(min(t, max_symbol_weight) x E x m_label x m_ATR x m_drawdown x m_VIX x allowed_exposure
                    - existing exposure, free cash), floored at 0
    contracts = floor(budget / (strike x multiplier)); 0 means no trade, never rounded up to one

where t = D / (number of the account's symbols) is the per-symbol target (`per_symbol_target`). A multiplier of 0
means zero contracts, never "use the default". Bad input raises `InvalidInputError` naming the argument.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from allsuse import _core
from allsuse._numbers import integer, number
from allsuse.errors import InvalidInputError

if TYPE_CHECKING:
    from allsuse.protocol.settings import ProtocolConfig

MAX_SYMBOL_WEIGHT = 0.95
"""The highest `max_symbol_weight` an account may configure (total deployment never exceeds 95% of equity)."""


class Binding(enum.StrEnum):
    """What bound a put's budget."""

    TARGET = "target"
    """The per-symbol target t."""
    SYMBOL_CAP = "symbol_cap"
    """The concentration cap `max_symbol_weight`, lower than t."""
    FREE_CASH = "free_cash"
    """Free cash after the buffer."""
    ZERO_MULTIPLIER = "zero_multiplier"
    """A multiplier, or the allowed exposure, of 0."""


@dataclass(frozen=True, slots=True)
class PutSize:
    """The size of a cash-secured put: the dollar budget, the whole contracts it buys, and what bound it."""

    budget: float
    contracts: int
    binding: Binding


def _config(config: ProtocolConfig | None) -> ProtocolConfig:
    # Imported here, not at the top: allsuse.protocol's package imports the engine, which sizes with this module.
    from allsuse.protocol import settings

    return config or settings.default()


def per_symbol_target(deployment_target: float, symbol_count: int) -> float:
    """t = D / (number of the account's symbols): Gen-Acc's 90% over 4 symbols is 0.225.

    >>> per_symbol_target(0.90, 4)
    0.225
    """
    d = number("deployment_target", deployment_target)
    n = integer("symbol_count", symbol_count)
    if not 0.0 <= d <= MAX_SYMBOL_WEIGHT:
        raise InvalidInputError.of("deployment_target", f"must be in [0, {MAX_SYMBOL_WEIGHT}], got {d}")
    if n < 1:
        raise InvalidInputError.of("symbol_count", f"must be >= 1, got {n}")
    return d / n


def size_put(
    equity: float | Decimal,
    free_cash: float | Decimal,
    strike: float,
    target_share: float,
    *,
    max_symbol_weight: float | None = None,
    existing_exposure: float | Decimal = 0.0,
    m_label: float = 1.0,
    m_atr: float = 1.0,
    m_drawdown: float = 1.0,
    m_vix: float = 1.0,
    allowed_exposure: float = 1.0,
    multiplier: float | None = None,
    config: ProtocolConfig | None = None,
) -> PutSize:
    """Contracts of a cash-secured put at `strike` (PROTOCOL section 8).

    target_share is t = D / number of symbols; max_symbol_weight (default config `risk.symbol_cap_share`, 0.25) is
    in (0, 0.95]; allowed_exposure is the drawdown budget in [0, 1]; multiplier is shares per contract (default
    config `sizing.multiplier`, 100). Money arguments may be floats or Decimals.

    >>> size_put(100_000, 95_000, 20.0, 0.225)
    PutSize(budget=22500.0, contracts=11, binding=<Binding.TARGET: 'target'>)
    >>> size_put(100_000, 95_000, 20.0, 0.225, m_vix=0.0).contracts
    0
    """
    if max_symbol_weight is None or multiplier is None:
        cfg = _config(config)
        if max_symbol_weight is None:
            max_symbol_weight = cfg.doc.section("risk").number("symbol_cap_share")
        if multiplier is None:
            multiplier = cfg.doc.section("sizing").number("multiplier")
    budget, contracts, binding = _core.size_put(
        equity=number("equity", equity),
        free_cash=number("free_cash", free_cash),
        strike=number("strike", strike),
        target_share=number("target_share", target_share),
        max_symbol_weight=number("max_symbol_weight", max_symbol_weight),
        existing_exposure=number("existing_exposure", existing_exposure),
        m_label=number("m_label", m_label),
        m_atr=number("m_atr", m_atr),
        m_drawdown=number("m_drawdown", m_drawdown),
        m_vix=number("m_vix", m_vix),
        allowed_exposure=number("allowed_exposure", allowed_exposure),
        multiplier=number("multiplier", multiplier),
    )
    return PutSize(budget, contracts, Binding(binding))


def size_covered_calls(
    shares: float,
    max_cover_share: float = 1.0,
    multiplier: float | None = None,
    *,
    config: ProtocolConfig | None = None,
) -> int:
    """Covered calls on `shares`: floor(shares / multiplier) contracts, at most `max_cover_share` of them (0.5 in
    C-REC or under moderate-or-worse drawdown protection, else 1.0).

    >>> size_covered_calls(350, 0.5, 100)
    1
    """
    if multiplier is None:
        multiplier = _config(config).doc.section("sizing").number("multiplier")
    return _core.size_covered_calls(
        number("shares", shares), number("max_cover_share", max_cover_share), number("multiplier", multiplier)
    )


__all__ = ["MAX_SYMBOL_WEIGHT", "Binding", "PutSize", "per_symbol_target", "size_covered_calls", "size_put"]
