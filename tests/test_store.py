"""allsuse.store on both backends: a SQLite file and a real throwaway PostgreSQL server.

Migrations, every entity, money, idempotent decisions, API keys, the audit hash chain (and tampering with it by
raw SQL), group commit (16 writers, batch counters, a failed batch), the asyncio API, backups and the CLI.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from allsuse import cli
from allsuse.errors import InvalidInputError
from allsuse.store import (
    GENESIS_HASH,
    LATEST_VERSION,
    MIGRATIONS,
    Store,
    StoreClosedError,
    StoreError,
    StoreIntegrityError,
    StoreNotFoundError,
    Transaction,
    audit_verify,
    canonical_json,
    entry_hash,
    migrate,
    parse_location,
)
from allsuse.store.pgtest import TemporaryPostgres

WAIT = 30.0  # seconds: upper bound on any wait for a future or a thread in these tests


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "var" / "allsuse.db")
        return
    server: TemporaryPostgres = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    dsn = server.create_database(name)
    try:
        yield dsn
    finally:
        server.drop_database(name)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    try:
        yield s
    finally:
        s.close()


def is_pg(url: str) -> bool:
    return parse_location(url).backend == "postgresql"


def raw_sql(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Runs one statement straight through the driver (no store code), returns any rows."""
    if is_pg(url):
        import psycopg

        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params) if params else conn.execute(sql)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    conn = sqlite3.connect(parse_location(url).target, isolation_level=None, timeout=10)
    try:
        cur = conn.execute(sql, params)
        return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def drop_append_only_guards(url: str) -> None:
    """What someone with direct database access would do first."""
    if is_pg(url):
        for trigger, table in (
            ("audit_log_append_only", "audit_log"),
            ("audit_log_no_truncate", "audit_log"),
            ("audit_head_no_delete", "audit_head"),
        ):
            raw_sql(url, f"DROP TRIGGER {trigger} ON {table}")
    else:
        for trigger in ("audit_log_no_update", "audit_log_no_delete", "audit_head_no_delete"):
            raw_sql(url, f"DROP TRIGGER {trigger}")


def seed_portfolio(store: Store, portfolio_id: str = "p1") -> None:
    store.put_portfolio(portfolio_id, {"capital": "100000.00"}, name="main")


def audit_count(store: Store) -> int:
    head = store.audit_head()
    assert head is not None
    return head[0]


# --- configuration, durability settings, migrations ------------------------------------------------------------


def test_parse_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_location("postgresql://u@127.0.0.1:5/db").backend == "postgresql"
    assert parse_location("host=127.0.0.1 dbname=x").backend == "postgresql"
    assert parse_location(f"sqlite:///{tmp_path}/a.db").target == str(tmp_path / "a.db")
    assert parse_location(tmp_path / "b.db").target == str(tmp_path / "b.db")
    monkeypatch.setenv("ALLSUSE_STORE_URL", str(tmp_path / "env.db"))
    assert parse_location(None).target == str(tmp_path / "env.db")
    monkeypatch.delenv("ALLSUSE_STORE_URL")
    assert parse_location(None).target.endswith("var/allsuse.db")
    for bad in (":memory:", "sqlite::memory:", " "):
        with pytest.raises(InvalidInputError, match=r"^url: "):
            parse_location(bad)
    # An unknown scheme is a mistake, never a file named after it (memory:// once made a file "memory:").
    for bad in ("memory://", "mysql://u@127.0.0.1/db", "redis://127.0.0.1"):
        with pytest.raises(InvalidInputError, match=r"^url: unknown scheme"):
            parse_location(bad)
    masked = parse_location("postgresql://bob:s3cret@127.0.0.1/db").describe()
    assert "s3cret" not in masked and "bob" in masked


def test_durability_settings(store: Store, store_url: str) -> None:
    if is_pg(store_url):
        assert store.read(lambda c: c.one("SHOW synchronous_commit")) == ("on",)
        assert store.read(lambda c: c.one("SHOW statement_timeout"))[0] != "0"  # type: ignore[index]
        return
    path = Path(parse_location(store_url).target)
    assert path.is_file()  # a real file, not memory
    assert raw_sql(store_url, "PRAGMA journal_mode") == [("wal",)]
    assert store.read(lambda c: c.one("PRAGMA synchronous")) == (2,)  # FULL: fsync at every commit
    assert store.read(lambda c: c.one("PRAGMA foreign_keys")) == (1,)
    assert store.read(lambda c: c.one("PRAGMA busy_timeout"))[0] > 0  # type: ignore[index]


