"""Week types (PROTOCOL section 4): what a week did to a position. The table lives in the core, its bounds compiled
once per configuration (`ProtocolConfig.tables`)."""

from __future__ import annotations

from dataclasses import dataclass

from allsuse.protocol import settings


@dataclass(frozen=True)
class WeekType:
    """A classified week: code (e.g. "P-EW"), name, action, expected week return range and confidence."""

    code: str
    name: str
    action: str
    expected_return_pct: tuple[float, float]
    confidence: float


def describe_week(
    position: str, move_pct: float, roll_available: bool = True, config: settings.ProtocolConfig | None = None
) -> WeekType:
    """Classifies a week. position: CASH, SHORT_PUT, LONG_STOCK or SHORT_CALL; move_pct: the week's move in percent
    against the previous Friday's close; roll_available: whether the next weekly offers a roll (section 4)."""
    w = (config or settings.default()).tables.classify_week(position, float(move_pct), bool(roll_available))
    return WeekType(w.code, w.name, w.action, (w.expected_low_pct, w.expected_high_pct), w.confidence)


def classify_week(position: str, move_pct: float, roll_available: bool = True) -> str:
    """The week type code for (position, move, roll availability), e.g. classify_week("SHORT_PUT", -1.0) == "P-EW"."""
    return describe_week(position, move_pct, roll_available).code
