"""Market history in the store: daily bars and quotes by (symbol, day), idempotent, on SQLite and PostgreSQL.

Writes run inside a store write unit (`store.write(lambda tx: put_bars(tx, ...))`), so they are group-committed,
durable when acknowledged and audited: one audit entry per publish that changed anything ("market.bars" or
"market.quotes", with the symbol, the span, the counts and a SHA-256 of the rows written). Re-publishing a stored
value writes nothing; a different value for a stored (symbol, day) is a MarketConflictError unless `replace`.

`day` is the number of days since 1970-01-01. `revision` is a per-table counter assigned under the store's write
lock, so a reader can ask "what changed after revision r" and a server notices rows another process wrote.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from allsuse.errors import InvalidInputError
from allsuse.store._db import Connection
from allsuse.store.errors import StoreConflictError
from allsuse.store.records import now_iso
from allsuse.store.store import Transaction

EPOCH = dt.date(1970, 1, 1)
MARKET_WIDE = ""
"""The symbol under which market-wide quotes (the VIX) are kept."""
CHUNK = 400
"""Rows per INSERT statement."""

BarRow = tuple[int, float, float, float, float, float]
"""(day, open, high, low, close, volume)"""


class MarketConflictError(StoreConflictError):
    """A publish would change a stored (symbol, day) without `replace`; `index` is the offending entry."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class PublishCounts:
    """What one publish did."""

    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0


def day_text(day: int) -> str:
    """A day number as YYYY-MM-DD."""
    return (EPOCH + dt.timedelta(days=int(day))).isoformat()


def _next_revision(tx: Transaction, table: str) -> int:
    row = tx.query(f"SELECT MAX(revision) FROM {table}")
    return int(row[0][0] or 0) + 1


def put_bars(
    tx: Transaction,
    symbol: str,
    rows: Sequence[BarRow],
    *,
    replace: bool,
    actor: str,
    imputed: Sequence[int] = (),
) -> PublishCounts:
    """Stores bars of `symbol` (rows sorted by day, checked by the caller); all or nothing. `imputed` names the
    days among `rows` that were filled forward rather than given by a source: they are flagged in market_imputed,
    and a given bar written over a flagged day clears its flag."""
    if not rows:
        return PublishCounts()
    filled = set(imputed)
    if filled - {r[0] for r in rows}:
        raise InvalidInputError.of("imputed_days", "every imputed day must be the day of one of the bars")
    stored: dict[int, tuple[float, ...]] = {
        int(r[0]): tuple(float(x) for x in r[1:])
        for r in tx.query(
            "SELECT day, open, high, low, close, volume FROM market_bars WHERE symbol = ? AND day BETWEEN ? AND ?",
            (symbol, rows[0][0], rows[-1][0]),
        )
    }
    new: list[BarRow] = []
    changed: list[BarRow] = []
    for i, row in enumerate(rows):
        old = stored.get(row[0])
        if old is None:
            new.append(row)
        elif old != tuple(row[1:]):
            if not replace:
                raise MarketConflictError(
                    f"{symbol} {day_text(row[0])} is stored with other values (open, high, low, close, volume = "
                    f"{', '.join(f'{x:g}' for x in old)}); set replace to overwrite it",
                    i,
                )
            changed.append(row)
    if not new and not changed:
        return PublishCounts(unchanged=len(rows))
    _flag_imputed(tx, symbol, [r[0] for r in new], [r[0] for r in changed], filled)
    revision = _next_revision(tx, "market_bars")
    now = now_iso()
    for start in range(0, len(new), CHUNK):
        chunk = new[start : start + CHUNK]
        marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        params: list[Any] = []
        for r in chunk:
            params.extend((symbol, *r, revision, now))
        tx.execute(
            "INSERT INTO market_bars (symbol, day, open, high, low, close, volume, revision, updated_at) "
            f"VALUES {marks}",
            tuple(params),
        )
    for r in changed:
        tx.execute(
            "UPDATE market_bars SET open = ?, high = ?, low = ?, close = ?, volume = ?, revision = ?, updated_at = ? "
            "WHERE symbol = ? AND day = ?",
            (*r[1:], revision, now, symbol, r[0]),
        )
    written = sorted([*new, *changed])
    digest = hashlib.sha256(json.dumps([list(r) for r in written]).encode()).hexdigest()
    tx.audit(
        "market.bars",
        {
            "symbol": symbol,
            "first": day_text(written[0][0]),
            "last": day_text(written[-1][0]),
            "inserted": len(new),
            "replaced": len(changed),
            "revision": revision,
            "rows_sha256": digest,
            "imputed": len(filled & {r[0] for r in written}),
        },
        actor=actor,
    )
    return PublishCounts(len(new), len(changed), len(rows) - len(new) - len(changed))


