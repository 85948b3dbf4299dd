"""Portfolios as the service keeps them: the whole aggregate (accounts, groups, positions, the engine's
per-account state and trust) is one versioned record in the store, written atomically with the transactions a
request produced. A write from a stale copy (another replica moved the portfolio meanwhile) is refused with
FAILED_PRECONDITION, so two servers sharing a database never lose each other's updates.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from allsuse.protocol.accounts import Account, AccountGroup, Portfolio, Transaction
from allsuse.protocol.positions import Position
from allsuse.server.errors import FailedPreconditionError, NotFoundError
from allsuse.store import Store, canonical_json
from allsuse.store.store import Transaction as StoreTx


def _account(a: Account) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "balance": str(a.balance),
        "base": str(a.base),
        "peak": str(a.peak),
        "group_id": a.group_id,
        "state": a.state,
        "leaps": str(a.leaps),
        "quarter_realised": str(a.quarter_realised),
        "reinvest_cash": str(a.reinvest_cash),
    }


def _position(p: Position) -> dict[str, Any]:
    return {
        "id": p.id,
        "account_id": p.account_id,
        "symbol": p.symbol,
        "kind": p.kind,
        "quantity": p.quantity,
        "opened": p.opened.isoformat(),
        "strike": p.strike,
        "expiry": p.expiry.isoformat() if p.expiry else None,
        "premium": p.premium,
        "cost_basis": p.cost_basis,
        "iv": p.iv,
        "band": list(p.band) if p.band else None,
    }


@dataclass
class StoredPortfolio:
    """A portfolio loaded from the store, with what is needed to write it back safely."""

    portfolio: Portfolio
    version: int
    owner: str | None
    engine_state: dict[str, Any]
    recorded: int  # transactions already in the store

    def payload(self) -> dict[str, Any]:
        """The JSON form of the aggregate (money as exact decimal strings)."""
        p = self.portfolio
        return {
            "version": self.version + 1,
            "owner": self.owner,
            "accounts": [_account(a) for a in p.accounts.values()],
            "groups": [
                {"id": g.id, "parent_id": g.parent_id, "account_ids": list(g.account_ids), "merged": g.merged}
                for g in p.groups.values()
            ],
            "positions": [_position(x) for x in p.positions.values()],
            "engine": self.engine_state,
            "transactions": self.recorded + len(p.transactions),
            "next_position": self.next_position,
        }

    next_position: int = 1
    # The accounts and positions as last written (JSON form), and the aggregate's payload without its version as
    # canonical text: a save writes only what differs from them (None: never written).
    stored_accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored_positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored_text: str | None = None


def from_payload(portfolio_id: str, payload: dict[str, Any]) -> StoredPortfolio:
    """Rebuilds the aggregate from its stored payload."""
    p = Portfolio(portfolio_id)
    for g in payload["groups"]:
        p.groups[g["id"]] = AccountGroup(g["id"], g["parent_id"], list(g["account_ids"]), bool(g["merged"]))
    for a in payload["accounts"]:
        p.accounts[a["id"]] = Account(
            a["id"],
            a["kind"],
            Decimal(a["balance"]),
            Decimal(a["base"]),
            Decimal(a["peak"]),
            a["group_id"],
            a["state"],
            Decimal(a["leaps"]),
            Decimal(a["quarter_realised"]),
            Decimal(a.get("reinvest_cash", "0.00")),
        )
    for x in payload["positions"]:
        p.positions[x["id"]] = Position(
            x["id"],
            x["account_id"],
            x["symbol"],
            x["kind"],
            float(x["quantity"]),
            dt.date.fromisoformat(x["opened"]),
            float(x["strike"]),
            dt.date.fromisoformat(x["expiry"]) if x["expiry"] else None,
            float(x["premium"]),
            float(x["cost_basis"]),
            float(x["iv"]),
            (float(x["band"][0]), float(x["band"][1])) if x.get("band") else None,
        )
    recorded = int(payload.get("transactions", 0))
    # New transactions continue the stored numbering; the old ones live in the store's ledger.
    p._ids = itertools.count(recorded + 1)
    return StoredPortfolio(
        p,
        int(payload["version"]),
        payload.get("owner"),
        dict(payload.get("engine") or {}),
        recorded,
        int(payload.get("next_position", 1)),
        stored_accounts={a["id"]: a for a in payload["accounts"]},
        stored_positions={x["id"]: x for x in payload["positions"]},
        stored_text=_unversioned(payload),
    )


def _unversioned(payload: dict[str, Any]) -> str:
    """The aggregate's payload without its version, as canonical text: equal text means nothing changed."""
    return canonical_json({k: v for k, v in payload.items() if k != "version"})


