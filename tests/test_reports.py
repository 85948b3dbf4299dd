"""Daily, weekly and quarterly reports (allsuse.reports): execution quality of hand-made orders, SVG charts that
hold their points, a report body checked number by number against direct calls (store, risk metrics, ES, stress,
compliance) on a real in-process service over real S&P 500 history, the report jobs in their windows on a
controllable clock writing files in the documented layout, GetReport's errors, `allsuse report`, and headless
Chromium opening the end-of-day report a real service wrote."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import numpy as np
import pytest

from allsuse import config, risk
from allsuse.errors import InvalidInputError
from allsuse.market_files import read_market_file
from allsuse.monitoring.compliance import check
from allsuse.orchestration.clock import ManualClock
from allsuse.protocol import Engine
from allsuse.protocol.breakers import vix_breaker
from allsuse.protocol.stress import stress_portfolio
from allsuse.reports.charts import bar_chart, line_chart
from allsuse.reports.execution import execution_quality
from allsuse.reports.files import file_stem, parse_name, report_paths
from allsuse.reports.html import money, number
from allsuse.server.alerting import alert_system
from allsuse.server.app import Service
from allsuse.server.marketdata import book_market
from allsuse.server.portfolios import PortfolioRepository
from allsuse.store import equity as marks
from allsuse.v1 import (
    decision_pb2,
    decision_pb2_grpc,
    market_pb2,
    market_pb2_grpc,
    monitor_pb2,
    monitor_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
)
from tests.day_support import DATA, DAY, EPOCH, seed_day
from tests.rpc_support import ROOT, TIMEOUT, serve, service_config
from tests.rpc_support import money as money_in
from tests.test_backtest_report import (
    CHROMIUM_TIMEOUT,
    _chromium,
    _chromium_args,
    _text,
    assert_not_blank,
    screenshot_rgb,
)

ET = ZoneInfo("America/New_York")
CLOSE = dt.datetime(2018, 2, 5, 16, 15)
needs_data = pytest.mark.skipif(
    not (DATA / "sp500_daily_2009_2018.csv").exists(), reason="../shared/data is not beside the repo"
)


def _order(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"status": "filled", "urgency": "normal", "contracts": 10, "filled_contracts": 10}
    return {**base, **kw}


def test_execution_quality_of_hand_made_orders() -> None:
    orders = [
        _order(shortfall_bps=4.0, vwap_slippage_bps=1.0, twap_slippage_bps=2.0, impact_bps=3.0, commission=6.5),
        _order(
            contracts=30, filled_contracts=30, shortfall_bps=12.0, vwap_slippage_bps=-1.0, twap_slippage_bps=0.0,
            impact_bps=5.0, commission=19.5, urgency="emergency",
        ),
        _order(status="partially_filled", contracts=20, filled_contracts=5, shortfall_bps=-2.0, commission=3.25),
        _order(status="cancelled", contracts=8, filled_contracts=0, shortfall_bps=99.0),
        _order(status="working", contracts=2, filled_contracts=0),
    ]  # fmt: skip
    q = execution_quality(orders)
    assert q["orders"] == 5
    assert q["by_status"] == {"working": 1, "filled": 2, "partially_filled": 1, "cancelled": 1, "rejected": 0}
    assert q["by_urgency"] == {"normal": 4, "emergency": 1}
    assert q["contracts_ordered"] == 70 and q["contracts_filled"] == 45
    assert q["fill_rate"] == pytest.approx(45 / 70)
    # Contract-weighted over the orders that traded (a cancelled order's figure does not count).
    assert q["avg_shortfall_bps"] == pytest.approx((4 * 10 + 12 * 30 - 2 * 5) / 45)
    assert q["worst_shortfall_bps"] == 12.0
    assert q["avg_vwap_slippage_bps"] == pytest.approx((1 * 10 - 1 * 30) / 40)
    assert q["avg_impact_bps"] == pytest.approx((3 * 10 + 5 * 30) / 40)
    assert q["commission"] == pytest.approx(29.25)
    empty = execution_quality([])
    assert empty["orders"] == 0 and empty["fill_rate"] is None and empty["avg_shortfall_bps"] is None


def _titles(svg: str) -> list[str]:
    return [unescape(t) for t in re.findall(r"<(?:circle|rect)[^>]*><title>([^<]*)</title>", svg)]


def test_svg_charts_hold_their_points() -> None:
    points = [("2024-03-04", 100.0), ("2024-03-05", 120.5), ("2024-03-06", 90.25)]
    svg = line_chart("Equity <curve>", points)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "<script" not in svg
    assert "Equity &lt;curve&gt;" in svg  # escaped
    assert _titles(svg) == ["2024-03-04: 100.00", "2024-03-05: 120.50", "2024-03-06: 90.25"]
    line = re.search(r'<polyline[^>]*points="([^"]*)"', svg)
    assert line is not None
    xy = [tuple(map(float, p.split(","))) for p in line.group(1).split()]
    assert [x for x, _ in xy] == sorted(x for x, _ in xy) and len(xy) == 3
    # SVG's y grows downwards: the highest value is the smallest y, the lowest the largest.
    ys = [y for _, y in xy]
    assert ys.index(min(ys)) == 1 and ys.index(max(ys)) == 2
    bars = bar_chart("Week types", [("P-EW", 3), ("W-IDL", 7)])
    assert _titles(bars) == ["P-EW: 3", "W-IDL: 7"]
    heights = [float(h) for h in re.findall(r'<rect[^>]*height="([0-9.]+)"', bars)]
    assert heights[1] / heights[0] == pytest.approx(7 / 3, rel=1e-3)
    assert "no data yet" in line_chart("ES", [])


def test_file_layout_and_names() -> None:
    html, js = report_paths(Path("/r"), dt.date(2024, 3, 7), "a/b:c", "daily")
    assert html == Path("/r/2024-03-07/a%2Fb%3Ac-daily.html") and js.suffix == ".json"
    assert parse_name(html.name) == ("a/b:c", "daily") and parse_name("notes.txt") is None
    assert file_stem("jobs", "weekly") == "jobs-weekly"
    with pytest.raises(InvalidInputError) as err:
        file_stem("jobs", "hourly")
    assert err.value.field == "kind"


def test_reports_dir_is_configured_and_validated(tmp_path: Path) -> None:
    default = config.load("development", environ={})
    assert default.reports.dir == str(config.PROJECT_DIR / "var" / "reports")
    assert config.load("development", environ={"ALLSUSE_REPORTS_DIR": str(tmp_path)}).reports.dir == str(tmp_path)
    afile = tmp_path / "file"
    afile.write_text("x")
    for bad in ("", "  ", str(afile)):
        with pytest.raises(InvalidInputError) as err:
            config.load("development", environ={"ALLSUSE_REPORTS_DIR": bad})
        assert err.value.field == "reports.dir"


def _ts(moment: dt.datetime) -> object:
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(moment)
    return out


@asynccontextmanager
async def _day_service(tmp_path: Path, clock: ManualClock | None = None) -> AsyncIterator[tuple[Service, str]]:
    """A running service holding the S&P 500 history to Friday 2018-02-02 and the VIX, a portfolio "day" with a
    short put in Gen-Acc and one in Rev-Acc, and daily equity marks of the five sessions before Monday 2018-02-05
    (earlier sweeps' record: the metrics need three)."""
    service = Service(service_config(tmp_path), clock=clock)
    await service.start()
    try:
        db = service.deps.store
        await seed_day(service, dt.datetime(2018, 1, 26, 9, 30))
        earlier = [(DAY - EPOCH).days - n for n in (7, 6, 5, 4, 3)]  # Mon 29 Jan .. Fri 2 Feb
        factors = [1.0, 1.004, 0.997, 1.006, 0.992]
        p = PortfolioRepository(db).load("day").portfolio
        base = {a.id: float(a.balance) for a in p.accounts.values()}
        rows_m = [("day", a, d, v * f) for a, v in base.items() for d, f in zip(earlier, factors, strict=True)]
        rows_m += [("day", "", d, sum(base.values()) * f) for d, f in zip(earlier, factors, strict=True)]
        db.write(lambda tx: marks.put_marks(tx, rows_m))
        yield service, service.server.address
    finally:
        await service.stop()


@needs_data
def test_report_body_matches_direct_calls(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _day_service(tmp_path) as (service, address):
            db = service.deps.store
            # The metrics job's last minute of the session, then the report at 16:15 on the same history.
            await service.scheduler.job("monitoring-minute").action(dt.datetime(2018, 2, 5, 15, 59, tzinfo=ET))
            async with grpc.aio.insecure_channel(address) as channel:
                monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
                request = monitor_pb2.GetReportRequest(portfolio_id="day", kind="daily", as_of=_ts(CLOSE))
                report = await monitor.GetReport(request, timeout=TIMEOUT)
                snapshot = await monitor.GetMetrics(monitor_pb2.GetMetricsRequest(portfolio_id="day"), timeout=TIMEOUT)
            body = json.loads(report.json)
            assert report.html.startswith("<!DOCTYPE html>") and "Daily report for day" in report.text

            stored_p = PortfolioRepository(db).load("day")
            portfolio = stored_p.portfolio
            market = book_market(service.deps, portfolio, CLOSE)
            engine = Engine()
            # Balances and states: the store's.
            for a in portfolio.accounts.values():
                row = body["accounts"][a.id]
                assert row["balance"] == str(a.balance) and row["state"] == a.state and row["level"] == "none"
                assert row["drawdown"] == pytest.approx(a.drawdown)
            assert body["equity"] == str(portfolio.equity)
            vix = vix_breaker(market.vix if market.vix is not None else float("nan"))
            assert body["system"] == {"vix": vix.vix, "state": vix.state.value, "hedged": vix.hedged,
                                      "multiplier": vix.multiplier}  # fmt: skip
            assert f"{vix.state.value} (VIX {vix.vix:.2f})" in _text(report.html)
            assert [p["position_id"] for p in body["positions"]] == list(portfolio.positions)
            # Equity at market and ES: a direct mark and ES on the same market.
            accounts = [a for a in portfolio.accounts.values()]
            values, total = engine.equities(portfolio, accounts, market, DAY)
            assert body["equity_at_market"] == pytest.approx(total, abs=0.006)
            for a, v in zip(accounts, values, strict=True):
                assert body["accounts"][a.id]["equity_at_market"] == pytest.approx(v, abs=0.006)
            held = list(portfolio.positions.values())
            assert body["es"] == pytest.approx(engine.portfolio_es(held, market, DAY), abs=0.006)
            # The 17 metrics: risk.metrics of the stored daily series' returns.
            series = db.read(lambda c: marks.read_marks(c, "day", ""))
            assert len(series) == 6 and series[-1][0] == (DAY - EPOCH).days
            eq = np.array([e for _, e in series])
            direct = risk.metrics(eq[1:] / eq[:-1] - 1.0)
            assert set(body["metrics"]) == set(risk.METRIC_NAMES) and body["metrics_days"] == 6
            for name, value in direct.items():
                if np.isfinite(value):
                    assert body["metrics"][name] == pytest.approx(value, rel=1e-9), name
            # ... and what GetMetrics serves.
            whole = next(a for a in snapshot.accounts if a.account_id == "")
            assert body["metrics"]["sharpe_ratio"] == pytest.approx(whole.metrics["sharpe_ratio"], rel=1e-12)
            assert body["equity_at_market"] == pytest.approx(whole.equity, abs=0.006)
            # P&L: today's mark against Friday's; since the start against the capital put in.
            assert body["pnl"]["day"] == pytest.approx(eq[-1] - eq[-2], abs=0.006)
            assert body["pnl"]["period"] == pytest.approx(eq[-1] - eq[-2], abs=0.006)  # from Friday's close
            assert body["pnl"]["period_return"] == pytest.approx(eq[-1] / eq[-2] - 1.0, rel=1e-6)
            assert body["capital"] == pytest.approx(1_000_000.0)
            assert body["pnl"]["since_start"] == pytest.approx(total - 1_000_000.0, abs=0.006)
            # Stress and compliance: the functions the watches run.
            stress = stress_portfolio(engine, portfolio, market, DAY)
            assert [(r["scenario"], r["pnl"]) for r in body["stress"]] == [
                (r.scenario, round(r.pnl, 2)) for r in stress
            ]
            found = check(engine, portfolio, market, DAY)
            assert [v["key"] for v in body["violations"]] == [v.key for v in found] and found
            # Charts: the equity curve holds every stored mark, the ES chart today's ES.
            assert [v for _, v in body["series"]["equity"]] == [round(e, 2) for e in eq]
            svg_titles = _titles(report.html)
            for d, v in body["series"]["equity"]:
                assert f"{d}: {money(v)}" in svg_titles
            assert body["series"]["es"] == [[DAY.isoformat(), body["es"]]]
            assert body["execution"]["orders"] == 0  # no orders table on this branch yet

    asyncio.run(scenario())


@needs_data
def test_report_jobs_run_in_their_windows_and_write_the_layout(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(dt.datetime(2018, 2, 5, 8, 0, tzinfo=ET))
        async with _day_service(tmp_path, clock) as (service, address):
            jobs = {j.name: j for j in service.scheduler.jobs}
            root = Path(service.config.reports.dir)
            assert root == tmp_path / "reports"

            async def at(*moment: int) -> None:
                clock.set(dt.datetime(*moment, tzinfo=ET))
                await asyncio.wait_for(service.scheduler.wait_idle(), timeout=TIMEOUT)

            await at(2018, 2, 5, 16, 14)
            assert jobs["end-of-day"].runs == 0 and not root.exists()
            await at(2018, 2, 5, 16, 15, 30)
            assert jobs["end-of-day"].runs == 1
            html, js = report_paths(root, DAY, "day", "daily")
            assert sorted(p.name for p in (root / "2018-02-05").iterdir()) == ["day-daily.html", "day-daily.json"]
            body = json.loads(js.read_text())
            assert body["kind"] == "daily" and body["to"] == "2018-02-05T21:15:00"  # 16:15 EST in UTC
            assert "<svg" in html.read_text() and "Daily report for day" in html.read_text()
            eod = [
                a.payload
                for a in service.deps.store.list_alerts(portfolio_id="day")
                if a.payload["code"] == "EOD_REPORT"
            ]
            assert len(eod) == 1 and eod[0]["es"] == body["es"] and eod[0]["html"] == str(html)
            # The same report on demand.
            async with grpc.aio.insecure_channel(address) as channel:
                monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
                as_of = _ts(dt.datetime(2018, 2, 5, 21, 15))
                request = monitor_pb2.GetReportRequest(portfolio_id="day", kind="daily", as_of=as_of)
                again = json.loads((await monitor.GetReport(request, timeout=TIMEOUT)).json)
            for key in ("accounts", "equity_at_market", "es", "metrics", "stress", "pnl"):
                assert again[key] == body[key], key
            # Monday's bar arrives; on Tuesday a decision is asked for on the stored history.
            sp = read_market_file(DATA / "sp500_daily_2009_2018.csv").series[0]
            i = int((sp.days < (DAY - EPOCH).days).sum())
            o, h, lo, c, v = (float(col[i]) for col in sp.columns)
            cols = decision_pb2.BarColumns(days=[int(sp.days[i])], open=[o], high=[h], low=[lo], close=[c], volume=[v])
            async with grpc.aio.insecure_channel(address) as channel:
                await market_pb2_grpc.MarketDataServiceStub(channel).PublishBars(
                    market_pb2.PublishBarsRequest(symbol="SP500", columns=cols), timeout=TIMEOUT
                )
                await at(2018, 2, 6, 10, 0)
                asked = decision_pb2.DecideRequest(
                    portfolio_id="day",
                    account_id="day/com-1",
                    symbol="SP500",
                    as_of=_ts(dt.datetime(2018, 2, 6, 10, 0)),
                )
                decided = await decision_pb2_grpc.DecisionServiceStub(channel).Decide(asked, timeout=TIMEOUT)
            # The next day's report: Monday's ES, recorded by the EOD alert, is in the ES history.
            await at(2018, 2, 6, 16, 15, 30)
            tuesday = json.loads(report_paths(root, dt.date(2018, 2, 6), "day", "daily")[1].read_text())
            assert tuesday["series"]["es"][0] == [DAY.isoformat(), body["es"]] and len(tuesday["series"]["es"]) == 2
            # No sweep ran on Monday (the clock jumped): the period runs from the last mark before it, Friday's.
            before, today = tuesday["series"]["equity"][-2:]
            assert before[0] == "2018-02-02" and today[0] == "2018-02-06"
            assert tuesday["pnl"]["period"] == pytest.approx(today[1] - before[1], abs=0.02)
            # Weekly: Saturday 09:00, not before.
            await at(2018, 2, 10, 8, 59)
            assert jobs["weekly-report"].runs == 0
            await at(2018, 2, 10, 9, 0, 30)
            assert jobs["weekly-report"].runs == 1 and jobs["end-of-day"].runs == 2
            weekly = json.loads(report_paths(root, dt.date(2018, 2, 10), "day", "weekly")[1].read_text())
            assert weekly["weekly"]["returns"]["day/gen-1"]["expected"] == pytest.approx(0.015)
            assert set(weekly["weekly"]) >= {"positions", "moves", "returns", "deviations"}
            stored_d = service.deps.store.get_decision(decided.decision_id)
            assert stored_d is not None
            d = stored_d.payload
            assert weekly["decisions"] == 1 and weekly["actions"] == {d["action"]: 1}
            assert weekly["weekly"]["positions"] == [
                {"account_id": "day/com-1", "symbol": "SP500", "week_type": d["week_type"], "action": d["action"],
                 "outcome": d["outcome"]}
            ]  # fmt: skip
            assert weekly["week_types"] == ({d["week_type"]: 1} if d["week_type"] else {})
            assert [x["decision_id"] for x in weekly["weekly"]["deviations"]] == (
                [d["decision_id"]] if d["outcome"] == "REJECTED" else []
            )
            # The week's move: Monday's close against Friday's (the last close before the week began).
            assert weekly["weekly"]["moves"]["SP500"] == pytest.approx(c / float(sp.columns[3][i - 1]) - 1.0)
            # Quarterly: 16:30 on the quarter's last session (Thursday 2018-03-29; Good Friday is a holiday).
            assert service.scheduler.next_run("quarterly-report") == dt.datetime(2018, 3, 29, 16, 30, tzinfo=ET)
            await at(2018, 3, 29, 16, 30, 30)
            assert jobs["quarterly-report"].runs == 1
            quarterly = json.loads(report_paths(root, dt.date(2018, 3, 29), "day", "quarterly")[1].read_text())
            assert quarterly["from"] == "2018-01-01T00:00:00" and "attribution" in quarterly["quarterly"]
            assert all(j.failures == 0 for j in jobs.values()), {n: j.last_error for n, j in jobs.items()}

    asyncio.run(scenario())


def test_get_report_errors(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = Service(service_config(tmp_path))
        await service.start()
        try:
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                await portfolio_pb2_grpc.PortfolioServiceStub(channel).CreatePortfolio(
                    portfolio_pb2.CreatePortfolioRequest(portfolio_id="p", total=money_in(100_000)), timeout=TIMEOUT
                )
                monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
                bad = grpc.StatusCode.INVALID_ARGUMENT
                cases = [("p", "hourly", bad, "kind"), ("", "daily", bad, "portfolio_id"),
                         ("nope", "daily", grpc.StatusCode.NOT_FOUND, "nope")]  # fmt: skip
                for pid, kind, code, named in cases:
                    request = monitor_pb2.GetReportRequest(portfolio_id=pid, kind=kind)
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await monitor.GetReport(request, timeout=TIMEOUT)
                    assert err.value.code() == code and named in (err.value.details() or "")
                # No as_of: now. An empty book: no stress, the reason said. The period's alerts, escaped.
                hostile = "<script>alert('x')</script> & <b>bold</b>"
                await alert_system(service.deps).raise_alert(
                    {"severity": "HIGH", "portfolio_id": "p", "code": "TEST_ALERT", "message": hostile}
                )
                fine = await monitor.GetReport(
                    monitor_pb2.GetReportRequest(portfolio_id="p", kind="quarterly"), timeout=TIMEOUT
                )
                body = json.loads(fine.json)
                assert body["stress"] is None and body["stress_note"] == "no open positions"
                assert "quarterly" in body and fine.html.count("<svg") == 4
                assert [a["message"] for a in body["alerts"]] == [hostile] and body["open_alerts"] == 1
                assert "<script" not in fine.html and "<b>bold" not in fine.html
                assert hostile in _text(fine.html)  # shown as text
        finally:
            await service.stop()

    asyncio.run(scenario())


def test_cli_report_writes_html_and_json(tmp_path: Path) -> None:
    with serve(str(tmp_path / "a.db"), auth=False, extra_env={"ALLSUSE_REPORTS_DIR": str(tmp_path / "r")}) as (
        address,
        _,
    ):
        with grpc.insecure_channel(address) as channel:
            portfolio_pb2_grpc.PortfolioServiceStub(channel).CreatePortfolio(
                portfolio_pb2.CreatePortfolioRequest(portfolio_id="cli", total=money_in(2_000_000)), timeout=TIMEOUT
            )
        cmd = [sys.executable, "-m", "allsuse.cli", "report", "--address", address, "--portfolio", "cli"]

        def run(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*cmd, *extra], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

        html, js = tmp_path / "out.html", tmp_path / "out.json"
        done = run("--kind", "daily", "--html", str(html), "--json", str(js), "--as-of", "2018-02-05")
        assert done.returncode == 0, done.stderr
        body = json.loads(js.read_text())
        assert body["kind"] == "daily" and body["to"] == "2018-02-05T17:00:00"
        page = html.read_text()
        assert "Daily report for cli" in page and money(float(body["accounts"]["cli/gen-1"]["balance"])) in page
        printed = run("--kind", "weekly", "--json")
        assert printed.returncode == 0 and json.loads(printed.stdout)["kind"] == "weekly"
        for extra, flag in (
            (("--kind", "hourly"), "--kind"),
            (("--html", str(tmp_path / "missing" / "x.html")), "--html"),
            (("--json", str(tmp_path)), "--json"),
            (("--as-of", "2018-13-01"), "--as-of"),
            (("--portfolio", ""), "--portfolio"),
        ):
            bad = run(*extra)
            assert bad.returncode == 2 and flag in bad.stderr, (extra, bad.stderr)
        assert not (tmp_path / "missing").exists()
        missing = run("--portfolio", "nope")
        assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


@needs_data
def test_eod_report_in_headless_chromium(tmp_path: Path) -> None:
    """The page the 16:15 job wrote, opened by Chromium: a screenshot that is not blank, and the equity at market,
    a balance and a metric as the gRPC API gives them."""

    async def scenario() -> tuple[Path, str, str, str]:
        async with _day_service(tmp_path) as (service, address):
            await service.scheduler.job("monitoring-minute").action(dt.datetime(2018, 2, 5, 15, 59, tzinfo=ET))
            await service.scheduler.job("end-of-day").action(dt.datetime(2018, 2, 5, 16, 15, tzinfo=ET))
            async with grpc.aio.insecure_channel(address) as channel:
                metrics = await monitor_pb2_grpc.MonitorServiceStub(channel).GetMetrics(
                    monitor_pb2.GetMetricsRequest(portfolio_id="day"), timeout=TIMEOUT
                )
                p = await portfolio_pb2_grpc.PortfolioServiceStub(channel).GetPortfolio(
                    portfolio_pb2.GetPortfolioRequest(portfolio_id="day"), timeout=TIMEOUT
                )
            whole = next(a for a in metrics.accounts if a.account_id == "")
            rev = next(a for a in p.accounts if a.account_id == "day/rev-1")
            balance = rev.balance.units + rev.balance.cents / 100
            path = report_paths(Path(service.config.reports.dir), DAY, "day", "daily")[0]
            return path, money(whole.equity), money(balance), number(whole.metrics["sharpe_ratio"])

    path, equity, balance, sharpe = asyncio.run(scenario())
    shot = tmp_path / "eod.png"
    done = subprocess.run(
        [_chromium(), *_chromium_args(tmp_path / "profile"), f"--screenshot={shot}", "--dump-dom",
         "--window-size=1280,2000", path.resolve().as_uri()],
        capture_output=True, timeout=CHROMIUM_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and shot.exists(), done.stderr.decode(errors="replace")[-2000:]
    rgb = assert_not_blank(screenshot_rgb(shot))
    assert rgb.shape[:2] == (2000, 1280)
    text = _text(done.stdout.decode())
    assert "Daily report for day" in text
    assert f"{equity} equity at market" in text, equity
    assert balance in text and sharpe in text, (balance, sharpe)
