"""Parameter sweeps: dotted overrides of the protocol (validated by the same machinery as the file), the grid file
(errors name the file, the line and the parameter), the sweep on a local Ray with 2 workers (each row equals a
sequential run of the same point), walk-forward selection, and the `allsuse sweep` command's exit codes and outputs.

One Ray session serves the whole module (Ray starts slowly on a 2-core machine) and the fixture shuts it down.
"""

from __future__ import annotations

import csv
import datetime as dt
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allsuse import cli
from allsuse.backtest import grid as grid_mod
from allsuse.backtest import sweep as sweep_mod
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.backtest import Backtest, load_bars, load_vix

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SP500 = DATA / "sp500_daily_2009_2018.csv"
VIX = DATA / "vix_daily_2014_2018.csv"
needs_data = pytest.mark.skipif(not SP500.exists(), reason=f"shared data not found at {DATA}")

# Short windows: every point is a full backtest.
START, END = dt.date(2014, 1, 1), dt.date(2014, 4, 30)
SPLIT = dt.date(2014, 3, 1)
CAPITAL = 2e6


# --- settings.with_overrides ----------------------------------------------------------------------------------


def test_overrides_change_the_named_values_and_leave_the_default_alone() -> None:
    base = settings.default()
    cfg = settings.with_overrides(
        base,
        {
            "accounts.gen.max_drawdown": 0.12,
            "drawdown_budget.multiplier": 1.5,
            "entry_rules.gen.green.band": [25, 35],
            "vix_breakers.halted_at": 90,
        },
    )
    assert cfg.account("gen").max_drawdown == 0.12
    assert cfg.doc.section("drawdown_budget").number("multiplier") == 1.5
    assert cfg.entry_rule("gen", "green").band == (25.0, 35.0)
    assert cfg.tables is not None  # the core's tables compile from the new document
    assert base.account("gen").max_drawdown == 0.15
    assert settings.default().doc.section("vix_breakers").number("halted_at") == 80


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("accounts.gen.max_drawdwn", 0.1, "unknown parameter"),
        ("nothing_here", 1, "unknown parameter"),
        ("accounts.gen", 0.1, "is a section"),
        ("accounts.gen.max_drawdown", "high", "must be a number"),
        ("accounts.gen.max_drawdown", True, "must be a number"),
        ("accounts.gen.max_drawdown", 1.5, "must be <= 0.999"),
        ("accounts.gen.withdrawals", 1, "must be true or false"),
        ("entry_rules.gen.green.band", 30, "must be a list"),
        ("entry_rules.gen.green.band", [40, 30], "entry_rules.gen.green.band"),
        ("vix_breakers.hedged_at", 70, "vix_breakers.reducing_at"),
        ("atr_regime.upper_pct", [0.5, 1.0, 2.0], "must have 4 numbers"),
        ("market_label.roc_bull", float("inf"), "must be finite"),
    ],
)
def test_a_bad_override_names_the_parameter(key: str, value: Any, words: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        settings.with_overrides(settings.default(), {key: value})
    assert words in str(err.value)
    assert err.value.field is not None


def test_a_list_element_is_set_by_its_index() -> None:
    cfg = settings.with_overrides(settings.default(), {"atr_regime.upper_pct.0": 0.4})
    assert cfg.doc.section("atr_regime").numbers("upper_pct") == (0.4, 1.0, 2.0, 3.5)
    with pytest.raises(InvalidInputError, match=r"upper_pct\.4"):
        settings.with_overrides(settings.default(), {"atr_regime.upper_pct.4": 5.0})
    with pytest.raises(InvalidInputError, match="must increase strictly"):
        settings.with_overrides(settings.default(), {"atr_regime.upper_pct.1": 0.2})


def test_in_force_makes_a_config_the_default_for_a_block_only() -> None:
    cfg = settings.with_overrides(settings.default(), {"merging.threshold": 123})
    with settings.in_force(cfg):
        assert settings.default() is cfg
    assert settings.default().doc.section("merging").number("threshold") == 500000


# --- grid files -------------------------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_grid_is_the_cartesian_product_in_file_order(tmp_path: Path) -> None:
    g = grid_mod.load_grid(
        write(
            tmp_path / "grid.yaml",
            "# two parameters\naccounts.gen.max_drawdown: [0.10, 0.15]\ndrawdown_budget.multiplier: [1, 2, 3]\n",
        )
    )
    assert g.keys == ("accounts.gen.max_drawdown", "drawdown_budget.multiplier")
    assert [p.line for p in g.parameters] == [2, 3]
    assert g.points() == [
        {"accounts.gen.max_drawdown": 0.10, "drawdown_budget.multiplier": 1},
        {"accounts.gen.max_drawdown": 0.10, "drawdown_budget.multiplier": 2},
        {"accounts.gen.max_drawdown": 0.10, "drawdown_budget.multiplier": 3},
        {"accounts.gen.max_drawdown": 0.15, "drawdown_budget.multiplier": 1},
        {"accounts.gen.max_drawdown": 0.15, "drawdown_budget.multiplier": 2},
        {"accounts.gen.max_drawdown": 0.15, "drawdown_budget.multiplier": 3},
    ]
    configs = g.configs(settings.default())
    assert [c.account("gen").max_drawdown for c in configs] == [0.10] * 3 + [0.15] * 3
    assert [c.doc.section("drawdown_budget").number("multiplier") for c in configs] == [1, 2, 3] * 2


def test_list_valued_parameters_take_a_list_per_point(tmp_path: Path) -> None:
    g = grid_mod.load_grid(write(tmp_path / "g.yaml", "entry_rules.gen.green.band:\n  - [25, 35]\n  - [30, 40]\n"))
    assert [c.entry_rule("gen", "green").band for c in g.configs(settings.default())] == [(25, 35), (30, 40)]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "accounts.gen.max_drawdown: [0.1]\naccounts.gen.max_drawdwn: [0.1, 0.2]\n",
            "line 2: accounts.gen.max_drawdwn",
        ),
        ("accounts.gen.max_drawdown: [0.1, high]\n", "line 1: accounts.gen.max_drawdown"),
        ("\n\naccounts.gen.max_drawdown: [0.1, 2.0]\n", "line 3: accounts.gen.max_drawdown"),
        ("accounts.gen.max_drawdown: 0.1\n", "line 1: accounts.gen.max_drawdown: must be a list of values"),
        ("accounts.gen.max_drawdown: []\n", "line 1: accounts.gen.max_drawdown: must list at least one value"),
        ("accounts.gen.max_drawdown: [0.1, 0.1]\n", "line 1: accounts.gen.max_drawdown: 0.1 is listed twice"),
        ("", "the grid is empty"),
        ("{}\n", "the grid is empty"),
        ("- a\n- b\n", "line 1: must be a mapping"),
        ("a: [1\n", "is not valid YAML"),
        ("x.y: [1]\nx.y: [2]\n", "line 2: x.y: is named twice"),
        # A combination the file's cross-checks refuse: both values are valid alone.
        ("vix_breakers.hedged_at: [50, 62]\nvix_breakers.reducing_at: [55, 75]\n", "lines 1, 2"),
    ],
)
def test_grid_errors_name_the_file_line_and_parameter(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path / "mygrid.yaml", text)
    with pytest.raises(InvalidInputError) as err:
        grid_mod.load_grid(path).configs(settings.default())
    assert "mygrid.yaml" in str(err.value)
    assert words in str(err.value)


