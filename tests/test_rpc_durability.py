"""Durability and replicas, end to end: kill -9 during a stream of every write RPC loses no acknowledged write and
leaves a store that passes `audit verify --full`; retrying every request with its key then changes nothing twice;
two server processes sharing one PostgreSQL database serve the same portfolios consistently."""

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
from typing import Any

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


class WriteStream:
    """One client's stream of every write RPC, each with an idempotency key, portfolio after portfolio:
    CreatePortfolio, Decide, ApproveDecision, RecordOutcome, RecordFill, Withdraw, RunWeeklyCycle.

    `sent` keeps every request sent (the last one may be in flight when the server dies); `acked` the replies."""

    def __init__(self, client: int) -> None:
        self.client = client
        self.sent: list[tuple[str, str, Any]] = []  # (service, method, request)
        self.acked: list[tuple[str, str, Any, Any]] = []  # (service, method, request, reply)

    def _call(self, stubs: dict[str, Any], service: str, method: str, request: Any) -> Any:
        self.sent.append((service, method, request))
        reply = getattr(stubs[service], method)(request, timeout=TIMEOUT)
        self.acked.append((service, method, request, reply))
        return reply

    def cycle(self, stubs: dict[str, Any], n: int) -> None:
        pid = f"pf-kill-{self.client}-{n}"
        key = f"{pid}-"
        self._call(
            stubs,
            "portfolio",
            "CreatePortfolio",
            portfolio_pb2.CreatePortfolioRequest(
                portfolio_id=pid, total=money(1_000_000), at=ts(dt.date(2024, 2, 1), 9), idempotency_key=key + "create"
            ),
        )
        d = self._call(stubs, "decision", "Decide", _decide_request(pid, key + "decide"))
        if d.approval_status == "PENDING":
            self._call(
                stubs,
                "decision",
                "ApproveDecision",
                decision_pb2.ApproveDecisionRequest(
                    decision_id=d.decision_id, approve=True, idempotency_key=key + "ok"
                ),
            )
        self._call(
            stubs,
            "decision",
            "RecordOutcome",
            decision_pb2.RecordOutcomeRequest(
                decision_id=d.decision_id,
                right=True,
                realised_pnl=money(12.5),
                at=ts(THURSDAY),
                idempotency_key=key + "out",
            ),
        )
        self._call(stubs, "portfolio", "RecordFill", _fill_request(pid, key + "fill"))
        self._call(
            stubs,
            "portfolio",
            "Withdraw",
            portfolio_pb2.WithdrawRequest(
                portfolio_id=pid,
                account_id=f"{pid}/rev-1",
                amount=money(100),
                at=ts(THURSDAY),
                idempotency_key=key + "w",
            ),
        )
        self._call(
            stubs,
            "portfolio",
            "RunWeeklyCycle",
            portfolio_pb2.RunWeeklyCycleRequest(
                portfolio_id=pid, as_of=ts(dt.date(2024, 3, 8), 16, 5), idempotency_key=key + "cycle"
            ),
        )


def _decide_request(pid: str, key: str) -> decision_pb2.DecideRequest:
    return decision_pb2.DecideRequest(
        portfolio_id=pid,
        account_id=f"{pid}/gen-1",
        symbol="NVDA",
        as_of=ts(THURSDAY),
        market=green_market(THURSDAY),
        idempotency_key=key,
    )


def _fill_request(pid: str, key: str) -> portfolio_pb2.RecordFillRequest:
    return portfolio_pb2.RecordFillRequest(
        portfolio_id=pid,
        account_id=f"{pid}/gen-1",
        symbol="NVDA",
        kind="put",
        side="sell_to_open",
        strike=190.0,
        expiry="2024-03-08",
        quantity=2,
        price=money(1.25),
        at=ts(THURSDAY),
        idempotency_key=key,
    )


def _stubs(channel: grpc.Channel) -> dict[str, Any]:
    return {
        "decision": decision_pb2_grpc.DecisionServiceStub(channel),
        "portfolio": portfolio_pb2_grpc.PortfolioServiceStub(channel),
    }


