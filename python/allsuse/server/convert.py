"""Translation between allsuse.v1 messages and the protocol's objects. Servicers call these; nothing else
touches generated code. Every refusal is an InvalidInputError naming the request field."""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from allsuse.errors import InvalidInputError
from allsuse.protocol.engine import Decision, Order
from allsuse.protocol.market import Bars, MarketData, OptionQuote
from allsuse.v1 import common_pb2, decision_pb2

CENT = Decimal("0.01")
ACTION = {
    name: getattr(decision_pb2, f"ACTION_{name}")
    for name in ("OPEN_PUT", "OPEN_CALL", "ROLL", "CLOSE", "HOLD", "ACCEPT_ASSIGNMENT", "REDUCE", "NO_TRADE")
}
OUTCOME = {
    name: getattr(decision_pb2, f"OUTCOME_{name}")
    for name in ("APPROVED", "APPROVED_WITH_WARNINGS", "REQUIRES_APPROVAL", "REJECTED")
}
SEVERITY = {
    "MEDIUM": decision_pb2.SEVERITY_MEDIUM,
    "HIGH": decision_pb2.SEVERITY_HIGH,
    "CRITICAL": decision_pb2.SEVERITY_CRITICAL,
}
KIND_IN = {common_pb2.OPTION_KIND_CALL: "call", common_pb2.OPTION_KIND_PUT: "put"}
KIND_OUT = {
    "call": common_pb2.OPTION_KIND_CALL,
    "put": common_pb2.OPTION_KIND_PUT,
    "stock": common_pb2.OPTION_KIND_STOCK,
}


def money_out(value: float | Decimal) -> common_pb2.Money:
    """A Money message from a float or Decimal, rounded half-even to the cent."""
    d = value if isinstance(value, Decimal) else Decimal(repr(float(value))) if math.isfinite(value) else Decimal(0)
    cents = int(d.quantize(CENT, rounding=ROUND_HALF_EVEN) * 100)
    units, rest = divmod(abs(cents), 100)
    sign = -1 if cents < 0 else 1
    return common_pb2.Money(currency_code="USD", units=sign * units, cents=sign * rest)


def money_in(m: common_pb2.Money, field: str, *, positive: bool = False, allow_zero: bool = True) -> Decimal:
    """The exact amount of a Money field; cents in [-99, 99] with the sign of units, USD only."""
    if m.currency_code not in ("", "USD"):
        raise InvalidInputError.of(f"{field}.currency_code", f"must be USD, got {m.currency_code!r}")
    if not -99 <= m.cents <= 99:
        raise InvalidInputError.of(f"{field}.cents", f"must be in [-99, 99], got {m.cents}")
    if m.units and m.cents and (m.units > 0) != (m.cents > 0):
        raise InvalidInputError.of(f"{field}.cents", "must have the same sign as units")
    value = Decimal(m.units) + Decimal(m.cents) / 100
    if positive and value <= 0 and not (allow_zero and value == 0):
        raise InvalidInputError.of(field, f"must be > 0, got {value}")
    return value


def timestamp_in(ts: Timestamp, field: str, *, default_now: bool = True) -> dt.datetime:
    """A naive US/Eastern-agnostic datetime from a Timestamp (unset: now, UTC)."""
    if ts.seconds == 0 and ts.nanos == 0:
        if not default_now:
            raise InvalidInputError.of(field, "is required")
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        return ts.ToDatetime()
    except (ValueError, OverflowError):
        raise InvalidInputError.of(field, "is not a valid timestamp") from None


