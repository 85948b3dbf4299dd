"""`server.workers` N > 1: N `allsuse serve` processes on one port under a supervisor (allsuse.server.workers).

Real processes on 127.0.0.1: the workers share the port (SO_REUSEPORT) and the SQLite store, each serves its
metrics on metrics.port + its index, a killed worker is restarted, and SIGTERM stops them all within the drain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from allsuse import config
from allsuse.errors import InvalidInputError
from allsuse.server import workers
from allsuse.server.workers import Supervisor
from allsuse.store import Store
from allsuse.store.pgtest import TemporaryPostgres
from allsuse.v1 import portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import ROOT, TIMEOUT, free_port, money, wait_serving

DRAIN = 0.2
GRACE = 1.5
CREATE = "/allsuse.v1.PortfolioService/CreatePortfolio"


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (from /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(t) for t in text)
    return sorted(found)


def wait_for(what: str, check: object, limit: float = 30.0) -> None:
    """Polls `check()` until it is true; fails naming `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {limit} s: {what}")


def scrape(port: int) -> str:
    """One worker's metrics text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def created_count(text: str) -> float:
    """CreatePortfolio calls answered OK, from a metrics text."""
    pattern = rf'allsuse_grpc_requests_total{{code="OK",method="{re.escape(CREATE)}"}} ([0-9.e+]+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLite file, or (parametrized "postgresql") a database of a throwaway PostgreSQL server."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield str(tmp_path / "allsuse.db")
        return
    server: TemporaryPostgres = request.getfixturevalue("pg_server")
    name = f"w_{uuid.uuid4().hex[:16]}"
    dsn = server.create_database(name)
    try:
        yield dsn
    finally:
        server.drop_database(name)


@pytest.fixture
def two_workers(store_url: str) -> Iterator[tuple[str, subprocess.Popen[bytes], int, str]]:
    """`allsuse serve` with server.workers 2 on a free port: (address, supervisor, metrics port, store url)."""
    port, metrics_port = free_port(), free_port()
    while metrics_port + 1 == port:  # pragma: no cover - the two ports must not meet
        metrics_port = free_port()
    store = store_url
    env = {
        **os.environ,
        "ALLSUSE_SERVER_WORKERS": "2",
        "ALLSUSE_SERVER_PORT": str(port),
        "ALLSUSE_STORE_URL": store,
        "ALLSUSE_AUTH_ENABLED": "false",
        "ALLSUSE_METRICS_ENABLED": "true",
        "ALLSUSE_METRICS_PORT": str(metrics_port),
        "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": str(DRAIN),
        "ALLSUSE_SERVER_SHUTDOWN_GRACE_SECONDS": str(GRACE),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "allsuse.cli", "serve", "--config", "development"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_serving(address, proc, limit=60.0)
        wait_for("two workers", lambda: len(children(proc.pid)) == 2)
        for i in range(2):
            wait_for(f"worker {i} metrics", lambda i=i: _answers(metrics_port + i))
        yield address, proc, metrics_port, store
    finally:
        if proc.poll() is None:
            workers = children(proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            for pid in workers:  # never leave a worker behind, whatever the test did
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _answers(port: int) -> bool:
    try:
        scrape(port)
        return True
    except OSError:
        return False


def _create(address: str, pid: str) -> None:
    at = Timestamp()
    at.FromDatetime(dt.datetime(2024, 2, 1, 9, 30))
    # A channel of its own: a new connection, which the kernel gives to either worker.
    with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
        reply = stub.CreatePortfolio(
            portfolio_pb2.CreatePortfolioRequest(portfolio_id=pid, total=money(100_000), at=at), timeout=TIMEOUT
        )
        assert reply.portfolio_id == pid


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_two_workers_share_the_port_and_the_store(two_workers: tuple[str, subprocess.Popen[bytes], int, str]) -> None:
    address, _proc, metrics_port, store_url = two_workers
    names = [f"w-{i:02d}" for i in range(24)]
    for name in names:
        _create(address, name)
    served = [created_count(scrape(metrics_port + i)) for i in range(2)]
    assert sum(served) == len(names)
    assert all(n > 0 for n in served), served  # 24 connections spread over both workers (both served writes)
    with Store(store_url) as store:
        stored = {r.id for r in store.list_portfolios(limit=1000)}
    assert set(names) <= stored  # the writes of both workers landed in the one store


def test_a_killed_worker_is_restarted_and_sigterm_stops_all(
    two_workers: tuple[str, subprocess.Popen[bytes], int, str],
) -> None:
    address, proc, metrics_port, _store = two_workers
    first = children(proc.pid)
    os.kill(first[0], signal.SIGKILL)
    wait_for("a new worker", lambda: len(children(proc.pid)) == 2 and children(proc.pid) != first)
    replaced = children(proc.pid)
    assert first[1] in replaced and first[0] not in replaced
    for i in range(2):
        wait_for(f"worker {i} metrics again", lambda i=i: _answers(metrics_port + i))
    wait_serving(address, proc, limit=30.0)
    _create(address, "after-restart")

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=DRAIN + GRACE + 10) == 0
    took = time.monotonic() - started
    assert took < DRAIN + GRACE + 2.0, took  # the workers drained in parallel within the drain delay + grace
    for pid in replaced:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_workers_config_is_validated_naming_the_key(tmp_path: Path) -> None:
    base = {"ALLSUSE_STORE_URL": str(tmp_path / "a.db")}
    for bad, reason in (("0", "must be >= 1"), ("65", "must be <= 64"), ("two", "must be of type int")):
        with pytest.raises(InvalidInputError, match=rf"^server\.workers: {reason}"):
            config.load("development", {**base, "ALLSUSE_SERVER_WORKERS": bad})
    with pytest.raises(InvalidInputError, match=r"^server\.port: must be a fixed port when server\.workers is 2"):
        config.load("development", {**base, "ALLSUSE_SERVER_WORKERS": "2", "ALLSUSE_SERVER_PORT": "0"})
    with pytest.raises(InvalidInputError, match=r"^metrics\.port: must leave room for 3 workers"):
        config.load("development", {**base, "ALLSUSE_SERVER_WORKERS": "3", "ALLSUSE_METRICS_PORT": "65534"})
    assert config.load("development", base).server.workers == 1
    with pytest.raises(ValueError, match=r"workers must be an int in 1\.\.64"):
        Supervisor(["true"], 0, 1.0)


def test_a_worker_failing_at_start_up_stops_the_supervisor_with_status_2(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ALLSUSE_SERVER_WORKERS": "2",
        "ALLSUSE_SERVER_PORT": str(free_port()),
        "ALLSUSE_STORE_URL": str(tmp_path / "allsuse.db"),
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_SERVICE_MODULES": "allsuse.server.no_such_module",
    }
    done = subprocess.run(
        [sys.executable, "-m", "allsuse.cli", "serve", "--config", "development"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "no module named 'allsuse.server.no_such_module'" in done.stderr


def test_a_worker_that_keeps_dying_is_restarted_with_back_off_then_given_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(workers, "BACKOFF_FIRST", 0.05)
    starts = tmp_path / "starts"
    # A worker that records its start and dies at once: restarted MAX_FAILURES times, with growing delays.
    command = ["sh", "-c", f'date +%s.%N >> "{starts}"; exit 1', "worker"]
    started = time.monotonic()
    assert Supervisor(command, 1, 5.0).run() == 1
    assert time.monotonic() - started < 30
    times = [float(t) for t in starts.read_text().split()]
    assert len(times) == workers.MAX_FAILURES + 1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[-1] > gaps[0] * 4  # 0.05 s doubling: the back-off grows


def test_a_worker_exiting_with_status_2_stops_the_supervisor_at_once(tmp_path: Path) -> None:
    sleeper = ["sh", "-c", 'if [ "$2" = 0 ]; then exit 2; fi; exec sleep 30', "worker"]
    started = time.monotonic()
    assert Supervisor(sleeper, 2, 5.0).run() == 2  # worker 0 fails at start-up; worker 1 is stopped too
    assert time.monotonic() - started < 10
