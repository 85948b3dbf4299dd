"""What a Decide costs the store: the durable write of a decision and the engine state change.

Rows (a portfolio of 3 accounts and 12 positions, an engine state of 3 accounts with 20 orders each; one Decide
after another, each a group commit of its own, so every figure includes the fsync of SQLite's WAL):
- Decide write: `PortfolioRepository.save` of a loaded portfolio whose engine state changed, with the decision:
  the engine state row and the decision, one audit entry (issue 9).
- baseline, the write before issue 9, rebuilt on the same store with the store's own calls: read and decode the
  portfolio record to check its version, rewrite the whole record (accounts, positions and the engine state in
  its payload), record the decision, one audit entry each.
- the same two writes in CPU seconds of this process (the writer thread's JSON, hashing and SQL, without the
  fsync wait), which is what a busy server pays per Decide.

`python bench/bench_store.py` prints the repository path (load + write, as the server did per Decide before
the PortfolioCache, and the write alone) with the rows and audit entries each Decide appends, for whatever
allsuse is importable: run it on an older checkout (PYTHONPATH) to compare before and after.
"""

from __future__ import annotations

import datetime as dt
import inspect
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from allsuse.protocol.accounts import Portfolio  # noqa: E402
from allsuse.protocol.positions import Position  # noqa: E402
from allsuse.server.portfolios import PortfolioRepository, StoredPortfolio, new_stored  # noqa: E402
from allsuse.store import Store  # noqa: E402
from allsuse.store.store import Transaction as StoreTx  # noqa: E402
from bench.harness import Row  # noqa: E402

AT = dt.datetime(2024, 3, 7, 15, 45)
# Decisions name their account since migration 5 (run on an older checkout, this script leaves it out).
ACCOUNT = "account_id" in inspect.signature(StoreTx.record_decision).parameters
DECIDES = 300
TARGET = "fewer rows, 1 audit entry"


def _portfolio(pid: str) -> StoredPortfolio:
    stored = new_stored(Portfolio.create(pid, Decimal("1000000"), AT), owner=None)
    p = stored.portfolio
    for i in range(12):
        account = list(p.accounts)[i % 3]
        put = Position(f"{pid}/pos-{i + 2}", account, "NVDA", "put", -1.0, AT.date(), 100.0 + i, dt.date(2024, 3, 8))
        p.positions[put.id] = put
    stored.engine_state = _engine_state(p, 0)
    return stored


def _engine_state(p: Portfolio, n: int) -> dict[str, Any]:
    orders = [(AT - dt.timedelta(minutes=k)).isoformat() for k in range(20)]
    return {
        "accounts": {
            a: {"protection": [0, 0.0, 738000 + n, n], "frozen_until": None, "orders": orders, "cut_at": {}}
            for a in p.accounts
        },
        "trust": {"scores": {"entry": 0.3, "roll": 0.3}, "last_outcome": {}},
    }


def _decision(pid: str, n: int) -> dict[str, Any]:
    return {
        "decision_id": f"d{n}",
        "portfolio_id": pid,
        "account_id": f"{pid}/gen-1",
        "action": "OPEN_PUT",
        "explanation": "label GREEN (trend up 12.1%, iv 0.45); ES 1.2% of equity within budget " * 3,
        "order": {"kind": "put", "strike": 190.0, "contracts": 3, "limit_price": 1.25},
        "compliance": [{"code": f"R{k}", "passed": True, "message": "ok"} for k in range(16)],
    }


def _record(tx: Any, pid: str, n: int, account: bool) -> None:
    kwargs: dict[str, Any] = {"account_id": f"{pid}/gen-1"} if account else {}
    tx.record_decision(f"auto-{pid}-{n}", _decision(pid, n), kind="entry", portfolio_id=pid, actor="bench", **kwargs)


def _new_writes(store: Store, stored: StoredPortfolio, count: int) -> Callable[[], None]:
    repo = PortfolioRepository(store)
    n = [0]

    def one() -> None:
        n[0] += 1
        stored.engine_state = _engine_state(stored.portfolio, n[0])
        repo.save(stored, actor="bench", extra=lambda tx: _record(tx, stored.portfolio.id, n[0], ACCOUNT))

    def batch() -> None:
        for _ in range(count):
            one()

    return batch


