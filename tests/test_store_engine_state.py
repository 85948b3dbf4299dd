"""Migration 5 and what the Decide write path needs from the store: one audit entry for a unit's writes, the
engine state row with its conditional version, `audit verify --full` over both, the last decision by index (its
cost does not grow with the store), portfolios stored before migration 5; and the server's PortfolioCache and
PortfolioQueue on their own."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import allsuse.store.store as store_module
from allsuse.protocol.accounts import Portfolio
from allsuse.protocol.engine import Engine
from allsuse.protocol.trust import TrustBook
from allsuse.rules import RuleBook
from allsuse.server.agent import AgentServicer, ServiceCalls
from allsuse.server.errors import LimitExceededError
from allsuse.server.portfolios import (
    Loaded,
    PortfolioCache,
    PortfolioQueue,
    PortfolioRepository,
    StaleVersionError,
    new_stored,
)
from allsuse.store import LATEST_VERSION, Store, StoreConflictError, migrate
from allsuse.store.records import decode_payload

AT = dt.datetime(2024, 3, 7, 15, 45)


def _portfolio(store: Store, pid: str = "p1") -> None:
    store.put_portfolio(pid, {"capital": "1000000.00"}, name="main")


def test_migration_5_adds_engine_states_and_the_latest_decision_indexes(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as store:
        assert store.schema_versions()[:5] == [1, 2, 3, 4, 5] and LATEST_VERSION >= 5
        names = {r[0] for r in store.read(lambda c: c.query("SELECT name FROM sqlite_master WHERE type = 'index'"))}
        assert {"decisions_latest", "decisions_account_latest"} <= names
        assert "decisions_portfolio" not in names  # the new index covers it


def test_writes_in_one_entry_append_one_audit_entry_that_full_verify_checks(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Store(path) as store:
        _portfolio(store)
        head = store.audit_head()
        assert head is not None

        def unit(tx: Any) -> None:
            with tx.one_entry(actor="alice"):
                tx.put_engine_state("p1", {"accounts": {}}, expected_version=0, actor="alice")
                tx.record_decision("k-1", {"action": "HOLD"}, kind="entry", portfolio_id="p1", actor="alice")

        store.write(unit)
        entries = store.audit_entries(after_seq=head[0])
        assert [e.action for e in entries] == ["batch"]
        assert [w["action"] for w in entries[0].payload["writes"]] == ["engine_state.put", "decision.record"]
        assert entries[0].actor == "alice"
        assert store.verify_full().ok

        def mixed(tx: Any) -> None:
            with tx.one_entry(actor="alice"):
                tx.record_decision("k-2", {"action": "HOLD"}, kind="entry", portfolio_id="p1", actor="mallory")
                tx.record_decision("k-3", {"action": "HOLD"}, kind="entry", portfolio_id="p1", actor="alice")
                tx.record_decision("k-4", {"action": "HOLD"}, kind="entry", portfolio_id="p1", actor="alice")

        head = store.audit_head()
        assert head is not None
        store.write(mixed)  # an entry names one actor: mallory's write gets its own
        entries = store.audit_entries(after_seq=head[0])
        assert [(e.actor, e.action) for e in entries] == [("mallory", "decision.record"), ("alice", "batch")]
        assert store.verify_full().ok
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("UPDATE engine_states SET version = 7 WHERE id = 'p1'")
    finally:
        conn.close()
    with Store(path) as store:
        report = store.verify_full()
        assert not report.ok
        assert any(p.table == "engine_states" and p.row == "p1" and "version" in p.message for p in report.problems)


def test_an_engine_state_row_edited_or_inserted_behind_the_store_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Store(path) as store:
        _portfolio(store)
        _portfolio(store, "p2")
        store.write(lambda tx: tx.put_engine_state("p1", {"trust": {}}, expected_version=0))
        assert store.verify_full().ok
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute('UPDATE engine_states SET payload = \'{"trust":{"scores":{"x":1}}}\' WHERE id = \'p1\'')
        conn.execute("INSERT INTO engine_states VALUES ('p2', 3, 'x', 'x', '{}')")
    finally:
        conn.close()
    with Store(path) as store:
        problems = {(p.row, p.message.split(":")[0]) for p in store.verify_full().problems}
        assert ("p1", "payload differs from the one audit entry seq 3 recorded (SHA-256)") in problems
        assert ("p2", "no audit entry wrote this row") in problems


def test_engine_state_moves_only_from_the_version_expected(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as store:
        _portfolio(store)
        first = store.write(lambda tx: tx.put_engine_state("p1", {"n": 1}, expected_version=4))
        assert first.columns == {"version": 5}  # no row yet: stored at the version the caller read elsewhere + 1
        second = store.write(lambda tx: tx.put_engine_state("p1", {"n": 2}, expected_version=5))
        assert second.columns == {"version": 6} and second.created_at == first.created_at
        with pytest.raises(StoreConflictError, match="version 6, not 5"):
            store.write(lambda tx: tx.put_engine_state("p1", {"n": 3}, expected_version=5))
        got = store.get_engine_state("p1")
        assert got is not None and got.payload == {"n": 2} and got.columns["version"] == 6
        assert store.verify_full().ok


class _Decoded:
    """Counts the stored payloads the store decodes (each is one row read into a Record)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0

        def counting(text: str) -> dict[str, Any]:
            self.count += 1
            return decode_payload(text)

        monkeypatch.setattr(store_module, "decode_payload", counting)


