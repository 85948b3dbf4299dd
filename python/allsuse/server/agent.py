"""AgentService: a small rule-based conversational front on the engine's records (it only reads, so every
role may use it). It understands a few
intents (greeting, status, the last decision and why, a week type), keeps each conversation's turns in the
store, and says plainly what it can do when it does not understand. The full agent is its own piece of work.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import grpc

from allsuse.errors import InvalidInputError
from allsuse.protocol.week_type import describe_week
from allsuse.server.app import ServiceBinding, ServiceDeps
from allsuse.server.convert import text_in
from allsuse.server.decision import actor
from allsuse.server.errors import NotFoundError
from allsuse.server.portfolios import PortfolioRepository
from allsuse.server.rpc import rpc, run_blocking
from allsuse.v1 import agent_pb2, agent_pb2_grpc

ROLES = {"Converse": "viewer"}
HELP = (
    "I can tell you: 'status' (balances and states), 'last decision' or 'why' (the latest decision and its "
    "reasons), 'explain <decision id>', and 'week type SHORT_PUT -3.2' (classify a week)."
)
MAX_MESSAGE = 2000
WEEK = re.compile(r"week\s*type\s+(CASH|SHORT_PUT|LONG_STOCK|SHORT_CALL)\s+(-?\d+(?:\.\d+)?)", re.IGNORECASE)
EXPLAIN = re.compile(r"explain\s+([0-9a-f]{32})", re.IGNORECASE)


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """The allsuse.v1.AgentService implementation."""

    def __init__(self, deps: ServiceDeps) -> None:
        self.deps = deps

    def _reply(self, message: str, portfolio_id: str) -> tuple[str, str, list[str]]:
        text = message.strip()
        lower = text.lower()
        if m := WEEK.search(text):
            w = describe_week(m.group(1).upper(), float(m.group(2)))
            low, high = w.expected_return_pct
            return (
                f"{w.code} ({w.name}): {w.action}; expected week return {low}-{high}%, confidence {w.confidence}.",
                "week_type",
                [],
            )
        if lower in ("hi", "hello", "hey") or lower.startswith(("hello", "hi ", "good morning")):
            return f"Hello. {HELP}", "greeting", []
        store = self.deps.store
        if m := EXPLAIN.search(text):
            record = store.get_decision(m.group(1))
            if record is None:
                return f"I know no decision {m.group(1)}.", "explain", []
            d = record.payload
            return (
                f"{d['action']} on {d['symbol']} for {d['account_id']}: {d['explanation']}",
                "explain",
                [d["decision_id"]],
            )
        if not portfolio_id and any(w in lower for w in ("status", "balance", "decision", "why")):
            return "Which portfolio? Send its portfolio_id with the message.", "clarify", []
        if any(w in lower for w in ("status", "balance", "how are")):
            p = PortfolioRepository(store).load(portfolio_id).portfolio
            parts = [f"{a.id} ({a.kind}) {a.balance} {a.state}" for a in p.accounts.values()]
            return f"Portfolio {p.id}: equity {p.equity}; " + "; ".join(parts) + ".", "status", []
        if "decision" in lower or "why" in lower:
            if store.get_portfolio(portfolio_id) is None:
                raise NotFoundError(f"portfolio_id: no portfolio {portfolio_id!r}")
            # One index probe, one row decoded: the cost does not grow with the decisions stored.
            latest = store.latest_decision(portfolio_id)
            if latest is None:
                return f"No decision yet for {portfolio_id}.", "explain", []
            d = latest.payload
            return (
                f"Latest: {d['action']} on {d['symbol']} for {d['account_id']} ({d['outcome']}). "
                f"Why: {d['explanation']}",
                "explain",
                [d["decision_id"]],
            )
        return f"I did not understand that. {HELP}", "unknown", []

    def _converse(self, request: agent_pb2.ConverseRequest) -> agent_pb2.ConverseResponse:
        text_in(request.message, "message", max_length=MAX_MESSAGE, required=True)
        text_in(request.portfolio_id, "portfolio_id", max_length=64)  # kept with the conversation
        store = self.deps.store
        conversation_id = request.conversation_id or uuid.uuid4().hex
        state: dict[str, Any] = {"turns": [], "portfolio_id": request.portfolio_id}
        if request.conversation_id:
            found = store.get_conversation(request.conversation_id)
            if found is None:
                raise InvalidInputError.of("conversation_id", f"no conversation {request.conversation_id!r}")
            state = dict(found.payload)
        portfolio_id = request.portfolio_id or state.get("portfolio_id", "")
        reply, intent, ids = self._reply(request.message, portfolio_id)
        turns = [*state.get("turns", []), {"user": request.message, "agent": reply, "intent": intent}][-50:]
        store.put_conversation(conversation_id, {"turns": turns, "portfolio_id": portfolio_id}, actor=actor())
        return agent_pb2.ConverseResponse(conversation_id=conversation_id, reply=reply, intent=intent, decision_ids=ids)

    @rpc
    async def Converse(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await run_blocking(self._converse, request)


def bindings(deps: ServiceDeps) -> list[ServiceBinding]:
    """The AgentService binding for `allsuse serve`."""
    servicer = AgentServicer(deps)
    return [
        ServiceBinding(
            "allsuse.v1.AgentService",
            lambda server: agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server),
            ROLES,
        )
    ]
