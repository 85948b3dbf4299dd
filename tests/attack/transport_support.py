"""A real `allsuse serve` process for the transport attacks, with its log in a file (a pipe nobody reads would
fill up and stall the server under a flood), and a health prober that records every answer and its latency."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from allsuse.store import Store

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LIMIT = 1.0  # seconds: health must answer SERVING within this, throughout an attack


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_keys(db: Path, *roles: str) -> list[str]:
    """Creates one API key per role in the store at `db`; returns the tokens."""
    store = Store(db)
    try:
        return [store.create_api_key(role).token for role in roles]
    finally:
        store.close()


@dataclass
class Served:
    """A running server: its address, process and log file."""

    address: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        """Everything the server logged so far."""
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve(tmp: Path, *, auth: bool, extra_env: dict[str, str] | None = None) -> Iterator[Served]:
    """Runs `allsuse serve --config development` on 127.0.0.1 and a free port, store and log in `tmp`;
    SIGTERM (then SIGKILL) when the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")]),
        "ALLSUSE_SERVER_PORT": str(port),
        "ALLSUSE_STORE_URL": str(tmp / "allsuse.db"),
        "ALLSUSE_AUTH_ENABLED": "true" if auth else "false",
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
        **(extra_env or {}),
    }
    log = tmp / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "allsuse.cli", "serve", "--config", "development"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"127.0.0.1:{port}", port, process, log)
    try:
        _wait_serving(served)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_serving(served: Served, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    with grpc.insecure_channel(served.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if served.process.poll() is not None:
                raise RuntimeError(f"server exited with {served.process.returncode}: {served.log_text()[-3000:]}")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"server at {served.address} did not become SERVING within {limit} s")


@dataclass
class HealthProbe:
    """Health checks made on a fresh connection of their own: (seconds taken, status or error code name)."""

    answers: list[tuple[float, str]] = field(default_factory=list)

    async def run(self, address: str, seconds: float, every: float = 0.1) -> None:
        """Checks health every `every` seconds for `seconds`, each with a HEALTH_LIMIT deadline."""
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                started = time.monotonic()
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_LIMIT)
                    outcome = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except grpc.aio.AioRpcError as exc:
                    outcome = exc.code().name
                self.answers.append((time.monotonic() - started, outcome))
                await asyncio.sleep(every)

    def failures(self) -> list[tuple[float, str]]:
        """Answers that were not SERVING within HEALTH_LIMIT."""
        return [(t, o) for t, o in self.answers if o != "SERVING" or t > HEALTH_LIMIT]

    def slowest_ms(self) -> float:
        """The slowest answer, in milliseconds."""
        return max((t for t, _ in self.answers), default=0.0) * 1000.0