def test_a_missing_grid_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"nope\.yaml"):
        grid_mod.load_grid(tmp_path / "nope.yaml")


# --- the sweep on Ray ---------------------------------------------------------------------------------------------

GRID4 = "accounts.gen.deployment_target: [0.5, 0.9]\ndrawdown_budget.multiplier: [0.5, 2.0]\n"


@pytest.fixture(scope="module")
def ray_local() -> Iterator[str]:
    """One local Ray with 2 workers for the module, shut down at its end (also when a test fails)."""
    with sweep_mod.ray_session(workers=2) as address:
        yield address


@pytest.fixture(scope="module")
def market() -> tuple[sweep_mod.MarketInputs, dict[dt.date, float]]:
    return sweep_mod.MarketInputs.single(load_bars(SP500), "SPX"), load_vix(VIX)


def sequential(
    market: tuple[sweep_mod.MarketInputs, dict[dt.date, float]], point: dict[str, Any], start: dt.date, end: dt.date
) -> sweep_mod.PointResult:
    """The same point run here, one backtest, the configuration built from the overrides directly."""
    data, vix = market
    config = settings.with_overrides(settings.default(), point) if point else None
    return sweep_mod.run_point(data, start=start, end=end, capital=CAPITAL, vix=vix, config=config)


@needs_data
def test_run_point_with_the_default_config_is_the_plain_backtest(
    market: tuple[sweep_mod.MarketInputs, dict[dt.date, float]],
) -> None:
    data, vix = market
    plain = Backtest(load_bars(SP500), symbol="SPX", capital=CAPITAL, vix=vix).run(START, END)
    assert sweep_mod.run_point(data, start=START, end=END, capital=CAPITAL, vix=vix, config=None) == sweep_mod.row_of(
        plain
    )


