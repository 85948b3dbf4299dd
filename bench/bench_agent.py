"""What one Converse turn costs in-process (issue 11: p99 <= 5 ms for an intent-only turn, <= 10 ms for a
recommendation turn beyond the Decide it calls).

A turn is what the servicer runs on its worker thread: load the conversation from the store, `Agent.turn`
(understanding, dialogue, the answer's real calls) and queue the conversation's write in the store's group
commit. The wait for that write to be durable (SQLite in WAL mode with synchronous=FULL: an fsync) is measured
apart ("save" in the printout): the server awaits it on the event loop before replying, as every write RPC waits
for its commit, and concurrent writes share one fsync. gRPC and the event loop are left out.

Rows:
- intent-only turn (a cycle of explanations, a market view, help, a week classification): p99 against the
  understanding alone (`understand`, p99) as the baseline;
- recommendation turn ("what should I trade on NVDA for Gen-Acc?"): p99 of the turn minus the Decide it calls
  (timed inside the same turn), against that Decide's p99 as the baseline.

`python bench/bench_agent.py` prints p50, p99 and max of each, and the intent-only turn's CPU time on its thread
("intent_cpu": what the turn costs without waiting for a core on a busy machine).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from allsuse import config  # noqa: E402
from allsuse.agent.dialogue import Agent  # noqa: E402
from allsuse.agent.nlu import understand  # noqa: E402
from allsuse.server import agent as agent_service  # noqa: E402
from allsuse.server.app import Service  # noqa: E402
from allsuse.server.convert import money_out  # noqa: E402
from allsuse.store import Store  # noqa: E402
from allsuse.store import market as stored_market  # noqa: E402
from allsuse.v1 import agent_pb2, portfolio_pb2  # noqa: E402
from bench.harness import Row  # noqa: E402

NOW = dt.datetime(2024, 3, 7, 15, 45)
EPOCH = dt.date(1970, 1, 1)
TURNS = 400
RECOMMENDATIONS = 150
INTENT_ONLY = (
    "explain the accounts",
    "what are week types?",
    "how does NVDA look this week?",
    "help",
    "classify the week: short put down 3.2%",
    "how does forking work?",
)


def _seed(store: Store) -> None:
    """300 days of a steady uptrend for NVDA with quotes (IV 0.45) and a VIX, ending on NOW's day."""
    n, rows, day = 300, [], NOW.date()
    days: list[dt.date] = []
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    days.reverse()
    close = 60.0 * 1.004 ** np.arange(n)
    rows = [
        ((d - EPOCH).days, float(c), float(c * 1.004), float(c * 0.996), float(c), 1e6)
        for d, c in zip(days, close, strict=True)
    ]

    def unit(tx: Any) -> None:
        stored_market.put_bars(tx, "NVDA", rows, replace=True, actor="bench")
        quotes = {"NVDA": {"iv": 0.45, "sector": "tech"}, stored_market.MARKET_WIDE: {"vix": 18.0}}
        stored_market.put_quotes(tx, (NOW.date() - EPOCH).days, quotes, replace=True, actor="bench")

    store.write(unit)


class _TimedCalls(agent_service.ServiceCalls):
    """ServiceCalls that also records how long each Decide took (to subtract it from the turn)."""

    decide_seconds: ClassVar[list[float]] = []

    def decide(self, portfolio_id: str, account_id: str, symbol: str, as_of: dt.datetime) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            return super().decide(portfolio_id, account_id, symbol, as_of)
        finally:
            _TimedCalls.decide_seconds.append(time.perf_counter() - start)


