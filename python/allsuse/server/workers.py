"""`server.workers` N > 1: N server processes on one port, under a supervisor (`allsuse serve` runs it).

One Python process serves on one core (the GIL). With N workers the supervisor starts N `allsuse serve --worker i`
processes; each runs the whole service (allsuse.server.app.Service) and binds server.host:server.port with
SO_REUSEPORT (`grpc.so_reuseport` 1), so the kernel spreads incoming connections over them. A connection stays
with the worker that accepted it (HTTP/2 multiplexes its calls), so a single client channel uses one worker;
many clients spread.

What the workers share and what they do not:

- the store: every worker opens it (SQLite in WAL mode with its busy timeout, or PostgreSQL); the supervisor opens
  it once first, so the migrations run once before any worker starts;
- scheduled jobs that must run once (market tick, gauges, end-of-day reports, the nightly audit and backup:
  allsuse.server.jobs) run in worker 0 only; each worker runs its own component health check;
- metrics: worker i serves its own registry on metrics.port + i (sum the workers in Prometheus: one scrape target
  per port);
- per-process state: the API-key cache, the per-key rate limit and call limits (each worker counts its own, so a
  key may get up to N times `auth.rate_limit_per_second` in total), the response cache, and the event bus (an
  alert stream, StreamAlerts, sees the alerts raised in its own worker and the scheduled ones only in worker 0).

The supervisor forwards SIGTERM/SIGINT to every worker (each drains: NOT_SERVING, drain delay, grace) and exits
once all have, killing any still there after the drain delay + grace + 2 s. A worker that dies otherwise is
restarted after a back-off (0.5 s, doubling to 30 s; reset once a worker has run for a minute); when one worker has
died MAX_FAILURES + 1 times in a row, each within a minute of starting, or a worker exits with status 2 (a
configuration or start-up error that a restart would repeat), the supervisor stops them all and exits non-zero.
A worker whose supervisor is killed gets SIGTERM from the kernel (PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from allsuse.config import Config

log = logging.getLogger("allsuse.server.workers")

MAX_WORKERS = 64
MAX_FAILURES = 6  # consecutive deaths of one worker, each before HEALTHY_AFTER seconds of life
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0
POLL = 0.1
EXIT_CONFIG = 2  # what `allsuse serve` exits with on a configuration or start-up error

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies (Linux; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


@dataclass
class Worker:
    """One worker process slot: its index, the running process, its restarts."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # consecutive early deaths (for the back-off and the bound)
    restart_at: float | None = None


class Supervisor:
    """Starts `workers` copies of `command + ["--worker", i]`, keeps them running, stops them on a signal."""

    def __init__(self, command: Sequence[str], workers: int, stop_within: float) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be an int in 1..{MAX_WORKERS}, got {workers!r}")
        self.command = list(command)
        self.workers = [Worker(i) for i in range(workers)]
        self.stop_within = stop_within
        self.stopping = False
        self.status = 0

    def _spawn(self, worker: Worker) -> None:
        worker.proc = subprocess.Popen([*self.command, "--worker", str(worker.index)], preexec_fn=_die_with_parent)
        worker.started = time.monotonic()
        worker.restart_at = None
        log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)

    def request_stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """Signal handler: stop every worker (a second signal changes nothing: the stop is bounded)."""
        self.stopping = True

    def run(self) -> int:
        """Runs until a stop is requested or the workers cannot be kept up; the exit status."""
        saved = {sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for worker in self.workers:
                self._spawn(worker)
            while not self.stopping:
                now = time.monotonic()
                for worker in self.workers:
                    if worker.proc is not None and worker.proc.poll() is not None:
                        self._died(worker, now)
                    if self.stopping:
                        break
                    if worker.proc is None and worker.restart_at is not None and now >= worker.restart_at:
                        self._spawn(worker)
                time.sleep(POLL)
        finally:
            self._stop_all()
            for sig, handler in saved.items():
                signal.signal(sig, handler)
        return self.status

    def _died(self, worker: Worker, now: float) -> None:
        assert worker.proc is not None
        code = worker.proc.returncode
        lived = now - worker.started
        worker.proc = None
        if code == EXIT_CONFIG:
            log.error("worker %d exited with status 2 (configuration or start-up error): stopping", worker.index)
            self.stopping, self.status = True, EXIT_CONFIG
            return
        worker.failures = 1 if lived >= HEALTHY_AFTER else worker.failures + 1
        if worker.failures > MAX_FAILURES:
            log.error(
                "worker %d died %d times in a row, each within %.0f s of starting: stopping",
                worker.index,
                worker.failures,
                HEALTHY_AFTER,
            )
            self.stopping, self.status = True, 1
            return
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (worker.failures - 1))
        worker.restart_at = now + delay
        log.warning(
            "worker %d exited with status %s after %.1f s; restarting in %.1f s", worker.index, code, lived, delay
        )

    def _stop_all(self) -> None:
        running = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_within
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d still running after %.1f s: killing it", proc.pid, self.stop_within)
                proc.kill()
                proc.wait(timeout=5)
        log.info("all %d workers stopped", len(self.workers))


def supervise(config: Config, argv: Sequence[str]) -> int:
    """Runs `server.workers` workers of `allsuse serve` (argv: the serve arguments to repeat); the exit status."""
    from allsuse.store import Store

    workers = config.server.workers
    with Store(config.store.url):  # migrations run here, once, before any worker opens the store
        pass
    server = config.server
    stop_within = server.drain_delay_seconds + server.shutdown_grace_seconds + 2.0
    command = [sys.executable, "-m", "allsuse.cli", "serve", *argv]
    log.info("configuration %s: %s", config.environment, config.describe())
    supervisor = Supervisor(command, workers, stop_within)
    print(f"allsuse serving on {server.host}:{server.port} with {workers} workers (Ctrl-C to stop)", flush=True)
    return supervisor.run()


__all__ = ["MAX_FAILURES", "MAX_WORKERS", "Supervisor", "Worker", "supervise"]
