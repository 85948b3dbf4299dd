"""The paper broker's order lifecycle (submit, partial fills, cancel, replace, idempotent client order ids), its
repeatability under a seed, and the execution engine's schedule by urgency, slicing, collar and measurements."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from allsuse.errors import InvalidInputError
from allsuse.execution import (
    Broker,
    BrokerOrder,
    ExecutionEngine,
    Fill,
    Instrument,
    MarketParams,
    PaperBroker,
    ParentOrder,
    Schedule,
    collar_params,
    collar_share,
    urgency_of,
)
from allsuse.execution.model import daily_volatility, permanent_share, spread_share

T = TypeVar("T")

PUT = Instrument("NVDA", "put", 95.0, "2024-03-15", mid=1.50, spot=100.0, iv=0.45, delta=0.30)
STOCK = Instrument("NVDA", "stock", 0.0, "", mid=100.0, spot=100.0, iv=0.45)
RATES = {"normal": 0.1, "risk_reduction": 0.25, "emergency": 0.5}


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(fn(), timeout=30))


def test_paper_broker_is_a_broker() -> None:
    assert isinstance(PaperBroker(), Broker)


def test_submit_fills_in_part_under_a_participation_cap_then_completes() -> None:
    async def go() -> None:
        broker = PaperBroker(MarketParams(option_daily_volume=3900.0, profile_curvature=0.0), seed=1)
        # Flat profile: 10 contracts a minute trade; 20% participation -> 2 a minute (a limit far away: never binds).
        order = BrokerOrder("o1", PUT, "SELL", 7, limit_price=0.5, max_participation=0.2)
        state = await broker.submit(order)
        assert state.status == "working" and state.filled == 0
        fills = await broker.advance()
        assert [f.quantity for f in fills] == [2] and state.status == "working" and state.filled == 2
        fills += await broker.advance(3)
        assert [f.quantity for f in fills] == [2, 2, 2, 1] and state.status == "filled" and state.filled == 7
        assert await broker.positions() == {PUT.key: -7}
        assert state.avg_price == pytest.approx(sum(f.price * f.quantity for f in fills) / 7, rel=1e-12)

    run(go)


def test_fill_price_is_mid_minus_half_spread_minus_impact() -> None:
    async def go() -> None:
        params = MarketParams(option_daily_volume=3900.0, profile_curvature=0.0, permanent_impact_coefficient=0.0)
        broker = PaperBroker(params, seed=3)
        await broker.submit(BrokerOrder("o1", PUT, "SELL", 4, limit_price=1.0))
        (fill,) = await broker.advance()
        half = spread_share("put", 0.45, 100.0, 95.0, params) / 2
        impact = 0.5 * daily_volatility("put", 0.45, 100.0, 1.5, 0.3) * math.sqrt(4 / 3900.0)
        assert fill.impact_share == pytest.approx(impact, rel=1e-12)
        assert fill.price == pytest.approx(fill.mid * (1 - half - impact), rel=1e-12)

    run(go)


def test_a_fill_moves_the_mid_by_its_linear_permanent_impact() -> None:
    async def go() -> None:
        params = MarketParams(option_daily_volume=3900.0, profile_curvature=0.0)
        quiet = PaperBroker(params, seed=3, noise=False)
        await quiet.submit(BrokerOrder("o1", PUT, "BUY", 6, limit_price=1.6))
        (fill,) = await quiet.advance()
        assert fill.mid == 1.5  # no noise: the mid moved only by impact
        sigma = daily_volatility("put", 0.45, 100.0, 1.5, 0.3)
        moved = permanent_share(6, 3900.0, sigma, 0.314)
        assert moved == pytest.approx(0.314 * sigma * 6 / 3900.0, rel=1e-12)
        assert (await quiet.quote(PUT)).mid == pytest.approx(1.5 * (1 + moved), rel=1e-12)

    run(go)


def test_a_tight_limit_fills_only_what_it_allows_and_cancel_keeps_the_part() -> None:
    async def go() -> None:
        params = MarketParams(option_daily_volume=3900.0, profile_curvature=0.0)
        broker = PaperBroker(params, seed=5)
        # A buy limit just past the ask: room for a little impact only -> a partial fill.
        state = await broker.submit(BrokerOrder("b1", PUT, "BUY", 500, limit_price=1.5 * 1.035))
        await broker.advance()
        assert 0 < state.filled < 500 and state.status == "working"
        cancelled = await broker.cancel("b1")
        assert cancelled.status == "partially_filled"
        filled = state.filled
        await broker.advance(5)
        assert state.filled == filled  # nothing after the cancel
        nothing = await broker.submit(BrokerOrder("b2", PUT, "BUY", 5, limit_price=0.5))
        await broker.advance()
        assert nothing.filled == 0
        assert (await broker.cancel("b2")).status == "cancelled"

    run(go)


def test_replace_moves_the_limit_and_keeps_the_id() -> None:
    async def go() -> None:
        broker = PaperBroker(MarketParams(option_daily_volume=3900.0), seed=7)
        state = await broker.submit(BrokerOrder("r1", PUT, "BUY", 3, limit_price=0.5))
        await broker.advance()
        assert state.filled == 0
        replaced = await broker.replace("r1", limit_price=1.5 * 1.05)
        assert replaced is state and state.replaced == 1 and state.order.limit_price == pytest.approx(1.575)
        await broker.advance()
        assert state.status == "filled"
        with pytest.raises(InvalidInputError) as err:
            await broker.replace("r1", limit_price=2.0)
        assert err.value.field == "client_order_id"
        with pytest.raises(InvalidInputError) as err:
            await broker.submit(BrokerOrder("bad", PUT, "HOLD", 3, limit_price=1.0))
        assert err.value.field == "side"

    run(go)


def test_the_same_client_order_id_never_doubles_an_order() -> None:
    async def go() -> None:
        broker = PaperBroker(MarketParams(option_daily_volume=3900.0), seed=9)
        order = BrokerOrder("dup", STOCK, "BUY", 100, limit_price=101.0)
        first = await broker.submit(order)
        again = await broker.submit(order)
        other = await broker.submit(BrokerOrder("dup", STOCK, "BUY", 900, limit_price=101.0))
        assert first is again is other and first.order.quantity == 100
        await broker.advance(3)
        assert await broker.positions() == {"NVDA": 100}

    run(go)


def test_the_same_seed_repeats_the_same_fills() -> None:
    async def once(seed: int) -> list[Fill]:
        broker = PaperBroker(seed=seed)
        await broker.submit(BrokerOrder("s", PUT, "SELL", 30, limit_price=1.4, max_participation=0.1))
        return await broker.advance(60)

    assert run(lambda: once(11)) == run(lambda: once(11))
    assert run(lambda: once(11)) != run(lambda: once(12))


def test_urgency_from_the_decision() -> None:
    assert urgency_of({"action": "OPEN_PUT", "trust_kind": "entry", "account_state": "ACTIVE"}) == "normal"
    assert urgency_of({"action": "ROLL", "trust_kind": "roll", "account_state": "ACTIVE"}) == "normal"
    assert urgency_of({"action": "REDUCE", "trust_kind": "risk_reduction"}) == "risk_reduction"
    assert urgency_of({"action": "CLOSE", "trust_kind": "exit"}) == "risk_reduction"
    assert urgency_of({"action": "OPEN_CALL", "trust_kind": "entry", "account_state": "REDUCING"}) == "risk_reduction"
    assert urgency_of({"action": "CLOSE", "trust_kind": "emergency"}) == "emergency"


def test_collar_comes_from_r13_and_limits_stay_inside_it() -> None:
    collar = collar_share()
    assert collar == 0.05  # rules.yaml's R13_PRICE_COLLAR max_deviation_share
    s = Schedule(RATES, collar=collar)
    for urgency in RATES:
        for side in ("BUY", "SELL"):
            for spread in (0.001, 0.04, 0.2, 5.0):
                limit = s.limit_price(side, 2.0, spread, urgency)
                assert s.within_collar(limit, 2.0), (urgency, side, spread, limit)
                assert (limit > 2.0) == (side == "BUY")
    # A normal order reaches one spread past mid, risk reduction 1.5, an emergency the collar's edge.
    assert s.limit_price("BUY", 2.0, 0.02, "normal") == pytest.approx(2.02)
    assert s.limit_price("SELL", 2.0, 0.02, "risk_reduction") == pytest.approx(1.97)
    assert s.limit_price("SELL", 2.0, 0.02, "emergency") == pytest.approx(2.0 * (1 - 0.05 * 0.999))
    assert s.slices(23) == [10, 10, 3]
    assert s.slices(2350, "stock") == [1000, 1000, 350]  # a contract's worth of shares is 100
    # R13 lets a buy-back sit at its min_tick (closing a worthless option) even past the collar of a tiny mid.
    share, tick = collar_params()
    assert (share, tick) == (0.05, 0.05)
    b = Schedule(RATES, collar=share, buy_back_tick=tick)
    assert b.limit_price("BUY", 0.02, 0.01, "normal", closing=True) == 0.05
    assert b.within_collar(0.05, 0.02, closing=True) and not b.within_collar(0.05, 0.02)
    assert b.limit_price("BUY", 0.02, 0.01, "normal") == pytest.approx(0.02 * (1 + 0.05 * 0.999))
    with pytest.raises(InvalidInputError) as err:
        Schedule({**RATES, "emergency": 0.2})
    assert err.value.field == "participation_risk_reduction"
    with pytest.raises(InvalidInputError) as err:
        Schedule({**RATES, "normal": 0.0})
    assert err.value.field == "participation_normal"


async def _work(
    engine: ExecutionEngine, broker: PaperBroker, parents: list[ParentOrder], limit: int = 2000
) -> list[Any]:
    for p in parents:
        await engine.submit(p)
    for _ in range(limit):
        if not engine.working:
            break
        for fill in await broker.advance():
            await engine.on_fill(fill)
        await engine.on_minute()
    return parents


def _parent(cid: str, urgency: str, contracts: int = 40, mode: str = "adaptive") -> ParentOrder:
    return ParentOrder(cid, PUT, "BUY", contracts, urgency=urgency, mode=mode)


def test_emergencies_and_risk_reduction_finish_sooner_than_normal_orders() -> None:
    async def go() -> dict[str, int]:
        took: dict[str, int] = {}
        for urgency in ("normal", "risk_reduction", "emergency"):
            broker = PaperBroker(seed=21)
            engine = ExecutionEngine(broker, Schedule(RATES, slice_contracts=10))
            (p,) = await _work(engine, broker, [_parent("p", urgency)])
            assert p.status == "filled" and p.filled == 40 and p.children >= 4
            took[urgency] = len(p.minutes)
        return took

    took = run(go)
    assert took["emergency"] < took["risk_reduction"] < took["normal"], took


def test_every_child_limit_is_inside_the_collar_and_stale_children_are_replaced() -> None:
    async def go() -> ParentOrder:
        broker = PaperBroker(seed=4)
        engine = ExecutionEngine(broker, Schedule(RATES, slice_contracts=5, replace_timeout_minutes=2))
        (p,) = await _work(engine, broker, [ParentOrder("c", PUT, "SELL", 30, urgency="normal")])
        return p

    p = run(go)
    assert p.status == "filled" and p.children == 6
    assert p.replaces > 0  # children at 10% of a thin market rest past 2 minutes
    assert all(abs(limit - mid) <= 0.05 * mid for limit, mid in p.limits)


def test_the_order_record_measures_shortfall_vwap_twap_and_impact() -> None:
    async def go() -> ParentOrder:
        changes: list[str] = []

        async def changed(parent: ParentOrder) -> None:
            changes.append(parent.status)

        broker = PaperBroker(seed=8)
        engine = ExecutionEngine(broker, Schedule(RATES), on_change=changed, commission_per_contract=0.65)
        (p,) = await _work(engine, broker, [_parent("m", "normal", 12)])
        assert changes[-1] == "filled" and changes.count("filled") == 1
        return p

    p = run(go)
    rec = p.payload()
    for key in (
        "client_order_id", "decision_id", "portfolio_id", "account_id", "symbol", "side", "kind", "strike", "expiry",
        "contracts", "filled_contracts", "avg_price", "arrival_mid", "urgency", "status", "submitted_at",
        "completed_at", "shortfall_bps", "vwap_slippage_bps", "twap_slippage_bps", "impact_bps", "commission",
    ):  # fmt: skip
        assert key in rec, key
    assert rec["filled_contracts"] == 12 and rec["commission"] == pytest.approx(12 * 0.65)
    assert rec["shortfall_bps"] == pytest.approx((p.avg_price - p.arrival_mid) / p.arrival_mid * 1e4, abs=1e-3)
    vwap = sum(m * v for m, v in p.minutes) / sum(v for _, v in p.minutes)
    twap = sum(m for m, _ in p.minutes) / len(p.minutes)
    assert rec["vwap_slippage_bps"] == pytest.approx((p.avg_price - vwap) / vwap * 1e4, abs=1e-3)
    assert rec["twap_slippage_bps"] == pytest.approx((p.avg_price - twap) / twap * 1e4, abs=1e-3)
    assert rec["impact_bps"] > 0


def test_a_fill_delivered_twice_is_booked_once() -> None:
    async def go() -> None:
        broker = PaperBroker(seed=2)
        engine = ExecutionEngine(broker, Schedule(RATES))
        p = await engine.submit(_parent("f", "emergency", 3, mode="immediate"))
        fills = await broker.advance()
        for fill in fills + fills:
            await engine.on_fill(fill)
        assert p.filled == 3 and p.status == "filled"
        again = await engine.submit(_parent("f", "emergency", 3, mode="immediate"))
        assert again is p and p.children == 1

    run(go)


def test_adaptive_pays_less_impact_than_immediate_on_a_large_order() -> None:
    async def go() -> tuple[ParentOrder, ParentOrder]:
        out = []
        for mode in ("adaptive", "immediate"):
            broker = PaperBroker(seed=13)
            engine = ExecutionEngine(broker, Schedule(RATES))
            (p,) = await _work(engine, broker, [_parent(mode, "normal", 50, mode=mode)])
            out.append(p)
        return out[0], out[1]

    adaptive, immediate = run(go)
    assert adaptive.filled == immediate.filled == 50
    assert adaptive.payload()["impact_bps"] < immediate.payload()["impact_bps"] / 2


def test_the_fills_stream_yields_each_fill_in_order() -> None:
    async def go() -> list[Fill]:
        broker = PaperBroker(MarketParams(option_daily_volume=3900.0, profile_curvature=0.0), seed=6)
        stream = broker.fills()
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)  # the stream is listening from here on
        await broker.submit(BrokerOrder("s1", PUT, "SELL", 4, limit_price=0.5, max_participation=0.2))
        fills = await broker.advance(2)
        got = [await asyncio.wait_for(first, 5), await asyncio.wait_for(stream.__anext__(), 5)]
        assert got == fills and [f.quantity for f in got] == [2, 2]
        await stream.aclose()  # type: ignore[attr-defined]
        return got

    run(go)
