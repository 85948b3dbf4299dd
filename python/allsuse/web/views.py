"""What the pages show, read with the code the gRPC API uses: `portfolio_out` of GetPortfolio for the portfolio
and its accounts, the protection level the engine carries in the portfolio's engine state (the one Decide steps),
the stored decisions awaiting approval, the stored alerts, the registry's component states (as GetMetrics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from allsuse.protocol.drawdown import ProtectionLevel
from allsuse.server.portfolio import portfolio_out
from allsuse.server.portfolios import PortfolioRepository
from allsuse.store import Store
from allsuse.v1 import common_pb2

RECENT_ALERTS = 20


def money_text(m: common_pb2.Money) -> str:
    """A Money as the page prints it: thousands separated, two decimals, a minus sign when negative."""
    cents = m.units * 100 + m.cents
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d}"


@dataclass(frozen=True)
class AccountRow:
    """One account: id, type, balance and peak (money text), drawdown from the peak, protection level, state."""

    account_id: str
    kind: str
    balance: str
    peak: str
    drawdown: float
    level: str
    state: str


@dataclass(frozen=True)
class PortfolioView:
    """One portfolio as the pages show it."""

    portfolio_id: str
    equity: str
    accounts: tuple[AccountRow, ...]
    positions: int
    owner: str | None  # the API key id that created it (None: created with auth off)


def _level(engine_state: dict[str, Any], account_id: str) -> str:
    runtime = (engine_state.get("accounts") or {}).get(account_id)
    if not runtime:
        return ProtectionLevel.NONE.value
    return ProtectionLevel.of(int(runtime["protection"][0])).value


def portfolio_view(store: Store, portfolio_id: str) -> PortfolioView:
    """The portfolio (NotFoundError naming portfolio_id when there is none) as GetPortfolio answers it, with each
    account's drawdown from its peak and drawdown protection level."""
    stored = PortfolioRepository(store).load(portfolio_id)
    message = portfolio_out(stored)
    accounts = stored.portfolio.accounts
    rows = tuple(
        AccountRow(
            a.account_id,
            a.type,
            money_text(a.balance),
            money_text(a.peak),
            accounts[a.account_id].drawdown,
            _level(stored.engine_state, a.account_id),
            a.state,
        )
        for a in message.accounts
    )
    return PortfolioView(message.portfolio_id, money_text(message.equity), rows, len(message.positions), stored.owner)


def all_portfolios(store: Store, limit: int = 1000) -> list[PortfolioView]:
    """Every stored portfolio (creation order, at most `limit`)."""
    return [portfolio_view(store, r.id) for r in store.list_portfolios(limit=limit)]


@dataclass(frozen=True)
class PendingDecision:
    """A decision awaiting approval: what it would do, and why."""

    decision_id: str
    account_id: str
    symbol: str
    action: str
    order: str
    as_of: str
    explanation: str


def pending_decisions(store: Store, portfolio_id: str) -> list[PendingDecision]:
    """The portfolio's decisions whose approval is PENDING, oldest first."""
    out = []
    for record in store.list_decisions(portfolio_id=portfolio_id, status="pending", limit=100_000):
        p = record.payload
        if p.get("approval_status") != "PENDING":
            continue
        o = p.get("order") or {}
        order = (
            f"{o.get('side', '')} {o.get('contracts', '')} {p.get('symbol', '')} {o.get('kind', '')} "
            f"{o.get('strike', '')} exp {o.get('expiry', '')} limit {o.get('limit_price', '')}"
            if o
            else ""
        )
        out.append(
            PendingDecision(
                str(p["decision_id"]),
                str(p.get("account_id", "")),
                str(p.get("symbol", "")),
                str(p.get("action", "")),
                order,
                str(p.get("as_of", "")),
                str(p.get("explanation", ""))[-600:],
            )
        )
    return out


def recent_alerts(store: Store, portfolio_id: str | None) -> list[dict[str, Any]]:
    """The open alerts (of one portfolio with `portfolio_id`), newest first, at most RECENT_ALERTS."""
    records = store.list_alerts(status="open", portfolio_id=portfolio_id, limit=100_000)[-RECENT_ALERTS:]
    return [{**r.payload, "alert_id": r.id, "at": r.created_at, "status": "open"} for r in reversed(records)]


__all__ = [
    "RECENT_ALERTS",
    "AccountRow",
    "PendingDecision",
    "PortfolioView",
    "all_portfolios",
    "money_text",
    "pending_decisions",
    "portfolio_view",
    "recent_alerts",
]
