"""`allsuse chat`: the terminal session driven for real in tmux (send-keys, capture-pane) against a real
`allsuse serve` on loopback, and the session's own handling of commands, prompts and RPC errors."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from allsuse.chat import CONFIRM_PROMPT, PROMPT, ChatSession, render, run
from allsuse.protocol.accounts import allocate
from allsuse.store import Store
from allsuse.v1 import agent_pb2, portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import ROOT, TIMEOUT, serve

TMUX = shutil.which("tmux")
WAIT = 30.0


class Tmux:
    """One tmux server on a private socket, holding one window that runs a command."""

    def __init__(self, command: list[str]) -> None:
        self.socket = f"allsuse-test-{uuid.uuid4().hex[:12]}"
        self._tmux("new-session", "-d", "-s", "chat", "-x", "220", "-y", "60", shlex.join(command))

    def _tmux(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def type(self, line: str) -> None:
        self._tmux("send-keys", "-t", "chat", "-l", line)
        self._tmux("send-keys", "-t", "chat", "Enter")

    def screen(self) -> str:
        """Everything the window has shown, without the pane's trailing blank lines (so text only grows)."""
        text = self._tmux("capture-pane", "-p", "-J", "-t", "chat", "-S", "-2000")
        return "\n".join(line.rstrip() for line in text.splitlines()).rstrip()

    def wait_for(self, pattern: str, *, after: int = 0) -> str:
        """The screen text from character `after` on, once `pattern` (a regex) shows there; fails after WAIT s."""
        deadline = time.monotonic() + WAIT
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()[after:]
            if re.search(pattern, text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never appeared; the screen:\n{self.screen()}")

    def alive(self) -> bool:
        assert TMUX is not None
        done = subprocess.run([TMUX, "-L", self.socket, "has-session", "-t", "chat"], capture_output=True, timeout=10)
        return done.returncode == 0

    def close(self) -> None:
        assert TMUX is not None
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


_STORES: dict[str, Path] = {}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    db = tmp_path / "store.db"
    with serve(str(db), auth=False) as (address, _proc):
        _STORES[address] = db
        yield address


def chat_window(address: str, tmp_path: Path, *extra: str) -> Tmux:
    command = [
        sys.executable,
        "-m",
        "allsuse.cli",
        "chat",
        "--address",
        address,
        "--history",
        str(tmp_path / "history"),
        "--timeout",
        "20",
        *extra,
    ]
    # The window runs in the repository so `-m allsuse.cli` imports this checkout, as the tests do.
    return Tmux(["env", "-C", str(ROOT), *command])


@pytest.mark.skipif(TMUX is None, reason="tmux is installed by `make setup`")
def test_chat_in_tmux_talks_to_the_agent_keeps_history_and_resumes(server: str, tmp_path: Path) -> None:
    window = chat_window(server, tmp_path)
    try:
        window.wait_for(re.escape(PROMPT.strip()))
        window.type("hello")
        shown = window.wait_for(r"agent> \S")
        assert "[UNAVAILABLE]" not in shown and "Traceback" not in shown
        start = len(window.screen())
        window.type("/id")
        conversation = re.search(r"\b([0-9a-f]{32})\b", window.wait_for(r"\b[0-9a-f]{32}\b", after=start))
        assert conversation is not None
        window.type("/quit")
        window.wait_for(r"bye")
        deadline = time.monotonic() + WAIT
        while window.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not window.alive(), "chat did not exit on /quit"
    finally:
        window.close()
    assert "hello" in (tmp_path / "history").read_text()

    # The same conversation resumed in a new terminal carries its id on.
    window = chat_window(server, tmp_path, "--conversation", conversation.group(1))
    try:
        window.wait_for(re.escape(PROMPT.strip()))
        window.type("help")
        window.wait_for(r"agent> \S")
        start = len(window.screen())
        window.type("/id")
        assert conversation.group(1) in window.wait_for(r"\b[0-9a-f]{32}\b", after=start)
    finally:
        window.close()


@pytest.mark.skipif(TMUX is None, reason="tmux is installed by `make setup`")
def test_onboarding_through_allsuse_chat_in_tmux(server: str, tmp_path: Path) -> None:
    """A new user sets up the three accounts in the terminal: the agent asks the amount, shows the allocation
    (allocate's numbers), asks for a yes at its yes/no prompt, and only then creates the portfolio."""
    split = allocate(Decimal("250000"))
    window = chat_window(server, tmp_path)
    try:
        window.wait_for(re.escape(PROMPT.strip()))
        window.type("hi, I want to set up my accounts")
        window.wait_for(r"agent> .*\?")
        start = len(window.screen())
        window.type("250 grand")
        shown = window.wait_for(re.escape(CONFIRM_PROMPT.strip()), after=start)
        for a in split.values():
            assert f"{a.deployable:,.2f}" in shown.replace("$", ""), shown
        assert not _portfolios(server)  # nothing written before the yes
        start = len(window.screen())
        window.type("yes")
        created = re.search(
            r"agent> Created portfolio (\S+):", window.wait_for(r"agent> Created portfolio", after=start)
        )
        assert created is not None
        start = len(window.screen())
        window.type("conservative")  # the onboarding goes on: the risk profile
        window.wait_for(r"agent> \S", after=start)
    finally:
        window.close()
    (pid,) = _portfolios(server)
    assert created.group(1) == pid
    with grpc.insecure_channel(server) as channel:
        got = portfolio_pb2_grpc.PortfolioServiceStub(channel).GetPortfolio(
            portfolio_pb2.GetPortfolioRequest(portfolio_id=pid), timeout=TIMEOUT
        )
    assert got.equity.units == 250_000
    assert {a.type: Decimal(a.deployable.units) + Decimal(a.deployable.cents) / 100 for a in got.accounts} == {
        k: a.deployable for k, a in split.items()
    }


def _portfolios(address: str) -> list[str]:
    """The ids of the portfolios the server holds (read through the store the test server writes)."""
    return [r.id for r in Store(_STORES[address]).list_portfolios()]


class _Reply:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class _Failing(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection refused"


def test_session_commands_prompts_and_errors() -> None:
    sent: list[agent_pb2.ConverseRequest] = []
    replies = [
        _Reply(conversation_id="c1", reply="How much are you starting with?", suggestions=["250k"]),
        _Reply(conversation_id="c1", reply="Create it?", suggestions=[], awaiting_confirmation=True),
    ]

    def converse(request: agent_pb2.ConverseRequest, *, metadata: Any, timeout: float) -> Any:
        sent.append(request)
        if not replies:
            raise _Failing()
        return replies.pop(0)

    session = ChatSession(converse, portfolio_id="p1", timeout=5.0)
    assert session.handle("   ") == ("", True)
    assert "no conversation yet" in session.handle("/id")[0]
    shown, go_on = session.handle("set up my accounts")
    assert go_on and shown == "agent> How much are you starting with?\n  try: 250k"
    assert sent[0].portfolio_id == "p1" and sent[0].conversation_id == ""
    assert session.prompt == PROMPT
    session.handle("250k")
    assert sent[1].conversation_id == "c1" and session.prompt == CONFIRM_PROMPT
    assert session.handle("yes") == ("[UNAVAILABLE] connection refused", True)
    assert session.conversation_id == "c1"  # an error keeps the conversation
    assert session.handle("/new") == ("new conversation", True) and session.conversation_id == ""
    assert session.handle("/quit") == ("bye", False)


def test_run_loop_ends_on_end_of_input_and_names_the_conversation() -> None:
    lines = iter(["hi"])
    out: list[str] = []

    def read(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    def converse(request: agent_pb2.ConverseRequest, *, metadata: Any, timeout: float) -> Any:
        return _Reply(conversation_id="abc", reply="Hello.", suggestions=[])

    assert run(ChatSession(converse), read, out.append) == 0
    assert "agent> Hello." in out and out[-1].startswith("conversation abc")
    assert render(_Reply(reply="x", suggestions=[])) == "agent> x"
