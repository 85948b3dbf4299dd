"""The report body: every figure of a report as JSON-ready data, built once from what `gather` read; the text and
the HTML page only show these numbers (docs/monitoring.md, "Reports").

Money is in dollars (floats rounded to cents, except the ledger's exact balances, kept as decimal strings);
shares are fractions (0.05 = 5%). A figure that cannot be known (no market history for a held symbol, fewer than
three daily marks for the metrics) is null, and the body says why.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from allsuse.monitoring.compliance import Violation
from allsuse.protocol import settings
from allsuse.protocol.breakers import vix_breaker
from allsuse.protocol.drawdown import ProtectionLevel
from allsuse.reports.execution import execution_quality
from allsuse.reports.gather import Gathered, day_of
from allsuse.server.performance import series_metrics
from allsuse.store import equity as marks

CAPITAL_KINDS = ("deposit", "withdrawal", "fork", "merge")
"""Transactions that move capital, not P&L: into or out of the portfolio, or between its accounts (a fork or merge
nets to zero across the portfolio)."""
REINVESTMENT_KINDS = ("reinvestment", "leaps")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _cents(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 2)


def _capital(transactions: Iterable[dict[str, Any]], after: dt.datetime | None, until: dt.datetime) -> float:
    """Net capital moved in (deposits less withdrawals; forks and merges between accounts) in (after, until]."""
    total = 0.0
    for t in transactions:
        at = dt.datetime.fromisoformat(t["at"])
        if t["kind"] in CAPITAL_KINDS and (after is None or at > after) and at <= until:
            total += float(t["amount"])
    return total


MARK_TIME = dt.time(16, 0)
"""A day's mark stands for that day's close."""


def _marked_by(series: list[tuple[int, float]], moment: dt.datetime) -> tuple[int, float] | None:
    """The last mark whose close is at or before `moment`."""
    found = None
    for d, e in series:
        if dt.datetime.combine(day_of(d), MARK_TIME) <= moment:
            found = (d, e)
    return found


def _change(g: Gathered, account_id: str, since: dt.datetime) -> tuple[float | None, float | None]:
    """(P&L, return) of one series from its last mark before the period to its last mark: the equity change less
    the capital moved in between (return over the starting equity); None without a mark on each side."""
    series = g.series.get(account_id, [])
    start = _marked_by(series, since) if series else None
    if start is None or not series or series[-1][0] <= start[0]:
        return None, None
    flows = [t for t in g.transactions if account_id in ("", t.get("account_id"))]
    begin = dt.datetime.combine(day_of(start[0]), dt.time(23, 59, 59))
    pnl = series[-1][1] - start[1] - _capital(flows, begin, g.as_of)
    return pnl, (pnl / start[1] if start[1] > 0 else None)


def _drawdowns(series: list[tuple[int, float]]) -> list[tuple[int, float]]:
    peak = -math.inf
    out = []
    for d, e in series:
        peak = max(peak, e)
        out.append((d, (peak - e) / peak if peak > 0 else 0.0))
    return out


def _level(engine_state: dict[str, Any], account_id: str) -> str:
    """The account's drawdown protection level as the engine last stepped it (none before any decision)."""
    runtime = (engine_state.get("accounts") or {}).get(account_id) or {}
    protection = runtime.get("protection") or [0]
    return ProtectionLevel.of(int(protection[0])).value


def _metrics(series: list[tuple[int, float]]) -> dict[str, float | None]:
    return {k: _finite(v) for k, v in series_metrics(series).items()}


def _weekly(g: Gathered, body: dict[str, Any]) -> dict[str, Any]:
    """PROTOCOL section 11's weekly content beyond the daily one."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for d in sorted(g.decisions, key=lambda d: d["as_of"]):
        latest[(d["account_id"], d["symbol"])] = d
    positions = [
        {"account_id": a, "symbol": s, "week_type": d["week_type"], "action": d["action"], "outcome": d["outcome"]}
        for (a, s), d in sorted(latest.items())
    ]
    moves: dict[str, float] = {}
    if g.market is not None:
        start = g.since.date()
        for symbol, bars in sorted(g.market.bars.items()):
            dates = bars.dates
            before = [i for i, d in enumerate(dates) if d <= start]
            if before and float(bars.close[before[-1]]) > 0:
                moves[symbol] = float(bars.close[-1]) / float(bars.close[before[-1]]) - 1.0
    cfg = settings.default()
    returns = {}
    for account_id, a in g.stored.portfolio.accounts.items():
        _, actual = _change(g, account_id, g.since)
        returns[account_id] = {"actual": _finite(actual), "expected": cfg.account(a.kind).weekly_target}
    deviations = [
        {"decision_id": d["decision_id"], "account_id": d["account_id"], "symbol": d["symbol"],
         "outcome": d["outcome"], "approval_status": d.get("approval_status", ""),
         "failed": [c[0] for c in d.get("compliance") or [] if not c[2]]}
        for d in g.decisions
        if d["outcome"] == "REJECTED" or d.get("approval_status") == "DECLINED"
    ]  # fmt: skip
    return {
        "positions": positions,
        "moves": moves,
        "returns": returns,
        "deviations": deviations,
        "violations": len(body["violations"] or []),
    }


def _quarterly(g: Gathered, body: dict[str, Any]) -> dict[str, Any]:
    """PROTOCOL section 11's quarterly content: reinvestment, week-type frequencies, return attribution."""
    reinvested: dict[str, dict[str, float]] = {}
    for t in g.transactions:
        if t["kind"] in REINVESTMENT_KINDS and g.since <= dt.datetime.fromisoformat(t["at"]) <= g.as_of:
            row = reinvested.setdefault(t["account_id"], {})
            row[t["kind"]] = round(row.get(t["kind"], 0.0) + float(t["amount"]), 2)
    counts = body["week_types"]
    total = sum(counts.values())
    attribution = {}
    whole, _ = _change(g, marks.PORTFOLIO, g.since)
    for account_id in g.stored.portfolio.accounts:
        pnl, ret = _change(g, account_id, g.since)
        share = pnl / whole if pnl is not None and whole else None
        attribution[account_id] = {"pnl": _cents(pnl), "return": _finite(ret), "share": _finite(share)}
    return {
        "reinvestment": reinvested,
        "week_type_frequencies": {k: v / total for k, v in counts.items()} if total else {},
        "attribution": attribution,
        "pnl": _cents(whole),
    }


