"""Portfolios as the service keeps them, and how requests for one portfolio take turns.

The aggregate is two records: the portfolio (accounts, groups, positions) and its engine state (the engine's
per-account runtime and trust) with the aggregate's version, in the `engine_states` row. Every write of the
aggregate moves that version, conditionally on the version it was loaded at, in one unit with one audit entry: a
Decide that changes only the engine state writes its decision and the engine state row, nothing else. A write
from a stale copy (another replica moved the portfolio meanwhile) is refused (StaleVersionError,
FAILED_PRECONDITION), so two servers sharing a database never lose each other's updates.

Inside one server, requests for one portfolio take turns (PortfolioQueue: fair, bounded, on the event loop, so
waiting requests hold no worker thread), and the portfolios being decided on stay loaded (PortfolioCache: the
aggregate with its live Engine and version, bounded, dropped by any write of this process at a newer version).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from allsuse.errors import InvalidInputError
from allsuse.protocol.accounts import Account, AccountGroup, Portfolio, Transaction
from allsuse.protocol.engine import Engine
from allsuse.protocol.positions import Position
from allsuse.server.errors import FailedPreconditionError, LimitExceededError, NotFoundError
from allsuse.store import Record, Store, StoreConflictError
from allsuse.store.records import decode_payload
from allsuse.store.store import Transaction as StoreTx

T = TypeVar("T")

DEFAULT_CACHE_SIZE = 256
DEFAULT_QUEUE_LIMIT = 512


class StaleVersionError(FailedPreconditionError):
    """The portfolio was written (by another replica) after this copy was loaded; nothing was written. Retryable:
    reload and run the request again."""


def _account(a: Account) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "balance": str(a.balance),
        "base": str(a.base),
        "peak": str(a.peak),
        "group_id": a.group_id,
        "state": a.state,
        "leaps": str(a.leaps),
        "quarter_realised": str(a.quarter_realised),
        "reinvest_cash": str(a.reinvest_cash),
    }


def _position(p: Position) -> dict[str, Any]:
    return {
        "id": p.id,
        "account_id": p.account_id,
        "symbol": p.symbol,
        "kind": p.kind,
        "quantity": p.quantity,
        "opened": p.opened.isoformat(),
        "strike": p.strike,
        "expiry": p.expiry.isoformat() if p.expiry else None,
        "premium": p.premium,
        "cost_basis": p.cost_basis,
        "iv": p.iv,
        "band": list(p.band) if p.band else None,
    }


@dataclass
class StoredPortfolio:
    """A portfolio loaded from the store, with what is needed to write it back safely. `version` is the
    aggregate's version (its engine_states row; for a portfolio stored before that table, its record's)."""

    portfolio: Portfolio
    version: int
    owner: str | None
    engine_state: dict[str, Any]
    recorded: int  # transactions already in the store

    def payload(self) -> dict[str, Any]:
        """The JSON form of the aggregate (money as exact decimal strings)."""
        p = self.portfolio
        return {
            "version": self.version + 1,
            "owner": self.owner,
            "accounts": [_account(a) for a in p.accounts.values()],
            "groups": [
                {"id": g.id, "parent_id": g.parent_id, "account_ids": list(g.account_ids), "merged": g.merged}
                for g in p.groups.values()
            ],
            "positions": [_position(x) for x in p.positions.values()],
            "transactions": self.recorded + len(p.transactions),
            "next_position": self.next_position,
        }

    next_position: int = 1
    # The accounts and positions as last written (JSON form), the aggregate's payload without its version and the
    # engine state as last written: a save writes only what differs from them (None: never written). Compared as
    # JSON values (dict equality: no encoding per save); `engine_state` is replaced, never changed in place.
    stored_accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored_positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored_payload: dict[str, Any] | None = None
    stored_engine: dict[str, Any] | None = None


def from_records(portfolio: Record, state: Record | None) -> StoredPortfolio:
    """Rebuilds the aggregate from its portfolio record and engine state row (None: stored before migration 5,
    when the engine state lived in the portfolio record)."""
    stored = from_payload(portfolio.id, portfolio.payload)
    if state is not None:
        stored.engine_state = dict(state.payload)
        stored.version = int(state.columns["version"])
        stored.stored_engine = stored.engine_state
    return stored


def from_payload(portfolio_id: str, payload: dict[str, Any]) -> StoredPortfolio:
    """Rebuilds the aggregate from its stored payload."""
    p = Portfolio(portfolio_id)
    for g in payload["groups"]:
        p.groups[g["id"]] = AccountGroup(g["id"], g["parent_id"], list(g["account_ids"]), bool(g["merged"]))
    for a in payload["accounts"]:
        p.accounts[a["id"]] = Account(
            a["id"],
            a["kind"],
            Decimal(a["balance"]),
            Decimal(a["base"]),
            Decimal(a["peak"]),
            a["group_id"],
            a["state"],
            Decimal(a["leaps"]),
            Decimal(a["quarter_realised"]),
            Decimal(a.get("reinvest_cash", "0.00")),
        )
    for x in payload["positions"]:
        p.positions[x["id"]] = Position(
            x["id"],
            x["account_id"],
            x["symbol"],
            x["kind"],
            float(x["quantity"]),
            dt.date.fromisoformat(x["opened"]),
            float(x["strike"]),
            dt.date.fromisoformat(x["expiry"]) if x["expiry"] else None,
            float(x["premium"]),
            float(x["cost_basis"]),
            float(x["iv"]),
            (float(x["band"][0]), float(x["band"][1])) if x.get("band") else None,
        )
    recorded = int(payload.get("transactions", 0))
    # New transactions continue the stored numbering; the old ones live in the store's ledger.
    p._ids = itertools.count(recorded + 1)
    return StoredPortfolio(
        p,
        int(payload["version"]),
        payload.get("owner"),
        dict(payload.get("engine") or {}),
        recorded,
        int(payload.get("next_position", 1)),
        stored_accounts={a["id"]: a for a in payload["accounts"]},
        stored_positions={x["id"]: x for x in payload["positions"]},
        stored_payload=_unversioned(payload),
        stored_engine=dict(payload.get("engine") or {}),
    )


def _unversioned(payload: dict[str, Any]) -> dict[str, Any]:
    """The aggregate's payload without its version (and without the engine state a payload stored before migration
    5 holds): an equal one means nothing changed."""
    return {k: v for k, v in payload.items() if k not in ("version", "engine")}


class PortfolioRepository:
    """Loads and saves portfolio aggregates; every save tells the store's PortfolioCache its new version."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self, portfolio_id: str) -> StoredPortfolio:
        """The stored portfolio, or NotFoundError naming it."""
        if not portfolio_id:
            raise InvalidInputError.of("portfolio_id", "must not be empty")
        record, state = self.store.get_portfolio_state(portfolio_id)
        if record is None:
            raise NotFoundError(f"portfolio_id: no portfolio {portfolio_id!r}")
        return from_records(record, state)

    def save(
        self,
        stored: StoredPortfolio,
        *,
        actor: str,
        extra: Callable[[StoreTx], object] | None = None,
        claim: Callable[[StoreTx], None] | None = None,
    ) -> None:
        """Writes what changed of the aggregate, and its new transactions, in one durable unit with one audit
        entry; refuses a stale copy (StaleVersionError).

        The version is checked in the transaction whatever is written. Only records that differ from the stored
        ones are written: the portfolio record when anything in it changed, each changed or new account and
        position, each position that is gone as "closed", and the engine state row, which carries the aggregate's
        version: it is written (conditionally on the version loaded, which then moves) whenever anything of the
        aggregate changed. A save with no change writes nothing (but `claim` and `extra`). `claim(tx)` runs
        first (an idempotency key: a concurrent twin request rolls this one back); `extra(tx)` may add writes (a
        decision, an outcome) to the same unit. A Decide that changes no account writes two rows (the engine
        state and `extra`'s decision) and one audit entry."""
        payload = stored.payload()
        p = stored.portfolio
        new_txs = p.transactions  # only this request's transactions are held in memory
        unversioned = _unversioned(payload)
        changed = unversioned != stored.stored_payload or bool(new_txs)
        moved = changed or stored.engine_state != stored.stored_engine
        accounts = payload["accounts"]
        positions = payload["positions"]
        # What to write, worked out here (not on the store's writer thread, which every request shares).
        put_accounts = [a for a in accounts if stored.stored_accounts.get(a["id"]) != a]
        put_positions = [x for x in positions if stored.stored_positions.get(x["id"]) != x]
        live = {x["id"] for x in positions}
        gone = [last for gone_id, last in stored.stored_positions.items() if gone_id not in live]

        def unit(tx: StoreTx) -> None:
            with tx.one_entry(actor=actor):
                if claim is not None:
                    claim(tx)
                _check_version(tx, p.id, stored.version)
                if moved:
                    write(tx)
                    try:
                        tx.put_engine_state(p.id, stored.engine_state, expected_version=stored.version, actor=actor)
                    except StoreConflictError as exc:  # pragma: no cover - _check_version read it in this unit
                        raise StaleVersionError(f"portfolio_id: {p.id} changed meanwhile ({exc}); retry") from None
                if extra is not None:
                    extra(tx)

        def write(tx: StoreTx) -> None:
            if changed:
                tx.put_portfolio(p.id, payload, actor=actor)
            for a in put_accounts:
                tx.put_account(a["id"], p.id, a, kind=a["kind"], actor=actor)
            # Positions are also kept as their own records (open, or closed once gone) for queries and reports.
            for x in put_positions:
                tx.put_position(x["id"], p.id, x, status="open", account_id=x["account_id"], actor=actor)
            for last in gone:
                tx.put_position(last["id"], p.id, last, status="closed", account_id=last["account_id"], actor=actor)
            for t in new_txs:
                tx.record_transaction(
                    p.id,
                    t.amount,
                    _transaction(t),
                    kind=t.kind,
                    account_id=t.account_id,
                    transaction_id=f"{p.id}/tx-{t.id}",
                    actor=actor,
                )

        self.store.write(unit)
        stored.stored_accounts = {a["id"]: a for a in accounts}
        stored.stored_positions = {x["id"]: x for x in positions}
        stored.stored_payload = unversioned
        stored.stored_engine = stored.engine_state
        stored.recorded += len(new_txs)
        p.transactions = []
        if moved:
            stored.version += 1
            PortfolioRuntime.of(self.store).cache.committed(p.id, stored.version)


