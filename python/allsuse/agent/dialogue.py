"""The dialogue: one user message in, one `Reply` out, the conversation's memory updated (`Agent.turn`).

Understanding comes from allsuse.agent.nlu (`understand`: intent and entities); this module decides what to do
with it:

- **slot filling**: an intent that needs a value it was not given asks one question and remembers it
  (`Pending(action, slots, missing)`), so the next message ("250k") fills it;
- **references**: a bare follow-up ("and for Rev-Acc?", "no, 300k", "NVDA") re-runs the previous intent with the
  new values over the previous ones; "why?" explains the decision the conversation just talked about; "do it"
  confirms what is pending;
- **confirmation before any write**: creating a portfolio, approving or declining a decision and withdrawing are
  proposed first (`awaiting_confirmation`), and carried out only on a yes in a later turn; anything else cancels;
- **corrections** ("no, 300k", "actually make it Rev-Acc") replace the pending values and propose again;
- **unknown** input gets one precise clarifying question chosen by where the conversation stands.

Every figure comes from allsuse.agent.answers (real calls). Errors a call raises for the user's values (bad
amount, missing prices, a key without the role) become a polite reply naming the reason, never an error status.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from allsuse.agent import answers
from allsuse.agent.answers import Answer
from allsuse.agent.calls import Calls
from allsuse.agent.entities import Entities
from allsuse.agent.memory import RISK, Conversation, Pending
from allsuse.agent.nlu import Understanding, understand
from allsuse.errors import AllsuseError, InvalidInputError
from allsuse.protocol import settings

MAX_MESSAGE = 2000
"""Characters of a message the agent reads; a longer one gets a polite request to shorten it."""
WRITES = ("create_portfolio", "approve", "decline", "withdraw")
"""Actions carried out only after a yes."""
MAX_SYMBOLS_PER_TURN = 4
DEFAULT_YEARS = 10
REFERS = {
    "setup_accounts": ("money",),
    # A new decision only for another account ("and for Rev-Acc?"); a bare symbol is read on its own (its view).
    "recommend_trades": ("account_kind", "account_id"),
    "market_view": ("symbol",),
    "classify_week": ("percent", "position"),
    "check_performance": ("period",),
    "projection": ("money", "years", "count"),
    "withdraw": ("money", "account_kind", "account_id"),
    "explain_decision": ("symbol", "decision_id"),
}
"""The values a bare follow-up may carry to re-run the previous intent ("and for Rev-Acc?", "no, 300k"); a value
the previous intent does not take is read on its own ("NVDA" after a setup: its market view)."""
KEEP_CONFIRMATION = ("explain_decision", "help")
"""Questions that leave a pending confirmation standing (anything else lets it lapse)."""
CORRECTABLE = {
    "create_portfolio": ("money",),
    "withdraw": ("money", "account_kind", "account_id"),
}
"""The values a correction may change in a pending confirmation ("no, 300k"); anything else lets it lapse."""
PREFERENCES = ("detail", "risk")
"""Slots that set a preference rather than a value to act on."""
REPEATABLE = (
    "market_view",
    "classify_week",
    "check_performance",
    "fork_status",
    "projection",
    "reinvestment",
    "explain_protocol",
    "explain_accounts",
    "explain_forking",
    "explain_week_types",
    "risk_profile",
    "explain_decision",
)
"""Intents that only read: a preference alone ("in detail") re-runs them."""
SLOT_KEYS = {"total": "money", "amount": "money", "move": "percent"}
"""The key a filled slot is kept under (the name slots_of gives the entity)."""
QUESTIONS = {
    ("setup_accounts", "total"): "How much are you starting with (for example $250,000)?",
    ("risk_profile", "risk"): "How would you describe your risk tolerance: conservative, moderate or aggressive?",
    ("withdraw", "account"): "From which account: Gen-Acc or Rev-Acc?",
    ("withdraw", "amount"): "How much would you like to withdraw?",
    ("market_view", "symbol"): "Which symbol?",
    ("classify_week", "position"): "Which position went into expiry: cash, a short put, shares or a covered call?",
    ("classify_week", "move"): "How much did the stock move this week (for example down 3.2%)?",
    ("projection", "total"): "How much should I project (for example $250,000)?",
}


@dataclass(frozen=True)
class Reply:
    """One answer of the agent: its text, the intent understood, the structured numbers behind the text
    (JSON-ready), suggested next messages and the decisions it refers to."""

    text: str
    intent: str
    data: dict[str, Any]
    suggestions: tuple[str, ...]
    decision_ids: tuple[str, ...] = ()


ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
"""A terminal escape sequence (colours, cursor moves) pasted into a message."""


def _clean(text: str) -> str:
    """The message without terminal escape sequences and control characters (other than spaces), trimmed."""
    text = ANSI.sub("", text)
    return "".join(
        " " if ch in "\t\r\n" else ch for ch in text if ch in "\t\r\n" or unicodedata.category(ch)[0] != "C"
    ).strip()


def slots_of(e: Entities) -> dict[str, Any]:
    """The values a message carried (JSON-ready: dates as ISO strings), by slot name."""
    out: dict[str, Any] = {}
    if e.money is not None:
        out["money"] = str(e.money)
    if e.percent is not None:
        out["percent"] = e.percent
    if e.tickers:
        out["symbol"] = e.tickers[0]
        out["symbols"] = list(e.tickers)
    if e.unknown_tickers:
        out["unknown_tickers"] = list(e.unknown_tickers)
    if e.account_kind is not None:
        out["account_kind"] = e.account_kind
    if e.account_id is not None:
        out["account_id"] = e.account_id
    if e.week_label is not None:
        out["week_label"] = e.week_label
    if e.delta is not None:
        out["delta"] = list(e.delta)
    if e.period is not None:
        out["period"] = [e.period[0].isoformat(), e.period[1].isoformat()]
    if e.risk is not None:
        out["risk"] = e.risk
    if e.count is not None:
        out["count"] = e.count
    # Fields nlu adds beyond the contract's (read when present).
    for name in ("years", "decision_id", "position"):
        value = getattr(e, name, None)
        if value is not None:
            out[name] = value
    return out


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


class Agent:
    """The conversational agent over `calls` (engine and service calls)."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    # --- the turn ------------------------------------------------------------------------------------------
    def turn(self, conversation: Conversation, text: str) -> Reply:
        """Answers `text` in `conversation` and updates its memory (turns, focus, preferences, pending)."""
        now = self.calls.now()
        clean = _clean(text)
        if len(clean) > MAX_MESSAGE:
            answer = Answer(
                f"That message is {len(clean):,} characters long; I read messages of up to {MAX_MESSAGE:,}. "
                "Could you ask it in a sentence or two?",
                data={"length": len(clean), "limit": MAX_MESSAGE},
                suggestions=self._starters(conversation),
                note="message too long",
            )
            intent = "unknown"
        elif not clean:
            answer = self._clarify(conversation, "I did not get any text.")
            intent = "unknown"
        else:
            u = understand(clean, symbols=self.calls.symbols(), today=now.date())
            intent, answer = self._guarded(conversation, u, clean)
        conversation.record(clean, answer.text(conversation.detail), intent, answer.note, now)
        return Reply(answer.text(conversation.detail), intent, answer.data, answer.suggestions, answer.decision_ids)

    def _guarded(self, conv: Conversation, u: Understanding, text: str) -> tuple[str, Answer]:
        """Runs the dialogue; a refusal of a call (the user's values, the key's role) becomes a polite answer."""
        try:
            return self._respond(conv, u, text)
        except PermissionError as exc:
            conv.pending = None
            reason = str(exc).split(": ", 1)[-1]
            return u.intent, Answer(
                f"I cannot do that with your API key: {reason}.", data={"refused": reason}, note="refused"
            )
        except AllsuseError as exc:
            conv.pending = None
            reason = exc.reason if isinstance(exc, InvalidInputError) and exc.reason else str(exc)
            return u.intent, Answer(
                f"I could not do that: {reason}.", data={"error": reason}, suggestions=self._starters(conv)
            )

    def _respond(self, conv: Conversation, u: Understanding, text: str) -> tuple[str, Answer]:
        """The intent acted on (a slot answer or a reference resolves to the intent it continues) and the answer."""
        e = u.entities
        slots = slots_of(e)
        if e.detail is not None:
            conv.detail = e.detail
        if e.risk is not None and u.intent in ("risk_profile", "inform"):
            conv.risk = e.risk
        pending = conv.pending
        if pending is not None:
            handled = self._pending(conv, pending, u, slots, text)
            if handled is not None:
                return handled
        intent = u.intent
        values = {k: v for k, v in slots.items() if k not in PREFERENCES}
        previous = str(conv.last.get("intent") or "")
        if intent in ("inform", "deny") and previous and any(k in REFERS.get(previous, ()) for k in values):
            # A reference to the previous answer: "and for Rev-Acc?", "no, 300k", "NVDA".
            intent = previous
            slots = self._merged(conv.last.get("slots") or {}, slots)
        elif intent == "inform" and not values and (e.detail is not None or e.risk is not None):
            # Only a preference: "in detail", "just the short version", "I'm conservative".
            if e.risk is not None:
                intent = "risk_profile"
            elif conv.last.get("decision_ids"):
                intent = "explain_decision"
            elif previous in REPEATABLE:
                intent, slots = previous, dict(conv.last.get("slots") or {})
            else:
                word = "the full reasoning" if conv.detail == "full" else "short answers"
                return "inform", Answer(f"Understood: {word} from now on.", data={"detail": conv.detail})
        elif intent == "inform":
            intent = self._inform_intent(conv, slots)
        return self._answer(conv, intent, slots, text, u)

    @staticmethod
    def _merged(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        merged = {**previous, **new}
        if "account_kind" in new and "account_id" not in new:
            merged.pop("account_id", None)  # "and for Rev-Acc?": the kind named now wins over the id before
        kind = new.get("account_kind")
        carried = previous.get("symbol") if "symbol" not in new else None
        if kind is not None and carried is not None and carried not in settings.default().account(kind).symbols:
            merged.pop("symbol", None)  # the previous symbol is not tradable in the account named now
            merged.pop("symbols", None)
        return merged

    @staticmethod
    def _inform_intent(conv: Conversation, slots: dict[str, Any]) -> str:
        """What a bare value means with nothing pending and no previous answer to refer to."""
        if "money" in slots and conv.portfolio_id is None:
            return "setup_accounts"
        if "risk" in slots:
            return "risk_profile"
        if "symbol" in slots:
            return "market_view"
        return "unknown"

    # --- pending slots and confirmations -------------------------------------------------------------------------
    def _slot_value(self, pending: Pending, slots: dict[str, Any], text: str) -> Any:
        missing = pending.missing
        if missing in ("total", "amount"):
            return slots.get("money")
        if missing == "risk":
            return slots.get("risk")
        if missing == "symbol":
            return slots.get("symbol")
        if missing == "account":
            return slots.get("account_id") or slots.get("account_kind")
        if missing == "move":
            return slots.get("percent")
        if missing == "position":
            return slots.get("position")
        return None

    def _pending(
        self, conv: Conversation, pending: Pending, u: Understanding, slots: dict[str, Any], text: str
    ) -> tuple[str, Answer] | None:
        """Handles the message against what is pending; None when it is about something else."""
        if not pending.confirming:
            value = self._slot_value(pending, slots, text)
            if value is not None and u.intent in ("inform", pending.action, "unknown", "affirm", "deny"):
                conv.pending = None
                key = SLOT_KEYS.get(pending.missing or "", pending.missing or "")
                filled = {**pending.slots, **slots, key: value}
                return self._answer(conv, pending.action, filled, text, u)
            if u.intent == "deny":
                conv.pending = None
                return "deny", Answer(
                    "All right, let us leave that.", suggestions=self._starters(conv), note="cancelled"
                )
            if u.intent == "affirm":  # "yes" to a question that wants a value: ask for the value
                question = QUESTIONS[(pending.action, pending.missing or "")]
                return pending.action, Answer(question, data={"awaiting": pending.missing}, note="asked again")
            return None  # answer the new question; the slot question stays open
        if u.intent == "affirm" and not u.correction:
            conv.pending = None
            return "affirm", self._execute(conv, pending)
        relevant = CORRECTABLE.get(pending.action, ())
        changed = {k: v for k, v in slots.items() if k in relevant and pending.slots.get(k) != v}
        if changed and (u.correction or u.intent in ("inform", "deny", pending.action)):
            conv.pending = None
            action = "setup_accounts" if pending.action == "create_portfolio" else pending.action
            return self._answer(conv, action, {**pending.slots, **changed}, text, u)
        if u.intent in KEEP_CONFIRMATION and not slots.get("symbol"):
            # "why?" before saying yes: explained, and the question still stands.
            intent, answer = self._answer(conv, u.intent, slots, text, u)
            conv.pending = pending
            answer.brief += " Still waiting for your yes or no."
            answer.full = (answer.full + "\nStill waiting for your yes or no.") if answer.full else ""
            return intent, answer
        conv.pending = None
        if u.intent == "deny":
            what = {
                "create_portfolio": "No portfolio was created",
                "approve": "The decision stays pending",
                "decline": "The decision stays pending",
                "withdraw": "Nothing was withdrawn",
            }.get(pending.action, "Nothing was changed")
            return "deny", Answer(
                f"Cancelled. {what}.", suggestions=self._starters(conv), note=f"cancelled {pending.action}"
            )
        return None  # something else: the confirmation lapses, nothing is written

    def _execute(self, conv: Conversation, pending: Pending) -> Answer:
        """Carries out a confirmed write."""
        action, slots = pending.action, pending.slots
        if action == "create_portfolio":
            total = _money(slots.get("money"))
            assert total is not None
            portfolio_id = self.calls.create_portfolio(total)
            conv.portfolio_id, conv.account_id = portfolio_id, None
            conv.advance("created")
            conv.pending = Pending("risk_profile", {}, "risk")
            answer = answers.created(self.calls.portfolio(portfolio_id))
            conv.last = {}  # "no, 300k" now would not mean another portfolio
            return answer
        if action in ("approve", "decline"):
            ids = [str(i) for i in slots.get("decision_ids") or []]
            done: list[dict[str, Any]] = []
            refused: list[str] = []
            for decision_id in ids:  # each on its own: one approved meanwhile does not stop the others
                try:
                    done.append(self.calls.approve(decision_id, action == "approve"))
                except AllsuseError as exc:
                    if len(ids) == 1:
                        raise
                    refused.append(f"{decision_id}: {exc}")
            if not done:
                raise InvalidInputError.of("decision_ids", "; ".join(refused))
            answer = answers.approval(done[0]) if len(done) == 1 else self._approvals(done)
            if refused:
                answer.brief += " Not changed: " + "; ".join(refused) + "."
                answer.data["not_changed"] = refused
            conv.last = {"intent": "explain_decision", "slots": {}, "decision_ids": ids}
            return answer
        if action == "withdraw":
            amount = _money(slots.get("money"))
            assert amount is not None and conv.portfolio_id is not None
            tx = self.calls.withdraw(conv.portfolio_id, str(slots["account_id"]), amount)
            conv.last = {"intent": "check_performance", "slots": {}}
            return answers.withdrawn(tx)
        raise InvalidInputError.of("action", f"nothing to carry out for {action!r}")

    @staticmethod
    def _approvals(done: list[dict[str, Any]]) -> Answer:
        each = [answers.approval(d) for d in done]
        return Answer(
            " ".join(a.brief for a in each),
            data={"decisions": [a.data["decision"] for a in each]},
            suggestions=("how am I doing?",),
            decision_ids=tuple(d["decision_id"] for d in done),
            note=f"{len(done)} decisions {done[0]['approval_status'].lower()}",
        )

    def _ask(self, conv: Conversation, action: str, slot: str, slots: dict[str, Any], extra: str = "") -> Answer:
        """Asks for one missing value and remembers what is already known."""
        conv.pending = Pending(action, {k: v for k, v in slots.items() if k != slot}, slot)
        question = QUESTIONS[(action, slot)]
        if action == "market_view":
            question = f"Which symbol: {', '.join(self.calls.symbols())}?"
        return Answer(
            (extra + " " if extra else "") + question,
            data={"awaiting": slot, "action": action},
            note=f"asked {slot}",
        )

    def _confirm(self, conv: Conversation, action: str, slots: dict[str, Any], answer: Answer) -> Answer:
        conv.pending = Pending(action, slots, None)
        answer.data["awaiting_confirmation"] = action
        return answer

    # --- the intents -------------------------------------------------------------------------------------------
    def _answer(
        self, conv: Conversation, intent: str, slots: dict[str, Any], text: str, u: Understanding
    ) -> tuple[str, Answer]:
        handler = getattr(self, f"_on_{intent}", None)
        if handler is None:
            return "unknown", self._clarify(conv, "", slots)
        answer: Answer = handler(conv, slots, text)
        if intent == "explain_decision" and conv.last.get("intent"):
            # An explanation keeps the topic: "why?" then "and for Rev-Acc?" still means the recommendation.
            if answer.decision_ids:
                conv.last = {**conv.last, "decision_ids": list(answer.decision_ids)}
        elif intent not in ("affirm", "deny", "unknown", "help", "greeting"):
            last: dict[str, Any] = {"intent": intent, "slots": slots}
            if answer.decision_ids:
                last["decision_ids"] = list(answer.decision_ids)
            conv.last = last
        return intent, answer

    def _on_greeting(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        conv.advance("greeted")
        if conv.portfolio_id is None:
            intro = (
                "Hello, I am the ALL-USE agent. I set up your three accounts (Gen-Acc, Rev-Acc, Com-Acc), recommend "
                "each week's trades with the engine's numbers, explain them and review your performance."
            )
            if "money" in slots:
                return self._on_setup_accounts(conv, slots, text)
            conv.advance("funding")
            return self._ask(conv, "setup_accounts", "total", slots, intro + " Shall we start?")
        stored = self.calls.portfolio(conv.portfolio_id)
        return Answer(
            f"Hello again. Portfolio {conv.portfolio_id} holds {answers.usd(stored.portfolio.equity)} in cash and "
            "LEAPS. What would you like to look at?",
            data={"portfolio_id": conv.portfolio_id, "cash": str(stored.portfolio.equity)},
            suggestions=("what should I trade this week?", "how am I doing?", "why?"),
            note="greeted",
        )

    def _on_help(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        return Answer(
            "I can: set up your accounts ('set up my accounts with $250k'), assess your risk tolerance, give a "
            "symbol's market label ('how does NVDA look?'), recommend this week's trades ('what should I trade on "
            "NVDA?'), explain a decision ('why?'), approve or decline one, review performance ('how am I doing "
            "this quarter?'), show fork status, project growth, explain reinvestment and withdrawals. Say 'in "
            "detail' for the full reasoning or 'short version' for one line.",
            suggestions=self._starters(conv),
            note="help",
        )

    def _on_explain_protocol(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        return answers.explain_protocol()

    def _on_explain_accounts(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        return answers.explain_accounts()

    def _on_explain_forking(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        return answers.explain_forking()

    def _on_explain_week_types(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        if "position" in slots:  # "week type of a short put down 3.2%": classify it
            return self._on_classify_week(conv, slots, text)
        return answers.explain_week_types()

    def _on_setup_accounts(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        total = _money(slots.get("money"))
        if total is None:
            conv.advance("funding")
            return self._ask(conv, "setup_accounts", "total", slots)
        if total <= 0:
            return self._ask(conv, "setup_accounts", "total", {}, "The amount must be more than zero.")
        conv.advance("confirming")
        answer = answers.allocation(total)
        if conv.portfolio_id is not None:
            answer.brief = f"(You already have portfolio {conv.portfolio_id}; this would be a new one.) " + answer.brief
        return self._confirm(conv, "create_portfolio", {"money": str(total)}, answer)

    def _on_risk_profile(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        level = slots.get("risk") or conv.risk
        if level not in RISK:
            return self._ask(conv, "risk_profile", "risk", slots)
        conv.risk = str(level)
        if conv.portfolio_id is not None:
            conv.advance("profiled")
        return answers.risk_profile(str(level))

    def _symbol(self, conv: Conversation, slots: dict[str, Any]) -> str | None:
        symbol = slots.get("symbol") or conv.symbol
        if symbol:
            conv.symbol = str(symbol)
        return str(symbol) if symbol else None

    def _unknown_tickers(self, slots: dict[str, Any]) -> Answer | None:
        unknown = slots.get("unknown_tickers")
        if unknown and "symbol" not in slots:
            return Answer(
                f"I do not follow {', '.join(unknown)}: the symbols I trade are {', '.join(self.calls.symbols())}.",
                data={"unknown_tickers": unknown, "symbols": list(self.calls.symbols())},
                suggestions=tuple(f"how does {s} look?" for s in self.calls.symbols()[:2]),
                note="unknown ticker",
            )
        return None

    def _on_market_view(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        refused = self._unknown_tickers(slots)
        if refused is not None:
            return refused
        symbol = self._symbol(conv, slots)
        if symbol is None:
            return self._ask(conv, "market_view", "symbol", slots)
        try:
            return answers.market_view(self.calls, symbol, self.calls.now())
        except InvalidInputError:
            return Answer(
                f"I hold no market history for {symbol} up to today, so I cannot label it.",
                data={"symbol": symbol, "history": False},
                note=f"no history {symbol}",
            )

    def _on_classify_week(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        position = slots.get("position")
        if position is None:
            return self._ask(conv, "classify_week", "position", slots)
        if "percent" not in slots:
            return self._ask(conv, "classify_week", "move", {**slots, "position": position})
        move = float(slots["percent"]) * 100.0
        return answers.classify_week(str(position), move)

    def _portfolio_needed(self, conv: Conversation) -> Answer | None:
        if conv.portfolio_id is not None:
            return None
        conv.advance("funding")
        return self._ask(conv, "setup_accounts", "total", {}, "You have no portfolio yet, so let us set one up.")

    def _account(self, conv: Conversation, slots: dict[str, Any]) -> str:
        """The account a message is about: its id, else its kind, else the one in focus, else by risk tolerance."""
        assert conv.portfolio_id is not None
        p = self.calls.portfolio(conv.portfolio_id).portfolio
        wanted = slots.get("account_id")
        if wanted:
            candidates = [a for a in p.accounts if a == wanted or a.endswith("/" + str(wanted))]
            if not candidates:
                raise InvalidInputError.of("account_id", f"portfolio {p.id} has no account {wanted}")
            conv.account_id = candidates[0]
            return candidates[0]
        kind = slots.get("account_kind")
        if kind is None and conv.account_id in p.accounts:
            return str(conv.account_id)
        kind = kind or answers.lead_account(conv.risk)
        for a in p.accounts.values():
            if a.kind == kind and not p.groups[a.group_id].merged:
                conv.account_id = a.id
                return a.id
        raise InvalidInputError.of("account_kind", f"portfolio {p.id} has no {answers.name_of(str(kind))}")

    def _on_recommend_trades(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        refused = self._unknown_tickers(slots)
        if refused is not None:
            return refused
        needed = self._portfolio_needed(conv)
        if needed is not None:
            return needed
        assert conv.portfolio_id is not None
        account_id = self._account(conv, slots)
        kind = self.calls.portfolio(conv.portfolio_id).portfolio.accounts[account_id].kind
        explicit = slots.get("symbols") or ([slots["symbol"]] if slots.get("symbol") else [])
        symbols = [str(s) for s in explicit] or list(settings.default().account(kind).symbols)
        now = self.calls.now()
        decided: list[dict[str, Any]] = []
        missing: list[str] = []
        for symbol in symbols[:MAX_SYMBOLS_PER_TURN]:
            try:
                decided.append(self.calls.decide(conv.portfolio_id, account_id, symbol, now))
            except InvalidInputError as exc:
                if exc.field is not None and exc.field.startswith("market"):
                    missing.append(symbol)
                    continue
                raise
        if explicit:
            conv.symbol = symbols[0]
        if not decided:
            return Answer(
                f"I hold no market history for {', '.join(missing)} up to {now.date().isoformat()}, so I cannot "
                "decide on it yet.",
                data={"symbols": missing, "history": False},
                note="no history",
            )
        conv.advance("trading")
        if len(decided) == 1:
            answer = answers.recommendation(decided[0])
        else:
            each = [answers.recommendation(d) for d in decided]
            answer = Answer(
                "\n".join(a.brief.split(" It needs your approval")[0] for a in each),
                "\n\n".join(a.full for a in each),
                {"decisions": [a.data["decision"] for a in each]},
                ("why?", "approve them"),
                tuple(d["decision_id"] for d in decided),
                note=f"{len(decided)} decisions for {account_id}",
            )
        if missing:
            answer.brief += f" (No market history for {', '.join(missing)}.)"
            answer.data["no_history"] = missing
        pending = [d["decision_id"] for d in decided if d["approval_status"] == "PENDING"]
        if pending:
            if len(decided) > 1:
                answer.brief += f"\n{len(pending)} of them need your approval: approve them? (yes/no)"
            return self._confirm(conv, "approve", {"decision_ids": pending}, answer)
        return answer

    def _decisions_in_focus(self, conv: Conversation) -> list[dict[str, Any]]:
        found = [self.calls.decision(str(i)) for i in conv.last.get("decision_ids") or []]
        out = [d for d in found if d is not None]
        if not out and conv.portfolio_id is not None:
            latest = self.calls.latest_decision(conv.portfolio_id)
            if latest is not None:
                out = [latest]
        return out

    def _on_explain_decision(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        refused = self._unknown_tickers(slots)
        if refused is not None:
            return refused
        named = slots.get("decision_id")
        if named:  # "explain <decision id>"
            found = self.calls.decision(str(named))
            if found is None:
                return Answer(f"I know no decision {named}.", data={"decision_id": named}, note="unknown decision")
            return answers.explanation(found, conv.detail)
        decisions = self._decisions_in_focus(conv)
        symbol = slots.get("symbol")
        if symbol:
            on_symbol = [d for d in decisions if d["symbol"] == symbol]
            if not on_symbol:
                return self._why_not(conv, str(symbol))
            decisions = on_symbol
        if not decisions:
            return Answer(
                "There is no decision to explain yet. Shall I recommend this week's trades?",
                suggestions=("what should I trade this week?",),
                note="nothing to explain",
            )
        each = [answers.explanation(d, conv.detail) for d in decisions]
        if len(each) == 1:
            return each[0]
        return Answer(
            "\n".join(a.brief for a in each),
            "\n\n".join(a.full for a in each),
            {"decisions": [a.data["decision"] for a in each]},
            each[0].suggestions,
            tuple(d["decision_id"] for d in decisions),
            note=f"explained {len(each)} decisions",
        )

    def _why_not(self, conv: Conversation, symbol: str) -> Answer:
        """Why a symbol was not traded: whether the account may trade it, and its label's entry rule."""
        kind = answers.lead_account(conv.risk)
        if conv.portfolio_id is not None and conv.account_id is not None:
            accounts = self.calls.portfolio(conv.portfolio_id).portfolio.accounts
            if conv.account_id in accounts:
                kind = accounts[conv.account_id].kind
        spec = settings.default().account(kind)
        if symbol not in spec.symbols:
            return Answer(
                f"{symbol} is not one of {spec.name}'s symbols ({', '.join(spec.symbols)}), so R04_SYMBOL_ALLOWED "
                f"would reject it there.",
                data={"symbol": symbol, "account_kind": kind, "allowed": False, "symbols": list(spec.symbols)},
                suggestions=(f"how does {symbol} look?",),
                note=f"why not {symbol}",
            )
        view = self._on_market_view(conv, {"symbol": symbol}, "")
        view.brief = f"I made no decision on {symbol} in this conversation. " + view.brief
        view.suggestions = (f"what should I trade on {symbol}?",)
        return view

    def _approval(self, conv: Conversation, action: str) -> Answer:
        pending = [d for d in self._decisions_in_focus(conv) if d["approval_status"] == "PENDING"]
        if not pending:
            return Answer(
                "There is no decision awaiting approval in this conversation.",
                suggestions=("what should I trade this week?",),
                note="nothing to approve",
            )
        verb = "Approve" if action == "approve" else "Decline"
        lines = [f"{verb} {d['decision_id']} ({d['action']} {d['symbol']} for {d['account_id']})" for d in pending]
        answer = Answer(
            "; ".join(lines) + "? (yes/no)",
            data={"decisions": [answers.decision_data(d) for d in pending]},
            suggestions=("yes", "no"),
            decision_ids=tuple(d["decision_id"] for d in pending),
            note=f"asked to {action}",
        )
        return self._confirm(conv, action, {"decision_ids": [d["decision_id"] for d in pending]}, answer)

    def _on_approve(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        return self._approval(conv, "approve")

    def _on_decline(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        return self._approval(conv, "decline")

    def _on_check_performance(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        needed = self._portfolio_needed(conv)
        if needed is not None:
            return needed
        assert conv.portfolio_id is not None
        raw = slots.get("period")
        period = (dt.date.fromisoformat(raw[0]), dt.date.fromisoformat(raw[1])) if raw else None
        return answers.performance(self.calls, conv.portfolio_id, period, conv.detail)

    def _on_fork_status(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        needed = self._portfolio_needed(conv)
        if needed is not None:
            return needed
        assert conv.portfolio_id is not None
        return answers.fork_status(self.calls.portfolio(conv.portfolio_id))

    def _on_projection(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        total = _money(slots.get("money"))
        if total is None and conv.portfolio_id is not None:
            total = self.calls.portfolio(conv.portfolio_id).portfolio.equity
        if total is None:
            return self._ask(conv, "projection", "total", slots)
        count = slots.get("years") or slots.get("count")
        years = int(count) if isinstance(count, int | float) and 1 <= int(count) <= 100 else DEFAULT_YEARS
        return answers.projection(total, years, self.calls.project(total, years))

    def _on_reinvestment(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        stored = self.calls.portfolio(conv.portfolio_id) if conv.portfolio_id is not None else None
        return answers.reinvestment(stored, self.calls.now().date())

    def _on_withdraw(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        if slots.get("account_kind") == "com" and not slots.get("account_id"):
            return answers.withdrawal_refused("a Com-Acc" if conv.portfolio_id is None else self._account(conv, slots))
        needed = self._portfolio_needed(conv)
        if needed is not None:
            return needed
        assert conv.portfolio_id is not None
        if not (slots.get("account_id") or slots.get("account_kind") or slots.get("account")):
            return self._ask(conv, "withdraw", "account", slots)
        wanted = slots.get("account")
        if wanted and not (slots.get("account_id") or slots.get("account_kind")):
            slots = {**slots, ("account_kind" if wanted in ("gen", "rev", "com") else "account_id"): wanted}
        account_id = self._account(conv, slots)
        stored = self.calls.portfolio(conv.portfolio_id)
        account = stored.portfolio.accounts[account_id]
        if not settings.default().account(account.kind).withdrawals:
            return answers.withdrawal_refused(account_id)
        amount = _money(slots.get("money"))
        if amount is None:
            return self._ask(conv, "withdraw", "amount", {**slots, "account_id": account_id})
        if amount <= 0 or amount > account.balance:
            return self._ask(
                conv,
                "withdraw",
                "amount",
                {**slots, "account_id": account_id},
                f"{answers.usd(amount)} is not possible: {account_id} holds {answers.usd(account.balance)}.",
            )
        answer = answers.withdrawal_proposal(account_id, amount, account.balance)
        return self._confirm(conv, "withdraw", {"account_id": account_id, "money": str(amount)}, answer)

    def _on_affirm(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        return Answer(
            "There is nothing waiting for a yes right now. What would you like to do?",
            suggestions=self._starters(conv),
            note="nothing pending",
        )

    def _on_deny(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        return Answer("All right.", suggestions=self._starters(conv), note="nothing pending")

    def _on_unknown(self, conv: Conversation, slots: dict[str, Any], text: str) -> Answer:
        refused = self._unknown_tickers(slots)
        if refused is not None:
            return refused
        return self._clarify(conv, "", slots)

    def _clarify(self, conv: Conversation, lead: str, slots: dict[str, Any] | None = None) -> Answer:
        """One precise clarifying question, chosen by where the conversation stands."""
        if conv.pending is not None and conv.pending.missing is not None:
            question = QUESTIONS.get((conv.pending.action, conv.pending.missing), "Could you say that again?")
        elif conv.portfolio_id is None:
            question = "Shall we set up your accounts, starting with how much you want to invest?"
            conv.pending = Pending("setup_accounts", {}, "total")
        elif conv.last.get("decision_ids"):
            question = "Do you want the reasoning behind the last recommendation, or a new one for this week?"
        else:
            question = "Do you want this week's recommendation, or a review of your performance?"
        text = (lead + " " if lead else "I am not sure what you mean. ") + question
        return Answer(text, data={"clarify": question}, suggestions=self._starters(conv), note="clarified")

    @staticmethod
    def _starters(conv: Conversation) -> tuple[str, ...]:
        if conv.portfolio_id is None:
            return ("set up my accounts", "explain the accounts", "help")
        return ("what should I trade this week?", "how am I doing?", "help")


__all__ = ["MAX_MESSAGE", "Agent", "Reply", "slots_of"]