@needs_data
def test_a_point_config_reaches_the_ledger_too(market: tuple[sweep_mod.MarketInputs, dict[dt.date, float]]) -> None:
    """The allocation is read by the ledger (Portfolio), not the engine: the point's value must still count."""
    base = sequential(market, {}, START, END)
    moved = sequential(market, {"accounts.gen.allocation": 0.5, "accounts.com.allocation": 0.2}, START, END)
    assert moved != base


@needs_data
def test_a_four_point_sweep_on_two_ray_workers_equals_sequential_runs(
    ray_local: str, market: tuple[sweep_mod.MarketInputs, dict[dt.date, float]], tmp_path: Path
) -> None:
    import ray

    assert ray.cluster_resources().get("CPU") == 2
    grid = grid_mod.load_grid(write(tmp_path / "grid.yaml", GRID4))
    data, vix = market
    out = sweep_mod.run_sweep(grid, data, vix, start=START, end=END, capital=CAPITAL)
    assert [r.point for r in out.rows] == [1, 2, 3, 4]
    assert {r.sample for r in out.rows} == {"full"}
    expected = [sequential(market, p, START, END) for p in grid.points()]
    assert [r.result for r in out.rows] == expected
    assert [r.values for r in out.rows] == grid.points()
    # The points differ from one another, so the comparison above can fail.
    assert len({(r.cagr, r.final_equity, r.deployment) for r in expected}) == 4


STOCKS = DATA / "stocks20_close_1990_2014.csv"