def _check_version(tx: StoreTx, portfolio_id: str, expected: int) -> None:
    """StaleVersionError unless the aggregate is still at `expected` (inside the write transaction, which holds
    the store's write lock: nothing can move it between this check and the unit's writes)."""
    row = tx.query("SELECT version FROM engine_states WHERE id = ?", (portfolio_id,))
    if row:
        found = int(row[0][0])
    else:
        current = tx.query("SELECT payload FROM portfolios WHERE id = ?", (portfolio_id,))
        found = 0 if not current else int(decode_payload(current[0][0]).get("version", 0))
    if found != expected:
        raise StaleVersionError(
            f"portfolio_id: {portfolio_id} changed meanwhile (version {found}, expected {expected}); retry"
        )


def _transaction(t: Transaction) -> dict[str, Any]:
    return {
        "id": t.id,
        "at": t.at.isoformat(),
        "kind": t.kind,
        "account_id": t.account_id,
        "amount": str(t.amount),
        "reason": t.reason,
        "counterparty": t.counterparty,
    }


def new_stored(portfolio: Portfolio, owner: str | None) -> StoredPortfolio:
    """A portfolio not yet stored (version 0)."""
    return StoredPortfolio(portfolio, 0, owner, {}, 0)


# --- one portfolio at a time, kept loaded ----------------------------------------------------------------------


