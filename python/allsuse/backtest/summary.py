"""What the CLI prints after a backtest, and the one place figures are formatted.

The protocol's series ("portfolio") and each benchmark get the same five figures: final equity, CAGR, volatility,
max drawdown and Sharpe, from allsuse.risk.metrics (the 17 metrics, in Rust, checked against empyrical) on daily
returns measured from the starting capital (so the first day's costs count). `money`, `percent` and `ratio` format
every figure of both the CLI lines and report.html, so the same strings appear in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from allsuse import risk
from allsuse.backtest.benchmarks import BUY_AND_HOLD, PUT_WRITE
from allsuse.backtest.run import BacktestRun, SeriesRun
from allsuse.errors import InvalidInputError

PORTFOLIO = "portfolio"
LABELS = {PORTFOLIO: "Protocol", BUY_AND_HOLD: "Buy and hold", PUT_WRITE: "Put-write (PUT-style)"}
NA = "n/a"


def money(value: float) -> str:
    """Dollars with thousands separators and cents: $1,234,567.89, -$5.00 (n/a when not finite)."""
    if not math.isfinite(value):
        return NA
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


def percent(value: float, *, signed: bool = False) -> str:
    """A fraction as a percent with two decimals: 12.35% (+12.35% when `signed`; n/a when not finite)."""
    if not math.isfinite(value):
        return NA
    return f"{value * 100:+,.2f}%" if signed else f"{value * 100:,.2f}%"


def ratio(value: float) -> str:
    """A ratio with two decimals (n/a when not finite)."""
    return f"{value:,.2f}" if math.isfinite(value) else NA


def label(name: str) -> str:
    """How a series is named on screen."""
    return LABELS.get(name, name)


@dataclass(frozen=True)
class SeriesFigures:
    """The figures of one daily equity series: the five headline ones and all 17 metrics."""

    name: str
    label: str
    final_equity: float
    cagr: float
    volatility: float
    max_drawdown: float
    sharpe: float
    metrics: dict[str, float]
    returns: np.ndarray

    def cells(self) -> tuple[str, str, str, str, str]:
        """The formatted headline figures, as printed and as shown in the report."""
        return (
            money(self.final_equity),
            percent(self.cagr, signed=True),
            percent(self.volatility),
            percent(self.max_drawdown),
            ratio(self.sharpe),
        )


HEADINGS = ("Final equity", "CAGR", "Volatility", "Max drawdown", "Sharpe")


def capital_of(run: BacktestRun) -> float:
    """The starting capital: result.json's `capital`, else the first close's portfolio equity."""
    raw = run.result.get("capital")
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw) and raw > 0:
        return float(raw)
    return float(run.equity[PORTFOLIO][0])


def check(run: BacktestRun) -> None:
    """A run the summary and the report can read: dates, a portfolio series, every series as long as the dates."""
    if not run.dates:
        raise InvalidInputError.of("dates", "the run has no sessions")
    if PORTFOLIO not in run.equity:
        raise InvalidInputError.of(f"equity.{PORTFOLIO}", "the run has no portfolio series")
    n = len(run.dates)
    for name, series in run.equity.items():
        if np.asarray(series).shape != (n,):
            raise InvalidInputError.of(f"equity.{name}", f"has {np.asarray(series).size} values for {n} dates")
    for name, bench in run.benchmarks.items():
        if np.asarray(bench.equity).shape != (n,):
            raise InvalidInputError.of(
                f"benchmarks.{name}", f"has {np.asarray(bench.equity).size} values for {n} dates"
            )


def daily_returns(equity: np.ndarray, capital: float) -> np.ndarray:
    """Close-to-close returns, the first from the starting capital."""
    path: np.ndarray = np.concatenate([[capital], np.asarray(equity, dtype=np.float64)])
    returns: np.ndarray = path[1:] / path[:-1] - 1.0
    return returns


def benchmark_names(run: BacktestRun) -> list[str]:
    """The benchmarks of the run, in the order they were added."""
    names = list(run.benchmarks)
    names += [n for n in (BUY_AND_HOLD, PUT_WRITE) if n in run.equity and n not in names]
    return names


def figures_of(name: str, equity: np.ndarray, capital: float) -> SeriesFigures:
    """The figures of one series (NaN where the series is too short or not finite)."""
    returns = daily_returns(equity, capital)
    finite = returns.size >= 2 and bool(np.all(np.isfinite(returns)))
    metrics = risk.metrics(returns, periods_per_year=252) if finite else dict.fromkeys(risk.METRIC_NAMES, math.nan)
    last = float(equity[-1])
    return SeriesFigures(
        name=name,
        label=label(name),
        final_equity=last,
        cagr=metrics["annual_return"],
        volatility=metrics["annual_volatility"],
        max_drawdown=metrics["max_drawdown"],
        sharpe=metrics["sharpe_ratio"],
        metrics=metrics,
        returns=returns,
    )


def series_figures(run: BacktestRun) -> list[SeriesFigures]:
    """The protocol's figures first, then each benchmark's."""
    check(run)
    capital = capital_of(run)
    out = [figures_of(PORTFOLIO, run.equity[PORTFOLIO], capital)]
    for name in benchmark_names(run):
        series = run.equity.get(name)
        out.append(figures_of(name, run.benchmarks[name].equity if series is None else series, capital))
    return out


@dataclass(frozen=True)
class CostRow:
    """What one series paid and earned."""

    label: str
    commissions: float
    spread_costs: float
    interest: float
    trades: int


def cost_rows(run: BacktestRun) -> list[CostRow]:
    """The protocol's costs (result.json's `costs` totals, else summed from its trades), then each benchmark's."""
    totals = run.result.get("costs") if isinstance(run.result.get("costs"), dict) else {}
    assert isinstance(totals, dict)

    def total(key: str, fallback: float) -> float:
        value = totals.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else fallback

    rows = [
        CostRow(
            label(PORTFOLIO),
            total("commissions", sum(t.commission for t in run.trades)),
            total("spread_costs", sum(t.spread_cost for t in run.trades)),
            total("interest", math.nan),
            len(run.trades),
        )
    ]
    for name in benchmark_names(run):
        bench: SeriesRun | None = run.benchmarks.get(name)
        if bench is not None:
            rows.append(CostRow(label(name), bench.commissions, bench.spread_costs, bench.interest, len(bench.trades)))
    return rows