@needs_data
def test_a_multi_symbol_sweep_with_costs_on_ray_equals_sequential_runs_and_the_cli(
    ray_local: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sweep runs the same multi-symbol simulation as `simulate` (a wide close-only file, the accounts' own
    symbols, the default costs): each Ray row equals a sequential run and the CLI writes the same figures."""
    layout = ["gen=AMD,BAC", "rev=AAPL,MSFT", "com=JNJ,PG"]
    symbols = {"gen": ("AMD", "BAC"), "rev": ("AAPL", "MSFT"), "com": ("JNJ", "PG")}
    data, vix = sweep_mod.load_inputs([str(STOCKS)], vix=None, symbols=symbols)
    assert {s for v in symbols.values() for s in v} <= set(data.market.symbols)
    grid = grid_mod.load_grid(write(tmp_path / "grid.yaml", GRID4))
    start, end = dt.date(2012, 1, 1), dt.date(2012, 4, 30)
    out = sweep_mod.run_sweep(grid, data, vix, start=start, end=end, capital=CAPITAL)
    expected = [
        sweep_mod.run_point(
            data,
            start=start,
            end=end,
            capital=CAPITAL,
            vix=vix,
            config=settings.with_overrides(settings.default(), p),
        )
        for p in grid.points()
    ]
    assert [r.result for r in out.rows] == expected
    assert all(r.trades > 0 for r in expected)
    folder = tmp_path / "cli"
    argv = ["sweep", "--grid", str(tmp_path / "grid.yaml"), "--data", str(STOCKS), "--symbols", *layout]
    argv += ["--start", start.isoformat(), "--end", end.isoformat(), "--capital", str(CAPITAL)]
    assert cli.main([*argv, "--output-dir", str(folder)]) == 0
    capsys.readouterr()
    with (folder / "sweep.csv").open() as handle:
        equity = [float(r["final_equity"]) for r in csv.DictReader(handle)]
    assert equity == [round(r.final_equity, 2) for r in expected]


def test_the_local_workers_run_at_the_callers_priority(ray_local: str) -> None:
    """Ray nices its workers to 15 by default: on a busy machine a sweep would then lose to one process."""
    import os

    import ray

    def niceness() -> int:
        return os.nice(0)

    assert ray.get(ray.remote(num_cpus=1)(niceness).remote()) == niceness()


@needs_data
def test_walk_forward_picks_the_best_sharpe_before_the_split_and_runs_it_and_the_defaults_after(
    ray_local: str, market: tuple[sweep_mod.MarketInputs, dict[dt.date, float]], tmp_path: Path
) -> None:
    grid = grid_mod.load_grid(write(tmp_path / "grid.yaml", GRID4))
    data, vix = market
    out = sweep_mod.run_sweep(grid, data, vix, start=START, end=END, capital=CAPITAL, walk_forward=SPLIT)
    before = SPLIT - dt.timedelta(days=1)
    inside = [sequential(market, p, START, before) for p in grid.points()]
    assert [r.result for r in out.rows if r.sample == "in"] == inside
    ranked = sorted(range(4), key=lambda i: (inside[i].sharpe, inside[i].cagr), reverse=True)
    assert out.best == ranked[0] + 1
    best = next(r for r in out.rows if r.sample == "out-best")
    defaults = next(r for r in out.rows if r.sample == "out-defaults")
    assert best.values == grid.points()[ranked[0]] and best.start == SPLIT and best.end == END
    assert best.result == sequential(market, grid.points()[ranked[0]], SPLIT, END)
    assert defaults.result == sequential(market, {}, SPLIT, END)
    assert defaults.values == {"accounts.gen.deployment_target": 0.9, "drawdown_budget.multiplier": 2.0}


@needs_data
def test_a_parameter_that_changes_nothing_is_named_in_a_warning(
    market: tuple[sweep_mod.MarketInputs, dict[dt.date, float]], tmp_path: Path
) -> None:
    text = "scenarios.monte_carlo.paths: [100, 200]\naccounts.gen.deployment_target: [0.5, 0.9]\n"
    grid = grid_mod.load_grid(write(tmp_path / "grid.yaml", text))
    data, vix = market
    out = sweep_mod.run_sweep(grid, data, vix, start=START, end=END, capital=CAPITAL, runner=sweep_mod.run_sequentially)
    assert len(out.warnings) == 1 and out.warnings[0].startswith("scenarios.monte_carlo.paths: no point's figures")


def test_best_point_ranks_by_sharpe_then_cagr_then_the_earlier_point() -> None:
    def row(point: int, sharpe: float, cagr: float) -> sweep_mod.Row:
        figures = sweep_mod.PointResult(cagr, 0.1, sharpe, 0.5, 3, 1.0)
        return sweep_mod.Row(point, "in", START, END, {}, figures)

    assert sweep_mod.best_point([row(1, 1.0, 0.1), row(2, 1.2, 0.0), row(3, float("nan"), 0.9)]).point == 2
    assert sweep_mod.best_point([row(1, 1.0, 0.1), row(2, 1.0, 0.2)]).point == 2
    assert sweep_mod.best_point([row(1, 1.0, 0.1), row(2, 1.0, 0.1)]).point == 1


# --- the command --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sweep_args(grid: Path, out: Path, *extra: str) -> list[str]:
    return [
        "sweep",
        "--grid",
        str(grid),
        "--data",
        str(SP500),
        "--vix",
        str(VIX),
        "--symbol",
        "SPX",
        "--start",
        START.isoformat(),
        "--end",
        END.isoformat(),
        "--capital",
        str(CAPITAL),
        "--output-dir",
        str(out),
        *extra,
    ]


@needs_data
def test_the_command_writes_csv_and_html_and_nothing_else(
    ray_local: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = write(tmp_path / "grid.yaml", GRID4)
    out = tmp_path / "out"
    assert cli.main(sweep_args(grid, out, "--walk-forward", SPLIT.isoformat())) == 0
    assert sorted(p.name for p in out.iterdir()) == ["sweep.csv", "sweep.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml", "out"]  # no temporary folder left
    with (out / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "point",
        "sample",
        "start",
        "end",
        "accounts.gen.deployment_target",
        "drawdown_budget.multiplier",
        "cagr",
        "max_drawdown",
        "sharpe",
        "deployment",
        "trades",
        "final_equity",
    ]
    assert [r["sample"] for r in rows] == ["in"] * 4 + ["out-best", "out-defaults"]
    page = (out / "sweep.html").read_text()
    assert "data:image/png;base64," in page and "CAGR heatmap" in page and "Walk-forward" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    printed = capsys.readouterr().out
    assert "walk-forward" in printed and "out of sample" in printed
    assert rows[4]["final_equity"] in printed.replace(",", "")


ZERO_COST_ARGS = ("--commission", "0", "--share-commission", "0", "--spread", "0", "--rate", "0")


@needs_data
def test_another_process_runs_its_sweep_on_an_existing_cluster(
    ray_local: str, market: tuple[sweep_mod.MarketInputs, dict[dt.date, float]], tmp_path: Path
) -> None:
    """`--address HOST:PORT`: a second process connects to the module's Ray (a cluster it did not start), runs its
    points there, and leaves it up."""
    import ray

    grid = write(tmp_path / "grid.yaml", GRID4)
    out = tmp_path / "out"
    done = subprocess.run(
        # No costs, as the `market` fixture's sequential runs (MarketInputs.single).
        [sys.executable, "-m", "allsuse.cli", *sweep_args(grid, out, "--address", ray_local, *ZERO_COST_ARGS)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"on {ray_local}" in done.stdout
    with (out / "sweep.csv").open() as handle:
        equity = [float(r["final_equity"]) for r in csv.DictReader(handle)]
    points = grid_mod.load_grid(grid).points()
    assert equity == [round(sequential(market, p, START, END).final_equity, 2) for p in points]
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2  # the cluster is still up


@needs_data
def test_a_point_that_cannot_run_exits_2_with_the_backtests_message(
    ray_local: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A window with no session after the warm-up fails inside the Ray task: the command says why, in one line."""
    grid = write(tmp_path / "g.yaml", "drawdown_budget.multiplier: [1.0, 2.0]\n")
    args = sweep_args(grid, tmp_path / "out")
    args[args.index("--start") + 1], args[args.index("--end") + 1] = "2009-01-01", "2009-02-01"
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("allsuse: start: needs 60 bars of history") and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml"]


def test_a_bad_grid_exits_2_naming_file_line_and_parameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = write(tmp_path / "g.yaml", "accounts.gen.max_drawdown: [0.1]\nvix_breakers.halted_at: [90, fast]\n")
    out = tmp_path / "out"
    assert cli.main(sweep_args(grid, out)) == 2
    err = capsys.readouterr().err
    assert "g.yaml: line 2: vix_breakers.halted_at" in err
    assert not out.exists()


@pytest.mark.parametrize("which", ["grid", "data", "vix", "empty"])
def test_missing_inputs_exit_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str) -> None:
    grid = write(tmp_path / "g.yaml", "" if which == "empty" else "accounts.gen.max_drawdown: [0.1]\n")
    args = sweep_args(tmp_path / "absent.yaml" if which == "grid" else grid, tmp_path / "out")
    if which == "data":
        args[args.index("--data") + 1] = str(tmp_path / "absent.csv")
    if which == "vix":
        args[args.index("--vix") + 1] = str(tmp_path / "absent_vix.csv")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert {"grid": "absent.yaml", "data": "absent.csv", "vix": "absent_vix.csv", "empty": "g.yaml"}[which] in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scheme", ["ray://", ""])
def test_an_unreachable_ray_address_exits_2_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scheme: str
) -> None:
    grid = write(tmp_path / "g.yaml", "accounts.gen.max_drawdown: [0.1]\n")
    address = f"{scheme}127.0.0.1:{free_port()}"
    began = time.monotonic()
    assert cli.main(sweep_args(grid, tmp_path / "out", "--address", address)) == 2
    assert time.monotonic() - began < 30  # the grid, the data and a refused connection; no Ray started
    assert address in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_without_ray_the_command_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    grid = write(tmp_path / "g.yaml", "accounts.gen.max_drawdown: [0.1]\n")
    assert cli.main(sweep_args(grid, tmp_path / "out")) == 2
    assert "sweep needs ray: pip install 'allsuse[sweep]'" in capsys.readouterr().err
