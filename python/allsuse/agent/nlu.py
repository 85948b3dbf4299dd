"""Understanding a user's message (issue 11, item 1): which of the agent's intents it expresses, and what it names.

A small hand-built scorer, deterministic and with nothing downloaded: the message is normalised (contractions,
"Gen-Acc", "set up" ...), split into words, each unknown word is corrected to the nearest known word within a small
edit distance (so "perfomance", "agressive", "explian" still count), and every intent sums the weights of its
features. A feature is a set of word groups that must all occur, in any order ("fork*" + "close|near|when|my").
Entities (allsuse.agent.entities) are features too ("@money", "@ticker"). The best intent wins when its score is
high enough; a message that only names values ("250k", "AAPL", "no, 300k") is `inform`; anything else `unknown`.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Collection
from dataclasses import dataclass

from allsuse.agent.entities import ENGLISH, MAX_CHARS, Entities, edit_distance, extract, words

INTENTS: tuple[str, ...] = (
    "greeting",
    "help",
    "explain_protocol",
    "explain_accounts",
    "explain_forking",
    "explain_week_types",
    "setup_accounts",
    "risk_profile",
    "market_view",
    "classify_week",
    "recommend_trades",
    "explain_decision",
    "approve",
    "decline",
    "check_performance",
    "fork_status",
    "projection",
    "reinvestment",
    "withdraw",
    "affirm",
    "deny",
    "inform",
    "unknown",
)


@dataclass(frozen=True)
class Understanding:
    """What a message means: its intent, how sure the scorer is (0..1), the entities it names, and whether it
    corrects the previous answer ("no, 300k", "actually make it 300k", "I meant Rev-Acc")."""

    intent: str
    confidence: float
    entities: Entities
    correction: bool


# --- the features ----------------------------------------------------------------------------------------------
# (intent, weight, "group group ..."): every group ("a|b|c", "@money" for an entity) must occur, in any order.
# One feature a line: intent, weight, then word groups; an indented line continues the one above ("~" joins it with
# a space, that is a new group; otherwise it continues the group). "$EXPLAIN" stands for the explaining words.
_EXPLAIN = "explain|what|how|tell|describe|overview|mean|means|meaning|understand|work|works|basics|about|define|rules"
_TABLE = """
greeting 2.6 hi|hello|hey|hiya|howdy|greetings|yo|heya|hallo|sup|hola|morning|evening|afternoon
greeting 1.0 good morning|afternoon|evening|day
greeting 2.0 nice|pleased meet
greeting 2.4 how are you
greeting 1.4 new here|user|investor|customer
greeting 2.2 thanks|thank|bye|goodbye|cheers|later|ciao
help 3.2 help|helping|helpful|assist|assistance
help 3.6 what can|could you do|offer|help
help 2.5 commands|menu|capabilities|features|functions
help 1.6 options|examples|abilities
help 1.2 what|my|which options
help 1.5 examples|example|sample|kinds questions|question|things|ask
help 2.4 lost|confused|stuck|clueless
help 2.2 what|how can|should|do ask|say|type|use
help 2.0 how use|using you|this|bot|agent|assistant|app|tool|chat
help 2.0 get started|going
help 1.5 who|what are you
explain_protocol 2.2 protocol|alluse|strategy|methodology|method|approach|framework|rulebook|philosophy
explain_protocol 1.6 protocol|alluse|strategy|methodology|method|approach|framework|system explain|what|how
    |tell|describe|overview|mean|means|meaning|understand|work|works|basics|about|define
explain_protocol 1.4 wheel|income options|idea
explain_protocol 1.0 system
explain_protocol 2.4 reducing|halted|breaker|breakers|vix|trust|compliance $EXPLAIN|state|states
explain_protocol 1.5 rules trading|protocol|system|game
explain_protocol 1.2 big picture|overall|whole|general|concept
explain_protocol 2.2 overall|general|generally|concept|principle|principles|philosophy
explain_protocol 2.0 you|protocol|system|engine|alluse decide|choose|pick|select|work|works how
explain_accounts 1.8 account|accounts|@account explain|what|how|tell|describe|overview|mean|means|meaning
    |understand|work|works|basics|about|define|rules
