"""Parity of the decision engine while its pipeline moves into the core (issue 9): every decision of the two-year
SPX backtest, field by field, must stay what the all-Python engine decided. The golden file holds one line per
decision (day, account, action and a SHA-256 of every field but the running id), written once from the Python
engine; a changed label, level, order, ES, rule result or explanation word shows as the first differing line.

A deliberate behaviour change rewrites the file: ALLSUSE_WRITE_GOLDEN=1 pytest tests/test_decision_parity.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest

from allsuse.protocol import engine
from allsuse.protocol.backtest import simulate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SP500 = DATA / "sp500_daily_2009_2018.csv"
VIX = DATA / "vix_daily_2014_2018.csv"
GOLDEN = Path(__file__).parent / "data" / "decisions_spx_2014_2015.txt"


def _line(d: engine.Decision) -> str:
    record = dataclasses.asdict(d)
    record.pop("id")
    digest = hashlib.sha256(json.dumps(record, default=repr, sort_keys=True).encode()).hexdigest()[:24]
    return f"{d.as_of.date().isoformat()} {d.account_id} {d.action} {digest}"


@pytest.mark.skipif(not SP500.exists(), reason=f"shared data not found at {DATA}")
def test_every_decision_of_the_two_year_backtest_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    decide = engine.Engine.decide

    def recording(self: engine.Engine, *args: object, **kwargs: object) -> engine.Decision:
        d = decide(self, *args, **kwargs)  # type: ignore[arg-type]
        lines.append(_line(d))
        return d

    monkeypatch.setattr(engine.Engine, "decide", recording)
    r = simulate(SP500, vix=VIX, symbol="SPX", start=dt.date(2014, 1, 1), end=dt.date(2015, 12, 31), capital=20e6)
    assert r["final_equity"] == pytest.approx(20_469_721.92, abs=0.01)
    if os.environ.get("ALLSUSE_WRITE_GOLDEN") == "1":
        GOLDEN.write_text("\n".join(lines) + "\n")
    golden = GOLDEN.read_text().splitlines()
    for i, (ours, theirs) in enumerate(zip(lines, golden, strict=False)):
        assert ours == theirs, f"decision {i} differs: {ours} != {theirs}"
    assert len(lines) == len(golden)
