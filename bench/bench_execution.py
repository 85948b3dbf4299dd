"""Issue 13: the same 1,000 orders of a real backtest executed on the paper broker adaptively and immediately.

The orders are the first 1,000 of the issue 10 backtest (bench_backtest's 10 years x 12 symbols, 2005-2014 of the
shared close-only stock file, $1M) that a trader would send: option sales and buy-backs, share purchases and sales
(assignments and expiries are not orders). Each is sent at 10:00 (session minute 30) against the paper market at
the backtest's price: the option's model mid (the share's close), the symbol's close as spot, the annual IV the
protocol priced it with, the option's Black-Scholes delta. Urgency comes from the decision's reason as from a stored
decision (allsuse.execution.urgency_of: REDUCE and CLOSE are risk reduction, a level-4 close an emergency).

Adaptive: children of at most `slice_contracts` at the urgency's participation rate, limits inside the R13 collar,
cancel-replace after the timeout (config/base.yaml's execution defaults). Immediate: one marketable order for the
whole quantity at the collar's edge. Both run on a paper market with the same seed per order (the same mid path),
so the difference is the execution, not luck. The model is the service's default, not tuned for this bench.

Runs of each mode: "expected" on a market whose mid moves only by impact (the model's expected cost; it leaves out
the cost of resting while the mid moves, so it overstates what resting saves) and "realised" on seeded random mids
(draws of the luck of the path; their mean is the figure the shortfall goal is read on). Averages
are over the orders both modes filled completely (an order whose half spread is wider than the R13 collar cannot be
filled inside it in either mode), weighted by the order's arrival notional (premium x 100 x contracts, shares x
price): the portfolio's cost in bps of what it traded. Per-order means are printed too; they are dominated by
options worth a few cents, whose one-tick spread is hundreds of bps of their price. Goals (issue 13): adaptive
impact < 10 bps; shortfall >= 20% less than immediate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allsuse import config, pricing
from allsuse.backtest.data import Source
from allsuse.backtest.run import Trade
from allsuse.backtest.simulation import BacktestSpec, parse_symbols, run_backtest
from allsuse.execution import (
    ExecutionEngine,
    Instrument,
    MarketParams,
    PaperBroker,
    ParentOrder,
    Schedule,
    urgency_of,
)
from allsuse.execution.settings import market_params, schedule
from bench.harness import Row

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STOCKS = DATA / "stocks20_close_1990_2014.csv"
LAYOUT = ("gen=AMD,BAC,RRC,BBY", "rev=AAPL,MSFT,JPM,HD", "com=JNJ,PG,KO,WMT")
ORDERS = 1000
START_MINUTE = 30
REALISED_SEEDS = (0, 1, 2, 3)  # one realised run is one draw of the path: four show the spread of the luck
SIDES = {"SELL_TO_OPEN": "SELL", "BUY_TO_CLOSE": "BUY", "BUY_SHARES": "BUY", "SELL_SHARES": "SELL"}


@dataclass(frozen=True)
class Order:
    """One backtest order as the execution engine gets it."""

    instrument: Instrument
    side: str
    quantity: int
    urgency: str
    closing: bool = False


def backtest_orders(limit: int = ORDERS) -> list[Order]:
    """The first `limit` sendable orders of the 12-symbol backtest, with the market the backtest priced them in."""
    spec = BacktestSpec(
        (Source(STOCKS),), dt.date(2005, 1, 1), dt.date(2014, 12, 31), 1e6, symbols=parse_symbols(LAYOUT)
    )
    run = run_backtest(spec)
    index = {d: i for i, d in enumerate(run.dates)}
    out: list[Order] = []
    for t in run.trades:
        if t.action not in SIDES:
            continue
        order = _order(t, float(run.closes[t.symbol][index[t.date]]), float(run.vols[t.symbol][index[t.date]]))
        if order is not None:
            out.append(order)
        if len(out) == limit:
            break
    return out


def _order(t: Trade, spot: float, iv: float) -> Order | None:
    if not (math.isfinite(spot) and math.isfinite(iv)) or spot <= 0 or iv <= 0 or t.mid <= 0:
        return None
    action = t.reason.split("/")[0]
    level4 = "/L4" in t.reason
    urgency = urgency_of({"action": action, "trust_kind": "emergency" if level4 else "", "account_state": "ACTIVE"})
    if t.instrument == "stock":
        instrument = Instrument(t.symbol, "stock", 0.0, "", t.mid, spot, iv, 1.0)
        return Order(instrument, SIDES[t.action], int(abs(t.shares)), urgency)
    assert t.strike is not None and t.expiry is not None
    years = max(1, (t.expiry - t.date).days) / 365.0
    delta = abs(float(pricing.bs_greeks(t.instrument, spot, t.strike, years, iv)["delta"]))
    instrument = Instrument(t.symbol, t.instrument, t.strike, t.expiry.isoformat(), t.mid, spot, iv, min(1.0, delta))
    return Order(instrument, SIDES[t.action], abs(t.contracts), urgency, closing=t.action == "BUY_TO_CLOSE")


def settings() -> tuple[MarketParams, Schedule, config.ExecutionConfig]:
    """The service's default execution settings (config/base.yaml)."""
    cfg = config.load("development", environ={}).execution
    return market_params(cfg), schedule(cfg), cfg


