"""Runs a gRPC servicer method for a web request: the same handler, with the caller's principal and the role
table of its service, and the same error table (allsuse.server.errors) turned into an HTTP status.

The page never reimplements an RPC: an approval clicked on the page is `DecisionServicer.ApproveDecision` itself,
called with a stand-in for the grpc.aio context (the time left and `abort`, which is all `@rpc` asks of it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

import grpc

from allsuse.server.request import CallState, Principal, enter_call, leave_call

T = TypeVar("T")

CALL_TIMEOUT = 30.0
"""Seconds a page's call may take (the deadline its handler sees)."""

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class CallAbortedError(Exception):
    """A call ended with an error status: its gRPC code, the details the client would see, the invalid field."""

    def __init__(self, code: grpc.StatusCode, details: str, field: str = "") -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.field = field

    @property
    def http_status(self) -> int:
        """The HTTP status of the code (500 for INTERNAL and anything unmapped)."""
        return HTTP_STATUS.get(self.code, 500)


class WebCallContext:
    """What an `@rpc` handler asks of its grpc.aio.ServicerContext: the time left, done(), and abort()."""

    def __init__(self, timeout: float = CALL_TIMEOUT) -> None:
        self._deadline = time.monotonic() + timeout

    def time_remaining(self) -> float:
        """Seconds until the call's deadline."""
        return max(0.0, self._deadline - time.monotonic())

    def done(self) -> bool:
        """A page's call is never cancelled by its client mid-way."""
        return False

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Iterable[tuple[str, str]] = ()
    ) -> NoReturn:
        """Ends the call: raised as CallAbortedError (with the invalid field of the trailers, if any)."""
        raise CallAbortedError(code, details, dict(trailing_metadata).get("x-invalid-field", ""))


async def call_rpc(
    handler: Callable[[Any, Any], Awaitable[T]],
    request: Any,
    *,
    service: str,
    method: str,
    roles: Mapping[str, str],
    principal: Principal,
    peer: str,
) -> T:
    """`handler(request, context)` as the gRPC server would run it for `principal`: refused with PERMISSION_DENIED
    when the role is below `roles[method]` (the service's own table), else run with the principal as the current
    call's (so owner checks and the audit log name the caller). Errors come out as CallAbortedError."""
    required = roles[method]
    if not principal.allows(required):
        raise CallAbortedError(
            grpc.StatusCode.PERMISSION_DENIED,
            f"{method} needs the {required} role; this key's role is {principal.role}",
        )
    state = CallState(request_id=uuid.uuid4().hex, method=f"/{service}/{method}", peer=peer, principal=principal)
    token = enter_call(state)
    try:
        return await handler(request, WebCallContext())
    finally:
        leave_call(token)


__all__ = ["CALL_TIMEOUT", "HTTP_STATUS", "CallAbortedError", "WebCallContext", "call_rpc"]
