"""Translation between allsuse.v1 messages and the protocol's objects. Servicers call these; nothing else
touches generated code. Every refusal is an InvalidInputError naming the request field.

This is also the one place where a request's numbers meet their bounds (docs/api.md, "Limits"): money within
+-MAX_AMOUNT, prices and strikes within MAX_PRICE, quantities within MAX_QUANTITY, finite doubles, and a market
snapshot of at most MAX_SYMBOLS symbols, MAX_BARS bars and MAX_CHAIN quotes per symbol. Whatever passes them can
be stored and always converts back to a Money message.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from allsuse import _core
from allsuse.errors import InvalidInputError
from allsuse.protocol.accounts import Portfolio
from allsuse.protocol.engine import Decision, Order
from allsuse.protocol.market import Bars, MarketData, OptionQuote
from allsuse.protocol.stress import StressResult
from allsuse.v1 import common_pb2, decision_pb2

CENT = Decimal("0.01")
INT64_MAX = 2**63 - 1
MAX_AMOUNT = Decimal(10**12)
"""The largest amount of money (USD, either sign) a request may carry and an account may hold: $1 trillion."""
MAX_PRICE = 10_000_000.0
"""The largest price per share or contract unit, strike, spot or bar price: $10 million."""
MAX_QUANTITY = 10_000_000.0
"""The most contracts or shares one fill may trade."""
MAX_VOLUME = 1e15
"""The largest traded volume or open interest of a bar or quote."""
MAX_SYMBOLS = 50
"""Symbols per market snapshot."""
MAX_BARS = 5_000
"""Daily bars per symbol (about 20 years)."""
MAX_CHAIN = 2_000
"""Option quotes per symbol (and per SelectStrike request)."""
MAX_EARNINGS_DATES = 100
"""Earnings dates per symbol."""
MAX_SYMBOL_LENGTH = 32
MAX_TEXT = 500
"""Free text a request stores (a withdrawal's reason, a sector)."""
MAX_IV = 10.0
"""The largest implied volatility (1000% a year)."""
MAX_RATE = 1.0
"""The largest interest rate in absolute value (100% a year)."""
MAX_VIX = 1000.0
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
    """A Money message from a float or Decimal, rounded half-even to the cent (not finite: zero).

    Every amount the service stores lies within +-MAX_AMOUNT (money_in and check_amounts refuse the rest), so a
    stored value always fits; a computed value beyond Money's int64 units is an OverflowError (a server bug)."""
    d = value if isinstance(value, Decimal) else Decimal(repr(float(value))) if math.isfinite(value) else Decimal(0)
    if not d.is_finite():
        d = Decimal(0)
    cents = int(d.quantize(CENT, rounding=ROUND_HALF_EVEN) * 100)
    units, rest = divmod(abs(cents), 100)
    if units > INT64_MAX:
        raise OverflowError(f"{d} does not fit a Money message")
    sign = -1 if cents < 0 else 1
    return common_pb2.Money(currency_code="USD", units=sign * units, cents=sign * rest)


def stress_out(result: StressResult) -> decision_pb2.StressResult:
    """A StressResult message (allsuse.protocol.stress)."""
    window = result.window
    return decision_pb2.StressResult(
        scenario=result.scenario,
        pnl=money_out(result.pnl),
        share_of_equity=result.share_of_equity,
        accounts=[
            decision_pb2.AccountStress(
                account_id=a, pnl=money_out(v), share_of_equity=result.account_shares.get(a, 0.0)
            )
            for a, v in result.accounts.items()
        ],
        historical=result.historical,
        window_start=window[0].isoformat() if window else "",
        window_end=window[1].isoformat() if window else "",
    )


def money_fits(value: float | Decimal) -> bool:
    """Whether money_out can carry `value` (finite, with int64 units)."""
    try:
        d = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    except (ValueError, ArithmeticError):
        return False
    return d.is_finite() and abs(d) < INT64_MAX


def money_in(
    m: common_pb2.Money,
    field: str,
    *,
    positive: bool = False,
    allow_zero: bool = True,
    maximum: Decimal = MAX_AMOUNT,
) -> Decimal:
    """The exact amount of a Money field; cents in [-99, 99] with the sign of units, USD only, and at most
    `maximum` (MAX_AMOUNT unless a tighter bound applies) in absolute value."""
    if m.currency_code not in ("", "USD"):
        raise InvalidInputError.of(f"{field}.currency_code", f"must be USD, got {text_preview(m.currency_code)}")
    if not -99 <= m.cents <= 99:
        raise InvalidInputError.of(f"{field}.cents", f"must be in [-99, 99], got {m.cents}")
    if m.units and m.cents and (m.units > 0) != (m.cents > 0):
        raise InvalidInputError.of(f"{field}.cents", "must have the same sign as units")
    value = Decimal(m.units) + Decimal(m.cents) / 100
    if abs(value) > maximum:
        raise InvalidInputError.of(field, f"must be at most {maximum:f} USD in absolute value, got {value}")
    if positive and value <= 0 and not (allow_zero and value == 0):
        raise InvalidInputError.of(field, f"must be > 0, got {value}")
    return value


def text_preview(text: str, limit: int = 40) -> str:
    """A short repr of client text for an error message."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def text_in(text: str, field: str, *, max_length: int = MAX_TEXT, required: bool = False) -> str:
    """Client text that is stored: at most `max_length` characters, no control characters (NUL included)."""
    if required and not text.strip():
        raise InvalidInputError.of(field, "must not be empty")
    if len(text) > max_length:
        raise InvalidInputError.of(field, f"must be at most {max_length} characters, got {len(text)}")
    if any((ord(c) < 32 and c not in "\t\n") or ord(c) == 127 for c in text):
        raise InvalidInputError.of(field, "must not hold control characters")
    return text


def symbol_in(text: str, field: str, *, required: bool = True) -> str:
    """A ticker symbol: 1..MAX_SYMBOL_LENGTH printable characters without spaces."""
    if not text:
        if required:
            raise InvalidInputError.of(field, "must not be empty")
        return text
    if len(text) > MAX_SYMBOL_LENGTH or not text.isprintable() or any(c.isspace() for c in text):
        raise InvalidInputError.of(
            field, f"must be at most {MAX_SYMBOL_LENGTH} printable characters without spaces, got {text_preview(text)}"
        )
    return text


def number_in(
    x: float,
    field: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """A finite double within [low, high] (or (low, high] with `low_open`)."""
    if not math.isfinite(x):
        raise InvalidInputError.of(field, f"must be a finite number, got {x}")
    if low is not None and (x < low or (low_open and x == low)):
        raise InvalidInputError.of(field, f"must be {'>' if low_open else '>='} {low:g}, got {x:g}")
    if high is not None and x > high:
        raise InvalidInputError.of(field, f"must be <= {high:g}, got {x:g}")
    return x


def price_in(x: float, field: str) -> float:
    """A price, strike or spot: finite, > 0 and at most MAX_PRICE."""
    return number_in(x, field, low=0.0, high=MAX_PRICE, low_open=True)


def quantity_in(x: float, field: str) -> float:
    """A whole number of contracts or shares in 1..MAX_QUANTITY."""
    if not math.isfinite(x) or x <= 0 or x != int(x) or x > MAX_QUANTITY:
        raise InvalidInputError.of(field, f"must be a whole number in 1..{MAX_QUANTITY:.0f}, got {x:g}")
    return x


def amount_fits(value: Decimal, field: str, what: str) -> Decimal:
    """Refuses (naming the request `field`) a computed amount beyond +-MAX_AMOUNT, before it is stored."""
    if not value.is_finite() or abs(value) > MAX_AMOUNT:
        raise InvalidInputError.of(field, f"{what} would be {value:f} USD, beyond the limit of {MAX_AMOUNT:f}")
    return value


def check_amounts(portfolio: Portfolio, field: str) -> None:
    """Refuses a write that would leave any stored amount of `portfolio` beyond +-MAX_AMOUNT (or a price beyond
    MAX_PRICE), naming the request field that caused it; call it before saving."""
    for a in portfolio.accounts.values():
        for name in ("balance", "base", "peak", "leaps", "quarter_realised"):
            amount_fits(getattr(a, name), field, f"{a.id} {name}")
    for t in portfolio.transactions:
        amount_fits(t.amount, field, f"a {t.kind} transaction of {t.account_id}")
    for x in portfolio.positions.values():
        for name in ("strike", "premium", "cost_basis"):
            value = getattr(x, name)
            if value is not None and not (math.isfinite(value) and abs(value) <= MAX_PRICE):
                raise InvalidInputError.of(field, f"position {x.id} {name} would be {value:g}, beyond {MAX_PRICE:g}")


MAX_JSON_BYTES = 65_536
"""The largest JSON document a request may carry (CheckCompliance's context_json)."""
MAX_JSON_DEPTH = 16
MAX_JSON_DIGITS = 30


def _json_number(text: str) -> float:
    if len(text) > MAX_JSON_DIGITS:
        raise ValueError(f"a number of more than {MAX_JSON_DIGITS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"a number beyond the range of a double ({text[:20]})")
    return value


def _json_integer(text: str) -> int:
    if len(text) > MAX_JSON_DIGITS:
        raise ValueError(f"a number of more than {MAX_JSON_DIGITS} digits")
    return int(text)


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_depth(value: Any) -> int:
    depth, level = 0, [(value, 1)]
    while level:
        item, d = level.pop()
        depth = max(depth, d)
        if depth > MAX_JSON_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        level.extend((child, d + 1) for child in children)
    return depth


def json_object_in(text: str, field: str) -> dict[str, Any]:
    """A JSON object from client text: at most MAX_JSON_BYTES, MAX_JSON_DEPTH levels deep, numbers of at most
    MAX_JSON_DIGITS characters that are finite doubles (no NaN or Infinity)."""
    if len(text) > MAX_JSON_BYTES:
        raise InvalidInputError.of(field, f"must be at most {MAX_JSON_BYTES} characters, got {len(text)}")
    try:
        value = json.loads(text, parse_float=_json_number, parse_int=_json_integer, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInputError.of(field, f"is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise InvalidInputError.of(field, f"must be at most {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise InvalidInputError.of(field, f"is not acceptable JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInputError.of(field, "must be a JSON object")
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise InvalidInputError.of(field, f"must be at most {MAX_JSON_DEPTH} levels deep")
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


@dataclass(frozen=True)
class SymbolData:
    """One SymbolMarket, checked and converted: `bars` None when it carried none (the server's history fills
    them in), `iv` None when it carried none (0) and no bars either."""

    bars: Bars | None
    iv: float | None
    sector: str
    chain: dict[str, list[OptionQuote]] | None
    earnings: list[dt.date] | None


def _bars_from_messages(sm: decision_pb2.SymbolMarket, at: str) -> Bars:
    """Bars from `Bar` messages, one by one (the form old clients send; `columns` is the fast one)."""
    dates: list[dt.date] = []
    rows = np.empty((len(sm.bars), 5))
    for j, b in enumerate(sm.bars):
        day = date_in(b.date, f"{at}.bars[{j}].date")
        if dates and day <= dates[-1]:
            raise InvalidInputError.of(f"{at}.bars[{j}].date", f"{day} is not after {dates[-1]} (oldest first)")
        dates.append(day)
        for k, name in enumerate(("open", "high", "low", "close")):
            rows[j, k] = price_in(getattr(b, name), f"{at}.bars[{j}].{name}")
        rows[j, 4] = number_in(b.volume, f"{at}.bars[{j}].volume", low=0.0, high=MAX_VOLUME)
        if b.high < b.low:
            raise InvalidInputError.of(f"{at}.bars[{j}].high", "is below low")
    return Bars(
        tuple(dates), rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy(), rows[:, 3].copy(), rows[:, 4].copy()
    )


def bars_from_columns(data: bytes, field: str, *, tag: int = 0, max_bars: int = MAX_BARS) -> tuple[Bars | None, bool]:
    """Bars from the serialized message `data` holding a BarColumns under field number `tag` (0: `data` is one),
    read and checked in the core (no Python loop; errors name `field`); None when it holds no bars. The flag says
    whether the message also held `bars` entries (field 2 of a SymbolMarket)."""
    days, o, h, lo, c, v, has_bars = _core.bar_columns(data, field, max_bars, tag, 2 if tag == 7 else 0)
    if not len(days):
        return None, has_bars
    return Bars.from_days(days, o, h, lo, c, v), has_bars


def symbol_data_in(sm: decision_pb2.SymbolMarket, at: str, serialized: bytes | None = None) -> SymbolData:
    """One SymbolMarket checked and converted (`at` names it, e.g. "market.symbols[0]"); `serialized` is its
    wire form when the caller has it (the columns are read from it)."""
    symbol_in(sm.symbol, f"{at}.symbol")
    if len(sm.bars) > MAX_BARS:
        raise InvalidInputError.of(f"{at}.bars", f"must hold at most {MAX_BARS} bars, got {len(sm.bars)}")
    if len(sm.chain) > MAX_CHAIN:
        raise InvalidInputError.of(f"{at}.chain", f"must hold at most {MAX_CHAIN} quotes, got {len(sm.chain)}")
    if len(sm.earnings_dates) > MAX_EARNINGS_DATES:
        raise InvalidInputError.of(f"{at}.earnings_dates", f"must hold at most {MAX_EARNINGS_DATES} dates")
    bars: Bars | None = None
    if sm.HasField("columns"):
        if sm.bars:
            raise InvalidInputError.of(f"{at}.columns", "must not be sent together with bars: send one form")
        data = serialized if serialized is not None else sm.columns.SerializeToString()
        bars, _ = bars_from_columns(data, f"{at}.columns", tag=7 if serialized is not None else 0)
    elif sm.bars:
        bars = _bars_from_messages(sm, at)
    iv: float | None = None
    if bars is not None or sm.iv != 0:
        iv = number_in(sm.iv, f"{at}.iv", low=0.0, high=MAX_IV, low_open=True)
    sector = text_in(sm.sector, f"{at}.sector", max_length=64) or "unknown"
    chain: dict[str, list[OptionQuote]] | None = None
    if sm.chain:
        chain = {"call": [], "put": []}
        for j, q in enumerate(sm.chain):
            chain[kind_in(q.kind, f"{at}.chain[{j}].kind")].append(quote_in(q, f"{at}.chain[{j}]"))
    earnings = None
    if sm.earnings_dates:
        earnings = [date_in(d, f"{at}.earnings_dates[{j}]") for j, d in enumerate(sm.earnings_dates)]
    return SymbolData(bars, iv, sector, chain, earnings)


EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
"""`date.toordinal()` of 1970-01-01: a BarColumns day number is `date.toordinal() - EPOCH_ORDINAL`."""


def columns_out(bars: Bars) -> decision_pb2.BarColumns:
    """The packed-columns message of `bars` (what a client sends in `SymbolMarket.columns` or PublishBars)."""
    return decision_pb2.BarColumns(
        days=(bars.days - EPOCH_ORDINAL).tolist(),
        open=bars.open.tolist(),
        high=bars.high.tolist(),
        low=bars.low.tolist(),
        close=bars.close.tolist(),
        volume=bars.volume.tolist(),
    )


def snapshot_symbols_in(snapshot: decision_pb2.MarketSnapshot, field: str = "market") -> None:
    """The snapshot-wide bounds: at most MAX_SYMBOLS symbols."""
    if len(snapshot.symbols) > MAX_SYMBOLS:
        raise InvalidInputError.of(f"{field}.symbols", f"must hold at most {MAX_SYMBOLS}, got {len(snapshot.symbols)}")


def market_in(snapshot: decision_pb2.MarketSnapshot, field: str = "market") -> MarketData:
    """MarketData from a snapshot alone (no server history): at most MAX_SYMBOLS symbols of at most MAX_BARS bars
    (sorted by date, prices in (0, MAX_PRICE]), as `bars` or `columns`, and MAX_CHAIN quotes each, a positive IV
    per symbol."""
    if not snapshot.symbols:
        raise InvalidInputError.of(f"{field}.symbols", "must hold at least the symbol decided on")
    snapshot_symbols_in(snapshot, field)
    parts: dict[str, SymbolData] = {}
    for i, sm in enumerate(snapshot.symbols):
        at = f"{field}.symbols[{i}]"
        if sm.symbol in parts:
            raise InvalidInputError.of(f"{at}.symbol", f"{sm.symbol} appears twice")
        part = symbol_data_in(sm, at)
        if part.bars is None:
            raise InvalidInputError.of(f"{at}.bars", "must hold daily bars, oldest first")
        parts[sm.symbol] = part
    return market_of(parts, snapshot, field)


def market_of(parts: dict[str, SymbolData], snapshot: decision_pb2.MarketSnapshot, field: str) -> MarketData:
    """MarketData from converted symbols (each with bars and an IV) and the snapshot's VIX and rate."""
    bars: dict[str, Bars] = {}
    ivs: dict[str, float] = {}
    sectors: dict[str, str] = {}
    chains: dict[str, dict[str, list[OptionQuote]]] = {}
    earnings: dict[str, list[dt.date]] = {}
    for symbol, part in parts.items():
        assert part.bars is not None and part.iv is not None
        bars[symbol] = part.bars
        ivs[symbol] = part.iv
        sectors[symbol] = part.sector
        if part.chain is not None:
            chains[symbol] = part.chain
        if part.earnings is not None:
            earnings[symbol] = part.earnings
    vix = None
    if snapshot.HasField("vix"):
        vix = number_in(snapshot.vix, f"{field}.vix", low=0.0, high=MAX_VIX)
    rate = number_in(snapshot.rate, f"{field}.rate", low=-MAX_RATE, high=MAX_RATE)
    return MarketData(bars, ivs, vix, rate, sectors, chains, earnings or None)


def kind_in(kind: int, field: str) -> str:
    """The option kind ("call" or "put") of an OptionKind value; anything else names the field."""
    name: str | None = KIND_IN.get(kind)  # type: ignore[call-overload]
    if name is None:
        raise InvalidInputError.of(field, "must be OPTION_KIND_CALL or OPTION_KIND_PUT")
    return name


def quote_in(q: decision_pb2.OptionQuote, field: str) -> OptionQuote:
    """An option quote: strike in (0, MAX_PRICE], bid and ask in [0, MAX_PRICE], IV in (0, MAX_IV]."""
    return OptionQuote(
        price_in(q.strike, f"{field}.strike"),
        number_in(q.bid, f"{field}.bid", low=0.0, high=MAX_PRICE),
        number_in(q.ask, f"{field}.ask", low=0.0, high=MAX_PRICE),
        number_in(q.iv, f"{field}.iv", low=0.0, high=MAX_IV, low_open=True),
        number_in(q.open_interest, f"{field}.open_interest", low=0.0, high=MAX_VOLUME),
        number_in(q.volume, f"{field}.volume", low=0.0, high=MAX_VOLUME),
    )


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
