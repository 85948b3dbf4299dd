"""The interceptor layers as they were before issue 9 (commit b105b1b), kept only as the "before" of
bench/serve_overhead.py: six async context managers, installed as grpc interceptors. Not used by the server."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import uuid
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import grpc

from allsuse.server.auth import KeyVerifier, token_from_metadata
from allsuse.server.errors import FAULTS, REQUEST_ID_KEY, RateLimitedError, UnauthenticatedError, abort_with
from allsuse.server.limits import Admission, write_all
from allsuse.server.logs import access_log
from allsuse.server.metrics import ServerMetrics
from allsuse.server.ratelimit import TokenBucketLimiter
from allsuse.server.request import ANONYMOUS, CallState, current_call, enter_call, leave_call, role_allows
from allsuse.server.rpc import BlockingPool
from allsuse.server.wrapping import HandlerWrapper

log = logging.getLogger("allsuse.server")

PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")

Guard = Callable[[str, Any, bool], AbstractAsyncContextManager[None]]


def is_public(method: str) -> bool:
    """Whether `method` (a full method path) is health or reflection: no key needed, never rate limited."""
    return method.startswith(PUBLIC_PREFIXES)


def _metadata_value(context: Any, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item[0] == key and isinstance(item[1], str):
            return str(item[1])
    return None


async def _result(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _wrap(handler: Any, method: str, guard: Guard) -> Any:
    """The same handler with `guard(method, context, streaming_response)` around every call."""
    if handler.unary_unary is not None:
        unary_unary = handler.unary_unary

        async def wrapped_unary_unary(request: Any, context: Any) -> Any:
            async with guard(method, context, False):
                return await _result(unary_unary(request, context))

        return grpc.unary_unary_rpc_method_handler(
            wrapped_unary_unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary is not None:
        stream_unary = handler.stream_unary

        async def wrapped_stream_unary(requests: Any, context: Any) -> Any:
            async with guard(method, context, False):
                return await _result(stream_unary(requests, context))

        return grpc.stream_unary_rpc_method_handler(
            wrapped_stream_unary, handler.request_deserializer, handler.response_serializer
        )
    streaming = handler.unary_stream if handler.unary_stream is not None else handler.stream_stream

    # Always a writer coroutine, never an async generator: grpc.aio stops iterating a generator when the call is
    # cancelled and leaves it to asyncio's finaliser, which closes it later in another task and context (the
    # layers' context variables then fail to reset). Here the handler's generator is closed in the call's task.
    async def wrapped_writer(request: Any, context: Any) -> None:
        async with guard(method, context, True):
            await write_all(streaming(request, context), context)

    factory = (
        grpc.unary_stream_rpc_method_handler
        if handler.unary_stream is not None
        else grpc.stream_stream_rpc_method_handler
    )
    return factory(wrapped_writer, handler.request_deserializer, handler.response_serializer)


class Layer(HandlerWrapper):
    """An interceptor that puts `guard` around every call of the methods it applies to."""

    @abstractmethod
    def guard(self, method: str, context: Any, streaming: bool) -> AbstractAsyncContextManager[None]:
        """The context manager around one call (each layer defines its own)."""

    def wrap(self, handler: Any, method: str) -> Any:
        """The handler with this layer's guard around every call."""
        return _wrap(handler, method, self.guard)


class InterceptorChain(HandlerWrapper):
    """Several layers as one gRPC interceptor: a method's handler is wrapped once by every layer that applies
    (the first layer outermost) and cached. Same behaviour as installing the layers one by one, but gRPC's
    interceptor machinery runs once per call instead of once per layer (about 0.1 ms less per call with six).
    `admission` (allsuse.server.limits), when given, wraps the handler first, under every layer: the request
    message deadline and the call/stream limits."""

    def __init__(self, layers: Sequence[Layer], admission: Admission | None = None) -> None:
        super().__init__()
        self.layers = tuple(layers)
        self.admission = admission

    def wrap(self, handler: Any, method: str) -> Any:
        """The handler under the admission checks and every applicable layer."""
        wrapped = handler if self.admission is None else self.admission.wrap(handler, method)
        for layer in reversed(self.layers):
            if layer.applies(method):
                wrapped = _wrap(wrapped, method, layer.guard)
        return wrapped


def _outcome(context: Any, error: BaseException | None) -> str:
    """The status code name a call ended with."""
    if error is None or isinstance(error, grpc.aio.AbortError):
        code = context.code()
        if code is None:
            return "OK" if error is None else "UNKNOWN"
        return str(code.name)
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    return "UNKNOWN"


class CallTracker:
    """Counts the RPCs in progress that a drain waits for (all but health and reflection)."""

    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """One more call."""
        self.active += 1
        self._idle.clear()

    def leave(self) -> None:
        """One call fewer."""
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def idle(self) -> None:
        """Returns once no tracked call is in progress."""
        await self._idle.wait()