def test_migrations_from_empty_and_rerun(store_url: str) -> None:
    every = [m.version for m in MIGRATIONS]
    assert migrate(store_url) == every
    first = raw_sql(store_url, "SELECT version, name, applied_at FROM schema_version ORDER BY version")
    assert [r[0] for r in first] == every
    assert migrate(store_url) == []  # idempotent
    with Store(store_url) as s:
        assert s.schema_versions() == every
        assert s.audit_head() == (0, GENESIS_HASH)
    with Store(store_url) as s:
        assert s.schema_versions() == every
    assert raw_sql(store_url, "SELECT version, name, applied_at FROM schema_version ORDER BY version") == first


def _has_index(url: str, name: str) -> bool:
    if is_pg(url):
        return bool(raw_sql(url, "SELECT 1 FROM pg_indexes WHERE indexname = ?", (name,)))
    return bool(raw_sql(url, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)))


def test_migrations_apply_in_order_from_a_partial_schema(store_url: str) -> None:
    assert migrate(store_url, target=1) == [1]
    assert not _has_index(store_url, "decisions_status")
    with pytest.raises(InvalidInputError, match=r"^target: "):
        migrate(store_url, target=LATEST_VERSION + 1)
    with Store(store_url) as s:
        assert s.schema_versions() == [m.version for m in MIGRATIONS]
    assert _has_index(store_url, "decisions_status")


def test_a_newer_schema_is_refused(store_url: str) -> None:
    migrate(store_url)
    raw_sql(store_url, "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'future', 'x')")
    with pytest.raises(StoreError, match="newer than this code"):
        Store(store_url)


def test_create_false_refuses_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        Store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


# --- entities ---------------------------------------------------------------------------------------------------


