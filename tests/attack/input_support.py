"""A real `allsuse serve` process for the hostile-input tests, with its log in a file (so a test can look for
tracebacks, and a chatty server never blocks on a full pipe), API keys on, and helpers to read the log and the
process's memory."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from allsuse.store import Store
from tests.rpc_support import ROOT, bearer, free_port, stop

TIMEOUT = 10.0


@dataclass
class Server:
    """A running server: its address, process, log file and one API key per role."""

    address: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    tokens: dict[str, str]

    def md(self, role: str = "admin") -> tuple[tuple[str, str], ...]:
        """Call metadata with the key of `role`."""
        return bearer(self.tokens[role])

    def log(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(errors="replace")

    def tracebacks(self) -> list[str]:
        """The log lines that start a Python traceback (none may appear under attack)."""
        return [line for line in self.log().splitlines() if "Traceback" in line]


def ts(day: dt.date, hour: int = 15, minute: int = 45) -> Timestamp:
    """A Timestamp at `day` `hour`:`minute` (naive UTC, as the server reads it)."""
    t = Timestamp()
    t.FromDatetime(dt.datetime.combine(day, dt.time(hour, minute)))
    return t


def _wait_serving(address: str, proc: subprocess.Popen[bytes], log_path: Path, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    raise TimeoutError(f"server at {address} did not become SERVING within {limit} s")


@contextlib.contextmanager
def serve_logged(
    folder: Path, *, store_url: str | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`allsuse serve --config development` on 127.0.0.1 and a free port with API keys on and a store at
    `store_url` (default: SQLite in `folder`); the log goes to `folder/serve.log`. SIGTERM (then SIGKILL) when the
    block ends."""
    db = store_url or str(folder / "allsuse.db")
    with Store(db) as store:
        tokens = {role: store.create_api_key(role).token for role in ("viewer", "trader", "admin")}
    port = free_port()
    env = {
        **os.environ,
        "ALLSUSE_SERVER_PORT": str(port),
        "ALLSUSE_STORE_URL": db,
        "ALLSUSE_AUTH_ENABLED": "true",
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
        **(extra_env or {}),
    }
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "allsuse.cli", "serve", "--config", "development"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    address = f"127.0.0.1:{port}"
    try:
        _wait_serving(address, proc, log_path)
        yield Server(address, proc, log_path, tokens)
    finally:
        stop(proc)


def status_line(pid: int, key: str) -> int:
    """A memory figure of /proc/<pid>/status in bytes (VmRSS, VmHWM...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak_rss(pid: int) -> bool:
    """Resets the process's peak RSS (VmHWM) to its current RSS; False where the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
