"""The engine and service calls the agent's answers are built from (`Calls`), so every number in a reply comes
from the same code an RPC runs. The server implements it over its servicers (allsuse.server.agent.ServiceCalls):
CreatePortfolio's, Decide's, ApproveDecision's, Withdraw's and Project's own handlers, with the caller's principal,
so a write through the agent is checked (role, ownership, idempotency, audit) exactly as the RPC would check it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Protocol

from allsuse.protocol.engine import Engine
from allsuse.protocol.market import MarketData
from allsuse.server.portfolios import StoredPortfolio


class Calls(Protocol):
    """What an answer may call. Writes raise PermissionError when the caller's key may not make them."""

    def now(self) -> dt.datetime:
        """The time a decision or a write is made at (naive UTC, as the RPCs' default `as_of`)."""
        ...

    def symbols(self) -> tuple[str, ...]:
        """The configured symbols (the tickers the agent recognises)."""
        ...

    def create_portfolio(self, total: Decimal) -> str:
        """CreatePortfolio's code path; the new portfolio's id."""
        ...

    def portfolio(self, portfolio_id: str) -> StoredPortfolio:
        """The stored portfolio (NotFoundError when there is none)."""
        ...

    def engine(self, stored: StoredPortfolio) -> Engine:
        """An Engine holding the portfolio's engine state (drawdown protection, trust)."""
        ...

    def market(self, symbols: tuple[str, ...], as_of: dt.datetime) -> MarketData:
        """The server's market as of `as_of` for `symbols` (stored history, as a Decide without a snapshot uses)."""
        ...

    def decide(self, portfolio_id: str, account_id: str, symbol: str, as_of: dt.datetime) -> dict[str, Any]:
        """Decide's code path; the stored decision payload."""
        ...

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        """A stored decision payload, or None."""
        ...

    def latest_decision(self, portfolio_id: str, account_id: str | None = None) -> dict[str, Any] | None:
        """The portfolio's (or account's) latest decision payload, or None."""
        ...

    def approve(self, decision_id: str, approve: bool) -> dict[str, Any]:
        """ApproveDecision's code path (approve or decline); the updated decision payload."""
        ...

    def withdraw(self, portfolio_id: str, account_id: str, amount: Decimal) -> dict[str, Any]:
        """Withdraw's code path; the transaction (transaction_id, amount, account_id, reason)."""
        ...

    def project(self, total: Decimal, years: int) -> dict[str, list[Any]]:
        """Project's code path: per year, expected, income, p05, p50 and p95 (floats)."""
        ...

    def transactions(self, portfolio_id: str) -> list[dict[str, Any]]:
        """The portfolio's stored ledger, in the order recorded."""
        ...


__all__ = ["Calls"]