def test_every_entity_round_trips_and_survives_reopen(store_url: str) -> None:
    with Store(store_url) as s:
        p = s.put_portfolio("p1", {"capital": Decimal("250000.00"), "owner": "ann"}, name="Main")
        s.put_portfolio("p2", {"capital": "1"})
        a = s.put_account("p1-gen", "p1", {"target": "0.40"}, kind="gen")
        s.put_account("p1-rev", "p1", {"target": "0.30"}, kind="rev")
        pos = s.put_position("pos1", "p1", {"symbol": "SPY", "strike": "440"}, status="open", account_id="p1-gen")
        pos2 = s.put_position("pos1", "p1", {"symbol": "SPY", "strike": "440"}, status="closed", account_id="p1-gen")
        t = s.record_transaction("p1", Decimal("1250.75"), {"fill": 1}, kind="premium", account_id="p1-gen")
        d = s.record_decision("req-1", {"action": "sell_put", "delta": -0.3}, kind="entry", portfolio_id="p1")
        d2 = s.update_decision(d.id, status="approved", actor="ops")
        o = s.record_outcome(d.id, {"pnl": "312.40"}, outcome_id="out-1")
        al = s.raise_alert("drawdown", "warning", {"dd": "-0.08"}, portfolio_id="p1")
        al2 = s.update_alert(al.id, status="acknowledged")
        c = s.put_conversation("conv-1", {"turns": [{"role": "user", "text": "héllo"}]})
        c2 = s.put_conversation("conv-1", {"turns": [], "summary": "reset"})

        assert p.columns == {"name": "Main"} and p.payload == {"capital": "250000.00", "owner": "ann"}
        assert a.columns == {"portfolio_id": "p1", "kind": "gen"}
        assert pos2.created_at == pos.created_at and pos2.updated_at >= pos.updated_at
        assert t.columns["amount"] == "1250.75" and len(t.id) == 32
        assert d2.columns["status"] == "approved" and d2.payload == d.payload and d2.id == d.id
        assert o.columns == {"decision_id": d.id}
        assert al2.columns["status"] == "acknowledged" and al2.columns["severity"] == "warning"
        assert c2.created_at == c.created_at
        expected = {
            "portfolio": s.get_portfolio("p1"),
            "account": s.get_account("p1-gen"),
            "position": s.get_position("pos1"),
            "transaction": s.get_transaction(t.id),
            "decision": s.get_decision(d.id),
            "outcome": s.get_outcome("out-1"),
            "alert": s.get_alert(al.id),
            "conversation": s.get_conversation("conv-1"),
        }
        assert s.get_decision_by_key("req-1") == expected["decision"]
        assert s.get_portfolio("nope") is None and s.get_decision_by_key("nope") is None
        assert s.verify_audit().ok
        entries = audit_count(s)

    with Store(store_url) as s:  # everything acknowledged is there after a reopen
        assert s.get_portfolio("p1") == expected["portfolio"] == p
        assert s.get_account("p1-gen") == expected["account"] == a
        assert s.get_position("pos1") == expected["position"] == pos2
        assert s.get_transaction(t.id) == expected["transaction"] == t
        assert s.get_decision(d.id) == expected["decision"] == d2
        assert s.get_outcome("out-1") == expected["outcome"] == o
        assert s.get_alert(al.id) == expected["alert"] == al2
        assert s.get_conversation("conv-1") == expected["conversation"] == c2
        assert [r.id for r in s.list_portfolios()] == ["p1", "p2"]
        assert [r.id for r in s.list_accounts("p1")] == ["p1-gen", "p1-rev"]
        assert [r.id for r in s.list_positions(portfolio_id="p1", status="closed")] == ["pos1"]
        assert s.list_positions(status="open") == []
        assert [r.id for r in s.list_transactions(account_id="p1-gen")] == [t.id]
        assert [r.id for r in s.list_decisions(status="approved")] == [d.id]
        assert [r.id for r in s.list_outcomes(d.id)] == ["out-1"]
        assert [r.id for r in s.list_alerts(status="acknowledged")] == [al.id]
        assert audit_count(s) == entries == 14
        actions = [e.action for e in s.audit_entries()]
        assert actions[:3] == ["portfolio.put", "portfolio.put", "account.put"]
        assert "decision.update" in actions and actions[-1] == "conversation.put"
        first = s.audit_entries(limit=1)[0]
        digest = hashlib.sha256(canonical_json(p.payload).encode()).hexdigest()
        columns = {"name": "Main"}
        assert first.payload == {"entity": "portfolio", "id": "p1", "columns": columns, "payload_sha256": digest}
        with pytest.raises(InvalidInputError, match=r"^limit: "):
            s.list_decisions(limit=0)


def test_money_is_exact_and_never_float(store: Store) -> None:
    seed_portfolio(store)
    t = store.record_transaction("p1", Decimal("0.1") + Decimal("0.2"), {}, kind="fee")
    assert t.columns["amount"] == "0.3"
    assert store.record_transaction("p1", "-1250.10", {}, kind="withdrawal").columns["amount"] == "-1250.10"
    assert store.record_transaction("p1", 7, {}, kind="deposit").columns["amount"] == "7"
    assert store.record_transaction("p1", Decimal("1E+3"), {}, kind="deposit").columns["amount"] == "1000"
    before = audit_count(store)
    for bad in (0.3, float("nan"), Decimal("NaN"), Decimal("Infinity"), "12,50", True, None):
        with pytest.raises(InvalidInputError, match=r"^amount: "):
            store.record_transaction("p1", bad, {}, kind="fee")
    with pytest.raises(InvalidInputError, match=r"^payload: "):
        store.put_portfolio("p1", {"x": float("inf")})
    with pytest.raises(InvalidInputError, match=r"^payload: "):
        store.put_portfolio("p1", {"x": object()})
    with pytest.raises(InvalidInputError, match=r"^payload: "):
        store.put_portfolio("p1", ["not", "a", "mapping"])  # type: ignore[arg-type]
    assert store.get_portfolio("p1").payload == {"capital": "100000.00"}  # type: ignore[union-attr]
    assert audit_count(store) == before  # nothing written by a refused call
    stored = store.read(lambda c: c.query("SELECT amount FROM transactions ORDER BY created_at"))
    assert all(isinstance(r[0], str) for r in stored)


