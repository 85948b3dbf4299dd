"""The agent's answers, each built from real calls (allsuse.agent.calls.Calls) and the protocol's configuration:
never a canned figure. An `Answer` carries a brief text (a line or two), the full reasoning (every rule code with
its numbers), the structured data behind both (JSON-ready: money as decimal strings) and suggested next questions.

- setup: `allocate` (the split CreatePortfolio makes) and then CreatePortfolio's code path;
- recommendations and explanations: Decide's stored decision (strike, delta, contracts, premium, ES before and
  after, every compliance result, the outcome);
- performance: the stored ledger turned into a daily equity series (the last point at market) and the 17 metrics
  of allsuse.risk.metrics; drawdown, protection level and what it changes from the engine state and
  allsuse.protocol.drawdown;
- projections from Project's code path, fork status and reinvestment from the accounts, week types from
  describe_week, market views from market_label on the server's market history.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from allsuse import risk
from allsuse.agent.calls import Calls
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.accounts import Portfolio, allocate, last_trading_day
from allsuse.protocol.drawdown import ProtectionState, allowed_exposure, new_exposure_multiplier, step_protection
from allsuse.protocol.engine import Engine
from allsuse.protocol.market_label import market_label
from allsuse.protocol.week_type import describe_week
from allsuse.server.portfolios import StoredPortfolio

KINDS = ("gen", "rev", "com")
EXTERNAL = ("deposit", "withdrawal")
"""Ledger kinds that move money into or out of the portfolio (not returns)."""
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DEFAULT_HISTORY_DAYS = 365
"""Calendar days a performance review covers when no period is named."""
PROTECTION = ("none", "light", "moderate", "aggressive", "emergency")


@dataclass
class Answer:
    """One answer: texts at both levels of detail, the data behind them, suggestions, decision ids and a note."""

    brief: str
    full: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    suggestions: tuple[str, ...] = ()
    decision_ids: tuple[str, ...] = ()
    note: str = ""

    def text(self, detail: str) -> str:
        """The text for a detail preference ("brief" or "full")."""
        return self.full if detail == "full" and self.full else self.brief


# --- formatting ------------------------------------------------------------------------------------------------


def usd(value: float | Decimal | str) -> str:
    """Dollars with separators and cents: $1,234.50 (-$5.00)."""
    x = Decimal(str(value))
    return f"{'-' if x < 0 else ''}${abs(x):,.2f}"


def pct(share: float, digits: int = 2) -> str:
    """A fraction as a percent: 0.1234 -> 12.34% (n/a when not finite)."""
    return f"{share * 100:.{digits}f}%" if math.isfinite(share) else "n/a"


def name_of(kind: str) -> str:
    """Gen-Acc, Rev-Acc, Com-Acc."""
    return settings.default().account(kind).name


def finite(x: float) -> float | None:
    """x, or None where JSON cannot carry it (NaN, inf)."""
    return float(x) if math.isfinite(x) else None


# --- setup -----------------------------------------------------------------------------------------------------


def allocation(total: Decimal) -> Answer:
    """The 40/30/30 split of `total` as CreatePortfolio will make it (allocate), awaiting a yes."""
    split = allocate(total)
    cfg = settings.default()
    rows = {
        kind: {
            "name": name_of(kind),
            "allocation": str(a.allocation),
            "buffer": str(a.buffer),
            "deployable": str(a.deployable),
            "weekly_target": cfg.account(kind).weekly_target,
            "max_drawdown": cfg.account(kind).max_drawdown,
            "symbols": list(cfg.account(kind).symbols),
        }
        for kind, a in split.items()
    }
    parts = [f"{name_of(k)} {usd(a.allocation)} (deployable {usd(a.deployable)})" for k, a in split.items()]
    brief = f"With {usd(total)}: " + ", ".join(parts) + ". Shall I create the portfolio? (yes/no)"
    lines = [f"The protocol splits {usd(total)} over three accounts:"]
    for kind, a in split.items():
        spec = cfg.account(kind)
        lines.append(
            f"- {spec.name}: {pct(spec.allocation, 0)} = {usd(a.allocation)}; cash buffer {pct(spec.buffer, 0)} = "
            f"{usd(a.buffer)}; deployable {usd(a.deployable)}; weekly target {pct(spec.weekly_target, 1)}; "
            f"drawdown cap {pct(spec.max_drawdown, 0)}; symbols {', '.join(spec.symbols)}."
        )
    lines.append("Shall I create the portfolio? (yes/no)")
    return Answer(
        brief,
        "\n".join(lines),
        {"total": str(Decimal(total).quantize(Decimal("0.01"))), "allocation": rows},
        ("yes", "no, make it 300k"),
        note=f"proposed {usd(total)} split",
    )


def created(stored: StoredPortfolio) -> Answer:
    """The portfolio CreatePortfolio made, and the next onboarding question."""
    p = stored.portfolio
    accounts = {a.id: {"kind": a.kind, "balance": str(a.balance)} for a in p.accounts.values()}
    listing = ", ".join(f"{a.id} ({name_of(a.kind)}) {usd(a.balance)}" for a in p.accounts.values())
    brief = (
        f"Created portfolio {p.id}: {listing}. How would you describe your risk tolerance: conservative, "
        "moderate or aggressive?"
    )
    return Answer(
        brief,
        data={"portfolio_id": p.id, "equity": str(p.equity), "accounts": accounts},
        suggestions=("conservative", "moderate", "aggressive"),
        note=f"created {p.id} with {usd(p.equity)}",
    )


def risk_profile(risk_level: str) -> Answer:
    """What the user's risk tolerance changes: which account the agent leads with. The protocol's limits (caps,
    bands, sizing) are the same for everyone, and the answer says so with their numbers."""
    cfg = settings.default()
    lead = lead_account(risk_level)
    caps = ", ".join(f"{name_of(k)} {pct(cfg.account(k).max_drawdown, 0)}" for k in KINDS)
    brief = (
        f"Noted: {risk_level}. I will lead recommendations with {name_of(lead)} (weekly target "
        f"{pct(cfg.account(lead).weekly_target, 1)}, drawdown cap {pct(cfg.account(lead).max_drawdown, 0)}). "
        f"The protocol's limits stay as they are for every account (drawdown caps {caps})."
    )
    return Answer(
        brief,
        data={"risk": risk_level, "lead_account": lead, "caps": {k: cfg.account(k).max_drawdown for k in KINDS}},
        suggestions=("what should I trade this week?", "explain the accounts"),
        note=f"risk {risk_level}",
    )


def lead_account(risk_level: str | None) -> str:
    """The account kind recommendations start with for a risk tolerance (aggressive: Gen-Acc; else Rev-Acc)."""
    return "gen" if risk_level == "aggressive" else "rev"


# --- explanations of the protocol ------------------------------------------------------------------------------


def explain_accounts() -> Answer:
    """The three accounts with their configured numbers."""
    cfg = settings.default()
    lines = []
    data = {}
    for kind in KINDS:
        s = cfg.account(kind)
        annual = (1 + s.weekly_target) ** 52 - 1
        lines.append(
            f"{s.name}: {pct(s.allocation, 0)} of the total, {pct(s.buffer, 0)} cash buffer, weekly target "
            f"{pct(s.weekly_target, 1)} (about {pct(annual, 0)} a year compounded), drawdown cap "
            f"{pct(s.max_drawdown, 0)}, withdrawals {'allowed' if s.withdrawals else 'never'}, symbols "
            f"{', '.join(s.symbols)}."
        )
        data[kind] = {
            "name": s.name,
            "allocation": s.allocation,
            "buffer": s.buffer,
            "weekly_target": s.weekly_target,
            "annual_rate": annual,
            "max_drawdown": s.max_drawdown,
            "withdrawals": s.withdrawals,
            "symbols": list(s.symbols),
        }
    brief = " ".join(lines)
    return Answer(brief, "\n".join(lines), {"accounts": data}, ("how does forking work?", "set up my accounts"))


def explain_protocol() -> Answer:
    """The protocol in a few sentences, with its configured numbers."""
    cfg = settings.default()
    doc = cfg.doc
    budget = doc.section("risk").number("es_budget_share")
    thresholds = doc.section("drawdown_protection").numbers("thresholds", 4)
    brief = (
        "ALL-USE splits your money over three accounts (Gen-Acc, Rev-Acc, Com-Acc), sells weekly cash-secured puts "
        "and covered calls inside a delta band chosen by each symbol's market label (green, red or chop), sizes "
        f"every trade to the account's deployment target, keeps the portfolio's 1-day ES under {pct(budget, 0)} of "
        f"equity, and cuts exposure as drawdowns pass {', '.join(pct(t, 0) for t in thresholds)}."
    )
    full = brief + "\n" + explain_accounts().full + "\n" + explain_forking().brief
    return Answer(
        brief,
        full,
        {"es_budget_share": budget, "drawdown_thresholds": list(thresholds)},
        ("explain the accounts", "what are week types?", "set up my accounts"),
    )


def explain_forking() -> Answer:
    """Forking and merging with the configured thresholds."""
    doc = settings.default().doc
    threshold = doc.section("forking").number("surplus_threshold")
    share = doc.section("forking").number("new_gen_share")
    merge = doc.section("merging").number("threshold")
    brief = (
        f"When a Gen-Acc's surplus over its base reaches {usd(threshold)}, the surplus forks: {pct(share, 0)} seeds "
        f"a new Gen-Acc and the rest a new Com-Acc, a group with its own history; the parent's base resets. A forked "
        f"group that reaches {usd(merge)} merges back into the parent's Com-Acc."
    )
    return Answer(
        brief,
        data={"surplus_threshold": threshold, "new_gen_share": share, "merge_threshold": merge},
        suggestions=("how close am I to a fork?",),
    )


def explain_week_types() -> Answer:
    """The week types of PROTOCOL section 4, from describe_week at a representative move of each row."""
    rows = [
        ("CASH", 0.0, True),
        ("SHORT_PUT", 0.0, True),
        ("SHORT_PUT", -3.0, True),
        ("SHORT_PUT", -10.0, True),
        ("SHORT_PUT", -10.0, False),
        ("SHORT_PUT", -20.0, True),
        ("SHORT_CALL", 7.0, True),
        ("SHORT_CALL", 3.0, True),
        ("SHORT_CALL", -2.0, True),
        ("SHORT_CALL", -7.0, True),
        ("SHORT_CALL", -12.0, True),
    ]
    seen: dict[str, Any] = {}
    for position, move, roll in rows:
        w = describe_week(position, move, roll)
        seen.setdefault(
            w.code, {"name": w.name, "action": w.action, "expected_return_pct": list(w.expected_return_pct)}
        )
    brief = "Week types: " + "; ".join(f"{c} {v['name']}" for c, v in seen.items()) + "."
    full = "\n".join(
        f"{c} ({v['name']}): {v['action']}; expected week return {v['expected_return_pct'][0]}-"
        f"{v['expected_return_pct'][1]}%"
        for c, v in seen.items()
    )
    return Answer(brief, full, {"week_types": seen}, ("classify a short put down 3%",))


def classify_week(position: str, move_pct: float, roll_available: bool = True) -> Answer:
    """describe_week (ClassifyWeek's code) for a position and a week's move."""
    w = describe_week(position, move_pct, roll_available)
    low, high = w.expected_return_pct
    brief = (
        f"{w.code} ({w.name}) for {position} at {move_pct:+.2f}%: {w.action}; expected week return {low}-{high}%, "
        f"confidence {w.confidence}."
    )
    return Answer(
        brief,
        data={
            "position": position,
            "move_pct": move_pct,
            "roll_available": roll_available,
            "code": w.code,
            "name": w.name,
            "action": w.action,
            "expected_return_pct": [low, high],
            "confidence": w.confidence,
        },
        suggestions=("what are week types?",),
        note=f"{w.code} for {position} {move_pct:+.1f}%",
    )


# --- market ----------------------------------------------------------------------------------------------------


def market_view(calls: Calls, symbol: str, as_of: dt.datetime) -> Answer:
    """The symbol's market label this week (market_label on the server's history) and each account's entry rule
    for that label."""
    market = calls.market((symbol,), as_of)
    bars = market.bars_for(symbol)
    label = market_label(bars.close, market.iv_for(symbol), bars.volume)
    cfg = settings.default()
    rules = {}
    parts = []
    for kind in KINDS:
        rule = cfg.entry_rule(kind, label.label)
        days = [WEEKDAYS[d] for d in rule.entry_days]
        rules[kind] = {"entry_days": days, "band": list(rule.band) if rule.band else None, "m_label": rule.m_label}
        if rule.band and days:
            parts.append(f"{name_of(kind)} sells {rule.band[0]:g}-{rule.band[1]:g} delta on {'/'.join(days)}")
        else:
            parts.append(f"{name_of(kind)} takes no new entries")
    last = bars.dates[-1] if bars.dates else None
    brief = (
        f"{symbol} is {label.label.upper()} (confidence {label.confidence:.2f}) as of "
        f"{last.isoformat() if last else as_of.date().isoformat()}: {label.trend} trend ({label.trend_grade}), "
        f"IV {label.iv:.2f} ({label.vol_regime}), RSI {label.rsi:.1f}. " + "; ".join(parts) + "."
    )
    return Answer(
        brief,
        brief + "\n" + label.explain(),
        {
            "symbol": symbol,
            "label": label.label,
            "confidence": label.confidence,
            "scores": dict(label.scores),
            "iv": label.iv,
            "vol_regime": label.vol_regime,
            "trend": label.trend,
            "trend_grade": label.trend_grade,
            "rsi": label.rsi,
            "roc_pct": label.roc_pct,
            "momentum": label.momentum,
            "volume_ratio": label.volume_ratio,
            "as_of": last.isoformat() if last else None,
            "entry_rules": rules,
        },
        (f"what should I trade on {symbol}?",),
        note=f"{symbol} {label.label}",
    )


# --- decisions -------------------------------------------------------------------------------------------------


def _order_text(d: dict[str, Any]) -> str:
    o = d.get("order")
    if not o:
        return str(d["action"])
    side = o["side"].replace("_", " ")
    if o["kind"] == "stock":
        units = o["contracts"]  # a stock order counts shares
        return (
            f"{d['action']}: {side} {units:g} {d['symbol']} shares, limit {usd(o['limit_price'])} ({usd(o['premium'])})"
        )
    what = "puts" if o["kind"] == "put" else "calls"
    return (
        f"{d['action']}: {side} {o['contracts']} {d['symbol']} {o['strike']:g} {what} expiring {o['expiry']} at "
        f"delta {o['delta']:.1f}, limit {usd(o['limit_price'])}, premium {usd(o['premium'])}"
    )


def decision_data(d: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a decision payload, JSON-ready."""
    o = d.get("order") or {}
    return {
        "decision_id": d["decision_id"],
        "account_id": d["account_id"],
        "symbol": d["symbol"],
        "as_of": d["as_of"],
        "label": d["label"],
        "label_confidence": d["label_confidence"],
        "week_type": d["week_type"],
        "protocol_level": d["protocol_level"],
        "action": d["action"],
        "strike": o.get("strike"),
        "expiry": o.get("expiry"),
        "delta": o.get("delta"),
        "contracts": o.get("contracts", 0),
        "limit_price": o.get("limit_price"),
        "premium": o.get("premium"),
        "es_before": d["es_before"],
        "es_after": d["es_after"],
        "outcome": d["outcome"],
        "approval_status": d["approval_status"],
        "requires_approval": d["requires_approval"],
        "confidence": d["confidence"],
        "failed_rules": [c[0] for c in d["compliance"] if not c[2]],
        "rules": [{"code": c[0], "severity": c[1], "passed": c[2], "message": c[3]} for c in d["compliance"]],
    }


