"""The summary the CLI prints and report.html: figures checked against independent computations, the page
self-contained and escaped, and rendered by headless Chromium (a screenshot that is not blank, the CLI's strings in
the page text).

The run is built from real closes (../shared/data) with the benchmarks as the series: Gen-Acc puts on AMD and BAC,
Rev-Acc puts on AAPL and MSFT, Com-Acc holds JNJ and PG; the benchmarks run on all six."""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import html
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from allsuse import indicators
from allsuse.backtest.benchmarks import BUY_AND_HOLD, PUT_WRITE, buy_and_hold, put_write
from allsuse.backtest.costs import CostModel
from allsuse.backtest.report import write_report
from allsuse.backtest.run import BacktestRun
from allsuse.backtest.summary import money, percent, ratio, series_figures, summary_lines
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.risk import METRIC_NAMES

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stocks20_close_1990_2014.csv"
FIRST, LAST = dt.date(2013, 1, 2), dt.date(2014, 12, 31)
CAPITAL = 1_000_000.0
ACCOUNTS = {
    "backtest/gen-1": ("gen", ("AMD", "BAC"), 0.4),
    "backtest/rev-1": ("rev", ("AAPL", "MSFT"), 0.3),
    "backtest/com-1": ("com", ("JNJ", "PG"), 0.3),
}
# Week types as the engine counted them in a real run (input data for the distribution).
WEEK_TYPES = {
    "backtest/gen-1": {"P-AWL": 9, "P-EW": 38, "W-IDL": 57},
    "backtest/rev-1": {"C-PNO": 3, "C-WAP": 10, "P-AWL": 6, "P-EW": 41, "W-IDL": 44},
    "backtest/com-1": {"C-PNO": 44, "C-WAP": 30, "P-EW": 20, "W-IDL": 10},
}
HOSTILE = "AMD <script>alert('x')</script> & <b>bold</b> needs a second look"


def _closes() -> tuple[list[dt.date], dict[str, np.ndarray], dict[str, np.ndarray]]:
    with DATA.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    keep = [r for r in rows[1:] if FIRST - dt.timedelta(days=120) <= dt.date.fromisoformat(r[0]) <= LAST]
    days = [dt.date.fromisoformat(r[0]) for r in keep]
    arr = np.asarray([[float(x) for x in r[1:]] for r in keep])
    start = next(i for i, d in enumerate(days) if d >= FIRST)
    closes = {name: arr[start:, j].copy() for j, name in enumerate(header[1:])}
    vols = {name: indicators.hist_vol(arr[:, j], 20)[start:] * 1.2 for j, name in enumerate(header[1:])}
    return days[start:], closes, vols


def build_run() -> BacktestRun:
    """The run the tests read (see the module docstring)."""
    days, closes, vols = _closes()
    costs = CostModel()
    equity: dict[str, np.ndarray] = {}
    deployed = np.zeros(len(days))
    trades = []
    accounts = {}
    for account_id, (kind, symbols, share) in ACCOUNTS.items():
        c = {s: closes[s] for s in symbols}
        v = {s: vols[s] for s in symbols}
        series = (
            buy_and_hold(days, c, CAPITAL * share, costs)
            if kind == "com"
            else put_write(days, c, v, CAPITAL * share, costs, cash_settled=set())
        )
        equity[account_id] = series.equity
        assert series.deployment is not None
        deployed += series.deployment * series.equity
        trades += series.trades
        accounts[account_id] = {"type": kind, "symbols": list(symbols), "week_types": WEEK_TYPES[account_id]}
    equity["portfolio"] = sum(equity[a] for a in ACCOUNTS)
    symbols = [s for _, syms, _ in ACCOUNTS.values() for s in syms]
    bench = {
        BUY_AND_HOLD: buy_and_hold(days, {s: closes[s] for s in symbols}, CAPITAL, costs),
        PUT_WRITE: put_write(
            days, {s: closes[s] for s in symbols}, {s: vols[s] for s in symbols}, CAPITAL, costs, cash_settled=set()
        ),
    }
    for name, series in bench.items():
        equity[name] = series.equity
    result = {
        "start": FIRST.isoformat(),
        "end": LAST.isoformat(),
        "capital": CAPITAL,
        "symbols": {kind: list(syms) for kind, syms, _ in ACCOUNTS.values()},
        "accounts": accounts,
        "warnings": [HOSTILE, "RRC: not traded on 3 simulated session(s) without its bar"],
        "data": {
            "notes": ["close-only data for AMD, BAC: ATR from close-to-close moves, the label's volume term skipped"]
        },
        "proxy_days": 504,
        "costs": {
            "commissions": sum(t.commission for t in trades),
            "spread_costs": sum(t.spread_cost for t in trades),
            "interest": 1234.5,
        },
    }
    return BacktestRun(result, days, equity, deployed / equity["portfolio"], trades, bench)