explain_accounts 2.8 three|3|different|each|types|kinds account|accounts
explain_accounts 2.5 difference|differ|differences|different|compare|versus|vs between|@account
explain_accounts 1.5 split|allocation|allocated|divided|buffer|target|targets|percent|percentage
explain_accounts 1.2 @account
explain_accounts 1.0 accounts|account
explain_accounts 2.4 target|targets|buffer|buffers|cap|caps|allocation|allocations
explain_accounts 2.5 40 30 account|accounts|split|allocation|why|how
explain_accounts 1.4 purpose|role|job|point @account|account|accounts
explain_forking 2.4 fork|forks|forking|forked
explain_forking 1.5 surplus what|happen|happens|when|mean|means
explain_forking 1.5 fork|forks|forking|forked|merge|merging|merges explain|what|how|tell|describe|overview
    |mean|means|meaning|understand|work|works|basics|about|define|rules|happen|happens|trigger|triggers
    |threshold|does|why
explain_forking 2.6 merge|merging|merges|merged
explain_forking 1.2 surplus|split|splits|splitting|spawn|spawns|child|seeds
fork_status 2.2 fork|forks|forking|forked|merge|merging|merged status|close|closer|near|far|yet|next|soon
    |until|ready|progress|my|am|did|any|left|need|away|have|has|there|many|much|current|currently|when|will
    |we|our|group|groups
fork_status 1.6 fork|forks|forking|forked|merge|merging my|am|i|we|our|@account_id|did|have|has|will|yet|any
    |many
fork_status 1.0 fork|forks|forking|forked
fork_status 1.5 forks|forked
fork_status 1.5 surplus my|current|now|have|left|much|how
fork_status 2.0 status|close|near|far|away|yet|progress|soon fork|forks|forking|forked|merge|merging
explain_week_types 3.0 weektype|weektypes
explain_week_types 1.8 weektype|weektypes|@week explain|what|how|tell|describe|overview|mean|means|meaning
    |understand|work|works|basics|about|define|rules|list|all|stand|different|types|kinds|each
explain_week_types 2.4 @week mean|means|meaning|stand|stands|explain|what|define|is
explain_week_types 2.2 kinds|types|categories|sorts week|weeks
classify_week 2.8 classify|classification|categorize|categorise|categorization
classify_week 1.6 weektype|week|weeks this|current|now|my|@ticker|we|which|today|was|having|position|move
classify_week 2.6 what|which kind|type|sort|weektype week|is|this|was|having|we
classify_week 3.2 @position @percent
classify_week 2.0 @position
classify_week 1.5 week having|had|going|been|doing
classify_week 1.5 @percent moved|move|dropped|down|up|fell|rose
market_view 2.5 label|labels|labeled|labelled
market_view 1.6 label|labels @ticker|market|symbol|this|week|today
market_view 2.0 @label @ticker|market|is|looking|week
market_view 2.6 market view|look|looks|looking|outlook|condition|conditions|sentiment|analysis|regime|read
    |mood|doing|like|today|now
market_view 2.2 bullish|bearish|trend|trending|momentum|volatility|volatile|rsi|regime|choppy|sideways
market_view 2.4 view|outlook|think|take|opinion|analysis|analyze|analyse|read|feel|sentiment @ticker
market_view 1.5 how look|looks|looking|doing @ticker
market_view 1.4 market|markets
recommend_trades 3.4 recommend|recommends|recommendation|recommendations|recommended|suggest|suggestion
    |suggestions|ideas|picks
