"""The documented client examples and the client commands run against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc

from allsuse.v1 import portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import ROOT, TIMEOUT, money, serve

DATA = ROOT.parent / "shared" / "data"


def test_client_tour_runs_every_rpc(tmp_path: Path) -> None:
    with serve(str(tmp_path / "a.db"), auth=False) as (address, _):
        run = subprocess.run(
            [sys.executable, "examples/client_tour.py", "--address", address],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    for rpc in ("CreatePortfolio", "Decide", "RecordOutcome", "AssessRisk", "SizePosition", "SelectStrike",
                "ClassifyWeek", "CheckCompliance", "RecordFill", "Withdraw", "RunWeeklyCycle", "Project",
                "GetPortfolio", "GetMetrics", "GetReport", "PublishBars", "GetCrowding", "StreamAlerts", "Converse",
                "ResetAccount"):  # fmt: skip
        assert f"{rpc}" in run.stdout, rpc


def test_cli_decide_and_report(tmp_path: Path) -> None:
    with serve(str(tmp_path / "a.db"), auth=False) as (address, _):
        with grpc.insecure_channel(address) as channel:
            portfolio_pb2_grpc.PortfolioServiceStub(channel).CreatePortfolio(
                portfolio_pb2.CreatePortfolioRequest(portfolio_id="cli", total=money(20_000_000)), timeout=TIMEOUT
            )
        common = ["--address", address, "--portfolio", "cli"]
        decide = subprocess.run(
            [sys.executable, "-m", "allsuse.cli", "decide", *common, "--account", "cli/gen-1", "--symbol", "SPX",
             "--data", str(DATA / "sp500_daily_2009_2018.csv"), "--vix", str(DATA / "vix_daily_2014_2018.csv"),
             "--as-of", "2017-03-09", "--key", "cli-1"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert decide.returncode == 0, decide.stderr
        assert "decision" in decide.stdout and "label=" in decide.stdout
        report = subprocess.run(
            [sys.executable, "-m", "allsuse.cli", "report", *common, "--kind", "weekly", "--as-of", "2017-03-10"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert report.returncode == 0 and "Weekly report for cli" in report.stdout
        missing = subprocess.run(
            [sys.executable, "-m", "allsuse.cli", "report", "--address", address, "--portfolio", "nope"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
