"""Adaptive execution's choices: an order's urgency from its decision, the participation rate and limit price by
urgency, child-order slices, and the R13 price collar the limits stay inside (docs/execution.md).

Urgency comes from what the decision is (PROTOCOL sections 6 and 10): trust kind "emergency" (the drawdown
emergency level, the level-3 close) is `emergency`; trust kind "risk_reduction", the actions REDUCE and CLOSE, and
an account that is not ACTIVE (REDUCING, frozen) are `risk_reduction`; everything else is `normal`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allsuse.errors import InvalidInputError

URGENCIES = ("normal", "risk_reduction", "emergency")
COLLAR_RULE = "R13_PRICE_COLLAR"
PASSIVE_LEVELS = ("touch", "mid")  # from the least to the most aggressive passive price
PASSIVE_STEPS = {"normal": 2, "risk_reduction": 1}  # an emergency never posts passively


def urgency_of(decision: Mapping[str, Any]) -> str:
    """The urgency of a stored decision payload (see the module doc)."""
    kind = str(decision.get("trust_kind") or "")
    action = str(decision.get("action") or "")
    if kind == "emergency":
        return "emergency"
    if kind == "risk_reduction" or action in ("REDUCE", "CLOSE") or decision.get("account_state", "ACTIVE") != "ACTIVE":
        return "risk_reduction"
    return "normal"


def collar_params(rules_file: Path | None = None) -> tuple[float, float]:
    """R13's (max_deviation_share, min_tick) from the rule set: a limit stays within the share of mid, and a
    buy-back limited at or under min_tick always passes (closing a worthless option)."""
    if rules_file is None:
        from allsuse.rules import DEFAULT_RULES

        rules_file = DEFAULT_RULES
    doc = yaml.safe_load(Path(rules_file).read_text())
    for rule in doc.get("rules", []):
        if rule.get("code") == COLLAR_RULE:
            share = float(rule["params"]["max_deviation_share"])
            min_tick = float(rule["params"].get("min_tick", 0.0))
            if not 0 < share < 1:
                raise InvalidInputError.of(f"{COLLAR_RULE}.max_deviation_share", f"must be in (0, 1), got {share}")
            return share, min_tick
    raise InvalidInputError.of("rules", f"{rules_file} has no {COLLAR_RULE}")


def collar_share(rules_file: Path | None = None) -> float:
    """R13's max_deviation_share (see collar_params)."""
    return collar_params(rules_file)[0]


