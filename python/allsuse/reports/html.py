"""The report as one self-contained HTML page: inline CSS and inline SVG charts (allsuse.reports.charts), no
script and nothing fetched, every text escaped. It shows the body's numbers and computes none."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from allsuse.reports.charts import bar_chart, line_chart
from allsuse.risk import METRIC_NAMES

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1b1b;background:#fff}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 8px;border-bottom:2px solid #1f6fb2}
.sub{color:#555}.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.kpi{border:1px solid #ccd;border-radius:6px;padding:8px 14px;background:#f4f7fb;min-width:140px}
.kpi b{display:block;font-size:1.25em}.kpi span{color:#555;font-size:.85em}
table{border-collapse:collapse;margin:6px 0;font-size:.9em}th,td{border:1px solid #ddd;padding:4px 8px}
th{background:#eef2f7;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #eee}.axis{font-size:11px;fill:#555}
.neg{color:#b00020}.note{color:#555;font-style:italic}
"""


def money(value: float | str | None) -> str:
    """Dollars with thousands separators and cents; n/a when unknown."""
    if value is None:
        return "n/a"
    return f"{float(value):,.2f}"


def share(value: float | None) -> str:
    """A fraction as a percentage with two decimals; n/a when unknown."""
    return "n/a" if value is None else f"{value * 100:.2f}%"


def number(value: float | None) -> str:
    """A ratio with four decimals; n/a when unknown."""
    return "n/a" if value is None else f"{value:.4f}"


def _cell(value: Any, numeric: bool = False) -> str:
    cls = ' class="n"' if numeric else ""
    return f"<td{cls}>{escape(str(value))}</td>"


def _table(head: Sequence[str], rows: Sequence[Sequence[tuple[Any, bool]]], empty: str = "none") -> str:
    if not rows:
        return f'<p class="note">{escape(empty)}</p>'
    top = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(_cell(v, n) for v, n in row) + "</tr>" for row in rows)
    return f"<table><tr>{top}</tr>{body}</table>"


def _kpi(label: str, value: str, key: str) -> str:
    return f'<div class="kpi" data-key="{escape(key)}"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _section(title: str, inner: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{inner}</section>"


def _accounts(body: dict[str, Any]) -> str:
    rows = [
        [(i, False), (a["type"], False), (money(a["balance"]), True), (money(a["equity_at_market"]), True),
         (share(a["drawdown"]), True), (a["level"], False), (a["state"], False), (money(a["es"]), True)]
        for i, a in body["accounts"].items()
    ]  # fmt: skip
    head = ("account", "type", "balance", "equity at market", "drawdown", "protection level", "trading state", "ES")
    return _table(head, rows)


def _positions(body: dict[str, Any]) -> str:
    rows = [
        [(p["account_id"], False), (p["symbol"], False), (p["kind"], False), (f"{p['quantity']:g}", True),
         (f"{p['strike']:g}", True), (p["expiry"] or "", False), (money(p["premium"]), True)]
        for p in body["positions"]
    ]  # fmt: skip
    return _table(("account", "symbol", "kind", "quantity", "strike", "expiry", "premium"), rows, "no open positions")


def _metrics(body: dict[str, Any]) -> str:
    names = ["portfolio", *body["accounts"]]
    cols = [body["metrics"], *(a["metrics"] for a in body["accounts"].values())]
    rows = [[(name, False), *((number(c.get(name)), True) for c in cols)] for name in METRIC_NAMES]
    note = f'<p class="note">from {body["metrics_days"]} daily equity marks (at least 3 are needed)</p>'
    return note + _table(("metric", *names), rows)


def _stress(body: dict[str, Any]) -> str:
    if body["stress"] is None:
        return f'<p class="note">no stress results: {escape(body["stress_note"])}</p>'
    rows = [
        [(r["scenario"], False), (money(r["pnl"]), True), (share(r["share_of_equity"]), True),
         ("..".join(r["window"]) if r["window"] else "", False)]
        for r in body["stress"]
    ]  # fmt: skip
    return _table(("scenario", "P&L", "share of equity", "window"), rows)


def _execution(body: dict[str, Any]) -> str:
    ex = body["execution"]
    rows = [
        [("orders", False), (ex["orders"], True)],
        [("contracts filled / ordered", False), (f"{ex['contracts_filled']:g} / {ex['contracts_ordered']:g}", True)],
        [("fill rate", False), (share(ex["fill_rate"]), True)],
        [("average shortfall vs arrival mid (bps)", False), (number(ex["avg_shortfall_bps"]), True)],
        [("worst shortfall (bps)", False), (number(ex["worst_shortfall_bps"]), True)],
        [("average slippage vs VWAP (bps)", False), (number(ex["avg_vwap_slippage_bps"]), True)],
        [("average slippage vs TWAP (bps)", False), (number(ex["avg_twap_slippage_bps"]), True)],
        [("average impact (bps)", False), (number(ex["avg_impact_bps"]), True)],
        [("commissions", False), (money(ex["commission"]), True)],
    ]
    return _table(("execution", "value"), rows)


def _alerts(body: dict[str, Any]) -> str:
    violations = body["violations"]
    if violations is None:
        v = f'<p class="note">compliance not checked: {escape(body["market_note"])}</p>'
    else:
        v = _table(
            ("check", "severity", "account", "message"),
            [[(x["check"], False), (x["severity"], False), (x["account_id"], False), (x["message"], False)]
             for x in violations],
            "no compliance violations",
        )  # fmt: skip
    a = _table(
        ("at", "severity", "code", "status", "message"),
        [[(x["at"], False), (x["severity"], False), (x["code"], False), (x["status"], False), (x["message"], False)]
         for x in body["alerts"]],
        "no alerts in this period",
    )  # fmt: skip
    return f"<h3>Compliance violations</h3>{v}<h3>Alerts ({body['open_alerts']} open)</h3>{a}"


