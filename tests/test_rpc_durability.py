"""Durability and replicas, end to end: kill -9 during a stream of Decide calls loses no acknowledged decision
and leaves a verifiable audit log; two server processes sharing one PostgreSQL database serve the same
portfolios consistently."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from allsuse.store import Store
from allsuse.store.pgtest import TemporaryPostgres, find_bindir
from allsuse.v1 import decision_pb2, decision_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import ROOT, TIMEOUT, free_port, green_market, money, serve
from tests.test_rpc_e2e import THURSDAY, ts


def _create(channel: grpc.Channel, pid: str) -> None:
    portfolio_pb2_grpc.PortfolioServiceStub(channel).CreatePortfolio(
        portfolio_pb2.CreatePortfolioRequest(portfolio_id=pid, total=money(1_000_000), at=ts(dt.date(2024, 2, 1), 9)),
        timeout=TIMEOUT,
    )


def _decide(channel: grpc.Channel, pid: str, key: str) -> decision_pb2.Decision:
    return decision_pb2_grpc.DecisionServiceStub(channel).Decide(
        decision_pb2.DecideRequest(
            portfolio_id=pid,
            account_id=f"{pid}/gen-1",
            symbol="NVDA",
            as_of=ts(THURSDAY),
            market=green_market(THURSDAY),
            idempotency_key=key,
        ),
        timeout=TIMEOUT,
    )


def test_kill_9_during_decides_loses_no_acknowledged_decision(tmp_path: Path) -> None:
    db = tmp_path / "allsuse.db"
    port = free_port()
    acknowledged: list[str] = []
    with serve(str(db), auth=False, port=port) as (address, proc), grpc.insecure_channel(address) as channel:
        pids = [f"pf-kill-{i}" for i in range(4)]
        for pid in pids:
            _create(channel, pid)
        stop = threading.Event()

        def client(pid: str) -> None:
            n = 0
            while not stop.is_set() and n < 200:
                n += 1
                try:
                    d = _decide(channel, pid, f"{pid}-{n}")
                except grpc.RpcError:
                    return
                acknowledged.append(d.decision_id)

        threads = [threading.Thread(target=client, args=(pid,), daemon=True) for pid in pids]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # mid-stream: no drain, no close
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=TIMEOUT)
    assert len(acknowledged) >= 20
    store = Store(db)
    try:
        missing = [d for d in acknowledged if store.get_decision(d) is None]
        assert missing == []
        assert store.verify_audit().ok
    finally:
        store.close()
    verify = subprocess.run(
        [sys.executable, "-m", "allsuse.cli", "audit", "verify", "--store", str(db)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # And the service comes back on the same store with the decisions in it.
    with serve(str(db), auth=False, port=port) as (address, _), grpc.insecure_channel(address) as channel:
        replay = _decide(channel, "pf-kill-0", "pf-kill-0-1")
        assert replay.decision_id in acknowledged


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    if find_bindir() is None:
        pytest.skip("PostgreSQL binaries not found; `make setup` installs postgresql")
    server = TemporaryPostgres().start()
    try:
        yield server.create_database(f"r_{uuid.uuid4().hex[:12]}")
    finally:
        server.stop()


def test_two_servers_share_one_postgresql_database(pg_dsn: str) -> None:
    with (
        serve(pg_dsn, auth=False) as (a_addr, _),
        serve(pg_dsn, auth=False) as (b_addr, _),
        grpc.insecure_channel(a_addr) as a,
        grpc.insecure_channel(b_addr) as b,
    ):
        _create(a, "pf-shared")
        pa = portfolio_pb2_grpc.PortfolioServiceStub(a)
        pb = portfolio_pb2_grpc.PortfolioServiceStub(b)
        get = portfolio_pb2.GetPortfolioRequest(portfolio_id="pf-shared")
        assert pb.GetPortfolio(get, timeout=TIMEOUT) == pa.GetPortfolio(get, timeout=TIMEOUT)
        # A decision made on B is the decision A returns for the same key.
        d_b = _decide(b, "pf-shared", "shared-1")
        d_a = _decide(a, "pf-shared", "shared-1")
        assert d_a.decision_id == d_b.decision_id and d_a == d_b
        # A fill recorded on A is visible on B at once.
        fill = portfolio_pb2.RecordFillRequest(
            portfolio_id="pf-shared",
            account_id="pf-shared/gen-1",
            symbol="NVDA",
            kind="put",
            side="sell_to_open",
            strike=190.0,
            expiry="2024-03-08",
            quantity=2,
            price=money(1.25),
            at=ts(THURSDAY),
        )
        opened = pa.RecordFill(fill, timeout=TIMEOUT)
        seen = pb.GetPortfolio(get, timeout=TIMEOUT)
        assert [p.position_id for p in seen.positions] == [opened.position.position_id]
        # Interleaved writes from both replicas: every one lands, none is lost.
        for i in range(6):
            stub = pa if i % 2 else pb
            stub.Withdraw(
                portfolio_pb2.WithdrawRequest(
                    portfolio_id="pf-shared", account_id="pf-shared/rev-1", amount=money(100)
                ),
                timeout=TIMEOUT,
            )
        rev = next(x for x in pa.GetPortfolio(get, timeout=TIMEOUT).accounts if x.type == "rev")
        assert (rev.balance.units, rev.balance.cents) == (300_000 - 600, 0)
