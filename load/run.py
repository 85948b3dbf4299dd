"""`make load` and `make soak`: start allsuse with the production config on loopback, seed it, run Locust headless.

    python load/run.py            # baseline, Decide alone, then the mix at 10, 50 and 100 users; checks the targets
    python load/run.py --soak     # the mix at 50 users for SOAK_SECONDS (600); RSS stable within 10 %, zero errors
    python load/run.py seed --address HOST:PORT --tokens keys.txt --out DIR   # seed another server (docs)

Everything runs against 127.0.0.1 on a free port with auth on and a SQLite store in a temporary folder; the server
and every Locust process are stopped by this script, each bounded in time. Results go to
load/results/TIMESTAMP/: Locust's CSV statistics per scenario, summary.json, summary.md and chart.png.
Exit status: 0 when every measured target is met, 3 when one is missed (listed), 1 when the harness itself fails.

Durations and sizes come from the environment: LOAD_SECONDS (45 per scenario), LOAD_BASELINE_USERS (50),
LOAD_DECIDE_USERS (10; 0 skips the Decide-only scenario), LOAD_MIX_USERS ("10,50,100"), LOAD_PORTFOLIOS (40),
LOAD_TIMEOUT (5 s per call), LOAD_RESULTS (load/results), LOAD_AUTH_CACHE_SECONDS (3600: how long the server
trusts a verified key; production.yaml says 30), LOAD_WORKERS (1: server.workers; CPU and RSS are then the sum of
the supervisor and its workers; when set, each Locust user opens its own connection: LOAD_OWN_CONNECTIONS=1),
SOAK_SECONDS (600), SOAK_USERS (50), SOAK_WARMUP_SECONDS (60: the RSS the end is compared with), LOAD_MARKET (how
Decide and AssessRisk carry their market: "history", the default, sends no bars: the server's market history,
published by the seeding through MarketDataService, serves them; "packed" sends the bars as packed columns; "full"
sends the old Bar messages).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "load" / "locustfile.py"
DATA = Path(os.environ.get("LOAD_DATA", ROOT.parent / "shared" / "data"))
ORIGINAL_CLAIM_RPS = 1377.0
# Account kind -> (symbol, divisor of the S&P 500 level): two symbols at single-stock prices from the index's bars.
SYMBOLS = {"gen": ("NVDA", 10.0), "rev": ("AAPL", 15.0)}
AS_OF = (dt.date(2018, 6, 7), dt.date(2018, 6, 11), dt.date(2018, 6, 13))  # a Thursday, a Monday, a Wednesday
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def env_int(name: str, default: int) -> int:
    """An integer from the environment."""
    return int(os.environ.get(name, str(default)))


def env_float(name: str, default: float) -> float:
    """A number from the environment."""
    return float(os.environ.get(name, str(default)))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the server -----------------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the supervisor and its workers with LOAD_WORKERS > 1), from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (all their threads), from /proc."""
    total = 0.0
    for one in process_tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def rss_mb(pid: int) -> float:
    """Resident set size of a process and its live descendants in MB, from /proc."""
    total = 0.0
    for one in process_tree(pid):
        try:
            lines = Path(f"/proc/{one}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(line.split()[1]) / 1024.0 for line in lines if line.startswith("VmRSS:")), 0.0)
    return total


def wait_serving(address: str, proc: subprocess.Popen[bytes], log: Path, limit: float = 60.0) -> None:
    """Polls the standard health Check until SERVING; raises with the log's tail if the server exits or stalls."""
    deadline = time.monotonic() + limit
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"server at {address} not SERVING within {limit} s: {log.read_text()[-2000:]}")


