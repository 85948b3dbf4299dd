"""Helpers for servicer methods: `@rpc`, `run_blocking`, `check_deadline`.

    from allsuse.server import rpc, run_blocking, check_deadline

    class DecisionServicer(decision_pb2_grpc.DecisionServiceServicer):
        @rpc
        async def AssessRisk(self, request, context):
            check_deadline(context, need_seconds=0.05)      # DEADLINE_EXCEEDED if less is left
            result = await run_blocking(risk.value_at_risk, pnl, 0.975)   # off the event loop
            return decision_pb2.RiskAssessment(...)

`@rpc` maps any exception (and a panic of the Rust core) through the table of `allsuse.server.errors` (the
error interceptor does the same for undecorated handlers, so the mapping lives in one place) and works for unary
methods and async-generator streaming methods. `run_blocking` runs a sync callable on the server's bounded thread
pool: at most `server.blocking_workers` threads, and at most 16 waiting calls per thread before further callers
wait.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from typing import Any, ParamSpec, TypeVar, overload

import grpc

from allsuse.errors import InvalidInputError
from allsuse.server.errors import FAULTS, DeadlineExceededError, abort_with
from allsuse.server.request import current_call

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

QUEUE_PER_WORKER = 16


class BlockingPool:
    """A bounded thread pool for sync work called from async handlers (heavy core calls release the GIL)."""

    def __init__(self, workers: int = 4, *, name: str = "allsuse-blocking") -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
            raise InvalidInputError.of("workers", f"must be an int in 1..64, got {workers!r}")
        self.workers = workers
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._running = 0
        self._lock = threading.Lock()
        _POOLS.add(self)

    @property
    def running(self) -> int:
        """Calls running on a worker thread right now (queued ones not included)."""
        return self._running

    def _call(self, fn: Callable[[], T]) -> T:
        with self._lock:
            self._running += 1
        try:
            return fn()
        finally:
            with self._lock:
                self._running -= 1

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs fn(*args, **kwargs) on a worker thread (with the caller's context variables) and awaits it."""
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.workers * QUEUE_PER_WORKER)
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        async with slots:
            return await loop.run_in_executor(self._executor, self._call, call)

    def shutdown(self) -> None:
        """Stops the threads once their current work is done; queued work is cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)


_POOLS: weakref.WeakSet[BlockingPool] = weakref.WeakSet()
_DEFAULT_POOL: BlockingPool | None = None


def blocking_calls_running() -> int:
    """Calls running on the worker threads of every BlockingPool of this process.

    A sync call cannot be interrupted: after a drain, `allsuse serve` exits without waiting for these (the
    interpreter would otherwise join the worker threads at exit, past the 5 s shutdown bound).
    """
    return sum(pool.running for pool in list(_POOLS))


def _pool() -> BlockingPool:
    call = current_call()
    if call is not None and call.blocking is not None:
        return call.blocking
    global _DEFAULT_POOL
    if _DEFAULT_POOL is None:
        _DEFAULT_POOL = BlockingPool(4, name="allsuse-blocking-default")
    return _DEFAULT_POOL


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs a sync callable off the event loop on the server's bounded pool (outside a server: a default pool).

    If the RPC is cancelled (client gone, deadline passed) the await is cancelled; the thread finishes its call
    and the result is dropped.
    """
    return await _pool().run(fn, *args, **kwargs)


def check_deadline(context: grpc.aio.ServicerContext, need_seconds: float = 0.0) -> float | None:
    """Raises DeadlineExceededError if the call's deadline leaves no more than `need_seconds`; returns the
    seconds left (None when the client set no deadline)."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    left = float(remaining)
    if left <= need_seconds:
        raise DeadlineExceededError(f"deadline: {left:.3f} s left, the call needs about {need_seconds:.3f} s")
    return left


@overload
def rpc(method: Callable[[S, Req, Any], AsyncIterator[Resp]]) -> Callable[[S, Req, Any], AsyncIterator[Resp]]: ...


@overload
def rpc(method: Callable[[S, Req, Any], Awaitable[Resp]]) -> Callable[[S, Req, Any], Awaitable[Resp]]: ...


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorates an async servicer method (unary, or an async generator for server streaming): refuses a call
    whose deadline has passed and maps every exception through the status table."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                check_deadline(context)
                async with aclosing(method(self, request, context)) as responses:
                    async for response in responses:
                        yield response
            except grpc.aio.AbortError:
                raise
            except FAULTS as exc:  # every Exception, and a Rust panic
                await abort_with(context, exc)

        return stream
    if not inspect.iscoroutinefunction(method):
        raise InvalidInputError.of("method", f"@rpc needs an async method, got {method!r}")

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: Any) -> Any:
        try:
            check_deadline(context)
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except FAULTS as exc:  # every Exception, and a Rust panic
            await abort_with(context, exc)

    return unary


__all__ = ["QUEUE_PER_WORKER", "BlockingPool", "blocking_calls_running", "check_deadline", "rpc", "run_blocking"]