def recommendation(d: dict[str, Any]) -> Answer:
    """A decision Decide made: one line, or every rule with its numbers."""
    failed = [c for c in d["compliance"] if not c[2]]
    head = (
        f"{d['symbol']} for {d['account_id']} ({d['label']}, confidence {d['label_confidence']:.2f}): "
        f"{_order_text(d)}; ES {usd(d['es_before'])} -> {usd(d['es_after'])}; compliance outcome {d['outcome']}"
    )
    if failed:
        head += " (" + ", ".join(c[0] for c in failed) + " failed)"
    if not d.get("order"):
        head += f"; {no_order_reason(d)}"
    status = d["approval_status"]
    tail = {
        "PENDING": " It needs your approval (trust gates automation, PROTOCOL section 10): approve it? (yes/no)",
        "AUTOMATIC": " It runs without approval (trust and confidence allow it).",
        "REJECTED": " It is rejected: nothing to approve.",
    }.get(status, "")
    brief = head + "." + tail
    return Answer(
        brief,
        brief + "\n" + reasoning(d),
        {"decision": decision_data(d)},
        ("why?", "and for Rev-Acc?") if status != "PENDING" else ("yes", "no", "why?"),
        (d["decision_id"],),
        note=f"{d['action']} {d['symbol']} {d['account_id']} {d['outcome']}",
    )


