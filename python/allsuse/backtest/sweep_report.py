"""What a sweep leaves behind: sweep.csv (one row per run), sweep.html (self-contained: a CAGR against max-drawdown
scatter with the efficient frontier marked, a CAGR heatmap for a two-parameter grid, the table, the walk-forward
choice) and the lines the command prints.

The output folder is written whole or not at all: everything goes to a temporary folder beside it, moved into
place at the end.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from allsuse.backtest.outputs import write_folder
from allsuse.backtest.summary import percent
from allsuse.backtest.sweep import METRICS, Row, SweepResult

CSV_NAME = "sweep.csv"
HTML_NAME = "sweep.html"
LEAD_COLUMNS = ("point", "sample", "start", "end")


def frontier(rows: Sequence[Row]) -> list[Row]:
    """The rows no other row dominates (another has a CAGR at least as high and a drawdown at least as low, one of
    them strictly), by increasing drawdown; rows with a missing figure are left out."""
    ok = [r for r in rows if math.isfinite(r.result.cagr) and math.isfinite(r.result.max_drawdown)]

    def dominated(r: Row) -> bool:
        a = r.result
        return any(
            (b.cagr >= a.cagr and b.max_drawdown <= a.max_drawdown)
            and (b.cagr > a.cagr or b.max_drawdown < a.max_drawdown)
            for b in (o.result for o in ok)
        )

    return sorted((r for r in ok if not dominated(r)), key=lambda r: (r.result.max_drawdown, -r.result.cagr))


def _cell(value: Any) -> str:
    """A parameter value as one CSV cell (lists as JSON)."""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _figure(name: str, value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return ""
    return f"{value:.2f}" if name == "final_equity" else f"{value:.6f}"


def csv_rows(result: SweepResult) -> list[list[str]]:
    """sweep.csv's header and rows."""
    out = [[*LEAD_COLUMNS, *result.keys, *METRICS]]
    for r in result.rows:
        figures = r.result.values()
        out.append(
            [
                str(r.point),
                r.sample,
                r.start.isoformat(),
                r.end.isoformat(),
                *(_cell(r.values[k]) for k in result.keys),
                *(_figure(m, figures[m]) for m in METRICS),
            ]
        )
    return out


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _label(r: Row, keys: Sequence[str]) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={_cell(r.values[k])}" for k in keys)


