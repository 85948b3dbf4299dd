"""Equity history in the store: each account's and each portfolio's equity at market, one row per day.

The metrics job (allsuse.server.performance) rewrites today's row every minute of market hours, so a day's row
ends as its last mark of the session; the 17 metrics are computed from these daily series. `account_id` '' is
the portfolio as a whole. `day` is days since 1970-01-01. Rows are not entity records: they are not audited one
by one (a mark is a fact of prices, recomputable from positions and market history), and `prune` drops those
older than the retention.
"""

from __future__ import annotations

from collections.abc import Sequence

from allsuse.store._db import Connection
from allsuse.store.records import now_iso
from allsuse.store.store import Transaction

PORTFOLIO = ""
"""The account_id of a portfolio's own row."""

Mark = tuple[str, str, int, float]
"""(portfolio_id, account_id, day, equity)"""


def put_marks(tx: Transaction, marks: Sequence[Mark]) -> int:
    """Writes (or rewrites) each mark's row; returns how many."""
    now = now_iso()
    for portfolio_id, account_id, day, equity in marks:
        tx.execute(
            "INSERT INTO equity_marks (portfolio_id, account_id, day, equity, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (portfolio_id, account_id, day) DO UPDATE SET equity = excluded.equity, "
            "updated_at = excluded.updated_at",
            (portfolio_id, account_id, int(day), float(equity), now),
        )
    return len(marks)


def read_marks(conn: Connection, portfolio_id: str, account_id: str = PORTFOLIO) -> list[tuple[int, float]]:
    """(day, equity) of one series, oldest first."""
    rows = conn.query(
        "SELECT day, equity FROM equity_marks WHERE portfolio_id = ? AND account_id = ? ORDER BY day",
        (portfolio_id, account_id),
    )
    return [(int(r[0]), float(r[1])) for r in rows]


def prune(tx: Transaction, before_day: int) -> int:
    """Deletes the marks of days before `before_day`; returns how many."""
    return tx.execute("DELETE FROM equity_marks WHERE day < ?", (int(before_day),))


__all__ = ["PORTFOLIO", "Mark", "prune", "put_marks", "read_marks"]
