"""The service over one simulated trading day (Monday 2018-02-05, the day the VIX doubled), on a controllable clock
that the scheduler follows, with a market feed from ../shared/data: the history up to the Friday before, and the
day's bar published through MarketDataService at the close. Compliance, metrics, crowding, the alerts and the
end-of-day report all run in their windows, and what they stored agrees with direct calls."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest

from allsuse.market_files import read_market_file
from allsuse.monitoring.compliance import check
from allsuse.monitoring.crowding import portfolio_crowding
from allsuse.orchestration.clock import ManualClock
from allsuse.protocol import Engine
from allsuse.protocol.stress import stress_portfolio
from allsuse.server.app import Service
from allsuse.server.marketdata import book_market
from allsuse.server.portfolios import PortfolioRepository
from allsuse.store import equity as marks
from allsuse.v1 import (
    decision_pb2,
    market_pb2,
    market_pb2_grpc,
    monitor_pb2,
    monitor_pb2_grpc,
)
from tests.day_support import DATA, DAY, EPOCH, seed_day
from tests.rpc_support import TIMEOUT, service_config

ET = ZoneInfo("America/New_York")


@pytest.mark.skipif(not (DATA / "sp500_daily_2009_2018.csv").exists(), reason="../shared/data is not beside the repo")
def test_a_simulated_trading_day(tmp_path: Path) -> None:
    sp = read_market_file(DATA / "sp500_daily_2009_2018.csv").series[0]
    vix = dict(read_market_file(DATA / "vix_daily_2014_2018.csv").vix)
    day = (DAY - EPOCH).days
    before = int((sp.days < day).sum())

    async def scenario() -> None:
        clock = ManualClock(dt.datetime(2018, 2, 5, 8, 0, tzinfo=ET))
        service = Service(service_config(tmp_path), clock=clock)
        store = service.deps.store_component
        await service.start()
        try:
            db = store.store
            # The feed before the open (the history to Friday's close and the VIX to date) and the book.
            await seed_day(service, dt.datetime(2018, 2, 1, 9, 30))
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                # The session, minute by minute; the day's bar and VIX arrive at the close.
                feed = market_pb2_grpc.MarketDataServiceStub(channel)
                moment = dt.datetime(2018, 2, 5, 9, 29, tzinfo=ET)
                while moment < dt.datetime(2018, 2, 5, 16, 20, tzinfo=ET):
                    moment += dt.timedelta(minutes=1)
                    if moment == dt.datetime(2018, 2, 5, 16, 1, tzinfo=ET):
                        o, h, lo, c, v = (float(col[before]) for col in sp.columns)
                        cols = decision_pb2.BarColumns(days=[day], open=[o], high=[h], low=[lo], close=[c], volume=[v])
                        await feed.PublishBars(
                            market_pb2.PublishBarsRequest(symbol="SP500", columns=cols), timeout=TIMEOUT
                        )
                        await feed.PublishQuotes(
                            market_pb2.PublishQuotesRequest(date=DAY.isoformat(), vix=vix[day]), timeout=TIMEOUT
                        )
                    clock.set(moment)
                    await asyncio.wait_for(service.scheduler.wait_idle(), timeout=TIMEOUT)
                jobs = {j.name: j for j in service.scheduler.jobs}
                assert jobs["monitoring-minute"].runs == 390
                assert jobs["crowding"].runs == 78 and jobs["end-of-day"].runs == 1
                assert all(j.failures == 0 for j in jobs.values()), {n: j.last_error for n, j in jobs.items()}

                # Direct calls on the stored book and the server's market as of the close.
                close = dt.datetime(2018, 2, 5, 16, 15)
                portfolio = PortfolioRepository(db).load("day").portfolio
                market = book_market(service.deps, portfolio, close)
                assert market.bars["SP500"].dates[-1] == DAY and market.vix == pytest.approx(vix[day])
                monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
                request = monitor_pb2.ListViolationsRequest(portfolio_id="day")
                request.as_of.FromDatetime(close)
                listed = await monitor.ListViolations(request, timeout=TIMEOUT)
                direct = check(Engine(), portfolio, market, DAY)
                assert [(v.key, v.severity) for v in listed.violations] == [(v.key, v.severity) for v in direct]
                assert {v.key for v in direct} >= {"SYMBOL_CONCENTRATION:day/gen-1:SP500"}

                alerts = [a.payload for a in db.list_alerts(portfolio_id="day", limit=1000)]
                codes = [a["code"] for a in alerts]
                # Raised once each, not every minute.
                assert codes.count("CROWDING_HIGH") == 1 and codes.count("EOD_REPORT") == 1
                assert codes.count("COMPLIANCE_SYMBOL_CONCENTRATION") == 2  # gen and rev
                eod = next(a for a in alerts if a["code"] == "EOD_REPORT")
                assert "stress (P&L of the held book):" in eod["message"]

                # Stress in Prometheus (every 5 minutes; the last run at 15:55, on Friday's close).
                friday = book_market(service.deps, portfolio, dt.datetime(2018, 2, 2, 16, 0))
                sample = service.metrics.registry.get_sample_value
                for r in stress_portfolio(Engine(), portfolio, friday, DAY):
                    got = sample("allsuse_stress_pnl_share", {"portfolio": "day", "scenario": r.scenario})
                    assert got == pytest.approx(r.share_of_equity, rel=1e-9), r.scenario
                assert sample("allsuse_market_bars_published_total", {"kind": "given"}) == 1.0  # the close's bar

                crowd = portfolio_crowding(Engine(), portfolio, market, service.config.monitoring)
                assert crowd is not None and crowd.level == "HIGH" and crowd.crowded_cluster == ("SP500",)

                # The day's marks: the last one of the session (15:59, before the day's bar arrived), equal to a direct
                # mark on Friday's close and VIX (what the history held then), with Monday's time to expiry.
                series = db.read(lambda c: marks.read_marks(c, "day", ""))
                assert [d for d, _ in series] == [day]
                at_open = book_market(service.deps, portfolio, dt.datetime(2018, 2, 2, 16, 0))
                assert at_open.bars["SP500"].dates[-1] == dt.date(2018, 2, 2)
                (_,), total = Engine().equities(portfolio, [portfolio.accounts["day/gen-1"]], at_open, DAY)
                assert series[0][1] == pytest.approx(total, rel=1e-12)
                reply = await monitor.GetMetrics(monitor_pb2.GetMetricsRequest(portfolio_id="day"), timeout=TIMEOUT)
                whole = next(a for a in reply.accounts if a.account_id == "")
                held = list(portfolio.positions.values())
                assert whole.equity == pytest.approx(total) and whole.days == 1
                assert whole.es == pytest.approx(Engine().portfolio_es(held, at_open, DAY), rel=1e-9)
        finally:
            await service.stop()

    asyncio.run(scenario())