def _old_writes(store: Store, stored: StoredPortfolio, count: int) -> Callable[[], None]:
    """The write before issue 9: the version read back by decoding the portfolio record, the whole aggregate
    (engine state included) rewritten, the decision recorded; an audit entry for each record."""
    pid = stored.portfolio.id
    payload = stored.payload()
    payload["engine"] = stored.engine_state
    store.put_portfolio(pid, payload, actor="bench")
    n = [0]

    def one() -> None:
        n[0] += 1
        current = dict(payload)
        current["engine"] = _engine_state(stored.portfolio, n[0])

        def unit(tx: Any) -> None:
            found = tx.get("portfolio", pid)
            assert found is not None and int(found.payload["version"]) == current["version"]
            current["version"] += 1
            tx.put_portfolio(pid, current, actor="bench")
            _record(tx, pid, n[0], False)

        store.write(unit)
        payload["version"] = current["version"]

    def batch() -> None:
        for _ in range(count):
            one()

    return batch


def _timed(fn: Callable[[], None], count: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) per Decide of one batch, after a warm-up batch."""
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


def _audit_per_decide(store: Store, fn: Callable[[], None], count: int) -> tuple[float, float]:
    head = store.audit_head()
    before = 0 if head is None else head[0]
    fn()
    entries = store.audit_entries(after_seq=before, limit=100_000)
    writes = sum(len(e.payload["writes"]) if e.action == "batch" else 1 for e in entries)
    return len(entries) / count, writes / count


def run() -> list[Row]:
    with (
        tempfile.TemporaryDirectory(prefix="allsuse-bench-store-") as tmp,
        Store(Path(tmp) / "new.db") as new_store,
        Store(Path(tmp) / "old.db") as old_store,
    ):
        new_stored_ = _portfolio("pf-new")
        PortfolioRepository(new_store).save(new_stored_, actor="bench")
        old_stored = _portfolio("pf-old")
        new_fn = _new_writes(new_store, new_stored_, DECIDES)
        old_fn = _old_writes(old_store, old_stored, DECIDES)
        new_wall, new_cpu = _timed(new_fn, DECIDES)
        old_wall, old_cpu = _timed(old_fn, DECIDES)
        new_entries, new_rows = _audit_per_decide(new_store, new_fn, DECIDES)
        old_entries, old_rows = _audit_per_decide(old_store, old_fn, DECIDES)
    label = f"rows {new_rows:g} vs {old_rows:g}, audit entries {new_entries:g} vs {old_entries:g}"
    return [
        Row(f"Decide durable write, wall with fsync ({label})", new_wall, "whole-aggregate rewrite", old_wall, TARGET),
        Row("Decide durable write, CPU of the process", new_cpu, "whole-aggregate rewrite", old_cpu, TARGET),
    ]


def main() -> int:
    """The repository path of whatever allsuse is importable: load + write and write alone, per Decide."""
    with tempfile.TemporaryDirectory(prefix="allsuse-bench-store-") as tmp, Store(Path(tmp) / "s.db") as store:
        stored = _portfolio("pf")
        repo = PortfolioRepository(store)
        repo.save(stored, actor="bench")
        write_only = _new_writes(store, stored, DECIDES)
        wall, cpu = _timed(write_only, DECIDES)
        entries, rows = _audit_per_decide(store, write_only, DECIDES)
        n = [0]

        def load_and_write() -> None:
            for _ in range(DECIDES):
                n[0] += 1
                loaded = repo.load("pf")
                loaded.engine_state = _engine_state(loaded.portfolio, 10_000 + n[0])
                repo.save(loaded, actor="bench", extra=lambda tx: _record(tx, "pf", 10_000 + n[0], ACCOUNT))

        lw_wall, lw_cpu = _timed(load_and_write, DECIDES)
    print(f"allsuse from {sys.modules['allsuse'].__file__}")
    print(f"per Decide: rows written {rows:g}, audit entries {entries:g}")
    print(f"write alone:   wall {wall * 1e3:.3f} ms, CPU {cpu * 1e6:.0f} us")
    print(f"load + write:  wall {lw_wall * 1e3:.3f} ms, CPU {lw_cpu * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
