"""The execution engine: works parent orders through any Broker, adaptively or at once, and measures each.

Adaptive: the parent is cut into child orders of at most `slice_contracts`, one working at a time, each capped at
the urgency's participation rate of the market's volume and limited inside the R13 collar of the mid when it is
sent. A child of a normal or risk-reduction order first rests passively (at the near touch, then at mid; risk
reduction at mid only; an emergency never), and escalates: a child still unfilled `replace_timeout_minutes` after
it was priced is cancel-replaced at the next passive price and then at a limit across the spread around the mid of
that minute, always before the parent's horizon. Immediate: one marketable order for the whole quantity at the
collar's edge.

Each parent records implementation shortfall against the arrival mid, slippage against the interval's VWAP and
TWAP of the market (the mids of the minutes it worked, by volume and plainly), the model impact paid and the
commission, in basis points of the price (positive = a cost). The engine is driven by `on_fill` (each fill, once:
a repeated fill id is ignored) and `on_minute` (once a minute of market time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from allsuse.errors import InvalidInputError
from allsuse.execution.broker import (
    CANCELLED,
    FILLED,
    PARTIALLY_FILLED,
    REJECTED,
    WORKING,
    Broker,
    BrokerOrder,
    Fill,
    Instrument,
)
from allsuse.execution.schedule import URGENCIES, Schedule

MODES = ("adaptive", "immediate")


@dataclass
class ParentOrder:
    """One order as the engine works it; `payload()` is the stored record (docs/execution.md, "Order records")."""

    client_order_id: str
    instrument: Instrument
    side: str
    contracts: int
    urgency: str = "normal"
    mode: str = "adaptive"
    closing: bool = False  # a buy-back of a held option (R13 lets its limit sit at the buy-back tick)
    decision_id: str = ""
    portfolio_id: str = ""
    account_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = WORKING
    filled: int = 0
    notional: float = 0.0
    impact_paid: float = 0.0
    arrival_mid: float = 0.0
    submitted_at: str = ""
    completed_at: str = ""
    commission: float = 0.0
    children: int = 0
    replaces: int = 0
    minutes: list[tuple[float, float]] = field(default_factory=list)  # (mid, volume) of each minute worked
    recorded_minute: int = -1  # the last market minute in `minutes`
    child_id: str = ""
    child_priced_minute: int = 0
    started_minute: int = 0
    seen: set[str] = field(default_factory=set)
    limits: list[tuple[float, float]] = field(default_factory=list)  # (limit, mid when priced) of every child
    passive_filled: int = 0  # units filled resting (passively), not by crossing
    plan: list[str] = field(default_factory=list)  # the current child's passive prices (allsuse.execution.schedule)
    stage: int = 0  # the current child's step in `plan`; past it the child crosses the spread

    @property
    def sign(self) -> float:
        return 1.0 if self.side == "BUY" else -1.0

    @property
    def avg_price(self) -> float:
        return self.notional / self.filled if self.filled else 0.0

    @property
    def done(self) -> bool:
        return self.status != WORKING

    def _bps(self, benchmark: float) -> float | None:
        if not self.filled or benchmark <= 0:
            return None
        return round(self.sign * (self.avg_price - benchmark) / benchmark * 1e4, 4)

    def vwap(self) -> float:
        volume = sum(v for _, v in self.minutes)
        if volume <= 0:
            return self.arrival_mid
        return sum(m * v for m, v in self.minutes) / volume

    def twap(self) -> float:
        if not self.minutes:
            return self.arrival_mid
        return sum(m for m, _ in self.minutes) / len(self.minutes)

    def payload(self) -> dict[str, Any]:
        """The order record's payload (the keys of issue 13's contract, item 1, and the engine's own)."""
        i = self.instrument
        return {
            **self.extra,
            "client_order_id": self.client_order_id,
            "decision_id": self.decision_id,
            "portfolio_id": self.portfolio_id,
            "account_id": self.account_id,
            "symbol": i.symbol,
            "side": self.side,
            "kind": i.kind,
            "strike": i.strike,
            "expiry": i.expiry,
            "contracts": self.contracts,
            "filled_contracts": self.filled,
            "avg_price": round(self.avg_price, 6),
            "arrival_mid": round(self.arrival_mid, 6),
            "urgency": self.urgency,
            "mode": self.mode,
            "status": self.status,
            "submitted_at": self.submitted_at,
            "completed_at": self.completed_at,
            "shortfall_bps": self._bps(self.arrival_mid),
            "vwap_slippage_bps": self._bps(self.vwap()) if self.done else None,
            "twap_slippage_bps": self._bps(self.twap()) if self.done else None,
            "impact_bps": round(self.impact_paid / self.filled * 1e4, 4) if self.filled else None,
            "commission": round(self.commission, 2),
            "children": self.children,
            "replaces": self.replaces,
            "minutes_worked": len(self.minutes),
            "passive_contracts": self.passive_filled,
        }