@contextmanager
def server(workdir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`allsuse serve --config production` on 127.0.0.1 (plaintext, loopback) with its SQLite store in `workdir`."""
    port = free_port()
    env = {
        **os.environ,
        "ALLSUSE_SERVER_HOST": "127.0.0.1",
        "ALLSUSE_SERVER_PORT": str(port),
        "ALLSUSE_STORE_URL": str(workdir / "allsuse.db"),
        "ALLSUSE_TLS_CERT_FILE": "",
        "ALLSUSE_TLS_KEY_FILE": "",
        "ALLSUSE_METRICS_HOST": "127.0.0.1",
        "ALLSUSE_METRICS_PORT": str(free_port()),
        # The one change to production.yaml: a key checked while seeding stays trusted for the run. With the
        # production 30 s, each key costs a scrypt (~0.1 s of CPU) every 30 s, which would be counted per call.
        "ALLSUSE_AUTH_CACHE_SECONDS": os.environ.get("LOAD_AUTH_CACHE_SECONDS", "3600"),
        # LOAD_WORKERS > 1: server.workers processes on the port (allsuse.server.workers); CPU and RSS are summed.
        "ALLSUSE_SERVER_WORKERS": str(env_int("LOAD_WORKERS", 1)),
    }
    log = workdir / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "allsuse.cli", "serve", "--config", "production"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    address = f"127.0.0.1:{port}"
    try:
        wait_serving(address, proc, log)
        yield address, proc
    finally:
        stop(proc, grace=10.0)


def stop(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- seeding --------------------------------------------------------------------------------------------------


MARKET_MODES = ("history", "packed", "full")


def market_mode() -> str:
    """LOAD_MARKET: how the requests carry their market ("history", "packed" or "full")."""
    mode = os.environ.get("LOAD_MARKET", "history")
    if mode not in MARKET_MODES:
        raise RuntimeError(f"LOAD_MARKET must be one of {', '.join(MARKET_MODES)}, got {mode!r}")
    return mode


def create_keys(store_url: str, count: int, role: str = "trader") -> list[str]:
    """`count` API keys of `role` written straight into the store (as `allsuse keys create` does)."""
    from allsuse.store import Store

    with Store(store_url) as store:
        return [store.create_api_key(role, actor="load").token for _ in range(count)]


def full_markets() -> list[tuple[dt.date, Any]]:
    """The old-style snapshots: two years of S&P 500 daily bars up to each AS_OF date as two symbols (scaled to
    single-stock prices), VIX/100 as their IV, sector "tech"."""
    from allsuse.client import snapshot_from_csv
    from allsuse.v1 import decision_pb2

    markets = []
    for day in AS_OF:
        symbols = []
        for symbol, divisor in SYMBOLS.values():
            one = snapshot_from_csv(
                DATA / "sp500_daily_2009_2018.csv", symbol, day, vix=DATA / "vix_daily_2014_2018.csv"
            )
            market = one.symbols[0]
            market.sector = "tech"
            for bar in market.bars:
                bar.open, bar.high, bar.low, bar.close = (
                    bar.open / divisor,
                    bar.high / divisor,
                    bar.low / divisor,
                    bar.close / divisor,
                )
            symbols.append(market)
        markets.append((day, decision_pb2.MarketSnapshot(symbols=symbols, vix=one.vix, rate=0.0)))
    return markets


def write_markets(out: Path, mode: str) -> list[dict[str, str]]:
    """The market of each AS_OF date as the requests carry it (see LOAD_MARKET); one file each."""
    from allsuse.server.convert import columns_out, market_in
    from allsuse.v1 import decision_pb2

    markets = []
    for day, snapshot in full_markets():
        if mode == "packed":
            data = market_in(snapshot)
            for sm in snapshot.symbols:
                del sm.bars[:]
                sm.columns.CopyFrom(columns_out(data.bars[sm.symbol]))
        elif mode == "history":
            snapshot = decision_pb2.MarketSnapshot()  # everything from the server's history as of the day
        name = f"market-{day.isoformat()}.pb"
        (out / name).write_bytes(snapshot.SerializeToString())
        markets.append({"as_of": dt.datetime.combine(day, dt.time(15, 45)).isoformat(), "file": name})
    return markets


def publish_history(channel: grpc.Channel, admin_token: str) -> None:
    """The bars of the scaled symbols (all of sp500_daily_2009_2018.csv) through PublishBarsStream, and on each
    AS_OF date their IV (VIX/100), sector and the VIX through PublishQuotes: the same market as the snapshots."""
    from allsuse.market_files import read_market_file
    from allsuse.v1 import market_pb2, market_pb2_grpc

    stub = market_pb2_grpc.MarketDataServiceStub(channel)
    md = (("authorization", f"Bearer {admin_token}"),)
    sp500 = read_market_file(DATA / "sp500_daily_2009_2018.csv").series[0]
    for symbol, divisor in SYMBOLS.values():
        columns = sp500.message()
        for name in ("open", "high", "low", "close"):
            values = [x / divisor for x in getattr(columns, name)]
            del getattr(columns, name)[:]
            getattr(columns, name).extend(values)
        request = market_pb2.PublishBarsRequest(symbol=symbol, columns=columns)
        stub.PublishBarsStream(iter([request]), metadata=md, timeout=60)
    for day, snapshot in full_markets():
        quotes = market_pb2.PublishQuotesRequest(
            date=day.isoformat(),
            symbols=[market_pb2.SymbolQuotes(symbol=sm.symbol, iv=sm.iv, sector=sm.sector) for sm in snapshot.symbols],
            vix=snapshot.vix,
        )
        stub.PublishQuotes(quotes, metadata=md, timeout=60)


def seed(
    address: str, tokens: Sequence[str], out: Path, tls_ca: Path | None = None, admin_token: str | None = None
) -> Path:
    """One $1M portfolio per API key (created through the API, so the key owns it), the market history when
    `admin_token` is given (needed for LOAD_MARKET=history); writes out/seed.json."""
    from allsuse.client import channel as open_channel
    from allsuse.client import money
    from allsuse.v1 import portfolio_pb2, portfolio_pb2_grpc

    mode = market_mode()
    if mode == "history" and admin_token is None:
        raise RuntimeError("LOAD_MARKET=history needs an admin key to publish the market history (--admin-token)")
    out.mkdir(parents=True, exist_ok=True)
    at = Timestamp()
    at.FromDatetime(dt.datetime(2018, 1, 2, 9, 30))
    portfolios = []
    with open_channel(address, tls_ca) as channel:
        if admin_token is not None:
            publish_history(channel, admin_token)
        stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
        for token in tokens:
            request = portfolio_pb2.CreatePortfolioRequest(total=money(1_000_000), at=at)
            reply = stub.CreatePortfolio(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
            portfolios.append({"portfolio_id": reply.portfolio_id, "token": token})
    body = {
        "address": address,
        "portfolios": portfolios,
        "market": mode,
        "markets": write_markets(out, mode),
        "symbols": {kind: symbol for kind, (symbol, _) in SYMBOLS.items()},
    }
    path = out / "seed.json"
    path.write_text(json.dumps(body, indent=2) + "\n")
    path.chmod(0o600)  # it holds API keys
    return path


# --- one scenario ---------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One headless Locust run against the server."""

    name: str
    user_class: str
    users: int
    seconds: int


@dataclass
class Sampler:
    """Samples the server's RSS every `every` seconds on a thread while a scenario runs."""

    pid: int
    every: float = 0.2
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        start = time.monotonic()

        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.samples.append((time.monotonic() - start, rss_mb(self.pid)))
                except OSError:
                    return
                self._stop.wait(self.every)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def number(text: str) -> float:
    """A Locust CSV cell as a float (N/A -> 0)."""
    try:
        return float(text)
    except ValueError:
        return 0.0


def read_stats(prefix: Path) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Locust's per-request-name statistics (and "Aggregated"), and failures counted by gRPC status code."""
    stats: dict[str, dict[str, float]] = {}
    with Path(f"{prefix}_stats.csv").open() as f:
        for row in csv.DictReader(f):
            stats[row["Name"]] = {
                "requests": number(row["Request Count"]),
                "failures": number(row["Failure Count"]),
                "rps": number(row["Requests/s"]),
                "p50_ms": number(row["50%"]),
                "p95_ms": number(row["95%"]),
                "p99_ms": number(row["99%"]),
                "max_ms": number(row["Max Response Time"]),
            }
    codes: dict[str, int] = {}
    failures = Path(f"{prefix}_failures.csv")
    if failures.exists():
        with failures.open() as f:
            for row in csv.DictReader(f):
                found = re.search(r"([A-Z_]{4,}):", row["Error"])
                code = found.group(1) if found else row["Error"][:60]
                codes[code] = codes.get(code, 0) + int(row["Occurrences"])
    return stats, codes


def run_scenario(scenario: Scenario, address: str, pid: int, seed_file: Path | None, out: Path) -> dict[str, Any]:
    """Runs Locust headless for the scenario; returns its figures with the server's CPU and peak RSS."""
    prefix = out / scenario.name
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--host",
        address,
        "-u",
        str(scenario.users),
        "-r",
        str(scenario.users),
        "-t",
        f"{scenario.seconds}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(prefix),
        "--loglevel",
        "WARNING",
        scenario.user_class,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    if "LOAD_WORKERS" in os.environ:  # several workers share the port by connection: one connection per user
        env.setdefault("LOAD_OWN_CONNECTIONS", "1")
    if seed_file is not None:
        env["LOAD_SEED"] = str(seed_file)
    print(f"-- {scenario.name}: {scenario.user_class} x {scenario.users} for {scenario.seconds} s", flush=True)
    cpu_before = cpu_seconds(pid)
    with Sampler(pid) as sampler, (out / f"{scenario.name}.log").open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=scenario.seconds + 60)
        except subprocess.TimeoutExpired:
            stop(proc, grace=5.0)
            raise RuntimeError(f"locust did not finish {scenario.name} in time") from None
        finally:
            stop(proc, grace=5.0)
    cpu = cpu_seconds(pid) - cpu_before
    if not Path(f"{prefix}_stats.csv").exists():
        raise RuntimeError(f"locust wrote no statistics for {scenario.name}: see {out / scenario.name}.log")
    stats, codes = read_stats(prefix)
    total = stats.get("Aggregated", {})
    calls = total.get("requests", 0.0)
    rss = [mb for _, mb in sampler.samples]
    return {
        "scenario": scenario.name,
        "user_class": scenario.user_class,
        "users": scenario.users,
        "seconds": scenario.seconds,
        "requests": int(calls),
        "rps": round(total.get("rps", 0.0), 1),
        "p50_ms": total.get("p50_ms", 0.0),
        "p95_ms": total.get("p95_ms", 0.0),
        "p99_ms": total.get("p99_ms", 0.0),
        "errors": int(total.get("failures", 0.0)),
        "error_codes": codes,
        "server_cpu_s": round(cpu, 2),
        "server_cpu_us_per_call": round(cpu / calls * 1e6, 1) if calls else 0.0,
        "server_peak_rss_mb": round(max(rss, default=0.0), 1),
        "rss_samples": [(round(t, 1), round(mb, 1)) for t, mb in sampler.samples[:: max(1, len(rss) // 300)]],
        "ratio_to_baseline": None,  # set once every scenario has run; None without a baseline (the soak)
        "per_method": {name: row for name, row in stats.items() if name != "Aggregated"},
    }


# --- targets and report ---------------------------------------------------------------------------------------


@dataclass
class Target:
    """One target of issue 9: what, the bound, the measured value, and whether it is met."""

    name: str
    bound: str
    value: float | None
    met: bool | None  # None: not measured in this run (scenario absent)


def load_targets(results: list[dict[str, Any]]) -> list[Target]:
    """The targets `make load` checks, from the scenarios' figures."""
    by_name = {r["scenario"]: r for r in results}
    base = by_name.get(f"baseline-{env_int('LOAD_BASELINE_USERS', 50)}")
    decide = next((r for r in results if r["user_class"] == "DecideUser"), None)
    mix50 = by_name.get("mix-50")
    mix100 = by_name.get("mix-100")

    def check(name: str, bound: str, value: float | None, ok: bool | None) -> Target:
        return Target(name, bound, value, ok if value is not None else None)

    targets = [
        check(
            "Decide server CPU per call (us)",
            "<= 700",
            decide["server_cpu_us_per_call"] if decide else None,
            decide is not None and decide["server_cpu_us_per_call"] <= 700,
        ),
        check(
            "mix at 50 users / baseline throughput",
            ">= 0.70",
            mix50["ratio_to_baseline"] if mix50 and base else None,
            mix50 is not None and base is not None and mix50["ratio_to_baseline"] >= 0.70,
        ),
        check(
            "mix at 50 users, calls/s",
            f">= {ORIGINAL_CLAIM_RPS:g}",
            mix50["rps"] if mix50 else None,
            mix50 is not None and mix50["rps"] >= ORIGINAL_CLAIM_RPS,
        ),
        check(
            "mix at 50 users, p99 (ms)",
            "<= 50",
            mix50["p99_ms"] if mix50 else None,
            mix50 is not None and mix50["p99_ms"] <= 50,
        ),
        check(
            "mix at 100 users, p99 (ms)",
            "<= 100",
            mix100["p99_ms"] if mix100 else None,
            mix100 is not None and mix100["p99_ms"] <= 100,
        ),
    ]
    for r in results:
        targets.append(check(f"{r['scenario']}: errors", "== 0", r["errors"], r["errors"] == 0))
    peak = max((r["server_peak_rss_mb"] for r in results), default=None)
    targets.append(check("server peak RSS (MB)", "<= 300", peak, peak is not None and peak <= 300))
    return targets


def soak_targets(result: dict[str, Any], warmup: float) -> list[Target]:
    """The soak's checks: RSS at the end within 10 % of RSS after the warm-up, and zero errors."""
    samples = result["rss_samples"]
    after = next((mb for t, mb in samples if t >= warmup), samples[-1][1] if samples else 0.0)
    end = samples[-1][1] if samples else 0.0
    growth = (end - after) / after if after else 0.0
    result["rss_after_warmup_mb"] = after
    result["rss_end_mb"] = end
    return [
        Target(f"RSS at the end vs after {warmup:g} s (growth)", "<= +10 %", round(growth * 100, 1), growth <= 0.10),
        Target("errors", "== 0", result["errors"], result["errors"] == 0),
    ]


def fmt(value: float | None) -> str:
    """A figure for the table."""
    if value is None:
        return "-"
    if value % 1 == 0:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def table(results: list[dict[str, Any]], targets: list[Target]) -> str:
    """summary.md: the scenarios and the targets, as Markdown."""
    lines = [
        "| scenario | users | calls/s | p50 ms | p95 ms | p99 ms | errors | server CPU us/call | peak RSS MB "
        "| vs baseline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        errors = fmt(r["errors"]) + (
            " (" + ", ".join(f"{c} {n}" for c, n in sorted(r["error_codes"].items())) + ")" if r["error_codes"] else ""
        )
        lines.append(
            f"| {r['scenario']} | {r['users']} | {fmt(r['rps'])} | {fmt(r['p50_ms'])} | {fmt(r['p95_ms'])} | "
            f"{fmt(r['p99_ms'])} | {errors} | {fmt(r['server_cpu_us_per_call'])} | {fmt(r['server_peak_rss_mb'])} | "
            f"{fmt(r['ratio_to_baseline'])} |"
        )
    lines += ["", "| target | bound | measured | |", "|---|---|---|---|"]
    for t in targets:
        verdict = "not measured" if t.met is None else ("met" if t.met else "**MISSED**")
        lines.append(f"| {t.name} | {t.bound} | {fmt(t.value)} | {verdict} |")
    return "\n".join(lines) + "\n"


def chart(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """chart.png: calls/s per scenario, and p50/p95/p99 latency (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["scenario"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.bar(names, [r["rps"] for r in results], color=["#888" if n.startswith("baseline") else "#36c" for n in names])
    left.set_ylabel("calls/s")
    left.set_title("throughput")
    left.tick_params(axis="x", rotation=30)
    x = range(len(names))
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
        right.plot(x, [max(r[key], 0.5) for r in results], style, label=key.removesuffix("_ms"))
    right.set_xticks(list(x), names, rotation=30)
    right.set_yscale("log")
    right.set_ylabel("ms")
    right.set_title("latency")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln), "")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "note": "the load generator (Locust) runs on the same machine and shares its cores with the server",
    }


# --- the runs -------------------------------------------------------------------------------------------------


def scenarios() -> list[Scenario]:
    """The `make load` scenarios from the environment."""
    seconds = env_int("LOAD_SECONDS", 45)
    plan = [
        Scenario(
            f"baseline-{env_int('LOAD_BASELINE_USERS', 50)}", "HealthUser", env_int("LOAD_BASELINE_USERS", 50), seconds
        )
    ]
    if (decide_users := env_int("LOAD_DECIDE_USERS", 10)) > 0:
        plan.append(Scenario(f"decide-{decide_users}", "DecideUser", decide_users, seconds))
    for users in (int(u) for u in os.environ.get("LOAD_MIX_USERS", "10,50,100").split(",") if u.strip()):
        plan.append(Scenario(f"mix-{users}", "MixUser", users, seconds))
    return plan


def run(soak: bool) -> int:
    """Starts the server, seeds it, runs the scenarios, writes the report; the exit status as described above."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(os.environ.get("LOAD_RESULTS", ROOT / "load" / "results")) / (f"soak-{stamp}" if soak else stamp)
    out.mkdir(parents=True, exist_ok=True)
    warmup = env_float("SOAK_WARMUP_SECONDS", 60)
    plan = (
        [
            Scenario(
                f"soak-{env_int('SOAK_USERS', 50)}", "MixUser", env_int("SOAK_USERS", 50), env_int("SOAK_SECONDS", 600)
            )
        ]
        if soak
        else scenarios()
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="allsuse-load-") as tmp:
        work = Path(tmp)
        tokens = create_keys(str(work / "allsuse.db"), env_int("LOAD_PORTFOLIOS", 40))
        admin = create_keys(str(work / "allsuse.db"), 1, "admin")[0]
        try:
            with server(work) as (address, proc):
                seed_file = seed(address, tokens, work / "seed", admin_token=admin)
                print(
                    f"server {address} (pid {proc.pid}), {len(tokens)} portfolios and keys; results in {out}",
                    flush=True,
                )
                for scenario in plan:
                    result = run_scenario(
                        scenario, address, proc.pid, None if scenario.user_class == "HealthUser" else seed_file, out
                    )
                    results.append(result)
                    print(
                        f"   {result['rps']} calls/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                        f"{result['errors']} errors, {result['server_cpu_us_per_call']} us CPU/call",
                        flush=True,
                    )
        finally:
            log = work / "server.log"
            if log.exists():  # the tail only: the JSON access log of a full run is tens of MB
                (out / "server-log-tail.txt").write_text(
                    "\n".join(log.read_text(errors="replace").splitlines()[-200:]) + "\n"
                )
    base = next((r for r in results if r["user_class"] == "HealthUser"), None)
    for r in results:
        r["ratio_to_baseline"] = round(r["rps"] / base["rps"], 3) if base and base["rps"] else None
    targets = soak_targets(results[0], warmup) if soak else load_targets(results)
    missed = [t for t in targets if t.met is False]
    summary = {
        "measured_at": stamp,
        "kind": "soak" if soak else "load",
        "machine": machine(),
        "server": "allsuse serve --config production (auth on, SQLite in a temporary folder, 127.0.0.1, plaintext)",
        "workers": env_int("LOAD_WORKERS", 1),
        "portfolios": env_int("LOAD_PORTFOLIOS", 40),
        "market": market_mode(),
        "call_timeout_s": env_float("LOAD_TIMEOUT", 5),
        "scenarios": results,
        "targets": [t.__dict__ for t in targets],
        "missed": [t.name for t in missed],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    markdown = table(results, targets)
    (out / "summary.md").write_text(f"# allsuse {summary['kind']} {stamp}\n\n{markdown}")
    chart(
        results,
        out / "chart.png",
        f"allsuse {summary['kind']} {stamp} ({os.cpu_count()} cores, Locust on the same host)",
    )
    print()
    print(markdown)
    print(f"results: {out}")
    if missed:
        print("targets missed: " + "; ".join(f"{t.name} {fmt(t.value)} (target {t.bound})" for t in missed))
        return 3
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--soak", action="store_true", help="the soak run instead of the scenarios")
    sub = parser.add_subparsers(dest="command")
    seeding = sub.add_parser("seed", help="seed a running server (another host) and write seed.json for Locust")
    seeding.add_argument("--address", required=True, help="HOST:PORT of the server")
    seeding.add_argument("--tokens", required=True, type=Path, help="file of trader API keys, one per line")
    seeding.add_argument("--out", required=True, type=Path, help="folder for seed.json and the market snapshots")
    seeding.add_argument("--tls-ca", type=Path, help="CA file when the server uses TLS (then set LOAD_TLS_CA too)")
    seeding.add_argument(
        "--admin-token", default=None, help="admin API key: publish the market history (LOAD_MARKET=history)"
    )
    args = parser.parse_args(argv)
    if args.command == "seed":
        tokens = [t.strip() for t in args.tokens.read_text().splitlines() if t.strip()]
        print(seed(args.address, tokens, args.out, args.tls_ca, args.admin_token))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a SIGTERM still stops the server and Locust (finally)
    try:
        return run(args.soak)
    except (RuntimeError, TimeoutError, grpc.RpcError) as exc:
        print(f"load: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
