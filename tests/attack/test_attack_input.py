"""Hostile values in otherwise well-formed requests, against a real server with API keys on: every one is
INVALID_ARGUMENT naming the field, nothing absurd is ever stored, and the server logs no traceback.

Found on main before the fix: a RecordFill at price.units = 10**17 was committed and answered INTERNAL, and the
portfolio then answered INTERNAL to every GetPortfolio and RunWeeklyCycle (Money out of int64 range); RecordFill
quantity=inf, Project seed=-1, Money at int64 max and deeply nested or 5000-digit JSON in CheckCompliance were
INTERNAL; a request whose bytes do not parse was UNKNOWN with a traceback in the log.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from allsuse.v1 import (
    agent_pb2,
    common_pb2,
    decision_pb2,
    decision_pb2_grpc,
    monitor_pb2,
    portfolio_pb2,
    portfolio_pb2_grpc,
)
from tests.attack.input_support import TIMEOUT, Server, serve_logged, ts
from tests.rpc_support import green_market, money

INT64_MAX = 2**63 - 1
DAY = dt.date(2024, 3, 7)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_logged(tmp_path_factory.mktemp("attack-input")) as running:
        yield running


@pytest.fixture(scope="module")
def channel(server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture(autouse=True)
def no_traceback_logged(server: Server) -> Iterator[None]:
    yield
    assert server.tracebacks() == [], server.log()[-4000:]


def _portfolio(server: Server, channel: grpc.Channel) -> str:
    stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
    req = portfolio_pb2.CreatePortfolioRequest(total=money(1_000_000), at=ts(dt.date(2024, 2, 1), 9, 30))
    return str(stub.CreatePortfolio(req, metadata=server.md("trader"), timeout=TIMEOUT).portfolio_id)


def _invalid(call: Callable[[], Any], field: str) -> str:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.value.code(), err.value.details())
    details = err.value.details() or ""
    assert field in details, details
    return details


def test_an_absurd_fill_price_is_refused_before_anything_is_written(server: Server, channel: grpc.Channel) -> None:
    stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
    pid = _portfolio(server, channel)
    before = stub.GetPortfolio(portfolio_pb2.GetPortfolioRequest(portfolio_id=pid), metadata=server.md(), timeout=10)
    fill = portfolio_pb2.RecordFillRequest(
        portfolio_id=pid,
        account_id=f"{pid}/gen-1",
        symbol="NVDA",
        kind="put",
        side="sell_to_open",
        strike=100.0,
        expiry="2024-03-15",
        quantity=1,
        price=common_pb2.Money(currency_code="USD", units=10**17),
        at=ts(DAY),
    )
    details = _invalid(lambda: stub.RecordFill(fill, metadata=server.md("trader"), timeout=TIMEOUT), "price")
    assert "must be at most 10000000 USD" in details, details
    # Nothing was written: the portfolio reads back as before, and the weekly cycle still runs on it.
    after = stub.GetPortfolio(portfolio_pb2.GetPortfolioRequest(portfolio_id=pid), metadata=server.md(), timeout=10)
    assert after == before
    report = stub.RunWeeklyCycle(
        portfolio_pb2.RunWeeklyCycleRequest(portfolio_id=pid, as_of=ts(DAY)), metadata=server.md("trader"), timeout=10
    )
    assert report.portfolio.portfolio_id == pid
    # An ordinary fill right after still works.
    fill.price.CopyFrom(money(2.5))
    done = stub.RecordFill(fill, metadata=server.md("trader"), timeout=TIMEOUT)
    assert done.transaction.amount.units == 250


def test_a_fill_whose_cash_would_exceed_the_money_limit_is_refused(server: Server, channel: grpc.Channel) -> None:
    stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
    pid = _portfolio(server, channel)
    # A short call takes no cash at entry, so nothing but the money limit stops 9e6 contracts at $9e6 each.
    sell = portfolio_pb2.RecordFillRequest(
        portfolio_id=pid,
        account_id=f"{pid}/gen-1",
        symbol="NVDA",
        kind="call",
        side="sell_to_open",
        strike=100.0,
        expiry="2024-03-15",
        quantity=9_000_000,
        price=money(9_000_000),
        at=ts(DAY),
    )
    _invalid(lambda: stub.RecordFill(sell, metadata=server.md("trader"), timeout=TIMEOUT), "quantity")
    stub.GetPortfolio(portfolio_pb2.GetPortfolioRequest(portfolio_id=pid), metadata=server.md(), timeout=TIMEOUT)


BIG = common_pb2.Money(currency_code="USD", units=INT64_MAX, cents=99)
NEG = common_pb2.Money(currency_code="USD", units=-(2**63), cents=-99)


def _requests(pid: str) -> list[tuple[str, str, Any, str]]:
    account = f"{pid}/gen-1"
    fill = {"portfolio_id": pid, "account_id": account, "symbol": "NVDA", "kind": "put", "side": "sell_to_open"}
    fill |= {"strike": 100.0, "expiry": "2024-03-15", "at": ts(DAY)}
    return [
        ("portfolio", "CreatePortfolio", portfolio_pb2.CreatePortfolioRequest(total=BIG), "total"),
        (
            "portfolio",
            "Withdraw",
            portfolio_pb2.WithdrawRequest(portfolio_id=pid, account_id=account, amount=BIG),
            "amount",
        ),
        ("portfolio", "RecordFill", portfolio_pb2.RecordFillRequest(**fill, quantity=1, price=BIG), "price"),
        (
            "portfolio",
            "RecordFill",
            portfolio_pb2.RecordFillRequest(**fill, quantity=float("inf"), price=money(1)),
            "quantity",
        ),
        (
            "portfolio",
            "RecordFill",
            portfolio_pb2.RecordFillRequest(**fill, quantity=1e300, price=money(1)),
            "quantity",
        ),
        (
            "portfolio",
            "RecordFill",
            portfolio_pb2.RecordFillRequest(**{**fill, "strike": 1e300}, quantity=1, price=money(1)),
            "strike",
        ),
        ("portfolio", "Project", portfolio_pb2.ProjectRequest(total=money(1000), years=5, seed=-1), "seed"),
        ("portfolio", "Project", portfolio_pb2.ProjectRequest(total=BIG, years=5), "total"),
        ("portfolio", "Project", portfolio_pb2.ProjectRequest(total=money(10**12), years=100), "years"),
        (
            "decision",
            "SizePosition",
            decision_pb2.SizePositionRequest(equity=BIG, free_cash=money(1), strike=100, size_share=0.1),
            "equity",
        ),
        (
            "decision",
            "SizePosition",
            decision_pb2.SizePositionRequest(equity=money(1e6), free_cash=NEG, strike=100, size_share=0.1),
            "free_cash",
        ),
        (
            "decision",
            "SizePosition",
            decision_pb2.SizePositionRequest(equity=money(1e6), free_cash=money(1e6), strike=1e308, size_share=0.1),
            "strike",
        ),
        (
            "decision",
            "CheckCompliance",
            decision_pb2.CheckComplianceRequest(context_json="[" * 100_000 + "]" * 100_000),
            "context_json",
        ),
        (
            "decision",
            "CheckCompliance",
            decision_pb2.CheckComplianceRequest(context_json='{"a": ' + "[" * 20_000 + "]" * 20_000 + "}"),
            "context_json",
        ),
        (
            "decision",
            "CheckCompliance",
            decision_pb2.CheckComplianceRequest(context_json='{"a": ' + "9" * 5000 + "}"),
            "context_json",
        ),
        (
            "decision",
            "CheckCompliance",
            decision_pb2.CheckComplianceRequest(context_json='{"vix": NaN}'),
            "context_json",
        ),
        (
            "decision",
            "CheckCompliance",
            decision_pb2.CheckComplianceRequest(context_json=json.dumps({"vix": 1e308 * 10})),
            "context_json",
        ),
        (
            "decision",
            "ClassifyWeek",
            decision_pb2.ClassifyWeekRequest(position="SHORT_PUT", move_pct=float("nan")),
            "move_pct",
        ),
        (
            "decision",
            "SelectStrike",
            decision_pb2.SelectStrikeRequest(
                kind=common_pb2.OPTION_KIND_PUT, spot=float("inf"), t=0.02, iv=0.3, band_low=20, band_high=30
            ),
            "spot",
        ),
        ("decision", "RecordOutcome", "outcome", "realised_pnl"),
        ("agent", "Converse", agent_pb2.ConverseRequest(message="status\x00"), "message"),
        (
            "monitor",
            "GetReport",
            monitor_pb2.GetReportRequest(portfolio_id=pid, kind="weekly", as_of=_far_future()),
            "as_of",
        ),
    ]


def _far_future() -> Any:
    t = ts(DAY)
    t.seconds = INT64_MAX
    return t


CASES = [(c[1], c[3]) for c in _requests("p")]


@pytest.mark.parametrize(
    ("index", "method", "field"), [(i, *c) for i, c in enumerate(CASES)], ids=[f"{m}-{f}" for m, f in CASES]
)
def test_extreme_values_are_invalid_argument_naming_the_field(
    server: Server, channel: grpc.Channel, index: int, method: str, field: str
) -> None:
    from allsuse.v1 import agent_pb2_grpc, monitor_pb2_grpc

    pid = _portfolio(server, channel)
    service, name, request, want = _requests(pid)[index]
    stubs = {
        "portfolio": portfolio_pb2_grpc.PortfolioServiceStub(channel),
        "decision": decision_pb2_grpc.DecisionServiceStub(channel),
        "agent": agent_pb2_grpc.AgentServiceStub(channel),
        "monitor": monitor_pb2_grpc.MonitorServiceStub(channel),
    }
    if request == "outcome":  # an outcome needs a decision first
        decision = stubs["decision"].Decide(
            decision_pb2.DecideRequest(
                portfolio_id=pid, account_id=f"{pid}/gen-1", symbol="NVDA", as_of=ts(DAY), market=green_market(DAY)
            ),
            metadata=server.md("trader"),
            timeout=TIMEOUT,
        )
        request = decision_pb2.RecordOutcomeRequest(decision_id=decision.decision_id, right=True, realised_pnl=BIG)
    call = getattr(stubs[service], name)
    _invalid(lambda: call(request, metadata=server.md("admin"), timeout=TIMEOUT), want)


UNARY = [
    ("allsuse.v1.PortfolioService", "GetPortfolio"),
    ("allsuse.v1.PortfolioService", "RecordFill"),
    ("allsuse.v1.DecisionService", "Decide"),
    ("allsuse.v1.DecisionService", "CheckCompliance"),
    ("allsuse.v1.MonitorService", "GetMetrics"),
    ("allsuse.v1.AgentService", "Converse"),
    ("grpc.health.v1.Health", "Check"),
]
GARBAGE = [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xff\xfe", b"\x08" + b"\xff" * 11]


@pytest.mark.parametrize(("service", "method"), UNARY, ids=[m for _, m in UNARY])
def test_undecodable_bytes_are_invalid_argument_not_unknown(
    server: Server, channel: grpc.Channel, service: str, method: str
) -> None:
    from google.protobuf import descriptor_pool, message_factory
    from grpc_health.v1 import health_pb2  # noqa: F401

    from allsuse.v1 import agent_pb2_grpc, monitor_pb2_grpc  # noqa: F401 - registers every allsuse.v1 service

    request_type = message_factory.GetMessageClass(
        descriptor_pool.Default().FindMethodByName(f"{service}.{method}").input_type
    )
    raw = channel.unary_unary(f"/{service}/{method}", request_serializer=None, response_deserializer=None)
    for blob in GARBAGE:
        try:
            request_type.FromString(blob)
            continue  # these bytes happen to parse as this type (bad UTF-8 in an unknown field of an empty message)
        except Exception:
            pass
        with pytest.raises(grpc.RpcError) as err:
            raw(blob, metadata=server.md("admin"), timeout=TIMEOUT)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (blob, err.value.code(), err.value.details())
        assert "request" in (err.value.details() or "")
        trailers = dict(err.value.trailing_metadata() or ())
        assert trailers.get("x-invalid-field") == "request"
        assert trailers.get("x-request-id")


def test_undecodable_bytes_without_a_key_are_refused_by_auth_first(server: Server, channel: grpc.Channel) -> None:
    raw = channel.unary_unary("/allsuse.v1.PortfolioService/GetPortfolio")
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\xff\xff\xff", timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