def _flag_imputed(tx: Transaction, symbol: str, new: Sequence[int], changed: Sequence[int], filled: set[int]) -> None:
    """Keeps market_imputed true to the bars just written: filled days flagged, given days unflagged."""
    for day in changed:
        if day not in filled:
            tx.execute("DELETE FROM market_imputed WHERE symbol = ? AND day = ?", (symbol, day))
    flag = [d for d in (*new, *changed) if d in filled]
    if changed:
        stored = {int(r[0]) for r in tx.query("SELECT day FROM market_imputed WHERE symbol = ?", (symbol,))}
        flag = [d for d in flag if d not in stored]
    for start in range(0, len(flag), CHUNK):
        chunk = flag[start : start + CHUNK]
        marks = ", ".join(["(?, ?)"] * len(chunk))
        params: list[Any] = []
        for d in chunk:
            params.extend((symbol, d))
        tx.execute(f"INSERT INTO market_imputed (symbol, day) VALUES {marks}", tuple(params))


def imputed_days(conn: Connection, symbol: str) -> list[int]:
    """The stored days of `symbol` whose bar was filled forward (see put_bars), oldest first."""
    return [int(r[0]) for r in conn.query("SELECT day FROM market_imputed WHERE symbol = ? ORDER BY day", (symbol,))]


def put_quotes(
    tx: Transaction, day: int, quotes: Mapping[str, Mapping[str, Any]], *, replace: bool, actor: str
) -> PublishCounts:
    """Stores the quotes of `day` per symbol (MARKET_WIDE for the VIX); all or nothing."""
    if not quotes:
        return PublishCounts()
    day = int(day)
    texts = {symbol: json.dumps(payload, sort_keys=True, separators=(",", ":")) for symbol, payload in quotes.items()}
    symbols = sorted(texts)
    marks = ", ".join("?" * len(symbols))
    stored = {
        str(r[0]): str(r[1])
        for r in tx.query(
            f"SELECT symbol, payload FROM market_quotes WHERE day = ? AND symbol IN ({marks})", (day, *symbols)
        )
    }
    new = [s for s in symbols if s not in stored]
    changed = [s for s in symbols if s in stored and stored[s] != texts[s]]
    if changed and not replace:
        s = changed[0]
        what = "the VIX" if s == MARKET_WIDE else s
        raise MarketConflictError(
            f"quotes of {what} on {day_text(day)} are stored with other values; set replace to overwrite them",
            list(quotes).index(s),
        )
    if not new and not changed:
        return PublishCounts(unchanged=len(symbols))
    written = sorted([*new, *changed])
    revision = _next_revision(tx, "market_quotes")
    now = now_iso()
    for s in new:
        tx.execute(
            "INSERT INTO market_quotes (symbol, day, payload, revision, updated_at) VALUES (?, ?, ?, ?, ?)",
            (s, day, texts[s], revision, now),
        )
    for s in changed:
        tx.execute(
            "UPDATE market_quotes SET payload = ?, revision = ?, updated_at = ? WHERE symbol = ? AND day = ?",
            (texts[s], revision, now, s, day),
        )
    tx.audit(
        "market.quotes",
        {
            "day": day_text(day),
            "symbols": written,
            "inserted": len(new),
            "replaced": len(changed),
            "revision": revision,
            "payload_sha256": hashlib.sha256("\n".join(texts[s] for s in written).encode()).hexdigest(),
        },
        actor=actor,
    )
    return PublishCounts(len(new), len(changed), len(symbols) - len(new) - len(changed))


def revisions(conn: Connection) -> tuple[int, int]:
    """The latest revision of market_bars and of market_quotes (0 when empty)."""
    row = conn.one("SELECT (SELECT MAX(revision) FROM market_bars), (SELECT MAX(revision) FROM market_quotes)")
    if row is None:
        return 0, 0
    return int(row[0] or 0), int(row[1] or 0)


def changed_symbols(conn: Connection, table: str, after: int) -> list[str]:
    """Symbols with rows in `table` ("market_bars" or "market_quotes") written after revision `after`."""
    if table not in ("market_bars", "market_quotes"):
        raise ValueError(table)
    return [str(r[0]) for r in conn.query(f"SELECT DISTINCT symbol FROM {table} WHERE revision > ?", (after,))]


def read_bars(conn: Connection, symbol: str, start: int | None = None, end: int | None = None) -> list[BarRow]:
    """The stored bars of `symbol` with start <= day <= end (None: unbounded), oldest first."""
    sql = "SELECT day, open, high, low, close, volume FROM market_bars WHERE symbol = ?"
    params: list[Any] = [symbol]
    if start is not None:
        sql += " AND day >= ?"
        params.append(start)
    if end is not None:
        sql += " AND day <= ?"
        params.append(end)
    rows = conn.query(sql + " ORDER BY day", tuple(params))
    return [(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in rows]


def read_quotes(conn: Connection, symbol: str) -> list[tuple[int, dict[str, Any]]]:
    """The stored quotes of `symbol` (MARKET_WIDE: the VIX), oldest first."""
    rows = conn.query("SELECT day, payload FROM market_quotes WHERE symbol = ? ORDER BY day", (symbol,))
    return [(int(r[0]), json.loads(r[1])) for r in rows]


__all__ = [
    "MARKET_WIDE",
    "BarRow",
    "MarketConflictError",
    "PublishCounts",
    "changed_symbols",
    "day_text",
    "imputed_days",
    "put_bars",
    "put_quotes",
    "read_bars",
    "read_quotes",
    "revisions",
]