def no_order_reason(d: dict[str, Any]) -> str:
    """Why a decision holds no order (no rule ran): the engine's reason without the label line cited already."""
    parts = [p for p in str(d["explanation"]).split("; ") if not p.startswith("label=")]
    return "; ".join(parts) or str(d["explanation"])


def reasoning(d: dict[str, Any]) -> str:
    """Every compliance result (code, severity, pass or fail, its numbers) and the engine's explanation."""
    lines = [f"- {c[0]} ({c[1]}, {'passed' if c[2] else 'FAILED'}): {c[3]}" for c in d["compliance"]]
    if not lines:
        lines = ["- no order, so no compliance rule ran"]
    return "Rules:\n" + "\n".join(lines) + f"\nEngine: {d['explanation']}"


def explanation(d: dict[str, Any], detail: str) -> Answer:
    """Why a decision came out as it did, citing the rule codes and numbers it used."""
    failed = [c for c in d["compliance"] if not c[2]]
    passed = [c[0] for c in d["compliance"] if c[2]]
    if failed:
        why = "; ".join(f"{c[0]} failed: {c[3]}" for c in failed)
    elif passed:
        why = f"every rule passed ({', '.join(passed)})"
    else:
        why = no_order_reason(d)
    brief = (
        f"{d['action']} on {d['symbol']} for {d['account_id']} ({d['outcome']}): label {d['label']} "
        f"(confidence {d['label_confidence']:.2f}), protocol level {d['protocol_level']}, ES {usd(d['es_before'])} "
        f"-> {usd(d['es_after'])}; {why}."
    )
    return Answer(
        brief,
        brief + "\n" + reasoning(d),
        {"decision": decision_data(d)},
        ("show the full reasoning",) if detail != "full" else ("what should I trade this week?",),
        (d["decision_id"],),
        note=f"explained {d['decision_id'][:8]}",
    )


