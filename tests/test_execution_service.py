"""The broker inside a real service, over real gRPC: an approved decision becomes an order worked on the paper
broker, its fills reach the portfolio through RecordFill's path (GetPortfolio shows the position), the order record
carries shortfall, VWAP/TWAP slippage and impact, the metrics export it, the broker's health is in the component
registry, and a restart on the same store places nothing again."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from allsuse.errors import InvalidInputError
from allsuse.orchestration import State
from allsuse.protocol.accounts import Portfolio
from allsuse.protocol.engine import Engine
from allsuse.protocol.trust import TrustBook
from allsuse.rules import RuleBook
from allsuse.server.app import Service
from allsuse.server.execution import BrokerComponent
from allsuse.server.portfolios import PortfolioRepository, new_stored
from allsuse.store import Store
from allsuse.v1 import decision_pb2, decision_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import TIMEOUT, green_market, money, service_config

THURSDAY = dt.date(2024, 3, 7)
FAST = {"ALLSUSE_EXECUTION_ENABLED": "true", "ALLSUSE_EXECUTION_TICK_SECONDS": "0", "ALLSUSE_EXECUTION_SEED": "3"}


async def _until(check: Any, limit: float = 60.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise TimeoutError("the condition did not hold in time")


def test_an_approved_decision_is_worked_filled_booked_and_never_placed_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        env = {**FAST, "ALLSUSE_METRICS_ENABLED": "true", "ALLSUSE_METRICS_PORT": "0"}
        service = Service(service_config(tmp_path, **env))
        await service.start()
        try:
            assert "broker" in service.registry and isinstance(service.broker, BrokerComponent)
            await service.registry.check_health()
            assert service.registry.states()["broker"] is State.RUNNING
            store = service.deps.store
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
                decisions = decision_pb2_grpc.DecisionServiceStub(channel)
                await portfolios.CreatePortfolio(
                    portfolio_pb2.CreatePortfolioRequest(portfolio_id="x", total=money(1_000_000)), timeout=TIMEOUT
                )
                req = decision_pb2.DecideRequest(
                    portfolio_id="x", account_id="x/gen-1", symbol="NVDA", market=green_market(THURSDAY)
                )
                req.as_of.FromDatetime(dt.datetime.combine(THURSDAY, dt.time(15, 45)))
                d = await decisions.Decide(req, timeout=TIMEOUT)
                assert d.action == decision_pb2.ACTION_OPEN_PUT and d.approval_status == "PENDING", d.explanation
                await service.bus.flush()
                assert store.list_orders() == []  # a pending decision is not an order
                await decisions.ApproveDecision(
                    decision_pb2.ApproveDecisionRequest(decision_id=d.decision_id, approve=True), timeout=TIMEOUT
                )

                async def finished() -> Any:
                    orders = store.list_orders("x")
                    return orders if orders and all(o.payload.get("booked") for o in orders) else None

                orders = await _until(finished)
                contracts = sum(o.contracts for o in d.orders) or d.order.contracts
                assert sum(o.payload["contracts"] for o in orders) == contracts
                for o in orders:
                    p = o.payload
                    assert p["decision_id"] == d.decision_id and p["status"] == "filled" and p["side"] == "SELL"
                    assert p["filled_contracts"] == p["contracts"] and p["urgency"] == "normal"
                    for key in ("shortfall_bps", "vwap_slippage_bps", "twap_slippage_bps", "impact_bps"):
                        assert isinstance(p[key], float), (key, p)
                    assert p["arrival_mid"] > 0 and p["avg_price"] > 0 and p["commission"] > 0
                    assert p["completed_at"] >= p["submitted_at"]
                got = await portfolios.GetPortfolio(
                    portfolio_pb2.GetPortfolioRequest(portfolio_id="x"), timeout=TIMEOUT
                )
                puts = [p for p in got.positions if p.symbol == "NVDA" and p.kind == "put"]
                assert sum(-p.quantity for p in puts) == contracts
                assert {p.strike for p in puts} == {d.order.strike}
                approved = store.get_decision(d.decision_id)
                assert approved is not None and approved.payload["approval_status"] == "APPROVED"
            assert service.metrics_endpoint is not None
            url = f"http://127.0.0.1:{service.metrics_endpoint.port}/metrics"

            def fetch() -> str:
                with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                    return str(response.read().decode())

            text = await asyncio.to_thread(fetch)
            assert f'allsuse_orders_total{{status="filled",urgency="normal"}} {float(len(orders))}' in text
            assert f"allsuse_order_shortfall_bps_count {float(len(orders))}" in text
            assert "allsuse_order_fills_total" in text and "allsuse_order_impact_bps_count" in text
            before = {o.id: (o.updated_at, o.payload) for o in store.list_orders()}
            positions = len(got.positions)
        finally:
            await service.stop()

        # A restart on the same store: the reconciliation finds the decision's orders stored and places nothing.
        again = Service(service_config(tmp_path, **FAST))
        await again.start()
        try:
            broker = again.broker
            assert isinstance(broker, BrokerComponent) and broker.engine is not None
            assert broker.engine.orders == {}
            assert await broker.place(d.decision_id) == []
            again.bus.publish("decisions", {"decision_id": d.decision_id})
            await again.bus.flush()
            assert broker.engine.orders == {} and broker.broker is not None and await broker.broker.positions() == {}
            assert {o.id: (o.updated_at, o.payload) for o in again.deps.store.list_orders()} == before
            async with grpc.aio.insecure_channel(again.server.address) as channel:
                got = await portfolio_pb2_grpc.PortfolioServiceStub(channel).GetPortfolio(
                    portfolio_pb2.GetPortfolioRequest(portfolio_id="x"), timeout=TIMEOUT
                )
            assert len(got.positions) == positions
        finally:
            await again.stop()

    asyncio.run(asyncio.wait_for(scenario(), timeout=240))


async def _approved_decision(service: Service, pid: str) -> decision_pb2.Decision:
    """A portfolio, a Decide (PENDING OPEN_PUT) and its approval, over gRPC."""
    async with grpc.aio.insecure_channel(service.server.address) as channel:
        await portfolio_pb2_grpc.PortfolioServiceStub(channel).CreatePortfolio(
            portfolio_pb2.CreatePortfolioRequest(portfolio_id=pid, total=money(1_000_000)), timeout=TIMEOUT
        )
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        req = decision_pb2.DecideRequest(
            portfolio_id=pid, account_id=f"{pid}/gen-1", symbol="NVDA", market=green_market(THURSDAY)
        )
        req.as_of.FromDatetime(dt.datetime.combine(THURSDAY, dt.time(15, 45)))
        d = await decisions.Decide(req, timeout=TIMEOUT)
        await decisions.ApproveDecision(
            decision_pb2.ApproveDecisionRequest(decision_id=d.decision_id, approve=True), timeout=TIMEOUT
        )
        return d


def test_a_working_order_resumes_after_a_restart_for_what_is_left(tmp_path: Path) -> None:
    async def scenario() -> None:
        # One simulated minute a minute: the order is placed and stays working when the service stops.
        slow = Service(service_config(tmp_path, **{**FAST, "ALLSUSE_EXECUTION_TICK_SECONDS": "60"}))
        await slow.start()
        try:
            d = await _approved_decision(slow, "r")
            await slow.bus.flush()
            (order,) = slow.deps.store.list_orders("r")
            assert order.payload["status"] == "working" and order.payload["filled_contracts"] == 0
            arrival = order.payload["arrival_mid"]
        finally:
            await slow.stop()
        fast = Service(service_config(tmp_path, **FAST))
        await fast.start()
        try:
            store = fast.deps.store

            async def booked() -> Any:
                orders = store.list_orders("r")
                return orders if orders and orders[0].payload.get("booked") else None

            (done,) = await _until(booked)
            p = done.payload
            assert p["status"] == "filled" and p["filled_contracts"] == p["contracts"] == d.order.contracts
            assert p["arrival_mid"] == arrival and p["resumed"] is True
            async with grpc.aio.insecure_channel(fast.server.address) as channel:
                got = await portfolio_pb2_grpc.PortfolioServiceStub(channel).GetPortfolio(
                    portfolio_pb2.GetPortfolioRequest(portfolio_id="r"), timeout=TIMEOUT
                )
            assert sum(-p.quantity for p in got.positions if p.kind == "put") == d.order.contracts
            # The broker's health: RUNNING while its driver runs, FAULTED (the service only degraded) once it died.
            broker = fast.broker
            assert isinstance(broker, BrokerComponent) and broker._driver is not None
            broker._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await broker._driver
            await fast.registry.check_health()
            assert fast.registry.states()["broker"] is State.FAULTED
            assert fast.registry.service.state is State.DEGRADED
        finally:
            await fast.stop()

    asyncio.run(asyncio.wait_for(scenario(), timeout=240))


def test_without_execution_enabled_there_is_no_broker(tmp_path: Path) -> None:
    service = Service(service_config(tmp_path))
    assert "broker" not in service.registry and service.broker is None


def test_bad_execution_config_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as err:
        service_config(tmp_path, ALLSUSE_EXECUTION_PARTICIPATION_EMERGENCY="0.05")
    assert err.value.field == "execution.participation_risk_reduction"
    with pytest.raises(InvalidInputError) as err:
        service_config(tmp_path, ALLSUSE_EXECUTION_IMPACT_COEFFICIENT="-1")
    assert err.value.field == "execution.impact_coefficient"
    with pytest.raises(InvalidInputError) as err:
        service_config(tmp_path, ALLSUSE_EXECUTION_BROKER="ibkr")
    assert err.value.field == "execution.broker"


def test_a_decision_stored_automatic_is_placed_without_approval(tmp_path: Path) -> None:
    # A portfolio whose entries are trusted (trust 1.0 >= 0.9): Decide stores the decision AUTOMATIC and publishes it.
    store = Store(tmp_path / "allsuse.db")
    stored = new_stored(Portfolio.create("a", Decimal(1_000_000), dt.datetime(2024, 2, 1, 9, 30)), None)
    engine = Engine(rules=RuleBook.load(), trust=TrustBook())
    engine.trust.scores["entry"] = 1.0
    stored.engine_state = engine.export_state()
    PortfolioRepository(store).save(stored, actor="test")
    store.close()

    async def scenario() -> None:
        service = Service(service_config(tmp_path, **FAST))
        await service.start()
        try:
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                req = decision_pb2.DecideRequest(
                    portfolio_id="a", account_id="a/gen-1", symbol="NVDA", market=green_market(THURSDAY)
                )
                req.as_of.FromDatetime(dt.datetime.combine(THURSDAY, dt.time(15, 45)))
                d = await decision_pb2_grpc.DecisionServiceStub(channel).Decide(req, timeout=TIMEOUT)
            assert d.approval_status == "AUTOMATIC", (d.approval_status, d.confidence, d.explanation)

            async def booked() -> Any:
                orders = service.deps.store.list_orders("a")
                return orders if orders and all(o.payload.get("booked") for o in orders) else None

            orders = await _until(booked)
            assert {o.payload["decision_id"] for o in orders} == {d.decision_id}
        finally:
            await service.stop()

    asyncio.run(asyncio.wait_for(scenario(), timeout=240))


def test_an_approved_roll_buys_back_the_held_put_then_sells_the_new_one(tmp_path: Path) -> None:
    """A level-2 roll through the running service: the buy-back order names the held put (its strike and expiry),
    the sale names the new one, both are filled and booked, and the portfolio ends holding only the new put."""
    wednesday = dt.date(2024, 3, 6)

    async def scenario() -> None:
        service = Service(service_config(tmp_path, **FAST))
        await service.start()
        try:
            store = service.deps.store
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
                decisions = decision_pb2_grpc.DecisionServiceStub(channel)
                await portfolios.CreatePortfolio(
                    portfolio_pb2.CreatePortfolioRequest(portfolio_id="r", total=money(1_000_000)), timeout=TIMEOUT
                )
                market = green_market(wednesday)
                spot = market.symbols[0].bars[-1].close
                held_strike = round(spot * (1 + 2.5 * 0.008), 1)  # 2.5 ATR(5) above spot: a level-2 excursion
                fill = portfolio_pb2.RecordFillRequest(
                    portfolio_id="r", account_id="r/gen-1", symbol="NVDA", kind="put", side="sell_to_open",
                    strike=held_strike, expiry="2024-03-08", quantity=2, price=money(1.5),
                )  # fmt: skip
                fill.at.FromDatetime(dt.datetime(2024, 3, 4, 10, 0))
                await portfolios.RecordFill(fill, timeout=TIMEOUT)
                req = decision_pb2.DecideRequest(portfolio_id="r", account_id="r/gen-1", symbol="NVDA", market=market)
                req.as_of.FromDatetime(dt.datetime.combine(wednesday, dt.time(15, 45)))
                d = await decisions.Decide(req, timeout=TIMEOUT)
                assert d.action == decision_pb2.ACTION_ROLL and d.approval_status == "PENDING", d.explanation
                await decisions.ApproveDecision(
                    decision_pb2.ApproveDecisionRequest(decision_id=d.decision_id, approve=True), timeout=TIMEOUT
                )

                async def finished() -> Any:
                    orders = {o.payload["client_order_id"]: o.payload for o in store.list_orders("r")}
                    return orders if len(orders) == 2 and all(p.get("booked") for p in orders.values()) else None

                orders = await _until(finished)
                buy_back, sale = orders[f"{d.decision_id}-0c"], orders[f"{d.decision_id}-0"]
                assert (buy_back["side"], buy_back["strike"], buy_back["expiry"]) == ("BUY", held_strike, "2024-03-08")
                assert (sale["side"], sale["strike"], sale["expiry"]) == ("SELL", d.order.strike, d.order.expiry)
                for p in (buy_back, sale):
                    assert p["status"] == "filled" and p["filled_contracts"] == 2 and p["urgency"] == "normal", p
                # The legs execute at once (either may finish first); the new put is booked after the buy-back.
                assert buy_back["booked_at"] <= sale["booked_at"]
                got = await portfolios.GetPortfolio(
                    portfolio_pb2.GetPortfolioRequest(portfolio_id="r"), timeout=TIMEOUT
                )
                assert [(p.kind, p.quantity, p.strike, p.expiry) for p in got.positions] == [
                    ("put", -2.0, d.order.strike, d.order.expiry)
                ]
        finally:
            await service.stop()

    asyncio.run(asyncio.wait_for(scenario(), timeout=240))
