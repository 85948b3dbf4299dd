"""Requests whose bytes do not parse become INVALID_ARGUMENT naming the field `request`.

grpc.aio deserializes a request before any interceptor layer or handler runs, and a failure there escapes as
UNKNOWN with a traceback in the log. `RequestDecodingInterceptor` (installed innermost) gives every method a
deserializer that never raises: bytes that do not parse become an `UndecodableRequest`, and the handler, wrapped
here, raises InvalidInputError for it. So the call still passes request id, metrics, access log and auth (a caller
without a key gets UNAUTHENTICATED first), and the error table in errors.py chooses the status.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import grpc

from allsuse.errors import InvalidInputError

FIELD = "request"


@dataclass(frozen=True)
class UndecodableRequest:
    """Stands in for a request message whose bytes did not parse."""

    type_name: str
    reason: str

    def error(self) -> InvalidInputError:
        """The InvalidInputError to answer with."""
        return InvalidInputError.of(FIELD, f"is not a valid {self.type_name} message ({self.reason})")


def _type_name(deserializer: Callable[[bytes], Any]) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    return name if isinstance(name, str) else "request"


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer` made total: an exception becomes an UndecodableRequest (None stays None: raw bytes)."""
    if deserializer is None:
        return None
    type_name = _type_name(deserializer)

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as exc:  # DecodeError, bad UTF-8, anything a parser raises
            reason = str(exc).split(": ")[-1][:120] or type(exc).__name__
            return UndecodableRequest(type_name, reason)

    return deserialize


def _checked(request: Any) -> Any:
    if isinstance(request, UndecodableRequest):
        raise request.error()
    return request


async def _checked_stream(requests: Any) -> AsyncIterator[Any]:
    async for request in requests:
        yield _checked(request)


async def _result(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _items(value: Any) -> AsyncIterator[Any]:
    if hasattr(value, "__aiter__"):
        async with aclosing(value) as responses:
            async for item in responses:
                yield item
    elif value is not None:
        for item in value:
            yield item


def _unary_request(behavior: Callable[..., Any], streaming_response: bool) -> Callable[..., Any]:
    if streaming_response and not inspect.iscoroutinefunction(behavior):  # a generator of responses

        async def generator(request: Any, context: Any) -> AsyncIterator[Any]:
            async for item in _items(behavior(_checked(request), context)):
                yield item

        return generator

    async def coroutine(request: Any, context: Any) -> Any:
        return await _result(behavior(_checked(request), context))

    return coroutine


def _stream_request(behavior: Callable[..., Any], streaming_response: bool) -> Callable[..., Any]:
    if streaming_response and not inspect.iscoroutinefunction(behavior):

        async def generator(requests: Any, context: Any) -> AsyncIterator[Any]:
            async for item in _items(behavior(_checked_stream(requests), context)):
                yield item

        return generator

    async def coroutine(requests: Any, context: Any) -> Any:
        return await _result(behavior(_checked_stream(requests), context))

    return coroutine


def tolerant_handler(handler: Any) -> Any:
    """The same method handler with a deserializer that never raises and a behaviour that refuses an
    UndecodableRequest with InvalidInputError."""
    deserializer = tolerant(handler.request_deserializer)
    serializer = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_unary_request(handler.unary_unary, False), deserializer, serializer)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _unary_request(handler.unary_stream, True), deserializer, serializer
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _stream_request(handler.stream_unary, False), deserializer, serializer
        )
    return grpc.stream_stream_rpc_method_handler(_stream_request(handler.stream_stream, True), deserializer, serializer)


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Installs `tolerant_handler` on every method (once per method and handler); put it last, innermost."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        """See the class."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = tolerant_handler(handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


__all__ = ["FIELD", "RequestDecodingInterceptor", "UndecodableRequest", "tolerant", "tolerant_handler"]
