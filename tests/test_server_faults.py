"""Faults inside the server: a panic of the Rust core is INTERNAL with a request id and a logged report, and the
server keeps serving; a misspelled service module stops start-up naming the module.

Found on main before the fix: PyO3's PanicException derives from BaseException, so it slipped past every
`except Exception` of the RPC layer; and a misspelled `server.service_modules` entry was skipped with a warning
while health said SERVING.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from allsuse import _core, config
from allsuse.cache import TTLCache
from allsuse.server import ServiceBinding, build_server, rpc
from allsuse.server import decision as decision_module
from allsuse.server import monitor as monitor_module
from allsuse.server.metrics import ServerMetrics
from allsuse.v1 import common_pb2, decision_pb2, decision_pb2_grpc, monitor_pb2, monitor_pb2_grpc
from tests.rpc_support import ROOT, free_port

TIMEOUT = 5.0
PanicException = _core.PanicException


class PanickingMonitor(monitor_pb2_grpc.MonitorServiceServicer):  # type: ignore[misc]
    """GetMetrics without @rpc: only the error interceptor stands between its panic and gRPC."""

    def __init__(self) -> None:
        self.calls = 0

    async def GetMetrics(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.calls += 1
        if self.calls == 1:
            raise PanicException("index out of bounds: the len is 3 but the index is 7")
        return monitor_pb2.MetricsSnapshot(cache_hit_rate=0.5)

    @rpc
    async def GetReport(self, request: Any, context: Any) -> Any:  # noqa: N802
        return monitor_pb2.Report(kind=request.kind)


def _bindings() -> list[ServiceBinding]:
    deps = types.SimpleNamespace(response_cache=TTLCache(100, 60.0), metrics=ServerMetrics())
    decisions = decision_module.DecisionServicer(deps)  # type: ignore[arg-type]
    monitor = PanickingMonitor()
    return [
        ServiceBinding(
            "allsuse.v1.DecisionService",
            lambda s: decision_pb2_grpc.add_DecisionServiceServicer_to_server(decisions, s),
            decision_module.ROLES,
        ),
        ServiceBinding(
            "allsuse.v1.MonitorService",
            lambda s: monitor_pb2_grpc.add_MonitorServiceServicer_to_server(monitor, s),
            monitor_module.ROLES,
        ),
    ]


def _panics_once(real: Callable[..., Any]) -> Callable[..., Any]:
    calls = []

    def fake(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise PanicException("called `Option::unwrap()` on a `None` value")
        return real(*args, **kwargs)

    return fake


def test_a_rust_panic_is_internal_with_a_request_id_and_the_server_keeps_serving(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert issubclass(PanicException, BaseException) and not issubclass(PanicException, Exception)
    # A panic on the event loop (ClassifyWeek), on a worker thread (SelectStrike via run_blocking) and in a
    # handler without @rpc (GetMetrics).
    monkeypatch.setattr(decision_module, "describe_week", _panics_once(decision_module.describe_week))
    monkeypatch.setattr(_core, "select_synthetic_strike", _panics_once(_core.select_synthetic_strike))
    cfg = config.load(
        "development",
        environ={
            "ALLSUSE_SERVER_PORT": "0",
            "ALLSUSE_METRICS_ENABLED": "false",
            "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
        },
    )
    select = decision_pb2.SelectStrikeRequest(
        kind=common_pb2.OPTION_KIND_PUT, spot=100, t=7 / 365, iv=0.3, band_low=20, band_high=30
    )

    async def scenario() -> None:
        server = build_server(cfg, None, _bindings())
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                decisions = decision_pb2_grpc.DecisionServiceStub(channel)
                monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
                classify = decision_pb2.ClassifyWeekRequest(position="SHORT_PUT", move_pct=-1.0)
                metrics = monitor_pb2.GetMetricsRequest()
                calls: list[tuple[str, Callable[[tuple[tuple[str, str], ...]], Any]]] = [
                    ("classify", lambda md: decisions.ClassifyWeek(classify, metadata=md, timeout=TIMEOUT)),
                    ("select", lambda md: decisions.SelectStrike(select, metadata=md, timeout=TIMEOUT)),
                    ("metrics", lambda md: monitor.GetMetrics(metrics, metadata=md, timeout=TIMEOUT)),
                ]
                for name, call in calls:
                    request_id = f"panic-{name}"
                    with pytest.raises(grpc.aio.AioRpcError) as failed:
                        await call((("x-request-id", request_id),))
                    assert failed.value.code() is grpc.StatusCode.INTERNAL, (name, failed.value.code())
                    assert failed.value.details() == f"internal error (request id {request_id})"
                    assert dict(failed.value.trailing_metadata())["x-request-id"] == request_id
                    # The same call right after succeeds: the server keeps serving.
                    assert await call((("x-request-id", f"{request_id}-again"),)) is not None
        finally:
            await server.stop(grace=0, drain_delay=0)

    with caplog.at_level(logging.INFO):
        asyncio.run(asyncio.wait_for(scenario(), 60))
    reports = [r for r in caplog.records if r.name == "allsuse.server.errors" and r.exc_info is not None]
    for name in ("classify", "select", "metrics"):
        logged = [r for r in reports if f"panic-{name})" in r.getMessage()]
        assert logged, name
        assert "panic" in logged[0].getMessage().lower()
        assert logged[0].exc_info is not None and logged[0].exc_info[0] is PanicException
    codes = [r.__dict__["access_fields"]["code"] for r in caplog.records if r.name == "allsuse.access"]
    assert codes.count("INTERNAL") == 3 and codes.count("OK") == 3


def test_a_misspelled_service_module_stops_start_up_naming_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ALLSUSE_SERVER_PORT": str(free_port()),
        "ALLSUSE_STORE_URL": str(tmp_path / "allsuse.db"),
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_SERVICE_MODULES": "allsuse.server.decision,allsuse.server.portfolo",
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "allsuse.cli", "serve", "--config", "development"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"still serving after 30 s with a misspelled module: {err.decode()[-2000:]}")
    assert proc.returncode == 2, (proc.returncode, err.decode()[-2000:])
    text = err.decode()
    assert "allsuse.server.portfolo" in text and "server.service_modules" in text, text
    assert "Traceback" not in text, text
    assert b"serving on" not in out
    assert time.monotonic() - started < 30


def test_a_service_module_that_fails_to_import_stops_start_up_naming_it(tmp_path: Path) -> None:
    (tmp_path / "broken_service.py").write_text("import allsuse_no_such_dependency\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "python")]),
        "ALLSUSE_SERVER_PORT": str(free_port()),
        "ALLSUSE_STORE_URL": str(tmp_path / "allsuse.db"),
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_SERVICE_MODULES": "broken_service",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "allsuse.cli", "serve", "--config", "development"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr.decode()[-2000:]
    text = proc.stderr.decode()
    assert "broken_service" in text and "allsuse_no_such_dependency" in text, text
