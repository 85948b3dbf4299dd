"""Real-time metrics (allsuse.server.performance): marks stored per day and account, the 17 metrics of the stored
series and the ES agree with direct calls, GetMetrics over real gRPC carries them, the Prometheus series stay
within monitoring.metrics_gauge_portfolios; the nightly upkeep prunes old marks and optimizes the store (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import grpc
import numpy as np
import pytest

from allsuse import config, risk
from allsuse.protocol import Bars, Engine, MarketData
from allsuse.server.app import Service
from allsuse.server.jobs import maintain
from allsuse.server.performance import performance_watch
from allsuse.server.portfolios import PortfolioRepository
from allsuse.store import Store
from allsuse.store import equity as marks
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

EPOCH = dt.date(1970, 1, 1)
END = dt.date(2024, 3, 8)


def sessions(n: int) -> list[dt.date]:
    out: list[dt.date] = []
    day = END
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day -= dt.timedelta(days=1)
    return out[::-1]


def test_marks_metrics_es_and_get_metrics(tmp_path: Path) -> None:
    days = sessions(300)
    rng = np.random.default_rng(8)
    close = 60.0 * np.cumprod(1.0 + rng.normal(0.0005, 0.012, 300))

    async def scenario() -> None:
        service = Service(service_config(tmp_path, ALLSUSE_MONITORING_METRICS_GAUGE_PORTFOLIOS="1"))
        await service.start()
        try:
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                cols = decision_pb2.BarColumns(
                    days=[(d - EPOCH).days for d in days], open=close.tolist(), high=close.tolist(),
                    low=close.tolist(), close=close.tolist(), volume=[1e6] * 300,
                )  # fmt: skip
                await market_pb2_grpc.MarketDataServiceStub(channel).PublishBars(
                    market_pb2.PublishBarsRequest(symbol="AAA", columns=cols), timeout=TIMEOUT
                )
                portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
                for pid in ("m1", "m2"):
                    await portfolios.CreatePortfolio(
                        portfolio_pb2.CreatePortfolioRequest(portfolio_id=pid, total=money(100_000)), timeout=TIMEOUT
                    )
                start = days[-10]
                fill = portfolio_pb2.RecordFillRequest(
                    portfolio_id="m1", account_id="m1/com-1", symbol="AAA", kind="stock", side="buy",
                    quantity=200, price=money(float(close[-10])),
                )  # fmt: skip
                fill.at.FromDatetime(dt.datetime.combine(start, dt.time(10, 0)))
                await portfolios.RecordFill(fill, timeout=TIMEOUT)
                watch = performance_watch(service.deps)
                for day in days[-10:]:  # ten sessions, marked at 15:59
                    measured = watch.sweep(dt.datetime.combine(day, dt.time(15, 59)))
                    assert {m.portfolio_id for m in measured} == {"m1", "m2"} and len(measured) == 8
                store = service.deps.store
                series = store.read(lambda c: marks.read_marks(c, "m1", "m1/com-1"))
                assert [d for d, _ in series] == [(d - EPOCH).days for d in days[-10:]]
                portfolio = PortfolioRepository(store).load("m1").portfolio
                m = MarketData(bars={"AAA": Bars(tuple(days), close, close, close, close, np.full(300, 1e6))},
                               iv={"AAA": 0.2})  # fmt: skip
                com = portfolio.accounts["m1/com-1"]
                (value,), _ = Engine().equities(portfolio, [com], m, days[-1])
                assert series[-1][1] == pytest.approx(value, rel=1e-12)
                equity = np.array([e for _, e in series])
                expected = risk.metrics(equity[1:] / equity[:-1] - 1.0)
                latest = {(x.portfolio_id, x.account_id): x for x in watch.snapshot()}
                got = latest[("m1", "m1/com-1")]
                assert got.days == 10 and set(got.metrics) == set(risk.METRIC_NAMES)
                for name, v in expected.items():
                    assert got.metrics[name] == pytest.approx(v, nan_ok=True), name
                assert got.es > 0 and latest[("m1", "m1/gen-1")].es == 0.0  # gen holds nothing
                # The portfolio row: every account's equity together.
                assert latest[("m1", "")].equity == pytest.approx(
                    sum(x.equity for (pid, acc), x in latest.items() if pid == "m1" and acc), rel=1e-12
                )
                reply = await monitor_pb2_grpc.MonitorServiceStub(channel).GetMetrics(
                    monitor_pb2.GetMetricsRequest(portfolio_id="m1"), timeout=TIMEOUT
                )
                rows = {a.account_id: a for a in reply.accounts}
                assert set(rows) == {"", "m1/gen-1", "m1/rev-1", "m1/com-1"}
                assert rows["m1/com-1"].metrics["sharpe_ratio"] == pytest.approx(expected["sharpe_ratio"])
                assert rows["m1/com-1"].es == pytest.approx(got.es) and rows["m1/com-1"].days == 10
                # Gauges for the first portfolio by id only (metrics_gauge_portfolios = 1).
                labelled = {
                    s.labels["portfolio"]
                    for f in service.metrics.registry.collect()
                    if f.name == "allsuse_account_metric"
                    for s in f.samples
                }
                assert labelled == {"m1"}
                sample = service.metrics.registry.get_sample_value
                assert sample(
                    "allsuse_account_metric", {"portfolio": "m1", "account": "m1/com-1", "metric": "equity"}
                ) == pytest.approx(got.equity)
        finally:
            await service.stop()

    asyncio.run(scenario())


def test_nightly_upkeep_prunes_old_marks_and_optimizes(store_url: str) -> None:
    cfg = config.load("development", {"ALLSUSE_MONITORING_METRICS_RETENTION_DAYS": "30"})
    today = dt.date(2024, 3, 8)
    with Store(store_url) as store:
        rows = [("p", "", (today - EPOCH).days - k, 1000.0 + k) for k in range(60)]
        store.write(lambda tx: marks.put_marks(tx, rows))
        store.write(lambda tx: marks.put_marks(tx, [("p", "", (today - EPOCH).days, 999.0)]))  # rewritten
        deps = type("Deps", (), {"store": store, "config": cfg})()
        pruned, ran = maintain(deps, today)  # type: ignore[arg-type]
        assert pruned == 29 and ran in ("ANALYZE; VACUUM", "VACUUM (ANALYZE)")
        kept = store.read(lambda c: marks.read_marks(c, "p"))
        assert len(kept) == 31 and kept[0][0] == (today - EPOCH).days - 30 and kept[-1][1] == 999.0
