"""SIGTERM on a real `allsuse serve --config development` process while slow calls are in flight.

Health must turn NOT_SERVING while the listener still answers, the in-flight calls must complete, and the process
must exit 0 within 5 s of the signal. The slow service is a module written into a temporary folder and loaded
through `server.service_modules`, the same way the real servicers plug in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from allsuse.config import PROJECT_DIR
from allsuse.v1 import decision_pb2, decision_pb2_grpc

SLOW_SERVICE = textwrap.dedent(
    """
    import asyncio
    import os

    from allsuse.server import ServiceBinding
    from allsuse.v1 import decision_pb2, decision_pb2_grpc

    class Slow(decision_pb2_grpc.DecisionServiceServicer):
        async def ClassifyWeek(self, request, context):
            with open(os.environ["SLOW_MARKS"], "a") as marks:
                marks.write("started\\n")
            await asyncio.sleep(request.move_pct)
            return decision_pb2.ClassifyWeekResponse(code="done")

    def bindings(deps):
        servicer = Slow()
        names = [m.name for m in decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].methods]
        return [
            ServiceBinding(
                "allsuse.v1.DecisionService",
                lambda server: decision_pb2_grpc.add_DecisionServiceServicer_to_server(servicer, server),
                {name: "viewer" for name in names},
            )
        ]
    """
)
CALLS = 4


@contextlib.contextmanager
def _serve_module(tmp_path: Path, port: int, name: str, source: str, env: dict[str, str]) -> Iterator[Any]:
    """Writes `source` as the service module `name`, serves it (development config, 127.0.0.1:`port`, log to
    serve.log) and yields (process, address, marks file, log path); kills the process if a test left it running."""
    (tmp_path / f"{name}.py").write_text(source)
    marks = tmp_path / "marks"
    marks.touch()
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_DIR / "python")]),
        "ALLSUSE_SERVER_SERVICE_MODULES": name,
        "ALLSUSE_SERVER_PORT": str(port),
        "ALLSUSE_STORE_URL": str(tmp_path / "allsuse.db"),
        "ALLSUSE_METRICS_ENABLED": "false",
        "SLOW_MARKS": str(marks),
        **env,
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "allsuse.cli", "serve", "--config", "development"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        yield process, f"127.0.0.1:{port}", marks, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_sigterm_drains_in_flight_calls_and_exits_within_5_s(tmp_path: Path, free_port: int) -> None:
    grace = {"ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0.5", "ALLSUSE_SERVER_SHUTDOWN_GRACE_SECONDS": "3.5"}
    with _serve_module(tmp_path, free_port, "slow_service", SLOW_SERVICE, grace) as (process, address, marks, log_path):
        exit_code, seconds_to_exit, statuses, replies, after = asyncio.run(_scenario(process, address, marks))
    output = log_path.read_text()
    assert exit_code == 0, output
    assert seconds_to_exit < 5.0, output
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses, statuses
    assert replies == ["done"] * CALLS, output
    assert after in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    lines = output.splitlines()
    not_serving = next(i for i, line in enumerate(lines) if "health NOT_SERVING" in line)
    closing = next(i for i, line in enumerate(lines) if "closing the listener" in line)
    assert not_serving < closing, output
    assert sum('"code":"OK"' in line and "ClassifyWeek" in line for line in lines) == CALLS, output


async def _wait_serving(process: subprocess.Popen[bytes], health: health_pb2_grpc.HealthStub) -> None:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        assert process.poll() is None, "allsuse serve exited during start-up"
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("allsuse serve did not become SERVING within 30 s")


async def _scenario(
    process: subprocess.Popen[bytes], address: str, marks: Path
) -> tuple[int | None, float, list[int], list[str], grpc.StatusCode]:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        await _wait_serving(process, health)
        decision = decision_pb2_grpc.DecisionServiceStub(channel)
        slow = [
            asyncio.ensure_future(decision.ClassifyWeek(decision_pb2.ClassifyWeekRequest(move_pct=1.5), timeout=10.0))
            for _ in range(CALLS)
        ]
        deadline = time.monotonic() + 10.0
        while marks.read_text().count("started") < CALLS:  # every call is inside its handler
            assert time.monotonic() < deadline, "the slow calls did not start"
            await asyncio.sleep(0.02)

        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        statuses: list[int] = []
        while health_pb2.HealthCheckResponse.NOT_SERVING not in statuses:
            assert time.monotonic() - signalled < 4.0, f"never NOT_SERVING while listening: {statuses}"
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2.0)  # the listener still answers
            statuses.append(reply.status)
            await asyncio.sleep(0.02)
        replies = [(await call).code for call in slow]
        seconds = 5.0 - (time.monotonic() - signalled)
        exit_code = await asyncio.to_thread(process.wait, max(seconds, 0.1))
        seconds_to_exit = time.monotonic() - signalled
        try:
            await decision.ClassifyWeek(decision_pb2.ClassifyWeekRequest(move_pct=0.0), timeout=2.0)
            after = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            after = exc.code()
    return exit_code, seconds_to_exit, statuses, replies, after


BLOCKING_SERVICE = textwrap.dedent(
    """
    import os
    import time

    from allsuse.server import ServiceBinding, run_blocking
    from allsuse.v1 import decision_pb2, decision_pb2_grpc

    class Blocking(decision_pb2_grpc.DecisionServiceServicer):
        async def ClassifyWeek(self, request, context):
            with open(os.environ["SLOW_MARKS"], "a") as marks:
                marks.write("started\\n")
            await run_blocking(time.sleep, request.move_pct)  # like a long core call (the GIL released)
            return decision_pb2.ClassifyWeekResponse(code="done")

    def bindings(deps):
        servicer = Blocking()
        names = [m.name for m in decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].methods]
        return [
            ServiceBinding(
                "allsuse.v1.DecisionService",
                lambda server: decision_pb2_grpc.add_DecisionServiceServicer_to_server(servicer, server),
                {name: "viewer" for name in names},
            )
        ]
    """
)
BLOCKING_CALLS = 6  # more than the 4 blocking workers: 4 run, 2 wait for a thread
BLOCKING_SECONDS = 8.0  # longer than the whole drain


def test_sigterm_exits_within_5_s_with_long_blocking_calls_in_flight(tmp_path: Path, free_port: int) -> None:
    workers = {"ALLSUSE_SERVER_BLOCKING_WORKERS": "4"}
    with _serve_module(tmp_path, free_port, "blocking_service", BLOCKING_SERVICE, workers) as (
        process,
        address,
        marks,
        log_path,
    ):
        exit_code, seconds_to_exit, codes = asyncio.run(_blocking_scenario(process, address, marks))
    output = log_path.read_text()
    assert seconds_to_exit < 5.0, f"exit took {seconds_to_exit:.2f} s\n{output}"
    assert exit_code == 0, output
    assert all(code != grpc.StatusCode.OK for code in codes), codes  # cut off by the drain, not finished
    assert "Traceback" not in output, output


async def _blocking_scenario(
    process: subprocess.Popen[bytes], address: str, marks: Path
) -> tuple[int | None, float, list[grpc.StatusCode]]:
    async with grpc.aio.insecure_channel(address) as channel:
        await _wait_serving(process, health_pb2_grpc.HealthStub(channel))
        decision = decision_pb2_grpc.DecisionServiceStub(channel)
        request = decision_pb2.ClassifyWeekRequest(move_pct=BLOCKING_SECONDS)
        calls = [decision.ClassifyWeek(request, timeout=20.0) for _ in range(BLOCKING_CALLS)]
        waiting = [asyncio.ensure_future(_code(call)) for call in calls]
        deadline = time.monotonic() + 10.0
        while marks.read_text().count("started") < BLOCKING_CALLS:
            assert time.monotonic() < deadline, "the blocking calls did not start"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # four are on the worker threads, two wait for one
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            exit_code: int | None = await asyncio.to_thread(process.wait, 12.0)
        except subprocess.TimeoutExpired:
            exit_code = None
        seconds_to_exit = time.monotonic() - signalled
        codes = list(await asyncio.gather(*waiting))
    return exit_code, seconds_to_exit, codes


async def _code(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK
