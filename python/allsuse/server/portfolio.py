"""PortfolioService: portfolios, fills, withdrawals, the weekly cycle and projections over gRPC."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from allsuse.errors import InvalidInputError
from allsuse.protocol.accounts import Account, Portfolio, Transaction, allocate, project
from allsuse.protocol.engine import Effects, Engine
from allsuse.protocol.positions import MULTIPLIER, Position
from allsuse.protocol.trust import TrustBook
from allsuse.rules import RuleBook
from allsuse.server.app import ServiceBinding, ServiceDeps
from allsuse.server.convert import (
    MAX_PRICE,
    amount_fits,
    check_amounts,
    date_in,
    money_fits,
    money_in,
    money_out,
    price_in,
    quantity_in,
    symbol_in,
    text_in,
    timestamp_in,
    timestamp_out,
)
from allsuse.server.decision import actor, require_owner
from allsuse.server.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError
from allsuse.server.idempotency import KeyedCall, write_once
from allsuse.server.portfolios import PortfolioRepository, PortfolioRuntime, StoredPortfolio, new_stored, retry_stale
from allsuse.server.request import current_principal
from allsuse.server.rpc import rpc, run_blocking
from allsuse.v1 import portfolio_pb2, portfolio_pb2_grpc

M = TypeVar("M", bound=Message)
T = TypeVar("T")

ROLES = {
    "CreatePortfolio": "trader",
    "GetPortfolio": "viewer",
    "RecordFill": "trader",
    "Withdraw": "trader",
    "RunWeeklyCycle": "trader",
    "Project": "viewer",
    "ResetAccount": "admin",
}


def _account_out(a: Account, buffer_share: float) -> portfolio_pb2.Account:
    buffer = a.balance * Decimal(str(buffer_share))
    return portfolio_pb2.Account(
        account_id=a.id,
        type=a.kind,
        group_id=a.group_id,
        balance=money_out(a.balance),
        base=money_out(a.base),
        peak=money_out(a.peak),
        leaps=money_out(a.leaps),
        buffer=money_out(buffer),
        deployable=money_out(a.balance - buffer),
        state=a.state,
    )


def _position_out(p: Position) -> portfolio_pb2.Position:
    return portfolio_pb2.Position(
        position_id=p.id,
        account_id=p.account_id,
        symbol=p.symbol,
        kind=p.kind,
        quantity=p.quantity,
        strike=p.strike,
        expiry=p.expiry.isoformat() if p.expiry else "",
        premium=money_out(p.premium),
        cost_basis=money_out(p.cost_basis),
    )


def _transaction_out(t: Transaction, portfolio_id: str) -> portfolio_pb2.Transaction:
    return portfolio_pb2.Transaction(
        transaction_id=f"{portfolio_id}/tx-{t.id}",
        at=timestamp_out(t.at),
        kind=t.kind,
        account_id=t.account_id,
        amount=money_out(t.amount),
        reason=t.reason,
    )


def portfolio_out(stored: StoredPortfolio) -> portfolio_pb2.Portfolio:
    """The Portfolio message of a stored aggregate."""
    from allsuse.protocol import settings

    cfg = settings.default()
    p = stored.portfolio
    return portfolio_pb2.Portfolio(
        portfolio_id=p.id,
        accounts=[_account_out(a, cfg.account(a.kind).buffer) for a in p.accounts.values()],
        positions=[_position_out(x) for x in p.positions.values()],
        groups=[
            portfolio_pb2.AccountGroup(
                group_id=g.id, parent_id=g.parent_id or "", account_ids=g.account_ids, merged=g.merged
            )
            for g in p.groups.values()
        ],
        equity=money_out(p.equity),
    )


class PortfolioServicer(portfolio_pb2_grpc.PortfolioServiceServicer):
    """The allsuse.v1.PortfolioService implementation."""

    def __init__(self, deps: ServiceDeps) -> None:
        self.deps = deps
        # Loaded once: an Engine built without it would load and compile the rulebook per request (~15 ms).
        self.rules = RuleBook.load()

    async def _in_turn(self, portfolio_id: str, fn: Callable[[Any], T], request: Any) -> T:
        """Runs `fn(request)` on a worker thread in the portfolio's turn (see PortfolioQueue), once more on a
        fresh load when another replica wrote the portfolio meanwhile."""
        cfg = self.deps.config.store
        queue = PortfolioRuntime.of(self.deps.store, cfg.portfolio_cache, cfg.portfolio_queue).queue
        return await queue.run(portfolio_id, lambda: run_blocking(retry_stale, fn, request))

    @property
    def repo(self) -> PortfolioRepository:
        return PortfolioRepository(self.deps.store)

    def _owned(self, portfolio_id: str) -> StoredPortfolio:
        stored = self.repo.load(portfolio_id)
        require_owner(stored.owner, "portfolio_id")
        return stored

    # --- create and read ----------------------------------------------------------------------------------
    def _create(self, request: portfolio_pb2.CreatePortfolioRequest) -> portfolio_pb2.Portfolio:
        # Keyed by the portfolio_id sent, "" when the server picks one: a retry of that creates nothing new either.
        call, first = self._replayed("CreatePortfolio", request, portfolio_pb2.Portfolio)
        if first is not None:
            return first
        total = money_in(request.total, "total", positive=True, allow_zero=False)
        portfolio_id = text_in(request.portfolio_id, "portfolio_id", max_length=64) or f"pf-{uuid.uuid4().hex[:12]}"
        if "/" in portfolio_id:
            raise InvalidInputError.of("portfolio_id", "must be at most 64 characters without '/'")
        if self.deps.store.get_portfolio(portfolio_id) is not None:
            raise AlreadyExistsError(f"portfolio_id: {portfolio_id!r} exists already")
        at = timestamp_in(request.at, "at")
        allocate(total)  # validates the total
        principal = current_principal()
        owner = principal.key_id if principal is not None and principal.authenticated else None
        stored = new_stored(Portfolio.create(portfolio_id, total, at), owner)
        check_amounts(stored.portfolio, "total")
        stored.engine_state = Engine(rules=self.rules, trust=TrustBook()).export_state()
        return self._save(call, stored, portfolio_out(stored))

    def _save(self, call: KeyedCall | None, stored: StoredPortfolio, response: M, extra: Any = None) -> M:
        """Saves the aggregate with the request's idempotency key (if any) in the same unit; returns `response`,
        or the first response when a concurrent request with the same key was stored first."""
        return write_once(
            call,
            response,
            lambda claim: self.repo.save(stored, actor=actor(), extra=extra, claim=claim),
            actor=actor(),
        )

    def _replayed(self, rpc: str, request: Any, response_type: type[M]) -> tuple[KeyedCall | None, M | None]:
        """The request's keyed call and, when its key was seen before, the first response."""
        call = KeyedCall.of(rpc, request.portfolio_id, request)
        return call, (None if call is None else call.replay(self.deps.store, response_type))

    @rpc
    async def CreatePortfolio(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await run_blocking(self._create, request)

    @rpc
    async def GetPortfolio(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        stored = await run_blocking(self.repo.load, request.portfolio_id)
        return portfolio_out(stored)

    # --- fills and withdrawals -----------------------------------------------------------------------------
    def _fill(self, request: portfolio_pb2.RecordFillRequest) -> portfolio_pb2.RecordFillResponse:
        call, first = self._replayed("RecordFill", request, portfolio_pb2.RecordFillResponse)
        if first is not None:
            return first
        stored = self._owned(request.portfolio_id)
        p = stored.portfolio
        account = p.account(request.account_id)
        at = timestamp_in(request.at, "at")
        # Every number is bounded before anything changes: the price per share, the quantity and the cash they
        # move (price x quantity x multiplier) within the money limit, so nothing stored can overflow Money.
        price = money_in(request.price, "price", maximum=Decimal(int(MAX_PRICE)))
        if price < 0:
            raise InvalidInputError.of("price", f"must be >= 0, got {price}")
        qty = quantity_in(request.quantity, "quantity")
        if request.kind not in ("put", "call", "stock"):
            raise InvalidInputError.of("kind", f"must be put, call or stock, got {request.kind[:20]!r}")
        per_unit = Decimal(str(MULTIPLIER)) if request.kind != "stock" else Decimal(1)
        amount_fits(price * Decimal(int(qty)) * per_unit, "quantity", "the fill's cash (price x quantity)")
        symbol_in(request.symbol, "symbol", required=request.side in ("sell_to_open", "buy"))
        position: Position | None = None
        if request.side == "sell_to_open":
            if request.kind == "stock":
                raise InvalidInputError.of("side", "sell_to_open is for options; use buy or sell for stock")
            strike = price_in(request.strike, "strike")
            amount_fits(Decimal(str(strike)) * Decimal(int(qty)) * per_unit, "quantity", "the fill's exposure")
            expiry = date_in(request.expiry, "expiry")
            if request.kind == "put":
                held = sum(x.collateral() for x in p.positions.values() if x.account_id == account.id)
                if Decimal(str(request.strike * MULTIPLIER * qty)) + Decimal(str(held)) > account.balance:
                    raise FailedPreconditionError("quantity: the put is not cash-secured by the account's free cash")
            stored.next_position += 1
            position = Position(
                f"{p.id}/pos-{stored.next_position}",
                account.id,
                request.symbol,
                request.kind,
                -qty,
                at.date(),
                request.strike,
                expiry,
                float(price),
            )
            # The premium is cash now and realised only when the position ends (closed, expired, assigned).
            p.open_position(position, at, f"sold {qty:g} {request.kind} {request.strike:g} exp {expiry} at {price}")
        elif request.side in ("buy_to_close", "sell"):
            target = p.positions.get(request.position_id)
            if target is None or target.account_id != account.id:
                raise NotFoundError(f"position_id: no open position {request.position_id!r} in {account.id}")
            # A closing order realises the closed part's P&L against its entry. An option that expired or was
            # assigned is closed here at price 0 (its premium realised); assigned shares are then a "buy".
            if request.side == "buy_to_close":
                if not target.is_option:
                    raise InvalidInputError.of("side", "buy_to_close closes an option; use sell for stock")
                if qty > -target.quantity:
                    raise InvalidInputError.of("quantity", f"exceeds the {-target.quantity:g} contracts open")
                p.close_position(
                    target.id,
                    price,
                    at,
                    f"bought back {qty:g} {target.kind} {target.strike:g} at {price}",
                    quantity=qty,
                )
            else:
                if target.is_option:
                    raise InvalidInputError.of("side", "sell is for stock; use buy_to_close for options")
                if qty > target.quantity:
                    raise InvalidInputError.of("quantity", f"exceeds the {target.quantity:g} shares held")
                p.close_position(
                    target.id,
                    price,
                    at,
                    f"sold {qty:g} shares of {target.symbol} at {price}",
                    quantity=qty,
                    kind="sale",
                )
            position = target
        elif request.side == "buy":
            if request.kind != "stock":
                raise InvalidInputError.of("side", "buy is for stock (an assignment or a purchase)")
            cost = price * Decimal(qty)
            if cost > account.balance:
                raise FailedPreconditionError("quantity: the account's cash does not cover the purchase")
            stored.next_position += 1
            position = Position(
                f"{p.id}/pos-{stored.next_position}",
                account.id,
                request.symbol,
                "stock",
                qty,
                at.date(),
                cost_basis=float(price),
            )
            p.open_position(position, at, f"bought {qty:g} shares of {request.symbol} at {price}", kind="assignment")
        else:
            raise InvalidInputError.of("side", f"must be sell_to_open, buy_to_close, buy or sell, got {request.side!r}")
        extra = self._executes(stored, request, position) if request.decision_id else None
        last = p.transactions[-1]
        check_amounts(p, "price")
        response = portfolio_pb2.RecordFillResponse(
            position=_position_out(position), transaction=_transaction_out(last, p.id)
        )
        return self._save(call, stored, response, extra=extra)

    def _executes(
        self, stored: StoredPortfolio, request: portfolio_pb2.RecordFillRequest, position: Position | None
    ) -> Any:
        """A fill that executes a decision (PROTOCOL section 10): a new option keeps the band the decision chose it
        in, and a decision still PENDING is executed now, so its effects (rate window, freeze, cut, REDUCING) apply
        and it is marked APPROVED in the same unit of work. A declined or rejected decision cannot be executed."""
        record = self.deps.store.get_decision(request.decision_id)
        if record is None:
            raise NotFoundError(f"decision_id: no decision {request.decision_id!r}")
        payload = dict(record.payload)
        if payload.get("portfolio_id") != request.portfolio_id or payload.get("account_id") != request.account_id:
            raise InvalidInputError.of("decision_id", "belongs to another portfolio or account")
        status = str(payload.get("approval_status", ""))
        if status in ("DECLINED", "REJECTED"):
            raise FailedPreconditionError(f"decision_id: {request.decision_id} is {status} and cannot be executed")
        order = payload.get("order") or {}
        if position is not None and request.side == "sell_to_open" and order.get("band"):
            position.band = (float(order["band"][0]), float(order["band"][1]))
        if status != "PENDING":
            return None
        effects = payload.get("effects")
        if effects:
            engine = Engine(rules=self.rules, trust=TrustBook())
            engine.import_state(stored.engine_state)
            engine.apply_effects(Effects.from_json(effects), stored.portfolio)
            stored.engine_state = engine.export_state()
        payload["approval_status"] = "APPROVED"
        payload["approval_note"] = "executed by RecordFill"

        who = actor()  # read here: a write unit runs on the store's writer thread, outside the request's context

        def record_execution(tx: Any) -> None:
            tx.update_decision(
                request.decision_id, status="approved", payload=payload, expected_status="pending", actor=who
            )

        return record_execution

    @rpc
    async def RecordFill(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._in_turn(request.portfolio_id, self._fill, request)

    def _withdraw(self, request: portfolio_pb2.WithdrawRequest) -> portfolio_pb2.Transaction:
        call, first = self._replayed("Withdraw", request, portfolio_pb2.Transaction)
        if first is not None:
            return first
        stored = self._owned(request.portfolio_id)
        amount = money_in(request.amount, "amount", positive=True, allow_zero=False)
        at = timestamp_in(request.at, "at")
        reason = text_in(request.reason, "reason") or "withdrawal"
        tx = stored.portfolio.withdraw(request.account_id, amount, at, reason)
        return self._save(call, stored, _transaction_out(tx, stored.portfolio.id))

    @rpc
    async def Withdraw(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._in_turn(request.portfolio_id, self._withdraw, request)

    # --- weekly cycle, projection, reset --------------------------------------------------------------------
    def _weekly(self, request: portfolio_pb2.RunWeeklyCycleRequest) -> portfolio_pb2.WeeklyCycleReport:
        call, first = self._replayed("RunWeeklyCycle", request, portfolio_pb2.WeeklyCycleReport)
        if first is not None:
            return first
        stored = self._owned(request.portfolio_id)
        p = stored.portfolio
        at = timestamp_in(request.as_of, "as_of")
        forked = p.check_forks(at)
        # The service holds no prices to close positions at: a forked group merges here once it holds only
        # cash; a group with open positions waits until they are closed (weekly options: within the week).
        merged = p.check_merges(at, marks=None)
        # Reinvests the quarter's realised gains when `as_of` is the quarter's last NYSE trading day, and does
        # nothing on any other day: a cycle run on that day (whatever its weekday) carries out the reinvestment.
        p.reinvest_quarter(at)
        engine = Engine(rules=self.rules, trust=TrustBook())
        engine.import_state(stored.engine_state)
        engine.trust.decay(at.date())
        stored.engine_state = engine.export_state()
        txs = list(p.transactions)

        def group(g: Any) -> portfolio_pb2.AccountGroup:
            return portfolio_pb2.AccountGroup(
                group_id=g.id, parent_id=g.parent_id or "", account_ids=g.account_ids, merged=g.merged
            )

        report = portfolio_pb2.WeeklyCycleReport(
            forked=[group(g) for g in forked],
            merged=[group(g) for g in merged],
            transactions=[_transaction_out(t, p.id) for t in txs],
            portfolio=portfolio_out(stored),
        )
        return self._save(call, stored, report)

    @rpc
    async def RunWeeklyCycle(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._in_turn(request.portfolio_id, self._weekly, request)

    def _project(self, request: portfolio_pb2.ProjectRequest) -> portfolio_pb2.Projection:
        total = money_in(request.total, "total", positive=True, allow_zero=False)
        if request.seed < 0:
            raise InvalidInputError.of("seed", f"must be >= 0, got {request.seed}")
        # project() bounds years, paths and paths x years (PROJECT_MAX_PATH_YEARS) before it allocates anything.
        pr = project(float(total), request.years, paths=request.paths or 2000, seed=request.seed)
        for y, *values in zip(pr.years, pr.expected, pr.income, pr.p05, pr.p50, pr.p95, strict=True):
            if not all(money_fits(v) for v in values):
                raise InvalidInputError.of(
                    "years", f"the projection of {total} outgrows what Money can carry in year {y}; ask for fewer years"
                )
        return portfolio_pb2.Projection(
            years=[
                portfolio_pb2.ProjectionYear(
                    year=y,
                    expected=money_out(e),
                    income=money_out(i),
                    p05=money_out(a),
                    p50=money_out(b),
                    p95=money_out(c),
                )
                for y, e, i, a, b, c in zip(pr.years, pr.expected, pr.income, pr.p05, pr.p50, pr.p95, strict=True)
            ]
        )

    @rpc
    async def Project(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await run_blocking(self._project, request)

    def _reset(self, request: portfolio_pb2.ResetAccountRequest) -> portfolio_pb2.Account:
        call, first = self._replayed("ResetAccount", request, portfolio_pb2.Account)
        if first is not None:
            return first
        stored = self.repo.load(request.portfolio_id)
        account = stored.portfolio.account(request.account_id)
        if not request.reason:
            raise InvalidInputError.of("reason", "must say why the account is reset (it goes to the audit log)")
        text_in(request.reason, "reason")
        engine = Engine(rules=self.rules, trust=TrustBook())
        engine.import_state(stored.engine_state)
        engine.reset_account(stored.portfolio, account.id)
        stored.engine_state = engine.export_state()

        who = actor()  # read here: a write unit runs on the store's writer thread, outside the request's context

        def note(tx: Any) -> None:
            tx.audit("reset_account", {"account_id": account.id, "reason": request.reason}, actor=who)

        from allsuse.protocol import settings

        return self._save(call, stored, _account_out(account, settings.default().account(account.kind).buffer), note)

    @rpc
    async def ResetAccount(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._in_turn(request.portfolio_id, self._reset, request)


def bindings(deps: ServiceDeps) -> list[ServiceBinding]:
    """The PortfolioService binding for `allsuse serve`."""
    servicer = PortfolioServicer(deps)
    return [
        ServiceBinding(
            "allsuse.v1.PortfolioService",
            lambda server: portfolio_pb2_grpc.add_PortfolioServiceServicer_to_server(servicer, server),
            ROLES,
        )
    ]
