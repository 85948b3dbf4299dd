"""Passive fills on the paper market (issue 13 item 2): the fill intensity of a resting limit order,
lambda(delta) = A exp(-k delta / h) (Avellaneda and Stoikov 2008), its fill probability per minute, the adverse
selection that comes with it, and the adaptive engine posting passively first by urgency and escalating to a
marketable limit before the horizon (docs/execution.md, "Passive fills")."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from allsuse import config
from allsuse.errors import InvalidInputError
from allsuse.execution import (
    BrokerOrder,
    ExecutionEngine,
    Instrument,
    MarketParams,
    PaperBroker,
    ParentOrder,
    Schedule,
)
from allsuse.execution.model import (
    adverse_drift,
    fill_intensity,
    fill_probability,
    permanent_share,
    spread_share,
)

T = TypeVar("T")

PUT = Instrument("NVDA", "put", 95.0, "2024-03-15", mid=1.50, spot=100.0, iv=0.45, delta=0.30)
CHEAP = Instrument("NVDA", "put", 80.0, "2024-03-15", mid=0.06, spot=100.0, iv=0.45, delta=0.02)
RATES = {"normal": 0.1, "risk_reduction": 0.25, "emergency": 0.5}
FLAT = {"option_daily_volume": 3900.0, "profile_curvature": 0.0}  # 10 contracts a minute


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(fn(), timeout=30))


def test_fill_intensity_probability_and_adverse_drift_against_hand_computed_values() -> None:
    # A = 1 a minute, k = 1 a half spread: at mid 1, at the near touch e^-1, one half spread outside it e^-2.
    assert fill_intensity(0.0, 0.02, 1.0, 1.0) == pytest.approx(1.0, rel=1e-12)
    assert fill_intensity(0.02, 0.02, 1.0, 1.0) == pytest.approx(0.36787944117144233, rel=1e-12)
    assert fill_intensity(0.04, 0.02, 1.0, 1.0) == pytest.approx(0.1353352832366127, rel=1e-12)
    # A = 0.5, k = 1.5, delta = 2 half spreads: 0.5 e^-3 = 0.024893534183931972.
    assert fill_intensity(0.10, 0.05, 0.5, 1.5) == pytest.approx(0.024893534183931972, rel=1e-12)
    # Inside the spread past mid (delta < 0) more likely than at mid: e^0.5.
    assert fill_intensity(-0.01, 0.02, 1.0, 1.0) == pytest.approx(1.6487212707001282, rel=1e-12)
    # Poisson: at least one fill in a minute, 1 - e^-lambda.
    assert fill_probability(1.0) == pytest.approx(0.6321205588285577, rel=1e-12)
    assert fill_probability(0.0) == 0.0
    # A fill moves the mid by a = alpha h = 0.5 x 0.02 = 0.01 (log) against it; unfilled (pi = 0.5) it moves away
    # by ln((1 - 0.5 e^-0.01) / 0.5) = ln(2 - e^-0.01) = 0.0099009892901..., so 0.5 e^-0.01 + 0.5 e^b = 1.
    b = adverse_drift(0.5, 0.02, 0.5)
    assert b == pytest.approx(math.log(2 - math.exp(-0.01)), rel=1e-12)
    assert b == pytest.approx(0.0099009892901, rel=1e-9)
    assert 0.5 * math.exp(-0.01) + 0.5 * math.exp(b) == pytest.approx(1.0, rel=1e-15)
    assert adverse_drift(0.5, 0.02, 0.0) == 0.0
    for bad in (-0.1, float("nan")):
        with pytest.raises(InvalidInputError) as err:
            fill_intensity(0.0, 0.02, bad, 1.0)
        assert err.value.field == "passive_fill_intensity"
    with pytest.raises(InvalidInputError) as err:
        fill_intensity(0.0, 0.0, 1.0, 1.0)
    assert err.value.field == "half_spread"


def test_params_and_config_validate_the_passive_keys() -> None:
    for name in ("passive_fill_intensity", "passive_fill_decay", "adverse_selection_share"):
        with pytest.raises(InvalidInputError) as err:
            MarketParams(**{name: -1.0})
        assert err.value.field == name
    with pytest.raises(InvalidInputError) as err:
        Schedule(RATES, passive_steps={"normal": 1, "risk_reduction": 2})
    assert err.value.field == "passive_steps_risk_reduction"
    with pytest.raises(InvalidInputError) as err:
        config.load("development", environ={"ALLSUSE_EXECUTION_PASSIVE_FILL_DECAY": "-1"})
    assert err.value.field == "execution.passive_fill_decay"
    with pytest.raises(InvalidInputError) as err:
        config.load(
            "development",
            environ={
                "ALLSUSE_EXECUTION_PASSIVE_STEPS_NORMAL": "0",
                "ALLSUSE_EXECUTION_PASSIVE_STEPS_RISK_REDUCTION": "1",
            },
        )
    assert err.value.field == "execution.passive_steps_risk_reduction"
    cfg = config.load("development", environ={}).execution
    assert (cfg.passive_fill_intensity, cfg.passive_fill_decay, cfg.adverse_selection_share) == (1.0, 1.0, 0.5)
    assert (cfg.passive_steps_normal, cfg.passive_steps_risk_reduction) == (2, 1)


def test_a_resting_limit_at_mid_fills_over_time_in_expectation_at_its_limit() -> None:
    async def go() -> None:
        params = MarketParams(**FLAT)
        broker = PaperBroker(params, seed=3, noise=False)
        state = await broker.submit(BrokerOrder("p1", PUT, "SELL", 20, limit_price=1.5, max_participation=0.2))
        (fill,) = await broker.advance()
        # pi = 1 - e^-1 of a chunk of 2 (20% of 10): 1.264 expected, 1 whole contract filled at the limit.
        pi = 1 - math.exp(-1.0)
        assert fill.quantity == 1 and fill.price == 1.5 and fill.impact_share == 0.0 and fill.passive
        sigma = broker._books[PUT.key].sigma_daily
        moved = 1.5 * (1 - permanent_share(1, 3900.0, sigma, 0.314))
        # The 19 contracts still to trade bear alpha h (2 pi) between them: the mid moves away from the sale (down).
        drift = 0.5 * spread_share("put", 0.45, 100.0, 95.0, params) / 2 * 2 * pi / 19
        assert (await broker.quote(PUT)).mid == pytest.approx(moved * math.exp(-drift), rel=1e-12)
        for _ in range(60):
            if state.done:
                break
            await broker.advance()
        assert state.status == "filled" and state.filled == 20
        assert state.avg_price == 1.5  # every contract at its limit: the spread captured
        # The expected run's drift is taken back when the order ends: only permanent impact stays.
        assert (await broker.quote(PUT)).mid == pytest.approx(
            1.5 * (1 - permanent_share(1, 3900.0, sigma, 0.314)) ** 20, rel=1e-3
        )

    run(go)


def test_without_intensity_a_passive_limit_never_fills_and_noise_draws_are_seeded() -> None:
    async def go(seed: int, intensity: float) -> list[tuple[int, float, bool]]:
        broker = PaperBroker(MarketParams(**FLAT, passive_fill_intensity=intensity), seed=seed)
        state = await broker.submit(BrokerOrder("p", PUT, "BUY", 10, limit_price=1.48, max_participation=0.2))
        fills = await broker.advance(40)
        assert all(f.price == 1.48 and f.passive for f in fills)
        assert state.filled == sum(f.quantity for f in fills)
        return [(f.quantity, f.mid, f.passive) for f in fills]

    assert run(lambda: go(5, 0.0)) == []
    first = run(lambda: go(5, 1.0))
    assert first and first == run(lambda: go(5, 1.0)) and first != run(lambda: go(6, 1.0))


async def _work(engine: ExecutionEngine, broker: PaperBroker, parent: ParentOrder, limit: int = 2000) -> ParentOrder:
    await engine.submit(parent)
    for _ in range(limit):
        if parent.done:
            break
        for fill in await broker.advance():
            await engine.on_fill(fill)
        await engine.on_minute()
    return parent


def _marketable(side: str, limit: float, mid: float, spread: float) -> bool:
    return (limit - mid if side == "BUY" else mid - limit) >= spread / 2 * (1 - 1e-9)


def test_an_emergency_never_posts_passively_a_normal_order_does_first() -> None:
    async def go(urgency: str) -> tuple[ParentOrder, float]:
        # Expected costs (the mid moves only by impact): a marketable limit stays marketable, so every fill of an
        # order that never posts passively crosses the spread.
        broker = PaperBroker(MarketParams(**FLAT), seed=21, noise=False)
        engine = ExecutionEngine(broker, Schedule(RATES, slice_contracts=10))
        spread = (await broker.quote(PUT)).spread
        return await _work(engine, broker, ParentOrder("e", PUT, "BUY", 30, urgency=urgency)), spread

    p, spread = run(lambda: go("emergency"))
    assert p.status == "filled" and p.payload()["passive_contracts"] == 0
    assert all(_marketable("BUY", limit, mid, spread) for limit, mid in p.limits)
    normal, _ = run(lambda: go("normal"))
    assert normal.status == "filled" and normal.payload()["passive_contracts"] > 0
    limit, mid = normal.limits[0]
    assert limit == pytest.approx(mid - spread / 2)  # the near touch first
    risk, _ = run(lambda: go("risk_reduction"))
    assert risk.limits[0][0] == pytest.approx(risk.limits[0][1])  # risk reduction starts at mid


def test_escalation_reaches_a_marketable_limit_before_the_horizon() -> None:
    async def go(horizon: int) -> tuple[ParentOrder, float]:
        # Nothing fills passively (intensity 0): only escalation can fill the order.
        params = MarketParams(option_daily_volume=39_000.0, profile_curvature=0.0, passive_fill_intensity=0.0)
        broker = PaperBroker(params, seed=2, noise=False)
        sched = Schedule(RATES, replace_timeout_minutes=5)
        engine = ExecutionEngine(broker, sched, horizon_minutes=horizon)
        spread = (await broker.quote(PUT)).spread
        return await _work(engine, broker, ParentOrder("h", PUT, "SELL", 3, urgency="normal")), spread

    p, spread = run(lambda: go(12))
    assert p.status == "filled" and p.children == 1 and p.replaces == 2  # near touch, mid, then marketable
    assert [_marketable("SELL", lim, mid, spread) for lim, mid in p.limits] == [False, False, True]
    assert len(p.minutes) <= 12
    # A horizon too short for both passive steps: one (at mid), then marketable, still inside the horizon.
    short, _ = run(lambda: go(8))
    assert short.status == "filled" and len(short.limits) == 2
    assert short.limits[0][0] == pytest.approx(short.limits[0][1])
    # A horizon shorter than one step: marketable at once.
    at_once, _ = run(lambda: go(4))
    assert at_once.status == "filled" and _marketable("SELL", *at_once.limits[0], spread)


def test_passive_limits_stay_inside_the_collar_and_child_ids_are_unchanged() -> None:
    async def go(urgency: str) -> tuple[ParentOrder, PaperBroker]:
        broker = PaperBroker(MarketParams(**FLAT), seed=9)
        engine = ExecutionEngine(broker, Schedule(RATES, slice_contracts=5, collar=0.05))
        parent = ParentOrder("c", CHEAP, "BUY", 12, urgency=urgency)
        again = await engine.submit(parent)
        assert await engine.submit(ParentOrder("c", CHEAP, "BUY", 99, urgency=urgency)) is again
        return await _work(engine, broker, parent, limit=400), broker

    for urgency in ("normal", "risk_reduction"):
        p, broker = run(lambda u=urgency: go(u))  # type: ignore[misc]
        # A one-tick spread of a 6-cent option is 8% of its mid each side: the passive limit is held in the collar.
        assert all(abs(limit - mid) <= 0.05 * mid for limit, mid in p.limits)
        assert p.limits[0][0] == pytest.approx(p.limits[0][1] * (1 - 0.05 * 0.999))
        assert sorted(broker._orders) == [f"c.{n}" for n in range(1, p.children + 1)]
        assert p.children == 3  # 5 + 5 + 2: every re-pricing is a replace of the same child id