def test_bad_input_names_the_argument(store: Store) -> None:
    seed_portfolio(store)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("portfolio_id", lambda: store.put_portfolio("", {})),
        ("portfolio_id", lambda: store.put_portfolio("has space", {})),
        ("kind", lambda: store.put_account("a", "p1", {}, kind="")),
        ("actor", lambda: store.put_portfolio("p9", {}, actor="")),
        ("idempotency_key", lambda: store.record_decision("", {}, kind="entry")),
        ("role", lambda: store.create_api_key("Admin!")),
        ("key_id", lambda: store.create_api_key("admin", key_id="a.b")),
        ("limit", lambda: store.audit_entries(limit=-1)),
    ]
    for field, call in cases:
        with pytest.raises(InvalidInputError, match=rf"^{field}: "):
            call()
    with pytest.raises(StoreIntegrityError):
        store.put_account("a1", "no-such-portfolio", {}, kind="gen")
    with pytest.raises(StoreNotFoundError):
        store.update_decision("no-such-decision", status="approved")
    with pytest.raises(StoreNotFoundError):
        store.update_alert("no-such-alert", status="resolved")
    with pytest.raises(StoreNotFoundError):
        store.revoke_api_key("nokey")
    assert audit_count(store) == 1 and store.verify_audit().ok


# --- idempotency ------------------------------------------------------------------------------------------------


def test_repeated_idempotency_key_returns_the_stored_decision(store: Store) -> None:
    seed_portfolio(store)
    first = store.record_decision("req-7", {"strike": "440"}, kind="entry", portfolio_id="p1")
    entries = audit_count(store)
    again = store.record_decision("req-7", {"strike": "999"}, kind="exit", status="x", decision_id="other")
    assert first.replayed is False and again.replayed is True
    assert (again.id, again.payload, again.columns, again.created_at) == (
        first.id,
        first.payload,
        first.columns,
        first.created_at,
    )
    assert audit_count(store) == entries  # nothing new written
    assert store.get_decision("other") is None
    assert len(store.list_decisions()) == 1
    # transactions and outcomes are idempotent on their id
    t1 = store.record_transaction("p1", "10", {}, kind="fee", transaction_id="tx-1")
    t2 = store.record_transaction("p1", "20", {}, kind="fee", transaction_id="tx-1")
    assert t2.replayed and t2.columns["amount"] == "10" == t1.columns["amount"]


def test_idempotency_under_concurrent_writers(store: Store) -> None:
    seed_portfolio(store)
    start = threading.Barrier(16)
    results: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        start.wait(WAIT)
        for n in range(5):
            d = store.record_decision(f"shared-{n}", {"writer": i}, kind="entry")
            with lock:
                results.append(d.id)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(results) == 80
    stored = store.list_decisions()
    assert len(stored) == 5 and set(results) == {d.id for d in stored}
    assert audit_count(store) == 1 + 5
    assert store.verify_audit().ok


# --- api keys ---------------------------------------------------------------------------------------------------


def test_api_keys_store_only_a_salted_hash(store: Store) -> None:
    issued = store.create_api_key("operator", key_id="ops-1")
    other = store.create_api_key("reader")
    assert repr(issued).count(issued.secret) == 0  # the secret is not in the repr
    assert store.verify_api_key("ops-1", issued.secret) == store.get_api_key("ops-1")
    assert store.authenticate(issued.token) is not None and store.authenticate(other.token).role == "reader"  # type: ignore[union-attr]
    assert store.verify_api_key("ops-1", other.secret) is None
    assert store.verify_api_key("nobody", issued.secret) is None
    assert store.authenticate("no-dot") is None
    rows = store.read(lambda c: c.query("SELECT key_id, role, kdf, salt, secret_hash FROM api_keys ORDER BY key_id"))
    assert len(rows) == 2
    for row in rows:
        assert issued.secret not in " ".join(map(str, row)) and other.secret not in " ".join(map(str, row))
    (_kid, _role, kdf, salt, digest) = next(r for r in rows if r[0] == "ops-1")
    assert kdf == "scrypt:n=16384,r=8,p=1" and len(bytes.fromhex(salt)) == 16
    assert hashlib.scrypt(issued.secret.encode(), salt=bytes.fromhex(salt), n=16384, r=8, p=1, dklen=32).hex() == digest
    assert rows[0][3] != rows[1][3]  # a salt per key
    with pytest.raises(StoreIntegrityError):
        store.create_api_key("operator", key_id="ops-1")
    revoked = store.revoke_api_key("ops-1", actor="admin")
    assert revoked.revoked_at is not None and store.verify_api_key("ops-1", issued.secret) is None
    assert store.revoke_api_key("ops-1").revoked_at == revoked.revoked_at
    assert [k.key_id for k in store.list_api_keys()] == ["ops-1", other.key_id]
    assert [e.action for e in store.audit_entries()] == ["api_key.create", "api_key.create", "api_key.revoke"]
    assert all(issued.secret not in str(e.payload) for e in store.audit_entries())


