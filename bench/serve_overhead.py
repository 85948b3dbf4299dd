"""Server CPU per call of the interceptor chain: the standard health Check and ClassifyWeek over real servers.

    .venv/bin/python bench/serve_overhead.py [--calls 3000] [--batch 150] [--concurrency 16] [--py-spy PREFIX]

One server process (the production config: auth on, per-key rate limit, JSON logs written to /dev/null, SQLite in a
temporary folder) hosts three grpc.aio servers on 127.0.0.1 with the same servicers:

- `bare`: no interceptor, no wrapping (the floor: grpc.aio, the servicer, protobuf);
- `admission`: only the request-message deadline and call limits (allsuse.server.limits.Admission, which registers
  a unary method as request-streaming and reads its message with `context.read()`) and the decoding check;
- `before`: the six interceptor layers as they were before issue 9 (bench/interceptors_before.py), installed as
  grpc interceptors with the request decoding interceptor;
- `now`: the server `allsuse serve` builds today (allsuse.server.app.AllsuseServer).

This process sends batches of `batch` calls to each server in turn (so a noisy neighbour hits all three alike),
sequentially (1 in flight) and with `concurrency` in flight, and reads the server process's CPU seconds (user +
system, all threads) from /proc around every batch. The whole run is done twice: with the access log off
(logging.level WARNING) and on (INFO, the production setting). The chain's cost is a server's CPU per call minus
bare's; its share is that cost over bare's CPU per health check.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "python"), str(ROOT)]

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from allsuse.v1 import decision_pb2, decision_pb2_grpc  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVERS = ("bare", "admission", "before", "now")
TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- the server process ---------------------------------------------------------------------------------------


def _before_server(service: Any, options: list[tuple[str, Any]]) -> Any:
    """A grpc.aio server with the interceptor layers of before issue 9 around the same servicers."""
    from grpc_reflection.v1alpha import reflection

    from allsuse.server.app import _check_bindings
    from allsuse.server.decode import RequestDecodingInterceptor
    from allsuse.server.health import HEALTH_SERVICE
    from allsuse.server.limits import Admission
    from bench import interceptors_before as old

    now = service.server
    roles = _check_bindings(service.grpc.bindings)
    admission = Admission(now.config.server.request_message_timeout_seconds, now.limits, old.is_public)
    layers: list[Any] = [
        old.RequestIdInterceptor(draining=now.draining, blocking=now.blocking, tracker=old.CallTracker()),
        old.MetricsInterceptor(now.metrics),
        old.AccessLogInterceptor(),
        old.ErrorInterceptor(),
        old.AuthInterceptor(roles, now.verifier),
    ]
    if now.limiter is not None:
        layers.append(old.RateLimitInterceptor(now.limiter))
    server = grpc.aio.server(
        interceptors=[old.InterceptorChain(layers, admission), RequestDecodingInterceptor()], options=options
    )
    _add_services(server, service, now)
    names = [b.full_name for b in service.grpc.bindings]
    reflection.enable_server_reflection([*names, HEALTH_SERVICE, reflection.SERVICE_NAME], server)
    return server


def _add_services(server: Any, service: Any, now: Any) -> None:
    for binding in service.grpc.bindings:
        binding.add_to_server(server)
    health_pb2_grpc.add_HealthServicer_to_server(now.health.servicer, server)


async def _host(ports: dict[str, int]) -> None:
    from allsuse import config
    from allsuse.server.app import Service
    from allsuse.server.decode import tolerant_handler
    from allsuse.server.interceptors import is_public
    from allsuse.server.limits import Admission
    from allsuse.server.logs import configure_logging
    from allsuse.server.wrapping import WrappingRegistrar

    env = {**os.environ, "ALLSUSE_SERVER_PORT": str(ports["now"])}
    cfg = config.load("production", env)
    configure_logging(cfg.logging, stream=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    service = Service(cfg)
    await service.start()
    options = [("grpc.so_reuseport", 0)]
    bare = grpc.aio.server(options=options)
    _add_services(bare, service, service.server)
    admitted = grpc.aio.server(options=options)
    admission = Admission(cfg.server.request_message_timeout_seconds, service.server.limits, is_public)
    registrar = WrappingRegistrar(admitted, lambda handler, method: admission.wrap(tolerant_handler(handler), method))
    _add_services(registrar, service, service.server)
    before = _before_server(service, options)
    for server, name in ((bare, "bare"), (admitted, "admission"), (before, "before")):
        server.add_insecure_port(f"127.0.0.1:{ports[name]}")
        await server.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    for server in (bare, admitted, before):
        await server.stop(0)
    await service.stop()


# --- the client -----------------------------------------------------------------------------------------------


class Client:
    """One channel per server; `batch` sends calls of one method with some in flight."""

    def __init__(self, ports: dict[str, int], token: str) -> None:
        self.channels = {name: grpc.aio.insecure_channel(f"127.0.0.1:{port}") for name, port in ports.items()}
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.week = decision_pb2.ClassifyWeekRequest(position="CASH", move_pct=1.5, roll_available=False)
        self.check = health_pb2.HealthCheckRequest()

    async def batch(self, server: str, method: str, calls: int, concurrency: int) -> None:
        """`calls` calls of `method` on `server` with `concurrency` in flight."""
        channel = self.channels[server]
        if method == "Check":
            stub: Any = health_pb2_grpc.HealthStub(channel)

            async def one() -> None:
                await stub.Check(self.check, timeout=TIMEOUT)
        else:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)

            async def one() -> None:
                await stub.ClassifyWeek(self.week, timeout=TIMEOUT, metadata=self.metadata)

        left = calls

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def close(self) -> None:
        """Closes the channels."""
        for channel in self.channels.values():
            await channel.close()


async def measure(pid: int, client: Client, calls: int, batch: int, concurrency: int) -> dict[str, dict[str, float]]:
    """Server µs of CPU per call: shape ("Check x1", ...) -> server -> µs."""
    out: dict[str, dict[str, float]] = {}
    for method in ("Check", "ClassifyWeek"):
        for inflight in (1, concurrency):
            for server in SERVERS:  # warm-up: wrapping, the key cache, the response cache
                await client.batch(server, method, 100, inflight)
            spent = dict.fromkeys(SERVERS, 0.0)
            for _ in range(max(1, calls // batch)):
                for server in SERVERS:
                    before = cpu_seconds(pid)
                    await client.batch(server, method, batch, inflight)
                    spent[server] += cpu_seconds(pid) - before
            done = max(1, calls // batch) * batch
            out[f"{method} x{inflight}"] = {s: spent[s] / done * 1e6 for s in SERVERS}
    return out


def run(log_level: str, store: str, token: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Starts the server process with `log_level`, measures, stops it."""
    ports = {name: free_port() for name in SERVERS}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), str(ROOT)]),
        "ALLSUSE_STORE_URL": store,
        "ALLSUSE_TLS_CERT_FILE": "",
        "ALLSUSE_TLS_KEY_FILE": "",
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_AUTH_RATE_LIMIT_PER_SECOND": "1000000",  # the limiter runs, never refuses
        "ALLSUSE_AUTH_RATE_LIMIT_BURST": "1000000",
        "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
        "ALLSUSE_LOGGING_LEVEL": log_level,
    }
    command = [sys.executable, __file__, "--host", ",".join(f"{k}={v}" for k, v in ports.items())]
    if args.py_spy:  # sample the server process: collapsed stacks for flame graphs or a quick grep
        spy = str(Path(sys.executable).with_name("py-spy"))
        command = [
            spy,
            "record",
            "--rate",
            "400",
            "--format",
            "raw",
            "--output",
            f"{args.py_spy}-{log_level}.txt",
            "--",
            *command,
        ]
    proc = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = proc.stdout.readline()
        while line and line.strip() != b"ready":  # py-spy says a word first
            line = proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"server process did not start (exit {proc.poll()})")

        async def go() -> dict[str, dict[str, float]]:
            client = Client(ports, token)
            try:
                return await measure(proc.pid, client, args.calls, args.batch, args.concurrency)
            finally:
                await client.close()

        return asyncio.run(go())
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="calls per server, method and concurrency")
    parser.add_argument("--batch", type=int, default=150, help="calls per batch (servers alternate by batch)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--py-spy", metavar="PREFIX", help="profile the server process: PREFIX-LEVEL.txt (raw stacks)")
    parser.add_argument("--host", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host:
        asyncio.run(_host({k: int(v) for k, v in (p.split("=") for p in args.host.split(","))}))
        return 0
    from allsuse.store import Store

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="allsuse-serve-bench-") as tmp:
        store = str(Path(tmp) / "allsuse.db")
        with Store(store) as s:
            token = s.create_api_key("viewer", actor="bench").token
        started = time.monotonic()
        results = {level: run(level, store, token, args) for level in ("WARNING", "INFO")}
    print(
        f"server CPU per call in µs ({args.calls} calls per cell, batches of {args.batch} alternating servers; "
        f"{os.cpu_count()} cores, load average {load:.1f} at the start, {time.monotonic() - started:.0f} s)"
    )
    print(
        f"{'access log':<11}{'call':<18}{'bare':>8}{'admiss.':>8}{'before':>8}{'now':>8}"
        f"{'admission':>16}{'chain before':>16}{'chain now':>16}"
    )
    for level, label in (("WARNING", "off"), ("INFO", "on")):
        for shape, cells in results[level].items():
            health = results[level][shape.replace("ClassifyWeek", "Check")]["bare"]
            chain = {s: cells[s] - cells["bare"] for s in ("admission", "before", "now")}
            print(
                f"{label:<11}{shape:<18}"
                + "".join(f"{cells[s]:>8.0f}" for s in SERVERS)
                + "".join(f"{chain[s]:>10.0f} ({chain[s] / health:>4.0%})" for s in ("admission", "before", "now"))
            )
    print(
        "admission / chain = the server's CPU per call minus bare's; (%) = over bare's CPU per health check of that "
        "shape; the chain includes admission"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
