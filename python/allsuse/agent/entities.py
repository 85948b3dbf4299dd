"""Entity extraction for the ALL-USE agent: the numbers, symbols, accounts, week labels, deltas and periods a user
mentions (issue 11, item 1). Pure Python and `re`; deterministic; never raises on any str.

Each extractor consumes the spans it recognises (a delta's numbers are not also money, a period's "30 days" is not a
count), so the order of extraction below is part of the meaning.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

# Text past this many characters is not read: a chat message is understood from its first 1,000 characters (a 64 KB
# paste costs what 1,000 characters cost).
MAX_CHARS = 1000

ACCOUNT_KINDS = ("gen", "rev", "com")
RISK_LEVELS = ("conservative", "moderate", "aggressive")
DETAIL_LEVELS = ("brief", "full")
POSITIONS = ("CASH", "SHORT_PUT", "LONG_STOCK", "SHORT_CALL")
# PROTOCOL section 4 week type codes and section 2 market labels.
WEEK_CODES = ("W-IDL", "P-EW", "P-AWL", "P-RO", "P-AOL", "P-DD", "C-WAP+", "C-WAP", "C-PNO", "C-RO", "C-REC")
MARKET_LABELS = ("green", "red", "chop")


@dataclass(frozen=True)
class Entities:
    """What a message names. Fields stay None (or empty) when the message does not mention them."""

    money: float | None = None  # dollars: "$250k", "1.2 million", "100,000", "250 grand"
    percent: float | None = None  # a fraction: "5%" -> 0.05 ("down 3%" -> -0.03)
    tickers: tuple[str, ...] = ()  # upper-case, configured symbols only, in order of mention
    unknown_tickers: tuple[str, ...] = ()  # ticker-like words not configured ("why not ZZZZ?")
    account_kind: str | None = None  # "gen" | "rev" | "com"
    account_id: str | None = None  # an explicit account id like "p1-gen" or "pf-1/gen-1"
    week_label: str | None = None  # a section 4 week type code ("P-EW"), or a market label green|red|chop
    delta: tuple[float, float] | None = None  # "30-40 delta" -> (0.30, 0.40); "25 delta" -> (0.25, 0.25)
    period: tuple[dt.date, dt.date] | None = None  # "last quarter", "since March", "this year", "last 30 days"
    risk: str | None = None  # "conservative" | "moderate" | "aggressive"
    detail: str | None = None  # "brief" | "full"
    count: int | None = None  # a bare whole number of things ("3 contracts")
    # Beyond the contract's fields:
    years: int | None = None  # a projection horizon ("over 5 years", "in a decade")
    decision_id: str | None = None  # a decision id (32 hex digits)
    position: str | None = None  # a section 4 position: CASH | SHORT_PUT | LONG_STOCK | SHORT_CALL

    def is_empty(self) -> bool:
        """True when the message names nothing at all."""
        return self == EMPTY


EMPTY = Entities()


def configured_symbols(config: object | None = None) -> frozenset[str]:
    """Every symbol the protocol configuration lets an account trade (the union over Gen-Acc, Rev-Acc, Com-Acc).

    `config` is a `allsuse.protocol.settings.ProtocolConfig`; None reads the default configuration."""
    from allsuse.protocol import settings  # imported here: understanding itself needs no engine

    cfg = config if isinstance(config, settings.ProtocolConfig) else settings.default()
    return frozenset(s for kind in ACCOUNT_KINDS for s in cfg.account(kind).symbols)


# Ordinary English words: never a ticker, even in capitals (and never corrected into a keyword by the scorer).


def words(text: str) -> frozenset[str]:
    """The whitespace-separated words of `text`."""
    return frozenset(text.split())


ENGLISH = words(
    """
    a about above after again against all almost also am an and another any anything are around as ask at away back
    be because been before being below best better between big both but buy by call came can come could day days did
    do does doing done down during each either else enough even ever every far few find first for from full get give
    go going gone good got great had has have having he her here hers him his how however i if in into is it its just
    keep kind know last least less let like likely little long look lot made make many may me might mine more most much
    must my need never new next no nor not now of off often old on once one only or other our out over own part people
    per please put quite rather really right said same say see seem sell send set she should show since so some still
    such sure take tell than thank thanks that the their them then there these they thing things think this those
    though through time to today too took under until up upon us use used very want was way we week weeks well went
    were what when where whether which while who whom why will with within without would year years yes yet you your
    yours month months quarter day week weekend morning tomorrow yesterday money dollars bucks cash stock stocks share
    shares put puts call calls option options price prices market markets account accounts portfolio trade trades
    number numbers percent rate return returns loss gain level levels plan plans goal goals start started order
    weather joke jokes song poem pizza movie movies football game games dog cat cats news recipe capital city france
    paris translate translation code write program python email lunch dinner food car cars house love life world
    hello bye goodbye thanks please okay sorry wait actually meant mean instead change correct
    """
)


# --- numbers ------------------------------------------------------------------------------------------------------

NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "a": 1,
    "an": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "fifty": 50,
    "hundred": 100,
    "half": 0.5,
    "quarter": 0.25,
}
_NUMWORD = r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|fifty)"
_NUMBER_WORD = re.compile(
    r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"thirty|fifty|hundred|half|quarter|a|an|million|thousand|grand|billion|decade)\b"
)
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"

MULTIPLIERS = {
    "k": 1e3,
    "K": 1e3,
    "thousand": 1e3,
    "grand": 1e3,
    "g": 1e3,
    "m": 1e6,
    "M": 1e6,
    "mm": 1e6,
    "MM": 1e6,
    "mil": 1e6,
    "mill": 1e6,
    "million": 1e6,
    "millions": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
}
_MULT = r"k|thousand|grand|mm|m|mil|mill|millions|million|bn|b|billion|g"

MONEY_SCALED = re.compile(
    rf"(?<![\w.])(?P<neg>-)?(?P<cur>\$|usd\s*)?\s?(?P<num>{_NUM}|{_NUMWORD}|half\s+a|a\s+quarter|a)\s*(?:-\s*)?"
    rf"(?P<mult>{_MULT})\b(?P<tail>\s*(?:dollars|bucks|usd))?",
    re.IGNORECASE,
)
MONEY_CURRENCY = re.compile(rf"(?<![\w.])\$\s?(?P<num>{_NUM})(?![\w%])", re.IGNORECASE)
MONEY_SUFFIX = re.compile(rf"(?<![\w.$])(?P<num>{_NUM})\s*(?:dollars|bucks|usd)\b", re.IGNORECASE)
BARE_NUMBER = re.compile(rf"(?<![\w.$-])(?P<num>{_NUM})(?![\w%$.]|\.\d)")
PERCENT = re.compile(
    rf"(?P<sign>[-+\u2212])?(?P<num>{_NUM})\s*(?:%|percent\b|per\s*cent\b|pct\b)"
    rf"|(?P<word>{_NUMWORD})\s+(?:percent|per\s*cent)\b",
    re.IGNORECASE,
)
DOWN_WORDS = re.compile(
    r"\b(?:down|fell|fall|falls|dropped|drop|drops|lost|lose|loss|declined|decline|sank)\s*(?:by\s*)?$"
)
MONEY_CONTEXT = re.compile(
    r"\b(?:withdraw\w*|deposit\w*|invest\w*|put\s+in|start(?:ing)?\s+with|begin\s+with|take\s+out|pull\s+out|"
    r"capital|fund\w*|allocate|with|of|have|got|add|total|balance)\s*$",
    re.IGNORECASE,
)
COUNT_NOUNS = re.compile(
    r"\s*(?:contracts?|positions?|trades?|puts?|calls?|lots?|shares?|symbols?|tickers?|stocks?|options?|accounts?|"
    r"ideas?|picks?|decisions?|orders?|recommendations?)\b",
    re.IGNORECASE,
)
_YEARS_AFTER = re.compile(r"\s*(?:-\s*)?(?:years?|yrs?|y)\b", re.IGNORECASE)


def _number(text: str) -> float | None:
    """A numeral ("1,200.5", "three", "half a") as a float; None when it is not one."""
    t = text.strip().lower().replace(",", "")
    t = re.sub(r"\s+", " ", t)
    if t in ("half a", "half"):
        return 0.5
    if t in ("a quarter", "quarter"):
        return 0.25
    if t in NUMBER_WORDS:
        return float(NUMBER_WORDS[t])
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


class _Text:
    """The message with the spans already taken by an extractor blanked out, so no number is read twice."""

    def __init__(self, text: str) -> None:
        self.raw = text
        self.work = text

    def take(self, start: int, end: int) -> None:
        self.work = self.work[:start] + " " * (end - start) + self.work[end:]


# --- money and percentages ----------------------------------------------------------------------------------------


def _extract_money(t: _Text) -> float | None:
    """The first amount the message names (by position), in any written form but a bare number."""
    found: list[tuple[int, float]] = []
    for m in MONEY_SCALED.finditer(t.work):
        mult_word = m.group("mult")
        # "m" alone after a bare number is money only with a currency sign or when written "2M"/"2m" tight.
        loose = " " in m.group(0).strip() or mult_word.lower() == "g"
        if mult_word.lower() in ("m", "b", "g") and not m.group("cur") and loose:
            continue
        word_scale = mult_word.lower() in ("million", "thousand", "grand", "billion", "mil", "mill")
        if m.group("num").lower() == "a" and not m.group("cur") and not word_scale:
            continue
        value = _number(m.group("num"))
        if value is None:
            continue
        amount = value * MULTIPLIERS.get(mult_word, MULTIPLIERS.get(mult_word.lower(), 1.0))
        t.take(m.start(), m.end())
        found.append((m.start(), round(amount, 2)))
    for pattern in (MONEY_CURRENCY, MONEY_SUFFIX):
        for m in pattern.finditer(t.work):
            value = _number(m.group("num"))
            if value is None:
                continue
            t.take(m.start(), m.end())
            found.append((m.start(), round(value, 2)))
    return min(found)[1] if found else None


def _extract_percent(t: _Text) -> float | None:
    found: float | None = None
    for m in PERCENT.finditer(t.work):
        value = _number(m.group("num") or m.group("word") or "")
        if value is None:
            continue
        sign = -1.0 if m.group("sign") in ("-", "\u2212") or DOWN_WORDS.search(t.work[: m.start()].lower()) else 1.0
        t.take(m.start(), m.end())
        if found is None:
            found = sign * value / 100.0
    return found


def _bare_money(t: _Text) -> float | None:
    """A plain number that reads as money: grouped ("100,000"), 1,000 or more and not a year, or after a money
    word ("withdraw 500")."""
    for m in BARE_NUMBER.finditer(t.work):
        raw = m.group("num")
        value = _number(raw)
        if value is None:
            continue
        before = t.work[: m.start()]
        after = t.work[m.end() :]
        if COUNT_NOUNS.match(after) or _YEARS_AFTER.match(after):
            continue
        grouped = "," in raw
        money_word = bool(MONEY_CONTEXT.search(before.lower()))
        # "how did 2024 go" names a year; "withdraw 2000" and "I have 2000" name dollars
        year_like = raw.isdigit() and len(raw) == 4 and 1900 <= value <= 2100 and not money_word
        if grouped or (value >= 1000 and not year_like):
            t.take(m.start(), m.end())
            return round(value, 2)
        if (
            money_word
            and value >= 1
            and not year_like
            and re.search(
                r"withdraw|deposit|invest|put\s+in|start|begin|take\s+out|pull\s+out|capital|fund|allocate",
                before.lower()[-40:],
            )
        ):
            t.take(m.start(), m.end())
            return round(value, 2)
    return None


# --- deltas -------------------------------------------------------------------------------------------------------

_DNUM = r"0?\.\d+|\d{1,2}(?:\.\d+)?"
DELTA_PATTERNS = (
    re.compile(
        rf"(?:between\s+)?(?P<a>{_DNUM})\s*(?:-|\u2013|to|and|/)\s*(?P<b>{_DNUM})\s*(?:-\s*)?(?:delta|Δ|d\b)", re.I
    ),
    re.compile(
        rf"(?:delta|Δ)s?\s*(?:band\s*)?(?:of|at|=|:|between|around|near)?\s*(?P<a>{_DNUM})"
        rf"(?:\s*(?:-|\u2013|to|and|/)\s*(?P<b>{_DNUM}))?(?![\d%])",
        re.I,
    ),
    re.compile(rf"(?P<a>{_DNUM})\s*(?:-\s*)?(?:delta|Δ)", re.I),
)


def _delta_value(raw: str) -> float | None:
    v = _number(raw)
    if v is None:
        return None
    if v > 1:
        v = v / 100.0
    return round(v, 4) if 0 < v <= 1 else None


def _extract_delta(t: _Text) -> tuple[float, float] | None:
    for pattern in DELTA_PATTERNS:
        m = pattern.search(t.work)
        if m is None:
            continue
        a = _delta_value(m.group("a"))
        b = _delta_value(m.group("b")) if m.groupdict().get("b") else a
        if a is None or b is None:
            continue
        t.take(m.start(), m.end())
        return (min(a, b), max(a, b))
    return None


# --- periods ------------------------------------------------------------------------------------------------------

MONTHS = {
    "jan": 1,
    "january": 1,
    "feb": 2,
    "february": 2,
    "febuary": 2,
    "mar": 3,
    "march": 3,
    "apr": 4,
    "april": 4,
    "may": 5,
    "jun": 6,
    "june": 6,
    "jul": 7,
    "july": 7,
    "aug": 8,
    "august": 8,
    "sep": 9,
    "sept": 9,
    "september": 9,
    "oct": 10,
    "october": 10,
    "nov": 11,
    "november": 11,
    "dec": 12,
    "december": 12,
}
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|febuary|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_UNIT = r"(?P<unit>days?|d|weeks?|wks?|months?|mos?|quarters?|years?|yrs?)"
_COUNTWORD = r"(?P<n>\d{1,4}|" + _NUMWORD + r"|a|an)"


_PERIOD_HINT = re.compile(
    rf"since|last|past|prev|prior|this|current|to[\s-]+date|ytd|qtd|mtd|wtd|ttm|ltm|ago|yesterday|today|q[1-4]|"
    rf"from|between|(?:19|20)\d\d|{_MONTH}"
)


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def _quarter_start(d: dt.date) -> dt.date:
    return dt.date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def _shift_months(d: dt.date, months: int) -> dt.date:
    index = d.year * 12 + d.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _back(today: dt.date, n: int, unit: str) -> dt.date:
    u = unit.lower()
    if u.startswith("d"):
        return today - dt.timedelta(days=n)
    if u.startswith("w"):
        return today - dt.timedelta(weeks=n)
    if u.startswith("q"):
        return _shift_months(today, 3 * n)
    if u.startswith("y"):
        return _shift_months(today, 12 * n)
    return _shift_months(today, n)


def _year_of(raw: str | None, month: int, today: dt.date) -> int:
    """The explicit year, else the latest year in which that month has begun by today."""
    if raw:
        return int(raw)
    return today.year if month <= today.month else today.year - 1


_PERIOD_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\b(?:from|between)\s+(?P<d1>\d{4}-\d{2}-\d{2})\s+(?:to|and|until|-)\s+(?P<d2>\d{4}-\d{2}-\d{2})"),
        "iso2",
    ),
    (
        re.compile(
            rf"\b(?:from|between)\s+(?P<m1>{_MONTH})(?:\s+(?P<y1>\d{{4}}))?\s+(?:to|and|until|through|-)\s+"
            rf"(?P<m2>{_MONTH})(?:\s+(?P<y2>\d{{4}}))?"
        ),
        "months",
    ),
    (re.compile(r"\bsince\s+(?P<d1>\d{4}-\d{2}-\d{2})"), "since_iso"),
    (
        re.compile(
            rf"\bsince\s+(?:the\s+(?:start|beginning)\s+of\s+)?(?P<m1>{_MONTH})(?:\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?)?"
            rf"(?:,?\s+(?P<y1>\d{{4}}))?\b"
        ),
        "since_month",
    ),
    (re.compile(r"\bsince\s+(?:the\s+(?:start|beginning)\s+of\s+)?(?P<y1>(?:19|20)\d{2})\b"), "since_year"),
    (re.compile(r"\bsince\s+(?:the\s+)?(?:start|beginning)\s+of\s+(?:the\s+|this\s+)?year\b"), "ytd"),
    (re.compile(r"\bsince\s+(?:the\s+)?(?:start|beginning)\s+of\s+(?:the\s+|this\s+)?month\b"), "mtd"),
    (re.compile(r"\bsince\s+(?:the\s+)?(?:start|beginning)\s+of\s+(?:the\s+|this\s+)?quarter\b"), "qtd"),
    (
        re.compile(r"\b(?:ytd|y\.t\.d\.?|year[\s-]+to[\s-]+date|(?:so\s+far\s+)?this\s+year|current\s+year)\b"),
        "ytd",
    ),
    (re.compile(r"\b(?:qtd|quarter[\s-]+to[\s-]+date|this\s+quarter|current\s+quarter)\b"), "qtd"),
    (re.compile(r"\b(?:mtd|month[\s-]+to[\s-]+date|this\s+month|current\s+month)\b"), "mtd"),
    (re.compile(r"\b(?:last|previous|prior|past)\s+quarter\b"), "last_quarter"),
    (re.compile(r"\b(?:last|previous|prior)\s+year\b"), "last_year"),
    (re.compile(r"\b(?:last|previous|prior)\s+month\b"), "last_month"),
    (re.compile(r"\b(?:last|previous|prior)\s+week\b"), "last_week"),
    (re.compile(r"\b(?:this|current)\s+week\b|\bweek[\s-]+to[\s-]+date\b|\bwtd\b"), "this_week"),
    (re.compile(rf"\b(?:the\s+)?(?:last|past|previous|trailing|prior)\s+{_COUNTWORD}\s+{_UNIT}\b"), "last_n"),
    (re.compile(rf"\b{_COUNTWORD}\s+{_UNIT}\s+ago\b"), "ago"),
    (re.compile(rf"\b(?:the\s+)?past\s+{_UNIT}\b"), "past_one"),
    (re.compile(r"\b(?:ltm|ttm)\b"), "ttm"),
    (re.compile(r"\bq(?P<q>[1-4])(?:\s*(?P<y1>(?:19|20)\d{2}))?\b"), "quarter"),
    (re.compile(rf"\b(?:in|during|for|over|of)\s+(?P<m1>{_MONTH})(?:\s+(?P<y1>\d{{4}}))?\b"), "in_month"),
    (re.compile(rf"\b(?P<m1>{_MONTH})\s+(?P<y1>(?:19|20)\d{{2}})\b"), "in_month"),
    (re.compile(r"\b(?:in|during|for|over|of)\s+(?P<y1>(?:19|20)\d{2})\b"), "in_year"),
    (re.compile(r"\byesterday\b"), "yesterday"),
    (re.compile(r"\btoday\b"), "today"),
)


def _period_from(kind: str, m: re.Match[str], today: dt.date) -> tuple[dt.date, dt.date] | None:
    g = m.groupdict()
    if kind == "iso2":
        a, b = dt.date.fromisoformat(g["d1"]), dt.date.fromisoformat(g["d2"])
        return (min(a, b), max(a, b))
    if kind == "months":
        m1, m2 = MONTHS[g["m1"].rstrip(".")], MONTHS[g["m2"].rstrip(".")]
        y2 = _year_of(g.get("y2"), m2, today)
        y1 = int(g["y1"]) if g.get("y1") else (y2 if m1 <= m2 else y2 - 1)
        return (
            dt.date(y1, m1, 1),
            min(_month_end(y2, m2), today) if (y2, m2) == (today.year, today.month) else _month_end(y2, m2),
        )
    if kind == "since_iso":
        return (dt.date.fromisoformat(g["d1"]), today)
    if kind == "since_month":
        month = MONTHS[g["m1"].rstrip(".")]
        year = _year_of(g.get("y1"), month, today)
        day = min(int(g["day"]), calendar.monthrange(year, month)[1]) if g.get("day") else 1
        start = dt.date(year, month, max(day, 1))
        if start > today and not g.get("y1"):
            start = dt.date(year - 1, month, start.day)
        return (start, today)
    if kind == "since_year":
        return (dt.date(int(g["y1"]), 1, 1), today)
    if kind == "ytd":
        return (dt.date(today.year, 1, 1), today)
    if kind == "qtd":
        return (_quarter_start(today), today)
    if kind == "mtd":
        return (today.replace(day=1), today)
    if kind == "last_quarter":
        start = _shift_months(_quarter_start(today), 3)
        return (start, _quarter_start(today) - dt.timedelta(days=1))
    if kind == "last_year":
        return (dt.date(today.year - 1, 1, 1), dt.date(today.year - 1, 12, 31))
    if kind == "last_month":
        first = today.replace(day=1)
        return (_shift_months(first, 1), first - dt.timedelta(days=1))
    if kind == "last_week":
        monday = today - dt.timedelta(days=today.weekday())
        return (monday - dt.timedelta(days=7), monday - dt.timedelta(days=1))
    if kind == "this_week":
        return (today - dt.timedelta(days=today.weekday()), today)
    if kind in ("last_n", "ago"):
        n = _number(g["n"])
        if n is None or n < 1 or n > 100 * 366:
            return None
        start = _back(today, int(n), g["unit"])
        return (start, today) if kind == "last_n" else (start, start)
    if kind == "past_one":
        return (_back(today, 1, g["unit"]), today)
    if kind == "ttm":
        return (_back(today, 12, "months"), today)
    if kind == "quarter":
        q = int(g["q"])
        year = int(g["y1"]) if g.get("y1") else (today.year if 3 * (q - 1) + 1 <= today.month else today.year - 1)
        start = dt.date(year, 3 * (q - 1) + 1, 1)
        return (start, _month_end(year, 3 * q))
    if kind == "in_month":
        month = MONTHS[g["m1"].rstrip(".")]
        year = _year_of(g.get("y1"), month, today)
        return (dt.date(year, month, 1), _month_end(year, month))
    if kind == "in_year":
        return (dt.date(int(g["y1"]), 1, 1), dt.date(int(g["y1"]), 12, 31))
    if kind == "yesterday":
        return (today - dt.timedelta(days=1), today - dt.timedelta(days=1))
    if kind == "today":
        return (today, today)
    return None


def _extract_period(t: _Text, today: dt.date) -> tuple[dt.date, dt.date] | None:
    low = t.work.lower()
    for pattern, kind in _PERIOD_RULES:
        m = pattern.search(low)
        if m is None:
            continue
        try:
            period = _period_from(kind, m, today)
        except (ValueError, OverflowError, KeyError):
            period = None
        if period is None:
            continue
        t.take(m.start(), m.end())
        return period
    return None


# --- horizon (years) ----------------------------------------------------------------------------------------------

YEARS = re.compile(
    rf"\b(?:(?:for|over|in|next|after|within|the\s+next|of)\s+)?(?P<n>\d{{1,3}}|{_NUMWORD}|a)\s*(?:-\s*)?"
    r"(?:years?|yrs?|y)\b(?!\s+ago)",
    re.I,
)
DECADE = re.compile(r"\b(?:a|one|two|\d)\s+decades?\b", re.I)


def _extract_years(t: _Text) -> int | None:
    m = DECADE.search(t.work)
    if m:
        word = m.group(0).split()[0].lower()
        n = 1 if word in ("a", "one") else 2 if word == "two" else int(word)
        t.take(m.start(), m.end())
        return 10 * n
    m = YEARS.search(t.work)
    if m:
        value = _number(m.group("n"))
        if value is not None and 1 <= value <= 100:
            t.take(m.start(), m.end())
            return int(value)
    return None


# --- counts -------------------------------------------------------------------------------------------------------

COUNT = re.compile(
    rf"(?<![\w.$])(?P<n>\d{{1,4}}|{_NUMWORD})(?:\s+(?:more|new|extra|of\s+the))?(?={COUNT_NOUNS.pattern})", re.I
)
ONLY_NUMBER = re.compile(r"^\s*(?P<n>\d{1,4}|" + _NUMWORD + r")\s*[.!?]?\s*$", re.I)


def _extract_count(t: _Text) -> int | None:
    m = COUNT.search(t.work) or ONLY_NUMBER.match(t.work)
    if m is None:
        return None
    value = _number(m.group("n"))
    if value is None or value != int(value):
        return None
    t.take(m.start(), m.end())
    return int(value)


# --- accounts -----------------------------------------------------------------------------------------------------

ACCOUNT_ID = re.compile(
    r"(?<![\w/-])(?P<id>[A-Za-z0-9][\w.-]*/(?:[\w.-]+/)*(?P<k1>gen|rev|com)(?:-\d+)?"
    r"|(?P<k2>gen|rev|com)-\d+"
    r"|[A-Za-z]*\d[A-Za-z0-9]*-(?P<k3>gen|rev|com))(?![\w/])",
    re.I,
)
ACCOUNT_KIND_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bgen(?:eration|erating)?(?:\s*[-_]?\s*(?:acc(?:t|ount)?s?)\b|\b)", re.I), "gen"),
    (re.compile(r"\brev(?:enue)?(?:\s*[-_]?\s*(?:acc(?:t|ount)?s?)\b|\b)", re.I), "rev"),
    (re.compile(r"\bcom(?:p|pound|pounding|pounder)?(?:\s*[-_]?\s*(?:acc(?:t|ount)?s?)\b|\b)", re.I), "com"),
)
# Typos of the account words ("compunding account", "revnue acc").
ACCOUNT_FUZZY = re.compile(r"\b(?P<w>[a-z]{5,12})\s*[-_]?\s*(?:acc?oo?u?nts?|acct?s?)\b", re.I)
ACCOUNT_WORDS = {"generation": "gen", "revenue": "rev", "compounding": "com", "compound": "com", "generating": "gen"}


def _extract_account(t: _Text) -> tuple[str | None, str | None]:
    kind: str | None = None
    account_id: str | None = None
    m = ACCOUNT_ID.search(t.work)
    if m:
        account_id = m.group("id")
        kind = (m.group("k1") or m.group("k2") or m.group("k3")).lower()
        t.take(m.start(), m.end())
    best: tuple[int, str] | None = None
    for pattern, k in ACCOUNT_KIND_PATTERNS:
        for found in pattern.finditer(t.work):
            word = found.group(0).lower()
            # Bare "com" / "gen" / "rev" only count next to an account word, or alone as "gen"/"rev"/"com".
            if not re.search(r"acc|eration|erating|enue|pound", word) and word.strip() not in ("gen", "rev", "com"):
                continue
            if word.strip() == "com" and re.search(r"\.\s*$|dot\s*$", t.work[: found.start()].lower()):
                continue
            if best is None or found.start() < best[0]:
                best = (found.start(), k)
            break
    if best is None:
        for found in ACCOUNT_FUZZY.finditer(t.work):
            word = found.group("w").lower()
            for name, k in ACCOUNT_WORDS.items():
                if edit_distance(word, name, 2) <= (1 if len(name) < 8 else 2):
                    best = (found.start(), k)
                    break
            if best:
                break
    if kind is None and best is not None:
        kind = best[1]
    return kind, account_id


# --- week labels, positions, risk, detail -------------------------------------------------------------------------

WEEK_CODE = re.compile(
    r"(?<![\w-])(?P<code>w-idl|p-ew|p-awl|p-ro|p-aol|p-dd|c-wap\+|c-wap|c-pno|c-ro|c-rec)(?![\w-])", re.I
)
WEEK_NAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bidle\s+week\b", re.I), "W-IDL"),
    (re.compile(r"\bputs?\s+expir(?:es|ed|ing|e)\s+worthless\b|\bexpires?\s+worthless\b", re.I), "P-EW"),
    (re.compile(r"\bassign(?:ed|ment)\s+within\s+(?:the\s+)?limit\b", re.I), "P-AWL"),
    (re.compile(r"\bassign(?:ed|ment)\s+over\s+(?:the\s+)?limit\b", re.I), "P-AOL"),
    (re.compile(r"\bput\s+roll[\s-]*overs?\b", re.I), "P-RO"),
    (re.compile(r"\bcall\s+roll[\s-]*overs?\b", re.I), "C-RO"),
    (re.compile(r"\bdeep\s+draw[\s-]*down\b", re.I), "P-DD"),
    (re.compile(r"\bstrong\s+appreciation\b", re.I), "C-WAP+"),
    (re.compile(r"\bpremium[\s-]+only\b", re.I), "C-PNO"),
    (re.compile(r"\brecovery\s+week\b", re.I), "C-REC"),
)
MARKET_LABEL = re.compile(r"\b(?P<label>green|red|chop|choppy|sideways)\b", re.I)
POSITION_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bshort[\s_-]*puts?\b|\bsold\s+(?:a\s+)?puts?\b|\bcash[\s-]+secured\s+puts?\b", re.I), "SHORT_PUT"),
    (re.compile(r"\bshort[\s_-]*calls?\b|\bcovered\s+calls?\b|\bsold\s+(?:a\s+)?calls?\b", re.I), "SHORT_CALL"),
    (
        re.compile(r"\blong[\s_-]*stock\b|\b(?:holding|hold|own)\s+(?:the\s+)?shares\b|\bassigned\s+shares\b", re.I),
        "LONG_STOCK",
    ),
    (re.compile(r"\b(?:all\s+)?in\s+cash\b|\bcash\s+position\b|\bCASH\b"), "CASH"),
)
RISK_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\b(?:conservative|conservatively|cautious|careful|risk[\s-]*averse|low[\s-]*risk|safe(?:ty)?|"
            r"play\s+it\s+safe|not\s+(?:a\s+)?(?:big\s+)?risk[\s-]*taker|minimal\s+risk|low\s+tolerance|"
            r"defensive|capital\s+preservation|sleep\s+at\s+night|can'?t\s+(?:afford|stomach)\s+(?:to\s+lose|"
            r"big\s+losses|losses|losing))\b",
            re.I,
        ),
        "conservative",
    ),
    (
        re.compile(
            r"\b(?:aggressive|aggressively|agressive|risky|high[\s-]*risk|bold|yolo|max(?:imum|imize)?\s+"
            r"(?:returns?|gains?|growth)|risk[\s-]*(?:seeking|lover|taker)|high\s+tolerance|go\s+big|"
            r"swing\s+for\s+the\s+fences)\b",
            re.I,
        ),
        "aggressive",
    ),
    (
        re.compile(
            r"\b(?:moderate|moderately|medium|balanced|middle(?:\s+of\s+the\s+road)?|average|in\s+between|"
            r"somewhere\s+in\s+the\s+middle|mid[\s-]*risk|neutral|some\s+risk)\b",
            re.I,
        ),
        "moderate",
    ),
)
RISK_WORDS = {"conservative": "conservative", "aggressive": "aggressive", "moderate": "moderate"}
DETAIL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\b(?:in\s+(?:full\s+)?detail|detailed|details|full\s+(?:reasoning|explanation|details?|version|"
            r"breakdown|story)|every\s+rule|all\s+(?:the\s+)?(?:rules|details|reasoning)|step[\s-]+by[\s-]+step|"
            r"long\s+version|verbose|elaborate|in[\s-]+depth|thorough(?:ly)?|walk\s+me\s+through|"
            r"everything|fully|more\s+details?|more\s+depth|longer(?:\s+version)?|expand(?:\s+on\s+(?:that|it))?)\b",
            re.I,
        ),
        "full",
    ),
    (
        re.compile(
            r"\b(?:brief(?:ly)?|short\s+version|keep\s+it\s+short|in\s+short|short\s+answer|in\s+one\s+line|"
            r"one[\s-]+liner?|tl;?dr|summary|summari[sz]e|quick(?:ly)?|concise(?:ly)?|just\s+the\s+gist|"
            r"the\s+gist|short\s+and\s+sweet|less\s+detail|shorter|bottom\s+line)\b",
            re.I,
        ),
        "brief",
    ),
)


def _first(patterns: Iterable[tuple[re.Pattern[str], str]], text: str) -> str | None:
    best: tuple[int, str] | None = None
    for pattern, value in patterns:
        m = pattern.search(text)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), value)
    return best[1] if best else None


def _extract_week_label(t: _Text) -> str | None:
    m = WEEK_CODE.search(t.work)
    if m:
        t.take(m.start(), m.end())
        return m.group("code").upper()
    named = _first(WEEK_NAMES, t.work)
    if named:
        return named
    m = MARKET_LABEL.search(t.work)
    if m:
        label = m.group("label").lower()
        return "chop" if label in ("choppy", "sideways") else label
    return None


def _fuzzy_risk(text: str) -> str | None:
    """A misspelt risk word ("agressive", "conservitive")."""
    for token in re.findall(r"[a-z]{6,14}", text.lower()):
        if (found := _risk_word(token)) is not None:
            return found
    return None


@functools.lru_cache(maxsize=4096)
def _risk_word(token: str) -> str | None:
    for word, value in RISK_WORDS.items():
        if token[0] == word[0] and edit_distance(token, word, 2) <= 2:
            return value
    return None


# --- tickers ------------------------------------------------------------------------------------------------------

CASHTAG = re.compile(r"\$(?P<sym>[A-Za-z]{1,5}(?:\.[A-Za-z])?)\b")
TOKEN = re.compile(r"(?<![\w$.\-/])(?P<sym>[A-Za-z]{1,5}(?:\.[A-Z])?)(?![\w\-/]|\.[A-Za-z])")
# Capitalised words a user writes that are not tickers: English, finance and protocol acronyms.
NOT_TICKERS = words(
    """
    I A OK OKAY ES ATM IV DTE VIX USD US USA UK EU ETF ETFS ROI YTD QTD MTD TTM LTM CEO CFO FAQ API AI PM AM EST EDT
    ET PT UTC GMT ASAP FYI LEAPS LEAP CSP CSPS CC CCS PNL PL DD RSI ATR MA ROC NYSE NASDAQ IRA TLDR TL DR ID IDS
    GEN REV COM ACC ACCT PUT PUTS CALL CALLS NO YES YEP NOPE HI HEY HELLO THX TY PLS PLZ LOL OMG BTW IMO IMHO
    THE AND OR BUT NOT WHY WHAT HOW WHO WHEN WHERE WHICH IS ARE AM BE DO DOES DID CAN MY ME WE US OUR YOU YOUR
    IT ITS THIS THAT FOR OF ON IN AT TO BY UP SO IF AS AN ALL ANY NOW NEW OLD BUY SELL HOLD WEEK GO STOP HELP
    RED GREEN CHOP Q K M MM B BN GDP CPI FED SEC IPO EPS PE EV HTML JSON SQL URL PDF CSV OTM ITM NAV AUM P
    R S T V X Y N D E F G H J L O U W Z HODL FOMO YOLO ES97 VAR CVAR KPI MAX MIN AVG TOTAL DONT CANT WONT
    RULE RULES ALL-USE ALLUSE PLEASE THANKS SURE NICE COOL GOOD BAD RISK CASH SHARE SHARES LONG SHORT KEY KEYS
    IGNORE PRINT SHOW TELL GIVE ME TOO VERY JUST ONLY THEN THAN FROM WITH INTO OUT OFF OVER UNDER DOWN
    """
)


def _extract_tickers(
    t: _Text, symbols: frozenset[str], vocabulary: frozenset[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    found: list[tuple[int, str]] = []
    unknown: list[tuple[int, str]] = []
    for m in CASHTAG.finditer(t.work):
        sym = m.group("sym").upper()
        (found if sym in symbols else unknown).append((m.start(), sym))
        t.take(m.start(), m.end())
    letters = [c for c in t.raw if c.isalpha()]
    # In a shouted message ("WHAT SHOULD I TRADE") capitals say nothing: only configured symbols and cashtags count.
    shouted = len(letters) >= 12 and sum(c.isupper() for c in letters) >= 0.8 * len(letters)
    for m in TOKEN.finditer(t.work):
        word = m.group("sym")
        sym = word.upper()
        if sym in symbols:
            if (
                word.isupper()
                or (len(word) >= 3 and word.lower() not in vocabulary)
                or word.lower() in (s.lower() for s in symbols if len(s) >= 3 and s.lower() not in vocabulary)
            ):
                found.append((m.start(), sym))
            continue
        if (
            word.isupper()
            and len(word) >= 2
            and not shouted
            and sym not in NOT_TICKERS
            and word.lower() not in vocabulary
        ):
            unknown.append((m.start(), sym))
    seen: set[str] = set()
    tickers = []
    for _, sym in sorted(found):
        if sym not in seen:
            seen.add(sym)
            tickers.append(sym)
    unknown_out = []
    for _, sym in sorted(unknown):
        if sym not in seen:
            seen.add(sym)
            unknown_out.append(sym)
    return tuple(tickers), tuple(unknown_out)


# --- decision ids -------------------------------------------------------------------------------------------------

DECISION_ID = re.compile(r"(?<![0-9a-f])(?P<id>[0-9a-f]{32})(?![0-9a-f])", re.I)


# --- edit distance ------------------------------------------------------------------------------------------------


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance of a and b; any value over `limit` is limit + 1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        row_min = i
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                v = min(v, prev2[j - 2] + 1)
            cur[j] = v
            row_min = min(row_min, v)
        if row_min > limit:
            return limit + 1
        prev2, prev = prev, cur
    return min(prev[len(b)], limit + 1)


# --- the whole extraction -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _with_english(vocabulary: frozenset[str]) -> frozenset[str]:
    return ENGLISH | vocabulary


def extract(
    text: str,
    *,
    symbols: Collection[str],
    today: dt.date,
    vocabulary: Collection[str] = (),
) -> Entities:
    """Every entity `text` names. `symbols`: the configured symbols (upper case); `today`: what relative periods
    ("last quarter") count from; `vocabulary`: lower-case words (beyond ENGLISH) never taken for tickers."""
    raw = text[:MAX_CHARS] if isinstance(text, str) else ""
    t = _Text(raw)
    symbol_set = frozenset(s.upper() for s in symbols if isinstance(s, str))
    vocab = _with_english(frozenset(vocabulary))
    decision = DECISION_ID.search(t.work)
    decision_id = None
    if decision:
        decision_id = decision.group("id").lower()
        t.take(decision.start(), decision.end())
    week_label = _extract_week_label(t)
    account_kind, account_id = _extract_account(t)
    low = raw.lower()
    # Each extractor runs only when the message has what it needs (a digit, "delta", "%"...): most have none.
    digits = any(c.isdigit() for c in raw)
    numbers = digits or bool(_NUMBER_WORD.search(low))
    period = _extract_period(t, today) if _PERIOD_HINT.search(low) else None
    delta = _extract_delta(t) if ("delta" in low or "\u0394" in raw) else None
    percent = _extract_percent(t) if ("%" in raw or "percent" in low or "pct" in low or "per cent" in low) else None
    money = _extract_money(t) if numbers else None
    years = _extract_years(t) if (("y" in low or "decade" in low) and numbers) else None
    count = _extract_count(t) if numbers else None
    if money is None and digits:
        money = _bare_money(t)
    tickers, unknown = _extract_tickers(t, symbol_set, vocab)
    risk = _first(RISK_PATTERNS, low) or _fuzzy_risk(low)
    detail = _first(DETAIL_PATTERNS, low)
    position = _first(POSITION_PATTERNS, raw)
    return Entities(
        money=money,
        percent=percent,
        tickers=tickers,
        unknown_tickers=unknown,
        account_kind=account_kind,
        account_id=account_id,
        week_label=week_label,
        delta=delta,
        period=period,
        risk=risk,
        detail=detail,
        count=count,
        years=years,
        decision_id=decision_id,
        position=position,
    )
