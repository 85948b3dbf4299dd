"""Shared helpers for the agent's tests: a real in-process `allsuse serve` (Service) on 127.0.0.1 and a free port,
run on its own event loop thread so tests call it with ordinary blocking stubs (every call with a timeout), with
the agent's clock pinned, API keys on a real SQLite WAL file, and market history stored the way PublishBars
stores it."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from allsuse import config
from allsuse.server import agent as agent_service
from allsuse.server.app import Service
from allsuse.store import Store
from allsuse.store import market as stored_market
from allsuse.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    decision_pb2_grpc,
    portfolio_pb2_grpc,
)

TIMEOUT = 20.0
THURSDAY = dt.date(2024, 3, 7)
"""A Thursday: Gen-Acc's Green entry day."""
NOW = dt.datetime(2024, 3, 7, 15, 45)
EPOCH = dt.date(1970, 1, 1)


def bar_rows(end: dt.date, start: float, growth: float, n: int = 300, *, drop: float = 0.0) -> list[Any]:
    """`n` business days of bars ending at `end`: a steady trend (`growth` per day) with a small wiggle, the last
    five closes lowered by `drop` (a share) when given."""
    days: list[dt.date] = []
    d = end
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d -= dt.timedelta(days=1)
    days.reverse()
    i = np.arange(n)
    close = start * growth**i * (1 + 0.002 * np.sin(i * 1.7))
    if drop:
        close[-5:] *= np.linspace(1 - drop / 5, 1 - drop, 5)
    return [
        ((day - EPOCH).days, float(c), float(c * 1.004), float(c * 0.996), float(c), 1e6)
        for day, c in zip(days, close, strict=True)
    ]


def seed_market(store: Store, symbols: dict[str, tuple[float, float, float]], end: dt.date = THURSDAY) -> None:
    """Stores bars and quotes (IV, sector) for each symbol -> (start price, daily growth, IV), and a VIX of 18."""
    day = (end - EPOCH).days

    def unit(tx: Any) -> None:
        for symbol, (start, growth, _) in symbols.items():
            stored_market.put_bars(tx, symbol, bar_rows(end, start, growth), replace=True, actor="test")
        quotes = {s: {"iv": iv, "sector": "tech"} for s, (_, _, iv) in symbols.items()}
        quotes[stored_market.MARKET_WIDE] = {"vix": 18.0}
        for back in range(15):  # the same quotes for the last three weeks, so any recent day has them
            stored_market.put_quotes(tx, day - back, quotes, replace=True, actor="test")

    store.write(unit)


UPTREND = {
    "NVDA": (60.0, 1.004, 0.45),
    "TSLA": (150.0, 1.002, 0.55),
    "AMD": (80.0, 1.003, 0.45),
    "META": (200.0, 1.003, 0.35),
    "AAPL": (40.0, 1.003, 0.25),
    "AMZN": (35.0, 1.003, 0.30),
    "MSFT": (60.0, 1.003, 0.25),
    "GOOGL": (30.0, 1.003, 0.28),
}


class Running:
    """A Service serving on 127.0.0.1 from a background event loop, with blocking stubs."""

    def __init__(self, db: Path, *, auth: bool, clock: Any = None) -> None:
        env = {
            "ALLSUSE_SERVER_PORT": "0",
            "ALLSUSE_SERVER_HOST": "127.0.0.1",
            "ALLSUSE_METRICS_ENABLED": "false",
            "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
            "ALLSUSE_STORE_URL": str(db),
            "ALLSUSE_AUTH_ENABLED": "true" if auth else "false",
            "ALLSUSE_MARKET_HISTORY_REFRESH_SECONDS": "0",
        }
        self.service = Service(config.load("development", environ=env))
        others = tuple(b for b in self.service.grpc.bindings if b.full_name != "allsuse.v1.AgentService")
        chosen = clock or (lambda: NOW)
        self.service.grpc.bindings = (*others, *agent_service.bindings(self.service.deps, clock=chosen))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.service.start(), self.loop).result(TIMEOUT)
        self.channel = grpc.insecure_channel(self.service.server.address)
        self.agent = agent_pb2_grpc.AgentServiceStub(self.channel)
        self.portfolio = portfolio_pb2_grpc.PortfolioServiceStub(self.channel)
        self.decision = decision_pb2_grpc.DecisionServiceStub(self.channel)

    @property
    def store(self) -> Store:
        return self.service.deps.store

    def stop(self) -> None:
        self.channel.close()
        asyncio.run_coroutine_threadsafe(self.service.stop(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


@contextmanager
def running(db: Path, *, auth: bool = False, clock: Any = None) -> Iterator[Running]:
    """A Running server for the block."""
    server = Running(db, auth=auth, clock=clock)
    try:
        yield server
    finally:
        server.stop()


class Chat:
    """One conversation over gRPC."""

    def __init__(self, server: Running, token: str | None = None, conversation_id: str = "") -> None:
        self.server = server
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.conversation_id = conversation_id
        self.last: agent_pb2.ConverseResponse | None = None

    def say(self, message: str, portfolio_id: str = "") -> agent_pb2.ConverseResponse:
        reply: agent_pb2.ConverseResponse = self.server.agent.Converse(
            agent_pb2.ConverseRequest(conversation_id=self.conversation_id, portfolio_id=portfolio_id, message=message),
            metadata=self.metadata,
            timeout=TIMEOUT,
        )
        self.conversation_id = reply.conversation_id
        self.last = reply
        return reply


def data(reply: agent_pb2.ConverseResponse) -> dict[str, Any]:
    """The reply's Struct as plain Python."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(reply.data)
