"""DecisionService: decisions and the protocol's building blocks over gRPC.

Every handler translates the request (allsuse.server.convert), runs the core work off the event loop
(`run_blocking`), and lets `@rpc` map errors through the one table in allsuse.server.errors.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import grpc
import numpy as np

from allsuse import _core, pricing, risk, sizing
from allsuse.errors import InvalidInputError
from allsuse.orchestration.errors import BusClosedError
from allsuse.protocol import settings
from allsuse.protocol.engine import Effects, Engine
from allsuse.protocol.positions import Position
from allsuse.protocol.stress import stress_portfolio
from allsuse.protocol.trust import TrustBook
from allsuse.protocol.week_type import describe_week
from allsuse.rules import RuleBook
from allsuse.server.alerting import alert_system
from allsuse.server.app import ServiceBinding, ServiceDeps
from allsuse.server.convert import (
    MAX_CHAIN,
    MAX_IV,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_RATE,
    OUTCOME,
    SEVERITY,
    date_in,
    decision_out,
    decision_payload,
    json_object_in,
    kind_in,
    money_in,
    money_out,
    number_in,
    price_in,
    quote_in,
    stress_out,
    symbol_in,
    text_in,
    timestamp_in,
)
from allsuse.server.errors import FailedPreconditionError, NotFoundError
from allsuse.server.idempotency import Claim, KeyedCall, write_once
from allsuse.server.marketdata import markets_for
from allsuse.server.portfolios import Loaded, PortfolioRepository, PortfolioRuntime, StoredPortfolio, retry_stale
from allsuse.server.request import current_principal
from allsuse.server.rpc import check_deadline, rpc, run_blocking
from allsuse.store import Store, StoreConflictError
from allsuse.store.store import Transaction as StoreTx
from allsuse.v1 import decision_pb2, decision_pb2_grpc

T = TypeVar("T")

ROLES = {
    "Decide": "trader",
    "AssessRisk": "viewer",
    "SizePosition": "viewer",
    "SelectStrike": "viewer",
    "ClassifyWeek": "viewer",
    "CheckCompliance": "viewer",
    "ApproveDecision": "trader",
    "RecordOutcome": "trader",
}


# SizePosition request fields whose sizing-facade argument has another name: an error names the field the client sent.
_SIZE_FIELDS = {
    "target_share": "size_share",
    "m_label": "label_multiplier",
    "m_atr": "atr_multiplier",
    "m_drawdown": "drawdown_multiplier",
    "m_vix": "vix_multiplier",
}


class _OutcomeExistsError(Exception):
    """Raised inside a write unit when a concurrent request recorded the decision's outcome first."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        super().__init__("outcome recorded meanwhile")
        self.outcome = outcome


def require_owner(stored_owner: str | None, what: str) -> None:
    """PERMISSION_DENIED unless the caller is an admin or the owner of the portfolio."""
    principal = current_principal()
    if principal is not None and not principal.may_act_for(stored_owner):
        raise PermissionError(f"{what}: this key may act only for its own portfolios")


def actor() -> str:
    """Who the audit log names for this request."""
    principal = current_principal()
    return principal.key_id if principal is not None else "system"


