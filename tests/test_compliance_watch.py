"""Continuous compliance (allsuse.monitoring.compliance) on hand-built books: each check fires on the case built
for it and stays quiet otherwise; the service's ListViolations over real gRPC and the minute sweep, which raises
an alert once per new violation and resolves it when the violation clears."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path

import grpc
import numpy as np
import pytest

from allsuse.monitoring.compliance import check
from allsuse.protocol import Bars, Engine, MarketData, Portfolio, Position
from allsuse.server.app import Service
from allsuse.server.compliance import compliance_watch, run_sweep
from allsuse.v1 import (
    decision_pb2,
    market_pb2,
    market_pb2_grpc,
    monitor_pb2,
    monitor_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
)
from tests.rpc_support import TIMEOUT, money, service_config

TODAY = dt.date(2024, 3, 7)
EXPIRY = dt.date(2024, 3, 15)


def market(vix: float | None = None, same: bool = False) -> MarketData:
    days = tuple(TODAY - dt.timedelta(days=k) for k in range(299, -1, -1))
    rng = np.random.default_rng(4)
    walks = {s: 50.0 * np.cumprod(1.0 + rng.normal(0, 0.01, 300)) for s in ("AAA", "BBB", "CCC")}
    if same:
        walks["BBB"] = walks["AAA"] * 1.0
    bars = {s: Bars(days, c, c, c, c, np.full(300, 1e6)) for s, c in walks.items()}
    sectors = {"AAA": "tech", "BBB": "tech", "CCC": "energy"}
    return MarketData(bars=bars, iv={s: 0.3 for s in walks}, vix=vix, rate=0.01, sectors=sectors)


def put(
    pid: str, account: str, symbol: str, contracts: float, strike: float, band: tuple[float, float] | None = None
) -> Position:
    return Position(pid, account, symbol, "put", -contracts, TODAY, strike, EXPIRY, 1.0, band=band)


def codes(found: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {v.key: v.severity for v in found}


def test_a_modest_book_is_clean_and_each_check_fires_on_its_case() -> None:
    engine, m = Engine(), market()
    p = Portfolio.create("c", 1_000_000, dt.datetime(2024, 1, 2, 9, 30))
    spot = m.bars["AAA"].last_close
    p.positions["a"] = put("a", "c/gen-1", "AAA", 10, round(spot * 0.95, 1))
    assert check(engine, p, m, TODAY) == []

    # One symbol's collateral far above 25% of the Gen-Acc's equity (and above its cash: the buffer goes too).
    gen_equity = float(p.accounts["c/gen-1"].balance)
    contracts = round(gen_equity * 0.98 / (spot * 0.95 * 100))
    p.positions["a"] = put("a", "c/gen-1", "AAA", contracts, round(spot * 0.95, 1))
    found = codes(check(engine, p, m, TODAY))
    assert found == {"SYMBOL_CONCENTRATION:c/gen-1:AAA": "HIGH", "BUFFER:c/gen-1": "HIGH"}
    del p.positions["a"]

    # Tech in every account: 22% AAA and 22% BBB each (independent symbols, each under its 25% cap), so 44% of the
    # portfolio in one sector, above 40%.
    tech = []
    for account in ("c/gen-1", "c/rev-1", "c/com-1"):
        cash = float(p.accounts[account].balance)
        for s in ("AAA", "BBB"):
            strike = round(m.bars[s].last_close * 0.9, 1)
            pid = f"{account}-{s}"
            p.positions[pid] = put(pid, account, s, round(cash * 0.22 / (strike * 100)), strike)
            tech.append(pid)
    found = codes(check(engine, p, m, TODAY))
    assert found == {"SECTOR_CONCENTRATION:c:tech": "MEDIUM"}
    for pid in tech:
        del p.positions[pid]

    # Two symbols moving as one: each 20% of the Rev-Acc's equity, 40% together as one tail-dependent group.
    twins = market(same=True)
    rev = float(p.accounts["c/rev-1"].balance)
    for pid, s in (("x", "AAA"), ("y", "BBB")):
        strike = round(twins.bars[s].last_close * 0.9, 1)
        p.positions[pid] = put(pid, "c/rev-1", s, round(rev * 0.2 / (strike * 100)), strike)
    found = codes(check(engine, p, twins, TODAY))
    assert found == {"GROUP_CONCENTRATION:c/rev-1:AAA+BBB": "HIGH"}
    del p.positions["x"], p.positions["y"]

    # A put opened at 30-40 delta that the market has pushed deep in the money.
    p.positions["d"] = put("d", "c/com-1", "CCC", 1, round(m.bars["CCC"].last_close * 1.2, 1), band=(30.0, 40.0))
    (drift,) = check(engine, p, m, TODAY)
    assert (
        drift.key == "DELTA_DRIFT:c/com-1:d" and drift.severity == "MEDIUM" and drift.value > 40 and drift.limit == 40
    )
    del p.positions["d"]

    # A drawdown past the second threshold (10%): level 2, MEDIUM; REDUCING makes it HIGH.
    gen = p.accounts["c/gen-1"]
    gen.peak = gen.balance * Decimal("1.12")
    (dd,) = check(engine, p, m, TODAY)
    assert dd.key == "DRAWDOWN:c/gen-1" and dd.severity == "MEDIUM" and dd.value == pytest.approx(0.12 / 1.12)
    gen.state = "REDUCING"
    assert check(engine, p, m, TODAY)[0].severity == "HIGH"
    gen.peak, gen.state = gen.balance, "ACTIVE"

    # The VIX breakers: hedged at 50, reducing at 65, halted at 80.
    assert check(engine, p, market(vix=30), TODAY) == []
    for vix, severity in ((55, "MEDIUM"), (70, "HIGH"), (85, "CRITICAL")):
        (b,) = check(engine, p, market(vix=vix), TODAY)
        assert (b.key, b.severity) == ("BREAKER:c", severity)


def test_list_violations_and_the_minute_sweep(tmp_path: Path) -> None:
    m = market()
    epoch = dt.date(1970, 1, 1)
    at = dt.datetime.combine(TODAY, dt.time(15, 0))

    async def scenario() -> None:
        service = Service(service_config(tmp_path))
        await service.start()
        try:
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                feed = market_pb2_grpc.MarketDataServiceStub(channel)
                for s, b in m.bars.items():
                    cols = decision_pb2.BarColumns(
                        days=[(d - epoch).days for d in b.dates], open=b.open.tolist(), high=b.high.tolist(),
                        low=b.low.tolist(), close=b.close.tolist(), volume=b.volume.tolist(),
                    )  # fmt: skip
                    await feed.PublishBars(market_pb2.PublishBarsRequest(symbol=s, columns=cols), timeout=TIMEOUT)
                portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
                await portfolios.CreatePortfolio(
                    portfolio_pb2.CreatePortfolioRequest(portfolio_id="w", total=money(100_000)), timeout=TIMEOUT
                )
                monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
                when = monitor_pb2.ListViolationsRequest(portfolio_id="w")
                when.as_of.FromDatetime(at)
                assert list((await monitor.ListViolations(when, timeout=TIMEOUT)).violations) == []
                assert await run_sweep(service.deps, at) == []
                strike = round(m.bars["AAA"].last_close * 0.95, 1)
                fill = portfolio_pb2.RecordFillRequest(
                    portfolio_id="w", account_id="w/gen-1", symbol="AAA", kind="put", side="sell_to_open",
                    strike=strike, expiry=EXPIRY.isoformat(), quantity=5, price=money(0.5),
                )  # fmt: skip
                fill.at.FromDatetime(at)
                opened = await portfolios.RecordFill(fill, timeout=TIMEOUT)
                listed = await monitor.ListViolations(when, timeout=TIMEOUT)
                keys = {v.key: v for v in listed.violations}
                assert keys["SYMBOL_CONCENTRATION:w/gen-1:AAA"].severity == "HIGH"
                assert keys["SYMBOL_CONCENTRATION:w/gen-1:AAA"].check == "SYMBOL_CONCENTRATION"
                # The same violations as a direct check of the stored book.
                from allsuse.server.portfolios import PortfolioRepository

                stored = PortfolioRepository(service.deps.store).load("w").portfolio
                assert set(keys) == {v.key for v in check(Engine(), stored, m, TODAY)}
                raised = await run_sweep(service.deps, at)
                assert {a["code"] for a in raised} >= {"COMPLIANCE_SYMBOL_CONCENTRATION"}
                assert {a["violation"] for a in raised} == set(keys)
                assert await run_sweep(service.deps, at) == []  # still there: nothing new
                first = next(a for a in raised if a["violation"] == "SYMBOL_CONCENTRATION:w/gen-1:AAA")
                # Bought back: the violations clear; one resolved alert each, the originals marked resolved.
                back = portfolio_pb2.RecordFillRequest(
                    portfolio_id="w", account_id="w/gen-1", symbol="AAA", kind="put", side="buy_to_close",
                    strike=strike, expiry=EXPIRY.isoformat(), quantity=5, price=money(0.4),
                    position_id=opened.position.position_id,
                )  # fmt: skip
                back.at.FromDatetime(at)
                await portfolios.RecordFill(back, timeout=TIMEOUT)
                cleared = await run_sweep(service.deps, at)
                assert {a["code"] for a in cleared} == {"COMPLIANCE_RESOLVED"} and len(cleared) == len(raised)
                record = service.deps.store.get_alert(first["alert_id"])
                assert record is not None and record.columns["status"] == "resolved"
                assert compliance_watch(service.deps).current["w"] == {}
        finally:
            await service.stop()

    asyncio.run(scenario())