def timestamp_out(when: dt.datetime) -> Timestamp:
    """A Timestamp from a naive (UTC) datetime."""
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def date_in(text: str, field: str) -> dt.date:
    """An ISO date field."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError.of(field, f"must be an ISO date YYYY-MM-DD, got {text!r}") from None


def _finite(x: float, field: str, *, positive: bool = False) -> float:
    if not math.isfinite(x) or (positive and x <= 0):
        raise InvalidInputError.of(field, f"must be a finite number{' > 0' if positive else ''}, got {x}")
    return x


def market_in(snapshot: decision_pb2.MarketSnapshot, field: str = "market") -> MarketData:
    """MarketData from a snapshot: bars sorted by date, positive prices, a positive IV per symbol."""
    if not snapshot.symbols:
        raise InvalidInputError.of(f"{field}.symbols", "must hold at least the symbol decided on")
    bars: dict[str, Bars] = {}
    ivs: dict[str, float] = {}
    sectors: dict[str, str] = {}
    chains: dict[str, dict[str, list[OptionQuote]]] = {}
    earnings: dict[str, list[dt.date]] = {}
    for i, sm in enumerate(snapshot.symbols):
        at = f"{field}.symbols[{i}]"
        if not sm.symbol:
            raise InvalidInputError.of(f"{at}.symbol", "must not be empty")
        if not sm.bars:
            raise InvalidInputError.of(f"{at}.bars", "must hold daily bars, oldest first")
        dates: list[dt.date] = []
        rows = np.empty((len(sm.bars), 5))
        for j, b in enumerate(sm.bars):
            day = date_in(b.date, f"{at}.bars[{j}].date")
            if dates and day <= dates[-1]:
                raise InvalidInputError.of(f"{at}.bars[{j}].date", f"{day} is not after {dates[-1]} (oldest first)")
            dates.append(day)
            for k, (name, value) in enumerate(
                (("open", b.open), ("high", b.high), ("low", b.low), ("close", b.close), ("volume", b.volume))
            ):
                rows[j, k] = _finite(value, f"{at}.bars[{j}].{name}", positive=name != "volume")
            if b.high < b.low:
                raise InvalidInputError.of(f"{at}.bars[{j}].high", "is below low")
        bars[sm.symbol] = Bars(
            tuple(dates), rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy(), rows[:, 3].copy(), rows[:, 4].copy()
        )
        ivs[sm.symbol] = _finite(sm.iv, f"{at}.iv", positive=True)
        sectors[sm.symbol] = sm.sector or "unknown"
        if sm.chain:
            by_kind: dict[str, list[OptionQuote]] = {"call": [], "put": []}
            for j, q in enumerate(sm.chain):
                if q.kind not in KIND_IN:
                    raise InvalidInputError.of(f"{at}.chain[{j}].kind", "must be OPTION_KIND_CALL or OPTION_KIND_PUT")
                by_kind[KIND_IN[q.kind]].append(
                    OptionQuote(
                        _finite(q.strike, f"{at}.chain[{j}].strike", positive=True),
                        _finite(q.bid, f"{at}.chain[{j}].bid"),
                        _finite(q.ask, f"{at}.chain[{j}].ask"),
                        _finite(q.iv, f"{at}.chain[{j}].iv", positive=True),
                        q.open_interest,
                        q.volume,
                    )
                )
            chains[sm.symbol] = by_kind
        if sm.earnings_dates:
            earnings[sm.symbol] = [date_in(d, f"{at}.earnings_dates[{j}]") for j, d in enumerate(sm.earnings_dates)]
    vix = None
    if snapshot.HasField("vix"):
        vix = _finite(snapshot.vix, f"{field}.vix")
        if vix < 0:
            raise InvalidInputError.of(f"{field}.vix", f"must be >= 0, got {vix}")
    rate = _finite(snapshot.rate, f"{field}.rate")
    return MarketData(bars, ivs, vix, rate, sectors, chains, earnings or None)


def order_out(o: Order | None) -> decision_pb2.Order | None:
    """The Order message of a decision's order."""
    if o is None:
        return None
    return decision_pb2.Order(
        kind=KIND_OUT.get(o.kind, common_pb2.OPTION_KIND_UNSPECIFIED),
        side=o.side,
        strike=o.strike,
        expiry=o.expiry.isoformat() if o.expiry else "",
        contracts=o.contracts,
        limit_price=money_out(o.limit_price),
        delta=o.delta,
        premium=money_out(o.premium),
    )


