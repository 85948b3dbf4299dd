"""A backtest read from the store (`--data store:URL`): the market history `allsuse data load` wrote gives the same
run as the files it came from, close-only series stay close-only, and a store without the symbol is refused."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from allsuse.backtest.data import Source, load_market
from allsuse.backtest.simulation import BacktestSpec, parse_symbols, run_backtest
from allsuse.errors import InvalidInputError
from tests.rpc_support import ROOT

DATA = ROOT.parent / "shared" / "data"
STOCKS = DATA / "stocks20_close_1990_2014.csv"
LAYOUT = ("gen=AMD,BAC", "rev=AAPL,MSFT", "com=JNJ,PG")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("store") / "allsuse.db")
    done = subprocess.run(
        [sys.executable, "-m", "allsuse.cli", "data", "load", str(STOCKS), "--store", url],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return url


def test_source_parse_reads_store_urls() -> None:
    assert Source.parse("store:var/a.db") == Source(Path("var/a.db"), None, store="var/a.db")
    assert Source.parse("AAPL=store:postgresql://h/db").store == "postgresql://h/db"
    assert Source.parse("AAPL=store:postgresql://h/db").symbol == "AAPL"
    assert str(Source.parse("aapl=store:x.db")) == "AAPL=store:x.db"
    with pytest.raises(InvalidInputError):
        Source.parse("store:")


def test_a_backtest_from_the_store_equals_the_one_from_the_file(loaded: str) -> None:
    symbols = parse_symbols(LAYOUT)
    start, end = dt.date(2012, 1, 1), dt.date(2013, 12, 31)
    from_file = run_backtest(BacktestSpec((Source(STOCKS),), start, end, 1e6, symbols=symbols))
    from_store = run_backtest(BacktestSpec((Source.parse(f"store:{loaded}"),), start, end, 1e6, symbols=symbols))
    assert from_store.dates == from_file.dates
    assert [t.__dict__ for t in from_store.trades] == [t.__dict__ for t in from_file.trades]
    # Everything but where the data came from is the same.
    assert {k: v for k, v in from_store.result.items() if k != "data"} == {
        k: v for k, v in from_file.result.items() if k != "data"
    }
    assert from_store.result["data"]["sources"] == [f"store:{loaded}"]
    market = load_market((Source.parse(f"MSFT=store:{loaded}"),))
    assert list(market.symbols) == ["MSFT"] and market.symbols["MSFT"].close_only


def test_a_store_without_the_symbol_is_refused(loaded: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        load_market((Source.parse(f"ZZZ=store:{loaded}"),))
    assert "no stored bars for ZZZ" in str(err.value)
    done = subprocess.run(
        [sys.executable, "-m", "allsuse.cli", "simulate", "--data", f"store:{loaded}", "--symbols", *LAYOUT,
         "--start", "2013-01-01", "--end", "2013-06-30", "--capital", "1000000"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "final equity" in done.stdout.lower()