class RequestIdInterceptor(Layer):
    """Request id in, request id out; makes the CallState current for the layers and the handler."""

    def __init__(
        self,
        *,
        draining: asyncio.Event | None = None,
        blocking: BlockingPool | None = None,
        tracker: CallTracker | None = None,
    ) -> None:
        super().__init__()
        self.draining = draining
        self.blocking = blocking
        self.tracker = tracker

    @asynccontextmanager
    async def guard(self, method: str, context: Any, streaming: bool) -> AsyncIterator[None]:
        """See the class."""
        given = _metadata_value(context, REQUEST_ID_KEY)
        request_id = given if given is not None and _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = CallState(request_id, method, str(context.peer()), None, self.draining, self.blocking)
        token = enter_call(state)
        tracked = self.tracker is not None and not is_public(method)
        if tracked:
            assert self.tracker is not None
            self.tracker.enter()
        try:
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
            if streaming:
                await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
            yield
        finally:
            if tracked:
                assert self.tracker is not None
                self.tracker.leave()
            leave_call(token)


class MetricsInterceptor(Layer):
    """Counts every RPC by method and code, times it, and keeps the in-flight gauge."""

    def __init__(self, metrics: ServerMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    @asynccontextmanager
    async def guard(self, method: str, context: Any, streaming: bool) -> AsyncIterator[None]:
        """See the class."""
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.metrics.in_flight.dec()
            self.metrics.observe(method, _outcome(context, error), time.perf_counter() - started)


class AccessLogInterceptor(Layer):
    """One access log line per RPC; never the key's secret, never a message body."""

    @asynccontextmanager
    async def guard(self, method: str, context: Any, streaming: bool) -> AsyncIterator[None]:
        """See the class."""
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            call = current_call()
            principal = None if call is None else call.principal
            access_log(
                {
                    "event": "rpc",
                    "method": method,
                    "code": _outcome(context, error),
                    "duration_ms": round((time.perf_counter() - started) * 1000.0, 3),
                    "request_id": "" if call is None else call.request_id,
                    "key_id": None if principal is None else principal.key_id,
                    "role": None if principal is None else principal.role,
                    "peer": "" if call is None else call.peer,
                }
            )


class ErrorInterceptor(Layer):
    """Whatever escapes a handler or the auth layers becomes the status of the one table (errors.py)."""

    @asynccontextmanager
    async def guard(self, method: str, context: Any, streaming: bool) -> AsyncIterator[None]:
        """See the class."""
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except FAULTS as exc:  # every Exception, and a Rust panic (a BaseException)
            await abort_with(context, exc)


class AuthInterceptor(Layer):
    """Checks the API key and the method's minimum role; makes the principal current.

    With `verifier` None (auth disabled) every caller is the anonymous admin. A method of a bound service
    missing from `roles` is refused (deny by default).
    """

    def __init__(self, roles: Mapping[str, str], verifier: KeyVerifier | None) -> None:
        super().__init__()
        self.roles = dict(roles)
        self.verifier = verifier

    def applies(self, method: str) -> bool:
        """Every method but health and reflection."""
        return not is_public(method)

    @asynccontextmanager
    async def guard(self, method: str, context: Any, streaming: bool) -> AsyncIterator[None]:
        """See the class."""
        call = current_call()
        if self.verifier is None:
            principal = ANONYMOUS
        else:
            token = token_from_metadata(context.invocation_metadata())
            if token is None:
                raise UnauthenticatedError(
                    "missing API key: send 'authorization: Bearer <key_id>.<secret>' or 'x-api-key'"
                )
            found = await self.verifier.principal(token, str(context.peer()).rsplit(":", 1)[0])
            if found is None:
                raise UnauthenticatedError("invalid or revoked API key")
            principal = found
        if call is not None:
            call.principal = principal
        required = self.roles.get(method)
        if principal.authenticated:
            name = method.strip("/").replace("/", ".")  # the proto name: allsuse.v1.DecisionService.Decide
            if required is None:
                raise PermissionError(f"{name} has no role configured; nobody may call it")
            if not role_allows(principal.role, required):
                raise PermissionError(f"role {principal.role!r} may not call {name} (needs {required})")
        yield


class RateLimitInterceptor(Layer):
    """One token per call from the bucket of the caller's key id (or peer host when auth is disabled)."""

    def __init__(self, limiter: TokenBucketLimiter) -> None:
        super().__init__()
        self.limiter = limiter

    def applies(self, method: str) -> bool:
        """Every method but health and reflection."""
        return not is_public(method)

    @asynccontextmanager
    async def guard(self, method: str, context: Any, streaming: bool) -> AsyncIterator[None]:
        """See the class."""
        call = current_call()
        principal = None if call is None else call.principal
        if principal is not None and principal.authenticated:
            key = f"key:{principal.key_id}"
        else:
            peer = str(context.peer())
            key = "peer:" + peer.rsplit(":", 1)[0]
        wait = self.limiter.acquire(key)
        if wait > 0:
            who = key.split(":", 1)[1]
            raise RateLimitedError(f"rate limit exceeded for {who}: retry in {wait:.3f} s", wait)
        yield


__all__ = [
    "PUBLIC_PREFIXES",
    "AccessLogInterceptor",
    "AuthInterceptor",
    "CallTracker",
    "ErrorInterceptor",
    "InterceptorChain",
    "Layer",
    "MetricsInterceptor",
    "RateLimitInterceptor",
    "RequestIdInterceptor",
    "is_public",
]