def _order_payload(o: Order) -> dict[str, Any]:
    return {
        "kind": o.kind,
        "side": o.side,
        "strike": o.strike,
        "expiry": o.expiry.isoformat() if o.expiry else "",
        "contracts": o.contracts,
        "limit_price": o.limit_price,
        "delta": o.delta,
        "premium": o.premium,
        "band": list(o.band) if o.band else None,
    }


def decision_payload(d: Decision, portfolio_id: str, decision_id: str, approval: str) -> dict[str, Any]:
    """The stored form of a decision (JSON-ready), with its effects for when it is approved."""
    o = d.order
    return {
        "decision_id": decision_id,
        "portfolio_id": portfolio_id,
        "account_id": d.account_id,
        "symbol": d.symbol,
        "as_of": d.as_of.isoformat(),
        "label": d.label,
        "label_confidence": d.label_confidence,
        "week_type": d.week_type or "",
        "protocol_level": d.protocol_level,
        "action": d.action,
        "order": None if o is None else _order_payload(o),
        "orders": [_order_payload(c) for c in d.orders],
        "es_before": d.es_before,
        "es_after": d.es_after,
        "compliance": [[r.code, r.severity, r.passed, r.message] for r in d.compliance],
        "outcome": d.outcome,
        "requires_approval": d.requires_approval,
        "confidence": d.confidence,
        "trust_kind": d.trust_kind,
        "explanation": d.explanation,
        "account_state": d.account_state,
        "approval_status": approval,
        "idempotency_key": d.idempotency_key or "",
        "position_id": d.position_id,
        "warnings": list(d.warnings),
        "vol_source": d.vol_source,
        "iv_source": d.iv_source,
        "effects": d.effects.to_json() if d.effects is not None else None,
    }


def _order_out(o: dict[str, Any]) -> decision_pb2.Order:
    return decision_pb2.Order(
        kind=KIND_OUT.get(o["kind"], common_pb2.OPTION_KIND_UNSPECIFIED),
        side=o["side"],
        strike=o["strike"],
        expiry=o["expiry"],
        contracts=o["contracts"],
        limit_price=money_out(o["limit_price"]),
        delta=o["delta"],
        premium=money_out(o["premium"]),
    )


def decision_out(p: dict[str, Any]) -> decision_pb2.Decision:
    """The Decision message of a stored decision payload (payloads stored before v2 have no orders/warnings)."""
    o = p.get("order")
    order = _order_out(o) if o else None
    return decision_pb2.Decision(
        decision_id=p["decision_id"],
        portfolio_id=p["portfolio_id"],
        account_id=p["account_id"],
        symbol=p["symbol"],
        as_of=timestamp_out(dt.datetime.fromisoformat(p["as_of"])),
        market_label=p["label"],
        label_confidence=p["label_confidence"],
        week_type=p["week_type"],
        protocol_level=p["protocol_level"],
        action=ACTION[p["action"]],
        order=order,
        es_before=money_out(p["es_before"]),
        es_after=money_out(p["es_after"]),
        compliance=[
            decision_pb2.RuleResult(code=c, severity=SEVERITY[s], passed=ok, message=m)
            for c, s, ok, m in p["compliance"]
        ],
        outcome=OUTCOME[p["outcome"]],
        requires_approval=p["requires_approval"],
        confidence=p["confidence"],
        explanation=p["explanation"],
        trust_kind=p["trust_kind"],
        account_state=p["account_state"],
        approval_status=p["approval_status"],
        idempotency_key=p["idempotency_key"],
        orders=[_order_out(c) for c in p.get("orders") or ([o] if o else [])],
        warnings=p.get("warnings") or [],
        vol_source=p.get("vol_source", "vix"),
        iv_source=p.get("iv_source", "given"),
    )