recommend_trades 2.6 trade|trades|trading what|should|any|this|make|place|open|do|today|next|week
recommend_trades 2.6 sell|write|open|enter|selling|writing|pick|choose|find|get
    ~put|puts|call|calls|options|@ticker|position|positions
recommend_trades 2.0 should i|we buy|sell|trade|do|enter|open
recommend_trades 2.2 decide|decision|decisions this|week|today|run|make|new|for|@ticker
recommend_trades 1.6 strike|strikes|contracts|premium which|what|should|many|pick|choose|take
recommend_trades 1.2 @ticker
recommend_trades 1.5 what|which do|trade|play|buy|sell
explain_decision 3.4 why
explain_decision 1.0 why not
explain_decision 3.0 how come
explain_decision 2.6 explain|reason|reasons|reasoning|rationale|justify|justification|logic|basis decision
    |trade|that|this|it|recommendation|strike|choice|pick|call|number|numbers|contracts|delta|size|sizing
explain_decision 3.6 @decision
explain_decision 2.6 es|shortfall|var before|after|budget|impact|change|changed
explain_decision 2.6 reasoning|rationale|justification
explain_decision -1.5 why accounts|protocol|strategy|forks|forking|merge|merging|reinvest|reinvestment|weektype
explain_decision 1.6 why|explain @ticker|@unknown|@delta|@count
explain_decision 2.0 rule|rules|compliance cited|applied|used|fired|triggered|failed|passed|checked|check
    |broke|broken
approve 4.2 approve|approved|approving|approval|greenlight|authorize|authorise|authorized|ratify
approve 3.0 execute|place|submit|send|accept|take execute|trade|order|decision|it|recommendation|that|this
approve 2.0 sign off
approve -5.0 not|never|dont approve|execute|place|submit|accept|take|approved
approve 1.2 trade|order|decision @ticker
decline 4.2 decline|declined|declining|reject|rejected|rejecting|veto|refuse|refused
decline 5.0 not|never|dont approve|execute|place|take|trade|accept|submit
decline -3.0 why|was|were|been|got rejected|declined|refused
decline 2.6 skip|pass|ignore trade|it|this|one|that|order|decision|recommendation|@ticker
decline 1.4 trade|order|decision|recommendation
affirm 2.2 yes|yeah|yep|yup|sure|ok|okay|confirm|confirmed|correct|absolutely|definitely|affirmative|y|ya
    |yea|yess|alright|certainly|agreed|agree
affirm 1.0 right|fine|sounds|perfect|great|good|please|thanks
affirm 2.8 do it|that
affirm 2.8 go ahead|for
affirm 2.2 let do|go|proceed
affirm 2.8 proceed|continue
deny 2.6 no|nope|nah|negative|n
deny 3.2 cancel|abort|stop|nevermind
deny 2.6 never mind
deny 2.4 forget it|that
deny 2.4 not now|yet|really
deny 2.4 changed mind
deny 1.6 do not|dont
check_performance 2.8 performance|perform|performing|performed|pnl|profit|profits|sharpe|sortino|drawdown
    |drawdowns|metrics|stats|statistics|winrate|cagr|returns|return|gains|losses|earnings
check_performance 2.2 how am|are|is|did|have|has i|we|doing|portfolio|account|accounts|@account|done|did
check_performance 1.4 @period
check_performance 2.4 @account|portfolio|account|accounts|we|i @percent
check_performance 2.0 down|lost|drop|dropped|fell|losing|underwater @percent|drawdown|protected|protection
check_performance 1.6 report|review|summary|results|history|track|record
check_performance 2.8 how much made|make|earn|earned|lost|lose|gained|up|down
check_performance 2.4 protection level|levels|status|mode
check_performance 2.0 balance|balances|equity|worth|value|status
check_performance 1.4 doing|done|going
check_performance 1.4 risk management|manage|managing|managed|exposure|reduced|reducing
projection 3.2 project|projection|projections|projected|forecast|forecasts|forecasting|predict|prediction
    |predictions|estimate|simulate|simulation
