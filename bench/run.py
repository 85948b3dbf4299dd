"""`make bench`: runs every benchmark module, prints `operation | allsuse | baseline | ratio`, and
rewrites the measured table in docs/performance.md.

Refuses to run on a debug build of the core: debug figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import allsuse  # noqa: E402
from bench.harness import Row, human  # noqa: E402

MODULES = (
    "bench.bench_pricing",
    "bench.bench_risk",
    "bench.bench_cache",
    "bench.bench_protocol",
    "bench.bench_store",
    "bench.bench_market",
    "bench.bench_backtest",
    "bench.bench_sweep",
    "bench.bench_monitoring",
    "bench.bench_agent",
    "bench.bench_execution",
)
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


def table(rows: list[Row]) -> str:
    """The Markdown table of measured rows."""
    lines = [
        "| operation | allsuse | baseline | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        a = human(r.allsuse_seconds)
        b = f"{human(r.baseline_seconds)} ({r.baseline})"
        if r.count > 1:
            a += f" ({human(r.allsuse_seconds / r.count)} {r.per})"
        lines.append(f"| {r.operation} | {a} | {b} | {r.ratio:.1f}x | {r.target} |")
    return "\n".join(lines)


def write(path: Path, body: str) -> None:
    """Replaces the measured block of docs/performance.md, keeping the prose around it."""
    text = path.read_text() if path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, default=None, help="rewrite the table in this Markdown file")
    parser.add_argument("--only", default=None, help="run only modules whose name contains this")
    args = parser.parse_args()
    if allsuse.build_profile() != "release":
        print("refusing to benchmark a debug build of allsuse._core (run `make bench`)", file=sys.stderr)
        return 2
    rows: list[Row] = []
    for name in MODULES:
        if args.only and args.only not in name:
            continue
        module = importlib.import_module(name)
        print(f"running {name} ...", flush=True)
        rows.extend(module.run())
    body = table(rows)
    print(body)
    if args.write:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        write(args.write, f"Measured {stamp} on {machine}, core profile {allsuse.build_profile()}.\n\n{body}")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
