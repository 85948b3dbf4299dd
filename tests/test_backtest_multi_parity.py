"""Parity of the multi-symbol backtest while it is made faster (issue 10's speed target): two years of the issue's
12-symbol layout across the three accounts, default costs, must give the very trades, daily equity, deployment and
decisions that main gave before any speed work (7c236f1). The digests were recorded from that commit; a changed
fill, a cent of equity or a word of an explanation changes them.

A deliberate behaviour change re-records them (and says why in its commit)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from allsuse.backtest.data import Source
from allsuse.backtest.run import BacktestRun
from allsuse.backtest.simulation import BacktestSpec, parse_symbols, run_backtest
from allsuse.protocol import engine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STOCKS = DATA / "stocks20_close_1990_2014.csv"
LAYOUT = ("gen=AMD,BAC,RRC,BBY", "rev=AAPL,MSFT,JPM,HD", "com=JNJ,PG,KO,WMT")

# Recorded from main at 7c236f1 (before the speed work) with the digests below.
RUN_DIGEST = "637aaa1baa5158c12c9b814f"
DECISIONS_DIGEST = "1eb00ef80d13930b627c772c"
DECISIONS = 4431
FINAL_EQUITY = 1_050_664.88
FILLS = 1223


def run_digest(run: BacktestRun) -> str:
    """SHA-256 (24 hex digits) of every fill (all fields, exact floats), every equity series and the deployment."""
    h = hashlib.sha256()
    for t in run.trades:
        h.update(repr(dataclasses.astuple(t)).encode())
    for name in sorted(run.equity):
        h.update(name.encode())
        h.update(np.asarray(run.equity[name], dtype=np.float64).tobytes())
    h.update(np.asarray(run.deployment, dtype=np.float64).tobytes())
    return h.hexdigest()[:24]


@pytest.mark.skipif(not STOCKS.exists(), reason=f"shared data not found at {DATA}")
def test_two_years_of_the_12_symbol_layout_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = hashlib.sha256()
    count = [0]
    decide = engine.Engine.decide

    def recording(self: engine.Engine, *args: object, **kwargs: object) -> engine.Decision:
        d = decide(self, *args, **kwargs)  # type: ignore[arg-type]
        record = dataclasses.asdict(d)
        record.pop("id")
        digest.update(json.dumps(record, default=repr, sort_keys=True).encode())
        count[0] += 1
        return d

    monkeypatch.setattr(engine.Engine, "decide", recording)
    spec = BacktestSpec(
        (Source(STOCKS),), dt.date(2013, 1, 1), dt.date(2014, 12, 31), 1e6, symbols=parse_symbols(LAYOUT)
    )
    run = run_backtest(spec)
    assert run.result["final_equity"] == pytest.approx(FINAL_EQUITY, abs=0.005)
    assert len(run.trades) == FILLS
    assert count[0] == DECISIONS
    assert digest.hexdigest()[:24] == DECISIONS_DIGEST
    assert run_digest(run) == RUN_DIGEST
