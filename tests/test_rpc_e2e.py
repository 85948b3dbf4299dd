"""Every RPC end to end against a real `allsuse serve` process on 127.0.0.1 with API keys on: the happy paths,
the auth matrix on the real services, and INVALID_ARGUMENT naming the field for bad input of each RPC."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from allsuse.store import Store
from allsuse.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    common_pb2,
    decision_pb2,
    decision_pb2_grpc,
    monitor_pb2,
    monitor_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
)
from tests.rpc_support import TIMEOUT, as_float, bearer, green_market, money, serve

THURSDAY = dt.date(2024, 3, 7)


def ts(day: dt.date, hour: int = 15, minute: int = 45) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt.datetime.combine(day, dt.time(hour, minute)))
    return t


class Clients:
    def __init__(self, channel: grpc.Channel, tokens: dict[str, str]) -> None:
        self.decision = decision_pb2_grpc.DecisionServiceStub(channel)
        self.portfolio = portfolio_pb2_grpc.PortfolioServiceStub(channel)
        self.monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
        self.agent = agent_pb2_grpc.AgentServiceStub(channel)
        self.tokens = tokens

    def md(self, who: str) -> tuple[tuple[str, str], ...]:
        return bearer(self.tokens[who])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    db = tmp_path_factory.mktemp("e2e") / "allsuse.db"
    store = Store(db)
    tokens = {role: store.create_api_key(role).token for role in ("viewer", "trader", "admin")}
    tokens["trader2"] = store.create_api_key("trader").token
    store.close()
    with serve(str(db), auth=True) as (address, _proc), grpc.insecure_channel(address) as channel:
        yield Clients(channel, tokens)


def create(api: Clients, who: str = "trader", total: float = 1_000_000, pid: str = "") -> portfolio_pb2.Portfolio:
    req = portfolio_pb2.CreatePortfolioRequest(portfolio_id=pid, total=money(total), at=ts(dt.date(2024, 2, 1), 9, 30))
    return api.portfolio.CreatePortfolio(req, metadata=api.md(who), timeout=TIMEOUT)


def decide(api: Clients, pid: str, key: str = "", who: str = "trader", **kw: Any) -> decision_pb2.Decision:
    req = decision_pb2.DecideRequest(
        portfolio_id=pid,
        account_id=f"{pid}/gen-1",
        symbol="NVDA",
        as_of=ts(THURSDAY),
        market=kw.pop("market", green_market(THURSDAY)),
        idempotency_key=key,
        **kw,
    )
    return api.decision.Decide(req, metadata=api.md(who), timeout=TIMEOUT)


def test_create_and_get_portfolio(api: Clients) -> None:
    p = create(api, total=100_000)
    deployable = {a.type: as_float(a.deployable) for a in p.accounts}
    assert deployable == {"gen": 38_000.0, "rev": 28_500.0, "com": 28_500.0}
    got = api.portfolio.GetPortfolio(
        portfolio_pb2.GetPortfolioRequest(portfolio_id=p.portfolio_id), metadata=api.md("viewer"), timeout=TIMEOUT
    )
    assert got.equity == common_pb2.Money(currency_code="USD", units=100_000, cents=0)
    assert [a.account_id for a in got.accounts] == [a.account_id for a in p.accounts]


def test_decide_and_replay_by_idempotency_key(api: Clients) -> None:
    pid = create(api).portfolio_id
    d = decide(api, pid, key="k-1")
    assert d.action == decision_pb2.ACTION_OPEN_PUT, d.explanation
    assert d.market_label == "green" and 40 <= d.order.delta <= 50 and d.order.contracts >= 1
    assert d.order.expiry == "2024-03-08" and d.approval_status == "PENDING" and d.requires_approval
    assert any(r.code == "R09_ES_BUDGET" and r.passed for r in d.compliance)
    again = decide(api, pid, key="k-1")
    assert again.decision_id == d.decision_id and again == d


def test_approve_and_record_outcome_move_trust(api: Clients) -> None:
    pid = create(api).portfolio_id
    d = decide(api, pid, key="k-approve")
    approved = api.decision.ApproveDecision(
        decision_pb2.ApproveDecisionRequest(decision_id=d.decision_id, approve=True, note="ok"),
        metadata=api.md("trader"),
        timeout=TIMEOUT,
    )
    assert approved.approval_status == "APPROVED"
    with pytest.raises(grpc.RpcError) as err:
        api.decision.ApproveDecision(
            decision_pb2.ApproveDecisionRequest(decision_id=d.decision_id, approve=True),
            metadata=api.md("trader"),
            timeout=TIMEOUT,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    out = api.decision.RecordOutcome(
        decision_pb2.RecordOutcomeRequest(
            decision_id=d.decision_id, right=True, realised_pnl=money(310.0), at=ts(THURSDAY)
        ),
        metadata=api.md("trader"),
        timeout=TIMEOUT,
    )
    assert out.trust_kind == "entry"
    assert out.trust == pytest.approx(0.3 + 0.02 * d.confidence)


def _fill_of(pid: str, d: decision_pb2.Decision) -> portfolio_pb2.RecordFillRequest:
    return portfolio_pb2.RecordFillRequest(
        portfolio_id=pid,
        account_id=d.account_id,
        decision_id=d.decision_id,
        symbol=d.symbol,
        kind="put",
        side="sell_to_open",
        strike=d.order.strike,
        expiry=d.order.expiry,
        quantity=d.order.contracts,
        price=d.order.limit_price,
        at=ts(THURSDAY, 15, 50),
    )


def test_a_fill_executes_a_pending_decision_and_a_declined_one_cannot_be_filled(api: Clients) -> None:
    """A decision is a proposal until it is executed or approved (PROTOCOL section 10): v1 ignored the fill's
    decision_id, so an executed PENDING decision stayed pending and its effects never applied."""
    pid = create(api).portfolio_id
    d = decide(api, pid, key="k-fill")
    assert d.approval_status == "PENDING"
    api.portfolio.RecordFill(_fill_of(pid, d), metadata=api.md("trader"), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as err:  # executed by the fill: no longer pending
        api.decision.ApproveDecision(
            decision_pb2.ApproveDecisionRequest(decision_id=d.decision_id, approve=True),
            metadata=api.md("trader"),
            timeout=TIMEOUT,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "APPROVED" in (err.value.details() or "")
    pid2 = create(api).portfolio_id
    d2 = decide(api, pid2, key="k-decline")
    api.decision.ApproveDecision(
        decision_pb2.ApproveDecisionRequest(decision_id=d2.decision_id, approve=False, note="no"),
        metadata=api.md("trader"),
        timeout=TIMEOUT,
    )
    with pytest.raises(grpc.RpcError) as err:
        api.portfolio.RecordFill(_fill_of(pid2, d2), metadata=api.md("trader"), timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "DECLINED" in (err.value.details() or "")


def test_building_block_rpcs(api: Clients) -> None:
    md = api.md("viewer")
    w = api.decision.ClassifyWeek(
        decision_pb2.ClassifyWeekRequest(position="SHORT_PUT", move_pct=-1.0, roll_available=True),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert w.code == "P-EW"
    s = api.decision.SizePosition(
        decision_pb2.SizePositionRequest(equity=money(38_000), free_cash=money(38_000), strike=30.0, size_share=0.125),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert (s.contracts, s.binding, as_float(s.budget)) == (1, "target", 4750.0)
    k = api.decision.SelectStrike(
        decision_pb2.SelectStrikeRequest(
            kind=common_pb2.OPTION_KIND_PUT, spot=250.0, t=5 / 365, iv=0.35, band_low=40, band_high=50
        ),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert k.found and 40 <= k.delta <= 50 and k.strike % 5 == 0
    c = api.decision.CheckCompliance(
        decision_pb2.CheckComplianceRequest(
            context_json=json.dumps(
                {"kind": "close", "contracts": 51, "limit_price": 1.0, "mid": 1.0, "orders_last_minute": 0}
            )
        ),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert c.outcome == decision_pb2.OUTCOME_REQUIRES_APPROVAL
    assert any(r.message == "R14_MAX_ORDER_SIZE: contracts=51 max=50" for r in c.results)


def test_assess_risk_with_a_proposed_order(api: Clients) -> None:
    pid = create(api).portfolio_id
    req = decision_pb2.AssessRiskRequest(
        portfolio_id=pid,
        market=green_market(THURSDAY),
        as_of=ts(THURSDAY),
        account_id=f"{pid}/gen-1",
        symbol="NVDA",
        proposed=decision_pb2.Order(
            kind=common_pb2.OPTION_KIND_PUT, strike=190.0, expiry="2024-03-15", contracts=2, limit_price=money(1.5)
        ),
    )
    r = api.decision.AssessRisk(req, metadata=api.md("viewer"), timeout=TIMEOUT)
    assert r.scenarios > 200 and as_float(r.es_before) == 0.0 and r.within_budget


def test_assess_risk_stresses_the_held_book(api: Clients) -> None:
    from allsuse.protocol.positions import Position
    from allsuse.protocol.stress import StressScenario, shock
    from allsuse.server.convert import market_in

    pid = create(api, total=100_000).portfolio_id
    md = api.md("trader")
    fill = portfolio_pb2.RecordFillRequest(
        portfolio_id=pid, account_id=f"{pid}/gen-1", symbol="NVDA", kind="put", side="sell_to_open", strike=180.0,
        expiry="2024-03-15", quantity=2, price=money(2.0), at=ts(THURSDAY),
    )  # fmt: skip
    api.portfolio.RecordFill(fill, metadata=md, timeout=TIMEOUT)
    snapshot = green_market(THURSDAY)
    req = decision_pb2.AssessRiskRequest(portfolio_id=pid, market=snapshot, as_of=ts(THURSDAY))
    r = api.decision.AssessRisk(req, metadata=api.md("viewer"), timeout=TIMEOUT)
    names = [s.scenario for s in r.stress]
    assert names == ["2008", "2020", "flash_crash", "volatility_spike", "rate_shock", "worst_5_day_window"]
    by = {s.scenario: s for s in r.stress}
    # The same book revalued in-process: two short 180 puts of NVDA, -40% and IV x3.
    put = Position("x", f"{pid}/gen-1", "NVDA", "put", -2.0, THURSDAY, 180.0, dt.date(2024, 3, 15), 2.0)
    (direct,) = shock([put], market_in(snapshot), THURSDAY, [StressScenario("2008", -0.4, 3.0)],
                      equity=1.0, account_equity={})  # fmt: skip
    assert as_float(by["2008"].pnl) == pytest.approx(direct.pnl, abs=0.006) and direct.pnl < -10_000
    (gen,) = by["2008"].accounts
    assert gen.account_id == f"{pid}/gen-1" and as_float(gen.pnl) == as_float(by["2008"].pnl)
    assert by["2008"].share_of_equity == pytest.approx(direct.pnl / 100_400.0, rel=0.02)
    replay = by["worst_5_day_window"]
    assert replay.historical and replay.window_start < replay.window_end <= THURSDAY.isoformat()
    assert not by["2008"].historical and by["2008"].window_start == ""


def test_fills_withdrawals_weekly_cycle_projection_and_reset(api: Clients) -> None:
    pid = create(api, total=100_000).portfolio_id
    md = api.md("trader")
    fill = api.portfolio.RecordFill(
        portfolio_pb2.RecordFillRequest(
            portfolio_id=pid,
            account_id=f"{pid}/gen-1",
            symbol="NVDA",
            kind="put",
            side="sell_to_open",
            strike=30.0,
            expiry="2024-03-08",
            quantity=1,
            price=money(0.85),
            at=ts(THURSDAY),
        ),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert fill.position.quantity == -1 and as_float(fill.transaction.amount) == 85.0
    close = api.portfolio.RecordFill(
        portfolio_pb2.RecordFillRequest(
            portfolio_id=pid,
            account_id=f"{pid}/gen-1",
            kind="put",
            side="buy_to_close",
            position_id=fill.position.position_id,
            quantity=1,
            price=money(0.10),
            at=ts(THURSDAY),
        ),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert as_float(close.transaction.amount) == -10.0
    tx = api.portfolio.Withdraw(
        portfolio_pb2.WithdrawRequest(portfolio_id=pid, account_id=f"{pid}/rev-1", amount=money(1000), reason="income"),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert as_float(tx.amount) == -1000.0
    with pytest.raises(grpc.RpcError) as err:
        api.portfolio.Withdraw(
            portfolio_pb2.WithdrawRequest(portfolio_id=pid, account_id=f"{pid}/com-1", amount=money(1)),
            metadata=md,
            timeout=TIMEOUT,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "R18_NO_WITHDRAWAL" in (err.value.details() or "")
    cycle = api.portfolio.RunWeeklyCycle(
        portfolio_pb2.RunWeeklyCycleRequest(portfolio_id=pid, as_of=ts(dt.date(2024, 3, 8), 16, 5)),
        metadata=md,
        timeout=TIMEOUT,
    )
    assert not cycle.forked and as_float(cycle.portfolio.equity) == 100_000 + 85 - 10 - 1000
    proj = api.portfolio.Project(
        portfolio_pb2.ProjectRequest(total=money(100_000), years=3, paths=200, seed=1),
        metadata=api.md("viewer"),
        timeout=TIMEOUT,
    )
    assert [y.year for y in proj.years] == [1, 2, 3]
    reset = portfolio_pb2.ResetAccountRequest(portfolio_id=pid, account_id=f"{pid}/gen-1", reason="operator check")
    with pytest.raises(grpc.RpcError) as err:
        api.portfolio.ResetAccount(reset, metadata=md, timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert api.portfolio.ResetAccount(reset, metadata=api.md("admin"), timeout=TIMEOUT).state == "ACTIVE"


def test_monitor_metrics_alert_stream_and_report(api: Clients) -> None:
    pid = create(api).portfolio_id
    received: list[Any] = []
    stream = api.monitor.StreamAlerts(
        monitor_pb2.StreamAlertsRequest(portfolio_id=pid), metadata=api.md("viewer"), timeout=TIMEOUT
    )

    def read() -> None:
        try:
            for alert in stream:
                received.append(alert)
                return
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    import time

    time.sleep(0.5)  # let the stream subscribe
    blocked = decide(api, pid, key="k-vix", market=green_market(THURSDAY, vix=66.0))
    assert blocked.action == decision_pb2.ACTION_NO_TRADE and blocked.outcome == decision_pb2.OUTCOME_REJECTED
    reader.join(timeout=TIMEOUT)
    stream.cancel()
    assert received and received[0].code == "DECISION_REJECTED" and "R11_VIX_BREAKER" in received[0].message
    assert received[0].severity == "MEDIUM"
    metrics = api.monitor.GetMetrics(monitor_pb2.GetMetricsRequest(), metadata=api.md("viewer"), timeout=TIMEOUT)
    assert metrics.build.core_profile == "release"
    assert metrics.decisions_by_outcome["REJECTED"] >= 1
    states = {c.name: c.state for c in metrics.components}
    assert states and set(states.values()) == {"RUNNING"}, states
    report = api.monitor.GetReport(
        monitor_pb2.GetReportRequest(portfolio_id=pid, kind="weekly", as_of=ts(THURSDAY, 17, 0)),
        metadata=api.md("viewer"),
        timeout=TIMEOUT,
    )
    body = json.loads(report.json)
    assert body["decisions"] == 1 and body["rejected"] == [blocked.decision_id]
    assert "Weekly report" in report.text


def test_agent_converses_and_keeps_state(api: Clients) -> None:
    pid = create(api).portfolio_id
    decide(api, pid, key="k-agent")
    first = api.agent.Converse(
        agent_pb2.ConverseRequest(portfolio_id=pid, message="hello"), metadata=api.md("viewer"), timeout=TIMEOUT
    )
    assert first.intent == "greeting" and first.conversation_id
    why = api.agent.Converse(
        agent_pb2.ConverseRequest(conversation_id=first.conversation_id, message="why the last decision?"),
        metadata=api.md("viewer"),
        timeout=TIMEOUT,
    )
    assert why.intent == "explain_decision" and "OPEN_PUT" in why.reply and len(why.decision_ids) == 1
    week = api.agent.Converse(
        agent_pb2.ConverseRequest(conversation_id=first.conversation_id, message="week type of a short put down 3.2%"),
        metadata=api.md("viewer"),
        timeout=TIMEOUT,
    )
    assert week.reply.startswith("P-AWL")


def _code(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as e:
        return e.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_auth_matrix_on_the_real_services(api: Clients) -> None:
    pid = create(api).portfolio_id
    get = portfolio_pb2.GetPortfolioRequest(portfolio_id=pid)
    assert _code(lambda: api.portfolio.GetPortfolio(get, timeout=TIMEOUT)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        _code(lambda: api.portfolio.GetPortfolio(get, metadata=bearer("nokey.nosecret"), timeout=TIMEOUT))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    for who in ("viewer", "trader", "admin"):
        md = api.md(who)
        assert _code(lambda md=md: api.portfolio.GetPortfolio(get, metadata=md, timeout=TIMEOUT)) == grpc.StatusCode.OK
    assert _code(lambda: decide(api, pid, who="viewer")) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: decide(api, pid, who="trader2")) == grpc.StatusCode.PERMISSION_DENIED  # not its portfolio
    assert _code(lambda: decide(api, pid, key="k-admin", who="admin")) == grpc.StatusCode.OK
    assert _code(lambda: create(api, who="viewer")) == grpc.StatusCode.PERMISSION_DENIED


BAD = [
    ("decision", "Decide", decision_pb2.DecideRequest(portfolio_id="", account_id="a", symbol="NVDA"), "portfolio_id"),
    ("decision", "Decide", "bad_bar_date", "bars[0].date"),
    ("decision", "AssessRisk", decision_pb2.AssessRiskRequest(portfolio_id="PID", confidence=1.5), "confidence"),
    (
        "decision",
        "SizePosition",
        decision_pb2.SizePositionRequest(equity=money(-1), free_cash=money(1), strike=30, size_share=0.1),
        "equity",
    ),
    (
        "decision",
        "SelectStrike",
        decision_pb2.SelectStrikeRequest(kind=0, spot=100, t=0.01, iv=0.3, band_low=40, band_high=50),
        "kind",
    ),
    ("decision", "ClassifyWeek", decision_pb2.ClassifyWeekRequest(position="NAKED", move_pct=1.0), "position"),
    ("decision", "CheckCompliance", decision_pb2.CheckComplianceRequest(context_json="{nope"), "context_json"),
    ("decision", "ApproveDecision", decision_pb2.ApproveDecisionRequest(decision_id=""), "decision_id"),
    ("decision", "RecordOutcome", decision_pb2.RecordOutcomeRequest(decision_id=""), "decision_id"),
    (
        "portfolio",
        "CreatePortfolio",
        portfolio_pb2.CreatePortfolioRequest(total=common_pb2.Money(units=100, cents=250)),
        "total.cents",
    ),
    ("portfolio", "GetPortfolio", portfolio_pb2.GetPortfolioRequest(portfolio_id=""), "portfolio_id"),
    ("portfolio", "RecordFill", "bad_fill", "quantity"),
    ("portfolio", "Withdraw", "bad_withdraw", "amount"),
    ("portfolio", "RunWeeklyCycle", portfolio_pb2.RunWeeklyCycleRequest(portfolio_id=""), "portfolio_id"),
    ("portfolio", "Project", portfolio_pb2.ProjectRequest(total=money(1000), years=0), "years"),
    ("portfolio", "ResetAccount", "bad_reset", "reason"),
    ("monitor", "StreamAlerts", monitor_pb2.StreamAlertsRequest(severities=["loud"]), "severities"),
    ("monitor", "GetReport", "bad_report", "kind"),
]  # Converse answers any message politely (an empty one too): tests/agent/test_scenarios.py


@pytest.mark.parametrize(("service", "method", "request_", "field"), BAD, ids=[f"{b[1]}-{b[3]}" for b in BAD])
def test_bad_input_is_invalid_argument_naming_the_field(
    api: Clients, service: str, method: str, request_: Any, field: str
) -> None:
    pid = create(api).portfolio_id
    if request_ == "bad_bar_date":
        market = green_market(THURSDAY)
        market.symbols[0].bars[0].date = "2024-02-30"
        request_ = decision_pb2.DecideRequest(portfolio_id=pid, account_id=f"{pid}/gen-1", symbol="NVDA", market=market)
    elif request_ == "bad_fill":
        request_ = portfolio_pb2.RecordFillRequest(
            portfolio_id=pid, account_id=f"{pid}/gen-1", kind="put", side="sell_to_open", quantity=0.5
        )
    elif request_ == "bad_withdraw":
        request_ = portfolio_pb2.WithdrawRequest(portfolio_id=pid, account_id=f"{pid}/gen-1", amount=money(0))
    elif request_ == "bad_reset":
        request_ = portfolio_pb2.ResetAccountRequest(portfolio_id=pid, account_id=f"{pid}/gen-1")
    elif request_ == "bad_report":
        request_ = monitor_pb2.GetReportRequest(portfolio_id=pid, kind="hourly")
    elif isinstance(request_, decision_pb2.AssessRiskRequest):
        request_.portfolio_id = pid
    stub = {"decision": api.decision, "portfolio": api.portfolio, "monitor": api.monitor, "agent": api.agent}[service]
    call = getattr(stub, method)
    with pytest.raises(grpc.RpcError) as err:
        result = call(request_, metadata=api.md("admin"), timeout=TIMEOUT)
        if method == "StreamAlerts":
            next(iter(result))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    details = err.value.details() or ""
    assert field in details, details
    assert "Traceback" not in details and "/work/" not in details
