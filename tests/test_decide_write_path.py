"""The Decide write path (issue 9, item 3): a plain Decide appends its decision and the engine state (two rows, one
audit entry); concurrent Decides on one portfolio take turns inside the server and all succeed; two replicas on
one store (SQLite file, PostgreSQL) never lose an update and answer a lost race with a retryable error at worst;
a restarted server carries on from the stored engine state; `audit verify --full` checks the new rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import grpc

from allsuse.protocol.engine import Engine
from allsuse.protocol.trust import TrustBook
from allsuse.rules import RuleBook
from allsuse.server.convert import market_in, timestamp_in
from allsuse.server.portfolios import PortfolioRepository
from allsuse.store import Store
from allsuse.v1 import decision_pb2, decision_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import TIMEOUT, green_market, money, serve
from tests.test_rpc_e2e import THURSDAY, ts

CREATED = dt.date(2024, 2, 1)


def _create(address: str, pid: str) -> None:
    with grpc.insecure_channel(address) as channel:
        portfolio_pb2_grpc.PortfolioServiceStub(channel).CreatePortfolio(
            portfolio_pb2.CreatePortfolioRequest(portfolio_id=pid, total=money(1_000_000), at=ts(CREATED, 9)),
            timeout=TIMEOUT,
        )


def _request(pid: str, account: str = "gen-1", key: str = "") -> decision_pb2.DecideRequest:
    return decision_pb2.DecideRequest(
        portfolio_id=pid,
        account_id=f"{pid}/{account}",
        symbol="NVDA",
        as_of=ts(THURSDAY),
        market=green_market(THURSDAY),
        idempotency_key=key,
    )


async def _decide_all(addresses: list[str], requests: list[decision_pb2.DecideRequest]) -> list[Any]:
    """Sends every request at once (request i to addresses[i % len]) over grpc.aio; the replies or the RpcErrors."""
    channels = [grpc.aio.insecure_channel(a) for a in addresses]
    try:
        stubs = [decision_pb2_grpc.DecisionServiceStub(c) for c in channels]
        calls = [stubs[i % len(stubs)].Decide(r, timeout=4 * TIMEOUT) for i, r in enumerate(requests)]
        return list(await asyncio.gather(*calls, return_exceptions=True))
    finally:
        for channel in channels:
            await channel.close()


def _replayed_state(store: Store, pid: str, requests: dict[str, decision_pb2.DecideRequest]) -> dict[str, Any]:
    """The engine state got by deciding again, in the order stored, every stored decision of `pid` on the
    portfolio as created (committing the AUTOMATIC ones): what a serialised run must have stored."""
    records = store.list_decisions(portfolio_id=pid, limit=10_000)
    repo = PortfolioRepository(store)
    loaded = repo.load(pid)
    portfolio = loaded.portfolio
    # The portfolio as created: every decision here leaves the accounts as they were (asserted by the callers).
    engine = Engine(rules=RuleBook.load(), trust=TrustBook())
    for record in records:
        request = requests[record.payload["account_id"]]
        as_of = timestamp_in(request.as_of, "as_of")
        decision = engine.decide(portfolio, request.account_id, request.symbol, as_of, market_in(request.market))
        assert decision.action == record.payload["action"]
        if record.payload["approval_status"] == "AUTOMATIC":
            engine.commit(decision, portfolio)
    return engine.export_state()


def _stored_state(store: Store, pid: str) -> tuple[int, dict[str, Any]]:
    state = store.get_engine_state(pid)
    assert state is not None
    return int(state.columns["version"]), dict(state.payload)


def _codes(replies: list[Any]) -> list[grpc.StatusCode]:
    return [r.code() if isinstance(r, grpc.RpcError) else grpc.StatusCode.OK for r in replies]


def test_fifty_concurrent_decides_on_one_portfolio_all_succeed_in_one_order(tmp_path: Path) -> None:
    db = str(tmp_path / "allsuse.db")
    pid = "pf-fifty"
    with serve(db, auth=False) as (address, _):
        _create(address, pid)
        with Store(db) as store:
            version_before, _ = _stored_state(store, pid)
        accounts = ["gen-1", "rev-1", "com-1"]
        requests = [_request(pid, accounts[i % 3]) for i in range(50)]
        replies = asyncio.run(_decide_all([address], requests))
        assert _codes(replies) == [grpc.StatusCode.OK] * 50, [str(r) for r in replies if isinstance(r, grpc.RpcError)]
        ids = {r.decision_id for r in replies}
    with Store(db) as store:
        stored = store.list_decisions(portfolio_id=pid, limit=1000)
        assert {r.id for r in stored} == ids and len(ids) == 50
        version, state = _stored_state(store, pid)
        # A Decide moves the version when it changes the engine state (the first of the day for an account).
        assert version_before < version <= version_before + 50
        by_account = {r.account_id: r for r in requests}
        assert state == _replayed_state(store, pid, by_account)
        assert store.verify_full().ok


def _audit_writes(store: Store, after: int) -> list[tuple[str, str]]:
    """(action, entity) of every write the audit entries after `after` record, a batch entry's one by one."""
    found = []
    for entry in store.audit_entries(after_seq=after):
        writes = entry.payload["writes"] if entry.action == "batch" else [entry.payload]
        found += [(w.get("action", entry.action), w.get("entity", "")) for w in writes]
    return found


