"""What one caller can hold, so that no caller can starve the others (or health).

Two pieces, applied to every method's handler innermost, under the interceptor layers (so refusals are logged,
counted and mapped like any error):

- **The request-message deadline.** gRPC reads a unary request's message before the handler runs, so a stream
  that sends HEADERS and never DATA would hold a call forever. `Admission` registers unary-request methods as
  request-streaming ones and reads the one message itself: if it has not arrived within
  `server.request_message_timeout_seconds` the call ends with DEADLINE_EXCEEDED (and the stream is closed).
  Request-streaming methods (reflection) must send their first message within the same time.
- **Calls and streams held, counted apart.** `CallLimits` counts the calls being worked on (unary responses) and
  the long-lived streams (streaming responses, e.g. StreamAlerts), each in total and per principal (the API key
  id; the peer host with auth off). Over a limit: RESOURCE_EXHAUSTED. A call takes its slot only once its message
  has arrived. Health and reflection are never counted.

Per connection, HTTP/2 itself bounds the streams (`grpc.max_concurrent_streams` = `server.max_streams_per_connection`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import grpc

from allsuse.errors import InvalidInputError
from allsuse.server.errors import LimitExceededError, MessageTimeoutError
from allsuse.server.request import CallState, current_call


def principal_key(call: CallState | None, peer: str) -> str:
    """What limits are counted by: `key:<key id>` for an authenticated caller, else `peer:<host>`."""
    principal = None if call is None else call.principal
    if principal is not None and principal.authenticated:
        return f"key:{principal.key_id}"
    return "peer:" + peer.rsplit(":", 1)[0]


@dataclass(frozen=True)
class Limit:
    """A total and a per-principal bound on one kind of call."""

    kind: str  # "calls" or "streams", for the messages
    total: int
    per_key: int


class CallLimits:
    """Counts calls (unary responses) and long-lived streams (streaming responses) in progress, in total and
    per principal key; `acquire` refuses with LimitExceededError when a bound is reached."""

    def __init__(self, *, calls: int, calls_per_key: int, streams: int, streams_per_key: int) -> None:
        for name, value in (
            ("calls", calls),
            ("calls_per_key", calls_per_key),
            ("streams", streams),
            ("streams_per_key", streams_per_key),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError.of(name, f"must be an int >= 1, got {value!r}")
        self.calls = Limit("calls", calls, calls_per_key)
        self.streams = Limit("streams", streams, streams_per_key)
        self._total = {"calls": 0, "streams": 0}
        self._by_key: dict[tuple[str, str], int] = {}

    def held(self, stream: bool, key: str | None = None) -> int:
        """Calls (or streams) in progress, in total or for `key`."""
        kind = "streams" if stream else "calls"
        return self._total[kind] if key is None else self._by_key.get((kind, key), 0)

    def acquire(self, key: str, *, stream: bool) -> Callable[[], None]:
        """Takes a slot for `key` (raises LimitExceededError if none is free); returns the function that gives
        it back (call it once)."""
        limit = self.streams if stream else self.calls
        slot = (limit.kind, key)
        mine = self._by_key.get(slot, 0)
        if mine >= limit.per_key:
            who = key.split(":", 1)[1]
            raise LimitExceededError(
                f"too many {limit.kind} in progress for {who}: at most {limit.per_key}; retry when one has ended"
            )
        if self._total[limit.kind] >= limit.total:
            raise LimitExceededError(
                f"the server is at its limit of {limit.total} {limit.kind} in progress; retry later"
            )
        self._by_key[slot] = mine + 1
        self._total[limit.kind] += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._total[limit.kind] -= 1
            left = self._by_key[slot] - 1
            if left:
                self._by_key[slot] = left
            else:
                del self._by_key[slot]

        return release


class MessageDeadlines:
    """The request-message deadline of every call waiting for its message, kept by one timer per event loop.

    `asyncio.timeout` around each read costs a timer handle, a heap push and a context manager per call; here a
    read registers its task and deadline in a dict, and one sweep every `timeout / 10` (at most 0.5 s) cancels the
    reads that are overdue, which then end with MessageTimeoutError. A call is refused between `timeout` and
    `timeout` plus one sweep interval after it started.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = float(timeout)
        self.interval = min(0.5, self.timeout / 10.0)
        self._waiting: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def read(self, context: Any) -> Any:
        """The call's request message, read within the timeout (MessageTimeoutError otherwise)."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - grpc.aio runs every call in a task
            return await _first_message(context, self.timeout)
        self._waiting[task] = loop.time() + self.timeout
        if self._timer is None or self._loop is not loop:
            self._loop = loop
            self._timer = loop.call_later(self.interval, self._sweep)
        try:
            message = await context.read()
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                task.uncancel()
                raise MessageTimeoutError(f"request message not received within {self.timeout:g} s") from None
            raise
        finally:
            self._waiting.pop(task, None)
        # A task the sweep cancelled is suspended at the read above (it leaves `_waiting` in the same step as it
        # resumes), so the cancellation always surfaces there.
        if message is grpc.aio.EOF:
            raise InvalidInputError.of("request", "the client ended the call without sending its request message")
        return message

    def _sweep(self) -> None:
        loop = self._loop
        if loop is None:  # pragma: no cover
            return
        now = loop.time()
        for task, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[task]
                self._expired.add(task)
                task.cancel()
        self._timer = loop.call_later(self.interval, self._sweep) if self._waiting else None


async def _first_message(context: Any, timeout: float) -> Any:
    """The call's request message, read within `timeout` seconds (MessageTimeoutError otherwise)."""
    try:
        async with asyncio.timeout(timeout):
            message = await context.read()
    except TimeoutError:
        raise MessageTimeoutError(f"request message not received within {timeout:g} s") from None
    if message is grpc.aio.EOF:
        raise InvalidInputError.of("request", "the client ended the call without sending its request message")
    return message