projection 2.4 grow|grows|growth|compound|compounded|future|expect|expected|expectation|expectations
    |potential|long
projection 2.4 @years
projection 1.6 will|would|could end|have|be|become|worth|grow|turn|make
projection 1.8 retire|retirement
projection 1.4 next|ahead|future|coming year|years|decade
reinvestment 4.4 reinvest|reinvestment|reinvestments|reinvested|reinvesting|reinvests
reinvestment 2.8 leaps|leap
reinvestment 1.8 quarterly|quarter gains|profits|money|happen|happens|does|what
reinvestment 3.0 plow|plowed|plough|ploughed|put|roll|rolled|recycle|recycled|go|goes|went back|into|in|again
    ~gains|profits|earnings|premium|income|returns
withdraw 5.0 withdraw|withdrawal|withdrawals|withdrawing|withdrew|withdrawn
withdraw 3.4 take|pull|get|pay|move|transfer out
withdraw 3.4 cashout
withdraw 1.6 take|get|pull money|funds|profits|cash|income
withdraw 2.4 payout|payouts|cashout|disburse|disbursement|distribution|distributions
withdraw 1.2 @money take|get|need|want|send|transfer|move
withdraw 1.6 access|spend|use money|funds|cash
withdraw 2.0 need|want|take @money from
withdraw 1.5 rent|bills|expenses|spend|spending|living|emergency
setup_accounts 3.0 setup|onboard|onboarding
setup_accounts 1.6 setup account|accounts|portfolio|@account
setup_accounts 3.0 open|create|start|begin|fund|register|make|build|new account|accounts|portfolio
    |portfolios
setup_accounts 2.8 @money start|starting|started|invest|investing|deposit|put|begin|beginning|allocate|split
    |with|got|have|fund|capital|initial
setup_accounts 3.0 allocate|allocation|allocating|divide|distribute @money
setup_accounts 2.2 new portfolio|account|accounts
setup_accounts 1.6 sign up|register|join
setup_accounts 1.6 invest|investing|deposit
setup_accounts 1.0 want|like|would|ready start|begin|open|invest|create
risk_profile 3.2 risk tolerance|appetite|profile|level|comfort|assess|assessment|taker|averse|preference
    |preferences|capacity|questionnaire|quiz
risk_profile 2.6 @risk am|me|my|investor|prefer|be|want|set|like|rather|style|person|type|guy|go|make|keep
    |lean
