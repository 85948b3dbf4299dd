"""Factor crowding in the service: GetCrowding over real gRPC on the server's published history agrees with a
direct measure; the 5-minute sweep raises one CROWDING_HIGH alert naming the cluster on entering HIGH, nothing
while it stays, CROWDING_CLEARED on leaving, and counts portfolios per level in Prometheus; the job runs only in
market hours."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from allsuse import config
from allsuse.monitoring.crowding import measure
from allsuse.orchestration.schedule import MarketHours
from allsuse.server.crowding import CrowdingWatch
from allsuse.server.metrics import ServerMetrics
from allsuse.store import Store
from allsuse.v1 import (
    decision_pb2,
    market_pb2,
    market_pb2_grpc,
    monitor_pb2,
    monitor_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
)
from tests.rpc_support import TIMEOUT, bearer, money, serve

SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
END = dt.date(2024, 3, 7)
EPOCH = dt.date(1970, 1, 1)


def ts(day: dt.date, hour: int = 15) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt.datetime.combine(day, dt.time(hour, 0)))
    return t


def histories() -> dict[str, np.ndarray]:
    """300 sessions of independent random walks, one per symbol."""
    rng = np.random.default_rng(21)
    return {s: 50.0 * np.cumprod(1.0 + rng.normal(0, 0.015, 300)) for s in SYMBOLS}


def sessions(n: int) -> list[int]:
    out: list[int] = []
    day = END
    while len(out) < n:
        if day.weekday() < 5:
            out.append((day - EPOCH).days)
        day -= dt.timedelta(days=1)
    return out[::-1]


def sell_put(portfolios: portfolio_pb2_grpc.PortfolioServiceStub, md: object, pid: str, symbol: str) -> None:
    fill = portfolio_pb2.RecordFillRequest(
        portfolio_id=pid, account_id=f"{pid}/gen-1", symbol=symbol, kind="put", side="sell_to_open", strike=40.0,
        expiry="2024-03-15", quantity=1, price=money(0.5), at=ts(END),
    )  # fmt: skip
    portfolios.RecordFill(fill, metadata=md, timeout=TIMEOUT)


def test_get_crowding_and_the_sweep(tmp_path: Path) -> None:
    url = str(tmp_path / "allsuse.db")
    with Store(url) as store:
        tokens = {r: store.create_api_key(r).token for r in ("viewer", "trader", "admin")}
    closes = histories()
    days = sessions(300)
    with serve(url, auth=True) as (address, _), grpc.insecure_channel(address) as channel:
        market = market_pb2_grpc.MarketDataServiceStub(channel)
        for s, c in closes.items():
            cols = decision_pb2.BarColumns(
                days=days, open=c.tolist(), high=(c * 1.01).tolist(), low=(c * 0.99).tolist(), close=c.tolist(),
                volume=[1e6] * len(days),
            )  # fmt: skip
            market.PublishBars(market_pb2.PublishBarsRequest(symbol=s, columns=cols), metadata=bearer(tokens["admin"]))
        portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
        monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
        pid = portfolios.CreatePortfolio(
            portfolio_pb2.CreatePortfolioRequest(portfolio_id="crowd", total=money(1_000_000), at=ts(END, 9)),
            metadata=bearer(tokens["trader"]),
            timeout=TIMEOUT,
        ).portfolio_id
        request = monitor_pb2.GetCrowdingRequest(portfolio_id=pid, as_of=ts(END, 17))
        empty = monitor.GetCrowding(request, metadata=bearer(tokens["viewer"]), timeout=TIMEOUT)
        assert empty.level == "NONE" and not empty.clusters
        sell_put(portfolios, bearer(tokens["trader"]), pid, "AAA")
        one = monitor.GetCrowding(request, metadata=bearer(tokens["viewer"]), timeout=TIMEOUT)
        assert one.level == "HIGH" and one.hhi == 1.0 and list(one.crowded_cluster) == ["AAA"]
        with pytest.raises(grpc.RpcError) as err:
            monitor.GetCrowding(
                monitor_pb2.GetCrowdingRequest(portfolio_id="nope"), metadata=bearer(tokens["viewer"]), timeout=TIMEOUT
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    cfg = config.load("development", {"ALLSUSE_STORE_URL": url})
    at = dt.datetime.combine(END, dt.time(17, 0))
    with Store(url) as store:
        deps = SimpleNamespace(store=store, config=cfg, metrics=ServerMetrics())
        watch = CrowdingWatch(deps)
        (alert,) = watch.sweep(at)
        assert alert["code"] == "CROWDING_HIGH" and alert["cluster"] == ["AAA"] and alert["portfolio_id"] == pid
        assert "crowded cluster AAA" in alert["message"] and alert["severity"] == "HIGH"
        assert watch.sweep(at) == []  # still HIGH: raised once
        gauge = deps.metrics.registry.get_sample_value("allsuse_crowding_portfolios", {"level": "HIGH"})
        assert gauge == 1.0
    with serve(url, auth=True) as (address, _), grpc.insecure_channel(address) as channel:
        portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
        for s in SYMBOLS[1:]:
            sell_put(portfolios, bearer(tokens["trader"]), pid, s)
        spread = monitor_pb2_grpc.MonitorServiceStub(channel).GetCrowding(
            monitor_pb2.GetCrowdingRequest(portfolio_id=pid, as_of=ts(END, 17)),
            metadata=bearer(tokens["viewer"]),
            timeout=TIMEOUT,
        )
    # Five equal put collaterals on independent walks: HHI 0.2, five clusters of 20%, the same as measured directly.
    returns = np.column_stack([c[1:] / c[:-1] - 1.0 for c in closes.values()])  # all 299: within scenario_days
    direct = measure({s: 4000.0 for s in SYMBOLS}, returns, list(SYMBOLS), cfg.monitoring)
    assert spread.level == direct.level == "LOW"
    assert spread.hhi == pytest.approx(0.2) and spread.absorption_ratio == pytest.approx(direct.absorption_ratio)
    assert [list(c.symbols) for c in spread.clusters] == [list(c) for c in direct.clusters]
    with Store(url) as store:
        deps.store = store
        (cleared,) = watch.sweep(at)
        assert cleared["code"] == "CROWDING_CLEARED" and cleared["message"] == "crowding back to LOW"


def test_the_crowding_job_runs_every_five_minutes_of_market_hours() -> None:
    window = MarketHours(dt.timedelta(minutes=5))
    eastern = dt.timezone(dt.timedelta(hours=-5))
    before_open = dt.datetime(2024, 3, 7, 9, 0, tzinfo=eastern)
    first = window.next_slot(before_open)
    assert first == dt.datetime(2024, 3, 7, 9, 30, tzinfo=eastern)
    assert window.next_slot(first) == dt.datetime(2024, 3, 7, 9, 35, tzinfo=eastern)
    saturday = dt.datetime(2024, 3, 9, 12, 0, tzinfo=eastern)
    assert window.next_slot(saturday) == dt.datetime(2024, 3, 11, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    assert not window.allows(first, first + dt.timedelta(minutes=5))