Listener = Callable[[ParentOrder], Awaitable[None]]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class ExecutionEngine:
    """Works parent orders through `broker` (see the module doc). `on_change` is awaited after every change of a
    parent (a fill, a new child, completion); `clock` gives the ISO time stamped on orders."""

    def __init__(
        self,
        broker: Broker,
        schedule: Schedule,
        *,
        commission_per_contract: float = 0.65,
        commission_per_share: float = 0.0,
        horizon_minutes: int = 390,
        on_change: Listener | None = None,
        clock: Callable[[], str] = _now,
    ) -> None:
        if horizon_minutes < 1:
            raise InvalidInputError.of("horizon_minutes", f"must be >= 1, got {horizon_minutes}")
        self.broker = broker
        self.schedule = schedule
        self.commission_per_contract = commission_per_contract
        self.commission_per_share = commission_per_share
        self.horizon_minutes = horizon_minutes
        self.on_change = on_change
        self.clock = clock
        self.orders: dict[str, ParentOrder] = {}
        self._by_child: dict[str, ParentOrder] = {}
        self.minute = 0

    @property
    def working(self) -> list[ParentOrder]:
        """Parents still being worked."""
        return [p for p in self.orders.values() if not p.done]

    async def submit(self, parent: ParentOrder) -> ParentOrder:
        """Starts working `parent`; a client_order_id the engine holds already returns that parent (never twice)."""
        existing = self.orders.get(parent.client_order_id)
        if existing is not None:
            return existing
        if parent.urgency not in URGENCIES:
            raise InvalidInputError.of("urgency", f"must be one of {', '.join(URGENCIES)}, got {parent.urgency!r}")
        if parent.mode not in MODES:
            raise InvalidInputError.of("mode", f"must be adaptive or immediate, got {parent.mode!r}")
        if parent.side not in ("BUY", "SELL"):
            raise InvalidInputError.of("side", f"must be BUY or SELL, got {parent.side!r}")
        if isinstance(parent.contracts, bool) or parent.contracts < 1:
            raise InvalidInputError.of("contracts", f"must be >= 1, got {parent.contracts}")
        parent.instrument.check()
        quote = await self.broker.quote(parent.instrument)
        # A parent resumed after a restart keeps its arrival mid, its time and what it had filled.
        parent.arrival_mid = parent.arrival_mid or quote.mid
        parent.submitted_at = parent.submitted_at or self.clock()
        parent.started_minute = quote.minute
        self.orders[parent.client_order_id] = parent
        if parent.filled >= parent.contracts:
            await self._finish(parent, FILLED)
        else:
            await self._next_child(parent)
        return parent

    async def _next_child(self, parent: ParentOrder) -> None:
        remaining = parent.contracts - parent.filled
        quote = await self.broker.quote(parent.instrument)
        if parent.mode == "immediate":
            size, participation = remaining, None
            limit = self._limit(parent, quote.mid, quote.spread, "emergency")
        else:
            size = self.schedule.slices(remaining, parent.instrument.kind)[0]
            participation = self.schedule.rate(parent.urgency)
            left = self.horizon_minutes - (quote.minute - parent.started_minute)
            parent.plan = self.schedule.passive_plan(
                parent.urgency, quote.mid, quote.spread, parent.instrument.kind, left
            )
            parent.stage = 0
            limit = self._priced(parent, quote.mid, quote.spread)
        parent.children += 1
        child_id = f"{parent.client_order_id}.{parent.children}"
        order = BrokerOrder(child_id, parent.instrument, parent.side, size, limit, participation)
        state = await self.broker.submit(order)
        parent.child_id = child_id
        parent.child_priced_minute = quote.minute
        parent.limits.append((limit, quote.mid))
        self._by_child[child_id] = parent
        if state.status == REJECTED:
            await self._finish(parent, REJECTED)
        elif self.on_change is not None:
            await self.on_change(parent)

    def _priced(self, parent: ParentOrder, mid: float, spread: float) -> float:
        """The adaptive child's limit at its stage: a passive price of its plan, then one crossing the spread."""
        if parent.stage < len(parent.plan):
            return self.schedule.passive_price(parent.side, mid, spread, parent.plan[parent.stage])
        return self._limit(parent, mid, spread, parent.urgency)

    def _limit(self, parent: ParentOrder, mid: float, spread: float, urgency: str) -> float:
        closing = parent.closing and parent.instrument.kind != "stock"
        return self.schedule.limit_price(parent.side, mid, spread, urgency, closing=closing)

    async def on_fill(self, fill: Fill) -> None:
        """Books a fill into its parent (a fill id seen before changes nothing)."""
        parent = self._by_child.get(fill.client_order_id)
        if parent is None or fill.fill_id in parent.seen:
            return
        parent.seen.add(fill.fill_id)
        if fill.minute != parent.recorded_minute:  # the minute it filled in belongs to its interval
            quote = await self.broker.quote(parent.instrument)
            parent.minutes.append((fill.mid, quote.volume))
            parent.recorded_minute = fill.minute
        parent.filled += fill.quantity
        parent.notional += fill.price * fill.quantity
        parent.impact_paid += fill.impact_share * fill.quantity
        if fill.passive:
            parent.passive_filled += fill.quantity
        per = self.commission_per_share if parent.instrument.kind == "stock" else self.commission_per_contract
        parent.commission += per * fill.quantity
        if parent.filled >= parent.contracts:
            await self._finish(parent, FILLED)
        elif self.on_change is not None:
            await self.on_change(parent)

    async def on_minute(self) -> None:
        """Once a minute: records each working parent's market minute, sends the next child when one is done,
        cancel-replaces a child resting past the timeout, and ends parents past the horizon."""
        for parent in self.working:
            quote = await self.broker.quote(parent.instrument)
            self.minute = quote.minute
            if quote.minute != parent.recorded_minute:
                parent.minutes.append((quote.mid, quote.volume))
                parent.recorded_minute = quote.minute
            child = await self.broker.order(parent.child_id)
            if quote.minute - parent.started_minute >= self.horizon_minutes:
                if child is not None and not child.done:
                    await self.broker.cancel(parent.child_id)
                await self._finish(parent, PARTIALLY_FILLED if parent.filled else CANCELLED)
                continue
            if child is None or child.done:
                if parent.filled < parent.contracts:
                    await self._next_child(parent)
                continue
            if parent.mode == "adaptive" and quote.minute - parent.child_priced_minute >= (
                self.schedule.replace_timeout_minutes
            ):
                parent.stage += 1  # escalates: the next passive price, then across the spread
                limit = self._priced(parent, quote.mid, quote.spread)
                await self.broker.replace(parent.child_id, limit_price=limit)
                parent.replaces += 1
                parent.child_priced_minute = quote.minute
                parent.limits.append((limit, quote.mid))

    async def cancel(self, client_order_id: str) -> ParentOrder:
        """Stops working a parent: its child is cancelled, what is filled stays."""
        parent = self.orders.get(client_order_id)
        if parent is None:
            raise InvalidInputError.of("client_order_id", f"no order {client_order_id!r}")
        if not parent.done:
            child = await self.broker.order(parent.child_id)
            if child is not None and not child.done:
                await self.broker.cancel(parent.child_id)
            await self._finish(parent, PARTIALLY_FILLED if parent.filled else CANCELLED)
        return parent

    async def _finish(self, parent: ParentOrder, status: str) -> None:
        parent.status = status
        parent.completed_at = self.clock()
        if self.on_change is not None:
            await self.on_change(parent)


__all__ = ["MODES", "ExecutionEngine", "ParentOrder"]
