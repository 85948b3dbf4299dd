"""The per-call work of the server around every handler, in one pass (outermost first):

1. request id: `x-request-id` from the metadata (or a new one), the call's `CallState` made current (request id,
   peer, drain signal, blocking pool), the id echoed in the trailing metadata (and, for streaming responses, in the
   initial metadata too); the RPCs a drain waits for are counted;
2. metrics: requests by method and code, latency by method, the in-flight gauge;
3. access log: one JSON line per RPC (method, code, duration, request id, key id, role, peer) when the
   "allsuse.access" logger is enabled for INFO; nothing is built when it is not;
4. errors: whatever a handler (or the steps below) raises is mapped through `allsuse.server.errors`;
5. auth: the API key and the minimum role of the method (UNAUTHENTICATED, PERMISSION_DENIED);
6. rate limit: one token per call from the caller's bucket (RESOURCE_EXHAUSTED);

then `admission` (allsuse.server.limits: the request-message deadline and the call/stream limits) and the
request decoding check (allsuse.server.decode), then the handler. Health and reflection skip steps 5 and 6 and
are not counted by the drain.

Why one pass: the steps used to be six async context managers, each a grpc interceptor of its own, and cost about
a third of a health check. `InterceptorChain.wrap` now decides once per method what applies (public or not, the
required role, the metric children, the proto name for messages) and gives a handler whose call does the steps
inline: no context manager, no per-call label lookup, one clock read at each end shared by metrics and the access
log. The server wraps handlers when the services register (`allsuse.server.wrapping.WrappingRegistrar`), so grpc's
interceptor machinery does not run per call at all; `InterceptorChain` still works as a grpc interceptor too.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from allsuse.server.auth import KeyVerifier, token_from_metadata
from allsuse.server.errors import FAULTS, REQUEST_ID_KEY, RateLimitedError, UnauthenticatedError, abort_with
from allsuse.server.limits import Admission, write_all
from allsuse.server.logs import access_log, access_logging
from allsuse.server.metrics import MethodMetrics, ServerMetrics
from allsuse.server.ratelimit import TokenBucketLimiter
from allsuse.server.request import ANONYMOUS, CallState, enter_call, leave_call, role_allows
from allsuse.server.rpc import BlockingPool
from allsuse.server.wrapping import HandlerWrapper

log = logging.getLogger("allsuse.server")

PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
_AUTH_KEYS = frozenset(("authorization", "x-api-key"))


def is_public(method: str) -> bool:
    """Whether `method` (a full method path) is health or reflection: no key needed, never rate limited."""
    return method.startswith(PUBLIC_PREFIXES)


class _RequestIds:
    """New request ids: 32 hex digits, a random 20-digit prefix per process and a counter (a uuid4 per call cost a
    system call; the prefix is drawn again in a forked child, so processes never share ids)."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = os.urandom(10).hex()
        self._counter = itertools.count(1)

    def new(self) -> str:
        """A request id not given out before by this process."""
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


REQUEST_IDS = _RequestIds()


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
        if self.active == 1:
            self._idle.clear()

    def leave(self) -> None:
        """One call fewer."""
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def idle(self) -> None:
        """Returns once no tracked call is in progress."""
        await self._idle.wait()


class _Method:
    """What the chain decided for one method when it wrapped it (nothing of this is looked up per call)."""

    __slots__ = ("method", "metrics", "name", "public", "required")

    def __init__(self, method: str, roles: Mapping[str, str], metrics: ServerMetrics | None) -> None:
        self.method = method
        self.name = method.strip("/").replace("/", ".")  # the proto name: allsuse.v1.DecisionService.Decide
        self.public = is_public(method)
        self.required = roles.get(method)
        self.metrics: MethodMetrics | None = None if metrics is None else metrics.method(method)