@pytest.fixture(scope="module")
def run() -> BacktestRun:
    return build_run()


def _cagr(eq: np.ndarray) -> float:
    """Empyrical's annual return on 252 sessions a year, from the starting capital."""
    return float((eq[-1] / CAPITAL) ** (252.0 / eq.size) - 1.0)


def _max_drawdown(eq: np.ndarray) -> float:
    path = np.concatenate([[CAPITAL], eq])
    return float(np.min(path / np.maximum.accumulate(path) - 1.0))


def test_formats() -> None:
    assert money(1_234_567.891) == "$1,234,567.89"
    assert money(-5.0) == "-$5.00"
    assert percent(0.123456) == "12.35%"
    assert percent(0.0123, signed=True) == "+1.23%"
    assert percent(-0.0345) == "-3.45%"
    assert percent(math.nan) == "n/a" and money(math.inf) == "n/a" and ratio(math.nan) == "n/a"
    assert ratio(1.23456) == "1.23"


def test_summary_lines_match_an_independent_computation(run: BacktestRun) -> None:
    lines = summary_lines(run)
    text = "\n".join(lines)
    rows = {f.name: f for f in series_figures(run)}
    assert list(rows) == ["portfolio", BUY_AND_HOLD, PUT_WRITE]
    for name, f in rows.items():
        eq = run.equity[name]
        daily = np.diff(np.concatenate([[CAPITAL], eq])) / np.concatenate([[CAPITAL], eq[:-1]])
        assert f.final_equity == pytest.approx(eq[-1])
        assert f.cagr == pytest.approx(_cagr(eq), rel=1e-9)
        assert f.max_drawdown == pytest.approx(_max_drawdown(eq), rel=1e-9)
        assert f.volatility == pytest.approx(float(np.std(daily, ddof=1)) * math.sqrt(252), rel=1e-9)
        assert f.sharpe == pytest.approx(float(np.mean(daily) / np.std(daily, ddof=1)) * math.sqrt(252), rel=1e-9)
        row = next(line for line in lines if line.startswith(f.label))
        for cell in (money(eq[-1]), percent(_cagr(eq), signed=True), percent(_max_drawdown(eq)), ratio(f.sharpe)):
            assert cell in row
    assert "Warnings: 2" in text
    assert money(run.result["costs"]["commissions"]) in text and money(1234.5) in text


