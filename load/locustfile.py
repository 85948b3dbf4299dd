"""Locust users for allsuse over gRPC: the decision mix and a health-check baseline.

grpc's gevent support is initialised before anything creates a channel, so every call yields to Locust's other
greenlets instead of blocking the process. The mix reads its pool of portfolios, API keys and market snapshots from
the seed file named by LOAD_SEED (written by `load/run.py`, or by `load/run.py seed` for another host); the
baseline needs nothing but `--host HOST:PORT`.

    LOAD_SEED=seed.json locust -f load/locustfile.py --host 127.0.0.1:50051 MixUser
    locust -f load/locustfile.py --host 127.0.0.1:50051 HealthUser

LOAD_TIMEOUT is each call's deadline (5 s); LOAD_TLS_CA, a CA file, makes the channels TLS (another host);
LOAD_OWN_CONNECTIONS=1 gives each user its own connection (for a server with several workers).
"""

from __future__ import annotations

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import datetime as dt  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import cache  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
from google.protobuf.message import Message  # noqa: E402
from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from locust import User, constant, task  # noqa: E402

from allsuse.v1 import (  # noqa: E402
    agent_pb2,
    agent_pb2_grpc,
    decision_pb2,
    decision_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
)

TIMEOUT = float(os.environ.get("LOAD_TIMEOUT", "5"))
QUESTIONS = ("status", "why the last decision?", "week type SHORT_PUT -3.2", "hello")
WEEKS = (
    ("SHORT_PUT", -3.2),
    ("SHORT_PUT", 0.8),
    ("SHORT_CALL", 2.5),
    ("SHORT_CALL", -6.0),
    ("LONG_STOCK", 1.1),
    ("CASH", 0.4),
)


class CallError(Exception):
    """A failed call as Locust records it: the gRPC status code first, then the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        # Ids and numbers out, so Locust counts one row per kind of failure, not one per portfolio version.
        message = re.sub(r"\d+", "N", re.sub(r"\bpf-[0-9a-f]+", "<portfolio>", details))
        super().__init__(f"{code.name}: {message[:120]}")


@dataclass(frozen=True)
class Owned:
    """A seeded portfolio and the API key that owns it."""

    portfolio_id: str
    metadata: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Market:
    """One market snapshot and the decision time it is for."""

    as_of: Timestamp
    snapshot: decision_pb2.MarketSnapshot


@dataclass(frozen=True)
class Seed:
    """What the mix draws its requests from."""

    owned: tuple[Owned, ...]
    markets: tuple[Market, ...]
    symbols: dict[str, str]  # account kind -> symbol it decides on


@cache
def seed() -> Seed:
    """The seed file named by LOAD_SEED, read once per Locust process."""
    name = os.environ.get("LOAD_SEED")
    if not name:
        raise RuntimeError("LOAD_SEED must name the seed file written by `load/run.py seed`")
    path = Path(name)
    body: dict[str, Any] = json.loads(path.read_text())
    markets = []
    for item in body["markets"]:
        when = Timestamp()
        when.FromDatetime(dt.datetime.fromisoformat(item["as_of"]))
        snapshot = decision_pb2.MarketSnapshot.FromString((path.parent / item["file"]).read_bytes())
        markets.append(Market(when, snapshot))
    owned = tuple(Owned(p["portfolio_id"], (("authorization", f"Bearer {p['token']}"),)) for p in body["portfolios"])
    return Seed(owned, tuple(markets), dict(body["symbols"]))


class GrpcUser(User):
    """A client with its own channel; `call` times one RPC and reports it to Locust."""

    abstract = True
    wait_time = constant(0)  # closed loop: each user keeps one request in flight

    def on_start(self) -> None:
        """Opens this user's channel to `--host` (HOST:PORT): plaintext, or TLS when LOAD_TLS_CA names a CA file."""
        if not self.host:
            raise RuntimeError("give the server as --host HOST:PORT")
        target = self.host.removeprefix("grpc://")
        ca = os.environ.get("LOAD_TLS_CA")
        # LOAD_OWN_CONNECTIONS=1: a TCP connection per user (grpc otherwise shares one among equal channels), so
        # that server.workers processes on one port each get connections (load/run.py sets it with LOAD_WORKERS).
        own = [("grpc.use_local_subchannel_pool", 1)] if os.environ.get("LOAD_OWN_CONNECTIONS") == "1" else []
        if ca:  # another host behind TLS: the CA that signed its certificate
            self.channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(Path(ca).read_bytes()), own)
        else:
            self.channel = grpc.insecure_channel(target, own)

    def on_stop(self) -> None:
        """Closes the channel."""
        self.channel.close()

    def call(self, name: str, method: Callable[..., Message], request: Message, **kwargs: Any) -> Message | None:
        """Calls `method` with a timeout; a gRPC error becomes a Locust failure carrying its status code."""
        start = time.perf_counter()
        reply: Message | None = None
        error: Exception | None = None
        try:
            reply = method(request, timeout=TIMEOUT, **kwargs)
        except grpc.RpcError as exc:
            error = CallError(exc.code(), exc.details() or "")
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=elapsed_ms,
            response_length=reply.ByteSize() if reply is not None else 0,
            exception=error,
            context={},
        )
        return reply


