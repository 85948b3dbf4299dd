"""Backtest data: per-symbol and wide close-only files, symbol names, overlapping sources, NYSE alignment with
gaps reported (never filled), and errors naming the file, line and symbol."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from allsuse.backtest.data import Source, align, load_market, load_sources
from allsuse.errors import InvalidInputError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SP500 = DATA / "sp500_daily_2009_2018.csv"
STOCKS = DATA / "stocks20_close_1990_2014.csv"

needs_data = pytest.mark.skipif(not STOCKS.exists(), reason=f"shared data not found at {DATA}")


def _slice(
    src: Path, dst: Path, start: str, end: str, drop: frozenset[str] = frozenset(), add: tuple[str, ...] = ()
) -> Path:
    """Rows of a real file between two dates (inclusive), without the dates in `drop`, plus extra lines."""
    lines = src.read_text().splitlines()
    body = [ln for ln in lines[1:] if start <= ln[:10] <= end and ln[:10] not in drop]
    body = sorted(body + list(add))
    dst.write_text("\n".join([lines[0], *body]) + "\n")
    return dst


@needs_data
def test_a_wide_close_only_file_gives_one_series_per_column() -> None:
    symbols = load_sources([Source(STOCKS)])
    assert len(symbols) == 20 and {"AAPL", "AMD", "MSFT", "XOM"} <= set(symbols)
    aapl = symbols["AAPL"]
    assert aapl.close_only and aapl.bars.dates[0] == dt.date(1990, 1, 2)
    assert aapl.bars.close[0] == pytest.approx(0.264)  # split-adjusted: under $1
    # Close-only: high = low = close (so the true range is the close-to-close move) and no volume.
    assert np.array_equal(aapl.bars.high, aapl.bars.close) and np.array_equal(aapl.bars.low, aapl.bars.close)
    assert not aapl.bars.volume.any()


@needs_data
def test_symbols_come_from_the_file_name_or_symbol_equals_path() -> None:
    assert set(load_sources([Source(SP500)])) == {"SP500"}
    assert set(load_sources([Source.parse(f"spx={SP500}")])) == {"SPX"}
    # SYMBOL=PATH on a wide file takes that one column.
    picked = load_sources([Source.parse(f"AMD={STOCKS}")])
    assert set(picked) == {"AMD"} and picked["AMD"].close_only


@needs_data
def test_one_symbol_from_two_sources_is_refused_naming_both(tmp_path: Path) -> None:
    copy = _slice(STOCKS, tmp_path / "more_stocks.csv", "2008-01-01", "2008-12-31")
    with pytest.raises(InvalidInputError) as err:
        load_sources([Source(STOCKS), Source(copy)])
    text = str(err.value)
    assert "AAPL" in text and str(STOCKS) in text and "more_stocks.csv" in text
    with pytest.raises(InvalidInputError, match="AAPL"):
        load_sources([Source(STOCKS), Source.parse(f"AAPL={SP500}")])


@needs_data
def test_a_holiday_row_is_dropped_and_a_missing_session_reported_not_filled(tmp_path: Path) -> None:
    # Real S&P 500 bars of June-July 2014, without Tuesday 2014-07-08, plus a row dated Friday 2014-07-04
    # (Independence Day, the exchange was closed).
    path = _slice(
        SP500,
        tmp_path / "spx_2014.csv",
        "2014-06-01",
        "2014-07-31",
        drop=frozenset({"2014-07-08"}),
        add=("2014-07-04,1985.0,1986.0,1984.0,1985.5,1000",),
    )
    market = load_market([Source(path)])
    assert dt.date(2014, 7, 4) not in market.sessions
    assert dt.date(2014, 7, 8) in market.sessions  # an NYSE session, kept in the calendar
    bars = market.symbols["SPX"].bars
    assert dt.date(2014, 7, 8) not in bars.dates and dt.date(2014, 7, 4) not in bars.dates
    assert market.gaps["SPX"].missing == (dt.date(2014, 7, 8),)
    assert market.gaps["SPX"].dropped == (dt.date(2014, 7, 4),)
    assert any("SPX: missing 1 NYSE session" in n and "2014-07-08" in n for n in market.notes)
    assert any("SPX: 1 row(s) on days the NYSE was closed dropped: 2014-07-04" in n for n in market.notes)


@needs_data
def test_a_symbol_listed_later_is_aligned_without_filling_its_early_days(tmp_path: Path) -> None:
    late = _slice(SP500, tmp_path / "late_x.csv", "2014-03-01", "2014-06-30")
    early = _slice(SP500, tmp_path / "early_y.csv", "2014-01-01", "2014-06-30")
    market = align(load_sources([Source(late), Source(early)]))
    assert market.sessions[0] == dt.date(2014, 1, 2)
    assert market.symbols["LATE"].bars.dates[0] == dt.date(2014, 3, 3)
    assert "LATE" not in market.gaps  # before its first row it simply was not there yet


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("date,AAPL,MSFT\n2020-01-02,1.5,2\n2020-01-03,x,2\n", "line 3: AAPL 'x' is not a number"),
        ("date,AAPL,MSFT\n2020-01-02,1.5,2\n2020-01-03,-1,2\n", "line 3: AAPL '-1' must be a price > 0"),
        ("date,AAPL,MSFT\n2020-01-02,1.5,2\n2020-01-03,1.5,nan\n", "line 3: MSFT 'nan' must be a price > 0"),
        ("date,AAPL,MSFT\n2020-01-02,1.5,2\n2020-01-03,1.5,inf\n", "line 3: MSFT 'inf' must be a price > 0"),
        # inf and -inf in one row (their sum is NaN, no cell is): the first is named.
        ("date,AAPL,MSFT\n2020-01-02,1.5,2\n2020-01-03,inf,-inf\n", "line 3: AAPL 'inf' must be a price > 0"),
        ("date,AAPL,MSFT\n2020-01-02,1.5,2\n2020-01-03,NaN, 2\n", "line 3: AAPL 'NaN' must be a price > 0"),
        # A short row: its missing cell is empty (a missing session of that symbol), the next error still found.
        ("date,AAPL,MSFT\n2020-01-02,1.5\n2020-01-03,1.5,x\n", "line 3: MSFT 'x' is not a number"),
        ("date,AAPL,AAPL\n2020-01-02,1.5,2\n", "line 1: symbol AAPL has two columns"),
        ("date,AAPL\n2020-01-03,1.5\n2020-01-02,1.5\n", "line 3: date 2020-01-02 is not after"),
        ("day,AAPL\n2020-01-02,1.5\n", "line 1: needs a date column"),
        ("date,open,high,low,close,volume\n2020-01-02,1,2,1,zz,5\n", "line 2: close 'zz' is not a number"),
    ],
)
def test_bad_files_name_the_file_line_and_symbol(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(text)
    with pytest.raises(InvalidInputError) as err:
        load_sources([Source(path)])
    assert needle in str(err.value) and "prices.csv" in str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"nope\.csv: no such file"):
        load_sources([Source(tmp_path / "nope.csv")])


@needs_data
def test_an_empty_cell_of_a_wide_file_is_a_missing_session_of_that_symbol_only(tmp_path: Path) -> None:
    lines = STOCKS.read_text().splitlines()
    header = lines[0].split(",")
    body = [ln for ln in lines[1:] if "2014-06-01" <= ln[:10] <= "2014-07-31"]
    body = [ln.split(",") for ln in body]
    for row in body:
        if row[0] == "2014-07-08":
            row[header.index("MSFT")] = ""
    path = tmp_path / "wide.csv"
    path.write_text("\n".join([lines[0], *(",".join(r) for r in body)]) + "\n")
    market = load_market([Source(path)])
    assert market.gaps["MSFT"].missing == (dt.date(2014, 7, 8),)
    assert "AAPL" not in market.gaps and dt.date(2014, 7, 8) in market.symbols["AAPL"].bars.dates
    assert len(market.symbols["MSFT"].bars) == len(market.symbols["AAPL"].bars) - 1


def test_a_wide_file_reads_blank_lines_spaces_short_rows_and_one_column(tmp_path: Path) -> None:
    """Blank lines (cells of blanks alone) are skipped, cells may carry spaces, a short row's missing cells are empty,
    and a wide file of one symbol column reads like any other."""
    path = tmp_path / "wide.csv"
    path.write_text("date,AAPL,MSFT\n2020-01-02, 1.5 ,2\n , ,\n\n2020-01-03,1.25\n2020-01-06,1.75,2.5\n")
    loaded = load_sources([Source(path)])
    aapl, msft = loaded["AAPL"], loaded["MSFT"]
    assert aapl.bars.close.tolist() == [1.5, 1.25, 1.75]
    assert msft.bars.close.tolist() == [2.0, 2.5]
    assert msft.bars.dates == (dt.date(2020, 1, 2), dt.date(2020, 1, 6))
    one = tmp_path / "one.csv"
    one.write_text("date,KO\n2020-01-02,40.5\n\n2020-01-03,\n2020-01-06,41\n")
    ko = load_sources([Source(one)])["KO"]
    assert ko.bars.close.tolist() == [40.5, 41.0] and ko.bars.dates == (dt.date(2020, 1, 2), dt.date(2020, 1, 6))