def approval(d: dict[str, Any]) -> Answer:
    """A decision after ApproveDecision."""
    status = d["approval_status"]
    brief = f"Decision {d['decision_id']} is {status}: {_order_text(d)}."
    return Answer(
        brief,
        data={"decision": decision_data(d)},
        suggestions=("how am I doing?",),
        decision_ids=(d["decision_id"],),
        note=f"{status.lower()} {d['decision_id'][:8]}",
    )


# --- performance and risk ---------------------------------------------------------------------------------------


def equity_series(
    ledger: Sequence[dict[str, Any]],
    today: dt.date,
    equity_now: float,
    marks: Callable[[dt.date], float] | None = None,
    since: dt.date | None = None,
) -> tuple[list[dt.date], np.ndarray, np.ndarray]:
    """The portfolio's daily equity over business days from its first transaction to `today`, and each day's
    external flows (deposits and withdrawals, which are not returns).

    A day's equity is the ledger's cumulative cash at its end plus `marks(day)`: the value at that day's prices
    of the positions open now that were opened by then (short options count as liabilities). The last day is
    `equity_now` (everything at market). A position closed since is counted through its cash flows only. With
    `since`, the series starts that day (earlier cash summed into it)."""
    if not ledger:
        return [], np.zeros(0), np.zeros(0)
    cash: dict[dt.date, float] = {}
    flows: dict[dt.date, float] = {}
    for t in ledger:
        day = dt.datetime.fromisoformat(str(t["at"])).date()
        amount = float(t["amount"])
        cash[day] = cash.get(day, 0.0) + amount
        if t.get("kind") in EXTERNAL:
            flows[day] = flows.get(day, 0.0) + amount
    first = min(cash)
    end = max(today, max(cash))
    if since is not None and since > first:  # the days before are summed into the first day's cash
        first = min(since, end)
    days = [first + dt.timedelta(n) for n in range((end - first).days + 1)]
    days = [d for d in days if d.weekday() < 5 or d in cash or d == end]
    running = sum(amount for day, amount in cash.items() if day < first)
    values = np.empty(len(days))
    flow = np.zeros(len(days))
    for i, d in enumerate(days):
        running += cash.get(d, 0.0)
        values[i] = running + (marks(d) if marks is not None and i < len(days) - 1 else 0.0)
        flow[i] = flows.get(d, 0.0)
    values[-1] = equity_now
    return days, values, flow


