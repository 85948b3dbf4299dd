"""docs/grafana/allsuse.json: every metric a panel queries is one the service exports, read from a real service's
/metrics endpoint after real traffic and a run of the monitoring jobs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import numpy as np

from allsuse.server.alerting import alert_system
from allsuse.server.app import Service
from allsuse.v1 import decision_pb2, decision_pb2_grpc, market_pb2, market_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import ROOT, TIMEOUT, money, service_config

DASHBOARD = ROOT / "docs" / "grafana" / "allsuse.json"
METRIC = re.compile(r"\b(allsuse_[a-z0-9_]+)")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")
ET = ZoneInfo("America/New_York")


def queried() -> set[str]:
    """The metric names the dashboard's panels query."""
    doc = json.loads(DASHBOARD.read_text())
    names: set[str] = set()
    for panel in doc["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names.update(METRIC.findall(target["expr"]))
    return names


def exported(text: str) -> set[str]:
    """Every sample name and every declared family name of a Prometheus text exposition."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_every_metric_the_dashboard_queries_is_exported(tmp_path: Path) -> None:
    names = queried()
    assert {"allsuse_grpc_requests_total", "allsuse_decisions_total", "allsuse_alerts_total"} <= names
    days = [dt.date(2024, 3, 8) - dt.timedelta(days=k) for k in range(420)]
    days = sorted(d for d in days if d.weekday() < 5)[-260:]
    close = 50.0 * np.cumprod(1.0 + np.random.default_rng(1).normal(0, 0.01, len(days)))
    epoch = dt.date(1970, 1, 1)

    async def scenario() -> str:
        service = Service(service_config(tmp_path, ALLSUSE_METRICS_ENABLED="true", ALLSUSE_METRICS_PORT="0"))
        await service.start()
        try:
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                cols = decision_pb2.BarColumns(
                    days=[(d - epoch).days for d in days], open=close.tolist(), high=close.tolist(),
                    low=close.tolist(), close=close.tolist(), volume=[1e6] * len(days),
                )  # fmt: skip
                await market_pb2_grpc.MarketDataServiceStub(channel).PublishBars(
                    market_pb2.PublishBarsRequest(symbol="AAA", columns=cols), timeout=TIMEOUT
                )
                portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
                await portfolios.CreatePortfolio(
                    portfolio_pb2.CreatePortfolioRequest(portfolio_id="g", total=money(100_000)), timeout=TIMEOUT
                )
                fill = portfolio_pb2.RecordFillRequest(
                    portfolio_id="g", account_id="g/com-1", symbol="AAA", kind="stock", side="buy", quantity=100,
                    price=money(float(close[-1])),
                )  # fmt: skip
                await portfolios.RecordFill(fill, timeout=TIMEOUT)
                decide = decision_pb2.DecideRequest(portfolio_id="g", account_id="g/gen-1", symbol="AAA")
                decide.as_of.FromDatetime(dt.datetime.combine(days[-1], dt.time(15, 45)))
                await decision_pb2_grpc.DecisionServiceStub(channel).Decide(decide, timeout=TIMEOUT)
            slot = dt.datetime.combine(days[-1], dt.time(15, 0), tzinfo=ET)
            for job in ("monitoring-minute", "crowding", "market-tick"):
                await service.scheduler.job(job).action(slot)
            await alert_system(service.deps).raise_alert({"severity": "LOW", "code": "TEST", "message": "m"})
            assert service.metrics_endpoint is not None
            url = f"http://127.0.0.1:{service.metrics_endpoint.port}/metrics"

            def fetch() -> str:
                with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                    return str(response.read().decode())

            return await asyncio.to_thread(fetch)
        finally:
            await service.stop()

    have = exported(asyncio.run(scenario()))
    missing = {n for n in names if n not in have and not any(n.endswith(s) and n[: -len(s)] in have for s in SUFFIXES)}
    assert not missing, f"the dashboard queries metrics the service does not export: {sorted(missing)}"
