"""Drawdown protection and the drawdown budget (PROTOCOL section 6), computed in the core with the thresholds of
config/protocol.yaml.

Protection levels none/light/moderate/aggressive/emergency start at 5/10/15/20% drawdown from the equity peak and
rise immediately. They step down from level L to L-1 once the drawdown is at or under
threshold(L-1) + (T - threshold(L-1)) / 2, and from light to none at or under 0.1 x T, where T is the trough: the
worst drawdown since protection last left none (trough 12% at moderate: light at 8.5%, none at 1.2%). At most 5
level changes per account per day.

The drawdown budget is CPPI-style: cushion = (equity - floor) / (peak - floor) with floor = peak x (1 - cap), and
the allowed share of the deployment target is min(1, k x cushion), k = 2 by default.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from allsuse import _core
from allsuse._numbers import integer, number
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings


class ProtectionLevel(enum.StrEnum):
    """Drawdown protection levels, none first."""

    NONE = "none"
    LIGHT = "light"
    MODERATE = "moderate"
    AGGRESSIVE = "aggressive"
    EMERGENCY = "emergency"

    @property
    def number(self) -> int:
        """0 none .. 4 emergency."""
        return list(ProtectionLevel).index(self)

    @classmethod
    def of(cls, number: int) -> ProtectionLevel:
        """The level with this number (0 none .. 4 emergency)."""
        levels = list(cls)
        if not 0 <= number < len(levels):
            raise InvalidInputError.of("level", f"must be 0 (none) .. 4 (emergency), got {number}")
        return levels[number]


ProtectionTuple = tuple[int, float, int, int]
"""The core's form of a ProtectionState: (level 0-4, trough, day ordinal, adjustments that day)."""


@dataclass(frozen=True, slots=True)
class ProtectionState:
    """One account's protection, carried from one drawdown observation to the next.

    trough: the worst drawdown (share of peak) since protection last left none, 0 while none; day: the day ordinal
    (`date.toordinal()`) of the last observation, -1 before the first; adjustments_today: level changes that day.
    """

    level: ProtectionLevel = ProtectionLevel.NONE
    trough: float = 0.0
    day: int = -1
    adjustments_today: int = 0

    def as_tuple(self) -> ProtectionTuple:
        """The plain tuple the core takes (and engine state stores)."""
        return (self.level.number, self.trough, self.day, self.adjustments_today)

    @classmethod
    def from_tuple(cls, state: ProtectionTuple) -> ProtectionState:
        """The state from its tuple form (level, trough, day, adjustments_today)."""
        level, trough, day, adjustments = state
        return cls(
            ProtectionLevel.of(integer("state.level", level)),
            number("state.trough", trough),
            integer("state.day", day),
            integer("state.adjustments_today", adjustments),
        )


def _cfg(config: settings.ProtocolConfig | None) -> settings.ProtocolConfig:
    return config or settings.default()


def step_protection(
    state: ProtectionState | None,
    drawdown: float,
    day: dt.date | int,
    *,
    config: settings.ProtocolConfig | None = None,
) -> ProtectionState:
    """The protection state after observing `drawdown` (share of the equity peak, >= 0) on `day` (a date or its
    ordinal). Pass None (or ProtectionState()) for an account never observed.

    >>> s = step_protection(None, 0.12, 1)
    >>> s.level, step_protection(s, 0.085, 1).level
    (<ProtectionLevel.MODERATE: 'moderate'>, <ProtectionLevel.LIGHT: 'light'>)
    """
    d = _cfg(config).doc.section("drawdown_protection")
    t = d.numbers("thresholds", 4)
    m = d.numbers("multipliers", 5)
    ordinal = day.toordinal() if isinstance(day, dt.date) else integer("day", day)
    nxt = _core.step_protection(
        (state or ProtectionState()).as_tuple(),
        number("drawdown", drawdown),
        ordinal,
        (t[0], t[1], t[2], t[3]),
        (m[0], m[1], m[2], m[3], m[4]),
        d.number("step_down_recovery"),
        d.number("off_recovery"),
        int(d.number("max_adjustments_per_day", low=0)),
    )
    return ProtectionState.from_tuple(nxt)


def new_exposure_multiplier(level: ProtectionLevel | str, *, config: settings.ProtocolConfig | None = None) -> float:
    """m_drawdown of a protection level: 1.0, 0.8, 0.6, 0.4, 0 by default.

    >>> new_exposure_multiplier(ProtectionLevel.MODERATE)
    0.6
    """
    return _cfg(config).doc.section("drawdown_protection").numbers("multipliers", 5)[ProtectionLevel(level).number]


def allowed_exposure(
    peak: float,
    equity: float,
    cap: float,
    multiplier: float | None = None,
    *,
    config: settings.ProtocolConfig | None = None,
) -> float:
    """The drawdown budget: the share of the deployment target an account may have deployed, min(1, k x cushion)
    clamped to [0, 1]. cap is the account's max drawdown (Gen 0.15); multiplier k defaults to config
    `drawdown_budget.multiplier`.

    >>> allowed_exposure(100.0, 92.5, 0.15, 2.0), allowed_exposure(100.0, 88.75, 0.15, 2.0)
    (1.0, 0.5)
    """
    k = multiplier if multiplier is not None else _cfg(config).doc.section("drawdown_budget").number("multiplier")
    return _core.allowed_exposure(
        number("peak", peak), number("equity", equity), number("cap", cap), number("multiplier", k)
    )


__all__ = [
    "ProtectionLevel",
    "ProtectionState",
    "ProtectionTuple",
    "allowed_exposure",
    "new_exposure_multiplier",
    "step_protection",
]
