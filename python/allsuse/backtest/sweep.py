"""Parameter sweeps on Ray: every point of a grid is one deterministic backtest, run as a Ray task.

The loaded market data goes into Ray's object store once (`ray.put`); each task receives a reference to it and
the point's overrides (a few dotted keys), rebuilds the point's protocol configuration from the package's file
with `settings.with_overrides`, and runs `run_point`. Without an address a local Ray is started (one worker per
core, or `workers`) and shut down at the end; with one, the sweep uses that cluster, whose nodes must have this
package installed.

`run_point` is the one place a point is simulated: the multi-symbol simulation `simulate` runs
(`simulation.run_market`), on data loaded and aligned once, with the sweep's account layout and costs; its row is
CAGR, max drawdown, Sharpe, mean deployment, trades and final equity.

Walk-forward: the objective is the Sharpe ratio of the daily portfolio returns on [start, split), ties broken by
the higher CAGR, then by the earlier point; the chosen point and the defaults then run on [split, end].
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib.util
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allsuse.backtest.costs import CostModel
from allsuse.backtest.data import MarketSet, Source, SymbolData, load_market
from allsuse.backtest.grid import Grid
from allsuse.backtest.simulation import ZERO_COSTS, BacktestSpec, load_vix, run_market
from allsuse.errors import AllsuseError, InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.market import Bars

METRICS = ("cagr", "max_drawdown", "sharpe", "deployment", "trades", "final_equity")
"""The figures of one point, in sweep.csv's column order (after the parameters)."""
OBJECTIVE = "Sharpe ratio of the daily portfolio returns, ties broken by the higher CAGR, then the earlier point"
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for an existing Ray cluster's address to answer before giving up (exit code 2)."""


@dataclass(frozen=True)
class MarketInputs:
    """What every point of a sweep shares: the aligned market (loaded once), the symbols of each account type
    (None: each account's configured symbols found in the data, or the one symbol for every account), and the
    cost model."""

    market: MarketSet
    symbols: dict[str, tuple[str, ...]] | None = None
    costs: CostModel = field(default_factory=CostModel)

    @staticmethod
    def single(bars: Bars, symbol: str, costs: CostModel = ZERO_COSTS) -> MarketInputs:
        """One underlying traded by every account (the layout of `protocol.backtest.Backtest`; no costs by
        default, as there)."""
        data = SymbolData(symbol, bars, Path(symbol), close_only=False)
        return MarketInputs(MarketSet(tuple(bars.dates), {symbol: data}), None, costs)

    @property
    def first_session(self) -> dt.date:
        return self.market.sessions[0]

    @property
    def last_session(self) -> dt.date:
        return self.market.sessions[-1]


@dataclass(frozen=True)
class PointResult:
    """One point's figures. `max_drawdown` is a positive fraction (0.12 = a 12 % fall from the peak); `cagr` the
    annualised geometric return of the daily portfolio equity (252 sessions a year); `sharpe` of the daily
    returns, annualised; `deployment` the mean share of equity at work; `trades` executed decisions."""

    cagr: float
    max_drawdown: float
    sharpe: float
    deployment: float
    trades: int
    final_equity: float

    def values(self) -> dict[str, float | int]:
        """The figures by METRICS name."""
        return {name: getattr(self, name) for name in METRICS}


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else math.nan


def row_of(result: dict[str, Any]) -> PointResult:
    """A point's figures from a backtest's JSON-ready result."""
    metrics = result.get("metrics") or {}
    return PointResult(
        cagr=_finite(metrics.get("annual_return")),
        max_drawdown=abs(_finite(metrics.get("max_drawdown"))),
        sharpe=_finite(metrics.get("sharpe_ratio")),
        deployment=float(result["deployment"]["mean"]),
        trades=int(sum(a["trades"] for a in result["accounts"].values())),
        final_equity=float(result["final_equity"]),
    )


def run_point(
    data: MarketInputs,
    *,
    start: dt.date,
    end: dt.date,
    capital: float,
    vix: dict[dt.date, float] | None,
    config: settings.ProtocolConfig | None,
    seed: int = 0,
) -> PointResult:
    """Runs one backtest of [start, end] under `config` (None: the protocol file's) and returns its figures.

    The configuration is put in force for the run (settings.in_force), so the ledger and trust book read the
    point's numbers as the engine does. Deterministic: the same inputs give the same figures.
    """
    cfg = config or settings.default()
    spec = BacktestSpec(
        sources=(),
        start=start,
        end=end,
        capital=capital,
        symbols=data.symbols,
        costs=data.costs,
        seed=seed,
        config=cfg,
    )
    with settings.in_force(cfg):
        run = run_market(data.market, spec, vix, with_benchmarks=False)
    return row_of(run.result)


