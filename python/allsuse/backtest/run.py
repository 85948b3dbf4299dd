"""What one backtest produces, shared by the simulation, the benchmarks, the outputs and the report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from allsuse.backtest.costs import CostModel

# trades.csv's columns, in order.
TRADE_COLUMNS = (
    "date",
    "account",
    "symbol",
    "action",
    "instrument",
    "strike",
    "expiry",
    "contracts",
    "shares",
    "price",
    "mid",
    "commission",
    "spread_cost",
    "realised_pnl",
    "reason",
)


@dataclass(frozen=True)
class Trade:
    """One order and its fill. `contracts` for options (negative = sold), `shares` for stock (negative = sold);
    `price` is the fill, `mid` the model price it was filled against; `spread_cost` what crossing half the spread
    cost; `realised_pnl` is set on closing trades (buy-back, expiry, assignment, share sale), 0 otherwise;
    `reason` is the decision's reason code (or EXPIRED, ASSIGNED, REBALANCE, ROLL for mechanical events)."""

    date: dt.date
    account: str
    symbol: str
    action: str
    instrument: str
    strike: float | None
    expiry: dt.date | None
    contracts: int
    shares: float
    price: float
    mid: float
    commission: float
    spread_cost: float
    realised_pnl: float
    reason: str

    def row(self) -> list[str]:
        """The trade as a trades.csv row."""
        return [
            self.date.isoformat(),
            self.account,
            self.symbol,
            self.action,
            self.instrument,
            "" if self.strike is None else f"{self.strike:.4f}",
            "" if self.expiry is None else self.expiry.isoformat(),
            str(self.contracts),
            f"{self.shares:g}",
            f"{self.price:.4f}",
            f"{self.mid:.4f}",
            f"{self.commission:.2f}",
            f"{self.spread_cost:.2f}",
            f"{self.realised_pnl:.2f}",
            self.reason,
        ]


@dataclass
class SeriesRun:
    """A daily equity series with its trades: the protocol's portfolio, an account, or a benchmark.
    `deployment` (optional) is the share of equity committed at each close (put collateral, shares held);
    `warnings` says what the series could not do as specified (a put too dear for its share of capital...)."""

    name: str
    equity: np.ndarray
    trades: list[Trade] = field(default_factory=list)
    commissions: float = 0.0
    spread_costs: float = 0.0
    interest: float = 0.0
    deployment: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class BacktestRun:
    """Everything one backtest produced. `equity` holds the daily closing equity of each account (by id), of
    "portfolio", and of each benchmark (by name), all aligned on `dates`; `deployment` is the portfolio's share of
    equity committed at each close; `result` is what result.json holds."""

    result: dict[str, Any]
    dates: list[dt.date]
    equity: dict[str, np.ndarray]
    deployment: np.ndarray
    trades: list[Trade]
    benchmarks: dict[str, SeriesRun] = field(default_factory=dict)
    # Added by the simulation for the benchmarks: each traded symbol's close and the annual IV the protocol priced
    # it with, per day of `dates` (NaN on a session the symbol has no bar); the index symbols settled in cash; the
    # starting capital and the cost model of the run.
    closes: dict[str, np.ndarray] = field(default_factory=dict)
    vols: dict[str, np.ndarray] = field(default_factory=dict)
    cash_settled: set[str] = field(default_factory=set)
    capital: float = 0.0
    costs: CostModel | None = None