def _violation(v: Violation) -> dict[str, Any]:
    return {
        "key": v.key,
        "check": v.code,
        "severity": v.severity,
        "account_id": v.account_id,
        "message": v.message,
        "value": v.value,
        "limit": v.limit,
    }


def _system(g: Gathered) -> dict[str, Any] | None:
    """The system-wide trading state from the VIX breakers on the market's VIX (None without a VIX)."""
    if g.market is None or g.market.vix is None:
        return None
    reading = vix_breaker(g.market.vix)
    return {
        "vix": reading.vix,
        "state": reading.state.value,
        "hedged": reading.hedged,
        "multiplier": reading.multiplier,
    }


def report_body(g: Gathered) -> dict[str, Any]:
    """The JSON body of a report (see the module docstring and docs/monitoring.md for every key)."""
    p = g.stored.portfolio
    measured = g.measured or {}
    doc = settings.default().doc
    near = doc.section("forking").number("surplus_threshold") * doc.number("near_fork_share", low=0, high=1)
    merge_near = doc.section("merging").number("threshold") * doc.number("near_fork_share", low=0, high=1)
    accounts = {}
    for a in p.accounts.values():
        m = measured.get(a.id)
        series = g.series.get(a.id, [])
        accounts[a.id] = {
            "type": a.kind,
            "group_id": a.group_id,
            "balance": str(a.balance),
            "base": str(a.base),
            "peak": str(a.peak),
            "state": a.state,
            "surplus_over_base": str(a.balance - a.base),
            "drawdown": a.drawdown,
            "level": _level(g.stored.engine_state, a.id),
            "equity_at_market": _cents(m[0]) if m else None,
            "es": _cents(m[1]) if m else None,
            "metrics": _metrics(series),
            "days": len(series),
        }
    week_types = Counter(d["week_type"] for d in g.decisions if d["week_type"])
    actions = Counter(d["action"] for d in g.decisions)
    flows: dict[str, float] = {}
    for t in g.transactions:
        if g.since <= dt.datetime.fromisoformat(t["at"]) <= g.as_of:
            flows[t["kind"]] = flows.get(t["kind"], 0.0) + float(t["amount"])
    whole = g.series.get(marks.PORTFOLIO, [])
    equity = measured[marks.PORTFOLIO][0] if marks.PORTFOLIO in measured else None
    capital = _capital(g.transactions, None, g.as_of)
    day_pnl = None
    if len(whole) >= 2 and equity is not None and whole[-1][0] == (g.as_of.date() - dt.date(1970, 1, 1)).days:
        prev = dt.datetime.combine(day_of(whole[-2][0]), dt.time(23, 59, 59))
        day_pnl = whole[-1][1] - whole[-2][1] - _capital(g.transactions, prev, g.as_of)
    period_pnl, period_return = _change(g, marks.PORTFOLIO, g.since)
    merged = {gid for gid, grp in p.groups.items() if grp.merged}
    near_merge = [
        gid
        for gid, grp in p.groups.items()
        if grp.parent_id is not None
        and gid not in merged
        and sum((p.accounts[i].balance + p.accounts[i].leaps for i in grp.account_ids), Decimal(0)) >= merge_near
    ]
    stress_rows = None
    if g.stress is not None:
        stress_rows = [
            {
                "scenario": r.scenario,
                "pnl": round(r.pnl, 2),
                "share_of_equity": r.share_of_equity,
                "accounts": {a: round(v, 2) for a, v in r.accounts.items()},
                "window": [d.isoformat() for d in r.window] if r.window else None,
            }
            for r in g.stress
        ]
    stress_note = "" if g.stress is not None else ("no open positions" if not p.positions else g.market_note)
    body: dict[str, Any] = {
        "kind": g.kind,
        "portfolio_id": p.id,
        "from": g.since.isoformat(),
        "to": g.as_of.isoformat(),
        "date": g.as_of.date().isoformat(),
        "equity": str(p.equity),
        "equity_at_market": _cents(equity),
        "capital": round(capital, 2),
        "pnl": {
            "day": _cents(day_pnl),
            "period": _cents(period_pnl),
            "period_return": _finite(period_return),
            "since_start": _cents(equity - capital) if equity is not None else None,
        },
        "accounts": accounts,
        "system": _system(g),
        "positions": [
            {
                "position_id": pos.id,
                "account_id": pos.account_id,
                "symbol": pos.symbol,
                "kind": pos.kind,
                "quantity": pos.quantity,
                "strike": pos.strike,
                "expiry": pos.expiry.isoformat() if pos.expiry else None,
                "premium": pos.premium,
                "cost_basis": pos.cost_basis,
            }
            for pos in p.positions.values()
        ],
        "decisions": len(g.decisions),
        "actions": dict(actions),
        "week_types": dict(sorted(week_types.items())),
        "rejected": [d["decision_id"] for d in g.decisions if d["outcome"] == "REJECTED"],
        "flows": {k: round(v, 2) for k, v in flows.items()},
        "near_fork": [a.id for a in p.accounts.values() if a.kind == "gen" and a.balance - a.base >= near],
        "near_merge": near_merge,
        "open_alerts": g.open_alerts,
        "metrics": _metrics(whole),
        "metrics_days": len(whole),
        "es": _cents(measured[marks.PORTFOLIO][1]) if marks.PORTFOLIO in measured else None,
        "market_note": g.market_note,
        "stress": stress_rows,
        "stress_note": stress_note,
        "violations": None if g.violations is None else [_violation(v) for v in g.violations],
        "execution": execution_quality(g.orders),
        "alerts": [
            {k: a.get(k) for k in ("alert_id", "at", "severity", "code", "account_id", "message", "status")}
            for a in g.alerts
        ],
        "series": {
            "equity": [[day_of(d).isoformat(), round(e, 2)] for d, e in whole],
            "drawdown": [[day_of(d).isoformat(), dd] for d, dd in _drawdowns(whole)],
            "es": [[d.isoformat(), round(v, 2)] for d, v in g.es_history],
        },
    }
    if g.kind == "weekly":
        body["weekly"] = _weekly(g, body)
    elif g.kind == "quarterly":
        body["quarterly"] = _quarterly(g, body)
    return body


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def text_lines(body: dict[str, Any]) -> list[str]:
    """The report as plain text for people (the alert's message and GetReport's `text`)."""
    frm, to = body["from"][:10], body["to"][:10]
    pnl = body["pnl"]
    lines = [
        f"{body['kind'].title()} report for {body['portfolio_id']}, {frm} to {to}",
        f"equity {body['equity']}; at market {_money(body['equity_at_market'])}; P&L day {_money(pnl['day'])}, "
        f"period {_money(pnl['period'])}, since start {_money(pnl['since_start'])}",
        *(
            f"  {i}: {a['type']} balance {a['balance']} state {a['state']} drawdown {a['drawdown']:.2%} "
            f"level {a['level']}"
            for i, a in body["accounts"].items()
        ),
        f"decisions {body['decisions']}: " + (", ".join(f"{k} {v}" for k, v in body["actions"].items()) or "none"),
        "week types: " + (", ".join(f"{k} {v}" for k, v in body["week_types"].items()) or "none"),
        "money: " + (", ".join(f"{k} {v:,.2f}" for k, v in body["flows"].items()) or "no movements"),
        f"accounts near a fork: {', '.join(body['near_fork']) or 'none'}; open alerts {body['open_alerts']}",
    ]
    m = body["metrics"]
    if m:
        lines.append(
            f"metrics over {body['metrics_days']} days: sharpe {m['sharpe_ratio']}, max drawdown {m['max_drawdown']}"
        )
    lines.append(f"ES {_money(body['es'])}")
    ex = body["execution"]
    lines.append(
        f"execution: {ex['orders']} orders, fill rate {ex['fill_rate']}, shortfall {ex['avg_shortfall_bps']} bps"
    )
    if body["violations"]:
        lines.append("violations: " + "; ".join(v["message"] for v in body["violations"]))
    if body["stress"] is None:
        lines.append(f"stress: {body['stress_note']}")
    else:
        lines.append("stress (P&L of the held book):")
        lines += [
            f"  {r['scenario']}: {r['pnl']:,.2f} ({r['share_of_equity']:.2%} of equity)"
            + (f" {r['window'][0]}..{r['window'][1]}" if r["window"] else "")
            for r in body["stress"]
        ]
    return lines


__all__ = ["report_body", "text_lines"]
