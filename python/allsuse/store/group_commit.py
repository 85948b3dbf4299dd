"""Group commit: many writers, one writer connection, one fsync per batch.

Callers (threads, or asyncio tasks through `asyncio.wrap_future`) enqueue a unit of work and get a
`concurrent.futures.Future`. One thread takes what is queued (at most `max_batch`), runs every unit inside its own
savepoint of a single transaction and commits once. A caller's future is resolved only after the COMMIT that holds
its write has returned, so nothing is acknowledged before it is durable.

A unit that raises is rolled back to its savepoint and only its caller gets the error; the rest of the batch goes
on. If the transaction itself fails (begin, a savepoint, the commit: I/O error, disk full, a deferred constraint,
a lost server), it is rolled back and every caller in the batch gets a StoreError: nothing of it was written.

Waiting: when the previous batch held more than one write (there are concurrent writers), the writer waits up to
`max_wait_s` for more before committing; a lone sequential writer never waits.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from allsuse.store._db import Connection, Dialect
from allsuse.store.errors import StoreClosedError, StoreError

T = TypeVar("T")


@dataclass(frozen=True)
class CommitStats:
    """Counters of the group committer since the store was opened."""

    batches: int
    writes: int
    failed_batches: int
    largest_batch: int


class _Request(Generic[T]):
    __slots__ = ("future", "unit")

    def __init__(self, unit: Callable[[Connection], T]) -> None:
        self.unit = unit
        self.future: Future[T] = Future()


_STOP = object()


class GroupCommitter:
    """Owns the writer connection and the thread that commits queued units in batches."""

    def __init__(self, dialect: Dialect, conn: Connection, max_batch: int = 256, max_wait_s: float = 0.001) -> None:
        self._dialect = dialect
        self._conn = conn
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._batches = 0
        self._writes = 0
        self._failed = 0
        self._largest = 0
        self._thread = threading.Thread(target=self._run, name="allsuse-store-writer", daemon=True)
        self._thread.start()

    def submit(self, unit: Callable[[Connection], T]) -> Future[T]:
        """Queues `unit` for the next batch; the future resolves after the batch holding it commits."""
        if threading.current_thread() is self._thread:
            raise StoreError("a write unit cannot submit another write (it would wait on itself)")
        request = _Request(unit)
        with self._lock:
            if self._closed:
                raise StoreClosedError("the store is closed")
            if not self._thread.is_alive():
                raise StoreError("the store's writer thread has stopped; reopen the store")
            self._queue.put(request)
        return request.future

    def stats(self) -> CommitStats:
        """The counters so far."""
        with self._lock:
            return CommitStats(self._batches, self._writes, self._failed, self._largest)

    def close(self, timeout_s: float | None = None) -> None:
        """Refuses new writes, commits what is queued, stops the thread and closes the writer connection."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise StoreError(f"the writer did not finish within {timeout_s} s")

    def _run(self) -> None:
        previous = 0
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            batch: list[_Request[Any]] = [item]
            stop = False
            deadline = time.monotonic() + (self._max_wait_s if previous > 1 else 0.0)
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            previous = len(batch)
            try:
                self._commit(batch)
            except BaseException as exc:  # a fault here must not leave any caller waiting forever
                for request in batch:
                    with suppress(InvalidStateError):
                        request.future.set_exception(StoreError(f"the writer failed: {exc!r}"))
            if stop:
                break
        self._conn.close()

    def _writer(self) -> Connection:
        if self._conn.broken():
            self._conn.close()
            self._conn = self._dialect.connect("writer")
        return self._conn

    def _commit(self, batch: list[_Request[Any]]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        results: list[tuple[_Request[Any], Any, BaseException | None]] = []
        conn: Connection | None = None
        try:
            conn = self._writer()
            self._dialect.begin_write(conn)
            for i, request in enumerate(live):
                conn.execute(f"SAVEPOINT unit_{i}")
                try:
                    value = request.unit(conn)
                except Exception as exc:
                    conn.execute(f"ROLLBACK TO SAVEPOINT unit_{i}")
                    conn.execute(f"RELEASE SAVEPOINT unit_{i}")
                    results.append((request, None, self._dialect.translate(exc, "write")))
                else:
                    conn.execute(f"RELEASE SAVEPOINT unit_{i}")
                    results.append((request, value, None))
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn is not None:
                conn.rollback_quietly()
            reason = self._dialect.translate(exc, "commit")
            with self._lock:
                self._batches += 1
                self._failed += 1
            own = {id(r): e for r, _, e in results if e is not None}
            for request in live:
                error = own.get(id(request))
                if error is None:
                    error = StoreError(
                        f"write batch of {len(live)} failed and was rolled back, nothing in it was written: {reason}"
                    )
                    error.__cause__ = exc
                request.future.set_exception(error)
            return
        with self._lock:
            self._batches += 1
            self._writes += sum(1 for _, _, e in results if e is None)
            self._largest = max(self._largest, len(live))
        for request, value, error in results:
            if error is None:
                request.future.set_result(value)
            else:
                request.future.set_exception(error)
