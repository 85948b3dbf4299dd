"""The portfolio repository writes only what changed: a save with no change appends no audit entry, a changed
account or position is written alone, and a position that is gone is marked closed in the positions table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from allsuse.protocol.accounts import Portfolio
from allsuse.protocol.positions import Position
from allsuse.server.portfolios import PortfolioRepository, new_stored
from allsuse.store import Store

AT = dt.datetime(2024, 3, 7, 15, 45)


def head(store: Store) -> int:
    h = store.audit_head()
    assert h is not None
    return h[0]


def written(store: Store, after: int) -> list[tuple[str, str]]:
    """(entity, id) of every record written after audit seq `after` (the writes of a "batch" entry one by one)."""
    found: list[tuple[str, str]] = []
    for e in store.audit_entries(after_seq=after):
        for w in e.payload["writes"] if e.action == "batch" else [e.payload]:
            found.append((w.get("entity", e.action), w.get("id", "")))
    return found


def test_a_save_without_change_writes_nothing_and_changes_only_what_moved(tmp_path: Path) -> None:
    with Store(tmp_path / "allsuse.db") as store:
        repo = PortfolioRepository(store)
        stored = new_stored(Portfolio.create("p1", Decimal("1000000"), AT), owner=None)
        repo.save(stored, actor="t")
        put = Position("p1/pos-2", "p1/gen-1", "NVDA", "put", -2.0, AT.date(), 190.0, dt.date(2024, 3, 8), 1.25)
        stored.portfolio.open_position(put, AT, "sold 2 puts")
        repo.save(stored, actor="t")

        loaded = repo.load("p1")
        before = head(store)
        repo.save(loaded, actor="t")
        assert written(store, before) == []
        repo.save(repo.load("p1"), actor="t")
        assert written(store, before) == []

        loaded = repo.load("p1")
        loaded.portfolio.withdraw("p1/rev-1", Decimal("100"), AT)
        before = head(store)
        repo.save(loaded, actor="t")
        entities = written(store, before)
        assert ("account", "p1/rev-1") in entities and ("portfolio", "p1") in entities
        assert not any(kind == "position" for kind, _ in entities)
        assert not any(rid in ("p1/gen-1", "p1/com-1") for _, rid in entities)


def test_a_closed_position_is_marked_closed_once(tmp_path: Path) -> None:
    with Store(tmp_path / "allsuse.db") as store:
        repo = PortfolioRepository(store)
        stored = new_stored(Portfolio.create("p1", Decimal("1000000"), AT), owner=None)
        put = Position("p1/pos-2", "p1/gen-1", "NVDA", "put", -2.0, AT.date(), 190.0, dt.date(2024, 3, 8), 1.25)
        stored.portfolio.open_position(put, AT, "sold 2 puts")
        repo.save(stored, actor="t")
        assert [r.columns["status"] for r in store.list_positions(portfolio_id="p1")] == ["open"]

        loaded = repo.load("p1")
        loaded.portfolio.close_position("p1/pos-2", Decimal("0.10"), AT, "bought back", quantity=1)
        repo.save(loaded, actor="t")
        partly = store.get_position("p1/pos-2")
        assert partly is not None and partly.columns["status"] == "open" and partly.payload["quantity"] == -1.0

        loaded = repo.load("p1")
        loaded.portfolio.close_position("p1/pos-2", Decimal("0.10"), AT, "bought back", quantity=1)
        before = head(store)
        repo.save(loaded, actor="t")
        closed = store.get_position("p1/pos-2")
        assert closed is not None and closed.columns["status"] == "closed"
        assert written(store, before).count(("position", "p1/pos-2")) == 1

        before = head(store)
        repo.save(repo.load("p1"), actor="t")
        assert written(store, before) == []
