"""Execution: a broker interface, a paper broker on a simulated intraday market, and adaptive execution
(docs/execution.md)."""

from allsuse.execution.broker import (
    STATUSES,
    Broker,
    BrokerOrder,
    Fill,
    Instrument,
    OrderState,
    Quote,
)
from allsuse.execution.engine import ExecutionEngine, ParentOrder
from allsuse.execution.model import MarketParams
from allsuse.execution.paper import PaperBroker
from allsuse.execution.schedule import URGENCIES, Schedule, collar_params, collar_share, urgency_of

__all__ = [
    "STATUSES",
    "URGENCIES",
    "Broker",
    "BrokerOrder",
    "ExecutionEngine",
    "Fill",
    "Instrument",
    "MarketParams",
    "OrderState",
    "PaperBroker",
    "ParentOrder",
    "Quote",
    "Schedule",
    "collar_params",
    "collar_share",
    "urgency_of",
]
