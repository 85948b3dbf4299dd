"""report.html: one self-contained page a portfolio manager reads after a backtest.

No network: the styles are inline, the charts are matplotlib PNGs embedded as base64 data URIs, fonts are the
reader's own sans-serif. Every text that comes from the data (symbols, account ids, warnings) is HTML-escaped.
Figures use the formatters of `summary`, so the strings the CLI prints appear verbatim in the page.

Parts: the headline (the protocol next to the benchmarks), equity curves, drawdowns, deployment, equity by account,
the week-type distribution, monthly returns, each account's weekly return against its target, the 17 metrics side
by side, costs, and the warnings.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import html
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from allsuse.backtest.run import BacktestRun
from allsuse.backtest.summary import (
    HEADINGS,
    PORTFOLIO,
    SeriesFigures,
    capital_of,
    cost_rows,
    label,
    money,
    percent,
    period_line,
    ratio,
    series_figures,
    summary_lines,
    warnings_of,
)
from allsuse.errors import InvalidInputError
from allsuse.protocol.settings import ProtocolConfig
from allsuse.risk import METRIC_NAMES

COLOURS = {PORTFOLIO: "#1d4e89", "buy_and_hold": "#d9822b", "put_write": "#2e8b57"}
ACCOUNT_COLOURS = ("#1d4e89", "#8e44ad", "#16a085", "#c0392b", "#7f8c8d", "#b7950b")
PERCENT_METRICS = {
    "total_return",
    "annual_return",
    "annual_volatility",
    "max_drawdown",
    "downside_risk",
    "value_at_risk",
    "expected_shortfall",
    "win_rate",
}
METRIC_NOTES = {"value_at_risk": " (95%, daily)", "expected_shortfall": " (97.5%, daily)", "kurtosis": " (excess)"}

STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f5f8; color: #1f2933;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background: #102a43; color: #fff; padding: 28px 48px 24px; }
header h1 { margin: 0 0 6px; font-size: 26px; font-weight: 600; letter-spacing: .2px; }
header p { margin: 2px 0; color: #bcccdc; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 24px 48px; }
section { background: #fff; border-radius: 10px; box-shadow: 0 1px 3px rgba(16,42,67,.12);
  padding: 18px 24px 20px; margin: 0 0 20px; }
h2 { font-size: 18px; margin: 0 0 4px; color: #102a43; }
.note { color: #52606d; margin: 0 0 12px; font-size: 13px; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 14px; margin-bottom: 18px; }
.kpi { border: 1px solid #e4e7eb; border-radius: 8px; padding: 12px 14px; }
.kpi .name { color: #52606d; font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.kpi .value { font-size: 24px; font-weight: 600; color: #102a43; margin: 2px 0; }
.kpi .vs { color: #52606d; font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; border-bottom: 1px solid #e4e7eb; text-align: right; white-space: nowrap; }
th { color: #52606d; font-weight: 600; font-size: 12px; background: #f8fafc; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; white-space: normal; }
tr.protocol td { font-weight: 600; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
img { width: 100%; height: auto; display: block; }
.monthly td, .monthly th { font-size: 12px; padding: 5px 5px; }
.monthly th { white-space: normal; vertical-align: bottom; }
.wide { overflow-x: auto; }
.good { color: #1e7b45; } .bad { color: #b42318; }
ul.warnings { margin: 8px 0 0; padding-left: 20px; } ul.warnings li { margin: 3px 0; }
footer { color: #7b8794; font-size: 12px; text-align: center; margin-top: 8px; }
"""


def esc(text: object) -> str:
    """Text from the data, safe in HTML content and attributes."""
    return html.escape(str(text), quote=True)


# --- charts ---------------------------------------------------------------------------------------------------


def _figure(height: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(10.8, height), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color="#e4e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#9aa5b1")
    ax.tick_params(colors="#52606d", labelsize=9)
    return fig, ax


def _legend(ax: Any) -> None:
    """One row of legend entries above the plot, clear of the lines."""
    ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=6, fontsize=9, borderaxespad=0.2)


