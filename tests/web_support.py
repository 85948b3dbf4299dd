"""Helpers of the operator page's tests: a real Service with the page on (127.0.0.1, free ports), API keys, a
portfolio with a decision awaiting approval, and the gRPC stubs to compare the page with."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from allsuse.server.app import Service
from allsuse.v1 import common_pb2, decision_pb2, decision_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from allsuse.web import WebComponent
from tests.rpc_support import TIMEOUT, green_market, money, service_config

T = TypeVar("T")
THURSDAY = dt.date(2024, 3, 7)


def web_service(tmp_path: Path, *, auth: bool = True, **env: str) -> Service:
    """A Service with the operator page on a free port (not started); auth on unless told otherwise."""
    cfg = service_config(
        tmp_path,
        **{
            "ALLSUSE_WEB_ENABLED": "true",
            "ALLSUSE_WEB_PORT": "0",
            "ALLSUSE_AUTH_ENABLED": "true" if auth else "false",
            **env,
        },
    )
    (tmp_path / "reports").mkdir(exist_ok=True)  # service_config's reports.dir
    return Service(cfg)


def web_of(service: Service) -> WebComponent:
    """The service's operator page component."""
    component = service.registry.component("web")
    assert isinstance(component, WebComponent)
    return component


def web_url(service: Service) -> str:
    """The page's base URL (after start)."""
    return web_of(service).url


def money_text(m: common_pb2.Money) -> str:
    """A gRPC Money as the page prints it (thousands separated, two decimals)."""
    cents = m.units * 100 + m.cents
    whole, part = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{whole:,}.{part:02d}"


def as_of(day: dt.date = THURSDAY) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(dt.datetime.combine(day, dt.time(15, 45)))
    return stamp


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def portfolio_with_pending(
    address: str, token: str | None, portfolio_id: str, key: str = "web-1"
) -> tuple[portfolio_pb2.Portfolio, decision_pb2.Decision]:
    """Creates `portfolio_id` over gRPC and decides once (a green market: an OPEN_PUT awaiting approval)."""
    md = bearer(token) if token else ()
    async with grpc.aio.insecure_channel(address) as channel:
        created = await portfolio_pb2_grpc.PortfolioServiceStub(channel).CreatePortfolio(
            portfolio_pb2.CreatePortfolioRequest(portfolio_id=portfolio_id, total=money(1_000_000)),
            metadata=md,
            timeout=TIMEOUT,
        )
        decision = await decide(channel, token, portfolio_id, key)
    assert decision.approval_status == "PENDING", decision.explanation
    return created, decision


async def decide(channel: grpc.aio.Channel, token: str | None, portfolio_id: str, key: str) -> decision_pb2.Decision:
    """Decide with an idempotency key: the first call decides, a repeat answers the decision as it stands now."""
    return await decision_pb2_grpc.DecisionServiceStub(channel).Decide(  # type: ignore[no-any-return]
        decision_pb2.DecideRequest(
            portfolio_id=portfolio_id,
            account_id=f"{portfolio_id}/gen-1",
            symbol="NVDA",
            as_of=as_of(),
            market=green_market(THURSDAY),
            idempotency_key=key,
        ),
        metadata=bearer(token) if token else (),
        timeout=TIMEOUT,
    )


async def get_portfolio(address: str, token: str | None, portfolio_id: str) -> portfolio_pb2.Portfolio:
    async with grpc.aio.insecure_channel(address) as channel:
        return await portfolio_pb2_grpc.PortfolioServiceStub(channel).GetPortfolio(  # type: ignore[no-any-return]
            portfolio_pb2.GetPortfolioRequest(portfolio_id=portfolio_id),
            metadata=bearer(token) if token else (),
            timeout=TIMEOUT,
        )


class ServiceThread:
    """A Service running on its own event loop in a thread (for tests that drive a browser synchronously)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="service-loop", daemon=True)

    def __enter__(self) -> ServiceThread:
        self._thread.start()
        self.run(self.service.start(), timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.service.stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
        """Runs a coroutine on the service's loop and waits for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=timeout)
