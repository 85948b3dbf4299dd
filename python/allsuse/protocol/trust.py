"""Trust gates automation per decision kind (PROTOCOL section 10)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from allsuse.errors import InvalidInputError
from allsuse.protocol import settings

DECISION_KINDS = ("entry", "exit", "roll", "risk_reduction", "emergency")


@dataclass
class TrustBook:
    """Trust score per decision kind in [floor, 1], starting at `initial`; moved by recorded outcomes and
    decaying weekly without them."""

    scores: dict[str, float] = field(default_factory=dict)
    last_outcome: dict[str, dt.date] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = settings.default().doc.section("trust")
        self._initial = t.number("initial", low=0, high=1)
        self._auto = t.number("auto_threshold", low=0, high=1)
        self._conf = t.number("confidence_threshold", low=0, high=1)
        self._reward = t.number("reward", low=0, high=1)
        self._penalty = t.number("penalty", low=0, high=1)
        self._decay = t.number("weekly_decay", low=0, high=1)
        self._floor = t.number("floor", low=0, high=1)
        for kind in DECISION_KINDS:
            self.scores.setdefault(kind, self._initial)

    def _check(self, kind: str) -> str:
        if kind not in DECISION_KINDS:
            raise InvalidInputError.of("kind", f"must be one of {', '.join(DECISION_KINDS)}, got {kind!r}")
        return kind

    @property
    def auto_threshold(self) -> float:
        """The trust a kind needs to run without approval."""
        return self._auto

    @property
    def confidence_threshold(self) -> float:
        """The confidence a decision needs to run without approval."""
        return self._conf

    def score(self, kind: str) -> float:
        """The current trust for a decision kind."""
        return self.scores[self._check(kind)]

    def requires_approval(self, kind: str, confidence: float) -> bool:
        """True unless trust >= threshold and confidence >= threshold; always True for emergencies."""
        if self._check(kind) == "emergency":
            return True
        return not (self.scores[kind] >= self._auto and confidence >= self._conf)

    def record(self, kind: str, right: bool, confidence: float, on: dt.date) -> float:
        """Moves trust after an outcome: +reward x confidence when right, -penalty x confidence when wrong."""
        self._check(kind)
        if not 0 <= confidence <= 1:
            raise InvalidInputError.of("confidence", f"must be in [0, 1], got {confidence}")
        delta = self._reward * confidence if right else -self._penalty * confidence
        self.scores[kind] = min(1.0, max(self._floor, self.scores[kind] + delta))
        self.last_outcome[kind] = on
        return self.scores[kind]

    def decay(self, today: dt.date) -> None:
        """Applies 2% decay for each full week since a kind's last outcome (or since the last decay)."""
        for kind in DECISION_KINDS:
            last = self.last_outcome.get(kind)
            if last is None:
                self.last_outcome[kind] = today
                continue
            weeks = (today - last).days // 7
            if weeks > 0:
                self.scores[kind] = max(self._floor, self.scores[kind] * (1 - self._decay) ** weeks)
                self.last_outcome[kind] = last + dt.timedelta(days=7 * weeks)