class HealthUser(GrpcUser):
    """The baseline: only the standard grpc.health.v1 Health Check (no auth, no store, no engine)."""

    def on_start(self) -> None:
        """Opens the channel and the health stub."""
        super().on_start()
        self.health = health_pb2_grpc.HealthStub(self.channel)

    @task
    def check(self) -> None:
        """One health Check."""
        self.call("Health/Check", self.health.Check, health_pb2.HealthCheckRequest())


_users = itertools.count()


class _AllsuseUser(GrpcUser):
    """A trader client: the services' stubs and the seeded pool to draw from."""

    abstract = True

    def on_start(self) -> None:
        """Opens the channel and the stubs; the user's own key is one of the pool's."""
        super().on_start()
        self.seed = seed()
        self.rng = random.Random(next(_users))
        self.decision = decision_pb2_grpc.DecisionServiceStub(self.channel)
        self.portfolio = portfolio_pb2_grpc.PortfolioServiceStub(self.channel)
        self.agent = agent_pb2_grpc.AgentServiceStub(self.channel)
        self.conversation: dict[str, str] = {}

    def pick(self) -> Owned:
        """A portfolio of the pool (with its owner's key), at random."""
        return self.rng.choice(self.seed.owned)

    def decide(self) -> None:
        """Decide on one account of a portfolio, with a two-year market snapshot of two symbols."""
        owned = self.pick()
        market = self.rng.choice(self.seed.markets)
        kind = self.rng.choice(sorted(self.seed.symbols))
        request = decision_pb2.DecideRequest(
            portfolio_id=owned.portfolio_id,
            account_id=f"{owned.portfolio_id}/{kind}-1",
            symbol=self.seed.symbols[kind],
            as_of=market.as_of,
            market=market.snapshot,
        )
        self.call("Decide", self.decision.Decide, request, metadata=owned.metadata)


class MixUser(_AllsuseUser):
    """The decision mix: Decide 60, AssessRisk 15, Converse 10, ClassifyWeek 10, GetPortfolio 5."""

    @task(60)
    def decide_task(self) -> None:
        """Decide."""
        self.decide()

    @task(15)
    def assess_risk(self) -> None:
        """AssessRisk of a portfolio's positions against a snapshot."""
        owned = self.pick()
        market = self.rng.choice(self.seed.markets)
        request = decision_pb2.AssessRiskRequest(
            portfolio_id=owned.portfolio_id, market=market.snapshot, as_of=market.as_of
        )
        self.call("AssessRisk", self.decision.AssessRisk, request, metadata=owned.metadata)

    @task(10)
    def converse(self) -> None:
        """One message to the agent, continuing this user's conversation about the portfolio."""
        owned = self.pick()
        request = agent_pb2.ConverseRequest(
            conversation_id=self.conversation.get(owned.portfolio_id, ""),
            portfolio_id=owned.portfolio_id,
            message=self.rng.choice(QUESTIONS),
        )
        reply = self.call("Converse", self.agent.Converse, request, metadata=owned.metadata)
        if isinstance(reply, agent_pb2.ConverseResponse):
            self.conversation[owned.portfolio_id] = reply.conversation_id

    @task(10)
    def classify_week(self) -> None:
        """ClassifyWeek of a position and a move."""
        position, move = self.rng.choice(WEEKS)
        request = decision_pb2.ClassifyWeekRequest(position=position, move_pct=move, roll_available=True)
        self.call("ClassifyWeek", self.decision.ClassifyWeek, request, metadata=self.pick().metadata)

    @task(5)
    def get_portfolio(self) -> None:
        """GetPortfolio."""
        owned = self.pick()
        request = portfolio_pb2.GetPortfolioRequest(portfolio_id=owned.portfolio_id)
        self.call("GetPortfolio", self.portfolio.GetPortfolio, request, metadata=owned.metadata)


class DecideUser(_AllsuseUser):
    """Decide only: isolates the server's CPU per Decide."""

    @task
    def decide_task(self) -> None:
        """Decide."""
        self.decide()