class InterceptorChain(HandlerWrapper):
    """The six steps of this module's docstring around a method's handler, decided once per method.

    `roles`: full method path -> minimum role (a bound method without one is refused: deny by default);
    `verifier` None means auth is disabled (every caller is the anonymous admin); `limiter` None means no rate
    limit; `metrics` None means none are kept; `admission` (allsuse.server.limits), when given, wraps the handler
    first, under every step; `inner` (e.g. the request decoding check) wraps it before that.
    """

    def __init__(
        self,
        *,
        roles: Mapping[str, str] | None = None,
        verifier: KeyVerifier | None = None,
        limiter: TokenBucketLimiter | None = None,
        metrics: ServerMetrics | None = None,
        admission: Admission | None = None,
        draining: asyncio.Event | None = None,
        blocking: BlockingPool | None = None,
        tracker: CallTracker | None = None,
        inner: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__()
        self.roles = dict(roles or {})
        self.verifier = verifier
        self.limiter = limiter
        self.metrics = metrics
        self.admission = admission
        self.draining = draining
        self.blocking = blocking
        self.tracker = tracker
        self.inner = inner
        self.in_flight = 0  # every call being served, health too; the gauge reads it when scraped (no lock per call)
        if metrics is not None:
            metrics.in_flight.set_function(lambda: float(self.in_flight))

    def wrap(self, handler: Any, method: str) -> Any:
        """The handler under the decoding check, admission and the six steps."""
        if self.inner is not None:
            handler = self.inner(handler)
        if self.admission is not None:
            handler = self.admission.wrap(handler, method)
        plan = _Method(method, self.roles, self.metrics)
        run = self._run
        if handler.unary_unary is not None or handler.stream_unary is not None:
            unary = handler.unary_unary if handler.unary_unary is not None else handler.stream_unary

            async def respond(request: Any, context: Any) -> Any:
                return await run(plan, context, False, unary, request)

            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary is not None
                else grpc.stream_unary_rpc_method_handler
            )
            return factory(respond, handler.request_deserializer, handler.response_serializer)
        streaming = handler.unary_stream if handler.unary_stream is not None else handler.stream_stream

        # Always a writer coroutine, never an async generator: grpc.aio stops iterating a generator when the call
        # is cancelled and leaves it to asyncio's finaliser, which closes it later in another task and context
        # (the call's context variable then fails to reset). Here the handler's generator is closed in the task.
        async def body(request: Any, context: Any) -> None:
            await write_all(streaming(request, context), context)

        async def write(request: Any, context: Any) -> None:
            await run(plan, context, True, body, request)

        factory = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream is not None
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(write, handler.request_deserializer, handler.response_serializer)

    async def _run(
        self, plan: _Method, context: Any, streaming: bool, behavior: Callable[[Any, Any], Any], request: Any
    ) -> Any:
        """One call of `plan`'s method through the six steps."""
        # 1. request id (and, in the same pass over the metadata, whether an API key was sent)
        given: str | None = None
        keyed = False
        metadata = context.invocation_metadata() or ()
        for item in metadata:
            key = item[0]
            if key == REQUEST_ID_KEY:
                if given is None and isinstance(item[1], str):
                    given = item[1]
            elif key in _AUTH_KEYS:
                keyed = True
        request_id = given if given is not None and _REQUEST_ID.match(given) else REQUEST_IDS.new()
        peer = context.peer()
        state = CallState(request_id, plan.method, peer, None, self.draining, self.blocking)
        token = enter_call(state)
        tracker = None if plan.public else self.tracker
        if tracker is not None:
            tracker.enter()
        timed = plan.metrics
        started = time.perf_counter()
        self.in_flight += 1
        error: BaseException | None = None
        try:
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
            if streaming:
                await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
            try:
                if not plan.public:
                    await self._admit(plan, state, metadata if keyed else (), peer)
                result = behavior(request, context)
                return await result if inspect.isawaitable(result) else result
            except grpc.aio.AbortError:
                raise
            except FAULTS as exc:  # 4. every Exception, and a Rust panic (a BaseException)
                await abort_with(context, exc)
        except BaseException as exc:
            error = exc
            raise
        finally:
            seconds = time.perf_counter() - started
            self.in_flight -= 1
            code = None
            if timed is not None:  # 2. metrics
                code = _outcome(context, error)
                timed.observe(code, seconds)
            if access_logging():  # 3. access log
                principal = state.principal
                access_log(
                    {
                        "event": "rpc",
                        "method": plan.method,
                        "code": _outcome(context, error) if code is None else code,
                        "duration_ms": round(seconds * 1000.0, 3),
                        "request_id": request_id,
                        "key_id": None if principal is None else principal.key_id,
                        "role": None if principal is None else principal.role,
                        "peer": peer,
                    }
                )
            if tracker is not None:
                tracker.leave()
            leave_call(token)

    async def _admit(self, plan: _Method, state: CallState, metadata: Any, peer: str) -> None:
        """5. auth and 6. rate limit: makes the principal current, or raises."""
        verifier = self.verifier
        if verifier is None:
            principal = ANONYMOUS
        else:
            token = token_from_metadata(metadata)
            if token is None:
                raise UnauthenticatedError(
                    "missing API key: send 'authorization: Bearer <key_id>.<secret>' or 'x-api-key'"
                )
            found = verifier.cached(token)
            if found is False:
                found = await verifier.principal(token, peer.rsplit(":", 1)[0])
            if found is None:
                raise UnauthenticatedError("invalid or revoked API key")
            principal = found
        state.principal = principal
        if principal.authenticated:
            required = plan.required
            if required is None:
                raise PermissionError(f"{plan.name} has no role configured; nobody may call it")
            if not role_allows(principal.role, required):
                raise PermissionError(f"role {principal.role!r} may not call {plan.name} (needs {required})")
        limiter = self.limiter
        if limiter is not None:
            key = f"key:{principal.key_id}" if principal.authenticated else "peer:" + peer.rsplit(":", 1)[0]
            wait = limiter.acquire(key)
            if wait > 0:
                who = key.split(":", 1)[1]
                raise RateLimitedError(f"rate limit exceeded for {who}: retry in {wait:.3f} s", wait)


__all__ = [
    "PUBLIC_PREFIXES",
    "REQUEST_IDS",
    "CallTracker",
    "InterceptorChain",
    "is_public",
]