def _charts(body: dict[str, Any]) -> str:
    series = body["series"]
    equity = line_chart("Equity curve", [(d, v) for d, v in series["equity"]])
    drawdown = line_chart(
        "Drawdown from the equity peak",
        [(d, v) for d, v in series["drawdown"]],
        colour="#b00020",
        fmt=share,
        axis=share,
    )
    weeks = bar_chart("Week-type distribution (this period)", list(body["week_types"].items()))
    es = line_chart(
        "ES history (97.5%, 1 day, at each end of day)", [(d, v) for d, v in series["es"]], colour="#8a5a00"
    )
    return f'<div class="charts">{equity}{drawdown}{weeks}{es}</div>'


def _weekly(body: dict[str, Any]) -> str:
    w = body["weekly"]
    positions = _table(
        ("account", "symbol", "week type", "action", "outcome"),
        [[(x["account_id"], False), (x["symbol"], False), (x["week_type"], False), (x["action"], False),
          (x["outcome"], False)] for x in w["positions"]],
        "no decisions this week",
    )  # fmt: skip
    moves = _table(("symbol", "move"), [[(s, False), (share(m), True)] for s, m in w["moves"].items()], "no moves")
    returns = _table(
        ("account", "actual return", "expected (weekly target)"),
        [[(a, False), (share(r["actual"]), True), (share(r["expected"]), True)] for a, r in w["returns"].items()],
    )
    deviations = _table(
        ("decision", "account", "symbol", "outcome", "approval", "failed rules"),
        [[(d["decision_id"], False), (d["account_id"], False), (d["symbol"], False), (d["outcome"], False),
          (d["approval_status"], False), (", ".join(d["failed"]), False)] for d in w["deviations"]],
        "no protocol deviations",
    )  # fmt: skip
    near = (
        f"<p>near a fork: {escape(', '.join(body['near_fork']) or 'none')}; "
        f"near a merge: {escape(', '.join(body['near_merge']) or 'none')}</p>"
    )
    return _section(
        "The week (PROTOCOL section 11)",
        f"<h3>Week type per position</h3>{positions}<h3>Moves</h3>{moves}<h3>Actual against expected return</h3>"
        f"{returns}<h3>Protocol deviations</h3>{deviations}{near}",
    )


def _quarterly(body: dict[str, Any]) -> str:
    q = body["quarterly"]
    reinvest = _table(
        ("account", "kind", "amount"),
        [
            [(a, False), (k, False), (money(v), True)]
            for a, kinds in q["reinvestment"].items()
            for k, v in kinds.items()
        ],
        "no reinvestment this quarter",
    )
    freq = _table(
        ("week type", "share"), [[(k, False), (share(v), True)] for k, v in q["week_type_frequencies"].items()]
    )
    attribution = _table(
        ("account", "P&L", "return", "share of the portfolio's P&L"),
        [[(a, False), (money(r["pnl"]), True), (share(r["return"]), True), (share(r["share"]), True)]
         for a, r in q["attribution"].items()],
    )  # fmt: skip
    return _section(
        "The quarter (PROTOCOL section 11)",
        f"<p>portfolio P&amp;L over the quarter: {money(q['pnl'])}</p><h3>Reinvestment</h3>{reinvest}"
        f"<h3>Week-type frequencies</h3>{freq}<h3>Return attribution</h3>{attribution}",
    )


def render(body: dict[str, Any]) -> str:
    """The whole page of a report body."""
    pnl = body["pnl"]
    system = body["system"]
    title = f"{body['kind'].title()} report for {body['portfolio_id']}"
    kpis = "".join(
        (
            _kpi("equity at market", money(body["equity_at_market"]), "equity_at_market"),
            _kpi("P&L today", money(pnl["day"]), "pnl_day"),
            _kpi("P&L this period", money(pnl["period"]), "pnl_period"),
            _kpi("P&L since start", money(pnl["since_start"]), "pnl_since_start"),
            _kpi("ES (97.5%, 1 day)", money(body["es"]), "es"),
            _kpi(
                "system trading state (VIX breakers)",
                f"{system['state']} (VIX {system['vix']:.2f})" if system else "n/a (no VIX)",
                "system_state",
            ),
            _kpi("decisions", str(body["decisions"]), "decisions"),
            _kpi("open alerts", str(body["open_alerts"]), "open_alerts"),
        )
    )
    week_types = _table(("week type", "decisions"), [[(k, False), (v, True)] for k, v in body["week_types"].items()])
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">{escape(body["from"][:16])} to {escape(body["to"][:16])} &middot; ledger equity '
        f"{escape(money(body['equity']))} &middot; capital in {escape(money(body['capital']))}</p>",
        f'<div class="kpis">{kpis}</div>',
        _section("Charts", _charts(body)),
        _section("Balances, drawdown levels and trading states", _accounts(body)),
        _section("Positions", _positions(body)),
        _section("Week types", week_types),
        _section("Risk metrics", _metrics(body)),
        _section("Stress results", _stress(body)),
        _section("Execution quality", _execution(body)),
        _section("Alerts and compliance", _alerts(body)),
    ]
    if "weekly" in body:
        parts.append(_weekly(body))
    if "quarterly" in body:
        parts.append(_quarterly(body))
    parts.append("</body></html>")
    return "".join(parts)


__all__ = ["money", "number", "render", "share"]