# --- audit chain ------------------------------------------------------------------------------------------------


def _ten_entries(store: Store) -> None:
    seed_portfolio(store)
    for i in range(9):
        store.record_decision(f"k{i}", {"i": i}, kind="entry", portfolio_id="p1")
    assert audit_count(store) == 10


def test_audit_chain_verifies_and_links(store: Store, store_url: str) -> None:
    _ten_entries(store)
    store.audit("operator.login", {"who": "ann"}, actor="ann")
    entries = store.audit_entries()
    assert [e.seq for e in entries] == list(range(1, 12))
    assert entries[0].prev_hash == GENESIS_HASH
    for prev, cur in itertools.pairwise(entries):
        assert cur.prev_hash == prev.hash
        assert cur.hash == entry_hash(cur.prev_hash, cur.seq, cur.ts, cur.actor, cur.action, cur.payload)
    report = audit_verify(store)
    assert report.ok and report.entries == 11 and report.head_seq == 11 and report.head_hash == entries[-1].hash
    assert str(report).startswith("audit log OK: 11 entries")
    assert store.audit_entries(after_seq=9) == entries[9:]
    # the guards refuse edits through ordinary SQL
    for sql in ("UPDATE audit_log SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 11"):
        with pytest.raises(StoreIntegrityError, match="append-only"):
            store.write(lambda tx, sql=sql: tx.execute(sql))
    store.record_transaction("p1", "1.00", {}, kind="fee")
    for sql in ("UPDATE transactions SET amount = '2.00'", "DELETE FROM transactions"):
        with pytest.raises(StoreIntegrityError, match="append-only"):
            store.write(lambda tx, sql=sql: tx.execute(sql))
    assert store.verify_audit().ok and audit_count(store) == 12


