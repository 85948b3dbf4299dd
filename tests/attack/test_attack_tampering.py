"""Tampering with the database outside the audit chain, caught by `allsuse audit verify --full`.

Random bytes written into the SQLite file, a decision payload edited, a transaction amount edited (with sqlite3,
as someone with file access would), a row deleted: each makes `--full` exit non-zero naming the table and row,
while a clean store passes. The same checks on a real PostgreSQL server when its binaries are installed.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from allsuse.store import Store
from allsuse.store.pgtest import TemporaryPostgres
from tests.rpc_support import ROOT


def build_store(url: str) -> dict[str, str]:
    """A store with a portfolio, accounts, a few hundred decisions and transactions (many pages); some ids."""
    with Store(url) as store:
        store.put_portfolio("p1", {"capital": "1000000.00"}, name="main")
        store.put_account("p1/gen-1", "p1", {"balance": "400000.00"}, kind="gen")
        decisions = [
            store.record_decision(
                f"key-{i}",
                {"action": "open_put", "strike": str(100 + i), "explanation": "x" * 400},
                kind="entry",
                portfolio_id="p1",
            )
            for i in range(300)
        ]
        store.update_decision(decisions[7].id, status="approved", actor="ops")
        transactions = [
            store.record_transaction("p1", f"{i}.25", {"reason": "premium"}, kind="premium", account_id="p1/gen-1")
            for i in range(60)
        ]
        store.record_outcome(decisions[7].id, {"right": True})
    return {"decision": decisions[150].id, "approved": decisions[7].id, "transaction": transactions[30].id}


def verify_full(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "allsuse.cli", "audit", "verify", "--full", "--store", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sqlite_exec(path: Path, *statements: str) -> None:
    """Straight through the sqlite3 driver: no store code, the triggers as they are unless a statement drops one."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "allsuse.db"
    ids = build_store(str(path))
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path, ids


def test_full_verify_passes_on_a_clean_store(db: tuple[Path, dict[str, str]]) -> None:
    path, _ = db
    result = verify_full(str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "integrity OK" in result.stdout and "audit log OK" in result.stdout


def test_full_verify_catches_random_bytes_in_the_sqlite_file(db: tuple[Path, dict[str, str]]) -> None:
    path, _ = db
    conn = sqlite3.connect(path)
    try:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        pages = [
            int(r[0])
            for r in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = 'decisions' AND pagetype = 'leaf' ORDER BY pageno"
            )
        ]
    finally:
        conn.close()
    assert len(pages) > 10
    victim = pages[len(pages) // 2]
    noise = random.Random(8).randbytes(4096)
    with path.open("r+b") as f:
        f.seek((victim - 1) * page_size)
        f.write(noise[:page_size] if page_size <= 4096 else noise)
    result = verify_full(str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "decisions" in result.stdout, result.stdout


def test_full_verify_catches_an_edited_decision_payload(db: tuple[Path, dict[str, str]]) -> None:
    path, ids = db
    sqlite_exec(
        path,
        'UPDATE decisions SET payload = replace(payload, \'"strike":"250"\', \'"strike":"25"\') '
        f"WHERE id = '{ids['decision']}'",
    )
    result = verify_full(str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"decisions row {ids['decision']}" in result.stdout, result.stdout


def test_full_verify_catches_an_edited_decision_status(db: tuple[Path, dict[str, str]]) -> None:
    path, ids = db
    sqlite_exec(path, f"UPDATE decisions SET status = 'declined' WHERE id = '{ids['approved']}'")
    result = verify_full(str(path))
    assert result.returncode == 1 and f"decisions row {ids['approved']}" in result.stdout, result.stdout


def test_full_verify_catches_an_edited_transaction_amount(db: tuple[Path, dict[str, str]]) -> None:
    path, ids = db
    sqlite_exec(
        path,
        "DROP TRIGGER transactions_no_update",  # what someone with file access does first
        f"UPDATE transactions SET amount = '99999.25' WHERE id = '{ids['transaction']}'",
    )
    result = verify_full(str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"transactions row {ids['transaction']}" in result.stdout, result.stdout


def test_full_verify_catches_a_raised_api_key_role(tmp_path: Path) -> None:
    path = tmp_path / "allsuse.db"
    with Store(path) as store:
        viewer = store.create_api_key("viewer")
    assert verify_full(str(path)).returncode == 0
    sqlite_exec(path, f"UPDATE api_keys SET role = 'admin' WHERE key_id = '{viewer.key_id}'")
    result = verify_full(str(path))
    assert result.returncode == 1 and f"api_keys row {viewer.key_id}: role is 'admin'" in result.stdout, result.stdout


def test_full_verify_examines_a_file_too_damaged_to_open(db: tuple[Path, dict[str, str]]) -> None:
    path, _ = db
    with path.open("r+b") as f:
        f.write(random.Random(3).randbytes(100))  # the header
    result = verify_full(str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the store cannot be opened" in result.stdout and "records NOT CHECKED" in result.stdout


def test_full_verify_catches_a_deleted_transaction(db: tuple[Path, dict[str, str]]) -> None:
    path, ids = db
    sqlite_exec(
        path, "DROP TRIGGER transactions_no_delete", f"DELETE FROM transactions WHERE id = '{ids['transaction']}'"
    )
    result = verify_full(str(path))
    assert result.returncode == 1 and f"transactions row {ids['transaction']}" in result.stdout, result.stdout


def test_full_verify_on_postgresql(pg_server: TemporaryPostgres) -> None:
    import psycopg

    dsn = pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    ids = build_store(dsn)
    clean = verify_full(dsn)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "integrity OK" in clean.stdout and "full read of every table" in clean.stdout
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")  # contrib, shipped with Debian's server package
    checked = verify_full(dsn)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "bt_index_check" in checked.stdout
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("DROP TRIGGER transactions_append_only ON transactions")
        conn.execute("UPDATE transactions SET amount = '1.00' WHERE id = %s", (ids["transaction"],))
        conn.execute("UPDATE decisions SET payload = '{\"forged\":true}' WHERE id = %s", (ids["decision"],))
    result = verify_full(dsn)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"transactions row {ids['transaction']}" in result.stdout
    assert f"decisions row {ids['decision']}" in result.stdout