def _same(stored: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    return stored is not None and canonical_json(stored) == canonical_json(current)


class PortfolioRepository:
    """Loads and saves portfolio aggregates."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self, portfolio_id: str) -> StoredPortfolio:
        """The stored portfolio, or NotFoundError naming it."""
        if not portfolio_id:
            from allsuse.errors import InvalidInputError

            raise InvalidInputError.of("portfolio_id", "must not be empty")
        record = self.store.get_portfolio(portfolio_id)
        if record is None:
            raise NotFoundError(f"portfolio_id: no portfolio {portfolio_id!r}")
        return from_payload(portfolio_id, record.payload)

    def save(
        self,
        stored: StoredPortfolio,
        *,
        actor: str,
        extra: Callable[[StoreTx], object] | None = None,
        claim: Callable[[StoreTx], None] | None = None,
    ) -> None:
        """Writes what changed of the aggregate, and its new transactions, in one durable unit; refuses a stale copy.

        Only records that differ from the stored ones are written (each write appends an audit entry): the
        portfolio record when anything in it changed (its version then moves), each changed or new account and
        position, and each position that is gone as "closed". A save with no change writes nothing. `claim(tx)`
        runs first (an idempotency key: a concurrent twin request rolls this one back); `extra(tx)` may add
        writes (a decision, an outcome) to the same unit."""
        payload = stored.payload()
        p = stored.portfolio
        new_txs = p.transactions  # only this request's transactions are held in memory
        text = _unversioned(payload)
        changed = text != stored.stored_text or bool(new_txs)
        accounts = {a.id: _account(a) for a in p.accounts.values()}
        positions = {x.id: _position(x) for x in p.positions.values()}

        def unit(tx: StoreTx) -> None:
            if claim is not None:
                claim(tx)
            current = tx.get("portfolio", p.id)
            found = 0 if current is None else int(current.payload.get("version", 0))
            if found != stored.version:
                raise FailedPreconditionError(
                    f"portfolio_id: {p.id} changed meanwhile (version {found}, expected {stored.version}); retry"
                )
            if changed:
                tx.put_portfolio(p.id, payload, actor=actor)
            for a in p.accounts.values():
                if not _same(stored.stored_accounts.get(a.id), accounts[a.id]):
                    tx.put_account(a.id, p.id, accounts[a.id], kind=a.kind, actor=actor)
            # Positions are also kept as their own records (open, or closed once gone) for queries and reports.
            for x in p.positions.values():
                if not _same(stored.stored_positions.get(x.id), positions[x.id]):
                    tx.put_position(x.id, p.id, positions[x.id], status="open", account_id=x.account_id, actor=actor)
            for gone_id, last in stored.stored_positions.items():
                if gone_id not in p.positions:
                    tx.put_position(gone_id, p.id, last, status="closed", account_id=last["account_id"], actor=actor)
            for t in new_txs:
                tx.record_transaction(
                    p.id,
                    t.amount,
                    _transaction(t),
                    kind=t.kind,
                    account_id=t.account_id,
                    transaction_id=f"{p.id}/tx-{t.id}",
                    actor=actor,
                )
            if extra is not None:
                extra(tx)

        self.store.write(unit)
        stored.stored_accounts = accounts
        stored.stored_positions = positions
        stored.stored_text = text
        if changed:
            stored.version += 1
        stored.recorded += len(new_txs)
        p.transactions = []


def _transaction(t: Transaction) -> dict[str, Any]:
    return {
        "id": t.id,
        "at": t.at.isoformat(),
        "kind": t.kind,
        "account_id": t.account_id,
        "amount": str(t.amount),
        "reason": t.reason,
        "counterparty": t.counterparty,
    }


def new_stored(portfolio: Portfolio, owner: str | None) -> StoredPortfolio:
    """A portfolio not yet stored (version 0)."""
    return StoredPortfolio(portfolio, 0, owner, {}, 0)
