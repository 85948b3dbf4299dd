"""MarketDataService end to end on a real `allsuse serve` process on 127.0.0.1 with API keys on (SQLite and
PostgreSQL stores): publish (unary and client stream), idempotency and conflicts, GetBars, persistence across a
restart, Decide and AssessRisk on the server's history, packed columns over the wire, and `allsuse data load` on
the real files of ../shared/data."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from allsuse.market_files import read_market_file
from allsuse.server.convert import columns_out, market_in
from allsuse.store import Store
from allsuse.store import market as stored
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
from tests.rpc_support import ROOT, TIMEOUT, bearer, green_market, money, serve

THURSDAY = dt.date(2024, 3, 7)
DATA = ROOT.parent / "shared" / "data"


def ts(day: dt.date, hour: int = 15, minute: int = 45) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt.datetime.combine(day, dt.time(hour, minute)))
    return t


def keys(url: str) -> dict[str, str]:
    with Store(url) as store:
        return {role: store.create_api_key(role).token for role in ("viewer", "trader", "admin")}


def nvda_columns() -> decision_pb2.BarColumns:
    return columns_out(market_in(green_market(THURSDAY)).bars["NVDA"])


def publish(stub: market_pb2_grpc.MarketDataServiceStub, token: str, **kw: object) -> market_pb2.PublishBarsResponse:
    return stub.PublishBars(market_pb2.PublishBarsRequest(**kw), metadata=bearer(token), timeout=TIMEOUT)  # type: ignore[arg-type]


def test_publish_is_idempotent_conflicts_are_refused_and_get_bars_reads_back(tmp_path: Path) -> None:
    url = str(tmp_path / "allsuse.db")
    tokens = keys(url)
    cols = nvda_columns()
    with serve(url, auth=True) as (address, _), grpc.insecure_channel(address) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        first = decision_pb2.BarColumns(
            days=cols.days[:100], open=cols.open[:100], high=cols.high[:100], low=cols.low[:100],
            close=cols.close[:100], volume=cols.volume[:100],
        )  # fmt: skip
        assert publish(stub, tokens["admin"], symbol="NVDA", columns=first).inserted == 100
        again = publish(stub, tokens["admin"], symbol="NVDA", columns=first)
        assert (again.inserted, again.replaced, again.unchanged) == (0, 0, 100)
        # the rest as a client stream of three messages (the first repeats stored bars: no-ops)
        chunks = [(0, 150), (150, 250), (250, 300)]
        stream = [
            market_pb2.PublishBarsRequest(
                symbol="NVDA",
                columns=decision_pb2.BarColumns(
                    days=cols.days[a:b],
                    open=cols.open[a:b],
                    high=cols.high[a:b],
                    low=cols.low[a:b],
                    close=cols.close[a:b],
                    volume=cols.volume[a:b],
                ),
            )
            for a, b in chunks
        ]
        summed = stub.PublishBarsStream(iter(stream), metadata=bearer(tokens["admin"]), timeout=TIMEOUT)
        assert (summed.inserted, summed.unchanged) == (200, 100)
        # a different value for a stored day: FAILED_PRECONDITION naming it, nothing written
        changed = decision_pb2.BarColumns()
        changed.CopyFrom(cols)
        changed.close[42] = changed.close[42] * 1.01
        with pytest.raises(grpc.RpcError) as err:
            publish(stub, tokens["admin"], symbol="NVDA", columns=changed)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        day42 = stored.day_text(cols.days[42])
        assert "columns.days[42]" in (err.value.details() or "") and day42 in (err.value.details() or "")
        fixed = publish(stub, tokens["admin"], symbol="NVDA", columns=changed, replace=True)
        assert (fixed.replaced, fixed.unchanged) == (1, 299)
        got = stub.GetBars(market_pb2.GetBarsRequest(symbol="NVDA"), metadata=bearer(tokens["viewer"]), timeout=TIMEOUT)
        assert got.columns == changed
        ranged = stub.GetBars(
            market_pb2.GetBarsRequest(symbol="NVDA", start=stored.day_text(cols.days[10]), end=day42, limit=5),
            metadata=bearer(tokens["viewer"]),
            timeout=TIMEOUT,
        )
        assert list(ranged.columns.days) == list(cols.days[38:43])
        # bad input names the field; a trader may not write market history
        bad = decision_pb2.BarColumns()
        bad.CopyFrom(cols)
        bad.close[0] = float("nan")
        for token, request, code, text in (
            (tokens["admin"], {"symbol": "NVDA", "columns": bad}, grpc.StatusCode.INVALID_ARGUMENT, "columns.close[0]"),
            (tokens["admin"], {"symbol": "", "columns": cols}, grpc.StatusCode.INVALID_ARGUMENT, "symbol"),
            (tokens["admin"], {"symbol": "NVDA"}, grpc.StatusCode.INVALID_ARGUMENT, "columns"),
            (tokens["trader"], {"symbol": "NVDA", "columns": cols}, grpc.StatusCode.PERMISSION_DENIED, ""),
        ):
            with pytest.raises(grpc.RpcError) as err:
                publish(stub, token, **request)
            assert err.value.code() == code, err.value.details()
            assert text in (err.value.details() or "")
        with pytest.raises(grpc.RpcError) as err:
            stub.GetBars(market_pb2.GetBarsRequest(symbol="NVDA"), timeout=TIMEOUT)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        quotes = market_pb2.PublishQuotesRequest(
            date=THURSDAY.isoformat(), symbols=[market_pb2.SymbolQuotes(symbol="NVDA", iv=0.45, sector="tech")], vix=18
        )
        q = stub.PublishQuotes(quotes, metadata=bearer(tokens["admin"]), timeout=TIMEOUT)
        assert q.inserted == 2
        assert stub.PublishQuotes(quotes, metadata=bearer(tokens["admin"]), timeout=TIMEOUT).unchanged == 2
        quotes.vix = 19
        with pytest.raises(grpc.RpcError) as err:
            stub.PublishQuotes(quotes, metadata=bearer(tokens["admin"]), timeout=TIMEOUT)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "vix" in (err.value.details() or "")


DECISION_FIELDS = (
    "market_label",
    "label_confidence",
    "week_type",
    "protocol_level",
    "action",
    "order",
    "es_before",
    "es_after",
    "outcome",
    "requires_approval",
    "confidence",
    "vol_source",
    "iv_source",
)


def same_decision(a: decision_pb2.Decision, b: decision_pb2.Decision) -> None:
    for name in DECISION_FIELDS:
        assert getattr(a, name) == getattr(b, name), name
    assert [(r.code, r.passed) for r in a.compliance] == [(r.code, r.passed) for r in b.compliance]


def test_history_survives_a_restart_and_serves_decide_and_assess_risk(store_url: str) -> None:
    tokens = keys(store_url)
    full = green_market(THURSDAY)
    with serve(store_url, auth=True) as (address, _), grpc.insecure_channel(address) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        publish(stub, tokens["admin"], symbol="NVDA", columns=nvda_columns())
        quotes = market_pb2.PublishQuotesRequest(
            date=(THURSDAY - dt.timedelta(days=3)).isoformat(),
            symbols=[market_pb2.SymbolQuotes(symbol="NVDA", iv=0.45, sector="tech")],
            vix=18,
        )
        stub.PublishQuotes(quotes, metadata=bearer(tokens["admin"]), timeout=TIMEOUT)
    with serve(store_url, auth=True) as (address, _), grpc.insecure_channel(address) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        got = stub.GetBars(market_pb2.GetBarsRequest(symbol="NVDA"), metadata=bearer(tokens["viewer"]), timeout=TIMEOUT)
        assert got.columns == nvda_columns()  # durable across the restart
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
        packed = decision_pb2.MarketSnapshot()
        packed.CopyFrom(full)
        del packed.symbols[0].bars[:]
        packed.symbols[0].columns.CopyFrom(nvda_columns())
        replies = []
        for market in (full, packed, decision_pb2.MarketSnapshot(), None):
            pid = portfolios.CreatePortfolio(
                portfolio_pb2.CreatePortfolioRequest(total=money(1_000_000), at=ts(dt.date(2024, 2, 1), 9, 30)),
                metadata=bearer(tokens["trader"]),
                timeout=TIMEOUT,
            ).portfolio_id
            request = decision_pb2.DecideRequest(
                portfolio_id=pid, account_id=f"{pid}/gen-1", symbol="NVDA", as_of=ts(THURSDAY), market=market
            )
            replies.append(decisions.Decide(request, metadata=bearer(tokens["trader"]), timeout=TIMEOUT))
        assert replies[0].action == decision_pb2.ACTION_OPEN_PUT  # a real decision, not an empty one
        for other in replies[1:]:
            same_decision(replies[0], other)  # old messages, packed columns, history: one decision
        risks = [
            decisions.AssessRisk(
                decision_pb2.AssessRiskRequest(
                    portfolio_id=pid,
                    as_of=ts(THURSDAY),
                    account_id=f"{pid}/gen-1",
                    symbol="NVDA",
                    market=market,
                    proposed=decision_pb2.Order(
                        kind=2, side="sell_to_open", strike=190, expiry="2024-03-08", contracts=1, limit_price=money(1)
                    ),
                ),
                metadata=bearer(tokens["viewer"]),
                timeout=TIMEOUT,
            )
            for market in (full, None)
        ]
        assert risks[0].scenarios == 299 and risks[0] == risks[1]
        with pytest.raises(grpc.RpcError) as err:
            decisions.Decide(
                decision_pb2.DecideRequest(
                    portfolio_id=pid, account_id=f"{pid}/gen-1", symbol="AMD", as_of=ts(THURSDAY)
                ),
                metadata=bearer(tokens["trader"]),
                timeout=TIMEOUT,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "AMD" in (err.value.details() or "")
        # The daily report stresses the held book on the server's history: the same figures as AssessRisk's.
        monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
        report_request = monitor_pb2.GetReportRequest(portfolio_id=pid, kind="daily", as_of=ts(THURSDAY, 17, 0))
        empty = json.loads(monitor.GetReport(report_request, metadata=bearer(tokens["viewer"]), timeout=TIMEOUT).json)
        assert empty["stress"] is None
        fill = portfolio_pb2.RecordFillRequest(
            portfolio_id=pid, account_id=f"{pid}/gen-1", symbol="NVDA", kind="put", side="sell_to_open",
            strike=180.0, expiry="2024-03-15", quantity=3, price=money(2.0), at=ts(THURSDAY),
        )  # fmt: skip
        portfolios.RecordFill(fill, metadata=bearer(tokens["trader"]), timeout=TIMEOUT)
        report = monitor.GetReport(report_request, metadata=bearer(tokens["viewer"]), timeout=TIMEOUT)
        rows = {r["scenario"]: r for r in json.loads(report.json)["stress"]}
        risk = decisions.AssessRisk(
            decision_pb2.AssessRiskRequest(portfolio_id=pid, as_of=ts(THURSDAY)),
            metadata=bearer(tokens["viewer"]),
            timeout=TIMEOUT,
        )
        assert [s.scenario for s in risk.stress] == list(rows)
        for s in risk.stress:
            assert rows[s.scenario]["pnl"] == pytest.approx(s.pnl.units + s.pnl.cents / 100, abs=0.011)
        assert rows["2008"]["pnl"] < 0 and "stress (P&L of the held book):" in report.text
        assert rows["worst_5_day_window"]["window"] is not None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "allsuse.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_data_load_stores_the_real_shared_files(store_url: str) -> None:
    files = sorted(DATA.glob("*.csv"))
    assert {f.name for f in files} >= {"sp500_daily_2009_2018.csv", "stocks20_close_1990_2014.csv"}
    done = run_cli("data", "load", *map(str, files), "--store", store_url)
    assert done.returncode == 0, done.stderr
    assert "SP500 2516 bars (2516 new" in done.stdout and "AAPL 6301 bars (6301 new" in done.stdout
    assert "VIX 1257 days (1257 new" in done.stdout
    again = run_cli("data", "load", *map(str, files), "--store", store_url)
    assert "AAPL 6301 bars (0 new, 0 replaced, 6301 unchanged)" in again.stdout, again.stderr
    wide = read_market_file(DATA / "stocks20_close_1990_2014.csv")
    with Store(store_url) as store:
        for series in wide.series:
            rows = store.read(lambda c, s=series.symbol: stored.read_bars(c, s))  # type: ignore[misc]
            assert [r[0] for r in rows] == series.days.tolist()
            assert [r[4] for r in rows] == series.columns[3].tolist()
        sp = store.read(lambda c: stored.read_bars(c, "SP500"))
        assert sp[0][:5] == (14246, 902.99, 934.73, 899.35, 931.8)  # 2009-01-02 as in the file
        assert store.read(lambda c: stored.read_quotes(c, stored.MARKET_WIDE))[0] == (16073, {"vix": 13.76})
    bad = run_cli("data", "load", str(DATA / "README.md"), "--store", store_url)
    assert bad.returncode == 2 and "README.md" in bad.stderr


def test_data_load_through_a_server(tmp_path: Path) -> None:
    url = str(tmp_path / "allsuse.db")
    tokens = keys(url)
    with serve(url, auth=True) as (address, _), grpc.insecure_channel(address) as channel:
        sp500 = str(DATA / "sp500_daily_2009_2018.csv")
        done = run_cli("data", "load", sp500, "--address", address, "--token", tokens["admin"])
        assert done.returncode == 0, done.stderr
        assert "SP500 2516 bars (2516 new, 0 replaced, 0 unchanged)" in done.stdout
        refused = run_cli("data", "load", sp500, "--address", address, "--token", tokens["trader"])
        assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr
        got = market_pb2_grpc.MarketDataServiceStub(channel).GetBars(
            market_pb2.GetBarsRequest(symbol="SP500", limit=1), metadata=bearer(tokens["viewer"]), timeout=TIMEOUT
        )
        assert list(got.columns.close) == [2506.8501]  # 2018-12-31 as in the file
