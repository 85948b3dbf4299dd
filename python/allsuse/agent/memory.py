"""What the agent remembers of one conversation, kept in the store's `conversations` rows (one JSON payload each).

A `Conversation` holds the recent turns (at most `MAX_TURNS`; older ones are folded into a short `summary`), the
portfolio, account and symbol in focus, the user's preferences (risk tolerance, level of detail), the stage of
onboarding, and what the agent is waiting for (`Pending`: a slot to fill, or a yes/no before a write). A
`ConversationStore` loads and saves it; a conversation belongs to the API key that started it, and another key
gets PermissionError (PERMISSION_DENIED over gRPC). Because the whole state is in the store, a restarted server
(or another replica) carries on a conversation where it stopped.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from allsuse.errors import InvalidInputError
from allsuse.store import Record, Store

MAX_TURNS = 20
"""Turns kept word for word; older ones are folded into the summary."""
MAX_SUMMARY = 600
"""Characters of summary kept (the most recent notes win)."""
MAX_TURN_TEXT = 500
"""Characters of each side of a turn kept in memory (the reply itself is not shortened)."""
MAX_ID = 64
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")

STAGES = ("new", "greeted", "funding", "confirming", "created", "profiled", "trading")
"""Onboarding, in order: nothing said yet; greeted; asked how much to start with; the allocation shown and awaiting
a yes; the portfolio created; risk tolerance known; a first recommendation made."""
DETAIL = ("brief", "full")
RISK = ("conservative", "moderate", "aggressive")
PAYLOAD_VERSION = 1


@dataclass
class Pending:
    """What the agent waits for: `missing` names the slot it asked for (e.g. "total"), or is None when it asked
    the user to confirm `action` (a write) with the values in `slots`."""

    action: str
    slots: dict[str, Any] = field(default_factory=dict)
    missing: str | None = None

    @property
    def confirming(self) -> bool:
        """Whether a yes/no is awaited (rather than a slot value)."""
        return self.missing is None

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "slots": dict(self.slots), "missing": self.missing}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pending:
        return cls(str(data["action"]), dict(data.get("slots") or {}), data.get("missing"))


@dataclass
class Turn:
    """One exchange: what the user said, what the agent answered, the intent and a one-line note for the summary."""

    user: str
    agent: str
    intent: str
    note: str
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "agent": self.agent, "intent": self.intent, "note": self.note, "at": self.at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Turn:
        return cls(
            str(data.get("user", "")),
            str(data.get("agent", "")),
            str(data.get("intent", "")),
            str(data.get("note", "")),
            str(data.get("at", "")),
        )


@dataclass
class Conversation:
    """One conversation's memory (mutated by `Agent.turn`, saved by `ConversationStore.save`)."""

    conversation_id: str
    owner: str | None = None
    turns: list[Turn] = field(default_factory=list)
    summary: str = ""
    summarised: int = 0
    portfolio_id: str | None = None
    account_id: str | None = None
    symbol: str | None = None
    risk: str | None = None
    detail: str = "brief"
    stage: str = "new"
    pending: Pending | None = None
    last: dict[str, Any] = field(default_factory=dict)
    """The previous answer's context, for references: intent, decision_ids, account kind, symbol, slots."""

    def record(self, user: str, agent: str, intent: str, note: str, at: dt.datetime) -> None:
        """Adds a turn; beyond MAX_TURNS the oldest turns are folded into the summary."""
        self.turns.append(Turn(user[:MAX_TURN_TEXT], agent[:MAX_TURN_TEXT], intent, note, at.isoformat()))
        while len(self.turns) > MAX_TURNS:
            self._fold(self.turns.pop(0))

    def _fold(self, turn: Turn) -> None:
        self.summarised += 1
        note = f"{turn.intent}: {turn.note}" if turn.note else turn.intent
        text = f"{self.summary}; {note}" if self.summary else note
        if len(text) > MAX_SUMMARY:  # keep the most recent notes, cut at a note boundary
            text = text[-MAX_SUMMARY:]
            cut = text.find("; ")
            text = text[cut + 2 :] if cut >= 0 else text
        self.summary = text

    def advance(self, stage: str) -> None:
        """Moves onboarding forward to `stage` (never back)."""
        if STAGES.index(stage) > STAGES.index(self.stage):
            self.stage = stage

    def to_json(self) -> dict[str, Any]:
        """The stored payload (JSON-ready)."""
        return {
            "v": PAYLOAD_VERSION,
            "owner": self.owner,
            "turns": [t.to_json() for t in self.turns],
            "summary": self.summary,
            "summarised": self.summarised,
            "portfolio_id": self.portfolio_id,
            "account_id": self.account_id,
            "symbol": self.symbol,
            "risk": self.risk,
            "detail": self.detail,
            "stage": self.stage,
            "pending": None if self.pending is None else self.pending.to_json(),
            "last": self.last,
        }

    @classmethod
    def from_json(cls, conversation_id: str, data: dict[str, Any]) -> Conversation:
        """A conversation from its stored payload (a payload of the old rule-based agent keeps its turns)."""
        turns = [
            Turn.from_json(t)
            if "note" in t
            else Turn(str(t.get("user", "")), str(t.get("agent", "")), str(t.get("intent", "")), "", "")
            for t in data.get("turns") or []
        ]
        pending = data.get("pending")
        stage = str(data.get("stage") or "new")
        return cls(
            conversation_id,
            data.get("owner"),
            turns[-MAX_TURNS:],
            str(data.get("summary") or ""),
            int(data.get("summarised") or 0),
            data.get("portfolio_id") or None,
            data.get("account_id") or None,
            data.get("symbol") or None,
            data.get("risk") if data.get("risk") in RISK else None,
            str(data["detail"]) if data.get("detail") in DETAIL else "brief",
            stage if stage in STAGES else "new",
            Pending.from_json(pending) if isinstance(pending, dict) else None,
            dict(data.get("last") or {}),
        )


