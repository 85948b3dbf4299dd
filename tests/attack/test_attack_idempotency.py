"""Idempotency keys and concurrent writes, attacked through a real `allsuse serve` with API keys on.

A key belongs to (principal, portfolio, RPC): another trader's key never returns their result, a key reused with a
different request body is FAILED_PRECONDITION, and a retry of any write after a lost reply returns the first result
and changes nothing. Two concurrent approvals of one decision never both succeed. Closed positions are closed in
the store's positions table.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from allsuse.store import Store
from allsuse.v1 import decision_pb2, decision_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import TIMEOUT, as_float, bearer, green_market, money, serve
from tests.test_rpc_e2e import THURSDAY, ts

FRIDAY_CLOSE = ts(dt.date(2024, 3, 8), 16, 5)


class Api:
    def __init__(self, channel: grpc.Channel, tokens: dict[str, str], db: Path) -> None:
        self.decision = decision_pb2_grpc.DecisionServiceStub(channel)
        self.portfolio = portfolio_pb2_grpc.PortfolioServiceStub(channel)
        self.tokens = tokens
        self.db = db

    def md(self, who: str) -> tuple[tuple[str, str], ...]:
        return bearer(self.tokens[who])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    db = tmp_path_factory.mktemp("attack-idem") / "allsuse.db"
    with Store(db) as store:
        tokens = {who: store.create_api_key(role).token for who, role in (("a", "trader"), ("b", "trader"))}
        tokens["admin"] = store.create_api_key("admin").token
    with serve(str(db), auth=True) as (address, _proc), grpc.insecure_channel(address) as channel:
        yield Api(channel, tokens, db)


def status(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def create(api: Api, who: str = "a", key: str = "", pid: str = "") -> portfolio_pb2.Portfolio:
    req = portfolio_pb2.CreatePortfolioRequest(
        portfolio_id=pid, total=money(1_000_000), at=ts(dt.date(2024, 2, 1), 9, 30)
    )
    if key:
        req.idempotency_key = key
    return api.portfolio.CreatePortfolio(req, metadata=api.md(who), timeout=TIMEOUT)


def decide_request(pid: str, key: str, vix: float = 18.0) -> decision_pb2.DecideRequest:
    return decision_pb2.DecideRequest(
        portfolio_id=pid,
        account_id=f"{pid}/gen-1",
        symbol="NVDA",
        as_of=ts(THURSDAY),
        market=green_market(THURSDAY, vix=vix),
        idempotency_key=key,
    )


def decide(api: Api, pid: str, key: str, who: str = "a", vix: float = 18.0) -> decision_pb2.Decision:
    return api.decision.Decide(decide_request(pid, key, vix), metadata=api.md(who), timeout=TIMEOUT)


def sell_put(pid: str, key: str = "", quantity: int = 2) -> portfolio_pb2.RecordFillRequest:
    req = portfolio_pb2.RecordFillRequest(
        portfolio_id=pid,
        account_id=f"{pid}/gen-1",
        symbol="NVDA",
        kind="put",
        side="sell_to_open",
        strike=190.0,
        expiry="2024-03-08",
        quantity=quantity,
        price=money(1.25),
        at=ts(THURSDAY),
    )
    if key:
        req.idempotency_key = key
    return req


def balances(api: Api, pid: str) -> dict[str, float]:
    got = api.portfolio.GetPortfolio(
        portfolio_pb2.GetPortfolioRequest(portfolio_id=pid), metadata=api.md("a"), timeout=TIMEOUT
    )
    return {a.type: as_float(a.balance) for a in got.accounts}


# --- item 4: keys are scoped to (principal, portfolio, RPC) ---------------------------------------------------------


def test_another_traders_key_never_returns_their_decision(api: Api) -> None:
    pa = create(api, "a").portfolio_id
    pb = create(api, "b").portfolio_id
    da = decide(api, pa, "shared-key", who="a")
    db = decide(api, pb, "shared-key", who="b")
    assert db.portfolio_id == pb and db.decision_id != da.decision_id
    # B sending A's key for A's portfolio is refused as any other call on A's portfolio, not answered from A's key.
    assert status(lambda: decide(api, pa, "shared-key", who="b")) == grpc.StatusCode.PERMISSION_DENIED
    # A's own retry still gets A's decision.
    assert decide(api, pa, "shared-key", who="a") == da


def test_one_key_on_two_portfolios_or_two_rpcs_is_two_requests(api: Api) -> None:
    p1, p2 = create(api).portfolio_id, create(api).portfolio_id
    d1, d2 = decide(api, p1, "same"), decide(api, p2, "same")
    assert (d1.portfolio_id, d2.portfolio_id) == (p1, p2) and d1.decision_id != d2.decision_id
    fill = api.portfolio.RecordFill(sell_put(p1, key="same"), metadata=api.md("a"), timeout=TIMEOUT)
    assert fill.position.position_id


def test_a_key_reused_with_another_body_is_failed_precondition(api: Api) -> None:
    pid = create(api).portfolio_id
    first = decide(api, pid, "k-body")
    with pytest.raises(grpc.RpcError) as err:
        decide(api, pid, "k-body", vix=19.5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "idempotency_key" in (err.value.details() or "")
    assert decide(api, pid, "k-body") == first
    withdraw = portfolio_pb2.WithdrawRequest(
        portfolio_id=pid, account_id=f"{pid}/rev-1", amount=money(100), at=ts(THURSDAY), idempotency_key="w-body"
    )
    api.portfolio.Withdraw(withdraw, metadata=api.md("a"), timeout=TIMEOUT)
    withdraw.amount.CopyFrom(money(200))
    assert status(lambda: api.portfolio.Withdraw(withdraw, metadata=api.md("a"), timeout=TIMEOUT)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    assert balances(api, pid)["rev"] == 300_000 - 100


# --- item 5: every write RPC takes a key; a retry returns the first result and changes nothing ---------------------


def test_create_portfolio_retry_creates_one_portfolio(api: Api) -> None:
    first = create(api, key="create-1")
    again = create(api, key="create-1")
    assert again == first
    with Store(api.db) as store:
        assert sum(p.id == first.portfolio_id for p in store.list_portfolios(limit=10_000)) == 1


def test_withdraw_retry_withdraws_once(api: Api) -> None:
    pid = create(api).portfolio_id
    req = portfolio_pb2.WithdrawRequest(
        portfolio_id=pid, account_id=f"{pid}/rev-1", amount=money(1000), reason="income", idempotency_key="w-1"
    )
    first = api.portfolio.Withdraw(req, metadata=api.md("a"), timeout=TIMEOUT)
    again = api.portfolio.Withdraw(req, metadata=api.md("a"), timeout=TIMEOUT)
    assert again == first
    assert balances(api, pid)["rev"] == 300_000 - 1000
    with Store(api.db) as store:
        assert len([t for t in store.list_transactions(portfolio_id=pid) if t.columns["kind"] == "withdrawal"]) == 1


def test_record_fill_retry_opens_one_position(api: Api) -> None:
    pid = create(api).portfolio_id
    first = api.portfolio.RecordFill(sell_put(pid, key="fill-1"), metadata=api.md("a"), timeout=TIMEOUT)
    again = api.portfolio.RecordFill(sell_put(pid, key="fill-1"), metadata=api.md("a"), timeout=TIMEOUT)
    assert again == first
    got = api.portfolio.GetPortfolio(
        portfolio_pb2.GetPortfolioRequest(portfolio_id=pid), metadata=api.md("a"), timeout=TIMEOUT
    )
    assert [p.position_id for p in got.positions] == [first.position.position_id]
    assert balances(api, pid)["gen"] == 400_000 + 2 * 125


def test_weekly_cycle_retry_returns_the_first_report(api: Api) -> None:
    pid = create(api).portfolio_id
    req = portfolio_pb2.RunWeeklyCycleRequest(portfolio_id=pid, as_of=FRIDAY_CLOSE, idempotency_key="cycle-1")
    first = api.portfolio.RunWeeklyCycle(req, metadata=api.md("a"), timeout=TIMEOUT)
    assert api.portfolio.RunWeeklyCycle(req, metadata=api.md("a"), timeout=TIMEOUT) == first


def _pending(api: Api, pid: str, key: str) -> decision_pb2.Decision:
    d = decide(api, pid, key)
    assert d.approval_status == "PENDING", d.explanation
    return d


def test_record_outcome_retry_moves_trust_once(api: Api) -> None:
    pid = create(api).portfolio_id
    d = _pending(api, pid, "k-outcome")
    approve = decision_pb2.ApproveDecisionRequest(decision_id=d.decision_id, approve=True, idempotency_key="ap-1")
    approved = api.decision.ApproveDecision(approve, metadata=api.md("a"), timeout=TIMEOUT)
    # A retried approval (the reply was lost) returns the first answer instead of FAILED_PRECONDITION.
    assert api.decision.ApproveDecision(approve, metadata=api.md("a"), timeout=TIMEOUT) == approved
    req = decision_pb2.RecordOutcomeRequest(
        decision_id=d.decision_id, right=True, realised_pnl=money(310.0), at=ts(THURSDAY), idempotency_key="out-1"
    )
    first = api.decision.RecordOutcome(req, metadata=api.md("a"), timeout=TIMEOUT)
    assert first.trust == pytest.approx(0.3 + 0.02 * d.confidence)
    assert api.decision.RecordOutcome(req, metadata=api.md("a"), timeout=TIMEOUT) == first
    # Without a key too: a decision has one outcome, so the same report again is answered from the stored one...
    req.idempotency_key = ""
    assert api.decision.RecordOutcome(req, metadata=api.md("a"), timeout=TIMEOUT) == first
    # ...and a different one is refused rather than moving trust a second time.
    req.right = False
    assert status(lambda: api.decision.RecordOutcome(req, metadata=api.md("a"), timeout=TIMEOUT)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    with Store(api.db) as store:
        assert len(store.list_outcomes(d.decision_id)) == 1


def test_two_concurrent_approvals_never_both_succeed(api: Api) -> None:
    pid = create(api).portfolio_id
    pairs = [(True, True), (True, False), (False, False)] * 3
    decisions = [_pending(api, pid, f"race-{i}") for i in range(len(pairs))]
    outcomes: list[list[grpc.StatusCode]] = []
    for d, (first, second) in zip(decisions, pairs, strict=True):
        barrier = threading.Barrier(2, timeout=TIMEOUT)
        codes: list[grpc.StatusCode] = []

        def approve(
            flag: bool,
            d: decision_pb2.Decision = d,
            barrier: threading.Barrier = barrier,
            codes: list[grpc.StatusCode] = codes,
        ) -> None:
            req = decision_pb2.ApproveDecisionRequest(decision_id=d.decision_id, approve=flag)
            barrier.wait()
            codes.append(status(lambda: api.decision.ApproveDecision(req, metadata=api.md("a"), timeout=TIMEOUT)))

        threads = [threading.Thread(target=approve, args=(flag,), daemon=True) for flag in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=2 * TIMEOUT)
        outcomes.append(sorted(codes, key=lambda c: c.name))
    assert outcomes == [[grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OK]] * len(pairs)
    with Store(api.db) as store:
        statuses = [store.get_decision(d.decision_id) for d in decisions]
        assert all(r is not None and r.columns["status"] in ("approved", "declined") for r in statuses)
        # Each decision's status changed exactly once in the audit log.
        mine = {d.decision_id for d in decisions}
        # (A write's entry, or one of the writes a "batch" entry covers: one unit, one entry.)
        writes = [
            w
            for e in store.audit_entries(limit=100_000)
            for w in (e.payload["writes"] if e.action == "batch" else [{"action": e.action, **e.payload}])
        ]
        ids = [w["id"] for w in writes if w["action"] == "decision.update" and w["id"] in mine]
        assert sorted(ids) == sorted(mine)


# --- item 6: positions are written when they change, closed ones marked closed ------------------------------------


def test_a_closed_position_is_closed_in_the_positions_table(api: Api) -> None:
    pid = create(api).portfolio_id
    opened = api.portfolio.RecordFill(sell_put(pid, quantity=2), metadata=api.md("a"), timeout=TIMEOUT)
    close = portfolio_pb2.RecordFillRequest(
        portfolio_id=pid,
        account_id=f"{pid}/gen-1",
        kind="put",
        side="buy_to_close",
        position_id=opened.position.position_id,
        quantity=2,
        price=money(0.10),
        at=ts(THURSDAY),
    )
    api.portfolio.RecordFill(close, metadata=api.md("a"), timeout=TIMEOUT)
    with Store(api.db) as store:
        rows = store.list_positions(portfolio_id=pid)
        assert [(r.id, r.columns["status"]) for r in rows] == [(opened.position.position_id, "closed")]
        before = store.audit_head()
    # A save that changes nothing (a withdrawal of another account) does not rewrite the positions.
    api.portfolio.Withdraw(
        portfolio_pb2.WithdrawRequest(portfolio_id=pid, account_id=f"{pid}/rev-1", amount=money(5)),
        metadata=api.md("a"),
        timeout=TIMEOUT,
    )
    with Store(api.db) as store:
        assert before is not None
        written = [e for e in store.audit_entries(after_seq=before[0]) if e.payload.get("entity") == "position"]
        assert written == []


def test_an_unusable_key_is_invalid_argument_naming_it(api: Api) -> None:
    pid = create(api).portfolio_id
    for key in ("k" * 201, "nul\x00key", "line\nbreak"):
        req = portfolio_pb2.WithdrawRequest(
            portfolio_id=pid, account_id=f"{pid}/rev-1", amount=money(1), idempotency_key=key
        )
        with pytest.raises(grpc.RpcError) as err:
            api.portfolio.Withdraw(req, metadata=api.md("a"), timeout=TIMEOUT)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith("idempotency_key:")
    assert balances(api, pid)["rev"] == 300_000
