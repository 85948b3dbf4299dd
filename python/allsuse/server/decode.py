"""Requests whose bytes do not parse become INVALID_ARGUMENT naming the field `request`.

grpc.aio deserializes a request before any interceptor layer or handler runs, and a failure there escapes as
UNKNOWN with a traceback in the log. `RequestDecodingInterceptor` (installed innermost) gives every method a
deserializer that never raises: bytes that do not parse become an `UndecodableRequest`, and the handler, wrapped
here, raises InvalidInputError for it. So the call still passes request id, metrics, access log and auth (a caller
without a key gets UNAUTHENTICATED first), and the error table in errors.py chooses the status.

The same check refuses a string field holding a NUL character, naming the field: no store can keep one (PostgreSQL
text cannot), so no such string reaches a handler or a query.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import grpc

from allsuse.errors import InvalidInputError
from allsuse.server.wrapping import HandlerWrapper

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


_STRINGS: dict[str, tuple[tuple[str, bool, bool], ...]] = {}


def _string_plan(descriptor: Any) -> tuple[tuple[str, bool, bool], ...]:
    """(name, repeated, is_message) of the fields of a message type that are strings or may hold strings."""
    plan = _STRINGS.get(descriptor.full_name)
    if plan is not None:
        return plan
    _STRINGS[descriptor.full_name] = ()  # a recursive type sees itself as string-free while its plan is built
    fields: list[tuple[str, bool, bool]] = []
    for f in descriptor.fields:
        if f.type == f.TYPE_STRING:
            fields.append((f.name, f.is_repeated, False))
        elif f.type == f.TYPE_MESSAGE and not f.message_type.GetOptions().map_entry and _string_plan(f.message_type):
            fields.append((f.name, f.is_repeated, True))
    _STRINGS[descriptor.full_name] = plan = tuple(fields)
    return plan


def nul_field(msg: Any, prefix: str = "") -> str | None:
    """The path of the first string field of `msg` holding a NUL character (PostgreSQL cannot keep one), or None."""
    for name, repeated, is_message in _string_plan(msg.DESCRIPTOR):
        value = getattr(msg, name)
        if not is_message:
            if not repeated:
                if "\x00" in value:
                    return prefix + name
            elif any("\x00" in v for v in value):
                index = next(i for i, v in enumerate(value) if "\x00" in v)
                return f"{prefix}{name}[{index}]"
        elif not repeated:
            if msg.HasField(name):
                found = nul_field(value, f"{prefix}{name}.")
                if found is not None:
                    return found
        else:
            for i, item in enumerate(value):
                found = nul_field(item, f"{prefix}{name}[{i}].")
                if found is not None:
                    return found
    return None


def _checked(request: Any) -> Any:
    if isinstance(request, UndecodableRequest):
        raise request.error()
    if hasattr(request, "DESCRIPTOR"):
        path = nul_field(request)
        if path is not None:
            raise InvalidInputError.of(path, "must not hold NUL characters")
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


class RequestDecodingInterceptor(HandlerWrapper):
    """Installs `tolerant_handler` on every method (once per method and handler); put it last, innermost."""

    def wrap(self, handler: Any, method: str) -> Any:
        """See the class."""
        return tolerant_handler(handler)


__all__ = ["FIELD", "RequestDecodingInterceptor", "UndecodableRequest", "nul_field", "tolerant", "tolerant_handler"]
