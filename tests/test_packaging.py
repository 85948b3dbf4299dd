"""The wheel works outside the checkout: `maturin build --release`, a fresh virtual environment in a temporary
folder, `pip install` of the wheel (dependencies at the versions pinned in requirements.txt), then from a folder
that is not the checkout: import, `allsuse serve` with the packaged default configuration and an embedded SQLite
store in that folder, a smoke test (health SERVING, the metrics endpoint, RPCs, the operator page), SIGTERM.

Found on main before the fix: `prometheus_client` was imported but not a declared dependency, and the
configuration files were found through `parents[2]` of the source file, so an installed wheel could not start.

Takes a minute or two (the build reuses target/; pip reuses its cache). Part of `make test`; deselect while
iterating with `-m "not packaging"`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from allsuse.v1 import common_pb2, decision_pb2, decision_pb2_grpc, portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import ROOT, free_port, money, wait_serving

pytestmark = pytest.mark.packaging


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args[:3]} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that points back into the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLSUSE_", "PYTHON", "VIRTUAL_ENV", "PYO3_"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT)))
    return {**env, **extra}


def test_the_wheel_installs_outside_the_checkout_and_serves(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    maturin = bin_dir / "maturin"
    assert maturin.exists(), "make setup installs maturin into the venv"
    wheels = tmp_path / "wheels"
    build_env = {**os.environ, "PYO3_PYTHON": sys.executable}
    _run(
        [maturin, "build", "--release", "--quiet", "-i", sys.executable, "--out", wheels],
        cwd=ROOT,
        env=build_env,
        timeout=1200,
    )
    (wheel,) = wheels.glob("allsuse-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=_clean_env(), timeout=120)
    python = venv / "bin" / "python"
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            ROOT / "requirements.txt",
            wheel,
        ],
        cwd=tmp_path,
        env=_clean_env(),
        timeout=600,
    )

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = _clean_env()
    out = _run(
        [
            python,
            "-c",
            "import allsuse, allsuse.config as c; print(allsuse.build_profile(), allsuse.__file__, c.CONFIG_DIR)",
        ],
        cwd=run_dir,
        env=env,
        timeout=60,
    )
    profile, location, config_dir = out.split()
    assert profile == "release"
    assert Path(location).is_relative_to(venv) and not Path(location).is_relative_to(ROOT), location
    assert Path(config_dir).is_relative_to(venv) and (Path(config_dir) / "base.yaml").is_file(), config_dir

    port, metrics_port, web_port = free_port(), free_port(), free_port()
    serve_env = {
        **env,
        "ALLSUSE_SERVER_PORT": str(port),
        "ALLSUSE_METRICS_PORT": str(metrics_port),
        # The operator page's templates and script are package data: the wheel must carry them.
        "ALLSUSE_WEB_ENABLED": "true",
        "ALLSUSE_WEB_PORT": str(web_port),
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [venv / "bin" / "allsuse", "serve"], cwd=run_dir, env=serve_env, stdout=log, stderr=subprocess.STDOUT
        )
    address = f"127.0.0.1:{port}"
    try:
        try:
            wait_serving(address, proc, limit=60)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{log_path.read_text()[-3000:]}") from None
        health = _run([venv / "bin" / "allsuse", "healthcheck", "--address", address], cwd=run_dir, env=env, timeout=30)
        assert "SERVING" in health
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
            assert b"allsuse_service_serving 1.0" in reply.read()
        with grpc.insecure_channel(address) as channel:
            week = decision_pb2_grpc.DecisionServiceStub(channel).ClassifyWeek(
                decision_pb2.ClassifyWeekRequest(position="SHORT_PUT", move_pct=-1.0, roll_available=True), timeout=10
            )
            assert week.code == "P-EW"
            portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
            created = portfolios.CreatePortfolio(
                portfolio_pb2.CreatePortfolioRequest(portfolio_id="smoke", total=money(100_000)), timeout=10
            )
            got = portfolios.GetPortfolio(portfolio_pb2.GetPortfolioRequest(portfolio_id="smoke"), timeout=10)
            assert got == created and got.equity == common_pb2.Money(currency_code="USD", units=100_000)
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/static/operator.js", timeout=10) as reply:
            assert b"WebSocket" in reply.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/portfolios/smoke", timeout=10) as reply:
            page = reply.read().decode()
        assert '<strong data-field="equity">100,000.00</strong>' in page and "smoke/gen-1" in page
        # The packaged default store.url (var/allsuse.db) is relative to the working folder outside a checkout.
        assert (run_dir / "var" / "allsuse.db").is_file()
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=15) == 0, log_path.read_text()[-3000:]
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = log_path.read_text()
    assert "Traceback" not in text, text[-3000:]
    shutil.rmtree(venv, ignore_errors=True)
