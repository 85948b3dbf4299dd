"""The one table from exceptions to gRPC status codes, and the abort that applies it.

| exception | status | details sent to the client |
|---|---|---|
| InvalidInputError, ConvergenceError | INVALID_ARGUMENT | "field: reason" (names the field) |
| NotFoundError, StoreNotFoundError | NOT_FOUND | the message |
| AlreadyExistsError; StoreIntegrityError on a duplicate key | ALREADY_EXISTS | the message / a fixed text |
| FailedPreconditionError; other StoreIntegrityError | FAILED_PRECONDITION | the message / a fixed text |
| UnauthenticatedError | UNAUTHENTICATED | the message |
| PermissionError raised by code (no errno) | PERMISSION_DENIED | the message |
| RateLimitedError | RESOURCE_EXHAUSTED | the message (+ retry-after-ms trailer) |
| LimitExceededError (too many calls or streams held) | RESOURCE_EXHAUSTED | the message |
| MessageTimeoutError (the request message did not come in time) | DEADLINE_EXCEEDED | the message |
| DeadlineExceededError, TimeoutError | DEADLINE_EXCEEDED | "deadline exceeded" |
| StoreClosedError | UNAVAILABLE | a fixed text (the server is stopping) |
| NotImplementedError | UNIMPLEMENTED | a fixed text |
| anything else, a Rust panic (PanicException) too | INTERNAL | "internal error (request id ...)" |

Every answer carries the request id in the trailing metadata (`x-request-id`). No traceback, SQL or file path
reaches a client: messages are cut to 500 characters with absolute paths replaced by "<path>", store integrity
errors (which quote SQL) get a fixed text, and INTERNAL is generic; the full traceback goes to the log with the
request id. Servicers use `allsuse.server.rpc` (the `@rpc` decorator) or just raise: the error interceptor
applies this same table to whatever escapes a handler. Both catch `FAULTS`: every Exception and the core's
PanicException, which PyO3 derives from BaseException so that `except Exception` misses it.
"""

from __future__ import annotations

import logging
import re
from typing import NoReturn

import grpc

from allsuse._core import PanicException
from allsuse.errors import AllsuseError, ConvergenceError, InvalidInputError
from allsuse.server.request import current_call
from allsuse.store.errors import StoreClosedError, StoreIntegrityError, StoreNotFoundError

log = logging.getLogger("allsuse.server.errors")

REQUEST_ID_KEY = "x-request-id"
MAX_DETAILS = 500
_PATH = re.compile(r"(?:[A-Za-z]:\\|/)(?:[\w.\-]+[/\\])+[\w.\-]*")
_DUPLICATE = re.compile(r"unique|duplicate", re.IGNORECASE)

FAULTS: tuple[type[BaseException], ...] = (Exception, PanicException)
"""What the RPC layer maps through the table: every Exception, and a panic of the Rust core (a BaseException)."""


class NotFoundError(AllsuseError, LookupError):
    """The request names something that does not exist (a portfolio, a decision)."""


class AlreadyExistsError(AllsuseError):
    """The request would create something that exists already."""


class FailedPreconditionError(AllsuseError):
    """The system is not in a state where the request can run (e.g. the account is HALTED)."""


class UnauthenticatedError(AllsuseError):
    """No API key, or one that is unknown, wrong or revoked."""


class RateLimitedError(AllsuseError):
    """The caller's token bucket is empty; `retry_after` says when one token is back (seconds)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LimitExceededError(AllsuseError):
    """The caller (or everyone) already holds as many calls or streams as the limits allow."""


class DeadlineExceededError(AllsuseError, TimeoutError):
    """Too little of the call's deadline is left to do the work."""


class MessageTimeoutError(DeadlineExceededError):
    """The request message did not arrive within `server.request_message_timeout_seconds` of the call's start."""


