"""The ALL-USE protocol as working code: accounts, market label, week types, levels, drawdown protection and
breakers, decisions, backtest.

Thresholds live in config/protocol.yaml and rules in config/rules.yaml; the numbers are computed by the core.
"""

from __future__ import annotations

from allsuse.protocol.accounts import AccountAllocation, Portfolio, Projection, Transaction, allocate, project
from allsuse.protocol.breakers import TradingState, VixReading, vix_breaker
from allsuse.protocol.drawdown import (
    ProtectionLevel,
    ProtectionState,
    allowed_exposure,
    new_exposure_multiplier,
    step_protection,
)
from allsuse.protocol.engine import Decision, Engine, Order
from allsuse.protocol.level import (
    AtrRegime,
    AtrRegimeReading,
    LevelName,
    ProtocolLevel,
    atr_regime,
    delta_target,
    protocol_level,
)
from allsuse.protocol.market import Bars, MarketData, OptionQuote
from allsuse.protocol.market_label import MarketLabel, market_label
from allsuse.protocol.positions import Position
from allsuse.protocol.week_type import WeekType, classify_week, describe_week

__all__ = [
    "AccountAllocation",
    "AtrRegime",
    "AtrRegimeReading",
    "Bars",
    "Decision",
    "Engine",
    "LevelName",
    "MarketData",
    "MarketLabel",
    "OptionQuote",
    "Order",
    "Portfolio",
    "Position",
    "Projection",
    "ProtectionLevel",
    "ProtectionState",
    "ProtocolLevel",
    "TradingState",
    "Transaction",
    "VixReading",
    "WeekType",
    "allocate",
    "allowed_exposure",
    "atr_regime",
    "classify_week",
    "delta_target",
    "describe_week",
    "market_label",
    "new_exposure_multiplier",
    "project",
    "protocol_level",
    "step_protection",
    "vix_breaker",
]