def _row_counts(store: Store) -> dict[str, int]:
    tables = ("portfolios", "accounts", "positions", "transactions", "decisions", "engine_states", "alerts")
    counts: dict[str, int] = {}
    for table in tables:
        row = store.read(lambda c, table=table: c.one(f"SELECT count(*) FROM {table}"))
        counts[table] = int(row[0]) if row is not None else 0
    return counts


def _updated(store: Store, pid: str) -> list[str]:
    return [
        r[0]
        for r in store.read(
            lambda c: c.query(
                "SELECT updated_at FROM portfolios WHERE id = ? UNION ALL "
                "SELECT updated_at FROM accounts WHERE portfolio_id = ? ORDER BY 1",
                (pid, pid),
            )
        )
    ]


def test_a_plain_decide_writes_two_rows_and_one_audit_entry(tmp_path: Path) -> None:
    db = str(tmp_path / "allsuse.db")
    pid = "pf-plain"
    # (account, key, the writes expected): the first Decide of the day for an account changes its engine state
    # (two rows); the same Decide again changes nothing but adds its decision (one row); a keyed one also stores
    # its idempotency record. Always one audit entry.
    state = ("engine_state.put", "engine_state")
    decision = ("decision.record", "decision")
    keyed = ("idempotency.record", "idempotency")
    plan = [("gen-1", "", [state, decision]), ("gen-1", "", [decision]), ("rev-1", "k-1", [keyed, state, decision])]
    with serve(db, auth=False) as (address, _):
        _create(address, pid)
        for account, key, expected in plan:
            with Store(db) as store:
                head = store.audit_head()
                counts = _row_counts(store)
                untouched = _updated(store, pid)
            with grpc.insecure_channel(address) as channel:
                reply = decision_pb2_grpc.DecisionServiceStub(channel).Decide(
                    _request(pid, account, key=key), timeout=TIMEOUT
                )
            assert reply.outcome != decision_pb2.OUTCOME_REJECTED  # no alert: the plain path
            with Store(db) as store:
                assert head is not None
                entries = store.audit_entries(after_seq=head[0])
                assert len(entries) == 1  # one audit entry covers the whole write
                assert sorted(_audit_writes(store, head[0])) == sorted(expected)
                after = _row_counts(store)
                assert after == {**counts, "decisions": counts["decisions"] + 1}
                assert _updated(store, pid) == untouched  # the portfolio and its accounts were not rewritten
                assert store.verify_full().ok


def test_a_restarted_server_carries_on_from_the_stored_engine_state(tmp_path: Path) -> None:
    db = str(tmp_path / "allsuse.db")
    pid = "pf-restart"
    requests = [_request(pid, "gen-1"), _request(pid, "rev-1"), _request(pid, "gen-1")]
    with serve(db, auth=False) as (address, _):
        _create(address, pid)
        first = asyncio.run(_decide_all([address], requests[:2]))
        assert _codes(first) == [grpc.StatusCode.OK] * 2
    with serve(db, auth=False) as (address, _):  # a new process: nothing in memory
        second = asyncio.run(_decide_all([address], requests[2:]))
        assert _codes(second) == [grpc.StatusCode.OK]
    with Store(db) as store:
        _, state = _stored_state(store, pid)
        assert state == _replayed_state(store, pid, {r.account_id: r for r in requests})


RETRYABLE = "changed meanwhile"


