"""`allsuse chat`: an interactive terminal conversation with a server's AgentService.

Each line typed is one Converse call on the same conversation; the reply is printed with the questions the agent
suggests next. Lines are kept in a readline history file, so arrow keys recall earlier questions across sessions.
A few lines are commands to the client rather than the agent: /help, /id (the conversation id, to resume it later
with --conversation), /new (start a new conversation) and /quit (or end of input).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc

from allsuse.v1 import agent_pb2, agent_pb2_grpc

PROMPT = "you> "
CONFIRM_PROMPT = "you (yes/no)> "
COMMANDS = "/help this list; /id the conversation id; /new a new conversation; /quit leave (or Ctrl-D)"
HISTORY_LENGTH = 1000


class _Converse(Protocol):
    def __call__(self, request: agent_pb2.ConverseRequest, *, metadata: Any, timeout: float) -> Any: ...


@dataclass
class ChatSession:
    """One conversation as the terminal sees it: the ids it carries from turn to turn and how a reply is shown."""

    converse: _Converse
    portfolio_id: str = ""
    conversation_id: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    timeout: float = 30.0
    awaiting_confirmation: bool = False
    lines: list[str] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        """The prompt: it asks for yes or no while the agent waits for a confirmation."""
        return CONFIRM_PROMPT if self.awaiting_confirmation else PROMPT

    def handle(self, line: str) -> tuple[str, bool]:
        """(what to print, whether to go on) for one typed line."""
        text = line.strip()
        if not text:
            return "", True
        command = text.lower()
        if command in ("/quit", "/exit", "/q"):
            return "bye", False
        if command == "/help":
            return COMMANDS, True
        if command == "/id":
            return self.conversation_id or "(no conversation yet: say something first)", True
        if command == "/new":
            self.conversation_id = ""
            self.awaiting_confirmation = False
            return "new conversation", True
        return self.send(line), True

    def send(self, text: str) -> str:
        """One Converse turn; an RPC error is shown as a line and the session goes on."""
        request = agent_pb2.ConverseRequest(
            conversation_id=self.conversation_id, portfolio_id=self.portfolio_id, message=text
        )
        try:
            reply = self.converse(request, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            name = code.name if code is not None else "ERROR"
            return f"[{name}] {details}"
        self.conversation_id = reply.conversation_id or self.conversation_id
        self.awaiting_confirmation = bool(getattr(reply, "awaiting_confirmation", False))
        return render(reply)


def render(reply: Any) -> str:
    """The agent's reply as terminal lines: the text, then the suggested next questions."""
    out = [f"agent> {reply.reply}"]
    suggestions = list(getattr(reply, "suggestions", ()))
    if suggestions:
        out.append("  try: " + " | ".join(suggestions))
    return "\n".join(out)


@contextlib.contextmanager
def line_history(path: Path | None) -> Iterator[None]:
    """readline history kept in `path` for the session (none when readline is missing or `path` is None)."""
    try:
        import readline
    except ImportError:  # pragma: no cover - readline is part of CPython on Linux
        yield
        return
    if path is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(path)
    readline.set_history_length(HISTORY_LENGTH)
    try:
        yield
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
                readline.write_history_file(path)


def run(
    session: ChatSession,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> int:
    """The read-reply loop until /quit or end of input; returns the exit code (0)."""
    write(f"allsuse chat: {COMMANDS}")
    while True:
        try:
            line = read(session.prompt)
        except EOFError:
            write("")
            break
        except KeyboardInterrupt:
            write("")
            continue
        shown, go_on = session.handle(line)
        if shown:
            write(shown)
        if not go_on:
            break
    if session.conversation_id:
        write(f"conversation {session.conversation_id} (resume with --conversation {session.conversation_id})")
    sys.stdout.flush()
    return 0


def connect(channel: grpc.Channel) -> _Converse:
    """The Converse call of an AgentService stub on `channel`."""
    stub = agent_pb2_grpc.AgentServiceStub(channel)
    converse: _Converse = stub.Converse
    return converse
