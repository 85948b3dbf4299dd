"""The dialogue (issue 11 item 2) over real gRPC: slot filling, references to the previous turn ("and for Rev-Acc?",
"why?", "do it"), corrections ("no, 300k"), and confirmation before every write (portfolio creation, approval,
withdrawal): nothing is written without a yes."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from allsuse.protocol.accounts import allocate
from allsuse.store import Store
from tests.agent.agent_support import UPTREND, Chat, Running, data, running, seed_market


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    db = tmp_path_factory.mktemp("dialogue") / "allsuse.db"
    with Store(db) as store:
        seed_market(store, UPTREND)
    with running(db) as s:
        yield s


def _portfolios(server: Running) -> set[str]:
    return {r.id for r in server.store.list_portfolios(limit=1000)}


def _onboarded(server: Running, total: str = "250k") -> tuple[Chat, str]:
    chat = Chat(server)
    chat.say(f"set up my accounts with {total}")
    created = chat.say("yes")
    return chat, str(data(created)["portfolio_id"])


def test_slot_filling_asks_for_the_amount_then_shows_the_real_allocation(server: Running) -> None:
    before = _portfolios(server)
    chat = Chat(server)
    ask = chat.say("set up my accounts")
    assert ask.intent == "setup_accounts" and ask.reply.endswith("?") and "how much" in ask.reply.lower()
    assert not ask.awaiting_confirmation and data(ask)["awaiting"] == "total"
    shown = chat.say("250k")
    split = allocate(Decimal(250_000))
    assert shown.intent == "setup_accounts" and shown.awaiting_confirmation
    for kind, a in split.items():
        assert data(shown)["allocation"][kind]["allocation"] == str(a.allocation)
        assert data(shown)["allocation"][kind]["deployable"] == str(a.deployable)
        assert f"${a.deployable:,.2f}" in shown.reply
    assert _portfolios(server) == before  # shown, not written
    created = chat.say("yes")
    pid = data(created)["portfolio_id"]
    assert _portfolios(server) == before | {pid}
    stored = server.store.get_portfolio(pid)
    assert stored is not None
    balances = {a["kind"]: a["balance"] for a in stored.payload["accounts"]}
    assert balances == {k: str(a.allocation) for k, a in split.items()}
    assert created.reply.endswith("?") and "risk tolerance" in created.reply  # the next onboarding question
    risk = chat.say("conservative")
    assert risk.intent == "risk_profile" and data(risk)["risk"] == "conservative"


def test_a_correction_replaces_the_amount_and_asks_again(server: Running) -> None:
    before = _portfolios(server)
    chat = Chat(server)
    first = chat.say("set up my accounts with $250,000")
    assert first.awaiting_confirmation and data(first)["total"] == "250000.00"
    corrected = chat.say("no, 300k")
    assert corrected.awaiting_confirmation and data(corrected)["total"] == "300000.00"
    assert data(corrected)["allocation"]["gen"]["allocation"] == str(allocate(Decimal(300_000))["gen"].allocation)
    assert _portfolios(server) == before
    created = chat.say("go ahead")
    stored = server.store.get_portfolio(data(created)["portfolio_id"])
    assert stored is not None
    assert sum(Decimal(a["balance"]) for a in stored.payload["accounts"]) == Decimal("300000.00")


def test_nothing_is_written_without_a_yes(server: Running) -> None:
    before = _portfolios(server)
    chat = Chat(server)
    assert chat.say("set up my accounts with 400k").awaiting_confirmation
    other = chat.say("what are week types?")  # something else: the confirmation lapses
    assert other.intent == "explain_week_types" and not other.awaiting_confirmation
    late = chat.say("yes")
    assert late.intent == "affirm" and "nothing waiting" in late.reply
    assert chat.say("set up my accounts with 400k").awaiting_confirmation
    cancelled = chat.say("no")
    assert cancelled.intent == "deny" and "No portfolio was created" in cancelled.reply
    assert _portfolios(server) == before


def test_references_why_and_for_rev_acc_and_do_it(server: Running) -> None:
    chat, pid = _onboarded(server)
    rec = chat.say("what should I trade on NVDA this week for Gen-Acc?")
    assert rec.intent == "recommend_trades" and len(rec.decision_ids) == 1
    decision = data(rec)["decision"]
    assert decision["account_id"] == f"{pid}/gen-1" and decision["symbol"] == "NVDA"
    why = chat.say("why?")
    assert why.intent == "explain_decision" and list(why.decision_ids) == list(rec.decision_ids)
    assert why.awaiting_confirmation and rec.awaiting_confirmation  # "why?" leaves the approval question standing
    stored = server.store.get_decision(rec.decision_ids[0])
    assert stored is not None
    assert stored.payload["outcome"] in why.reply and stored.payload["label"] in why.reply
    rev = chat.say("and for Rev-Acc?")
    assert rev.intent == "recommend_trades"
    decisions = data(rev)["decisions"]
    assert {d["account_id"] for d in decisions} == {f"{pid}/rev-1"}
    assert {d["symbol"] for d in decisions} == {"AAPL", "AMZN", "MSFT", "GOOGL"}  # NVDA is not Rev-Acc's
    for d in decisions:  # Thursday: Rev-Acc enters on Monday-Wednesday in Green, and the reply says so
        record = server.store.get_decision(d["decision_id"])
        assert record is not None and record.payload["action"] == d["action"] == "NO_TRADE"
        assert "not an entry day" in record.payload["explanation"]
    assert rev.reply.count("not an entry day") == 4
    again = chat.say("what should I trade on NVDA for Gen-Acc?")
    assert again.awaiting_confirmation and data(again)["decision"]["approval_status"] == "PENDING"
    done = chat.say("do it")
    assert done.intent == "affirm" and list(done.decision_ids) == list(again.decision_ids)
    record = server.store.get_decision(again.decision_ids[0])
    assert record is not None and record.payload["approval_status"] == "APPROVED"
    assert "APPROVED" in done.reply


def test_declining_in_the_confirmation_leaves_the_decision_pending(server: Running) -> None:
    chat, _ = _onboarded(server)
    rec = chat.say("what should I trade on NVDA for Gen-Acc?")
    assert rec.awaiting_confirmation
    chat.say("no")
    record = server.store.get_decision(rec.decision_ids[0])
    assert record is not None and record.payload["approval_status"] == "PENDING"
    asked = chat.say("decline it")
    assert asked.awaiting_confirmation and list(asked.decision_ids) == list(rec.decision_ids)
    chat.say("yes")
    record = server.store.get_decision(rec.decision_ids[0])
    assert record is not None and record.payload["approval_status"] == "DECLINED"


def test_detail_follows_the_preference(server: Running) -> None:
    chat, _ = _onboarded(server)
    brief = chat.say("what should I trade on NVDA for Gen-Acc?")
    chat.say("no")
    full = chat.say("explain in detail")
    assert full.intent == "explain_decision"
    record = server.store.get_decision(brief.decision_ids[0])
    assert record is not None
    for code, _, passed, message in record.payload["compliance"]:
        assert f"{code} (" in full.reply and message in full.reply  # every rule with its numbers
        assert ("passed" if passed else "FAILED") in full.reply
    short = chat.say("just the short version, why?")
    assert len(short.reply) < len(full.reply) and "R01_DELTA_BAND (" not in short.reply


def test_withdrawals_confirm_and_a_com_acc_never_pays_out(server: Running) -> None:
    chat, pid = _onboarded(server)
    refused = chat.say("withdraw 5k from Com-Acc")
    assert refused.intent == "withdraw" and "R18_NO_WITHDRAWAL" in refused.reply
    assert not refused.awaiting_confirmation
    asked = chat.say("withdraw 5k from Rev-Acc")
    assert asked.awaiting_confirmation and "$5,000.00" in asked.reply
    ledger = [r.payload for r in server.store.list_transactions(portfolio_id=pid, limit=100)]
    assert not [t for t in ledger if t["kind"] == "withdrawal"]
    done = chat.say("yes")
    ledger = [r.payload for r in server.store.list_transactions(portfolio_id=pid, limit=100)]
    withdrawals = [t for t in ledger if t["kind"] == "withdrawal"]
    assert len(withdrawals) == 1 and Decimal(withdrawals[0]["amount"]) == Decimal("-5000.00")
    assert withdrawals[0]["account_id"] == f"{pid}/rev-1" and "withdrawn" in done.reply


def test_the_amount_can_be_asked_for_and_unknown_gets_one_precise_question(server: Running) -> None:
    chat, _ = _onboarded(server)
    ask = chat.say("I want to take some money out of Rev-Acc")
    assert ask.intent == "withdraw" and "how much" in ask.reply.lower()
    proposal = chat.say("2,500")
    assert proposal.awaiting_confirmation and "$2,500.00" in proposal.reply
    chat.say("cancel")
    fresh = Chat(server)
    unclear = fresh.say("purple monkey dishwasher")
    assert unclear.intent == "unknown" and unclear.reply.count("?") == 1 and unclear.reply.endswith("?")


def test_a_follow_up_refers_back_only_with_a_value_the_previous_answer_takes(server: Running) -> None:
    chat, _ = _onboarded(server)
    before = _portfolios(server)
    view = chat.say("NVDA")  # a symbol after the setup: its market view, not another portfolio
    assert view.intent == "market_view" and not view.awaiting_confirmation and data(view)["symbol"] == "NVDA"
    again = chat.say("and AMD?")
    assert again.intent == "market_view" and data(again)["symbol"] == "AMD"
    decided = chat.say("what should I trade on NVDA for Gen-Acc?")
    assert len(decided.decision_ids) == 1
    count = len(server.store.list_decisions(limit=10_000))
    looked = chat.say("how does TSLA look?")  # after a recommendation: a view, not another decision
    assert looked.intent == "market_view" and data(looked)["symbol"] == "TSLA"
    assert len(server.store.list_decisions(limit=10_000)) == count
    projected = chat.say("project 250k over 5 years")
    corrected = chat.say("no, 300k")
    assert corrected.intent == "projection" and data(corrected)["total"] == "300000.00"
    assert data(corrected)["years"] == data(projected)["years"] == 5
    assert _portfolios(server) == before