def test_verify_detects_an_edited_entry(store: Store, store_url: str) -> None:
    _ten_entries(store)
    drop_append_only_guards(store_url)
    raw_sql(store_url, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    report = store.verify_audit()
    assert (report.ok, report.finding, report.seq, report.entries) == (False, "edited", 3, 2)
    assert "FAILED at seq 3 (edited)" in str(report)


def test_verify_detects_an_edit_with_a_recomputed_hash(store: Store, store_url: str) -> None:
    _ten_entries(store)
    drop_append_only_guards(store_url)
    e = store.audit_entries()[4]
    forged = entry_hash(e.prev_hash, e.seq, e.ts, e.actor, e.action, {"forged": True})
    raw_sql(store_url, "UPDATE audit_log SET payload = ?, hash = ? WHERE seq = 5", ('{"forged":true}', forged))
    report = store.verify_audit()
    assert (report.finding, report.seq) == ("link", 6)


def test_verify_detects_a_rewritten_payload_text(store: Store, store_url: str) -> None:
    _ten_entries(store)
    drop_append_only_guards(store_url)
    text = raw_sql(store_url, "SELECT payload FROM audit_log WHERE seq = 2")[0][0]
    raw_sql(store_url, "UPDATE audit_log SET payload = ? WHERE seq = 2", (" " + text,))
    assert (store.verify_audit().finding, store.verify_audit().seq) == ("not_canonical", 2)


def test_verify_detects_a_deleted_entry(store: Store, store_url: str) -> None:
    _ten_entries(store)
    drop_append_only_guards(store_url)
    raw_sql(store_url, "DELETE FROM audit_log WHERE seq = 4")
    report = store.verify_audit()
    assert (report.ok, report.finding, report.seq) == (False, "gap", 5)
    assert "entries 4 are missing" in (report.problem or "")


def test_verify_detects_an_inserted_entry(store: Store, store_url: str) -> None:
    _ten_entries(store)
    drop_append_only_guards(store_url)
    prev = store.audit_entries()[3]  # seq 4
    raw_sql(store_url, "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5")
    raw_sql(store_url, "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000")
    ts, payload = "2020-01-01T00:00:00.000000Z", {"entity": "decision", "id": "forged"}
    digest = entry_hash(prev.hash, 5, ts, "mallory", "decision.record", payload)
    raw_sql(
        store_url,
        "INSERT INTO audit_log (seq, ts, actor, action, payload, prev_hash, hash) VALUES (5, ?, ?, ?, ?, ?, ?)",
        (ts, "mallory", "decision.record", canonical_json(payload), prev.hash, digest),
    )
    raw_sql(store_url, "UPDATE audit_head SET seq = 11")
    report = store.verify_audit()
    assert (report.ok, report.finding, report.seq, report.entries) == (False, "link", 6, 5)


def test_verify_detects_a_truncated_tail(store: Store, store_url: str) -> None:
    _ten_entries(store)
    drop_append_only_guards(store_url)
    raw_sql(store_url, "DELETE FROM audit_log WHERE seq > 7")
    report = store.verify_audit()
    assert (report.ok, report.finding, report.entries, report.head_seq) == (False, "truncated", 7, 10)
    assert "entries 8..10 were removed" in (report.problem or "")
    raw_sql(store_url, "DELETE FROM audit_log")
    assert store.verify_audit().finding == "truncated"


def test_verify_detects_entries_beyond_the_head_and_a_missing_head(store: Store, store_url: str) -> None:
    _ten_entries(store)
    drop_append_only_guards(store_url)
    last = store.audit_entries()[-1]
    ts, payload = "2020-01-01T00:00:00.000000Z", {"x": 1}
    digest = entry_hash(last.hash, 11, ts, "mallory", "x", payload)
    raw_sql(
        store_url,
        "INSERT INTO audit_log (seq, ts, actor, action, payload, prev_hash, hash) VALUES (11, ?, ?, ?, ?, ?, ?)",
        (ts, "mallory", "x", canonical_json(payload), last.hash, digest),
    )
    assert (store.verify_audit().finding, store.verify_audit().seq) == ("beyond_head", 11)
    raw_sql(store_url, "DELETE FROM audit_head")
    assert store.verify_audit().finding == "head_missing"
    with pytest.raises(StoreError, match="audit_head row is missing"):
        store.audit("x", {})


def test_cli_audit_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.db"
    with Store(path) as s:
        _ten_entries(s)
    assert cli.main(["audit", "verify", "--store", str(path)]) == 0
    assert "audit log OK: 10 entries" in capsys.readouterr().out
    drop_append_only_guards(str(path))
    raw_sql(str(path), "UPDATE audit_log SET action = 'x' WHERE seq = 6")
    assert cli.main(["audit", "verify", "--store", str(path)]) == 1
    assert "FAILED at seq 6 (edited)" in capsys.readouterr().out
    assert cli.main(["audit", "verify", "--store", str(tmp_path / "none.db")]) == 2
    assert "no store at" in capsys.readouterr().err


# --- group commit -----------------------------------------------------------------------------------------------


def _hold_writer(store: Store) -> tuple[Future[None], threading.Event]:
    """Submits a unit that blocks the writer until released; returns once the writer is inside it."""
    inside, release = threading.Event(), threading.Event()

    def unit(tx: Transaction) -> None:
        inside.set()
        assert release.wait(WAIT)

    future = store.submit(unit)
    assert inside.wait(WAIT)
    return future, release


def test_sixteen_concurrent_writers_all_durable(store_url: str) -> None:
    writers, per_writer = 16, 25
    acknowledged: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    with Store(store_url, max_wait_s=0.005) as s:
        seed_portfolio(s)
        start = threading.Barrier(writers)

        def worker(w: int) -> None:
            try:
                start.wait(WAIT)
                for n in range(per_writer):
                    d = s.record_decision(f"w{w}-{n}", {"w": w, "n": n}, kind="entry", portfolio_id="p1")
                    with lock:
                        acknowledged.append(d.id)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert errors == []
        stats = s.stats()
    assert len(acknowledged) == writers * per_writer
    assert stats.writes == writers * per_writer + 1 and stats.failed_batches == 0
    assert stats.batches < stats.writes and stats.largest_batch > 1  # commits were shared
    with Store(store_url) as s:
        assert {d.id for d in s.list_decisions(limit=10_000)} == set(acknowledged)
        report = s.verify_audit()
        assert report.ok and report.entries == writers * per_writer + 1


def test_queued_writes_share_one_commit(store: Store) -> None:
    seed_portfolio(store)
    held, release = _hold_writer(store)
    futures = [store.submit(lambda tx, i=i: tx.record_decision(f"q{i}", {}, kind="entry")) for i in range(12)]
    assert not any(f.done() for f in futures)  # nothing acknowledged before its commit
    release.set()
    held.result(WAIT)
    ids = [f.result(WAIT).id for f in futures]
    stats = store.stats()
    assert stats.largest_batch == 12 and stats.batches == 3 and stats.writes == 14
    assert {d.id for d in store.list_decisions()} == set(ids)


def test_a_write_is_acknowledged_only_after_its_commit(store: Store) -> None:
    held, release_first = _hold_writer(store)
    write = store.submit(lambda tx: tx.record_decision("ack", {}, kind="entry"))
    inside, release_second = threading.Event(), threading.Event()

    def hold_same_batch(tx: Transaction) -> None:  # runs after "ack" in the same batch, before its COMMIT
        inside.set()
        assert release_second.wait(WAIT)

    holder = store.submit(hold_same_batch)
    release_first.set()
    held.result(WAIT)
    assert inside.wait(WAIT)
    assert not write.done()  # its unit ran, but the batch is not committed yet
    assert store.get_decision_by_key("ack") is None  # and readers cannot see it
    release_second.set()
    assert write.result(WAIT).columns["idempotency_key"] == "ack"
    holder.result(WAIT)
    assert store.get_decision_by_key("ack") is not None


def test_a_failed_commit_fails_every_caller_and_writes_nothing(store: Store, store_url: str) -> None:
    seed_portfolio(store)
    before = store.audit_head()
    defer = "SET CONSTRAINTS ALL DEFERRED" if is_pg(store_url) else "PRAGMA defer_foreign_keys = ON"

    def dangling(tx: Transaction) -> None:
        tx.execute(defer)  # the foreign key is checked only at COMMIT, which then fails for the whole batch
        tx.execute(
            "INSERT INTO accounts (id, portfolio_id, kind, created_at, updated_at, payload) "
            "VALUES ('ghost', 'no-such-portfolio', 'gen', 'x', 'x', '{}')"
        )

    held, release = _hold_writer(store)
    good = [store.submit(lambda tx, i=i: tx.record_decision(f"g{i}", {}, kind="entry")) for i in range(4)]
    bad = store.submit(dangling)
    release.set()
    held.result(WAIT)
    for future in [*good, bad]:
        with pytest.raises(StoreError, match="write batch of 5 failed and was rolled back"):
            future.result(WAIT)
    assert store.stats().failed_batches == 1
    assert store.list_decisions() == [] and store.get_account("ghost") is None
    assert store.audit_head() == before and store.verify_audit().ok
    after = store.record_decision("g0", {}, kind="entry")  # the store goes on
    assert not after.replayed and store.verify_audit().ok


def test_a_failing_unit_fails_only_its_caller(store: Store) -> None:
    seed_portfolio(store)

    def broken(tx: Transaction) -> None:
        tx.record_decision("half", {}, kind="entry")  # rolled back with its savepoint
        raise RuntimeError("unit failed")

    held, release = _hold_writer(store)
    first = store.submit(lambda tx: tx.record_decision("a", {}, kind="entry"))
    failing = store.submit(broken)
    last = store.submit(lambda tx: tx.record_decision("b", {}, kind="entry"))
    release.set()
    held.result(WAIT)
    with pytest.raises(RuntimeError, match="unit failed"):
        failing.result(WAIT)
    assert first.result(WAIT).columns["idempotency_key"] == "a"
    assert last.result(WAIT).columns["idempotency_key"] == "b"
    assert store.get_decision_by_key("half") is None
    assert store.stats().failed_batches == 0 and store.verify_audit().ok
    assert [e.payload["columns"]["idempotency_key"] for e in store.audit_entries()[1:]] == ["a", "b"]


def test_several_writes_in_one_unit_are_atomic(store: Store) -> None:
    def open_position(tx: Transaction) -> str:
        tx.put_portfolio("p1", {})
        tx.put_account("acc", "p1", {}, kind="gen")
        tx.put_position("pos", "p1", {}, status="open", account_id="acc")
        return tx.record_transaction("p1", "-5.00", {}, kind="commission", account_id="acc").id

    tid = store.write(open_position)
    assert store.get_transaction(tid) is not None and store.get_position("pos") is not None
    with pytest.raises(StoreError, match="cannot submit another write"):
        store.write(lambda tx: store.write(lambda inner: None))


def test_closed_store_refuses_calls(store_url: str) -> None:
    s = Store(store_url)
    s.put_portfolio("p1", {})
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreClosedError):
        s.put_portfolio("p2", {})
    with pytest.raises(StoreClosedError):
        s.get_portfolio("p1")