def _png(fig: Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _short_money(value: float, _pos: object = None) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"${value / size:,.2f}{suffix}".replace(".00" + suffix, suffix)
    return f"${value:,.0f}"


def _series_colour(name: str, i: int) -> str:
    return COLOURS.get(name, ACCOUNT_COLOURS[i % len(ACCOUNT_COLOURS)])


def _equity_chart(run: BacktestRun, names: Sequence[str]) -> str:
    fig, ax = _figure(3.8)
    for i, name in enumerate(names):
        main = name == PORTFOLIO
        ax.plot(
            run.dates,
            run.equity[name],
            color=_series_colour(name, i),
            linewidth=2.2 if main else 1.3,
            label=label(name),
            zorder=3 if main else 2,
        )
    ax.axhline(capital_of(run), color="#9aa5b1", linewidth=0.8, linestyle="--")
    ax.yaxis.set_major_formatter(FuncFormatter(_short_money))
    _legend(ax)
    return _png(fig, "Equity of the protocol and the benchmarks")


def _drawdown(equity: np.ndarray, capital: float) -> np.ndarray:
    path = np.concatenate([[capital], np.asarray(equity, dtype=np.float64)])
    return (path / np.maximum.accumulate(path) - 1.0)[1:]


def _drawdown_chart(run: BacktestRun, names: Sequence[str]) -> str:
    fig, ax = _figure(3.0)
    capital = capital_of(run)
    for i, name in enumerate(names):
        dd = _drawdown(run.equity[name], capital)
        colour = _series_colour(name, i)
        if name == PORTFOLIO:
            ax.fill_between(run.dates, dd, 0, color=colour, alpha=0.25, linewidth=0, zorder=2)
        ax.plot(run.dates, dd, color=colour, linewidth=1.8 if name == PORTFOLIO else 1.1, label=label(name))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    _legend(ax)
    return _png(fig, "Drawdown from the running peak")


def _deployment_chart(run: BacktestRun) -> str:
    fig, ax = _figure(2.6)
    deployed = np.asarray(run.deployment, dtype=np.float64)
    ax.fill_between(run.dates, deployed, 0, color=COLOURS[PORTFOLIO], alpha=0.3, linewidth=0)
    ax.plot(run.dates, deployed, color=COLOURS[PORTFOLIO], linewidth=1.4, label=label(PORTFOLIO))
    for i, (name, bench) in enumerate(run.benchmarks.items()):
        if bench.deployment is not None and len(bench.deployment) == len(run.dates):
            ax.plot(run.dates, bench.deployment, color=_series_colour(name, i), linewidth=1.0, label=label(name))
    ax.set_ylim(0, max(1.0, float(np.nanmax(deployed)) if deployed.size else 1.0) * 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    _legend(ax)
    return _png(fig, "Share of equity committed at each close")


def _accounts_chart(run: BacktestRun, accounts: Sequence[str]) -> str:
    fig, ax = _figure(3.0)
    for i, account in enumerate(accounts):
        ax.plot(
            run.dates,
            run.equity[account],
            color=ACCOUNT_COLOURS[i % len(ACCOUNT_COLOURS)],
            linewidth=1.4,
            label=account,
        )
    ax.yaxis.set_major_formatter(FuncFormatter(_short_money))
    _legend(ax)
    return _png(fig, "Equity of each account")


def _week_type_colour(code: str, i: int) -> str:
    families = {"P": ("#1d4e89", "#3f7cbf", "#7fa7d9", "#b9d0ec"), "C": ("#2e8b57", "#58b07f", "#94d0ad", "#c9e8d5")}
    if code.startswith("W-"):
        return "#b8c2cc"
    shades = families.get(code[:1], ("#d9822b", "#e9a25f", "#f3c89b", "#f8e1c8"))
    return shades[i % len(shades)]


def _week_types_chart(week_types: dict[str, dict[str, int]]) -> str:
    codes = sorted({c for counts in week_types.values() for c in counts})
    fig, ax = _figure(0.6 + 0.55 * max(len(week_types), 1))
    names = list(week_types)
    left = np.zeros(len(names))
    seen: dict[str, int] = {}
    for code in codes:
        family = code[:1]
        seen[family] = seen.get(family, -1) + 1
        counts = np.array([week_types[n].get(code, 0) for n in names], dtype=np.float64)
        totals = np.array([max(sum(week_types[n].values()), 1) for n in names], dtype=np.float64)
        share = counts / totals
        ax.barh(names, share, left=left, color=_week_type_colour(code, seen[family]), label=code, height=0.6)
        left += share
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=min(len(codes), 8), fontsize=8)
    return _png(fig, "Week types by account")


# --- tables ---------------------------------------------------------------------------------------------------


def _table(
    head: Iterable[str], rows: Iterable[Iterable[str]], *, cls: str = "", row_classes: Sequence[str] = ()
) -> str:
    """A table from already-escaped cells."""
    out = [f'<table class="{cls}">' if cls else "<table>", "<thead><tr>"]
    out += [f"<th>{h}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        klass = row_classes[i] if i < len(row_classes) and row_classes[i] else ""
        out.append(f'<tr class="{klass}">' if klass else "<tr>")
        out += [f"<td>{c}</td>" for c in row]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _swatch(name: str, i: int = 0) -> str:
    return f'<span class="swatch" style="background:{_series_colour(name, i)}"></span>{esc(label(name))}'


def _signed(value: float) -> str:
    """A signed percent, coloured by its sign."""
    text = esc(percent(value, signed=True))
    if not math.isfinite(value) or value == 0:
        return text
    return f'<span class="{"good" if value > 0 else "bad"}">{text}</span>'


def _period_ends(dates: Sequence[dt.date], key: Any) -> list[int]:
    """The index of the last session of each period (key(date) changes at a period's end)."""
    return [i for i in range(len(dates)) if i == len(dates) - 1 or key(dates[i + 1]) != key(dates[i])]


def period_returns(dates: Sequence[dt.date], equity: np.ndarray, capital: float, key: Any) -> dict[Any, float]:
    """Return of each period (month, year...) from the previous period's last close (the first from capital)."""
    out: dict[Any, float] = {}
    previous = capital
    for i in _period_ends(dates, key):
        out[key(dates[i])] = float(equity[i]) / previous - 1.0
        previous = float(equity[i])
    return out


def _cell_colour(value: float) -> str:
    if not math.isfinite(value) or value == 0:
        return ""
    strength = min(abs(value) / 0.06, 1.0) * 0.55 + 0.08
    rgb = "46,139,87" if value > 0 else "200,55,45"
    return f' style="background: rgba({rgb},{strength:.2f})"'


def _monthly_table(run: BacktestRun, names: Sequence[str]) -> str:
    capital = capital_of(run)
    monthly = period_returns(run.dates, run.equity[PORTFOLIO], capital, lambda d: (d.year, d.month))
    yearly = {name: period_returns(run.dates, run.equity[name], capital, lambda d: d.year) for name in names}
    head = ["Year", *calendar.month_abbr[1:], label(PORTFOLIO)] + [label(n) for n in names if n != PORTFOLIO]
    out = [
        '<div class="wide"><table class="monthly"><thead><tr>',
        *(f"<th>{esc(h)}</th>" for h in head),
        "</tr></thead><tbody>",
    ]
    for year in sorted({y for y, _ in monthly}):
        out.append(f"<tr><td>{year}</td>")
        for month in range(1, 13):
            value = monthly.get((year, month), math.nan)
            text = esc(percent(value, signed=True)) if (year, month) in monthly else ""
            out.append(f"<td{_cell_colour(value)}>{text}</td>")
        for name in names:
            value = yearly[name].get(year, math.nan)
            out.append(f"<td{_cell_colour(value)}><strong>{esc(percent(value, signed=True))}</strong></td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def weekly_returns(dates: Sequence[dt.date], equity: np.ndarray) -> np.ndarray:
    """Returns between consecutive week-end closes (the last session of each ISO week), skipping closes that are
    not finite and positive (an account merged away)."""
    ends = _period_ends(dates, lambda d: d.isocalendar()[:2])
    weekly = np.asarray(equity, dtype=np.float64)[ends]
    valid = weekly[np.isfinite(weekly) & (weekly > 0)]
    return valid[1:] / valid[:-1] - 1.0 if valid.size > 1 else np.zeros(0)


def _accounts(run: BacktestRun) -> list[str]:
    raw = run.result.get("accounts")
    ids = list(raw) if isinstance(raw, dict) else []
    return [a for a in ids if a in run.equity]


def _account_info(run: BacktestRun, account: str) -> dict[str, Any]:
    raw = run.result.get("accounts")
    info = raw.get(account) if isinstance(raw, dict) else None
    return info if isinstance(info, dict) else {}


def _accounts_table(run: BacktestRun, accounts: Sequence[str], config: ProtocolConfig) -> str:
    rows = []
    for account in accounts:
        info = _account_info(run, account)
        kind = str(info.get("type", ""))
        target = config.account(kind).weekly_target
        weekly = weekly_returns(run.dates, run.equity[account])
        mean = float(np.mean(weekly)) if weekly.size else math.nan
        hit = float(np.mean(weekly >= target)) if weekly.size else math.nan
        finite = np.asarray(run.equity[account], dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        dd = float(np.min(finite / np.maximum.accumulate(finite) - 1.0)) if finite.size else math.nan
        symbols = info.get("symbols")
        rows.append(
            [
                esc(account),
                esc(kind),
                f'<span class="text">{esc(", ".join(map(str, symbols)) if isinstance(symbols, list) else "")}</span>',
                esc(money(float(finite[-1]) if finite.size else math.nan)),
                _signed(mean),
                esc(percent(target, signed=True)),
                _signed(mean - target),
                esc(f"{percent(hit)} of {weekly.size}"),
                esc(percent(dd)),
            ]
        )
    head = [
        "Account",
        "Type",
        "Symbols",
        "Final equity",
        "Mean weekly return",
        "Weekly target",
        "Against target",
        "Weeks at or above target",
        "Max drawdown",
    ]
    return _table(head, rows)


def _week_types(run: BacktestRun, accounts: Sequence[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for account in accounts:
        raw = _account_info(run, account).get("week_types")
        if isinstance(raw, dict):
            out[account] = {str(k): int(v) for k, v in raw.items() if isinstance(v, int | float)}
    return out


def _week_types_table(week_types: dict[str, dict[str, int]]) -> str:
    codes = sorted({c for counts in week_types.values() for c in counts})
    rows = [
        [esc(account), *(esc(counts.get(c, 0)) for c in codes), esc(sum(counts.values()))]
        for account, counts in week_types.items()
    ]
    return _table(["Account", *map(esc, codes), "Weeks"], rows)


def _metric_value(name: str, value: float) -> str:
    return percent(value) if name in PERCENT_METRICS else ratio(value)


def _metrics_table(figures: Sequence[SeriesFigures]) -> str:
    rows = []
    for name in METRIC_NAMES:
        title = name.replace("_", " ").capitalize() + METRIC_NOTES.get(name, "")
        rows.append([esc(title), *(esc(_metric_value(name, f.metrics.get(name, math.nan))) for f in figures)])
    return _table(["Metric", *(_swatch(f.name, i) for i, f in enumerate(figures))], rows)


# --- the page -------------------------------------------------------------------------------------------------


def _kpis(figures: Sequence[SeriesFigures]) -> str:
    protocol, others = figures[0], figures[1:]
    cards = []
    for title, index in (("Final equity", 0), ("CAGR", 1), ("Max drawdown", 3), ("Sharpe", 4)):
        vs = " &middot; ".join(f"{esc(f.label)} {esc(f.cells()[index])}" for f in others)
        cards.append(
            f'<div class="kpi"><div class="name">{esc(title)}</div>'
            f'<div class="value">{esc(protocol.cells()[index])}</div><div class="vs">{vs}</div></div>'
        )
    return f'<div class="kpis">{"".join(cards)}</div>'


def _header(run: BacktestRun) -> str:
    parts = [f"<h1>Backtest report</h1><p>{esc(period_line(run))}</p>"]
    symbols = run.result.get("symbols")
    if isinstance(symbols, dict) and symbols:
        text = " &middot; ".join(
            f"{esc(kind)}: {esc(', '.join(map(str, syms)) if isinstance(syms, list) else syms)}"
            for kind, syms in symbols.items()
        )
        parts.append(f"<p>Accounts and symbols: {text}</p>")
    costs = run.result.get("costs")
    if isinstance(costs, dict) and "commission_per_contract" in costs:
        parts.append(
            "<p>Costs: "
            + esc(
                f"${costs.get('commission_per_contract')} a contract, ${costs.get('commission_per_share')} a share, "
                f"spread {costs.get('spread')} of the option price (one tick at least), rate {costs.get('rate')}"
            )
            + "</p>"
        )
    data = run.result.get("data")
    notes = data.get("notes") if isinstance(data, dict) else None
    if isinstance(notes, list):
        parts += [f"<p>Data: {esc(note)}</p>" for note in notes]
    proxy_days = run.result.get("proxy_days")
    if isinstance(proxy_days, int) and proxy_days > 0:
        parts.append(f"<p>Volatility: the VIX proxy (realised volatility x ratio) on {proxy_days} sessions</p>")
    return "<header>" + "".join(parts) + "</header>"


def _section(title: str, note: str, body: str) -> str:
    return f'<section><h2>{esc(title)}</h2><p class="note">{note}</p>{body}</section>'


def render(run: BacktestRun, config: ProtocolConfig) -> str:
    """The whole page as a string."""
    figures = series_figures(run)
    lines = summary_lines(run)
    names = [f.name for f in figures]
    accounts = _accounts(run)
    week_types = _week_types(run, accounts)
    headline = _table(
        ["Series", *HEADINGS],
        [[_swatch(f.name, i), *(esc(c) for c in f.cells())] for i, f in enumerate(figures)],
        row_classes=["protocol"],
    )
    costs = _table(
        ["Costs", "Commissions", "Spread", "Interest", "Trades"],
        [
            [esc(c.label), esc(money(c.commissions)), esc(money(c.spread_costs)), esc(money(c.interest)), esc(c.trades)]
            for c in cost_rows(run)
        ],
    )
    warnings = warnings_of(run)
    warning_list = (
        '<ul class="warnings">' + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>" if warnings else ""
    )
    body = [
        _header(run),
        "<main>",
        _section(
            "The protocol against the benchmarks",
            "CAGR, volatility, max drawdown and Sharpe from daily returns (252 sessions a year, risk-free rate 0), "
            "the first day's measured from the starting capital; benchmarks run on the same data, costs and rate.",
            _kpis(figures) + headline,
        ),
        _section("Equity", "Daily closing equity; the dashed line is the starting capital.", _equity_chart(run, names)),
        _section("Drawdown", "Fall from the running peak of each series.", _drawdown_chart(run, names)),
        _section(
            "Deployment",
            "Share of equity committed at each close: put collateral and shares held at market.",
            _deployment_chart(run),
        ),
    ]
    if accounts:
        body.append(
            _section("Equity by account", "Daily closing equity of each account.", _accounts_chart(run, accounts))
        )
    if week_types:
        body.append(
            _section(
                "Week types",
                "How each account's weeks were classified (PROTOCOL section 4), as a share of its weeks.",
                _week_types_chart(week_types) + _week_types_table(week_types),
            )
        )
    body += [
        _section(
            "Monthly returns",
            f"{esc(label(PORTFOLIO))} by month, from the previous month's last close; each year's return of every "
            "series on the right.",
            _monthly_table(run, names),
        ),
    ]
    if accounts:
        body.append(
            _section(
                "Weekly return against target",
                "Mean return between week-end closes against the account type's weekly target (config/protocol.yaml).",
                _accounts_table(run, accounts, config),
            )
        )
    body += [
        _section(
            "Performance metrics",
            "The 17 metrics of allsuse.risk.metrics (empyrical's definitions) on daily returns, side by side.",
            _metrics_table(figures),
        ),
        _section("Costs", "Commissions, spread crossed and interest earned on idle cash and collateral.", costs),
        _section("Warnings", esc(lines[-1]), warning_list),
        "<footer>Written by allsuse; self-contained (no network).</footer>",
        "</main>",
    ]
    title = f"Backtest report {run.dates[0].isoformat()} .. {run.dates[-1].isoformat()}"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>" + "".join(body) + "</body></html>\n"
    )


def write_report(run: BacktestRun, path: Path, config: ProtocolConfig) -> None:
    """Writes report.html at `path` (whole or not at all: written beside it, then renamed)."""
    if not path.parent.is_dir():
        raise InvalidInputError.of("path", f"{path.parent} is not a directory")
    page = render(run, config)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["period_returns", "render", "weekly_returns", "write_report"]