def _report(run: BacktestRun, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "report.html"
    write_report(run, path, settings.default())
    return path, path.read_text(encoding="utf-8")


def test_report_is_self_contained_and_escaped(run: BacktestRun, tmp_path: Path) -> None:
    _, page = _report(run, tmp_path)
    assert page.startswith("<!doctype html>")
    # No network: every image is a data URI, no external script, stylesheet, font or link target.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:|//)|<link\b|<script\b", page, re.I)
    images = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", page)
    assert len(images) >= 4 and all(src.startswith("data:image/png;base64,") for src in images)
    # Text from the data is escaped.
    assert "<script>alert" not in page and "<b>bold</b>" not in page
    assert html.escape(HOSTILE) in page
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_report_shows_every_part(run: BacktestRun, tmp_path: Path) -> None:
    _, page = _report(run, tmp_path)
    text = _text(page)
    for heading in (
        "Equity",
        "Drawdown",
        "Deployment",
        "Week types",
        "Monthly returns",
        "Weekly return against target",
        "Performance metrics",
        "Costs",
        "Warnings",
    ):
        assert heading in text, heading
    for line in summary_lines(run):
        for cell in re.split(r"\s{2,}", line.strip()):
            assert cell in text, cell
    for name in METRIC_NAMES:
        assert name.replace("_", " ") in text.lower(), name
    # The monthly table: March 2014 of the portfolio, from the last closes of February and March.
    eq, days = run.equity["portfolio"], run.dates
    feb = max(i for i, d in enumerate(days) if (d.year, d.month) == (2014, 2))
    mar = max(i for i, d in enumerate(days) if (d.year, d.month) == (2014, 3))
    assert percent(eq[mar] / eq[feb] - 1.0, signed=True) in text
    # Weekly return against target per account: the account's mean over week-end closes next to its target.
    config = settings.default()
    for account_id, (kind, _, _) in ACCOUNTS.items():
        s = run.equity[account_id]
        ends = [
            i
            for i in range(len(days))
            if i == len(days) - 1 or days[i + 1].isocalendar()[:2] != days[i].isocalendar()[:2]
        ]
        weekly = s[ends][1:] / s[ends][:-1] - 1.0
        assert percent(float(np.mean(weekly)), signed=True) in text
        assert percent(config.account(kind).weekly_target, signed=True) in text
        for week_type, count in WEEK_TYPES[account_id].items():
            assert week_type in text and str(count) in text
    assert "Data: close-only data for AMD, BAC: ATR from close-to-close moves" in text
    assert "the VIX proxy (realised volatility x ratio) on 504 sessions" in text
    for symbol in ("AMD", "BAC", "AAPL", "MSFT", "JNJ", "PG"):
        assert symbol in text


def test_bad_runs_name_the_field(run: BacktestRun, tmp_path: Path) -> None:
    empty = BacktestRun({}, [], {}, np.zeros(0), [])
    with pytest.raises(InvalidInputError) as err:
        summary_lines(empty)
    assert err.value.field == "dates"
    broken = BacktestRun(run.result, run.dates, {"portfolio": run.equity["portfolio"][:-1]}, run.deployment, [])
    with pytest.raises(InvalidInputError) as err:
        write_report(broken, tmp_path / "report.html", settings.default())
    assert err.value.field == "equity.portfolio"
    assert not (tmp_path / "report.html").exists()
    with pytest.raises(InvalidInputError) as err:
        write_report(run, tmp_path / "absent" / "report.html", settings.default())
    assert err.value.field == "path"
    missing = BacktestRun(run.result, run.dates, {BUY_AND_HOLD: run.equity[BUY_AND_HOLD]}, run.deployment, [])
    with pytest.raises(InvalidInputError) as err:
        summary_lines(missing)
    assert err.value.field == "equity.portfolio"


class _Text(HTMLParser):
    """The visible text of a page (style and script contents left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return re.sub(r"\s+", " ", " ".join(parser.parts))


CHROMIUM_TIMEOUT = 120


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: `make setup` installs Debian's chromium package"
    return found


def _chromium_args(profile: Path) -> list[str]:
    # --no-sandbox: the tests may run as root in a container, where Chromium's sandbox cannot start.
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]


def assert_not_blank(
    rgb: np.ndarray[Any, Any], *, min_colours: int = 200, max_background: float = 0.9
) -> np.ndarray[Any, Any]:
    """Fails on a near-blank screenshot (`rgb`, height x width x 3): fewer than `min_colours` colours, or more than
    `max_background` of it the colour of its bottom-right corner. Returns `rgb`."""
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > min_colours, f"a near-blank screenshot: {len(colours)} colours"
    background = np.all(rgb == rgb[-1, -1], axis=-1).mean()
    assert background < max_background, f"{background:.0%} of the screenshot is one colour"
    return rgb


def screenshot_rgb(path: Path) -> np.ndarray[Any, Any]:
    """A PNG screenshot as an RGB array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_report_renders_in_headless_chromium(run: BacktestRun, tmp_path: Path) -> None:
    path, _ = _report(run, tmp_path)
    shot = tmp_path / "report.png"
    # One run of the browser: the screenshot to a file, the DOM after layout to stdout.
    done = subprocess.run(
        [
            _chromium(),
            *_chromium_args(tmp_path / "profile"),
            f"--screenshot={shot}",
            "--dump-dom",
            "--window-size=1280,2400",
            path.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=CHROMIUM_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0 and shot.exists(), done.stderr.decode(errors="replace")[-2000:]
    rgb = assert_not_blank(screenshot_rgb(shot))
    assert rgb.shape[:2] == (2400, 1280)
    text = _text(done.stdout.decode())
    portfolio = series_figures(run)[0]
    printed = "\n".join(summary_lines(run))
    for cell in (money(portfolio.final_equity), percent(portfolio.cagr, signed=True), percent(portfolio.max_drawdown)):
        assert cell in printed and cell in text, cell
    assert HOSTILE in text  # rendered as text, not as markup
    assert calendar.month_abbr[3] in text