risk_profile 2.6 how much risk
risk_profile 2.0 questionnaire|quiz|tolerance|appetite
risk_profile 1.5 stomach|sleep|nervous|scared|afraid|worried|comfortable|handle|lose
risk_profile 1.4 @risk
risk_profile 1.5 risk|risks
"""


def _parse(table: str) -> tuple[tuple[str, float, str], ...]:
    """The feature table as (intent, weight, groups) rows."""
    rows: list[str] = []
    for line in table.splitlines():
        if not line.strip():
            continue
        if line.startswith(" "):
            part = line.strip()
            rows[-1] += " " + part[1:] if part.startswith("~") else part
        else:
            rows.append(line)
    out = []
    for row in rows:
        intent, weight, spec = row.split(" ", 2)
        spec = spec.replace("$EXPLAIN_NR", _EXPLAIN.replace("|rules", "")).replace("$EXPLAIN", _EXPLAIN)
        out.append((intent, float(weight), spec))
    return tuple(out)


_FEATURES = _parse(_TABLE)

_CONTRACTIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        ("[\u2019\u2018`\u00b4]", "'"),
        (r"\bwon'?t\b", "will not"),
        (r"\bcan'?t\b", "can not"),
        (r"\bcannot\b", "can not"),
        (r"\bdon'?t\b", "do not"),
        (r"\bdoesn'?t\b", "does not"),
        (r"\bdidn'?t\b", "did not"),
        (r"\bshouldn'?t\b", "should not"),
        (r"\bi'?m\b", "i am"),
        (r"\b(\w+)'s\b", r"\1 is"),
        (r"\b(\w+)'re\b", r"\1 are"),
        (r"\b(\w+)'ve\b", r"\1 have"),
        (r"\b(\w+)'ll\b", r"\1 will"),
        (r"\b(\w+)'d\b", r"\1 would"),
        (r"\ball[\s-]*use\b", " alluse "),
        (r"\bweek[\s-]*types?\b", " weektype "),
        (r"\bset[\s-]*up\b", " setup "),
        (r"\bsign[\s-]*up\b", " sign up "),
        (r"\bp\s*&\s*l\b|\bp\s*/\s*l\b|\bpnl\b", " pnl "),
        (r"\bwin[\s-]*rate\b", " winrate "),
        (r"\bcash[\s-]*out\b", " cashout "),
        (r"\bnever[\s-]*mind\b", " nevermind "),
        (r"\bgreen[\s-]*light\b", " greenlight "),
        (r"\bwhy\s*\?+", " why "),
        (r"\b(?:gen|rev|com)[\s_-]*acc(?:t|ount)?s?\b", " account "),
        (r"\b(?:generation|generating|revenue|compounding|compound)\s+acc(?:t|ount)?s?\b", " account "),
    )
)
_WORD = re.compile(r"\d[\d,.]*[a-z]*|[a-z]+")
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|bypass|override)\s+(?:all\s+|any\s+|your\s+|the\s+|previous\s+|prior\s+|above\s+)*"
    r"(?:rules|instructions|guidelines|prompt|restrictions|policies|programming|constraints)\b"
    r"|\b(?:api|secret|private|access|auth)[\s_-]*(?:keys?|tokens?)\b|\bsystem\s+prompt\b|\bpasswords?\b"
    r"|\bjailbreak|\bdeveloper\s+mode\b|\bpretend\s+(?:you\s+are|to\s+be)\b|\byou\s+are\s+now\b|\bsudo\b"
    r"|\b(?:print|reveal|show|dump|leak|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:config|configuration|credentials|env)",
    re.IGNORECASE,
)
_CORRECTION = re.compile(
    r"^\s*(?:no+|nope|nah|not\s+\S+\s*,|actually|i\s+meant|i\s+mean|sorry|oops|wait|correction|rather|instead|"
    r"scratch\s+that|make\s+(?:it|that)|change\s+(?:it|that)\s+to)\b"
    r"|\b(?:i\s+meant|make\s+it|make\s+that|change\s+(?:it|that)\s+to|instead|actually)\b",
    re.IGNORECASE,
)


def _feature_vocabulary() -> frozenset[str]:
    words: set[str] = set()
    for _, _, spec in _FEATURES:
        for group in spec.split():
            for item in group.split("|"):
                if not item.startswith("@"):
                    words.add(item.rstrip("*"))
    return frozenset(w for w in words if w.isalpha())


_KEYWORDS = _feature_vocabulary()
VOCABULARY: frozenset[str] = (
    _KEYWORDS
    | ENGLISH
    | frozenset(
        """
    gen rev com generation revenue compounding compound delta deltas strike strikes contracts contract premium expiry
    conservative moderate aggressive brief detail detailed short version january february march april may june july
    august september october november december jan feb mar apr jun jul aug sep sept oct nov dec ytd qtd mtd days
    thousand million billion grand k mil green red chop choppy sideways put call covered secured assigned assignment
    worthless idle recovery appreciation roll rolled rolling
    """
    )
)


def _deletes(word: str, depth: int) -> set[str]:
    """`word` and every string made from it by deleting up to `depth` letters."""
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


# Symmetric-delete index of the known words: a word and a typo within distance d share a string made by deleting at
# most d letters from each, so a typo's candidates are looked up instead of compared with every word.
_BY_DELETE: dict[str, tuple[str, ...]] = {}
for _w in sorted(_KEYWORDS | ENGLISH):
    for _d in _deletes(_w, 2 if len(_w) >= 6 else 1):
        _BY_DELETE[_d] = (*_BY_DELETE.get(_d, ()), _w)


# Chat spellings and misspellings too short for the edit distance.
ALIASES = {
    "halp": "help",
    "hlp": "help",
    "helo": "hello",
    "hallo": "hello",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "ty": "thanks",
    "u": "you",
    "ur": "your",
    "r": "are",
    "wat": "what",
    "wut": "what",
    "whats": "what",
    "hows": "how",
    "lets": "let",
    "im": "i",
    "dont": "not",
    "cant": "not",
    "wont": "not",
    "didnt": "not",
    "doesnt": "not",
    "shouldnt": "not",
    "yea": "yes",
    "ya": "yes",
    "yeh": "yes",
    "ok": "okay",
    "kk": "okay",
    "aprove": "approve",
    "frok": "fork",
}


@functools.lru_cache(maxsize=8192)
def _correct(token: str) -> str:
    """The known word `token` is a typo of (Damerau distance 1 for 5-7 letters, 2 from 8 letters, only a swap of
    two letters for 4; the first or second letter kept), or `token` itself."""
    if token in ALIASES:
        return ALIASES[token]
    if token in VOCABULARY or not token.isalpha() or len(token) < 4 or len(token) > 20:
        return token
    limit = 1 if len(token) < 8 else 2
    best: tuple[int, str] | None = None
    candidates = {w for d in _deletes(token, limit) for w in _BY_DELETE.get(d, ())}
    for word in sorted(candidates):
        if abs(len(word) - len(token)) > limit:
            continue
        # a typo keeps the first letter or the second (a swap of the first two letters keeps neither: "rfork")
        if word[0] != token[0] and word[1] != token[1] and word[:2] != token[1::-1]:
            continue
        if len(token) == 4 and (len(word) != 4 or sorted(word) != sorted(token)):
            continue
        d = edit_distance(token, word, limit)
        if d <= limit and (best is None or (d, word) < best):
            best = (d, word)
    return best[1] if best else token


def _normalise(text: str) -> str:
    low = text.lower()
    for pattern, replacement in _CONTRACTIONS:
        low = pattern.sub(replacement, low)
    return low


def _entity_features(e: Entities) -> set[str]:
    f: set[str] = set()
    if e.money is not None:
        f.add("@money")
    if e.percent is not None:
        f.add("@percent")
    if e.tickers:
        f.add("@ticker")
    if e.unknown_tickers:
        f.add("@unknown")
    if e.account_kind is not None:
        f.add("@account")
    if e.account_id is not None:
        f.add("@account_id")
    if e.week_label is not None:
        f.add("@label" if e.week_label in ("green", "red", "chop") else "@week")
    if e.delta is not None:
        f.add("@delta")
    if e.period is not None:
        f.add("@period")
    if e.risk is not None:
        f.add("@risk")
    if e.detail is not None:
        f.add("@detail")
    if e.count is not None:
        f.add("@count")
    if e.years is not None:
        f.add("@years")
    if e.decision_id is not None:
        f.add("@decision")
    if e.position is not None:
        f.add("@position")
    return f


_COMPILED: tuple[tuple[str, float, tuple[frozenset[str], ...]], ...] = tuple(
    (intent, weight, tuple(frozenset(g.split("|")) for g in spec.split())) for intent, weight, spec in _FEATURES
)
# Each feature indexed by the words of its first group: only features one of the message's words starts are checked.
_BY_FIRST_WORD: dict[str, tuple[int, ...]] = {}
for _i, _feature in enumerate(_COMPILED):
    for _word in _feature[2][0]:
        _BY_FIRST_WORD[_word] = (*_BY_FIRST_WORD.get(_word, ()), _i)
# Value-bearing entities: a message made of these and little else answers a question (`inform`).
_SLOT_FEATURES = frozenset(
    {
        "@money",
        "@ticker",
        "@unknown",
        "@account",
        "@account_id",
        "@risk",
        "@percent",
        "@count",
        "@delta",
        "@label",
        "@week",
        "@period",
        "@years",
        "@detail",
        "@position",
    }
)
_FILLER = words(
    "i a an the my for and or of to it is am be with about what make let us go please just maybe guess think say "
    "so um uh hmm ok okay well then how on in at"
)
MAX_TOKENS = 200
# A message that asks something is not a bare slot answer, unless it follows up ("what about NVDA?", "and Rev-Acc?").
_ASK = words("what how why when which who where is are does do can could should will would explain tell describe show")
_FOLLOW_UP = re.compile(r"^\W*(?:and|or|also|plus|same|what\s+about|how\s+about|then)\b", re.IGNORECASE)


def scores(text: str, *, symbols: Collection[str], today: dt.date) -> tuple[dict[str, float], Entities, list[str]]:
    """Every intent's score for `text`, the entities and the normalised words (for tests and tuning)."""
    entities = extract(text, symbols=symbols, today=today, vocabulary=VOCABULARY)
    words = [_correct(w) for w in _WORD.findall(_normalise(text))[:MAX_TOKENS]]
    present = set(words) | _entity_features(entities)
    total: dict[str, float] = {}
    candidates: set[int] = set()
    for word in present:
        candidates.update(_BY_FIRST_WORD.get(word, ()))
    for index in sorted(candidates):
        intent, weight, groups = _COMPILED[index]
        if all(not g.isdisjoint(present) for g in groups[1:]):
            total[intent] = total.get(intent, 0.0) + weight
    return total, entities, words