class DecisionServicer(decision_pb2_grpc.DecisionServiceServicer):
    """The allsuse.v1.DecisionService implementation."""

    def __init__(self, deps: ServiceDeps) -> None:
        self.deps = deps
        self.rules = RuleBook.load()
        self.markets = markets_for(deps)

    @property
    def store(self) -> Store:
        return self.deps.store

    def _engine(self, stored: StoredPortfolio) -> Engine:
        engine = Engine(rules=self.rules, trust=TrustBook())
        engine.import_state(stored.engine_state)
        return engine

    def _runtime(self) -> PortfolioRuntime:
        """The server's portfolio cache and queue (sized by store.portfolio_cache / store.portfolio_queue)."""
        cfg = self.deps.config.store
        return PortfolioRuntime.of(self.store, cfg.portfolio_cache, cfg.portfolio_queue)

    async def _in_turn(self, portfolio_id: str, fn: Callable[[Any], T], request: Any) -> T:
        """Runs `fn(request)` on a worker thread in the portfolio's turn (requests for one portfolio one at a
        time, in arrival order), once more on a fresh load when another replica wrote the portfolio meanwhile."""
        return await self._runtime().queue.run(portfolio_id, lambda: run_blocking(retry_stale, fn, request))

    # --- Decide -----------------------------------------------------------------------------------------
    def _decide(self, request: decision_pb2.DecideRequest) -> dict[str, Any]:
        """Runs on a worker thread in the portfolio's turn; returns the stored payload (plus an "_alert" to
        publish, if any). The portfolio and its Engine come from the PortfolioCache when loaded before."""
        for name in ("portfolio_id", "account_id"):
            if not getattr(request, name):
                raise InvalidInputError.of(name, "must not be empty")
        symbol_in(request.symbol, "symbol")
        call = KeyedCall.of("Decide", request.portfolio_id, request)
        if call is not None:
            first = call.replay(self.store, decision_pb2.Decision)
            if first is not None:
                # The decision as it stands now (it may have been approved since), never another key's.
                return self._load_decision(first.decision_id)
        as_of = timestamp_in(request.as_of, "as_of")
        market = self.markets.resolve(request.market, as_of, (request.symbol,))  # snapshot, cache, history
        if request.symbol not in market.bars:
            raise InvalidInputError.of("market.symbols", f"holds no bars for the symbol {request.symbol!r}")
        repo = PortfolioRepository(self.store)
        cache = self._runtime().cache
        with cache.turn(request.portfolio_id):
            loaded = cache.get(request.portfolio_id)
            if loaded is None:
                stored = repo.load(request.portfolio_id)
                loaded = Loaded(stored, self._engine(stored))
            require_owner(loaded.stored.owner, "portfolio_id")
            try:
                payload, written = self._decide_loaded(request, as_of, market, call, repo, loaded)
            except BaseException:
                # The Engine and the portfolio may hold changes that were never written.
                cache.drop(request.portfolio_id)
                raise
            if not written:  # a concurrent twin's decision was answered: this one's changes were rolled back
                cache.drop(request.portfolio_id)
                return payload
            cache.put(request.portfolio_id, loaded)
        self.deps.metrics.decisions.labels(payload["outcome"], payload["action"]).inc()
        return payload

    def _decide_loaded(
        self,
        request: decision_pb2.DecideRequest,
        as_of: Any,
        market: Any,
        call: KeyedCall | None,
        repo: PortfolioRepository,
        loaded: Loaded,
    ) -> tuple[dict[str, Any], bool]:
        """Decides on a loaded portfolio and writes the decision with the engine state (and the alert, if any)
        in one durable unit with one audit entry. Returns the payload and whether this request's decision was
        written (False: a concurrent request with the same key decided first, and its decision is returned)."""
        stored, engine = loaded.stored, loaded.engine
        stored.portfolio.account(request.account_id)
        held = {p.symbol for p in stored.portfolio.positions.values()}
        market = self.markets.complete(market, held, as_of)
        missing = sorted(held - set(market.bars))
        if missing:
            raise InvalidInputError.of(
                "market.symbols", f"must include every symbol held: missing {', '.join(missing)}"
            )
        decision = engine.decide(stored.portfolio, request.account_id, request.symbol, as_of, market)
        if decision.outcome == "REJECTED" or decision.order is None:
            approval = "NOT_APPLICABLE" if decision.order is None else "REJECTED"
        else:
            approval = "PENDING" if decision.requires_approval else "AUTOMATIC"
        if approval == "AUTOMATIC":
            # Approved by the rules and by trust: the decision's effects (rate window, freezes, cuts) start now;
            # a pending one changes nothing until a person approves it (PROTOCOL section 10).
            engine.commit(decision, stored.portfolio)
        decision_id = uuid.uuid4().hex
        payload = decision_payload(decision, request.portfolio_id, decision_id, approval)
        payload["idempotency_key"] = request.idempotency_key
        stored.engine_state = engine.export_state()
        alert: dict[str, Any] | None = None
        if decision.outcome == "REJECTED" or decision.account_state != "ACTIVE":
            active = decision.account_state == "ACTIVE"
            failed = "; ".join(r.message for r in decision.compliance if not r.passed)
            alert = {
                "severity": "MEDIUM" if active else "CRITICAL",  # as the alert system names them
                "portfolio_id": request.portfolio_id,
                "account_id": request.account_id,
                "code": "DECISION_REJECTED" if active else f"ACCOUNT_{decision.account_state}",
                "message": failed or decision.explanation[-300:],
                "decision_id": decision_id,
            }
        who = actor()

        def record(tx: StoreTx) -> None:
            # The decisions table's unique key names the whole scope of the client's key (or is this decision's own).
            tx.record_decision(
                f"auto-{decision_id}" if call is None else call.column_key,
                payload,
                kind=decision.trust_kind,
                portfolio_id=request.portfolio_id,
                status=approval.lower(),
                decision_id=decision_id,
                account_id=request.account_id,
                actor=who,
            )
            if alert is not None:
                # In the same unit: a rejected decision and its alert are durable together, in one commit.
                raised = tx.raise_alert(
                    alert["code"].lower(),
                    alert["severity"].lower(),
                    alert,
                    portfolio_id=request.portfolio_id,
                    actor=who,
                )
                alert["alert_id"] = raised.id
                alert["at"] = raised.created_at

        response = decision_out(payload)
        answer = write_once(
            call, response, lambda claim: repo.save(stored, actor=who, extra=record, claim=claim), actor=who
        )
        if answer is not response:  # a concurrent request with the same key decided first
            return self._load_decision(answer.decision_id), False
        if alert is not None:
            payload = {**payload, "_alert": alert}
        return payload, True

    @rpc
    async def Decide(self, request: decision_pb2.DecideRequest, context: grpc.aio.ServicerContext) -> Any:
        check_deadline(context, need_seconds=0.01)
        payload = await self._in_turn(request.portfolio_id, self._decide, request)
        alert = payload.pop("_alert", None)
        if alert is not None:
            await alert_system(self.deps).deliver(alert)  # stored with the decision; streamed and routed here
        if payload.get("approval_status") == "AUTOMATIC":
            self._publish(payload)
        return decision_out(payload)

    def _publish(self, payload: dict[str, Any]) -> None:
        """Tells the bus topic "decisions" that a decision may be executed now (the broker places its orders)."""
        event = {k: payload.get(k) for k in ("decision_id", "portfolio_id", "account_id", "approval_status", "action")}
        with contextlib.suppress(BusClosedError):  # the service is stopping: the broker reconciles on start
            self.deps.bus.publish("decisions", event)

    # --- AssessRisk ---------------------------------------------------------------------------------------
    def _assess(self, request: decision_pb2.AssessRiskRequest) -> decision_pb2.RiskAssessment:
        as_of_time = timestamp_in(request.as_of, "as_of")
        market = self.markets.resolve(request.market, as_of_time, (request.symbol,))  # checked before any lookup
        as_of = as_of_time.date()
        confidence = request.confidence or 0.975
        if not 0.5 <= confidence < 1:
            raise InvalidInputError.of("confidence", f"must be in [0.5, 1), got {confidence}")
        stored = PortfolioRepository(self.store).load(request.portfolio_id)
        positions = list(stored.portfolio.positions.values())
        extra = None
        if request.HasField("proposed"):
            o = request.proposed
            kind = kind_in(o.kind, "proposed.kind")
            if not request.symbol or request.symbol not in market.bars:
                raise InvalidInputError.of("symbol", "must name a symbol of the market snapshot")
            if not 0 < o.contracts <= MAX_QUANTITY:
                raise InvalidInputError.of("proposed.contracts", f"must be in 1..{MAX_QUANTITY:.0f}, got {o.contracts}")
            strike = price_in(o.strike, "proposed.strike")
            expiry = date_in(o.expiry, "proposed.expiry")
            if expiry < as_of:
                raise InvalidInputError.of("proposed.expiry", "must not be before as_of")
            extra = Position(
                "proposed",
                request.account_id or "proposed",
                request.symbol,
                kind,
                -float(o.contracts),
                as_of,
                strike,
                expiry,
                float(money_in(o.limit_price, "proposed.limit_price", maximum=Decimal(int(MAX_PRICE)))),
                iv=market.iv_for(request.symbol),
            )
        symbols = sorted({p.symbol for p in positions} | ({extra.symbol} if extra else set()))
        market = self.markets.complete(market, symbols, as_of_time)
        missing = [s for s in symbols if s not in market.bars]
        if missing:
            raise InvalidInputError.of(
                "market.symbols", f"must include every symbol held: missing {', '.join(missing)}"
            )
        engine = self._engine(stored)
        if not symbols:
            zero = money_out(0)
            return decision_pb2.RiskAssessment(
                es_before=zero, es_after=zero, var_before=zero, var_after=zero, within_budget=True
            )
        base = engine.book_pnl(positions, market, as_of, symbols)
        after = base + (engine.book_pnl([extra], market, as_of, symbols) if extra else 0.0)
        es_b = risk.expected_shortfall(base, confidence) if positions else 0.0
        var_b = risk.value_at_risk(base, confidence) if positions else 0.0
        es_a = risk.expected_shortfall(after, confidence)
        var_a = risk.value_at_risk(after, confidence)
        equity = engine.portfolio_equity(stored.portfolio, market, as_of)
        budget = settings.default().doc.section("risk").number("es_budget_share")
        share = es_a / equity if equity > 0 else float("inf")
        return decision_pb2.RiskAssessment(
            es_before=money_out(es_b),
            es_after=money_out(es_a),
            var_before=money_out(var_b),
            var_after=money_out(var_a),
            es_share_of_equity=share,
            within_budget=share <= budget,
            scenarios=int(base.shape[0]),
            stress=[stress_out(r) for r in stress_portfolio(engine, stored.portfolio, market, as_of)],
        )

    @rpc
    async def AssessRisk(self, request: decision_pb2.AssessRiskRequest, context: grpc.aio.ServicerContext) -> Any:
        return await run_blocking(self._assess, request)

    # --- building blocks ------------------------------------------------------------------------------------
    async def _cached(self, method: str, request: Any, compute: Any, response_type: Any) -> Any:
        """The answer of a pure RPC, from the response cache when the same request was answered recently."""
        key = method.encode() + b"\0" + request.SerializeToString(deterministic=True)
        cache = self.deps.response_cache
        hit = cache.get(key)
        stats = cache.stats()
        self.deps.metrics.cache_hit_rate.set(stats["hits"] / max(1, stats["hits"] + stats["misses"]))
        if hit is not None:
            return response_type.FromString(hit)
        response = await compute()
        cache.put(key, response.SerializeToString())
        return response

    @rpc
    async def SizePosition(self, request: decision_pb2.SizePositionRequest, context: grpc.aio.ServicerContext) -> Any:
        async def compute() -> Any:
            return self._size(request)

        return await self._cached("SizePosition", request, compute, decision_pb2.SizePositionResponse)

    def _size(self, request: decision_pb2.SizePositionRequest) -> decision_pb2.SizePositionResponse:
        """PROTOCOL section 8 through the sizing facade. An absent multiplier is 1.0; a present 0 is zero contracts;
        an absent max_symbol_weight is the configured cap."""
        try:
            size = sizing.size_put(
                equity=money_in(request.equity, "equity"),
                free_cash=money_in(request.free_cash, "free_cash"),
                strike=price_in(request.strike, "strike"),
                target_share=request.size_share,
                max_symbol_weight=request.max_symbol_weight if request.HasField("max_symbol_weight") else None,
                existing_exposure=money_in(request.existing_exposure, "existing_exposure"),
                m_label=request.label_multiplier if request.HasField("label_multiplier") else 1.0,
                m_atr=request.atr_multiplier if request.HasField("atr_multiplier") else 1.0,
                m_drawdown=request.drawdown_multiplier if request.HasField("drawdown_multiplier") else 1.0,
                m_vix=request.vix_multiplier if request.HasField("vix_multiplier") else 1.0,
                allowed_exposure=request.allowed_exposure if request.HasField("allowed_exposure") else 1.0,
            )
        except InvalidInputError as exc:
            field = _SIZE_FIELDS.get(exc.field or "")
            if field is None:
                raise
            raise InvalidInputError.of(field, exc.reason or str(exc)) from None
        return decision_pb2.SizePositionResponse(
            budget=money_out(size.budget), contracts=size.contracts, binding=size.binding.value
        )

    def _select(self, request: decision_pb2.SelectStrikeRequest) -> decision_pb2.SelectStrikeResponse:
        kind = kind_in(request.kind, "kind")
        price_in(request.spot, "spot")
        number_in(request.t, "t", low=0.0, high=30.0, low_open=True)
        number_in(request.rate, "rate", low=-MAX_RATE, high=MAX_RATE)
        for name in ("band_low", "band_high", "target"):
            number_in(getattr(request, name), name, low=0.0, high=100.0)
        target = request.target or (request.band_low + request.band_high) / 2
        if request.chain:
            if len(request.chain) > MAX_CHAIN:
                raise InvalidInputError.of("chain", f"must hold at most {MAX_CHAIN} quotes, got {len(request.chain)}")
            quotes = [
                quote_in(q, f"chain[{j}]")
                for j, q in enumerate(request.chain)
                if kind_in(q.kind, f"chain[{j}].kind") == kind
            ]
            if not quotes:
                raise InvalidInputError.of("chain", f"holds no {kind} quotes")
            strikes = np.array([q.strike for q in quotes], dtype=np.float64)
            ivs = np.array([q.iv for q in quotes], dtype=np.float64)
            greeks = pricing.bs_greeks(kind, request.spot, strikes, request.t, ivs, request.rate)
            deltas = np.ascontiguousarray(np.abs(np.asarray(greeks["delta"], dtype=np.float64)) * 100)
            picked = _core.select_strike(kind, strikes, deltas, request.band_low, request.band_high, target)
            if picked is None:
                return decision_pb2.SelectStrikeResponse(found=False)
            return decision_pb2.SelectStrikeResponse(found=True, strike=picked[1], delta=picked[2])
        number_in(request.iv, "iv", low=0.0, high=MAX_IV, low_open=True)
        grid = settings.strike_grid(settings.default().doc)
        chosen = _core.select_synthetic_strike(
            kind,
            request.spot,
            request.t,
            request.iv,
            request.rate,
            0.0,
            request.band_low,
            request.band_high,
            target,
            grid,
        )
        if chosen is None:
            return decision_pb2.SelectStrikeResponse(found=False)
        return decision_pb2.SelectStrikeResponse(found=True, strike=chosen[0], delta=chosen[1])

    @rpc
    async def SelectStrike(self, request: decision_pb2.SelectStrikeRequest, context: grpc.aio.ServicerContext) -> Any:
        async def compute() -> Any:
            return await run_blocking(self._select, request)

        return await self._cached("SelectStrike", request, compute, decision_pb2.SelectStrikeResponse)

    @rpc
    async def ClassifyWeek(self, request: decision_pb2.ClassifyWeekRequest, context: grpc.aio.ServicerContext) -> Any:
        async def compute() -> Any:
            return self._classify(request)

        return await self._cached("ClassifyWeek", request, compute, decision_pb2.ClassifyWeekResponse)

    def _classify(self, request: decision_pb2.ClassifyWeekRequest) -> decision_pb2.ClassifyWeekResponse:
        move = number_in(request.move_pct, "move_pct", low=-100.0, high=10_000.0)
        w = describe_week(request.position, move, request.roll_available)
        return decision_pb2.ClassifyWeekResponse(
            code=w.code,
            name=w.name,
            action=w.action,
            expected_return_low_pct=w.expected_return_pct[0],
            expected_return_high_pct=w.expected_return_pct[1],
            confidence=w.confidence,
        )

    @rpc
    async def CheckCompliance(
        self, request: decision_pb2.CheckComplianceRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        context_data = json_object_in(request.context_json, "context_json")
        result = self.rules.evaluate(context_data)
        return decision_pb2.ComplianceReport(
            results=[
                decision_pb2.RuleResult(code=r.code, severity=SEVERITY[r.severity], passed=r.passed, message=r.message)
                for r in result.results
            ],
            outcome=OUTCOME[result.outcome],
        )

    # --- approval and outcomes -------------------------------------------------------------------------------
    def _load_decision(self, decision_id: str) -> dict[str, Any]:
        if not decision_id:
            raise InvalidInputError.of("decision_id", "must not be empty")
        record = self.store.get_decision(decision_id)
        if record is None:
            raise NotFoundError(f"decision_id: no decision {decision_id!r}")
        return dict(record.payload)

    def _portfolio_of(self, decision_id: str) -> str:
        """The portfolio a decision belongs to (whose turn an approval or outcome takes)."""
        return str(self._load_decision(decision_id).get("portfolio_id") or "")

    def _approve(self, request: decision_pb2.ApproveDecisionRequest) -> decision_pb2.Decision:
        payload = self._load_decision(request.decision_id)
        repo = PortfolioRepository(self.store)
        stored = repo.load(payload["portfolio_id"])
        require_owner(stored.owner, "decision_id")
        call = KeyedCall.of("ApproveDecision", payload["portfolio_id"], request)
        if call is not None:
            first = call.replay(self.store, decision_pb2.Decision)
            if first is not None:
                return first
        if payload["approval_status"] != "PENDING":
            raise FailedPreconditionError(
                f"decision_id: {request.decision_id} is {payload['approval_status']}, not PENDING approval"
            )
        payload["approval_status"] = "APPROVED" if request.approve else "DECLINED"
        payload["approval_note"] = text_in(request.note, "note", max_length=2000)
        status = payload["approval_status"].lower()
        who = actor()  # read here: a write unit runs on the store's writer thread, outside the request's context

        def record(tx: StoreTx) -> None:
            # Conditional on the status still being pending, in the same transaction: of two concurrent approvals
            # (or an approval and a decline) one wins, the other changes nothing.
            try:
                tx.update_decision(
                    request.decision_id, status=status, payload=payload, expected_status="pending", actor=who
                )
            except StoreConflictError:
                raise FailedPreconditionError(
                    f"decision_id: {request.decision_id} was approved or declined meanwhile, not PENDING approval"
                ) from None

        effects = payload.get("effects")
        if request.approve and effects:
            # The approved decision's effects start now; a declined one leaves no trace.
            engine = self._engine(stored)
            engine.apply_effects(Effects.from_json(effects), stored.portfolio)
            stored.engine_state = engine.export_state()

            def write(claim: Claim | None) -> None:
                repo.save(stored, actor=actor(), extra=record, claim=claim)

        else:

            def write(claim: Claim | None) -> None:
                def unit(tx: StoreTx) -> None:
                    if claim is not None:
                        claim(tx)
                    record(tx)

                self.store.write(unit)

        return write_once(call, decision_out(payload), write, actor=actor())

    @rpc
    async def ApproveDecision(
        self, request: decision_pb2.ApproveDecisionRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        portfolio_id = await run_blocking(self._portfolio_of, request.decision_id)
        decision = await self._in_turn(portfolio_id, self._approve, request)
        if decision.approval_status == "APPROVED":
            self._publish({"decision_id": decision.decision_id, "portfolio_id": decision.portfolio_id,
                           "account_id": decision.account_id, "approval_status": "APPROVED"})  # fmt: skip
        return decision

    def _outcome(self, request: decision_pb2.RecordOutcomeRequest) -> decision_pb2.RecordOutcomeResponse:
        payload = self._load_decision(request.decision_id)
        repo = PortfolioRepository(self.store)
        stored = repo.load(payload["portfolio_id"])
        require_owner(stored.owner, "decision_id")
        call = KeyedCall.of("RecordOutcome", payload["portfolio_id"], request)
        if call is not None:
            first = call.replay(self.store, decision_pb2.RecordOutcomeResponse)
            if first is not None:
                return first
        at = timestamp_in(request.at, "at")
        pnl = money_in(request.realised_pnl, "realised_pnl")
        reported = {"right": request.right, "realised_pnl": str(pnl)}
        if request.HasField("at"):
            reported["at"] = at.isoformat()
        # A decision has one outcome, kept under an id derived from it: a report repeated without a key is answered
        # from the stored outcome instead of moving trust a second time.
        outcome_id = f"{request.decision_id}/outcome"
        existing = self.store.get_outcome(outcome_id) or next(
            iter(self.store.list_outcomes(request.decision_id, limit=1)), None
        )
        if existing is not None:
            return self._recorded_outcome(request.decision_id, payload, existing.payload, reported)
        engine = self._engine(stored)
        trust = engine.trust.record(payload["trust_kind"], request.right, float(payload["confidence"]), at.date())
        stored.engine_state = engine.export_state()
        outcome = {"right": request.right, "realised_pnl": str(pnl), "at": at.isoformat(), "trust_after": trust}
        who = actor()  # read here: a write unit runs on the store's writer thread, outside the request's context

        def record(tx: StoreTx) -> None:
            rec = tx.record_outcome(request.decision_id, outcome, outcome_id=outcome_id, actor=who)
            if rec.replayed:
                raise _OutcomeExistsError(rec.payload)

        response = decision_pb2.RecordOutcomeResponse(trust_kind=payload["trust_kind"], trust=trust)
        try:
            return write_once(
                call,
                response,
                lambda claim: repo.save(stored, actor=actor(), extra=record, claim=claim),
                actor=actor(),
            )
        except _OutcomeExistsError as exists:
            return self._recorded_outcome(request.decision_id, payload, exists.outcome, reported)

    @staticmethod
    def _recorded_outcome(
        decision_id: str, decision: dict[str, Any], outcome: dict[str, Any], reported: dict[str, Any]
    ) -> decision_pb2.RecordOutcomeResponse:
        """The answer for an outcome reported again: the stored one if the report matches it, else refused."""
        if any(outcome.get(k) != v for k, v in reported.items()):
            raise FailedPreconditionError(
                f"decision_id: {decision_id} has an outcome already (right={outcome.get('right')}, "
                f"realised_pnl={outcome.get('realised_pnl')}); a decision has one outcome"
            )
        return decision_pb2.RecordOutcomeResponse(
            trust_kind=decision["trust_kind"], trust=float(outcome.get("trust_after", 0.0))
        )

    @rpc
    async def RecordOutcome(self, request: decision_pb2.RecordOutcomeRequest, context: grpc.aio.ServicerContext) -> Any:
        portfolio_id = await run_blocking(self._portfolio_of, request.decision_id)
        return await self._in_turn(portfolio_id, self._outcome, request)


def decision_servicer(deps: ServiceDeps) -> DecisionServicer:
    """The one DecisionServicer of a service: the gRPC binding and the operator page's approvals (allsuse.web) call
    the same object, so an approval clicked on the page runs ApproveDecision itself."""
    found = vars(deps).get("_decision_servicer")
    if isinstance(found, DecisionServicer):
        return found
    servicer = DecisionServicer(deps)
    vars(deps)["_decision_servicer"] = servicer
    return servicer


def bindings(deps: ServiceDeps) -> list[ServiceBinding]:
    """The DecisionService binding for `allsuse serve`."""
    servicer = decision_servicer(deps)
    return [
        ServiceBinding(
            "allsuse.v1.DecisionService",
            lambda server: decision_pb2_grpc.add_DecisionServiceServicer_to_server(servicer, server),
            ROLES,
        )
    ]


__all__ = ["DecisionServicer", "bindings", "decision_servicer"]