# --- asyncio ----------------------------------------------------------------------------------------------------


def test_async_api(store: Store) -> None:
    async def scenario() -> None:
        aio = store.aio
        await aio.put_portfolio("p1", {"capital": "10"})
        decisions = await asyncio.wait_for(
            asyncio.gather(*(aio.record_decision(f"a{i}", {"i": i}, kind="entry") for i in range(32))), WAIT
        )
        again = await aio.record_decision("a3", {"i": 99}, kind="entry")
        assert again.replayed and again.id == decisions[3].id
        assert await aio.get_decision(decisions[0].id) == decisions[0]
        assert (await aio.get_portfolio("p1")).payload == {"capital": "10"}  # type: ignore[union-attr]
        key = await aio.create_api_key("reader")
        assert (await aio.authenticate(key.token)) is not None
        assert (await aio.verify_audit()).ok
        assert len(await aio.call(lambda: store.list_decisions())) == 32

    asyncio.run(scenario())


# --- backup -----------------------------------------------------------------------------------------------------


def test_sqlite_backup_while_writing(tmp_path: Path) -> None:
    with Store(tmp_path / "live.db") as s:
        seed_portfolio(s)
        stop = threading.Event()

        def keep_writing() -> None:
            n = 0
            while not stop.is_set():
                s.record_decision(f"bk{n}", {"n": n}, kind="entry")
                n += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            while len(s.list_decisions(limit=50)) < 20:
                threading.Event().wait(0.01)
            copy = s.backup(tmp_path / "backup" / "copy.db")
        finally:
            stop.set()
            writer.join(WAIT)
        with pytest.raises(InvalidInputError, match=r"^path: "):
            s.backup(copy)
    with Store(copy) as b:
        report = b.verify_audit()
        assert report.ok and report.entries == 1 + len(b.list_decisions(limit=100_000)) >= 21


