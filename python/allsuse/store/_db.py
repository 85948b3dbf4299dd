"""Connections to the two backends behind one small interface.

SQLite is a real local file in WAL mode with synchronous=FULL: a commit returns only after the WAL is fsynced, so
an acknowledged write survives a process crash and a power loss. PostgreSQL is reached by a DSN with
synchronous_commit=on for the same guarantee. SQL is written once with `?` placeholders; the PostgreSQL
connection rewrites them to `%s`. Every connection has timeouts: connect, busy/lock wait and statement.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from allsuse.config import PROJECT_DIR
from allsuse.errors import InvalidInputError
from allsuse.store.errors import StoreClosedError, StoreError, StoreIntegrityError

DEFAULT_SQLITE_PATH = PROJECT_DIR / "var" / "allsuse.db"  # the checkout's var/, or the working folder's
URL_ENV = "ALLSUSE_STORE_URL"

Backend = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class Timeouts:
    """Upper bounds on waiting, in seconds: connecting, waiting for a lock, running one statement."""

    connect_s: float = 10.0
    lock_s: float = 15.0
    statement_s: float = 30.0


@dataclass(frozen=True)
class Location:
    """Where the store lives: a SQLite file path or a PostgreSQL DSN."""

    backend: Backend
    target: str

    def describe(self) -> str:
        """The location with any password masked, for logs and reports."""
        if self.backend == "sqlite":
            return f"sqlite:{self.target}"
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", re.sub(r"(password=)\S+", r"\1***", self.target))


def parse_location(url: str | os.PathLike[str] | None = None) -> Location:
    """Reads a store URL: `postgresql://...` (or any libpq DSN with `host=`/`dbname=`), `sqlite:///abs/path`,
    `sqlite:rel/path` or a plain file path. None means $ALLSUSE_STORE_URL, else var/allsuse.db in the project."""
    if url is None:
        url = os.environ.get(URL_ENV) or None
    if url is None:
        return Location("sqlite", str(DEFAULT_SQLITE_PATH))
    text = os.fspath(url).strip()
    if not text:
        raise InvalidInputError.of("url", "is empty")
    if text.startswith(("postgresql://", "postgres://")) or re.match(r"^(host|dbname|user|port)=", text):
        return Location("postgresql", text)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme is not None and scheme.group(1).lower() != "sqlite":
        raise InvalidInputError.of(
            "url", f"unknown scheme {scheme.group(1)!r}: use postgresql://..., sqlite:///path or a file path"
        )
    if text.startswith("sqlite://"):
        text = text[len("sqlite://") :]
    elif text.startswith("sqlite:"):
        text = text[len("sqlite:") :]
    if text in ("", ":memory:") or text.startswith("file::memory:"):
        raise InvalidInputError.of("url", "the store must be a real file, not an in-memory database")
    return Location("sqlite", str(Path(text).expanduser().resolve()))


class Connection:
    """One database connection. `execute` takes `?` placeholders on both backends."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Runs one statement; returns the driver's cursor (rowcount, fetchone, fetchall)."""
        return self.dialect.run(self.raw, sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Runs a query and returns all its rows as tuples."""
        return [tuple(r) for r in self.execute(sql, params).fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Runs a query and returns its first row, or None."""
        row = self.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def in_transaction(self) -> bool:
        """Whether a transaction is open on this connection."""
        return self.dialect.in_transaction(self.raw)

    def broken(self) -> bool:
        """Whether the connection is closed or unusable (then it is replaced, never reused)."""
        return self.dialect.broken(self.raw)

    def rollback_quietly(self) -> None:
        """Ends any open transaction, ignoring errors (used on error paths only)."""
        with suppress(Exception):
            if not self.broken() and self.in_transaction():
                self.raw.execute("ROLLBACK")

    def close(self) -> None:
        """Closes the connection; errors are ignored."""
        with suppress(Exception):
            self.raw.close()


class Dialect(ABC):
    """What differs between SQLite and PostgreSQL."""

    name: Backend

    def __init__(self, location: Location, timeouts: Timeouts) -> None:
        self.location = location
        self.timeouts = timeouts

    @abstractmethod
    def connect(self, role: Literal["writer", "reader"]) -> Connection:
        """Opens a configured connection (autocommit; transactions are begun explicitly)."""

    @abstractmethod
    def run(self, raw: Any, sql: str, params: Sequence[Any]) -> Any:
        """Executes one statement on a raw driver connection."""

    @abstractmethod
    def begin_write(self, conn: Connection) -> None:
        """Begins a write transaction that holds the store's single write lock (serializes audit appends)."""

    @abstractmethod
    def begin_snapshot(self, conn: Connection) -> None:
        """Begins a read-only transaction that sees one consistent snapshot."""

    @abstractmethod
    def begin_migration(self, conn: Connection) -> None:
        """Begins a transaction holding a lock that serializes migrations across processes."""

    @abstractmethod
    def in_transaction(self, raw: Any) -> bool:
        """Whether a transaction is open."""

    @abstractmethod
    def broken(self, raw: Any) -> bool:
        """Whether the connection is closed or broken."""

    @abstractmethod
    def is_integrity_error(self, exc: BaseException) -> bool:
        """Whether `exc` is a constraint violation."""

    @abstractmethod
    def is_database_error(self, exc: BaseException) -> bool:
        """Whether `exc` comes from the driver."""

    def translate(self, exc: BaseException, what: str) -> BaseException:
        """Maps a driver error to StoreIntegrityError/StoreError; returns anything else unchanged."""
        if self.is_integrity_error(exc):
            return StoreIntegrityError(f"{what}: {exc}")
        if self.is_database_error(exc):
            return StoreError(f"{what}: {type(exc).__name__}: {exc}")
        return exc


class SqliteDialect(Dialect):
    """A local file in WAL mode, synchronous=FULL (every commit fsyncs the WAL), foreign keys on."""

    name: Backend = "sqlite"

    def connect(self, role: Literal["writer", "reader"]) -> Connection:
        path = Path(self.location.target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            raw = sqlite3.connect(
                str(path), timeout=self.timeouts.lock_s, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {self.location.describe()}: {exc}") from exc
        try:
            mode = raw.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise StoreError(f"{self.location.describe()}: WAL mode refused (journal_mode={mode!r})")
            raw.execute("PRAGMA synchronous=FULL")
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute(f"PRAGMA busy_timeout={int(self.timeouts.lock_s * 1000)}")
            if role == "reader":
                raw.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            raw.close()
            raise StoreError(f"cannot configure {self.location.describe()}: {exc}") from exc
        except StoreError:
            raw.close()
            raise
        return Connection(raw, self)

    def run(self, raw: Any, sql: str, params: Sequence[Any]) -> Any:
        return raw.execute(sql, tuple(params))

    def begin_write(self, conn: Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def begin_snapshot(self, conn: Connection) -> None:
        conn.execute("BEGIN")

    def begin_migration(self, conn: Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def in_transaction(self, raw: Any) -> bool:
        return bool(raw.in_transaction)

    def broken(self, raw: Any) -> bool:
        try:
            raw.total_changes  # noqa: B018 - raises ProgrammingError once closed
        except sqlite3.ProgrammingError:
            return True
        return False

    def is_integrity_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def is_database_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)


class PostgresDialect(Dialect):
    """A PostgreSQL server by DSN; synchronous_commit=on; write transactions lock the audit head row."""

    name: Backend = "postgresql"
    MIGRATION_LOCK_KEY = 0x616C6C73  # "alls": pg_advisory_xact_lock key serializing migrations

    def __init__(self, location: Location, timeouts: Timeouts) -> None:
        super().__init__(location, timeouts)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is pinned in requirements.txt
            raise StoreError("PostgreSQL store needs the psycopg package") from exc
        self._psycopg = psycopg

    def connect(self, role: Literal["writer", "reader"]) -> Connection:
        psycopg = self._psycopg
        try:
            raw = psycopg.connect(
                self.location.target, autocommit=True, connect_timeout=max(1, round(self.timeouts.connect_s))
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.location.describe()}: {exc}") from exc
        try:
            for setting, value in (
                ("statement_timeout", int(self.timeouts.statement_s * 1000)),
                ("lock_timeout", int(self.timeouts.lock_s * 1000)),
                ("idle_in_transaction_session_timeout", int(max(60.0, 2 * self.timeouts.statement_s) * 1000)),
            ):
                raw.execute(f"SET {setting} = {value}")
            raw.execute("SET synchronous_commit = on")
            raw.execute("SET TimeZone = 'UTC'")
            if role == "reader":
                raw.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            raw.close()
            raise StoreError(f"cannot configure connection to {self.location.describe()}: {exc}") from exc
        return Connection(raw, self)

    def run(self, raw: Any, sql: str, params: Sequence[Any]) -> Any:
        if not params:
            return raw.execute(sql)
        return raw.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))

    def begin_write(self, conn: Connection) -> None:
        conn.execute("BEGIN")
        # One row lock orders every writer of every process: audit appends form one chain and two
        # write transactions never wait on each other's rows (no deadlocks).
        if conn.one("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE") is None:
            raise StoreError("audit_head row is missing: run `allsuse audit verify` and see docs/store.md")

    def begin_snapshot(self, conn: Connection) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def begin_migration(self, conn: Connection) -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_advisory_xact_lock(?)", (self.MIGRATION_LOCK_KEY,))

    def in_transaction(self, raw: Any) -> bool:
        return bool(raw.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE)

    def broken(self, raw: Any) -> bool:
        return bool(raw.closed or raw.broken)

    def is_integrity_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._psycopg.IntegrityError)

    def is_database_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._psycopg.Error)