def understand(text: str, *, symbols: Collection[str], today: dt.date) -> Understanding:
    """The intent, confidence, entities and correction flag of one user message. Pure and deterministic; never raises
    on any str (empty, 64 KB, emoji, other scripts); `symbols` are the configured symbols, `today` anchors periods."""
    if not isinstance(text, str):
        text = ""
    text = text[:MAX_CHARS]
    total, entities, words = scores(text, symbols=symbols, today=today)
    correction = bool(_CORRECTION.search(text)) and not entities.is_empty()
    if not words and entities.is_empty():
        return Understanding("unknown", 1.0 if not text.strip() else 0.9, entities, False)
    if _INJECTION.search(text):
        return Understanding("unknown", 0.95, entities, False)
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], INTENTS.index(kv[0])))
    top, top_score = ranked[0] if ranked else ("unknown", 0.0)
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    slots = _entity_features(entities) & _SLOT_FEATURES
    content = [w for w in words if w not in _FILLER and not w[0].isdigit()]
    # A bare slot answer ("250k", "AAPL", "conservative", "no, 300k", "and for Rev-Acc?").
    asks = ("?" in text or (bool(words) and words[0] in _ASK)) and not _FOLLOW_UP.match(text)
    bare = correction or top in ("deny", "affirm") or top_score < 2.5 or (len(content) <= 1 and top_score < 3.0)
    if slots and bare and not (asks and top_score >= 2.0 and not correction):
        return Understanding(
            "inform", _confidence(3.0, top_score if top not in ("deny", "affirm") else 0.0), entities, correction
        )
    if top_score < 2.0:
        return Understanding("unknown", round(0.5 + 0.2 * (1.0 - top_score / 2.0), 3), entities, False)
    return Understanding(top, _confidence(top_score, second), entities, correction)


def _confidence(top: float, second: float) -> float:
    """0..1: high when the best score is high and well ahead of the runner-up."""
    strength = 1.0 - math.exp(-top / 3.0)
    margin = (top - second) / top if top > 0 else 0.0
    return round(min(0.99, strength * (0.5 + 0.5 * margin)), 3)