async def execute(
    orders: list[Order], mode: str, *, noise: bool, seed: int = 0, passive: bool = True
) -> list[dict[str, Any]]:
    """Each order alone on a paper market seeded by (seed, its index); the finished order records. Without
    `noise` the mid moves only by impact and expected adverse selection: the records are the model's expected
    costs. `passive=False`: children never rest passively (passive_steps 0), the engine before passive fills."""
    params, sched, cfg = settings()
    if not passive:
        sched = dataclasses.replace(sched, passive_steps={"normal": 0, "risk_reduction": 0})
    records = []
    for n, o in enumerate(orders):
        broker = PaperBroker(params, seed=seed * 1_000_003 + n, start_minute=START_MINUTE, noise=noise)
        engine = ExecutionEngine(
            broker, sched, commission_per_contract=cfg.commission_per_contract,
            commission_per_share=cfg.commission_per_share, horizon_minutes=cfg.horizon_minutes,
        )  # fmt: skip
        parent = ParentOrder(f"o{n}", o.instrument, o.side, o.quantity, urgency=o.urgency, mode=mode, closing=o.closing)
        await engine.submit(parent)
        while not parent.done:
            for fill in await broker.advance():
                await engine.on_fill(fill)
            await engine.on_minute()
        record = parent.payload()
        record["notional"] = parent.arrival_mid * parent.contracts * (1 if o.instrument.kind == "stock" else 100)
        records.append(record)
    return records


def summary(records: list[dict[str, Any]], both: list[bool]) -> dict[str, float]:
    """Averages over the orders both modes filled completely (`both`), per order and weighted by arrival notional,
    and the fill rate over every order."""
    done = [r for r, b in zip(records, both, strict=True) if b]
    weights = [r["notional"] for r in done]

    def mean(key: str, kinds: tuple[str, ...] = ("put", "call", "stock")) -> float:
        values = [r[key] for r in done if r["kind"] in kinds]
        return statistics.fmean(values) if values else float("nan")

    def weighted(key: str) -> float:
        return sum(r[key] * w for r, w in zip(done, weights, strict=True)) / sum(weights)

    return {
        "fill_rate": sum(r["filled_contracts"] for r in records) / sum(r["contracts"] for r in records),
        "impact_bps": mean("impact_bps"),
        "impact_weighted": weighted("impact_bps"),
        "impact_options": mean("impact_bps", ("put", "call")),
        "impact_stock": mean("impact_bps", ("stock",)),
        "shortfall_bps": mean("shortfall_bps"),
        "shortfall_options": mean("shortfall_bps", ("put", "call")),
        "shortfall_stock": mean("shortfall_bps", ("stock",)),
        "shortfall_weighted": weighted("shortfall_bps"),
        "vwap_bps": mean("vwap_slippage_bps"),
        "twap_bps": mean("twap_slippage_bps"),
        "minutes": statistics.fmean(r["minutes_worked"] for r in done),
        "passive": sum(r["passive_contracts"] * r["notional"] / r["contracts"] for r in done) / sum(weights),
    }