def check_conversation_id(value: str) -> str:
    """A client-chosen conversation id: 1-64 characters [A-Za-z0-9_.:@-], starting with a letter or digit."""
    if not ID.match(value):
        raise InvalidInputError.of(
            "conversation_id", f"must be 1-{MAX_ID} characters [A-Za-z0-9_.:@-] starting with a letter or digit"
        )
    return value


class ConversationStore:
    """Loads and saves conversations in the store, enforcing that each belongs to the key that started it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open(self, conversation_id: str, owner: str | None) -> Conversation:
        """The conversation `conversation_id` (a new one when empty or not stored yet) for the caller `owner` (its
        API key id; None when authentication is off). PermissionError when another key started it."""
        if not conversation_id:
            return Conversation(uuid.uuid4().hex, owner)
        check_conversation_id(conversation_id)
        record = self.store.get_conversation(conversation_id)
        if record is None:
            return Conversation(conversation_id, owner)
        conversation = Conversation.from_json(conversation_id, dict(record.payload))
        if conversation.owner is not None and conversation.owner != owner:
            raise PermissionError("conversation_id: this conversation belongs to another API key")
        if conversation.owner is None and owner is not None and record.payload.get("v") is not None:
            # Started with authentication off: the first key that continues it does not take it over silently.
            raise PermissionError("conversation_id: this conversation was started without an API key")
        return conversation

    def save(self, conversation: Conversation, *, actor: str = "system") -> None:
        """Writes the conversation's memory (one row, replaced) and returns once it is durable."""
        self.submit(conversation, actor=actor).result()

    def submit(self, conversation: Conversation, *, actor: str = "system") -> Future[Record]:
        """Queues the write of the conversation's memory in the store's next group commit; the future completes
        once it is durable (a server awaits it on the event loop, so no worker thread waits for the fsync)."""
        payload = conversation.to_json()
        conversation_id = conversation.conversation_id
        return self.store.submit(lambda tx: tx.put_conversation(conversation_id, payload, actor=actor))


__all__ = [
    "DETAIL",
    "MAX_SUMMARY",
    "MAX_TURNS",
    "RISK",
    "STAGES",
    "Conversation",
    "ConversationStore",
    "Pending",
    "Turn",
    "check_conversation_id",
]
