"""Week types (PROTOCOL section 4): what a week did to a position. The table lives in the core."""

from __future__ import annotations

from dataclasses import dataclass

from allsuse import _core
from allsuse.protocol import settings


@dataclass(frozen=True)
class WeekType:
    """A classified week: code (e.g. "P-EW"), name, action, expected week return range and confidence."""

    code: str
    name: str
    action: str
    expected_return_pct: tuple[float, float]
    confidence: float


def _bounds(
    cfg: settings.ProtocolConfig,
) -> tuple[float, float, float, float, float, float, float, float, float, float]:
    w = cfg.doc.section("week_types")
    return (
        w.number("put_worthless_min"),
        w.number("put_assigned_min"),
        w.number("deep_drawdown_below"),
        w.number("call_strong_min"),
        w.number("call_appreciation_min"),
        w.number("call_premium_min"),
        w.number("call_roll_min"),
        w.number("confidence_margin"),
        w.number("confidence_high"),
        w.number("confidence_low"),
    )


def describe_week(
    position: str, move_pct: float, roll_available: bool = True, config: settings.ProtocolConfig | None = None
) -> WeekType:
    """Classifies a week. position: CASH, SHORT_PUT, LONG_STOCK or SHORT_CALL; move_pct: the week's move in percent
    against the previous Friday's close; roll_available: whether the next weekly offers a roll (section 4)."""
    cfg = config or settings.default()
    code, name, action, low, high, confidence = _core.classify_week(
        position, float(move_pct), bool(roll_available), _bounds(cfg)
    )
    return WeekType(code, name, action, (low, high), confidence)


def classify_week(position: str, move_pct: float, roll_available: bool = True) -> str:
    """The week type code for (position, move, roll availability), e.g. classify_week("SHORT_PUT", -1.0) == "P-EW"."""
    return describe_week(position, move_pct, roll_available).code