def test_two_replicas_racing_on_one_portfolio_lose_no_update(store_url: str) -> None:
    pid = "pf-race"
    with serve(store_url, auth=False) as (a, _), serve(store_url, auth=False) as (b, _):
        _create(a, pid)
        with Store(store_url) as store:
            version_before, _ = _stored_state(store, pid)
        # Decides from both replicas at once: each succeeds, or (after its replica reloaded and retried once)
        # fails with a retryable FAILED_PRECONDITION; nothing else.
        requests = [_request(pid, ("gen-1", "rev-1")[i % 2]) for i in range(40)]
        replies = asyncio.run(_decide_all([a, b], requests))
        bad = [
            r
            for r in replies
            if isinstance(r, grpc.RpcError)
            and not (r.code() == grpc.StatusCode.FAILED_PRECONDITION and RETRYABLE in (r.details() or ""))
        ]
        assert bad == []
        decided = {r.decision_id for r in replies if not isinstance(r, grpc.RpcError)}
        print(f"decides: {len(decided)} of {len(requests)} acknowledged, the rest answered 'retry'")
        assert decided

        # Withdrawals from both replicas at once, from threads: every acknowledged one is in the balance.
        acked: list[int] = []
        lock = threading.Lock()

        def withdraw(address: str, n: int) -> None:
            with grpc.insecure_channel(address) as channel:
                stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
                for _ in range(n):
                    try:
                        stub.Withdraw(
                            portfolio_pb2.WithdrawRequest(
                                portfolio_id=pid, account_id=f"{pid}/rev-1", amount=money(100), at=ts(THURSDAY)
                            ),
                            timeout=TIMEOUT,
                        )
                    except grpc.RpcError as exc:
                        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc
                        assert RETRYABLE in (exc.details() or "")
                        continue
                    with lock:
                        acked.append(100)

        threads = [threading.Thread(target=withdraw, args=(addr, 8)) for addr in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        print(f"withdrawals: {len(acked)} of 32 acknowledged, the rest answered 'retry'")
        assert acked
        with grpc.insecure_channel(b) as channel:
            got = portfolio_pb2_grpc.PortfolioServiceStub(channel).GetPortfolio(
                portfolio_pb2.GetPortfolioRequest(portfolio_id=pid), timeout=TIMEOUT
            )
        rev = next(x for x in got.accounts if x.type == "rev")
        assert (rev.balance.units, rev.balance.cents) == (300_000 - sum(acked), 0)
    with Store(store_url) as store:
        stored = {r.id for r in store.list_decisions(portfolio_id=pid, limit=1000)}
        assert stored == decided  # every acknowledged decision is stored, and nothing else
        version, _ = _stored_state(store, pid)
        # Every acknowledged withdrawal moved the version once (a Decide only when it changed the engine state).
        assert version_before + len(acked) < version <= version_before + len(acked) + len(decided)
        assert store.verify_full().ok


def test_a_decide_that_changes_an_account_writes_it_where_get_portfolio_reads(tmp_path: Path) -> None:
    db = str(tmp_path / "allsuse.db")
    pid = "pf-peak"
    with serve(db, auth=False) as (address, _), grpc.insecure_channel(address) as channel:
        _create(address, pid)
        portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
        # A put sold far in the money: the account's equity at market is half its peak, past its drawdown cap, so
        # the next Decide puts the account in REDUCING (a fact of prices the engine keeps at once).
        portfolios.RecordFill(
            portfolio_pb2.RecordFillRequest(
                portfolio_id=pid,
                account_id=f"{pid}/gen-1",
                symbol="NVDA",
                kind="put",
                side="sell_to_open",
                strike=400.0,
                expiry="2024-03-15",
                quantity=10,
                price=money(1.0),
                at=ts(THURSDAY),
            ),
            timeout=TIMEOUT,
        )
        get = portfolio_pb2.GetPortfolioRequest(portfolio_id=pid)
        before = next(a for a in portfolios.GetPortfolio(get, timeout=TIMEOUT).accounts if a.type == "gen")
        with Store(db) as store:
            head = store.audit_head()
        assert head is not None
        decision_pb2_grpc.DecisionServiceStub(channel).Decide(_request(pid, "gen-1"), timeout=TIMEOUT)
        after = next(a for a in portfolios.GetPortfolio(get, timeout=TIMEOUT).accounts if a.type == "gen")
        assert (before.state, after.state) == ("ACTIVE", "REDUCING")
        with Store(db) as store:
            writes = _audit_writes(store, head[0])
            assert len(store.audit_entries(after_seq=head[0])) == 1
            assert ("account.put", "account") in writes and ("portfolio.put", "portfolio") in writes
            assert ("decision.record", "decision") in writes and ("engine_state.put", "engine_state") in writes
            account = store.get_account(f"{pid}/gen-1")
            assert account is not None and account.payload["state"] == "REDUCING"
            assert store.verify_full().ok