def _decisions(store: Store, n: int, start: int) -> None:
    def unit(tx: Any) -> None:
        for i in range(start, start + n):
            account = f"p1/{('gen', 'rev')[i % 2]}-1"
            payload = {
                "decision_id": f"d{i}",
                "action": "HOLD",
                "symbol": "NVDA",
                "account_id": account,
                "outcome": "APPROVED",
                "explanation": f"number {i}",
            }
            tx.record_decision(
                f"k{i}", payload, kind="entry", portfolio_id="p1", decision_id=f"d{i:06d}", account_id=account
            )

    store.write(unit)


def test_the_last_decision_decodes_one_row_whatever_the_store_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(tmp_path / "a.db") as store:
        _portfolio(store)
        agent = AgentServicer(SimpleNamespace(store=store))  # type: ignore[arg-type]
        calls = ServiceCalls(agent.deps, agent.decisions, agent.portfolios, agent.clock)
        decoded = _Decoded(monkeypatch)
        costs: list[tuple[int, int, int]] = []
        for total in (10, 2000):
            _decisions(store, total - (costs[-1][0] if costs else 0), costs[-1][0] if costs else 0)
            decoded.count = 0
            latest = store.latest_decision("p1")
            by_portfolio = decoded.count
            decoded.count = 0
            rev = store.latest_decision("p1", account_id="p1/rev-1")
            by_account = decoded.count
            assert latest is not None and latest.id == f"d{total - 1:06d}"
            assert rev is not None and rev.payload["account_id"] == "p1/rev-1" and rev.id == f"d{total - 1:06d}"
            decoded.count = 0
            found = calls.latest_decision("p1")  # what the agent's "why?" reads
            assert found is not None and found["decision_id"] == f"d{total - 1}"
            costs.append((total, by_portfolio + by_account, decoded.count))
        # 10 or 2000 decisions stored: the same rows decoded (one decision each).
        assert costs[0][1:] == costs[1][1:] == (2, 1), costs
        assert store.latest_decision("p1", account_id="p1/com-1") is None