@dataclass(frozen=True)
class Schedule:
    """Participation rate per urgency (share of each minute's market volume), the largest child order, minutes a
    child may rest before it is cancel-replaced at the current mid, the collar share, R13's buy-back tick (a
    buy-back limited at or under it always passes the collar), and how many passive prices a child of each urgency
    rests at before it crosses the spread (`passive_steps`: normal and risk_reduction, 0-2; an emergency none)."""

    participation: Mapping[str, float]
    slice_contracts: int = 10
    replace_timeout_minutes: int = 5
    collar: float = 0.05
    buy_back_tick: float = 0.0
    passive_steps: Mapping[str, int] = field(default_factory=lambda: dict(PASSIVE_STEPS))

    def __post_init__(self) -> None:
        for urgency in URGENCIES:
            rate = self.participation.get(urgency)
            if rate is None or not math.isfinite(rate) or not 0 < rate <= 1:
                raise InvalidInputError.of(f"participation_{urgency}", f"must be in (0, 1], got {rate!r}")
        if not self.participation["normal"] <= self.participation["risk_reduction"] <= self.participation["emergency"]:
            raise InvalidInputError.of(
                "participation_risk_reduction", "must lie between participation_normal and participation_emergency"
            )
        if self.slice_contracts < 1:
            raise InvalidInputError.of("slice_contracts", f"must be >= 1, got {self.slice_contracts}")
        if self.replace_timeout_minutes < 1:
            raise InvalidInputError.of("replace_timeout_minutes", f"must be >= 1, got {self.replace_timeout_minutes}")
        if not 0 < self.collar < 1:
            raise InvalidInputError.of("collar", f"must be in (0, 1), got {self.collar}")
        for urgency in PASSIVE_STEPS:
            steps = self.passive_steps.get(urgency)
            if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= len(PASSIVE_LEVELS):
                raise InvalidInputError.of(
                    f"passive_steps_{urgency}", f"must be 0-{len(PASSIVE_LEVELS)}, got {steps!r}"
                )
        if self.passive_steps["risk_reduction"] > self.passive_steps["normal"]:
            raise InvalidInputError.of(
                "passive_steps_risk_reduction", "must be at most passive_steps_normal (risk reduction waits less)"
            )

    def rate(self, urgency: str) -> float:
        """The participation rate of `urgency`."""
        if urgency not in URGENCIES:
            raise InvalidInputError.of("urgency", f"must be one of {', '.join(URGENCIES)}, got {urgency!r}")
        return self.participation[urgency]

    def slices(self, quantity: int, kind: str = "put") -> list[int]:
        """`quantity` cut into child orders of at most slice_contracts (for stock: that many contracts' worth of
        shares, 100 a contract)."""
        if quantity < 1:
            raise InvalidInputError.of("quantity", f"must be >= 1, got {quantity}")
        size = self.slice_contracts * (100 if kind == "stock" else 1)
        whole, rest = divmod(quantity, size)
        return [size] * whole + ([rest] if rest else [])

    def limit_price(self, side: str, mid: float, spread: float, urgency: str, *, closing: bool = False) -> float:
        """A limit inside the collar of `mid`: a normal order reaches one full spread past mid (the far touch and
        as much again for its impact), risk reduction one and a half, an emergency the collar's edge. A buy-back
        (`closing`) may instead be limited at R13's buy-back tick when that is higher (R13 passes it always)."""
        if side not in ("BUY", "SELL"):
            raise InvalidInputError.of("side", f"must be BUY or SELL, got {side!r}")
        if urgency not in URGENCIES:
            raise InvalidInputError.of("urgency", f"must be one of {', '.join(URGENCIES)}, got {urgency!r}")
        reach = {"normal": 1.0, "risk_reduction": 1.5, "emergency": math.inf}[urgency] * spread / mid
        offset = min(reach, self.collar * 0.999)  # strictly inside: rounding never leaves the collar
        if side == "SELL":
            return mid * (1 - offset)
        limit = mid * (1 + offset)
        if closing and limit < self.buy_back_tick:
            return self.buy_back_tick
        return limit

    def passive_plan(self, urgency: str, mid: float, spread: float, kind: str, minutes_left: float) -> list[str]:
        """The passive prices a new child rests at, each for replace_timeout_minutes, before it crosses: the last
        `passive_steps` of (near touch, mid); mid only where the spread is two ticks or more (no price lies inside a
        one-tick spread); as many as end before `minutes_left` (the parent's horizon), so that the child is
        marketable before it; none for an emergency."""
        from allsuse.execution.model import tick

        if urgency not in URGENCIES:
            raise InvalidInputError.of("urgency", f"must be one of {', '.join(URGENCIES)}, got {urgency!r}")
        steps = self.passive_steps.get(urgency, 0)
        while steps and steps * self.replace_timeout_minutes >= minutes_left:
            steps -= 1
        plan = list(PASSIVE_LEVELS[len(PASSIVE_LEVELS) - steps :]) if steps else []
        if spread < 2 * tick(kind, mid) * (1 - 1e-9):
            plan = ["touch"] * len(plan)
        return [level for n, level in enumerate(plan) if n == 0 or plan[n - 1] != level]

    def passive_price(self, side: str, mid: float, spread: float, level: str) -> float:
        """A resting limit: at the near touch (half a spread on the order's own side of mid) or at mid, never
        farther from mid than 0.999 x the collar."""
        if side not in ("BUY", "SELL"):
            raise InvalidInputError.of("side", f"must be BUY or SELL, got {side!r}")
        if level not in PASSIVE_LEVELS:
            raise InvalidInputError.of("level", f"must be touch or mid, got {level!r}")
        offset = min(spread / 2 / mid if level == "touch" else 0.0, self.collar * 0.999)
        return mid * (1 - offset) if side == "BUY" else mid * (1 + offset)

    def within_collar(self, limit: float, mid: float, *, closing: bool = False) -> bool:
        """Whether `limit` passes R13 against `mid`: within the collar, or a buy-back at or under the tick."""
        if closing and limit <= self.buy_back_tick * (1 + 1e-9):
            return True
        return abs(limit - mid) <= self.collar * mid * (1 + 1e-12)


__all__ = [
    "COLLAR_RULE",
    "PASSIVE_LEVELS",
    "PASSIVE_STEPS",
    "URGENCIES",
    "Schedule",
    "collar_params",
    "collar_share",
    "urgency_of",
]
