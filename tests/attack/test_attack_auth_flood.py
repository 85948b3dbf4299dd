"""Wrong secrets must not buy a scrypt each: failed authentication is rate limited per peer and per key id
before any hashing, and an unknown key id costs no scrypt at all.

The server runs in this process so every scrypt the store runs can be counted (hashlib.scrypt is wrapped).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from allsuse import config
from allsuse.server import ServiceBinding, build_server
from allsuse.server.app import AllsuseServer
from allsuse.store import Store
from allsuse.v1 import decision_pb2, decision_pb2_grpc

CALLS = 300
ONE_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
TIMEOUT = 10.0
DECISION = "allsuse.v1.DecisionService"
ROLES = {
    name: "viewer" for name in (m.name for m in decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].methods)
}


class Classify(decision_pb2_grpc.DecisionServiceServicer):  # type: ignore[misc]
    """ClassifyWeek answers P-EW."""

    async def ClassifyWeek(self, request: Any, context: Any) -> Any:  # noqa: N802
        return decision_pb2.ClassifyWeekResponse(code="P-EW")


class ScryptCounter:
    """Wraps hashlib.scrypt and counts the calls (from any thread)."""

    def __init__(self, real: Callable[..., bytes]) -> None:
        self.real = real
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> bytes:
        with self._lock:
            self.calls += 1
        return self.real(*args, **kwargs)


@pytest.fixture
def keyed(tmp_path: Path) -> Any:
    store = Store(tmp_path / "allsuse.db")
    issued = store.create_api_key("viewer")
    yield store, issued
    store.close()


@asynccontextmanager
async def serving(store: Store) -> AsyncIterator[AllsuseServer]:
    env = {
        "ALLSUSE_SERVER_PORT": "0",
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
        "ALLSUSE_AUTH_ENABLED": "true",
    }
    servicer = Classify()
    binding = ServiceBinding(
        DECISION, lambda s: decision_pb2_grpc.add_DecisionServiceServicer_to_server(servicer, s), ROLES
    )
    server = build_server(config.load("development", environ=env), store, [binding])
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0, drain_delay=0)


async def _classify(channel: grpc.aio.Channel, token: str) -> str:
    stub = decision_pb2_grpc.DecisionServiceStub(channel)
    request = decision_pb2.ClassifyWeekRequest(position="CASH")
    try:
        await stub.ClassifyWeek(request, metadata=(("authorization", f"Bearer {token}"),), timeout=TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


def _run_flood(
    store: Store, tokens: list[str], good: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[str], str]:
    counter = ScryptCounter(hashlib.scrypt)

    async def scenario() -> tuple[list[str], str]:
        async with serving(store) as server, grpc.aio.insecure_channel(server.address) as channel:
            assert await _classify(channel, good) == "OK"  # verified once (one scrypt), then cached
            monkeypatch.setattr(hashlib, "scrypt", counter)
            # 100 calls at once per connection (under server.max_streams_per_connection), all from one peer
            flood = [grpc.aio.insecure_channel(server.address, options=ONE_CONNECTION) for _ in range(3)]
            try:
                codes = await asyncio.gather(*(_classify(flood[i % 3], t) for i, t in enumerate(tokens)))
            finally:
                await asyncio.gather(*(c.close() for c in flood))
            after = await _classify(channel, good)
            return list(codes), after

    codes, after = asyncio.run(scenario())
    return counter.calls, codes, after


def test_wrong_secrets_are_rate_limited_before_hashing(keyed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store, issued = keyed
    tokens = [f"{issued.key_id}.wrong-secret-{i}" for i in range(CALLS)]
    scrypts, codes, after = _run_flood(store, tokens, issued.token, monkeypatch)
    assert scrypts <= 20, f"{scrypts} scrypt runs for {CALLS} wrong secrets"
    assert set(codes) <= {"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}, set(codes)
    assert codes.count("RESOURCE_EXHAUSTED") >= CALLS - 20
    assert after == "OK"  # the owner's cached key still works


def test_unknown_key_ids_cost_no_scrypt(keyed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store, issued = keyed
    counter = ScryptCounter(hashlib.scrypt)
    monkeypatch.setattr(hashlib, "scrypt", counter)
    assert all(store.authenticate(f"nokey{i}.some-secret") is None for i in range(20))
    assert counter.calls == 0, f"{counter.calls} scrypt runs for 20 unknown key ids in the store"
    monkeypatch.undo()
    tokens = [f"nokey{i}.some-secret-{i}" for i in range(CALLS)]
    scrypts, codes, after = _run_flood(store, tokens, issued.token, monkeypatch)
    assert scrypts == 0, f"{scrypts} scrypt runs for {CALLS} unknown key ids"
    assert set(codes) <= {"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}, set(codes)
    assert after == "OK"