def scatter_png(result: SweepResult) -> str:
    """The CAGR against max-drawdown scatter, the frontier joined and marked, as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.grid_rows if math.isfinite(r.result.cagr) and math.isfinite(r.result.max_drawdown)]
    best = frontier(result.grid_rows)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    try:
        ax.scatter(
            [100 * r.result.max_drawdown for r in rows],
            [100 * r.result.cagr for r in rows],
            color="#8a99ad",
            label="point",
        )
        ax.plot(
            [100 * r.result.max_drawdown for r in best],
            [100 * r.result.cagr for r in best],
            "o-",
            color="#c0392b",
            label="efficient frontier (not dominated)",
        )
        labels: dict[tuple[float, float], list[str]] = {}
        for r in rows:  # points with the same figures share one label ("2,3")
            labels.setdefault((100 * r.result.max_drawdown, 100 * r.result.cagr), []).append(str(r.point))
        for xy, names in labels.items():
            ax.annotate(",".join(names), xy, fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("max drawdown (%)")
        ax.set_ylabel("CAGR (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        return _png(fig)
    finally:
        plt.close(fig)


def heatmap_png(result: SweepResult) -> str | None:
    """CAGR over the two parameters of a two-parameter grid (None otherwise), as base64 PNG."""
    if len(result.keys) != 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    kx, ky = result.keys
    rows = result.grid_rows
    xs: list[str] = []
    ys: list[str] = []
    for r in rows:
        if _cell(r.values[kx]) not in xs:
            xs.append(_cell(r.values[kx]))
        if _cell(r.values[ky]) not in ys:
            ys.append(_cell(r.values[ky]))
    grid = np.full((len(ys), len(xs)), np.nan)
    for r in rows:
        grid[ys.index(_cell(r.values[ky])), xs.index(_cell(r.values[kx]))] = 100 * r.result.cagr
    fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.6 * len(ys) + 2.5))
    try:
        image = ax.imshow(grid, cmap="RdYlGn", aspect="auto", origin="lower")
        ax.set_xticks(range(len(xs)), xs, rotation=30)
        ax.set_yticks(range(len(ys)), ys)
        ax.set_xlabel(kx)
        ax.set_ylabel(ky)
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.2f}%", ha="center", va="center", fontsize=8)
        fig.colorbar(image, ax=ax, label="CAGR (%)")
        return _png(fig)
    finally:
        plt.close(fig)


def summary_lines(result: SweepResult) -> list[str]:
    """What `allsuse sweep` prints: one line per run, the frontier, the walk-forward choice and warnings."""
    lines = []
    for r in result.rows:
        f = r.result
        lines.append(
            f"{r.sample:<12} point {r.point:>3} {r.start}..{r.end}  CAGR {_pct(f.cagr)}  max drawdown "
            f"{_share(f.max_drawdown)}  Sharpe {_num(f.sharpe)}  deployment {_share(f.deployment)}  trades {f.trades}  "
            f"final {f.final_equity:,.2f}  [{_label(r, result.keys)}]"
        )
    lines.append(
        "efficient frontier (CAGR against max drawdown): points "
        + ", ".join(str(r.point) for r in frontier(result.grid_rows))
    )
    if result.split is not None and result.best is not None:
        best = next(r for r in result.rows if r.sample == "out-best")
        defaults = next(r for r in result.rows if r.sample == "out-defaults")
        lines.append(
            f"walk-forward: objective {result.objective}; chosen on {result.rows[0].start}..{result.rows[0].end}: "
            f"point {result.best} [{_label(best, result.keys)}]"
        )
        for name, r in (("chosen point", best), ("defaults", defaults)):
            f = r.result
            lines.append(
                f"out of sample {r.start}..{r.end} {name:<12}: CAGR {_pct(f.cagr)}  max drawdown "
                f"{_share(f.max_drawdown)}  Sharpe {_num(f.sharpe)}  final {f.final_equity:,.2f}"
            )
    lines.extend(f"warning: {w}" for w in result.warnings)
    return lines


def _pct(v: float) -> str:
    return percent(v, signed=True)


def _share(v: float) -> str:
    return percent(v)


def _num(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.3f}"


def html_page(result: SweepResult) -> str:
    """sweep.html: one self-contained page (images inline as base64 PNG, no script, no network)."""
    e = html.escape
    table = csv_rows(result)
    head = "".join(f"<th>{e(c)}</th>" for c in table[0])
    on_frontier = {id(r) for r in frontier(result.grid_rows)}
    body_rows = []
    for r, cells in zip(result.rows, table[1:], strict=True):
        cls = ' class="frontier"' if id(r) in on_frontier else ""
        body_rows.append(f"<tr{cls}>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>allsuse sweep</title><style>",
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:12px}",
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}tr.frontier{background:#fdecea}",
        "pre{background:#f6f6f6;padding:1em}</style></head><body>",
        f"<h1>Parameter sweep: {len(result.grid_rows)} points</h1>",
        "<p>Parameters: " + ", ".join(f"<code>{e(k)}</code>" for k in result.keys) + "</p>",
        "<h2>CAGR against max drawdown</h2>",
        "<p>Points on the efficient frontier (no other point has a higher CAGR and a lower drawdown) are joined in "
        "red and shaded in the table.</p>",
        f"<img alt='CAGR against max drawdown' src='data:image/png;base64,{scatter_png(result)}'>",
    ]
    heat = heatmap_png(result)
    if heat is not None:
        parts += ["<h2>CAGR heatmap</h2>", f"<img alt='CAGR heatmap' src='data:image/png;base64,{heat}'>"]
    if result.split is not None:
        parts += [
            "<h2>Walk-forward</h2>",
            f"<p>Objective: {e(result.objective)}, measured before {result.split}; the chosen point and the "
            f"defaults then ran from {result.split}.</p>",
        ]
    parts += [
        "<h2>Summary</h2><pre>" + e("\n".join(summary_lines(result))) + "</pre>",
        f"<h2>Every run</h2><table><tr>{head}</tr>" + "".join(body_rows) + "</table>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_outputs(result: SweepResult, folder: Path) -> list[Path]:
    """Writes sweep.csv and sweep.html into `folder` all at once (outputs.write_folder: nothing partial is left)."""

    def fill(temp: Path) -> None:
        with (temp / CSV_NAME).open("w", newline="") as handle:
            csv.writer(handle).writerows(csv_rows(result))
        (temp / HTML_NAME).write_text(html_page(result))

    return write_folder(folder, fill)