def daily_returns(values: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """Returns net of external flows: r_t = (E_t - flow_t) / E_{t-1} - 1 (the first day is the base)."""
    if values.size < 2:
        return np.zeros(0)
    prev = values[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out: np.ndarray = np.where(prev > 0, (values[1:] - flows[1:]) / prev - 1.0, 0.0)
    return out


def protection_of(engine_state: dict[str, Any], account_id: str, drawdown: float, day: dt.date) -> str:
    """The account's drawdown protection level after observing `drawdown` today (step_protection from its state)."""
    rt = (engine_state.get("accounts") or {}).get(account_id)
    state = None
    if rt is not None:
        p = rt["protection"]
        state = ProtectionState.from_tuple((int(p[0]), float(p[1]), int(p[2]), int(p[3])))
    return step_protection(state, drawdown, day).level.value


def protection_effect(level: str) -> str:
    """What a protection level changes (PROTOCOL section 6, from the configured multipliers and cuts)."""
    doc = settings.default().doc.section("drawdown_protection")
    mult = new_exposure_multiplier(level)
    index = PROTECTION.index(level)
    if index == 0:
        return "nothing: new exposure at full size"
    if index == 1:
        light = doc.section("light_vol_cut")
        cut = (
            f"positions on symbols with annualised vol over {pct(light.number('annual_vol_above'), 0)} cut by "
            f"{pct(light.number('cut'), 0)}"
        )
    elif index == len(PROTECTION) - 1:
        cut = f"the {int(doc.number('emergency_close_count'))} riskiest positions closed"
    else:
        cut = f"every position cut by {pct(doc.numbers('cuts', 5)[index], 0)}"
    return f"new exposure x{mult:g}; {cut}"


def _marks(calls: Calls, engine: Engine, stored: StoredPortfolio) -> Callable[[dt.date], float]:
    """Day -> the value at that day's stored prices of the positions open now that were opened by then."""
    p = stored.portfolio
    accounts = list(p.accounts.values())
    cash = sum(float(a.balance) for a in accounts)

    def value(day: dt.date) -> float:
        held = {k: x for k, x in p.positions.items() if x.opened <= day}
        if not held:
            return 0.0
        then = Portfolio(p.id, p.accounts, p.groups, [], held)
        try:
            market = calls.market(
                tuple(sorted({x.symbol for x in held.values()})), dt.datetime.combine(day, dt.time(16))
            )
        except InvalidInputError:
            return 0.0  # no stored prices that day: the positions count through their cash flows
        return float(sum(engine.equities(then, accounts, market, day, portfolio_too=False)[0]) - cash)

    return value


def performance(calls: Calls, portfolio_id: str, period: tuple[dt.date, dt.date] | None, detail: str) -> Answer:
    """Equity at market per account with drawdown, protection level and what it changes, and the 17 metrics of the
    daily returns from the stored ledger (over `period` when given)."""
    stored = calls.portfolio(portfolio_id)
    engine = calls.engine(stored)
    now = calls.now()
    today = now.date()
    p = stored.portfolio
    held = tuple(sorted({x.symbol for x in p.positions.values()}))
    accounts = [a for a in p.accounts.values() if not p.groups[a.group_id].merged]
    priced = True
    try:
        market = calls.market(held, now)
        equities, total = engine.equities(p, accounts, market, today)
    except Exception:  # no stored prices for a held symbol: cash only, and the answer says so
        priced = False
        equities, total = [float(a.balance) for a in accounts], float(p.equity)
    engine_state = stored.engine_state
    rows: dict[str, Any] = {}
    lines = []
    worst = ("", 0.0, "none")
    for a, eq in zip(accounts, equities, strict=True):
        peak = max(float(a.peak), eq)
        dd = (peak - eq) / peak if peak > 0 else 0.0
        level = protection_of(engine_state, a.id, dd, today)
        cap = settings.default().account(a.kind).max_drawdown
        allowed = allowed_exposure(peak, eq, cap) if peak > 0 else 1.0
        # At or past its cap an account is REDUCING (a fact of equity, PROTOCOL section 6), whatever was stored.
        state = "REDUCING" if dd >= cap and a.state == "ACTIVE" else a.state
        rows[a.id] = {
            "kind": a.kind,
            "cash": str(a.balance),
            "equity": round(eq, 2),
            "peak": round(peak, 2),
            "drawdown": dd,
            "protection": level,
            "exposure_multiplier": new_exposure_multiplier(level),
            "allowed_exposure": allowed,
            "state": state,
            "cap": cap,
        }
        if dd >= worst[1]:
            worst = (a.id, dd, level)
        lines.append(
            f"- {a.id} ({name_of(a.kind)}): equity {usd(round(eq, 2))}, peak {usd(round(peak, 2))}, drawdown "
            f"{pct(dd)} (cap {pct(cap, 0)}), protection {level}: {protection_effect(level)}; drawdown budget allows "
            f"{pct(allowed, 0)} of the deployment target; state {state}"
            + (" (at its cap: only orders that reduce exposure pass)" if state == "REDUCING" else "")
        )
    ledger = calls.transactions(portfolio_id)
    # A year of daily points by default (a period asked for sets the start): each day's marks cost a market lookup.
    since = period[0] if period is not None else today - dt.timedelta(days=DEFAULT_HISTORY_DAYS)
    marks = _marks(calls, engine, stored) if priced else None
    days, values, flows = equity_series(ledger, today, total, marks, since - dt.timedelta(days=1))
    returns = daily_returns(values, flows)
    if period is not None and days:
        keep = np.array([period[0] <= d <= period[1] for d in days[1:]], dtype=bool)
        returns = returns[keep] if keep.size == returns.size else returns
    metrics = {k: finite(v) for k, v in risk.metrics(returns).items()} if returns.size >= 2 else {}
    deposits = sum(float(t["amount"]) for t in ledger if t.get("kind") == "deposit")
    withdrawn = -sum(float(t["amount"]) for t in ledger if t.get("kind") == "withdrawal")
    gain = total - deposits + withdrawn
    brief = (
        f"Portfolio {portfolio_id}: equity {usd(round(total, 2))} against {usd(round(deposits, 2))} deposited"
        + (f" and {usd(round(withdrawn, 2))} withdrawn" if withdrawn else "")
        + f" ({'+' if gain >= 0 else '-'}{usd(round(abs(gain), 2))})."
    )
    if worst[0] and worst[1] <= 0:
        brief += " No account is in drawdown."
    elif worst[0]:
        brief += f" Deepest drawdown {worst[0]} {pct(worst[1])}, protection {worst[2]} ({protection_effect(worst[2])})."
    if metrics:
        brief += (
            f" Over {returns.size} days: total return {pct(metrics['total_return'] or 0.0)}, max drawdown "
            f"{pct(metrics['max_drawdown'] or 0.0)}, Sharpe "
            f"{metrics['sharpe_ratio'] if metrics['sharpe_ratio'] is None else round(metrics['sharpe_ratio'], 2)}."
        )
    if not priced:
        brief += f" (Open positions on {', '.join(held)} are not valued: the server holds no prices for them.)"
    full = brief + "\n" + "\n".join(lines)
    if metrics:
        full += "\nMetrics (daily returns from the stored ledger, the last day at market):\n" + "\n".join(
            f"- {k}: {'n/a' if v is None else round(v, 6)}" for k, v in metrics.items()
        )
    return Answer(
        brief,
        full,
        {
            "portfolio_id": portfolio_id,
            "equity": round(total, 2),
            "deposited": round(deposits, 2),
            "withdrawn": round(withdrawn, 2),
            "gain": round(gain, 2),
            "priced": priced,
            "accounts": rows,
            "days": int(returns.size),
            "period": [period[0].isoformat(), period[1].isoformat()] if period else None,
            "metrics": metrics,
        },
        ("explain my protection level" if worst[2] != "none" else "how close am I to a fork?", "project 10 years"),
        note=f"performance {usd(round(total, 2))}",
    )


# --- forks, reinvestment, projections, withdrawals -----------------------------------------------------------------


def fork_status(stored: StoredPortfolio) -> Answer:
    """Each Gen-Acc's surplus over its base against the fork threshold, and the forked groups against the merge
    threshold (from the account state)."""
    doc = settings.default().doc
    threshold = doc.section("forking").number("surplus_threshold")
    merge = doc.section("merging").number("threshold")
    p = stored.portfolio
    gens = {}
    parts = []
    for a in p.accounts.values():
        if a.kind != "gen" or p.groups[a.group_id].merged:
            continue
        surplus = float(a.balance - a.base)
        gens[a.id] = {
            "balance": str(a.balance),
            "base": str(a.base),
            "surplus": round(surplus, 2),
            "to_go": round(max(0.0, threshold - surplus), 2),
        }
        to_go = round(max(0.0, threshold - surplus), 2)
        parts.append(f"{a.id} surplus {usd(round(surplus, 2))} of {usd(threshold)} ({usd(to_go)} to go)")
    groups = {}
    for g in p.groups.values():
        if g.parent_id is None:
            continue
        balance = sum(float(p.accounts[i].balance) for i in g.account_ids)
        groups[g.id] = {
            "balance": round(balance, 2),
            "merged": g.merged,
            "to_merge": round(max(0.0, merge - balance), 2),
        }
        parts.append(f"forked group {g.id} {usd(round(balance, 2))} of {usd(merge)}{' (merged)' if g.merged else ''}")
    brief = "Fork status: " + ("; ".join(parts) if parts else "no Gen-Acc") + "."
    if not groups:
        brief += " No fork yet."
    return Answer(
        brief,
        data={"surplus_threshold": threshold, "merge_threshold": merge, "gen_accounts": gens, "groups": groups},
        suggestions=("how does forking work?",),
        note="fork status",
    )


def reinvestment(stored: StoredPortfolio | None, today: dt.date) -> Answer:
    """Quarterly reinvestment (PROTOCOL section 1): the next date, and each reinvesting account's realised gains
    and their 75/25 split, from the account state."""
    cfg = settings.default()
    sec = cfg.doc.section("reinvestment")
    contracts, leaps = sec.number("contracts_share"), sec.number("leaps_share")
    quarter_end_month = ((today.month - 1) // 3 + 1) * 3
    nxt = last_trading_day(today.year, quarter_end_month)
    if nxt < today:
        year, month = (today.year + 1, 3) if quarter_end_month == 12 else (today.year, quarter_end_month + 3)
        nxt = last_trading_day(year, month)
    kinds = [k for k in KINDS if cfg.account(k).reinvestment]
    brief = (
        f"{' and '.join(name_of(k) for k in kinds)} reinvest their quarter's realised gains on the quarter's last "
        f"trading day (next: {nxt.isoformat()}): {pct(contracts, 0)} into new option contracts, {pct(leaps, 0)} "
        f"into LEAPS. Gen-Acc does not reinvest; its gains accumulate until a fork."
    )
    accounts = {}
    if stored is not None:
        parts = []
        for a in stored.portfolio.accounts.values():
            if a.kind in kinds:
                realised = float(a.quarter_realised)
                accounts[a.id] = {
                    "quarter_realised": str(a.quarter_realised),
                    "to_contracts": round(max(0.0, realised) * contracts, 2),
                    "to_leaps": round(max(0.0, realised) * leaps, 2),
                    "leaps": str(a.leaps),
                }
                parts.append(f"{a.id} has realised {usd(a.quarter_realised)} this quarter")
        if parts:
            brief += " " + "; ".join(parts) + "."
    return Answer(
        brief,
        data={"next_date": nxt.isoformat(), "contracts_share": contracts, "leaps_share": leaps, "accounts": accounts},
        suggestions=("project 10 years",),
        note="reinvestment",
    )


def projection(total: Decimal, years: int, result: dict[str, list[Any]]) -> Answer:
    """Project's yearly figures for a portfolio of `total`."""
    last = len(result["years"]) - 1
    brief = (
        f"Projection of {usd(total)} over {years} years (80% of returns taken as income): expected "
        f"{usd(round(result['expected'][last], 2))} in year {result['years'][last]}, income that year "
        f"{usd(round(result['income'][last], 2))}; 5th-95th percentile {usd(round(result['p05'][last], 2))} to "
        f"{usd(round(result['p95'][last], 2))}."
    )
    full = (
        brief
        + "\n"
        + "\n".join(
            f"- year {y}: expected {usd(round(e, 2))}, income {usd(round(i, 2))}, p05 {usd(round(a, 2))}, "
            f"p50 {usd(round(b, 2))}, p95 {usd(round(c, 2))}"
            for y, e, i, a, b, c in zip(
                result["years"],
                result["expected"],
                result["income"],
                result["p05"],
                result["p50"],
                result["p95"],
                strict=True,
            )
        )
    )
    return Answer(
        brief,
        full,
        {"total": str(total), "years": years, "projection": result},
        ("how am I doing?",),
        note=f"projected {usd(total)} {years}y",
    )


def withdrawal_refused(account_id: str) -> Answer:
    """A Com-Acc never pays out (R18): why, and what the user can do instead."""
    brief = (
        f"{account_id} is a Com-Acc, and a Com-Acc never pays out (R18_NO_WITHDRAWAL): it compounds the "
        "portfolio's long-term growth and receives the merges of forked groups. Gen-Acc and Rev-Acc allow "
        "withdrawals."
    )
    return Answer(
        brief,
        data={"account_id": account_id, "rule": "R18_NO_WITHDRAWAL", "allowed": False},
        suggestions=("withdraw 5k from Rev-Acc",),
        note="withdrawal refused R18",
    )


def withdrawal_proposal(account_id: str, amount: Decimal, balance: Decimal) -> Answer:
    """The withdrawal to confirm."""
    brief = f"Withdraw {usd(amount)} from {account_id} (balance {usd(balance)} -> {usd(balance - amount)})? (yes/no)"
    return Answer(
        brief,
        data={"account_id": account_id, "amount": str(amount), "balance": str(balance)},
        suggestions=("yes", "no"),
        note=f"proposed withdrawal {usd(amount)}",
    )


def withdrawn(tx: dict[str, Any]) -> Answer:
    """Withdraw's transaction."""
    amount = Decimal(str(tx["amount"]))
    brief = f"Done: {usd(-amount)} withdrawn from {tx['account_id']} (transaction {tx['transaction_id']})."
    return Answer(brief, data={"transaction": tx}, suggestions=("how am I doing?",), note=f"withdrew {usd(-amount)}")


__all__ = [
    "Answer",
    "allocation",
    "approval",
    "classify_week",
    "created",
    "daily_returns",
    "decision_data",
    "equity_series",
    "explain_accounts",
    "explain_forking",
    "explain_protocol",
    "explain_week_types",
    "explanation",
    "fork_status",
    "lead_account",
    "market_view",
    "pct",
    "performance",
    "projection",
    "protection_effect",
    "reasoning",
    "recommendation",
    "reinvestment",
    "risk_profile",
    "usd",
    "withdrawal_proposal",
    "withdrawal_refused",
    "withdrawn",
]