def dialect_for(location: Location, timeouts: Timeouts) -> Dialect:
    """The dialect object of a location."""
    if location.backend == "postgresql":
        return PostgresDialect(location, timeouts)
    return SqliteDialect(location, timeouts)


class ReaderPool:
    """A bounded pool of read connections shared by all threads (no connection per thread)."""

    def __init__(self, dialect: Dialect, size: int, acquire_timeout_s: float) -> None:
        self._dialect = dialect
        self._size = size
        self._timeout = acquire_timeout_s
        self._idle: list[Connection] = []
        self._open = 0
        self._closed = False
        self._cond = threading.Condition()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Lends a connection; it comes back without an open transaction, or is dropped if broken."""
        conn = self._acquire()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            if not ok:
                conn.rollback_quietly()
            self._release(conn)

    def _acquire(self) -> Connection:
        with self._cond:
            while True:
                if self._closed:
                    raise StoreClosedError("the store is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self._size:
                    self._open += 1
                    break
                if not self._cond.wait(timeout=self._timeout):
                    raise StoreError(f"no read connection became free within {self._timeout} s")
        try:
            return self._dialect.connect("reader")
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _release(self, conn: Connection) -> None:
        if conn.in_transaction() and not conn.broken():
            conn.rollback_quietly()
        with self._cond:
            if self._closed or conn.broken():
                self._open -= 1
                conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        """Closes idle connections now and lent ones when they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()
