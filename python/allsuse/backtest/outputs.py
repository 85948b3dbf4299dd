"""The files a backtest writes into `--output-dir`: result.json, equity.csv and trades.csv (report.html is added by
the report module through `extra`).

Nothing partial is left behind: every file is written into a temporary folder beside the target, which replaces
the target's files only once all of them are complete.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from allsuse.backtest.run import TRADE_COLUMNS, BacktestRun
from allsuse.errors import InvalidInputError

FILES = ("result.json", "equity.csv", "trades.csv")


def check_output_dir(out_dir: Path) -> None:
    """Refuses, before anything runs, a folder that cannot be written: its parent must exist and it must be a
    folder if it exists."""
    parent = out_dir.resolve().parent
    if not parent.is_dir():
        raise InvalidInputError.of("--output-dir", f"folder {parent} does not exist")
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError.of("--output-dir", f"{out_dir} exists and is not a folder")


def _cell(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.2f}"


def write_equity(run: BacktestRun, path: Path) -> None:
    """equity.csv: date, then the daily closing equity of each account, the portfolio and each benchmark (empty
    before a forked account exists), and the portfolio's deployment."""
    names = [n for n in run.equity if n != "portfolio" and n not in run.benchmarks]
    names += ["portfolio", *[n for n in run.equity if n in run.benchmarks]]
    with path.open("w", newline="") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(["date", *names, "deployment"])
        for i, day in enumerate(run.dates):
            dep = float(run.deployment[i]) if i < len(run.deployment) else math.nan
            w.writerow(
                [
                    day.isoformat(),
                    *(_cell(float(run.equity[n][i])) for n in names),
                    "" if not math.isfinite(dep) else f"{dep:.6f}",
                ]
            )


def write_trades(run: BacktestRun, path: Path) -> None:
    """trades.csv: one row per fill, TRADE_COLUMNS in order: the protocol's (account = the account id), then each
    benchmark's (account = the benchmark's name)."""
    with path.open("w", newline="") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(TRADE_COLUMNS)
        for t in run.trades:
            w.writerow(t.row())
        for bench in run.benchmarks.values():
            for t in bench.trades:
                w.writerow(t.row())


def write_result(run: BacktestRun, path: Path) -> None:
    """result.json: the run's result, keys sorted."""
    path.write_text(json.dumps(run.result, indent=2, sort_keys=True) + "\n")


def write_folder(out_dir: Path, fill: Callable[[Path], None]) -> list[Path]:
    """Runs `fill(folder)` on a temporary folder beside `out_dir`, then moves what it wrote into `out_dir` (a new
    folder is renamed; an existing one receives each file by an atomic replace); returns the paths written. A
    failure leaves `out_dir` as it was. Backtest and sweep outputs both go through here."""
    check_output_dir(out_dir)
    parent = out_dir.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=parent))
    try:
        # mkdtemp makes the folder private (0700); the output folder gets the usual mode under the umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        fill(tmp)
        written = sorted(p.name for p in tmp.iterdir())
        if not out_dir.exists():
            os.replace(tmp, out_dir)
        else:
            for name in written:
                os.replace(tmp / name, out_dir / name)
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out_dir / name for name in written]


def write_outputs(run: BacktestRun, out_dir: Path, extra: Callable[[Path], None] | None = None) -> list[Path]:
    """Writes result.json, equity.csv and trades.csv (and whatever `extra` writes into the folder it is given)
    into `out_dir`, creating it; returns the paths written. A failure leaves `out_dir` as it was."""

    def fill(folder: Path) -> None:
        write_result(run, folder / "result.json")
        write_equity(run, folder / "equity.csv")
        write_trades(run, folder / "trades.csv")
        if extra is not None:
            extra(folder)

    return write_folder(out_dir, fill)
