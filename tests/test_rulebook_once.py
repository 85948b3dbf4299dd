"""The rulebook is compiled once per process, never per request (issue 9: a fresh Engine reloaded it, ~7-15 ms).

Counted, not timed: a real in-process service on a temporary SQLite store serves a portfolio's creation, Decides,
a fill and a read while `RuleBook.load` is watched."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from allsuse import config
from allsuse.rules import RuleBook
from allsuse.server.app import Service
from allsuse.v1 import decision_pb2, decision_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import TIMEOUT, green_market, money

THURSDAY = dt.date(2024, 3, 7)


def test_requests_never_reload_the_rulebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "ALLSUSE_SERVER_PORT": "0",
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
        "ALLSUSE_STORE_URL": str(tmp_path / "allsuse.db"),
    }
    service = Service(config.load("development", environ=env))  # the servicers compile it here, once
    loads: list[int] = []
    real = RuleBook.load.__func__  # type: ignore[attr-defined]

    def counting(cls: type[RuleBook], *args: Any, **kwargs: Any) -> RuleBook:
        loads.append(1)
        return real(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(RuleBook, "load", classmethod(counting))
    as_of = Timestamp()
    as_of.FromDatetime(dt.datetime(2024, 3, 7, 15, 45))

    async def scenario() -> None:
        await service.start()
        try:
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
                decisions = decision_pb2_grpc.DecisionServiceStub(channel)
                await portfolios.CreatePortfolio(
                    portfolio_pb2.CreatePortfolioRequest(portfolio_id="once", total=money(1_000_000)), timeout=TIMEOUT
                )
                for _ in range(3):
                    decided = await decisions.Decide(
                        decision_pb2.DecideRequest(
                            portfolio_id="once",
                            account_id="once/gen-1",
                            symbol="NVDA",
                            as_of=as_of,
                            market=green_market(THURSDAY),
                        ),
                        timeout=TIMEOUT,
                    )
                    assert decided.decision_id
                await portfolios.GetPortfolio(portfolio_pb2.GetPortfolioRequest(portfolio_id="once"), timeout=TIMEOUT)
        finally:
            await service.stop()

    asyncio.run(scenario())
    assert loads == []


def test_the_agent_decides_through_the_services_one_decision_servicer(tmp_path: Path) -> None:
    """The agent's Decides and approvals run on the DecisionServicer the gRPC binding and the operator page use (one
    compiled rulebook), not a second one of its own."""
    from allsuse.server.agent import AgentServicer
    from allsuse.server.decision import decision_servicer
    from tests.rpc_support import service_config

    service = Service(service_config(tmp_path))
    assert AgentServicer(service.deps).decisions is decision_servicer(service.deps)
