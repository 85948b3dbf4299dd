"""The broker interface the execution engine works orders through, and the records that cross it.

A broker adapter (the paper broker here; Interactive Brokers or another later) implements `Broker`: submit, cancel,
replace, a stream of fills, positions and quotes. The engine (allsuse.execution.engine) never knows which adapter
it talks to. A client order id is the adapter's idempotency key: submitting an id that exists returns the
existing order and never places a second one.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from allsuse.errors import InvalidInputError

SIDES = ("BUY", "SELL")
KINDS = ("put", "call", "stock")
WORKING = "working"
FILLED = "filled"
PARTIALLY_FILLED = "partially_filled"
CANCELLED = "cancelled"
REJECTED = "rejected"
STATUSES = (WORKING, FILLED, PARTIALLY_FILLED, CANCELLED, REJECTED)
TERMINAL = (FILLED, PARTIALLY_FILLED, CANCELLED, REJECTED)


@dataclass(frozen=True)
class Instrument:
    """What is traded and what the market model needs of it: the underlying's spot and IV at arrival, the
    option's absolute delta (0..1) and its mid at arrival (the share price for stock)."""

    symbol: str
    kind: str
    strike: float
    expiry: str
    mid: float
    spot: float
    iv: float
    delta: float = 1.0

    @property
    def key(self) -> str:
        """One string per tradable instrument (positions are kept by it)."""
        if self.kind == "stock":
            return self.symbol
        return f"{self.symbol} {self.expiry} {self.strike:g} {self.kind}"

    def check(self) -> None:
        """InvalidInputError naming the field of a value out of its domain."""
        if not self.symbol:
            raise InvalidInputError.of("symbol", "must not be empty")
        if self.kind not in KINDS:
            raise InvalidInputError.of("kind", f"must be put, call or stock, got {self.kind!r}")
        for name in ("mid", "spot", "iv"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise InvalidInputError.of(name, f"must be a finite number > 0, got {value!r}")
        if self.kind != "stock" and (not math.isfinite(self.strike) or self.strike <= 0):
            raise InvalidInputError.of("strike", f"must be > 0 for an option, got {self.strike!r}")
        if not math.isfinite(self.delta) or not 0 <= self.delta <= 1:
            raise InvalidInputError.of("delta", f"must be in [0, 1], got {self.delta!r}")


@dataclass(frozen=True)
class BrokerOrder:
    """A limit order sent to a broker. `max_participation` caps the share of each minute's market volume it may
    take (None: as much as the limit allows at once)."""

    client_order_id: str
    instrument: Instrument
    side: str
    quantity: int
    limit_price: float
    max_participation: float | None = None

    def check(self) -> None:
        """InvalidInputError naming the field of a value out of its domain."""
        if not self.client_order_id or len(self.client_order_id) > 200:
            raise InvalidInputError.of("client_order_id", "must be 1-200 characters")
        self.instrument.check()
        if self.side not in SIDES:
            raise InvalidInputError.of("side", f"must be BUY or SELL, got {self.side!r}")
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity < 1:
            raise InvalidInputError.of("quantity", f"must be a whole number >= 1, got {self.quantity!r}")
        if not math.isfinite(self.limit_price) or self.limit_price <= 0:
            raise InvalidInputError.of("limit_price", f"must be a finite number > 0, got {self.limit_price!r}")
        p = self.max_participation
        if p is not None and (not math.isfinite(p) or not 0 < p <= 1):
            raise InvalidInputError.of("max_participation", f"must be in (0, 1], got {p!r}")


@dataclass
class OrderState:
    """A broker's view of one order: what is filled, at what average price, and its status."""

    order: BrokerOrder
    status: str = WORKING
    filled: int = 0
    avg_price: float = 0.0
    replaced: int = 0
    submitted_minute: int = 0
    reason: str = ""

    @property
    def remaining(self) -> int:
        """Units still to fill."""
        return self.order.quantity - self.filled

    @property
    def done(self) -> bool:
        """Whether the order can no longer fill."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class Fill:
    """One execution: `impact_share` is the model's temporary impact paid (paper broker; 0 when unknown);
    `passive`: the order was filled resting (at its limit, by the other side's flow), not by crossing the spread."""

    fill_id: str
    client_order_id: str
    quantity: int
    price: float
    mid: float
    minute: int
    impact_share: float = 0.0
    passive: bool = False


@dataclass(frozen=True)
class Quote:
    """The market in one instrument now: mid, full spread (price units) and the last minute's volume."""

    mid: float
    spread: float
    volume: float
    minute: int


@runtime_checkable
class Broker(Protocol):
    """What the execution engine needs of a broker adapter (docs/execution.md, "Adding an adapter")."""

    name: str

    async def submit(self, order: BrokerOrder) -> OrderState:
        """Places `order`; the same client_order_id again returns the existing order (never a second one)."""
        ...

    async def cancel(self, client_order_id: str) -> OrderState:
        """Cancels what is unfilled; a finished order is returned as it is."""
        ...

    async def replace(
        self, client_order_id: str, *, limit_price: float | None = None, quantity: int | None = None
    ) -> OrderState:
        """Changes a working order's limit or total quantity (cancel-replace, the client id kept)."""
        ...

    def fills(self) -> AsyncIterator[Fill]:
        """Every fill from now on, in the order they happen."""
        ...

    async def positions(self) -> dict[str, int]:
        """Net signed quantity per instrument key."""
        ...

    async def quote(self, instrument: Instrument) -> Quote:
        """The instrument's market now."""
        ...

    async def order(self, client_order_id: str) -> OrderState | None:
        """The order with this id, or None."""
        ...


__all__ = [
    "CANCELLED",
    "FILLED",
    "KINDS",
    "PARTIALLY_FILLED",
    "REJECTED",
    "SIDES",
    "STATUSES",
    "TERMINAL",
    "WORKING",
    "Broker",
    "BrokerOrder",
    "Fill",
    "Instrument",
    "OrderState",
    "Quote",
]
