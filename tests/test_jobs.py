"""The service's scheduled jobs, run in a real in-process service on a temporary SQLite store."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc

from allsuse.server.app import Service
from allsuse.v1 import decision_pb2, decision_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import TIMEOUT, money, service_config

ET = ZoneInfo("America/New_York")


def test_jobs_have_their_windows_and_do_their_work(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = Service(service_config(tmp_path))
        names = {job.name for job in service.scheduler.jobs}
        assert {"market-tick", "refresh-gauges", "end-of-day", "nightly", "health-check"} <= names
        await service.start()
        try:
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                await portfolio_pb2_grpc.PortfolioServiceStub(channel).CreatePortfolio(
                    portfolio_pb2.CreatePortfolioRequest(portfolio_id="jobs", total=money(100_000)), timeout=TIMEOUT
                )
                decisions = decision_pb2_grpc.DecisionServiceStub(channel)
                request = decision_pb2.ClassifyWeekRequest(position="SHORT_PUT", move_pct=-2.0)
                first = await decisions.ClassifyWeek(request, timeout=TIMEOUT)
                second = await decisions.ClassifyWeek(request, timeout=TIMEOUT)
                assert first == second and first.code == "P-AWL"
            stats = service.deps.response_cache.stats()
            assert (stats["hits"], stats["misses"]) == (1, 1)

            open_slot = dt.datetime(2024, 3, 7, 10, 31, tzinfo=ET)
            await service.scheduler.job("market-tick").action(open_slot)
            assert service.metrics.market_open._value.get() == 1
            await service.scheduler.job("market-tick").action(dt.datetime(2024, 3, 9, 10, 31, tzinfo=ET))
            assert service.metrics.market_open._value.get() == 0  # a Saturday
            await service.scheduler.job("refresh-gauges").action(open_slot)
            assert service.metrics.cache_hit_rate._value.get() == 0.5

            await service.scheduler.job("end-of-day").action(dt.datetime(2024, 3, 7, 16, 15, tzinfo=ET))
            alerts = service.deps.store.list_alerts(portfolio_id="jobs")
            assert [a.payload["code"] for a in alerts] == ["EOD_REPORT"]
            assert "Daily report for jobs" in alerts[0].payload["message"]

            await service.scheduler.job("nightly").action(dt.datetime(2024, 3, 8, 2, 0, tzinfo=ET))
            backups = list((tmp_path / "backups").glob("allsuse-*.db"))
            assert [b.name for b in backups] == ["allsuse-20240308.db"]
            assert all(a.payload.get("code") != "AUDIT_BROKEN" for a in service.deps.store.list_alerts())
        finally:
            await service.stop()

    asyncio.run(scenario())
