"""allsuse.store across processes, on SQLite and on a real PostgreSQL server.

- A child writing decisions is killed with SIGKILL mid-stream: every id it had printed (acknowledged) is stored
  after a reopen, every stored decision has its audit entry, and the chain verifies.
- Two processes write to one store at once: they see each other's writes, a shared idempotency key yields one
  decision, and their audit appends form one valid chain.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from typing import IO

from allsuse.store import Store

WAIT = 60.0  # seconds: upper bound on any wait for a child process

CRASH_CHILD = """
import sys, threading
from allsuse.store import Store

store = Store(sys.argv[1], max_wait_s=0.002)
lock = threading.Lock()

def write(w):
    n = 0
    while True:
        d = store.record_decision(f"c{w}-{n}", {"w": w, "n": n}, kind="entry")
        with lock:
            sys.stdout.write(d.id + "\\n")
            sys.stdout.flush()
        n += 1

print("READY", flush=True)
threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(4)]
for t in threads:
    t.start()
threads[0].join()
"""

SHARING_CHILD = """
import json, sys, threading
from allsuse.store import Store

url, tag = sys.argv[1], sys.argv[2]
store = Store(url, max_wait_s=0.002)
lock = threading.Lock()
print("READY", flush=True)
assert sys.stdin.readline().strip() == "GO"

def write(w):
    for n in range(50):
        d = store.record_decision(f"{tag}-{w}-{n}", {"tag": tag, "w": w, "n": n}, kind="entry")
        with lock:
            print("ID", d.id, flush=True)

threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
for t in threads:
    t.start()
shared = store.record_decision("shared-key", {"by": tag}, kind="entry")
for t in threads:
    t.join()
print("SHARED", shared.id, flush=True)
print("DONE", flush=True)
others = json.loads(sys.stdin.readline())
found = sum(store.get_decision(i) is not None for i in others)
print("FOUND", found, flush=True)
store.close()
"""


class Child:
    """A Python child process whose stdout lines arrive on a queue (so every wait has a timeout)."""

    def __init__(self, script: str, *args: str) -> None:
        self.stderr: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by close()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self, timeout: float = WAIT) -> str | None:
        """The next complete line (without the newline), or None at end of output."""
        try:
            item = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"child said nothing for {timeout} s; stderr: {self.errors()}") from None
        if item is None:
            return None
        if not item.endswith("\n"):  # a partial last line of a killed process
            return ""
        return item[:-1]

    def expect(self, prefix: str) -> str:
        line = self.line()
        assert line is not None and line.startswith(prefix), f"expected {prefix!r}, got {line!r}: {self.errors()}"
        return line

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]

    def finish(self) -> int:
        code = self.proc.wait(timeout=WAIT)
        self._reader.join(WAIT)
        return code

    def close(self) -> None:
        """Kills the child if it still runs and closes every pipe and file."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        self._reader.join(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            if stream is not None:
                stream.close()


def test_sigkill_mid_stream_loses_no_acknowledged_write(store_url: str) -> None:
    Store(store_url).close()  # create the schema first, so the child starts writing at once
    child = Child(CRASH_CHILD, store_url)
    acknowledged: list[str] = []
    try:
        child.expect("READY")
        while len(acknowledged) < 300:
            line = child.line()
            assert line, f"child stopped early: {child.errors()}"
            acknowledged.append(line)
        os.kill(child.proc.pid, signal.SIGKILL)
        assert child.finish() == -signal.SIGKILL
        while (line := child.line()) is not None:  # lines written before it died are acknowledged too
            if len(line) == 32:
                acknowledged.append(line)
    finally:
        child.close()
    with Store(store_url) as store:
        stored = {d.id for d in store.list_decisions(limit=100_000)}
        missing = set(acknowledged) - stored
        assert not missing, f"{len(missing)} acknowledged decisions were lost"
        report = store.verify_audit()
        assert report.ok, str(report)
        assert report.entries == len(stored)  # every stored decision has its audit entry, and nothing more
        store.record_decision("after-crash", {}, kind="entry")
        assert store.verify_audit().ok


def test_two_processes_share_one_store(store_url: str) -> None:
    Store(store_url).close()
    children = [Child(SHARING_CHILD, store_url, tag) for tag in ("a", "b")]
    try:
        for child in children:
            child.expect("READY")
        for child in children:
            child.send("GO")
        ids: list[list[str]] = [[], []]
        shared: list[str] = []
        for i, child in enumerate(children):
            while True:
                line = child.expect("")
                if line == "DONE":
                    break
                word, value = line.split()
                if word == "ID":
                    ids[i].append(value)
                else:
                    assert word == "SHARED"
                    shared.append(value)
        children[0].send(json.dumps(ids[1]))
        children[1].send(json.dumps(ids[0]))
        found = [int(child.expect("FOUND").split()[1]) for child in children]
        assert [child.finish() for child in children] == [0, 0], [c.errors() for c in children]
    finally:
        for child in children:
            child.close()
    assert [len(x) for x in ids] == [200, 200]
    assert found == [200, 200]  # each process sees every write of the other
    assert len(set(shared)) == 1  # one decision for the shared idempotency key
    with Store(store_url) as store:
        decisions = store.list_decisions(limit=100_000)
        assert {d.id for d in decisions} == set(ids[0]) | set(ids[1]) | set(shared)
        report = store.verify_audit()
        assert report.ok, str(report)
        assert report.entries == 401  # one chain holding both processes' appends
        writers = {e.payload["columns"]["idempotency_key"].split("-")[0] for e in store.audit_entries(limit=500)}
        assert writers == {"a", "b", "shared"}