def scrub(text: str) -> str:
    """A message fit for a client: absolute paths replaced, one line, at most MAX_DETAILS characters."""
    clean = _PATH.sub("<path>", text).replace("\r", " ").replace("\n", " ")
    return clean if len(clean) <= MAX_DETAILS else clean[: MAX_DETAILS - 3] + "..."


def status_for(exc: BaseException, request_id: str = "") -> tuple[grpc.StatusCode, str]:
    """The status code and client-facing details for `exc` (the table in this module's docstring)."""
    code = grpc.StatusCode
    if isinstance(exc, InvalidInputError | ConvergenceError):
        return code.INVALID_ARGUMENT, scrub(str(exc))
    if isinstance(exc, NotFoundError | StoreNotFoundError):
        return code.NOT_FOUND, scrub(str(exc))
    if isinstance(exc, AlreadyExistsError):
        return code.ALREADY_EXISTS, scrub(str(exc))
    if isinstance(exc, FailedPreconditionError):
        return code.FAILED_PRECONDITION, scrub(str(exc))
    if isinstance(exc, StoreIntegrityError):
        if _DUPLICATE.search(str(exc)):
            return code.ALREADY_EXISTS, "already exists: a record with this key is stored already"
        return code.FAILED_PRECONDITION, "failed precondition: the write conflicts with stored records"
    if isinstance(exc, UnauthenticatedError):
        return code.UNAUTHENTICATED, scrub(str(exc))
    if isinstance(exc, PermissionError) and exc.errno is None:
        return code.PERMISSION_DENIED, scrub(str(exc))
    if isinstance(exc, RateLimitedError | LimitExceededError):
        return code.RESOURCE_EXHAUSTED, scrub(str(exc))
    if isinstance(exc, MessageTimeoutError):
        return code.DEADLINE_EXCEEDED, scrub(str(exc))
    if isinstance(exc, TimeoutError):
        return code.DEADLINE_EXCEEDED, "deadline exceeded"
    if isinstance(exc, StoreClosedError):
        return code.UNAVAILABLE, "the server is shutting down; retry"
    if isinstance(exc, NotImplementedError):
        return code.UNIMPLEMENTED, "not implemented"
    suffix = f" (request id {request_id})" if request_id else ""
    return code.INTERNAL, f"internal error{suffix}"


def trailers_for(exc: BaseException, request_id: str) -> tuple[tuple[str, str], ...]:
    """Trailing metadata of an error answer: the request id, plus the invalid field or the retry delay."""
    pairs: list[tuple[str, str]] = [(REQUEST_ID_KEY, request_id)] if request_id else []
    field = getattr(exc, "field", None)
    if isinstance(exc, InvalidInputError | ConvergenceError) and isinstance(field, str) and field:
        pairs.append(("x-invalid-field", scrub(field)))
    if isinstance(exc, RateLimitedError):
        pairs.append(("retry-after-ms", str(max(1, round(exc.retry_after * 1000)))))
    return tuple(pairs)


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    """Ends the RPC with the status the table gives for `exc`; INTERNAL errors are logged with the traceback."""
    call = current_call()
    request_id = "" if call is None else call.request_id
    status, details = status_for(exc, request_id)
    if status is grpc.StatusCode.INTERNAL:
        method = "" if call is None else call.method
        if isinstance(exc, PanicException):
            # The core is built never to panic (clippy denies it); one that does is a bug to report with this.
            log.error(
                "Rust core panicked in %s (request id %s); the server keeps serving", method, request_id, exc_info=exc
            )
        else:
            log.error("internal error in %s (request id %s)", method, request_id, exc_info=exc)
    else:
        log.debug("%s -> %s: %s", type(exc).__name__, status.name, exc)
    await context.abort(status, details, trailing_metadata=trailers_for(exc, request_id))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


__all__ = [
    "FAULTS",
    "MAX_DETAILS",
    "REQUEST_ID_KEY",
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "LimitExceededError",
    "MessageTimeoutError",
    "NotFoundError",
    "RateLimitedError",
    "UnauthenticatedError",
    "abort_with",
    "scrub",
    "status_for",
    "trailers_for",
]