def require_ray() -> None:
    """Fails at once, saying how to install them, when Ray or matplotlib is missing (the `sweep` extra)."""
    missing = [name for name in ("ray", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise AllsuseError(f"sweep needs {' and '.join(missing)}: pip install 'allsuse[sweep]'")


def check_files(data: Sequence[str], *, vix: Path | None) -> None:
    """Fails at once naming the first data or VIX file that is not there (before anything is loaded)."""
    for text in data:
        source = Source.parse(text)
        path = source.path
        if source.store is None and not path.is_file():
            raise InvalidInputError(f"--data {path}: no such file", "data", "missing")
    if vix is not None and not vix.is_file():
        raise InvalidInputError(f"--vix {vix}: no such file", "vix", "missing")


def load_inputs(
    data: Sequence[str],
    *,
    vix: Path | None,
    symbol: str | None = None,
    symbols: dict[str, tuple[str, ...]] | None = None,
    costs: CostModel | None = None,
) -> tuple[MarketInputs, dict[dt.date, float] | None]:
    """Loads and aligns the `--data` files (per-symbol OHLCV or wide close-only, `SYMBOL=PATH` allowed, as
    `simulate` reads them) and the VIX file; errors name the file, line or symbol."""
    check_files(data, vix=vix)
    sources = tuple(Source.parse(d) for d in data)
    if symbol is not None:
        if len(sources) != 1:
            raise InvalidInputError.of("--symbol", "applies to one --data file only (use SYMBOL=PATH)")
        sources = (dataclasses.replace(sources[0], symbol=symbol.upper()),)
    vix_map = load_vix(vix) if vix is not None else None
    market = load_market(sources)
    return MarketInputs(market, symbols, costs if costs is not None else CostModel()), vix_map


# --- the tasks ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointTask:
    """One backtest to run: the point's overrides (empty: the defaults) over [start, end]."""

    overrides: dict[str, Any]
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class Fixed:
    """What every task of a sweep shares."""

    capital: float
    seed: int = 0


def _run_task(data: MarketInputs, vix: dict[dt.date, float] | None, fixed: Fixed, task: PointTask) -> PointResult:
    """A task's body, the same in a Ray worker and in this process: the configuration is rebuilt from the
    package's protocol file and the overrides (a small message, and no compiled tables to pickle)."""
    config = settings.with_overrides(settings.default(), task.overrides) if task.overrides else None
    return run_point(
        data, start=task.start, end=task.end, capital=fixed.capital, vix=vix, config=config, seed=fixed.seed
    )


Runner = Callable[[MarketInputs, dict[dt.date, float] | None, Fixed, list[PointTask]], list[PointResult]]


def run_sequentially(
    data: MarketInputs, vix: dict[dt.date, float] | None, fixed: Fixed, tasks: list[PointTask]
) -> list[PointResult]:
    """Every task one after another in this process (the baseline the benchmark and the tests compare with)."""
    return [_run_task(data, vix, fixed, t) for t in tasks]


def run_on_ray(
    data: MarketInputs, vix: dict[dt.date, float] | None, fixed: Fixed, tasks: list[PointTask]
) -> list[PointResult]:
    """Every task as a Ray task on the connected cluster (see ray_session); the data is put once."""
    import ray

    data_ref = ray.put(data)
    vix_ref = ray.put(vix)
    remote = ray.remote(num_cpus=1, max_retries=0)(_run_task)
    refs = [remote.remote(data_ref, vix_ref, fixed, t) for t in tasks]
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, AllsuseError):  # bad input found by the backtest: its own message, exit code 2
            raise exc.cause from None
        raise


# --- the Ray session ---------------------------------------------------------------------------------------


def _check_reachable(address: str, timeout: float) -> None:
    """An explicit HOST:PORT (or ray://HOST:PORT) must accept a TCP connection within `timeout` seconds."""
    target = address.removeprefix("ray://")
    host, sep, port_text = target.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidInputError.of("--address", f"must be auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout):
            pass
    except OSError as exc:
        raise InvalidInputError.of(
            "--address", f"no Ray cluster answers at {address} within {timeout:g} s ({exc.strerror or exc})"
        ) from None


def check_address(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fails at once (InvalidInputError) for an address that is malformed or does not answer."""
    if address is not None and address != "auto":
        _check_reachable(address, timeout)


@contextlib.contextmanager
def ray_session(
    address: str | None = None, workers: int | None = None, *, temp_root: Path | None = None
) -> Iterator[str]:
    """Connects to Ray for the block: to `address` ("auto" or HOST:PORT or ray://HOST:PORT) when given, else to a
    local Ray started here with `workers` CPUs (default: the machine's cores), no dashboard, quiet logs, workers at
    the caller's priority, its files under a temporary folder that is removed afterwards. A process already
    connected keeps its connection (nothing is started or shut down). Yields the address of the session's cluster.
    """
    import ray

    if ray.is_initialized():
        yield str(ray.get_runtime_context().gcs_address)
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray nices its workers to 15: on a machine that runs anything else, a sweep started from the command line
    # would crawl behind it. The workers keep the caller's priority (set RAY_worker_niceness to choose another).
    os.environ.setdefault("RAY_worker_niceness", "0")
    temp: str | None = None
    try:
        if address is not None:
            check_address(address)
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
                raise InvalidInputError.of("--address", f"cannot connect to Ray at {address} ({exc})") from None
        else:
            if workers is not None and workers < 1:
                raise InvalidInputError.of("--workers", f"must be >= 1, got {workers}")
            temp = tempfile.mkdtemp(prefix="allsuse-ray-", dir=str(temp_root) if temp_root else None)
            ray.init(
                num_cpus=workers or os.cpu_count() or 1,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                _temp_dir=temp,
            )
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if temp is not None:
            _remove(Path(temp))


def _remove(folder: Path) -> None:
    """Removes Ray's temporary folder; its processes may still be closing their logs for a moment."""
    for _ in range(10):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.2)


# --- the sweep ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of sweep.csv: the point's number (0 for the defaults), which sample it ran on, its dates, its
    parameter values and its figures."""

    point: int
    sample: str  # "full" (no walk-forward), "in" (before the split), "out-best" or "out-defaults" (after it)
    start: dt.date
    end: dt.date
    values: dict[str, Any]
    result: PointResult


@dataclass
class SweepResult:
    """The rows of a sweep, and the walk-forward choice when one was asked for."""

    keys: tuple[str, ...]
    rows: list[Row]
    objective: str = OBJECTIVE
    split: dt.date | None = None
    best: int | None = None  # the chosen point's number (walk-forward)
    warnings: list[str] = field(default_factory=list)

    @property
    def grid_rows(self) -> list[Row]:
        """The rows of the grid's points (the in-sample ones under walk-forward)."""
        return [r for r in self.rows if r.sample in ("full", "in")]


def _objective(row: Row) -> tuple[float, float, int]:
    sharpe, cagr = row.result.sharpe, row.result.cagr
    return (
        sharpe if math.isfinite(sharpe) else -math.inf,
        cagr if math.isfinite(cagr) else -math.inf,
        -row.point,
    )


def best_point(rows: Sequence[Row]) -> Row:
    """The row the walk-forward objective prefers (OBJECTIVE)."""
    return max(rows, key=_objective)


def inert_parameters(keys: Sequence[str], rows: Sequence[Row]) -> list[str]:
    """Parameters with more than one value that changed no figure of any point: the backtest does not read them
    (a key only the server reads) or they never bound in this window."""
    out = []
    for key in keys:
        groups: dict[tuple[Any, ...], set[tuple[Any, ...]]] = {}
        values = {repr(r.values[key]) for r in rows}
        if len(values) < 2:
            continue
        for r in rows:
            others = tuple(repr(r.values[k]) for k in keys if k != key)
            groups.setdefault(others, set()).add(tuple(r.result.values().values()))
        if all(len(figures) == 1 for figures in groups.values()):
            out.append(key)
    return out


def default_values(keys: Sequence[str], config: settings.ProtocolConfig) -> dict[str, Any]:
    """What the protocol file says for each dotted key (the defaults' row)."""
    return {key: settings.value_at(config, key) for key in keys}


def run_sweep(
    grid: Grid,
    data: MarketInputs,
    vix: dict[dt.date, float] | None,
    *,
    start: dt.date,
    end: dt.date,
    capital: float,
    seed: int = 0,
    walk_forward: dt.date | None = None,
    runner: Runner = run_on_ray,
) -> SweepResult:
    """Runs every point of `grid` on [start, end] (or, with a walk-forward split, on [start, split) and then the
    best point and the defaults on [split, end]) with `runner`, and returns the rows in grid order."""
    base = settings.default()
    grid.configs(base)  # every point validated before any backtest runs
    points = grid.points()
    fixed = Fixed(capital=capital, seed=seed)
    if walk_forward is not None and not start < walk_forward <= end:
        raise InvalidInputError.of("--walk-forward", f"must lie after --start and not after --end, got {walk_forward}")
    in_end = end if walk_forward is None else walk_forward - dt.timedelta(days=1)
    sample = "full" if walk_forward is None else "in"
    tasks = [PointTask(p, start, in_end) for p in points]
    results = runner(data, vix, fixed, tasks)
    rows = [Row(i + 1, sample, start, in_end, p, r) for i, (p, r) in enumerate(zip(points, results, strict=True))]
    out = SweepResult(grid.keys, rows, split=walk_forward)
    if walk_forward is not None:
        best = best_point(rows)
        out.best = best.point
        late = runner(data, vix, fixed, [PointTask(best.values, walk_forward, end), PointTask({}, walk_forward, end)])
        out.rows.append(Row(best.point, "out-best", walk_forward, end, best.values, late[0]))
        out.rows.append(Row(0, "out-defaults", walk_forward, end, default_values(grid.keys, base), late[1]))
    out.warnings = [
        f"{key}: no point's figures changed with its value (the backtest does not read it, or it never bound)"
        for key in inert_parameters(grid.keys, rows)
    ]
    return out
