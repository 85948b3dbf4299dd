"""Work a single request may ask for is bounded: past a limit the request is INVALID_ARGUMENT naming the field and
the limit, and the largest request allowed stays under 256 MB of server memory.

Found on main before the fix: one viewer Project call with paths=600000, years=40 took the server's RSS from 87 MB
to 1.9 GB (the documented maximum, paths=1000000 x years=100, would have needed about 7.6 GB).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import grpc
import pytest

from allsuse.v1 import common_pb2, decision_pb2, decision_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from tests.attack.input_support import Server, reset_peak_rss, serve_logged, status_line
from tests.rpc_support import green_market, money

MB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_logged(tmp_path_factory.mktemp("attack-work")) as running:
        yield running


@pytest.fixture(scope="module")
def channel(server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def _refused(call: grpc.RpcError, *words: str) -> None:
    assert call.code() == grpc.StatusCode.INVALID_ARGUMENT, (call.code(), call.details())
    details = call.details() or ""
    for word in words:
        assert word in details, details


def test_project_beyond_the_work_limit_is_refused_naming_paths_and_the_limit(
    server: Server, channel: grpc.Channel
) -> None:
    from allsuse.protocol.accounts import PROJECT_MAX_PATH_YEARS

    stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
    before = status_line(server.proc.pid, "VmRSS")
    with pytest.raises(grpc.RpcError) as err:
        stub.Project(
            portfolio_pb2.ProjectRequest(total=money(1_000_000), years=40, paths=600_000),
            metadata=server.md("viewer"),
            timeout=60,
        )
    _refused(err.value, "paths", str(PROJECT_MAX_PATH_YEARS))
    assert status_line(server.proc.pid, "VmRSS") - before < 16 * MB


def test_the_largest_projection_allowed_stays_under_256_mb(server: Server, channel: grpc.Channel) -> None:
    from allsuse.protocol.accounts import PROJECT_MAX_PATH_YEARS, PROJECT_MAX_PATHS

    stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
    stub.Project(
        portfolio_pb2.ProjectRequest(total=money(1_000_000), years=1), metadata=server.md("viewer"), timeout=60
    )
    pid = server.proc.pid
    for paths, years in (
        (PROJECT_MAX_PATHS, PROJECT_MAX_PATH_YEARS // PROJECT_MAX_PATHS),
        (PROJECT_MAX_PATH_YEARS // 100, 100),
    ):
        before = status_line(pid, "VmRSS")
        peak_reset = reset_peak_rss(pid)
        reply = stub.Project(
            portfolio_pb2.ProjectRequest(total=money(1_000_000), years=years, paths=paths, seed=7),
            metadata=server.md("viewer"),
            timeout=120,
        )
        assert len(reply.years) == years
        after = status_line(pid, "VmHWM" if peak_reset else "VmRSS")
        assert after - before < 256 * MB, f"paths={paths} years={years}: grew {(after - before) / MB:.0f} MB"


def test_market_snapshots_are_bounded(server: Server, channel: grpc.Channel) -> None:
    from allsuse.server.convert import MAX_BARS, MAX_CHAIN, MAX_SYMBOLS

    stub = decision_pb2_grpc.DecisionServiceStub(channel)
    day = dt.date(2024, 3, 7)
    many_symbols = green_market(day)
    template = many_symbols.symbols[0]
    del template.bars[50:]
    for i in range(MAX_SYMBOLS):
        extra = many_symbols.symbols.add()
        extra.CopyFrom(template)
        extra.symbol = f"S{i}"
    req = decision_pb2.AssessRiskRequest(portfolio_id="none", market=many_symbols)  # checked before any lookup
    with pytest.raises(grpc.RpcError) as err:
        stub.AssessRisk(req, metadata=server.md("viewer"), timeout=30)
    _refused(err.value, "market.symbols", str(MAX_SYMBOLS))

    long_history = green_market(day)
    bars = long_history.symbols[0].bars
    first = dt.date.fromisoformat(bars[0].date)
    old = [
        decision_pb2.Bar(
            date=(first - dt.timedelta(days=i + 1)).isoformat(), open=60, high=61, low=59, close=60, volume=1
        )
        for i in range(MAX_BARS)
    ]
    recent = list(bars)
    del bars[:]
    bars.extend([*reversed(old), *recent])
    with pytest.raises(grpc.RpcError) as err:
        stub.AssessRisk(
            decision_pb2.AssessRiskRequest(portfolio_id="none", market=long_history),
            metadata=server.md("viewer"),
            timeout=30,
        )
    _refused(err.value, "market.symbols[0].bars", str(MAX_BARS))

    quote = decision_pb2.OptionQuote(kind=common_pb2.OPTION_KIND_PUT, strike=100, bid=1, ask=1.1, iv=0.3)
    select = decision_pb2.SelectStrikeRequest(
        kind=common_pb2.OPTION_KIND_PUT,
        spot=100,
        t=0.02,
        iv=0.3,
        band_low=20,
        band_high=30,
        chain=[quote] * (MAX_CHAIN + 1),
    )
    with pytest.raises(grpc.RpcError) as err:
        stub.SelectStrike(select, metadata=server.md("viewer"), timeout=30)
    _refused(err.value, "chain", str(MAX_CHAIN))
    assert server.tracebacks() == []