def _line(mode: str, s: dict[str, float]) -> str:
    return (
        f"    {mode:9s}: notional-weighted impact {s['impact_weighted']:.2f} bps, shortfall "
        f"{s['shortfall_weighted']:.2f} bps; per-order means: impact {s['impact_bps']:.1f} bps (options "
        f"{s['impact_options']:.1f}, stock {s['impact_stock']:.2f}), shortfall {s['shortfall_bps']:.0f} bps (options "
        f"{s['shortfall_options']:.0f}, stock {s['shortfall_stock']:.2f}), VWAP slippage {s['vwap_bps']:.0f}, TWAP "
        f"{s['twap_bps']:.0f}; fill rate {s['fill_rate']:.3f}, {s['minutes']:.1f} minutes an order, "
        f"{s['passive']:.0%} of the notional filled passively"
    )


def run() -> list[Row]:
    if not STOCKS.exists():
        print(f"skipping the execution row: {STOCKS} not found")
        return []
    orders = backtest_orders()
    kinds = {k: sum(1 for o in orders if o.instrument.kind == k) for k in ("put", "call", "stock")}
    urgencies = {u: sum(1 for o in orders if o.urgency == u) for u in ("normal", "risk_reduction", "emergency")}
    print(f"execution: {len(orders)} backtest orders {kinds}, urgency {urgencies}")
    seconds: dict[str, float] = {}
    result: dict[str, dict[str, float]] = {}
    runs = [(False, 0, "expected (mid moved by impact and expected adverse selection only)")]
    runs += [(True, seed, f"realised (seeded random mid, seed {seed})") for seed in REALISED_SEEDS]
    for noise, seed, label in runs:
        records = {}
        for mode in ("adaptive", "immediate"):
            start = time.perf_counter()
            records[mode] = asyncio.run(execute(orders, mode, noise=noise, seed=seed))
            seconds[mode] = seconds.get(mode, 0.0) + time.perf_counter() - start
        both = [
            a["filled_contracts"] == a["contracts"] and i["filled_contracts"] == i["contracts"]
            for a, i in zip(records["adaptive"], records["immediate"], strict=True)
        ]
        adaptive, immediate = summary(records["adaptive"], both), summary(records["immediate"], both)
        saved = 1 - adaptive["shortfall_weighted"] / immediate["shortfall_weighted"]
        saved_mean = 1 - adaptive["shortfall_bps"] / immediate["shortfall_bps"]
        print(f"  {label}, over the {sum(both)} orders both filled completely:")
        print(_line("adaptive", adaptive))
        print(_line("immediate", immediate))
        print(
            f"    adaptive impact {adaptive['impact_weighted']:.2f} bps notional-weighted (goal < 10 bps: "
            f"{'met' if adaptive['impact_weighted'] < 10 else 'NOT met'}; per-order mean {adaptive['impact_bps']:.1f}"
            f" bps: {'met' if adaptive['impact_bps'] < 10 else 'NOT met'}); shortfall saved against immediate "
            f"{saved:.1%} notional-weighted (goal >= 20%: {'met' if saved >= 0.2 else 'NOT met'}; per-order mean "
            f"{saved_mean:.1%})"
        )
        if not noise:
            resting = summary(asyncio.run(execute(orders, "adaptive", noise=False, passive=False)), both)
            print(
                f"    adaptive without resting (passive_steps 0, the same orders): shortfall "
                f"{resting['shortfall_weighted']:.2f} bps notional-weighted, saved "
                f"{1 - resting['shortfall_weighted'] / immediate['shortfall_weighted']:.1%}"
            )
        result[f"realised {seed}" if noise else "expected"] = {
            "impact": adaptive["impact_weighted"],
            "impact_immediate": immediate["impact_weighted"],
            "saved": saved,
        }
    realised = [result[f"realised {seed}"]["saved"] for seed in REALISED_SEEDS]
    print(
        f"  realised over seeds {list(REALISED_SEEDS)}: shortfall saved {statistics.fmean(realised):.1%} on average "
        f"(from {min(realised):.1%} to {max(realised):.1%})"
    )
    e = result["expected"]
    mean_saved = statistics.fmean(realised)
    return [
        Row(
            f"execution: {len(orders)} backtest orders on the paper broker, adaptive (expected, notional-weighted: "
            f"impact {e['impact']:.2f} bps, shortfall {e['saved']:.0%} under immediate; realised {mean_saved:.0%}, "
            f"mean of {len(realised)} seeds)",
            seconds["adaptive"],
            f"immediate (expected impact {e['impact_immediate']:.2f} bps)",
            seconds["immediate"],
            "impact < 10 bps, shortfall -20%",
            per="per order",
            count=len(runs) * len(orders),
        )
    ]