def _check_acknowledged(store: Store, acked: list[tuple[str, str, Any, Any]]) -> None:
    """Every acknowledged write is in the store, as the reply said."""
    for _service, method, request, reply in acked:
        if method == "CreatePortfolio":
            assert store.get_portfolio(reply.portfolio_id) is not None, reply.portfolio_id
        elif method == "Decide":
            assert store.get_decision(reply.decision_id) is not None, reply.decision_id
        elif method == "ApproveDecision":
            got = store.get_decision(request.decision_id)
            assert got is not None and got.columns["status"] == "approved", request.decision_id
        elif method == "RecordOutcome":
            assert len(store.list_outcomes(request.decision_id)) == 1, request.decision_id
        elif method == "RecordFill":
            assert store.get_transaction(reply.transaction.transaction_id) is not None
            assert store.get_position(reply.position.position_id) is not None
        elif method == "Withdraw":
            assert store.get_transaction(reply.transaction_id) is not None, reply.transaction_id
        elif method == "RunWeeklyCycle":
            assert store.get_portfolio(request.portfolio_id) is not None
        else:  # pragma: no cover - every write RPC of the stream is listed above
            raise AssertionError(method)


def test_kill_9_during_every_write_rpc_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db = tmp_path / "allsuse.db"
    port = free_port()
    streams = [WriteStream(c) for c in range(3)]
    with serve(str(db), auth=False, port=port) as (address, proc), grpc.insecure_channel(address) as channel:
        stubs = _stubs(channel)
        stop = threading.Event()

        def client(stream: WriteStream) -> None:
            for n in range(40):
                if stop.is_set():
                    return
                try:
                    stream.cycle(stubs, n)
                except grpc.RpcError:
                    return

        threads = [threading.Thread(target=client, args=(s,), daemon=True) for s in streams]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 90
        methods = {"CreatePortfolio", "Decide", "ApproveDecision", "RecordOutcome", "RecordFill", "Withdraw"}
        while time.monotonic() < deadline:
            acked = [a for s in streams for a in s.acked]
            if len(acked) >= 60 and methods | {"RunWeeklyCycle"} <= {a[1] for a in acked}:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # mid-stream: no drain, no close
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=TIMEOUT)
    acked = [a for s in streams for a in s.acked]
    assert len(acked) >= 60 and {a[1] for a in acked} >= methods | {"RunWeeklyCycle"}
    with Store(db) as store:
        _check_acknowledged(store, acked)
        assert store.verify_audit().ok
    for command in (["audit", "verify"], ["audit", "verify", "--full"]):
        verify = subprocess.run(
            [sys.executable, "-m", "allsuse.cli", *command, "--store", str(db)],
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    # The service comes back on the same store. Every request sent is retried with its key, as a client whose reply
    # was lost would: an acknowledged one gets its first reply again (a decision as it stands now), the one in
    # flight at the kill runs at most once, and no money moves twice.
    withdrawn: set[str] = set()
    with serve(str(db), auth=False, port=port) as (address, _), grpc.insecure_channel(address) as channel:
        stubs = _stubs(channel)
        first = {(m, r.idempotency_key): reply for _, m, r, reply in acked}
        for stream in streams:
            for service, method, request in stream.sent:
                reply = getattr(stubs[service], method)(request, timeout=TIMEOUT)
                earlier = first.get((method, request.idempotency_key))
                if method == "Decide" and earlier is not None:
                    assert reply.decision_id == earlier.decision_id
                elif earlier is not None:
                    assert reply == earlier, method
                if method == "Withdraw":
                    withdrawn.add(request.portfolio_id)
        get = portfolio_pb2_grpc.PortfolioServiceStub(channel).GetPortfolio
        for pid in withdrawn:
            got = get(portfolio_pb2.GetPortfolioRequest(portfolio_id=pid), timeout=TIMEOUT)
            rev = next(a for a in got.accounts if a.type == "rev")
            assert (rev.balance.units, rev.balance.cents) == (300_000 - 100, 0), pid
    assert withdrawn
    with Store(db) as store:
        assert store.verify_full().ok


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