def test_a_portfolio_stored_before_migration_5_loads_and_saves(tmp_path: Path) -> None:
    url = str(tmp_path / "old.db")
    assert migrate(url, target=4) == [1, 2, 3, 4]
    old = new_stored(Portfolio.create("p1", Decimal("1000000"), AT), owner=None)
    payload = {**old.payload(), "engine": {"accounts": {}, "trust": {"scores": {"entry": 0.4}, "last_outcome": {}}}}
    payload["version"] = 3
    with Store(url) as store:  # opening migrates to the latest version
        store.put_portfolio("p1", payload)  # as the code before migration 5 wrote it: no engine_states row
        assert store.get_engine_state("p1") is None
        repo = PortfolioRepository(store)
        loaded = repo.load("p1")
        assert loaded.version == 3 and loaded.engine_state["trust"]["scores"] == {"entry": 0.4}
        loaded.portfolio.withdraw("p1/rev-1", Decimal("100"), AT)
        stale = repo.load("p1")
        repo.save(loaded, actor="t")
        state = store.get_engine_state("p1")
        assert state is not None and state.columns["version"] == 4
        record = store.get_portfolio("p1")
        assert record is not None and "engine" not in record.payload
        again = repo.load("p1")
        assert again.version == 4 and again.engine_state["trust"]["scores"] == {"entry": 0.4}
        stale.portfolio.withdraw("p1/rev-1", Decimal("5"), AT)
        with pytest.raises(StaleVersionError, match="changed meanwhile"):
            repo.save(stale, actor="t")
        assert store.verify_full().ok


ENGINE = Engine(rules=RuleBook.load(), trust=TrustBook())


def _loaded(version: int) -> Loaded:
    stored = new_stored(Portfolio.create("p1", Decimal("1000"), AT), owner=None)
    stored.version = version
    return Loaded(stored, ENGINE)


def test_the_cache_is_bounded_and_never_keeps_what_a_write_superseded() -> None:
    cache = PortfolioCache(2)
    for pid in ("a", "b", "c"):
        assert cache.put(pid, _loaded(1))
    assert len(cache) == 2 and cache.get("a") is None and cache.get("c") is not None  # least recently used out
    cache.committed("c", 2)  # a write of this process stored version 2: the entry at 1 is stale
    assert cache.get("c") is None
    assert not cache.put("c", _loaded(1))  # a request that loaded before that write cannot put it back
    assert cache.put("c", _loaded(2)) and cache.get("c") is not None
    cache.drop("c")
    assert cache.get("c") is None
    assert not PortfolioCache(0).put("a", _loaded(1))


def test_the_queue_serves_one_portfolio_in_arrival_order_and_bounds_its_waiters() -> None:
    async def scenario() -> tuple[list[int], list[int], int]:
        queue = PortfolioQueue(limit=3)
        order: list[int] = []
        active: list[int] = []
        overlap = 0

        async def request(i: int) -> None:
            nonlocal overlap

            async def work() -> None:
                nonlocal overlap
                active.append(i)
                overlap = max(overlap, len(active))
                await asyncio.sleep(0.01)
                order.append(i)
                active.remove(i)

            await queue.run("p1", work)

        first = [asyncio.create_task(request(i)) for i in range(4)]  # one holds the turn, three wait
        await asyncio.sleep(0)
        with pytest.raises(LimitExceededError, match="already queued"):
            async with queue.turn("p1"):
                pass
        other: list[int] = []

        async def elsewhere() -> None:
            async with queue.turn("p2"):  # another portfolio does not wait for p1
                other.append(len(order))

        await asyncio.gather(*first, elsewhere())
        assert queue.waiting("p1") == 0
        return order, other, overlap

    order, other, overlap = asyncio.run(scenario())
    assert order == [0, 1, 2, 3] and overlap == 1 and other == [0]


def test_a_cancelled_request_keeps_the_turn_until_its_work_ends() -> None:
    async def scenario() -> list[str]:
        queue = PortfolioQueue()
        events: list[str] = []
        release = asyncio.Event()

        async def slow() -> None:
            events.append("slow start")
            await release.wait()
            events.append("slow end")

        async def fast() -> None:
            events.append("next")

        first = asyncio.create_task(queue.run("p1", slow))
        await asyncio.sleep(0)
        second = asyncio.create_task(queue.run("p1", fast))
        await asyncio.sleep(0)
        first.cancel()  # the caller gives up; its work (a worker thread in the server) goes on
        await asyncio.sleep(0.01)
        assert events == ["slow start"]  # the next request still waits
        release.set()
        await second
        with pytest.raises(asyncio.CancelledError):
            await first
        return events

    assert asyncio.run(scenario()) == ["slow start", "slow end", "next"]
