"""Data quality of market files (allsuse.data_quality, `allsuse data check`, and the checks and gap filling of
`allsuse data load`): each check on a crafted file, the JSON report and exit codes, forward-filling of short gaps
flagged imputed in a real store (directly and through a real server), and refusal of long gaps with nothing
written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from allsuse.data_quality import CHECKS, Limits, check_file, fill_gaps, missing_sessions
from allsuse.errors import InvalidInputError
from allsuse.market_files import EPOCH, read_market_file
from allsuse.store import Store
from allsuse.store import market as stored
from allsuse.v1 import decision_pb2, market_pb2, market_pb2_grpc
from tests.rpc_support import ROOT, TIMEOUT, bearer, serve

DATA = ROOT.parent / "shared" / "data"

# 2024-03-04 (Mon) .. 2024-03-15 (Fri): ten NYSE sessions, no holiday.
MARCH = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]
MARCH += ["2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14", "2024-03-15"]


def epoch(day: str) -> int:
    import datetime as dt

    return (dt.date.fromisoformat(day) - EPOCH).days


def write_bars(path: Path, rows: list[tuple[str, float, float, float, float, float]]) -> Path:
    path.write_text(
        "date,open,high,low,close,volume\n" + "".join(f"{d},{o},{h},{lo},{c},{v}\n" for d, o, h, lo, c, v in rows)
    )
    return path


def clean_rows() -> list[tuple[str, float, float, float, float, float]]:
    return [(d, 10.0 + i, 11.0 + i, 9.5 + i, 10.5 + i, 1000.0) for i, d in enumerate(MARCH)]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "allsuse.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_a_clean_file_passes_every_check(tmp_path: Path) -> None:
    report = check_file(read_market_file(write_bars(tmp_path / "abc.csv", clean_rows())))
    (series,) = report.series
    assert report.ok and series.failed == () and series.symbol == "ABC"
    assert [c.name for c in series.checks] == list(CHECKS) and all(c.count == 0 for c in series.checks)


@pytest.mark.parametrize(
    ("check", "edit", "dates"),
    [
        # 2024-03-07 and 2024-03-08 removed: two sessions missing inside the span
        (
            "missing_sessions",
            lambda r: [x for x in r if x[0] not in ("2024-03-07", "2024-03-08")],
            ["2024-03-07", "2024-03-08"],
        ),
        ("non_positive_price", lambda r: [*r[:2], (r[2][0], 0.0, 13.0, 12.0, 12.5, 10.0), *r[3:]], ["2024-03-06"]),
        ("high_below_low", lambda r: [*r[:3], (r[3][0], 13.5, 13.4, 13.6, 13.5, 10.0), *r[4:]], ["2024-03-07"]),
        ("close_outside_range", lambda r: [*r[:4], (r[4][0], 14.0, 15.0, 13.5, 15.2, 10.0), *r[5:]], ["2024-03-08"]),
        # 15.5 -> 25.0 (+61%) and back to 17.5 (-30%): two jumps
        (
            "large_jump",
            lambda r: [*r[:5], (r[5][0], 24.0, 26.0, 23.0, 25.0, 10.0), *r[6:]],
            ["2024-03-11", "2024-03-12"],
        ),
        ("zero_volume", lambda r: [*r[:9], (*r[9][:5], 0.0)], ["2024-03-15"]),
    ],
)
def test_each_check_counts_its_rows_and_names_the_dates(
    tmp_path: Path, check: str, edit: object, dates: list[str]
) -> None:
    rows = edit(clean_rows())  # type: ignore[operator]
    (series,) = check_file(read_market_file(write_bars(tmp_path / "abc.csv", rows))).series
    # A high below the low leaves no room for the close: that row fails both checks.
    also = ("close_outside_range",) if check == "high_below_low" else ()
    assert series.failed == tuple(c for c in CHECKS if c in (check, *also))
    assert series.check(check).count == len(dates) and list(series.check(check).dates) == dates


def test_stale_values_count_the_repeats_of_a_long_enough_run(tmp_path: Path) -> None:
    rows = clean_rows()
    flat = [(d, 12.0, 12.0, 12.0, 12.0, 100.0) for d, *_ in rows[2:7]]  # five equal closes 03-06..03-12
    calm = Limits(max_jump=1.0)  # the crafted rows move fast; only staleness is under test
    path = write_bars(tmp_path / "abc.csv", [*rows[:2], *flat, *rows[7:]])
    (series,) = check_file(read_market_file(path), calm).series
    assert series.failed == ("stale_values",)
    assert list(series.check("stale_values").dates) == ["2024-03-07", "2024-03-08", "2024-03-11", "2024-03-12"]
    # Four equal closes are below the default run of five; a limit of four flags them.
    short = [*rows[:2], *flat[:4], *rows[6:]]
    path = write_bars(tmp_path / "abc.csv", short)
    assert check_file(read_market_file(path), calm).ok
    flagged = check_file(read_market_file(path), Limits(max_jump=1.0, stale_sessions=4)).series[0]
    assert flagged.check("stale_values").count == 3


def test_close_only_files_skip_volume_and_the_vix_skips_jumps(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text("date,AAA,BBB\n" + "".join(f"{d},{10 + i},{20 + i}\n" for i, d in enumerate(MARCH)))
    report = check_file(read_market_file(wide))
    assert report.ok and all(s.check("zero_volume").applies is False for s in report.series)
    vix = tmp_path / "vix.csv"
    vix.write_text("date,vix_close\n" + "".join(f"{d},{12 + i / 10 if i != 3 else 30}\n" for i, d in enumerate(MARCH)))
    (series,) = check_file(read_market_file(vix)).series
    assert series.symbol == "VIX" and series.failed == ()  # 12 -> 30 -> 12 is no failure for the VIX
    assert [c.name for c in series.checks] == ["missing_sessions", "non_positive_price", "stale_values"]


def test_the_real_shared_files() -> None:
    assert check_file(read_market_file(DATA / "sp500_daily_2009_2018.csv")).ok
    assert check_file(read_market_file(DATA / "vix_daily_2014_2018.csv")).ok
    wide = check_file(read_market_file(DATA / "stocks20_close_1990_2014.csv"))
    by = {s.symbol: s for s in wide.series}
    assert by["MSFT"].failed == () and by["RRC"].check("large_jump").count > 0
    assert all(s.check("missing_sessions").count == 0 for s in wide.series)


def test_missing_sessions_follow_the_nyse_calendar() -> None:
    # 2024-03-29 is Good Friday: Thursday to Monday misses nothing.
    assert missing_sessions([epoch("2024-03-28"), epoch("2024-04-01")]) == []
    assert missing_sessions([epoch("2024-03-27"), epoch("2024-04-01")]) == [epoch("2024-03-28")]
    assert missing_sessions([epoch("1990-01-02"), epoch("1990-03-01")]) == []  # before the calendar: not judged


def test_fill_gaps_carries_the_close_over_short_gaps_and_refuses_long_ones(tmp_path: Path) -> None:
    rows = [r for r in clean_rows() if r[0] not in ("2024-03-07", "2024-03-08", "2024-03-13")]
    (series,) = read_market_file(write_bars(tmp_path / "abc.csv", rows)).series
    filled, days = fill_gaps(series)
    assert days == (epoch("2024-03-07"), epoch("2024-03-08"), epoch("2024-03-13"))
    assert filled.days.tolist() == [epoch(d) for d in MARCH]
    o, h, lo, c, v = (col.tolist() for col in filled.columns)
    assert (o[3], h[3], lo[3], c[3], v[3]) == (12.5, 12.5, 12.5, 12.5, 0.0)  # 03-06's close carried
    assert c[4] == 12.5 and c[7] == 16.5
    assert fill_gaps(filled) == (filled, ())
    with pytest.raises(InvalidInputError) as err:
        fill_gaps(series, Limits(max_fill=1))
    assert err.value.field == "file" and "ABC: 2 missing NYSE sessions 2024-03-07..2024-03-08" in str(err.value)


def test_data_check_cli_prints_json_and_exits_1_on_a_failed_check(tmp_path: Path) -> None:
    good = write_bars(tmp_path / "good.csv", clean_rows())
    ok = run_cli("data", "check", str(good), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    bad_rows = clean_rows()
    bad_rows[4] = (bad_rows[4][0], 14.0, 15.0, 13.5, 16.0, 0.0)
    bad = write_bars(tmp_path / "bad.csv", bad_rows)
    done = run_cli("data", "check", str(good), str(bad), "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    checks = report["files"][1]["series"][0]["checks"]
    assert checks["close_outside_range"] == {"count": 1, "dates": ["2024-03-08"], "applies": True}
    assert checks["zero_volume"]["count"] == 1 and report["files"][1]["series"][0]["failed"] == [
        "close_outside_range",
        "zero_volume",
    ]
    text = run_cli("data", "check", str(bad))
    assert text.returncode == 1 and "bad.csv: BAD 10 rows 2024-03-04..2024-03-15: close_outside_range 1" in text.stdout
    missing = run_cli("data", "check", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "nope.csv" in missing.stderr


def test_data_load_fills_short_gaps_flagged_imputed_and_refuses_long_ones(tmp_path: Path) -> None:
    url = str(tmp_path / "allsuse.db")
    gappy = write_bars(tmp_path / "abc.csv", [r for r in clean_rows() if r[0] != "2024-03-07"])
    done = run_cli("data", "load", str(gappy), "--store", url)
    assert done.returncode == 0, done.stderr
    assert "quality: abc.csv: ABC 9 rows 2024-03-04..2024-03-15: missing_sessions 1" in done.stdout
    assert "ABC 1 session(s) filled forward (imputed)" in done.stdout and "ABC 10 bars (10 new" in done.stdout
    with Store(url) as store:
        assert store.read(lambda c: stored.imputed_days(c, "ABC")) == [epoch("2024-03-07")]
        assert store.read(lambda c: stored.read_bars(c, "ABC"))[3][1:] == (12.5, 12.5, 12.5, 12.5, 0.0)
    again = run_cli("data", "load", str(gappy), "--store", url)
    assert "ABC 10 bars (0 new, 0 replaced, 10 unchanged)" in again.stdout, again.stderr
    # The real bar arrives later: with --replace it overwrites the filled one and clears the flag.
    full = write_bars(tmp_path / "abc.csv", clean_rows())
    conflict = run_cli("data", "load", str(full), "--store", url)
    assert conflict.returncode == 2 and "ABC 2024-03-07 is stored with other values" in conflict.stderr
    fixed = run_cli("data", "load", str(full), "--store", url, "--replace")
    assert fixed.returncode == 0 and "1 replaced" in fixed.stdout, fixed.stderr
    with Store(url) as store:
        assert store.read(lambda c: stored.imputed_days(c, "ABC")) == []
    # A gap longer than quality_max_fill_sessions refuses the whole load: nothing of either file is written.
    other = write_bars(tmp_path / "xyz.csv", clean_rows())
    long_gap = write_bars(tmp_path / "def.csv", [r for i, r in enumerate(clean_rows()) if i not in (2, 3, 4, 5)])
    refused = run_cli("data", "load", str(other), str(long_gap), "--store", url)
    assert refused.returncode == 2 and "DEF: 4 missing NYSE sessions 2024-03-06..2024-03-11" in refused.stderr
    with Store(url) as store:
        assert store.read(lambda c: stored.read_bars(c, "XYZ")) == []


def test_imputed_days_through_a_server(tmp_path: Path) -> None:
    url = str(tmp_path / "allsuse.db")
    with Store(url) as store:
        admin = store.create_api_key("admin").token
    gappy = write_bars(tmp_path / "abc.csv", [r for r in clean_rows() if r[0] not in ("2024-03-12", "2024-03-13")])
    with serve(url, auth=True) as (address, _), grpc.insecure_channel(address) as channel:
        done = run_cli("data", "load", str(gappy), "--address", address, "--token", admin)
        assert done.returncode == 0, done.stderr
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        cols = decision_pb2.BarColumns(
            days=[epoch("2024-03-18")], open=[1.0], high=[1.0], low=[1.0], close=[1.0], volume=[1.0]
        )
        with pytest.raises(grpc.RpcError) as err:
            stub.PublishBars(
                market_pb2.PublishBarsRequest(symbol="ABC", columns=cols, imputed_days=[epoch("2024-03-19")]),
                metadata=bearer(admin),
                timeout=TIMEOUT,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "imputed_days" in (err.value.details() or "")
    with Store(url) as store:
        assert store.read(lambda c: stored.imputed_days(c, "ABC")) == [epoch("2024-03-12"), epoch("2024-03-13")]
        assert [r[0] for r in store.read(lambda c: stored.read_bars(c, "ABC"))] == [epoch(d) for d in MARCH]
