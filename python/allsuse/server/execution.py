"""The broker as a service component: approved decisions become orders, worked adaptively on the broker, stored in
the orders table, and their fills booked into the portfolio through RecordFill's own code (docs/execution.md).

`BrokerComponent` (registered by server/app.py when `execution.enabled`) subscribes to the bus topic "decisions"
(published by the DecisionService for a decision stored AUTOMATIC and for one approved by ApproveDecision). Each
leg of the decision's order becomes a parent order whose client order id is derived from the decision
(`<decision_id>-<leg>`), stored once in the orders table before it is sent: an event seen twice, or the start-up
reconciliation after a restart, finds the stored order and places nothing again. A parent's fills are booked when
it ends (filled, or cancelled with a part filled) as one RecordFill at the average price, through
PortfolioServicer._fill in the portfolio's turn with an idempotency key derived from the order, so a crash between
the booking and the order's update books nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import itertools
import logging
import math
from decimal import Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Gauge, Histogram

from allsuse.execution import ExecutionEngine, Instrument, PaperBroker, ParentOrder
from allsuse.execution.broker import FILLED, PARTIALLY_FILLED, WORKING
from allsuse.execution.schedule import urgency_of
from allsuse.execution.settings import market_params, schedule
from allsuse.orchestration import State
from allsuse.orchestration.bus import Event, Subscription
from allsuse.server.app import ServiceDeps
from allsuse.server.errors import NotFoundError
from allsuse.server.portfolios import PortfolioRepository
from allsuse.store import market as stored_market
from allsuse.store.records import Record
from allsuse.v1 import common_pb2, portfolio_pb2

log = logging.getLogger("allsuse.server.execution")

TOPIC = "decisions"
EXECUTABLE = ("AUTOMATIC", "APPROVED")
EPOCH = dt.date(1970, 1, 1)
SHORTFALL_BUCKETS = (-100.0, -25.0, -10.0, 0.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)


class ExecutionMetrics:
    """Prometheus collectors of orders, fills and execution quality (on the service's registry)."""

    def __init__(self, deps: ServiceDeps) -> None:
        registry = deps.metrics.registry
        self.orders = Counter(
            "allsuse_orders", "Orders by final status and urgency.", ["status", "urgency"], registry=registry
        )
        self.fills = Counter("allsuse_order_fills", "Fills received from the broker.", registry=registry)
        self.filled_contracts = Counter(
            "allsuse_order_filled_contracts", "Contracts (shares for stock) filled.", registry=registry
        )
        self.working = Gauge("allsuse_orders_working", "Orders being worked now.", registry=registry)
        self.shortfall = Histogram(
            "allsuse_order_shortfall_bps",
            "Implementation shortfall of finished orders against the arrival mid, in basis points.",
            buckets=SHORTFALL_BUCKETS,
            registry=registry,
        )
        self.impact = Histogram(
            "allsuse_order_impact_bps",
            "Market impact paid by finished orders, in basis points.",
            buckets=(1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0),
            registry=registry,
        )


def _timestamp(iso: str) -> Timestamp:
    t = Timestamp()
    when = dt.datetime.fromisoformat(iso)
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    t.FromDatetime(when)
    return t


class BrokerComponent:
    """The broker, the execution engine and their driver as one registry component named "broker"."""

    name = "broker"
    depends_on = ("store", "events")
    critical = False  # without execution the service still decides; its health says so

    def __init__(self, deps: ServiceDeps) -> None:
        from allsuse.server.portfolio import PortfolioServicer

        self.deps = deps
        cfg = deps.config.execution
        self.cfg = cfg
        self.params = market_params(cfg)
        self.schedule = schedule(cfg)
        self.metrics = ExecutionMetrics(deps)
        # RecordFill's code path (not a copy): fills are booked by PortfolioServicer._fill in the portfolio's turn.
        self.portfolio = PortfolioServicer(deps)
        self.broker: PaperBroker | None = None
        self.engine: ExecutionEngine | None = None
        self._subscription: Subscription | None = None
        self._driver: asyncio.Task[None] | None = None
        self._failure = ""
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()  # set when an order is placed: the idle driver moves the market again

    # --- lifecycle --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Builds the paper broker and the engine, resumes stored working orders, places the orders of approved
        decisions that have none yet, subscribes to "decisions" and starts the market driver."""
        self.broker = PaperBroker(self.params, seed=self.cfg.seed)
        self.engine = ExecutionEngine(
            self.broker,
            self.schedule,
            commission_per_contract=self.cfg.commission_per_contract,
            commission_per_share=self.cfg.commission_per_share,
            horizon_minutes=self.cfg.horizon_minutes,
            on_change=self._changed,
        )
        await self._resume()
        await self._reconcile()
        self._subscription = self.deps.bus.subscribe(TOPIC, self._on_event, name="broker-decisions")
        self._driver = asyncio.get_running_loop().create_task(self._drive(), name="broker-driver")

    async def stop(self) -> None:
        """Stops the driver and the subscription; working orders stay stored as working and resume on start."""
        if self._subscription is not None:
            await self._subscription.close(timeout=2.0)
            self._subscription = None
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None

    async def health(self) -> State:
        """FAULTED when the market driver died; DEGRADED after an order could not be stored or booked."""
        if self._driver is None or self._driver.done():
            return State.FAULTED
        return State.DEGRADED if self._failure else State.RUNNING

    # --- the driver ---------------------------------------------------------------------------------------------
    async def _drive(self) -> None:
        """One simulated minute per `execution.tick_seconds`: the paper market moves, fills are booked, the engine
        sends, replaces and ends children."""
        assert self.broker is not None and self.engine is not None
        while True:
            self.metrics.working.set(len(self.engine.working))
            if not self.engine.working:
                # Idle: the paper market waits for an order (its minutes pass only while one is worked).
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                continue
            async with self._lock:
                for fill in await self.broker.advance():
                    self.metrics.fills.inc()
                    self.metrics.filled_contracts.inc(fill.quantity)
                    await self.engine.on_fill(fill)
                await self.engine.on_minute()
            await asyncio.sleep(self.cfg.tick_seconds)

    # --- decisions become orders ------------------------------------------------------------------------------
    async def _on_event(self, event: Event) -> None:
        payload = event.payload if isinstance(event.payload, dict) else {}
        decision_id = str(payload.get("decision_id") or "")
        if decision_id:
            await self.place(decision_id)

    async def place(self, decision_id: str) -> list[str]:
        """Places the orders of an executable decision (AUTOMATIC or APPROVED) that are not stored yet; returns the
        client order ids placed now (none for a decision placed before)."""
        store = self.deps.store
        record = await asyncio.to_thread(store.get_decision, decision_id)
        if record is None:
            return []
        decision = dict(record.payload)
        if decision.get("approval_status") not in EXECUTABLE or not decision.get("order"):
            return []
        placed: list[str] = []
        async with self._lock:
            for parent in await asyncio.to_thread(self._parents, decision):
                stored = await asyncio.to_thread(store.put_order, parent.client_order_id, self._payload(parent))
                if stored.replayed:
                    continue  # placed before (an event seen twice, or a restart): never a second order
                assert self.engine is not None
                await self.engine.submit(parent)
                placed.append(parent.client_order_id)
                self._wake.set()
        return placed

    def _parents(self, decision: dict[str, Any]) -> list[ParentOrder]:
        """The decision's legs as parent orders, on the market of its symbol at its time (see parents_of)."""
        spot, iv, source = self._market(str(decision["symbol"]), str(decision.get("as_of", "")))
        return parents_of(decision, spot, iv, source, self._held(decision))

    def _held(self, decision: dict[str, Any]) -> tuple[float, str] | None:
        """(strike, expiry) of the position a decision acts on, from the stored portfolio; None when it names none
        or it is no longer held."""
        position_id = str(decision.get("position_id") or "")
        if not position_id:
            return None
        try:
            portfolio = PortfolioRepository(self.deps.store).load(str(decision["portfolio_id"])).portfolio
        except NotFoundError:
            return None
        position = portfolio.positions.get(position_id)
        if position is None:
            return None
        return float(position.strike), position.expiry.isoformat() if position.expiry else ""

    def _market(self, symbol: str, as_of: str) -> tuple[float | None, float, str]:
        """(spot, IV, where they came from) of `symbol` at the decision's time from the stored market history: the
        last close, the stored IV or else 21 closes' realised volatility; `execution.fallback_iv` without history."""
        try:
            day = (dt.datetime.fromisoformat(as_of).date() - EPOCH).days
        except ValueError:
            day = (dt.date.today() - EPOCH).days
        store = self.deps.store
        bars = store.read(lambda conn: stored_market.read_bars(conn, symbol, day - 60, day))
        quotes = store.read(lambda conn: stored_market.read_quotes(conn, symbol))
        spot = bars[-1][4] if bars else None
        ivs = [float(q["iv"]) for d, q in quotes if d <= day and q.get("iv")]
        if ivs:
            return spot, float(ivs[-1]), "history"
        closes = [b[4] for b in bars[-22:] if b[4] > 0]
        if len(closes) >= 11:
            rets = [math.log(b / a) for a, b in itertools.pairwise(closes)]
            mean = sum(rets) / len(rets)
            vol = math.sqrt(sum((r - mean) ** 2 for r in rets) / (len(rets) - 1) * 252)
            if vol > 0:
                return spot, vol, "history"
        return spot, self.cfg.fallback_iv, "fallback"

    # --- restart --------------------------------------------------------------------------------------------------
    async def _resume(self) -> None:
        """Stored working orders are worked again for what is left (the paper market does not survive a restart);
        finished orders not yet booked are booked (idempotently)."""
        store = self.deps.store
        for record in await asyncio.to_thread(store.list_orders, None, None, 100_000, status=WORKING):
            parent = self._parent_of(record)
            if parent is None:
                continue
            assert self.engine is not None
            await self.engine.submit(parent)
        for status in (FILLED, PARTIALLY_FILLED):
            for record in await asyncio.to_thread(store.list_orders, None, None, 100_000, status=status):
                if not record.payload.get("booked"):
                    parent = self._parent_of(record)
                    if parent is not None:
                        parent.status = status
                        await self._book(parent)

    def _parent_of(self, record: Record) -> ParentOrder | None:
        p = dict(record.payload)
        inst = p.get("instrument")
        if not isinstance(inst, dict):
            return None
        instrument = Instrument(**inst)
        filled = int(p.get("filled_contracts") or 0)
        kept = ("fill_side", "position_id", "market_source", "booked", "booked_at", "after")
        extra: dict[str, Any] = {k: p[k] for k in kept if k in p}
        extra["resumed"] = True
        parent = ParentOrder(
            str(p["client_order_id"]),
            instrument,
            str(p["side"]),
            int(p["contracts"]),
            urgency=str(p.get("urgency") or "normal"),
            closing=p.get("fill_side") == "buy_to_close",
            decision_id=str(p.get("decision_id") or ""),
            portfolio_id=str(p.get("portfolio_id") or ""),
            account_id=str(p.get("account_id") or ""),
            extra=extra,
            submitted_at=str(p.get("submitted_at") or ""),
        )
        parent.filled = filled
        parent.notional = float(p.get("avg_price") or 0.0) * filled
        parent.commission = float(p.get("commission") or 0.0)
        parent.impact_paid = float(p.get("impact_bps") or 0.0) / 1e4 * filled
        parent.passive_filled = int(p.get("passive_contracts") or 0)
        parent.arrival_mid = float(p.get("arrival_mid") or instrument.mid)
        return parent

    async def _reconcile(self) -> None:
        """Approved decisions whose orders were never placed (the service stopped before the event was handled)
        get them now; a decision with stored orders gets nothing."""
        n = self.cfg.reconcile_decisions
        if n <= 0:
            return
        store = self.deps.store
        for status in ("automatic", "approved"):
            latest = await asyncio.to_thread(
                functools.partial(store.list_decisions, status=status, limit=n, latest=True)
            )
            for record in reversed(latest):  # oldest first, as they were decided
                await self.place(record.id)

    # --- orders change ------------------------------------------------------------------------------------------
    async def _changed(self, parent: ParentOrder) -> None:
        """Stores the order as it is now; a finished order is measured in the metrics and booked."""
        payload = self._payload(parent)
        try:
            await asyncio.to_thread(self.deps.store.update_order, parent.client_order_id, payload)
        except Exception as exc:  # the order goes on; health says the store missed a change
            self._failure = f"order {parent.client_order_id} not stored: {exc}"
            log.warning("%s", self._failure)
            return
        if parent.done:
            self.metrics.orders.labels(parent.status, parent.urgency).inc()
            if payload.get("shortfall_bps") is not None:
                self.metrics.shortfall.observe(payload["shortfall_bps"])
            if payload.get("impact_bps") is not None:
                self.metrics.impact.observe(payload["impact_bps"])
            if parent.filled > 0 and not parent.extra.get("booked"):
                await self._book(parent)

    def _payload(self, parent: ParentOrder) -> dict[str, Any]:
        i = parent.instrument
        return {
            **parent.payload(),
            "instrument": {
                "symbol": i.symbol,
                "kind": i.kind,
                "strike": i.strike,
                "expiry": i.expiry,
                "mid": i.mid,
                "spot": i.spot,
                "iv": i.iv,
                "delta": i.delta,
            },
        }

    async def _book(self, parent: ParentOrder) -> None:
        """Books a finished order's fills as one RecordFill (PortfolioServicer._fill, in the portfolio's turn). The
        new option of a roll waits until the buy-back of the held one is booked (its cash secures the new put)."""
        after = str(parent.extra.get("after") or "")
        if after:
            first = await asyncio.to_thread(self.deps.store.get_order, after)
            if first is None or not first.payload.get("booked"):
                return  # booked when the buy-back is (below), or on start
        await self._book_now(parent)
        if parent.extra.get("booked") and self.engine is not None:
            for other in self.engine.orders.values():
                waiting = other.extra.get("after") == parent.client_order_id and not other.extra.get("booked")
                if waiting and other.done and other.filled > 0:
                    await self._book_now(other)

    async def _book_now(self, parent: ParentOrder) -> None:
        side = str(parent.extra.get("fill_side") or "")
        i = parent.instrument
        position_id = str(parent.extra.get("position_id") or "")
        if side == "sell" and not position_id:
            position_id = await asyncio.to_thread(self._stock_position, parent)
        request = portfolio_pb2.RecordFillRequest(
            portfolio_id=parent.portfolio_id,
            account_id=parent.account_id,
            decision_id=parent.decision_id,
            symbol=i.symbol,
            kind=i.kind,
            side=side,
            strike=i.strike if i.kind != "stock" else 0.0,
            expiry=i.expiry,
            quantity=float(parent.filled),
            price=_money(parent.avg_price),
            at=_timestamp(parent.completed_at or dt.datetime.now(dt.UTC).isoformat()),
            position_id=position_id,
            idempotency_key=f"execution/{parent.client_order_id}",
        )
        try:
            await self.portfolio._in_turn(parent.portfolio_id, self.portfolio._fill, request)
        except Exception as exc:
            parent.extra["booking_error"] = str(exc)[:500]
            self._failure = f"order {parent.client_order_id} not booked: {exc}"
            log.warning("%s", self._failure)
        else:
            parent.extra["booked"] = True
            # When the fills reached the portfolio: the order a roll's legs are booked in (its legs execute at once).
            parent.extra["booked_at"] = dt.datetime.now(dt.UTC).isoformat()
            parent.extra.pop("booking_error", None)
        try:
            await asyncio.to_thread(self.deps.store.update_order, parent.client_order_id, self._payload(parent))
        except Exception as exc:
            self._failure = f"order {parent.client_order_id} not stored: {exc}"

    def _stock_position(self, parent: ParentOrder) -> str:
        from allsuse.server.portfolios import PortfolioRepository

        stored = PortfolioRepository(self.deps.store).load(parent.portfolio_id)
        for p in stored.portfolio.positions.values():
            if p.account_id == parent.account_id and p.symbol == parent.instrument.symbol and p.kind == "stock":
                return p.id
        return ""


def parents_of(
    decision: dict[str, Any], spot: float | None, iv: float, source: str, held: tuple[float, str] | None = None
) -> list[ParentOrder]:
    """A stored decision's legs as parent orders (docs/execution.md, "Decisions become orders"): a roll is a buy-back
    of the held option (`held`: its strike and expiry; the new leg's strike without them) and a sale of the new one;
    each slice of a sliced order is a leg (the engine slices again by its own size). `spot` None: the strike (the
    price for stock) stands in for it."""
    legs = decision.get("orders") or [decision["order"]]
    urgency = urgency_of(decision)
    out: list[ParentOrder] = []
    for n, leg in enumerate(legs):
        contracts = int(leg["contracts"])
        if contracts < 1:
            continue
        kind = str(leg["kind"])
        mid = float(leg["limit_price"])
        strike = float(leg.get("strike") or 0.0)
        delta = min(1.0, abs(float(leg.get("delta") or 100.0)) / 100.0)
        under = spot if spot is not None else (strike if kind != "stock" else mid)
        common = {
            "decision_id": decision["decision_id"],
            "portfolio_id": decision["portfolio_id"],
            "account_id": decision["account_id"],
            "urgency": urgency,
        }
        side = str(leg["side"])
        if side == "roll":
            net = float(leg["premium"]) / (100.0 * contracts)
            close_mid = max(0.01, mid - net)
            old_strike, old_expiry = held if held is not None else (strike, "")
            old = Instrument(decision["symbol"], kind, old_strike, old_expiry, close_mid, under, iv, delta)
            held_id = str(decision.get("position_id") or "")
            closing = {"fill_side": "buy_to_close", "position_id": held_id, "market_source": source}
            out.append(
                ParentOrder(
                    f"{decision['decision_id']}-{n}c", old, "BUY", contracts, closing=True, **common, extra=closing
                )
            )
            side = "sell_to_open"
            after = f"{decision['decision_id']}-{n}c"
        else:
            after = ""
        instrument = Instrument(decision["symbol"], kind, strike, str(leg.get("expiry") or ""), mid, under, iv,
                                delta if kind != "stock" else 1.0)  # fmt: skip
        fill_side = {"sell_to_open": "sell_to_open", "buy_to_close": "buy_to_close", "sell_to_close": "sell",
                     "buy_to_open": "buy"}.get(side, side)  # fmt: skip
        broker_side = "SELL" if fill_side in ("sell_to_open", "sell") else "BUY"
        position = str(decision.get("position_id") or "") if fill_side == "buy_to_close" else ""
        out.append(
            ParentOrder(
                f"{decision['decision_id']}-{n}",
                instrument,
                broker_side,
                contracts,
                closing=fill_side == "buy_to_close",
                **common,
                extra={"fill_side": fill_side, "position_id": position, "market_source": source}
                | ({"after": after} if after else {}),
            )
        )
    return out


def _money(price: float) -> common_pb2.Money:
    """A price per share as Money (cents rounded half-even)."""
    cents = int((Decimal(str(price)) * 100).quantize(Decimal(1)))
    return common_pb2.Money(units=cents // 100, cents=cents % 100)


__all__ = ["EXECUTABLE", "TOPIC", "BrokerComponent", "ExecutionMetrics", "parents_of"]