class _FirstWithin:
    """A request iterator whose first message must come within `timeout` seconds."""

    def __init__(self, requests: Any, timeout: float) -> None:
        self._requests = requests
        self._timeout = timeout
        self._first = True

    def __aiter__(self) -> _FirstWithin:
        return self

    async def __anext__(self) -> Any:
        if not self._first:
            return await self._requests.__anext__()
        self._first = False
        try:
            async with asyncio.timeout(self._timeout):
                return await self._requests.__anext__()
        except TimeoutError:
            raise MessageTimeoutError(f"request message not received within {self._timeout:g} s") from None


async def write_all(value: Any, context: Any) -> None:
    """Finishes a streaming handler's result in this task: awaits a writer coroutine, or writes every item of
    a (sync or async) iterator with `context.write` and closes it here, whatever happens."""
    if inspect.isawaitable(value):
        await value
    elif hasattr(value, "__aiter__"):
        async with aclosing(value) as responses:
            async for item in responses:
                await context.write(item)
    elif value is not None:
        for item in value:
            await context.write(item)


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


class Admission:
    """Wraps a method's handler (innermost) with the request-message deadline and the call/stream limits.

    `public(method)` says which methods (health, reflection) are never counted.
    """

    def __init__(self, message_timeout: float, limits: CallLimits | None, public: Callable[[str], bool]) -> None:
        if not message_timeout > 0:
            raise InvalidInputError.of("message_timeout", f"must be > 0, got {message_timeout!r}")
        self.message_timeout = float(message_timeout)
        self.deadlines = MessageDeadlines(self.message_timeout)
        self.limits = limits
        self.public = public

    def _slot(self, method: str, context: Any, stream: bool) -> Callable[[], None] | None:
        if self.limits is None or self.public(method):
            return None
        call = current_call()
        peer = call.peer if call is not None else str(context.peer())  # the chain has read it already
        return self.limits.acquire(principal_key(call, peer), stream=stream)

    def wrap(self, handler: Any, method: str) -> Any:
        """The handler with the deadline and the limits (a handler that is not async is left as it is)."""
        streaming = handler.response_streaming
        if not handler.request_streaming:
            inner = handler.unary_stream if streaming else handler.unary_unary
            if not _is_async(inner):
                return handler
            return self._unary_request(inner, method, handler, streaming)
        inner = handler.stream_stream if streaming else handler.stream_unary
        if not _is_async(inner):
            return handler
        return self._stream_request(inner, method, handler, streaming)

    def _unary_request(self, inner: Any, method: str, handler: Any, streaming: bool) -> Any:
        first = self.deadlines.read

        if streaming:

            async def stream_behavior(requests: Any, context: Any) -> None:
                request = await first(context)
                release = self._slot(method, context, True)
                try:
                    await write_all(inner(request, context), context)
                finally:
                    if release is not None:
                        release()

            return grpc.stream_stream_rpc_method_handler(
                stream_behavior, handler.request_deserializer, handler.response_serializer
            )

        async def unary_behavior(requests: Any, context: Any) -> Any:
            request = await first(context)
            release = self._slot(method, context, False)
            try:
                return await inner(request, context)
            finally:
                if release is not None:
                    release()

        return grpc.stream_unary_rpc_method_handler(
            unary_behavior, handler.request_deserializer, handler.response_serializer
        )

    def _stream_request(self, inner: Any, method: str, handler: Any, streaming: bool) -> Any:
        timeout = self.message_timeout

        if streaming:

            async def stream_behavior(requests: Any, context: Any) -> None:
                release = self._slot(method, context, True)
                try:
                    await write_all(inner(_FirstWithin(requests, timeout), context), context)
                finally:
                    if release is not None:
                        release()

            return grpc.stream_stream_rpc_method_handler(
                stream_behavior, handler.request_deserializer, handler.response_serializer
            )

        async def unary_behavior(requests: Any, context: Any) -> Any:
            release = self._slot(method, context, False)
            try:
                return await inner(_FirstWithin(requests, timeout), context)
            finally:
                if release is not None:
                    release()

        return grpc.stream_unary_rpc_method_handler(
            unary_behavior, handler.request_deserializer, handler.response_serializer
        )


__all__ = ["Admission", "CallLimits", "Limit", "MessageDeadlines", "principal_key", "write_all"]
