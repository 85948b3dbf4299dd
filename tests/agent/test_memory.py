"""The agent's memory (issue 11 item 3): turns capped with the oldest summarised, the whole state in the store so a
restarted server continues a conversation on a real SQLite WAL file, and a conversation owned by the key that
started it (another key: PERMISSION_DENIED over real gRPC)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from allsuse.agent.memory import MAX_SUMMARY, MAX_TURNS, Conversation, ConversationStore, Pending
from allsuse.protocol.accounts import allocate
from allsuse.store import Store
from tests.agent.agent_support import Chat, data, running

AT = dt.datetime(2024, 3, 7, 15, 45)


def test_turns_are_capped_and_the_oldest_are_folded_into_a_short_summary() -> None:
    c = Conversation("c1", owner="k1")
    for i in range(MAX_TURNS + 12):
        c.record(f"message {i}", f"answer {i}", "check_performance", f"note {i}", AT)
    assert len(c.turns) == MAX_TURNS and c.summarised == 12
    assert c.turns[0].user == "message 12" and c.turns[-1].agent == f"answer {MAX_TURNS + 11}"
    assert c.summary.startswith("check_performance: note 0") and c.summary.endswith("note 11")
    for i in range(500):  # the summary stays short: the most recent notes win, cut at a note boundary
        c.record("m", "a", "market_view", f"NVDA green {i}", AT)
    assert len(c.summary) <= MAX_SUMMARY and c.summary.endswith(f"NVDA green {499 - MAX_TURNS}")
    assert c.summary.startswith("market_view: ")
    c.record("x" * 5000, "y" * 5000, "unknown", "", AT)
    assert len(c.turns[-1].user) == 500 and len(c.turns[-1].agent) == 500


def test_the_whole_state_round_trips_through_the_store(tmp_path: Path) -> None:
    c = Conversation("c2", owner="k1", portfolio_id="pf-1", account_id="pf-1/rev-1", symbol="NVDA")
    c.risk, c.detail, c.stage = "conservative", "full", "profiled"
    c.pending = Pending("withdraw", {"account_id": "pf-1/rev-1"}, "amount")
    c.last = {"intent": "recommend_trades", "decision_ids": ["d1"], "slots": {"symbol": "NVDA"}}
    c.record("hello", "hi", "greeting", "greeted", AT)
    with Store(tmp_path / "m.db") as store:
        ConversationStore(store).save(c)
    with Store(tmp_path / "m.db") as store:
        back = ConversationStore(store).open("c2", "k1")
        assert back == c
        with pytest.raises(PermissionError, match="another API key"):
            ConversationStore(store).open("c2", "k2")
        fresh = ConversationStore(store).open("brand-new", "k2")
        assert fresh.conversation_id == "brand-new" and fresh.owner == "k2" and fresh.turns == []


def test_a_restarted_server_continues_the_conversation_where_it_stopped(tmp_path: Path) -> None:
    db = tmp_path / "allsuse.db"
    with running(db) as server:
        chat = Chat(server)
        first = chat.say("set up my accounts")
        assert first.intent == "setup_accounts" and "how much" in first.reply.lower()
        assert not first.awaiting_confirmation
    assert (tmp_path / "allsuse.db-wal").exists() or db.exists()
    with running(db) as server:  # a new process-worth of server on the same file
        chat = Chat(server, conversation_id=chat.conversation_id)
        second = chat.say("250k")
        split = allocate(Decimal(250_000))
        assert second.awaiting_confirmation, second.reply
        assert data(second)["allocation"]["gen"]["allocation"] == str(split["gen"].allocation)
        assert "$100,000.00" in second.reply and "$75,000.00" in second.reply
        assert server.store.list_portfolios(limit=10) == []  # nothing written before the yes
    with running(db) as server:
        chat = Chat(server, conversation_id=chat.conversation_id)
        third = chat.say("yes")
        pid = data(third)["portfolio_id"]
        assert server.store.get_portfolio(pid) is not None and pid in third.reply
        record = server.store.get_conversation(chat.conversation_id)
        assert record is not None
        memory = Conversation.from_json(chat.conversation_id, dict(record.payload))
        assert memory.portfolio_id == pid and memory.stage == "created"
        assert [t.intent for t in memory.turns] == ["setup_accounts", "setup_accounts", "affirm"]
        assert memory.pending is not None and memory.pending.missing == "risk"  # the next onboarding question


def test_a_conversation_belongs_to_the_key_that_started_it(tmp_path: Path) -> None:
    db = tmp_path / "allsuse.db"
    with Store(db) as store:
        alice = store.create_api_key("viewer").token
        bob = store.create_api_key("trader").token
        admin = store.create_api_key("admin").token
    with running(db, auth=True) as server:
        mine = Chat(server, alice)
        mine.say("hello")
        for token in (bob, admin):
            theirs = Chat(server, token, conversation_id=mine.conversation_id)
            with pytest.raises(grpc.RpcError) as err:
                theirs.say("what did we talk about?")
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "another API key" in (err.value.details() or "")
        again = mine.say("explain the accounts")
        assert again.intent == "explain_accounts" and again.conversation_id == mine.conversation_id
        record = server.store.get_conversation(mine.conversation_id)
        assert record is not None and len(record.payload["turns"]) == 2  # bob's and admin's tries left no trace


def test_a_viewer_key_is_told_politely_that_it_cannot_write(tmp_path: Path) -> None:
    db = tmp_path / "allsuse.db"
    with Store(db) as store:
        viewer = store.create_api_key("viewer").token
    with running(db, auth=True) as server:
        chat = Chat(server, viewer)
        shown = chat.say("set up my accounts with 100k")
        assert shown.awaiting_confirmation  # showing the allocation only reads
        refused = chat.say("yes")
        assert refused.intent == "affirm" and "needs a trader key" in refused.reply and "viewer" in refused.reply
        assert server.store.list_portfolios(limit=10) == [] and not refused.awaiting_confirmation
