"""Shared helpers for the end-to-end RPC tests: a real `allsuse serve` subprocess and synthetic market data."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from allsuse import config
from allsuse.client import money as money  # re-exported for the tests
from allsuse.v1 import common_pb2, decision_pb2

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    store_url: str, *, auth: bool, port: int | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Runs `allsuse serve` on 127.0.0.1 and a free port until the block ends (SIGTERM, then SIGKILL)."""
    port = port or free_port()
    env = {
        **os.environ,
        "ALLSUSE_SERVER_PORT": str(port),
        "ALLSUSE_STORE_URL": store_url,
        "ALLSUSE_AUTH_ENABLED": "true" if auth else "false",
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
        **(extra_env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "allsuse.cli", "serve", "--config", "development"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_serving(address, proc)
        yield address, proc
    finally:
        stop(proc)
        if proc.stderr is not None:
            proc.stderr.close()


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Ends a child process: SIGTERM, then SIGKILL after `grace` seconds; waits for it either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def service_config(tmp_path: Path, **env: str) -> config.Config:
    """The development configuration of an in-process Service on a free port with a SQLite file in `tmp_path`, no
    metrics endpoint and no drain delay; `env` adds ALLSUSE_* overrides."""
    base = {
        "ALLSUSE_SERVER_PORT": "0",
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
        "ALLSUSE_STORE_URL": str(tmp_path / "allsuse.db"),
        "ALLSUSE_REPORTS_DIR": str(tmp_path / "reports"),
    }
    return config.load("development", environ={**base, **env})


def wait_serving(address: str, proc: subprocess.Popen[bytes], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"server exited with {proc.returncode}: {err[-2000:]}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"server at {address} did not become SERVING within {limit} s")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def as_float(m: common_pb2.Money) -> float:
    return m.units + m.cents / 100


def green_market(
    end: dt.date, symbol: str = "NVDA", iv: float = 0.45, vix: float | None = 18.0
) -> decision_pb2.MarketSnapshot:
    """300 business days of a steady uptrend ending at `end` (a Green label at IV 0.45)."""
    n = 300
    i = np.arange(n)
    close = 60.0 * 1.004**i * (1 + 0.002 * np.sin(i * 1.7))
    days: list[dt.date] = []
    d = end
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d -= dt.timedelta(days=1)
    days.reverse()
    bars = [
        decision_pb2.Bar(date=day.isoformat(), open=c, high=c * 1.004, low=c * 0.996, close=c, volume=1e6)
        for day, c in zip(days, close, strict=True)
    ]
    snapshot = decision_pb2.MarketSnapshot(
        symbols=[decision_pb2.SymbolMarket(symbol=symbol, bars=bars, iv=iv, sector="tech")], rate=0.0
    )
    if vix is not None:
        snapshot.vix = vix
    return snapshot