def warnings_of(run: BacktestRun) -> list[str]:
    """The run's warnings (result.json's) and the benchmarks'."""
    raw = run.result.get("warnings")
    out = [str(w) for w in raw] if isinstance(raw, list) else []
    for bench in run.benchmarks.values():
        out += bench.warnings
    return out


def period_line(run: BacktestRun) -> str:
    """Backtest FIRST .. LAST, N sessions, capital $X."""
    return (
        f"Backtest {run.dates[0].isoformat()} .. {run.dates[-1].isoformat()}, {len(run.dates)} sessions, "
        f"capital {money(capital_of(run))}"
    )


def summary_lines(run: BacktestRun) -> list[str]:
    """The lines the CLI prints: the period, the protocol's five figures next to each benchmark's, the costs of
    each series, and how many warnings the run produced (they are listed in result.json and report.html)."""
    rows = series_figures(run)
    costs = cost_rows(run)
    width = max(len(x) for x in [*(f.label for f in rows), *(c.label for c in costs)]) + 2
    lines = [period_line(run), "Series".ljust(width) + "".join(h.rjust(16) for h in HEADINGS)]
    for f in rows:
        lines.append(f.label.ljust(width) + "".join(c.rjust(16) for c in f.cells()))
    lines.append("Costs".ljust(width) + "".join(h.rjust(16) for h in ("Commissions", "Spread", "Interest", "Trades")))
    for c in costs:
        cells = (money(c.commissions), money(c.spread_costs), money(c.interest), str(c.trades))
        lines.append(c.label.ljust(width) + "".join(x.rjust(16) for x in cells))
    count = len(warnings_of(run))
    lines.append(f"Warnings: {count}" + (" (listed in result.json and report.html)" if count else ""))
    return lines


__all__ = [
    "HEADINGS",
    "LABELS",
    "PORTFOLIO",
    "CostRow",
    "SeriesFigures",
    "cost_rows",
    "money",
    "percent",
    "ratio",
    "series_figures",
    "summary_lines",
    "warnings_of",
]