def _p(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def measure() -> dict[str, list[float]]:
    """Per-turn seconds of intent-only turns, recommendation turns beyond their Decide, their Decides, and
    `understand` alone."""
    tmp = Path(tempfile.mkdtemp(prefix="allsuse-bench-agent-"))
    env = {"ALLSUSE_STORE_URL": str(tmp / "allsuse.db"), "ALLSUSE_METRICS_ENABLED": "false"}
    service = Service(config.load("development", environ=env))
    asyncio.run(service.store_component.start())
    try:
        store = service.deps.store
        _seed(store)
        servicer = agent_service.AgentServicer(service.deps, clock=lambda: NOW)
        request = portfolio_pb2.CreatePortfolioRequest(total=money_out(Decimal(10_000_000)))
        pid = servicer.portfolios._create(request).portfolio_id
        symbols = agent_service.configured_symbols()

        durable: list[float] = []
        cpu: list[float] = []

        def turn(conversation_id: str, message: str, calls_type: type = agent_service.ServiceCalls) -> float:
            """One turn as the servicer's worker thread runs it; the wait for the durable save is kept apart."""
            start, thread = time.perf_counter(), time.thread_time()
            request = agent_pb2.ConverseRequest(conversation_id=conversation_id, portfolio_id=pid, message=message)
            conversation = servicer.open(request, conversation_id)
            calls = calls_type(servicer.deps, servicer.decisions, servicer.portfolios, servicer.clock)
            Agent(calls).turn(conversation, message)
            saved = servicer.conversations.submit(conversation)
            took = time.perf_counter() - start
            cpu.append(time.thread_time() - thread)
            saved.result()
            durable.append(time.perf_counter() - start - took)
            return took

        for i in range(30):  # warm-up: caches, the conversation at its turn cap
            turn("bench-intent", INTENT_ONLY[i % len(INTENT_ONLY)])
        durable.clear()
        cpu.clear()
        intent = [turn("bench-intent", INTENT_ONLY[i % len(INTENT_ONLY)]) for i in range(TURNS)]
        saves, intent_cpu = list(durable), list(cpu)
        understanding: list[float] = []
        for i in range(TURNS):
            start = time.perf_counter()
            understand(INTENT_ONLY[i % len(INTENT_ONLY)], symbols=symbols, today=NOW.date())
            understanding.append(time.perf_counter() - start)
        _TimedCalls.decide_seconds = []
        for _ in range(10):
            turn("bench-recommend", "what should I trade on NVDA for Gen-Acc?", _TimedCalls)
            turn("bench-recommend", "no", _TimedCalls)
        _TimedCalls.decide_seconds = []
        totals = []
        for _ in range(RECOMMENDATIONS):
            totals.append(turn("bench-recommend", "what should I trade on NVDA for Gen-Acc?", _TimedCalls))
            turn("bench-recommend", "no", _TimedCalls)  # lets the approval question lapse
        decides = list(_TimedCalls.decide_seconds)
        beyond = [t - d for t, d in zip(totals, decides, strict=True)]
        return {
            "intent": intent,
            "intent_cpu": intent_cpu,
            "understand": understanding,
            "beyond": beyond,
            "decide": decides,
            "save": saves,
        }
    finally:
        asyncio.run(service.store_component.stop())


def run() -> list[Row]:
    """The benchmark rows (p99 figures)."""
    m = measure()
    return [
        Row(
            "Converse intent-only turn in-process, p99 (load, understand, answer, save queued)",
            _p(m["intent"], 99),
            "understand alone, p99",
            _p(m["understand"], 99),
            "<= 5 ms",
        ),
        Row(
            "Converse recommendation turn beyond its Decide, p99",
            _p(m["beyond"], 99),
            "the Decide it calls, p99",
            _p(m["decide"], 99),
            "<= 10 ms",
        ),
    ]


def main() -> None:
    m = measure()
    for name, samples in m.items():
        print(
            f"{name:11s} n={len(samples):4d} p50 {_p(samples, 50) * 1e3:7.3f} ms  p99 {_p(samples, 99) * 1e3:7.3f} ms"
            f"  max {max(samples) * 1e3:7.3f} ms  mean {statistics.fmean(samples) * 1e3:7.3f} ms"
        )


if __name__ == "__main__":
    main()
