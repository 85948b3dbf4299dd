"""The ALL-USE protocol as working code: accounts, market label, week types, levels, decisions, backtest.

Thresholds live in config/protocol.yaml and rules in config/rules.yaml; the numbers are computed by the core.
"""

from __future__ import annotations

from allsuse.protocol.accounts import AccountAllocation, Portfolio, Projection, Transaction, allocate, project
from allsuse.protocol.engine import Decision, Engine, Order
from allsuse.protocol.market import Bars, MarketData, OptionQuote
from allsuse.protocol.market_label import MarketLabel, market_label
from allsuse.protocol.positions import Position
from allsuse.protocol.week_type import WeekType, classify_week, describe_week

__all__ = [
    "AccountAllocation",
    "Bars",
    "Decision",
    "Engine",
    "MarketData",
    "MarketLabel",
    "OptionQuote",
    "Order",
    "Portfolio",
    "Position",
    "Projection",
    "Transaction",
    "WeekType",
    "allocate",
    "classify_week",
    "describe_week",
    "market_label",
    "project",
]