@dataclass
class Loaded:
    """A portfolio kept in memory between requests: the aggregate at `stored.version` and the Engine holding its
    engine state (built once: a Decide neither rebuilds it nor imports its state)."""

    stored: StoredPortfolio
    engine: Engine


class PortfolioCache:
    """The portfolios being decided on, at most `capacity` of them (least recently used dropped first).

    Every save of this process reports the version it committed (`committed`): an entry older than that is
    dropped, and an entry offered later at an older version is refused, so the cache never holds what a write of
    this process has superseded. Writes of other replicas are caught by the version check of the next save
    (StaleVersionError: the caller drops the entry, reloads and retries once). Thread-safe.
    """

    def __init__(self, capacity: int = DEFAULT_CACHE_SIZE) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= 1_000_000:
            raise InvalidInputError.of("capacity", f"must be an int in 0..1000000, got {capacity!r}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Loaded] = OrderedDict()
        self._newest: OrderedDict[str, int] = OrderedDict()  # the latest version this process committed
        self._turns: dict[str, tuple[threading.Lock, int]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, portfolio_id: str) -> Loaded | None:
        """The loaded portfolio, or None (then load it from the store)."""
        with self._lock:
            entry = self._entries.get(portfolio_id)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(portfolio_id)
            self.hits += 1
            return entry

    def put(self, portfolio_id: str, entry: Loaded) -> bool:
        """Keeps `entry` unless a write of this process committed a newer version; whether it was kept."""
        with self._lock:
            if self.capacity == 0 or entry.stored.version < self._newest.get(portfolio_id, 0):
                self._entries.pop(portfolio_id, None)
                return False
            self._entries[portfolio_id] = entry
            self._entries.move_to_end(portfolio_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            return True

    def drop(self, portfolio_id: str) -> None:
        """Forgets a portfolio (its entry may hold changes that were never written)."""
        with self._lock:
            self._entries.pop(portfolio_id, None)

    def committed(self, portfolio_id: str, version: int) -> None:
        """A write of this process stored `version` of the portfolio: older entries are stale."""
        with self._lock:
            if version > self._newest.get(portfolio_id, 0):
                self._newest[portfolio_id] = version
            self._newest.move_to_end(portfolio_id)
            while len(self._newest) > max(1024, 4 * self.capacity):
                self._newest.popitem(last=False)
            entry = self._entries.get(portfolio_id)
            if entry is not None and entry.stored.version < version:
                del self._entries[portfolio_id]

    @contextmanager
    def turn(self, portfolio_id: str) -> Iterator[None]:
        """Holds the portfolio's thread lock: one worker thread at a time uses its Engine. The PortfolioQueue
        already orders requests on the event loop, so this lock is uncontended there; it guards direct callers."""
        with self._lock:
            lock, users = self._turns.get(portfolio_id, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._turns[portfolio_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._turns[portfolio_id]
                if users <= 1:
                    del self._turns[portfolio_id]
                else:
                    self._turns[portfolio_id] = (lock, users - 1)


class PortfolioQueue:
    """Requests for one portfolio take turns, first come first served (asyncio.Lock is FIFO), on the event loop:
    a waiting request holds no worker thread, so the blocking pool cannot fill with waiters (no deadlock). At
    most `limit` requests wait for one portfolio; one more is refused with RESOURCE_EXHAUSTED."""

    def __init__(self, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
            raise InvalidInputError.of("limit", f"must be an int in 1..1000000, got {limit!r}")
        self.limit = limit
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, list[Any]]] = (
            weakref.WeakKeyDictionary()
        )

    def waiting(self, portfolio_id: str) -> int:
        """Requests holding or waiting for the portfolio's turn on the running loop."""
        turns = self._loops.get(asyncio.get_running_loop(), {})
        return int(turns[portfolio_id][1]) if portfolio_id in turns else 0

    @asynccontextmanager
    async def turn(self, portfolio_id: str) -> AsyncIterator[None]:
        """Waits for the portfolio's turn and holds it for the block."""
        loop = asyncio.get_running_loop()
        turns = self._loops.setdefault(loop, {})
        slot = turns.get(portfolio_id)
        if slot is None:
            slot = turns[portfolio_id] = [asyncio.Lock(), 0]
        if slot[1] > self.limit:
            raise LimitExceededError(
                f"portfolio_id: {slot[1]} requests for {portfolio_id!r} are already queued; retry later"
            )
        slot[1] += 1
        try:
            async with slot[0]:
                yield
        finally:
            slot[1] -= 1
            if slot[1] == 0 and turns.get(portfolio_id) is slot:
                del turns[portfolio_id]

    async def run(self, portfolio_id: str, work: Callable[[], Awaitable[T]]) -> T:
        """Runs `work()` in the portfolio's turn. The turn is held until `work` has really finished, even when the
        caller is cancelled (a worker thread cannot be stopped; the next request must not overlap it)."""
        async with self.turn(portfolio_id):
            task = asyncio.ensure_future(work())
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                while not task.done():
                    try:
                        await asyncio.shield(task)
                    except asyncio.CancelledError:
                        continue
                    except Exception:  # the caller is gone; the task keeps its own error
                        break
                raise


class PortfolioRuntime:
    """The cache and the queue of one open Store (so every servicer and repository of a server shares them)."""

    _of: ClassVar[weakref.WeakKeyDictionary[Store, PortfolioRuntime]] = weakref.WeakKeyDictionary()
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.cache = PortfolioCache(cache_size)
        self.queue = PortfolioQueue(queue_limit)

    @classmethod
    def of(cls, store: Store, cache_size: int | None = None, queue_limit: int | None = None) -> PortfolioRuntime:
        """The runtime of `store`, created on first use (sizes apply when it is created, or change them)."""
        with cls._guard:
            runtime = cls._of.get(store)
            if runtime is None:
                runtime = cls._of[store] = cls(
                    DEFAULT_CACHE_SIZE if cache_size is None else cache_size,
                    DEFAULT_QUEUE_LIMIT if queue_limit is None else queue_limit,
                )
            else:
                if cache_size is not None and cache_size != runtime.cache.capacity:
                    runtime.cache = PortfolioCache(cache_size)
                if queue_limit is not None:
                    runtime.queue.limit = queue_limit
            return runtime


def retry_stale(fn: Callable[..., T], *args: Any) -> T:
    """Runs `fn(*args)`; when another replica moved the portfolio after it was loaded (StaleVersionError:
    nothing was written), runs it once more on a fresh load. A second loss is the client's to retry."""
    try:
        return fn(*args)
    except StaleVersionError:
        return fn(*args)