def test_postgres_dump_and_restore(pg_server: TemporaryPostgres, tmp_path: Path) -> None:
    source, target = f"t_{uuid.uuid4().hex[:16]}", f"t_{uuid.uuid4().hex[:16]}"
    dump = tmp_path / "allsuse.dump"
    try:
        with Store(pg_server.create_database(source)) as s:
            _ten_entries(s)
            with pytest.raises(StoreError, match="pg_dump"):
                s.backup(tmp_path / "x.db")
            # while the store is open, as in production
            subprocess.run(
                [str(pg_server.bindir / "pg_dump"), "-Fc", "-f", str(dump), pg_server.dsn(source)],
                check=True,
                timeout=WAIT,
            )
        restored = pg_server.create_database(target)
        subprocess.run(
            [str(pg_server.bindir / "pg_restore"), "--no-owner", "--exit-on-error", "-d", restored, str(dump)],
            check=True,
            timeout=WAIT,
        )
        with Store(restored) as r:
            assert r.verify_audit().ok and audit_count(r) == 10 and len(r.list_decisions()) == 9
            assert r.schema_versions() == [m.version for m in MIGRATIONS]
            r.record_decision("after-restore", {}, kind="entry")  # the guards and the head came back too
            assert r.verify_audit().ok
            with pytest.raises(StoreIntegrityError, match="append-only"):
                r.write(lambda tx: tx.execute("DELETE FROM audit_log"))
    finally:
        pg_server.drop_database(source)
        pg_server.drop_database(target)
