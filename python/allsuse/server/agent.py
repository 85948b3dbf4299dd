"""AgentService: the ALL-USE agent over gRPC, a thin shell over `allsuse.agent.dialogue.Agent.turn`.

Converse loads the conversation's memory (allsuse.agent.memory: another API key's conversation is
PERMISSION_DENIED), runs one turn on a worker thread and saves the memory. The turn runs in the conversation's turn
and, when it has a portfolio in focus, in that portfolio's turn (PortfolioQueue), so two messages of one
conversation, or the agent and a Decide on the same portfolio, never overlap.

The agent's answers call `ServiceCalls`: the servicers' own handlers (CreatePortfolio, Decide, ApproveDecision,
Withdraw, Project) with the caller's principal, so a write through the agent is checked exactly as the RPC checks
it (the RPC's minimum role, ownership, audit). Converse itself needs only a viewer key; a viewer who asks for a
write gets a polite refusal naming the role needed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf import struct_pb2

from allsuse.agent.dialogue import Agent, Reply
from allsuse.agent.memory import Conversation, ConversationStore
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.engine import Engine
from allsuse.protocol.market import MarketData
from allsuse.server import decision as decision_service
from allsuse.server import portfolio as portfolio_service
from allsuse.server.alerting import alert_system
from allsuse.server.app import ServiceBinding, ServiceDeps
from allsuse.server.convert import money_out, text_in, timestamp_out
from allsuse.server.decision import DecisionServicer, actor, decision_servicer
from allsuse.server.portfolio import PortfolioServicer
from allsuse.server.portfolios import PortfolioRepository, PortfolioRuntime, StoredPortfolio, retry_stale
from allsuse.server.request import current_principal
from allsuse.server.rpc import rpc, run_blocking
from allsuse.store import Record
from allsuse.v1 import agent_pb2, agent_pb2_grpc, decision_pb2, portfolio_pb2

ROLES = {"Converse": "viewer"}
Clock = Callable[[], dt.datetime]
PROJECTION_PATHS = 2000


def utc_now() -> dt.datetime:
    """Now, naive UTC (as the RPCs' default as_of)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def configured_symbols() -> tuple[str, ...]:
    """The symbols the accounts trade (every account type's), in configuration order."""
    cfg = settings.default()
    seen: dict[str, None] = {}
    for kind in settings.ACCOUNT_TYPES:
        seen.update(dict.fromkeys(cfg.account(kind).symbols))
    return tuple(seen)


def _require(rpc_name: str, roles: dict[str, str]) -> None:
    """PermissionError unless the caller's role may call `rpc_name` (the agent writes only what the key may)."""
    needed = roles[rpc_name]
    principal = current_principal()
    if principal is not None and not principal.allows(needed):
        raise PermissionError(f"{rpc_name}: it needs a {needed} key, and this key is a {principal.role}")


class ServiceCalls:
    """`allsuse.agent.calls.Calls` over the servicers' handlers (one per turn: it collects the turn's alerts)."""

    def __init__(self, deps: ServiceDeps, decisions: DecisionServicer, portfolios: PortfolioServicer, clock: Clock):
        self.deps = deps
        self.decisions = decisions
        self.portfolios = portfolios
        self.clock = clock
        self.alerts: list[dict[str, Any]] = []
        self._symbols = configured_symbols()

    def now(self) -> dt.datetime:
        return self.clock()

    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def create_portfolio(self, total: Decimal) -> str:
        _require("CreatePortfolio", portfolio_service.ROLES)
        request = portfolio_pb2.CreatePortfolioRequest(total=money_out(total), at=timestamp_out(self.now()))
        return str(self.portfolios._create(request).portfolio_id)

    def portfolio(self, portfolio_id: str) -> StoredPortfolio:
        return PortfolioRepository(self.deps.store).load(portfolio_id)

    def engine(self, stored: StoredPortfolio) -> Engine:
        return self.decisions._engine(stored)

    def market(self, symbols: tuple[str, ...], as_of: dt.datetime) -> MarketData:
        market = self.decisions.markets.resolve(decision_pb2.MarketSnapshot(), as_of, symbols)
        missing = [s for s in symbols if s not in market.bars]
        if missing:
            raise InvalidInputError.of("market.symbols", f"the server holds no history of {', '.join(missing)}")
        return market

    def decide(self, portfolio_id: str, account_id: str, symbol: str, as_of: dt.datetime) -> dict[str, Any]:
        _require("Decide", decision_service.ROLES)
        request = decision_pb2.DecideRequest(
            portfolio_id=portfolio_id, account_id=account_id, symbol=symbol, as_of=timestamp_out(as_of)
        )
        payload = retry_stale(self.decisions._decide, request)
        alert = payload.pop("_alert", None)
        if alert is not None:
            self.alerts.append(alert)
        return payload

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        record = self.deps.store.get_decision(decision_id)
        return None if record is None else dict(record.payload)

    def latest_decision(self, portfolio_id: str, account_id: str | None = None) -> dict[str, Any] | None:
        record = self.deps.store.latest_decision(portfolio_id, account_id=account_id)
        return None if record is None else dict(record.payload)

    def approve(self, decision_id: str, approve: bool) -> dict[str, Any]:
        _require("ApproveDecision", decision_service.ROLES)
        request = decision_pb2.ApproveDecisionRequest(
            decision_id=decision_id, approve=approve, note="confirmed in a conversation with the agent"
        )
        retry_stale(self.decisions._approve, request)
        found = self.decision(decision_id)
        assert found is not None
        return found

    def withdraw(self, portfolio_id: str, account_id: str, amount: Decimal) -> dict[str, Any]:
        _require("Withdraw", portfolio_service.ROLES)
        request = portfolio_pb2.WithdrawRequest(
            portfolio_id=portfolio_id,
            account_id=account_id,
            amount=money_out(amount),
            reason="withdrawal confirmed in a conversation with the agent",
            at=timestamp_out(self.now()),
        )
        tx = retry_stale(self.portfolios._withdraw, request)
        return {
            "transaction_id": tx.transaction_id,
            "account_id": tx.account_id,
            "kind": tx.kind,
            "amount": str(Decimal(tx.amount.units) + Decimal(tx.amount.cents) / 100),
            "reason": tx.reason,
        }

    def project(self, total: Decimal, years: int) -> dict[str, list[Any]]:
        request = portfolio_pb2.ProjectRequest(total=money_out(total), years=years, paths=PROJECTION_PATHS)
        result = self.portfolios._project(request)

        def value(m: Any) -> float:
            return float(m.units + m.cents / 100)

        return {
            "years": [y.year for y in result.years],
            "expected": [value(y.expected) for y in result.years],
            "income": [value(y.income) for y in result.years],
            "p05": [value(y.p05) for y in result.years],
            "p50": [value(y.p50) for y in result.years],
            "p95": [value(y.p95) for y in result.years],
        }

    def transactions(self, portfolio_id: str) -> list[dict[str, Any]]:
        return [dict(r.payload) for r in self.deps.store.list_transactions(portfolio_id=portfolio_id, limit=100_000)]


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(data)
    return out


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """The allsuse.v1.AgentService implementation."""

    def __init__(self, deps: ServiceDeps, *, clock: Clock | None = None) -> None:
        self.deps = deps
        self.clock: Clock = clock or utc_now
        self.decisions = decision_servicer(deps)  # the service's one: its rulebook compiled once
        self.portfolios = PortfolioServicer(deps)

    @property
    def conversations(self) -> ConversationStore:
        return ConversationStore(self.deps.store)

    def _runtime(self) -> PortfolioRuntime:
        cfg = self.deps.config.store
        return PortfolioRuntime.of(self.deps.store, cfg.portfolio_cache, cfg.portfolio_queue)

    def open(self, request: agent_pb2.ConverseRequest, conversation_id: str) -> Conversation:
        """The request's conversation (PermissionError for another key's), with the portfolio it names in focus."""
        text_in(request.portfolio_id, "portfolio_id", max_length=64)
        principal = current_principal()
        owner = principal.key_id if principal is not None and principal.authenticated else None
        conversation = self.conversations.open(conversation_id, owner)
        if request.portfolio_id and request.portfolio_id != conversation.portfolio_id:
            PortfolioRepository(self.deps.store).load(request.portfolio_id)  # NOT_FOUND for an unknown portfolio
            conversation.portfolio_id, conversation.account_id = request.portfolio_id, None
        return conversation

    def turn(self, conversation: Conversation, message: str) -> tuple[Reply, list[dict[str, Any]], Future[Record]]:
        """One turn on this thread: the reply, the alerts its decisions raised, and the memory's write (queued in
        the store's group commit; the caller awaits it before answering)."""
        calls = ServiceCalls(self.deps, self.decisions, self.portfolios, self.clock)
        reply = Agent(calls).turn(conversation, message)
        return reply, calls.alerts, self.conversations.submit(conversation, actor=actor())

    def response(self, conversation: Conversation, reply: Reply) -> agent_pb2.ConverseResponse:
        """The ConverseResponse of a turn."""
        pending = conversation.pending
        return agent_pb2.ConverseResponse(
            conversation_id=conversation.conversation_id,
            reply=reply.text,
            intent=reply.intent,
            decision_ids=list(reply.decision_ids),
            data=_struct(reply.data),
            suggestions=list(reply.suggestions),
            awaiting_confirmation=pending is not None and pending.confirming,
        )

    @rpc
    async def Converse(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        conversation_id = request.conversation_id or uuid.uuid4().hex
        queue = self._runtime().queue

        async def in_turn() -> tuple[Conversation, Reply, list[dict[str, Any]]]:
            # Loaded inside the conversation's turn: two messages of one conversation never read the same memory.
            conversation = await run_blocking(self.open, request, conversation_id)
            pid = conversation.portfolio_id
            if pid is None:
                reply, alerts, saved = await run_blocking(self.turn, conversation, request.message)
            else:  # the conversation's turn first, then the portfolio's: always in this order
                reply, alerts, saved = await queue.run(
                    pid, lambda: run_blocking(self.turn, conversation, request.message)
                )
            # The memory is durable before the reply leaves (and before the conversation's next turn loads it); the
            # fsync is awaited here, on the event loop, not on a worker thread.
            await asyncio.wrap_future(saved)
            return conversation, reply, alerts

        conversation, reply, alerts = await queue.run(f"conversation:{conversation_id}", in_turn)
        for alert in alerts:  # stored with their decisions; streamed and routed by the alert system
            await alert_system(self.deps).deliver(alert)
        return self.response(conversation, reply)


def bindings(deps: ServiceDeps, *, clock: Clock | None = None) -> list[ServiceBinding]:
    """The AgentService binding for `allsuse serve` (`clock`: the time the agent decides at; now by default)."""
    servicer = AgentServicer(deps, clock=clock)
    return [
        ServiceBinding(
            "allsuse.v1.AgentService",
            lambda server: agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server),
            ROLES,
        )
    ]


__all__ = ["ROLES", "AgentServicer", "ServiceCalls", "bindings", "configured_symbols"]
