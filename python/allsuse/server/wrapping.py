"""One habit of every interceptor here: wrap a method's handler once, then reuse it while gRPC hands over the same
handler object (building wrappers per call would cost more than the checks they add)."""

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
