"""One habit of the server: wrap a method's handler once, then reuse it (building wrappers per call would cost more
than the checks they add). `WrappingRegistrar` wraps when services register, so no interceptor runs per call;
`HandlerWrapper` does the same as a grpc interceptor, caching per method and handler object."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import grpc


class HandlerWrapper(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """An interceptor that replaces each method's handler by `wrap(handler, method)`, cached per method and
    handler object; a method `applies` declines is passed through untouched."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def applies(self, method: str) -> bool:
        """Whether this interceptor wraps `method`."""
        return True

    @abstractmethod
    def wrap(self, handler: Any, method: str) -> Any:
        """The handler that replaces `handler` for `method`."""

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        """Wraps the next handler (once per method and handler object)."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.applies(method):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class _WrappedGeneric(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A generic handler whose method handlers are wrapped: all at once for a fixed table (what generated code
    registers), else on first use per method and handler object."""

    def __init__(self, inner: Any, wrap: Callable[[Any, str], Any]) -> None:
        self._inner = inner
        self._wrap = wrap
        self._wrapped: dict[str, tuple[Any, Any]] = {}
        table = getattr(inner, "_method_handlers", None)
        self._fixed: dict[str, Any] | None = None
        if isinstance(table, dict) and all(isinstance(m, str) and m.startswith("/") for m in table):
            self._fixed = {method: wrap(handler, method) for method, handler in table.items()}

    def service(self, handler_call_details: Any) -> Any:
        """The wrapped handler of the call's method, or None."""
        method = handler_call_details.method
        if self._fixed is not None:
            return self._fixed.get(method)
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class WrappingRegistrar:
    """Stands in for a grpc.aio server while services register: each method's handler is wrapped by
    `wrap(handler, method)` once, here, so that the server needs no interceptor (grpc.aio runs interceptors as
    coroutines on every call)."""

    def __init__(self, server: grpc.aio.Server, wrap: Callable[[Any, str], Any]) -> None:
        self.server = server
        self._wrap = wrap

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Registers `handlers` with their method handlers wrapped."""
        self.server.add_generic_rpc_handlers(tuple(_WrappedGeneric(h, self._wrap) for h in handlers))

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict[str, Any]) -> None:
        """Registers pre-registered method handlers, wrapped."""
        self.server.add_registered_method_handlers(
            service_name, {name: self._wrap(h, f"/{service_name}/{name}") for name, h in method_handlers.items()}
        )
