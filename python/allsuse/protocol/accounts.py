"""Accounts (PROTOCOL section 1): the 40/30/30 split with 5% buffers, deposits and withdrawals, the life of a
position in cash and realised P&L, forking, merging and quarterly reinvestment, each a recorded transaction;
and projections over N years.

Money in the ledger is `decimal.Decimal` exact to the cent, so no cent is lost however many transactions
accumulate. Every change of an account's cash is a `Transaction`; a transaction also says how much P&L it
realised (`realised`): the premium of a short option is cash when it is sold but realised only when the
position ends (closed, expired or assigned), and only realised gains are reinvested at a quarter's end.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

import numpy as np

from allsuse._frozen import made as _made
from allsuse.errors import InvalidInputError
from allsuse.orchestration.nyse import EASTERN, NYSE
from allsuse.protocol import settings
from allsuse.protocol.positions import MULTIPLIER, Position

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
QUARTER_END_MONTHS = (3, 6, 9, 12)

Amount = float | int | str | Decimal
"""A money amount or price as a caller may pass it; a float is read by its shortest repr (0.1 is 0.1)."""


def _number(value: Amount, name: str) -> Decimal:
    """`value` as an exact, finite Decimal; anything else is an InvalidInputError naming `name`."""
    # The common cases first, with the same results: a finite float read by its shortest repr (str is repr for a
    # float), a finite Decimal as it is.
    if type(value) is float:
        if math.isfinite(value):
            return _exact(value)
    elif type(value) is Decimal and value.is_finite():
        return value
    if isinstance(value, bool):
        raise InvalidInputError.of(name, f"must be a number, got {value!r}")
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except (ArithmeticError, ValueError, TypeError):
        raise InvalidInputError.of(name, f"must be a number, got {value!r}") from None
    if not d.is_finite():
        raise InvalidInputError.of(name, f"must be a finite amount, got {value!r}")
    return d


def money(value: Amount, name: str = "amount") -> Decimal:
    """A computed money amount rounded to the cent (half to even); NaN, infinity or text that is not a number
    names the argument. For amounts a person enters, `cents` refuses a fraction of a cent instead."""
    d = _number(value, name)
    try:
        return d.quantize(CENT, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise InvalidInputError.of(name, f"is too large, got {value!r}") from None


def cents(value: Amount, name: str = "amount") -> Decimal:
    """An amount that must be exact to the cent (PROTOCOL section 1): a fraction of a cent is refused."""
    d = _number(value, name)
    exact = money(d, name)
    if exact != d:
        raise InvalidInputError.of(name, f"must be exact to the cent, got {value!r}")
    return exact


@dataclass(frozen=True)
class AccountAllocation:
    """One account's share of a new portfolio."""

    kind: str
    allocation: Decimal
    buffer: Decimal
    deployable: Decimal


def allocate(total: Amount) -> dict[str, AccountAllocation]:
    """Splits a new portfolio of `total` into Gen/Rev/Com allocations, buffers and deployable amounts.

    `total` must be exact to the cent. Gen-Acc and Rev-Acc get their share rounded down to the cent and Com-Acc
    the rest, so the three add up to `total` exactly; buffer = the account's buffer share of its allocation
    rounded to the cent (half to even); deployable = allocation - buffer.
    allocate(100000)["gen"].deployable == Decimal("38000.00").
    """
    t = cents(total, "total")
    if t <= 0:
        raise InvalidInputError.of("total", f"must be > 0, got {total!r}")
    cfg = settings.default()
    shares: dict[str, Decimal] = {}
    for kind in settings.ACCOUNT_TYPES:
        if kind != "com":
            shares[kind] = (t * Decimal(str(cfg.account(kind).allocation))).quantize(CENT, rounding=ROUND_DOWN)
    shares["com"] = t - sum(shares.values(), ZERO)
    out: dict[str, AccountAllocation] = {}
    for kind in settings.ACCOUNT_TYPES:
        alloc = shares[kind]
        buffer = money(alloc * Decimal(str(cfg.account(kind).buffer)))
        out[kind] = AccountAllocation(kind, alloc, buffer, alloc - buffer)
    return out


def last_trading_day(year: int, month: int) -> dt.date:
    """The month's last NYSE trading day."""
    day = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    while not NYSE.is_trading_day(day):
        day -= dt.timedelta(days=1)
    return day


def is_quarter_end(day: dt.date) -> bool:
    """Whether `day` is the last NYSE trading day of March, June, September or December: the day quarterly
    reinvestment runs (PROTOCOL section 1)."""
    return day.month in QUARTER_END_MONTHS and day == last_trading_day(day.year, day.month)


def _eastern_date(at: dt.datetime) -> dt.date:
    """The US/Eastern date of `at`; a naive datetime is US/Eastern wall-clock time already."""
    if at.tzinfo is None or at.utcoffset() is None:
        return at.date()
    return at.astimezone(EASTERN).date()


@dataclass(frozen=True)
class Transaction:
    """A recorded movement of money with its timestamp and reason.

    `amount` is the change of the account's cash. `realised` is the trading P&L this transaction realised (a
    position closed, expired or assigned); it moves no cash by itself and counts toward the quarter's
    reinvestment."""

    id: int
    at: dt.datetime
    # deposit, withdrawal, fork, merge, reinvestment, leaps, pnl, premium, purchase, close, sale, expiry,
    # assignment, settlement, realised
    kind: str
    account_id: str
    amount: Decimal
    reason: str
    counterparty: str | None = None
    realised: Decimal = ZERO


@dataclass
class Account:
    """One account: its cash balance, base (for forks), peak (for drawdowns), LEAPS sleeve, state, and the
    P&L realised since the last quarterly reinvestment."""

    id: str
    kind: str
    balance: Decimal
    base: Decimal
    peak: Decimal
    group_id: str
    state: str = "ACTIVE"
    leaps: Decimal = ZERO
    quarter_realised: Decimal = ZERO
    # Cash from quarterly reinvestment earmarked for new option contracts: a Com-Acc sells puts only with it
    # (PROTOCOL section 1); its put collateral stays within it, and an assignment spends it on shares.
    reinvest_cash: Decimal = ZERO

    @property
    def drawdown(self) -> float:
        """Drawdown from the equity peak as a share (0.1 = 10%)."""
        return 0.0 if self.peak <= 0 else float(max(Decimal(0), (self.peak - self.balance) / self.peak))


@dataclass
class AccountGroup:
    """The parent group or a forked group (a new Gen-Acc and a new Com-Acc with their own history)."""

    id: str
    parent_id: str | None
    account_ids: list[str]
    merged: bool = False


def _exact(x: float) -> Decimal:
    """A position's float field as the Decimal it was written as (its shortest repr)."""
    return Decimal(repr(float(x)))


_OPTION_UNIT = _exact(MULTIPLIER)
_SHARE_UNIT = Decimal(1)


def _unit(pos: Position) -> Decimal:
    """Units per quantity: 100 shares per option contract, 1 per share of stock."""
    return _OPTION_UNIT if pos.is_option else _SHARE_UNIT


def _entry_value(pos: Position, units: Decimal) -> Decimal:
    """The cash value at entry of `units` of the position (contracts or shares): premium or cost basis."""
    entry = pos.premium if pos.is_option else pos.cost_basis
    return money(_exact(entry) * _unit(pos) * units)


def _closing(pos: Position, price: Decimal, units: Decimal) -> tuple[Decimal, Decimal]:
    """Cash and realised P&L of a closing order for `units` of the position at `price` per share.

    The entry part of the closed units is the entry value of the position before less after, so however a
    position is closed in pieces its realised P&L adds up to exactly its cash flows."""
    held = abs(_exact(pos.quantity))
    traded = money(price * _unit(pos) * units)
    entry = _entry_value(pos, held) - _entry_value(pos, held - units)
    if pos.quantity < 0:  # buying back a short: pay now, the premium was received at entry
        return -traded, entry - traded
    return traded, traded - entry


@dataclass
class Portfolio:
    """A portfolio of account groups; every change of money is a Transaction."""

    id: str
    accounts: dict[str, Account] = field(default_factory=dict)
    groups: dict[str, AccountGroup] = field(default_factory=dict)
    transactions: list[Transaction] = field(default_factory=list)
    positions: dict[str, Position] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    @classmethod
    def create(cls, portfolio_id: str, total: Amount, at: dt.datetime) -> Portfolio:
        """A new portfolio split 40/30/30; each account's creation is a deposit transaction."""
        p = cls(portfolio_id)
        group = AccountGroup(f"{portfolio_id}/main", None, [])
        p.groups[group.id] = group
        for kind, a in allocate(total).items():
            account_id = f"{portfolio_id}/{kind}-1"
            p.accounts[account_id] = Account(account_id, kind, ZERO, a.allocation, a.allocation, group.id)
            group.account_ids.append(account_id)
            p._credit(account_id, a.allocation, at, "deposit", "initial allocation")
        return p

    # --- ledger -----------------------------------------------------------------------------------
    def _record(
        self,
        at: dt.datetime,
        kind: str,
        account_id: str,
        amount: Decimal,
        reason: str,
        counterparty: str | None = None,
        *,
        realised: Decimal = ZERO,
    ) -> Transaction:
        # Built without the frozen dataclass's __init__ (one object.__setattr__ per field): the ledger records one
        # per change of cash, tens of thousands in a backtest. The same Transaction.
        tx = _made(
            Transaction,
            id=next(self._ids),
            at=at,
            kind=kind,
            account_id=account_id,
            amount=amount,
            reason=reason,
            counterparty=counterparty,
            realised=realised,
        )
        self.transactions.append(tx)
        return tx

    def _credit(
        self,
        account_id: str,
        amount: Decimal,
        at: dt.datetime,
        kind: str,
        reason: str,
        counterparty: str | None = None,
        *,
        realised: Decimal = ZERO,
    ) -> Transaction:
        acct = self.accounts.get(account_id) or self.account(account_id)
        acct.balance += amount
        if acct.balance > acct.peak:  # max(peak, balance): the peak stays unless the balance is above it
            acct.peak = acct.balance
        acct.quarter_realised += realised
        return self._record(at, kind, account_id, amount, reason, counterparty, realised=realised)

    def account(self, account_id: str) -> Account:
        """The account with this id, or InvalidInputError naming `account_id`."""
        if account_id not in self.accounts:
            raise InvalidInputError.of("account_id", f"no account {account_id!r} in portfolio {self.id!r}")
        return self.accounts[account_id]

    def accounts_of(self, kind: str) -> list[Account]:
        """Active (non-merged) accounts of one type."""
        return [a for a in self.accounts.values() if a.kind == kind and not self.groups[a.group_id].merged]

    def position(self, position_id: str) -> Position:
        """The open position with this id, or InvalidInputError naming `position_id`."""
        if position_id not in self.positions:
            raise InvalidInputError.of("position_id", f"no open position {position_id!r} in portfolio {self.id!r}")
        return self.positions[position_id]

    @property
    def equity(self) -> Decimal:
        """Total cash and LEAPS of every account not merged away (positions are not valued here)."""
        return sum(
            (a.balance + a.leaps for a in self.accounts.values() if not self.groups[a.group_id].merged),
            ZERO,
        )

    # --- deposits, withdrawals, P&L -----------------------------------------------------------------
    def deposit(self, account_id: str, amount: Amount, at: dt.datetime, reason: str = "deposit") -> Transaction:
        """Adds money to an account. The base grows too, so a deposit never counts as fork surplus."""
        amt = cents(amount)
        if amt <= 0:
            raise InvalidInputError.of("amount", f"must be > 0, got {amount!r}")
        acct = self.account(account_id)
        acct.base += amt
        return self._credit(account_id, amt, at, "deposit", reason)

    def withdraw(self, account_id: str, amount: Amount, at: dt.datetime, reason: str = "withdrawal") -> Transaction:
        """Takes money out. A Com-Acc withdrawal is rejected (R18); so is more than the balance."""
        amt = cents(amount)
        acct = self.account(account_id)
        spec = settings.default().account(acct.kind)
        if not spec.withdrawals:
            raise InvalidInputError.of(
                "account_id", f"R18_NO_WITHDRAWAL: account={account_id} account_type={acct.kind}"
            )
        if amt <= 0:
            raise InvalidInputError.of("amount", f"must be > 0, got {amount!r}")
        if amt > acct.balance:
            raise InvalidInputError.of("amount", f"{amt} exceeds the balance {acct.balance} of {account_id}")
        acct.balance -= amt
        acct.base = min(acct.base, acct.balance)
        return self._record(at, "withdrawal", account_id, -amt, reason)

    def book_pnl(self, account_id: str, pnl: Amount, at: dt.datetime, reason: str) -> Transaction:
        """Books a cash P&L movement (rounded to the cent) to an account, kind "pnl".

        It is cash only, not realised P&L: a position that ends realises its P&L through `close_position`,
        `expire_position` or `assign` (which also move its cash), or `realise` for a caller keeping its own
        cash records."""
        amt = money(pnl, "pnl")
        self.account(account_id)
        return self._credit(account_id, amt, at, "pnl", reason)

    def realise(self, account_id: str, pnl: Amount, at: dt.datetime, reason: str) -> Transaction:
        """Records `pnl` (exact to the cent, negative for a loss) as realised by a position that ended, without
        moving cash: a transaction of kind "realised" with amount 0 that counts toward the quarter's
        reinvestment."""
        amt = cents(pnl, "pnl")
        self.account(account_id)
        return self._credit(account_id, ZERO, at, "realised", reason, realised=amt)

    # --- the life of a position ----------------------------------------------------------------------
    def open_position(
        self, position: Position, at: dt.datetime, reason: str, *, kind: str | None = None
    ) -> Transaction:
        """Adds a new position and moves its cash at entry: a short option (negative quantity, `premium` per
        share) credits premium x 100 x contracts (kind "premium"); stock or a long option debits its cost
        (kind "purchase"). Nothing is realised until the position ends."""
        acct = self.account(position.account_id)
        if self.groups[acct.group_id].merged:
            raise InvalidInputError.of("account_id", f"{acct.id} was merged away")
        if not position.id or position.id in self.positions:
            raise InvalidInputError.of("position.id", f"must be a new, non-empty id, got {position.id!r}")
        if position.kind not in ("put", "call", "stock"):
            raise InvalidInputError.of("position.kind", f"must be put, call or stock, got {position.kind!r}")
        quantity = _number(position.quantity, "position.quantity")
        if quantity == 0 or (position.kind == "stock" and quantity < 0):
            what = "> 0 shares" if position.kind == "stock" else "non-zero contracts (negative = short)"
            raise InvalidInputError.of("position.quantity", f"must be {what}, got {position.quantity!r}")
        entry_name = "position.premium" if position.is_option else "position.cost_basis"
        entry = _number(position.premium if position.is_option else position.cost_basis, entry_name)
        if entry < 0:
            raise InvalidInputError.of(entry_name, f"must be >= 0, got {entry}")
        if position.is_option and not _number(position.strike, "position.strike") > 0:
            raise InvalidInputError.of("position.strike", f"must be > 0, got {position.strike!r}")
        value = _entry_value(position, abs(quantity))
        cash = value if quantity < 0 else -value
        self.positions[position.id] = position
        default = "premium" if quantity < 0 else "purchase"
        return self._credit(acct.id, cash, at, kind or default, reason)

    def close_position(
        self,
        position_id: str,
        price: Amount,
        at: dt.datetime,
        reason: str,
        *,
        quantity: Amount | None = None,
        kind: str = "close",
    ) -> Transaction:
        """A closing order for `quantity` (contracts or shares; all by default) at `price` per share: buying back
        a short option pays price x 100 x contracts, selling stock receives price x shares. The transaction
        realises the closed part's P&L against its entry (premium or cost basis). A position closed in full
        leaves `positions`. An index option cash-settled at expiry closes at its intrinsic value
        (kind "settlement")."""
        pos = self.position(position_id)
        p = _number(price, "price")
        if p < 0:
            raise InvalidInputError.of("price", f"must be >= 0, got {price!r}")
        held = abs(_exact(pos.quantity))
        units = held if quantity is None else _number(quantity, "quantity")
        if not 0 < units <= held:
            raise InvalidInputError.of("quantity", f"must be > 0 and at most the {held} held, got {quantity!r}")
        cash, realised = _closing(pos, p, units)
        rest = held - units
        pos.quantity = 0.0 if rest == 0 else float(-rest if pos.quantity < 0 else rest)
        if rest == 0:
            del self.positions[pos.id]
        return self._credit(pos.account_id, cash, at, kind, reason, realised=realised)

    def expire_position(self, position_id: str, at: dt.datetime, reason: str = "expired worthless") -> Transaction:
        """An option that expired out of the money: no cash moves, its whole premium is realised
        (kind "expiry")."""
        if not self.position(position_id).is_option:
            raise InvalidInputError.of("position_id", f"{position_id} is stock; stock does not expire")
        return self.close_position(position_id, 0, at, reason, kind="expiry")

    def assign(self, position_id: str, at: dt.datetime, reason: str, *, stock_id: str | None = None) -> Transaction:
        """A short stock option assigned at expiry (physical settlement, kind "assignment"); the option's
        premium is realised.

        A put buys 100 x contracts shares at the strike: the cash is paid and the shares become a new stock
        position `stock_id` with the strike as cost basis (unrealised until sold). A call delivers the shares
        from the account's stock positions in that symbol, first opened first: the strike is received and each
        lot's gain over its cost basis is realised; without enough shares nothing changes."""
        opt = self.position(position_id)
        if not (opt.is_option and opt.quantity < 0):
            raise InvalidInputError.of("position_id", f"{position_id} is not a short option")
        contracts = -_exact(opt.quantity)
        shares = contracts * _exact(MULTIPLIER)
        strike = _exact(opt.strike)
        realised = _entry_value(opt, contracts)
        if opt.kind == "put":
            if not stock_id or stock_id in self.positions:
                raise InvalidInputError.of("stock_id", f"must be a new, non-empty position id, got {stock_id!r}")
            cash = -money(strike * shares)
            del self.positions[opt.id]
            lot = Position(
                stock_id, opt.account_id, opt.symbol, "stock", float(shares), at.date(), cost_basis=opt.strike
            )
            self.positions[lot.id] = lot
        else:
            lots = [
                x
                for x in self.positions.values()
                if x.account_id == opt.account_id and x.kind == "stock" and x.symbol == opt.symbol and x.quantity > 0
            ]
            held = sum((_exact(x.quantity) for x in lots), Decimal(0))
            if held < shares:
                raise InvalidInputError.of(
                    "position_id",
                    f"{position_id} is assigned {shares} shares of {opt.symbol}; the account holds {held}",
                )
            cash = ZERO
            left = shares
            for lot in lots:
                units = min(left, _exact(lot.quantity))
                lot_cash, lot_realised = _closing(lot, strike, units)
                cash += lot_cash
                realised += lot_realised
                left -= units
                rest = _exact(lot.quantity) - units
                lot.quantity = float(rest)
                if rest == 0:
                    del self.positions[lot.id]
                if left == 0:
                    break
            del self.positions[opt.id]
        return self._credit(opt.account_id, cash, at, "assignment", reason, realised=realised)

    # --- forks, merges, reinvestment ------------------------------------------------------------------
    def check_forks(self, at: dt.datetime) -> list[AccountGroup]:
        """Forks every Gen-Acc whose surplus over its base reached the threshold: S/2 to a new Gen-Acc and S/2
        to a new Com-Acc in a new group; the parent's base resets to its remaining balance."""
        cfg = settings.default().doc
        threshold = money(cfg.section("forking").number("surplus_threshold", low=0))
        gen_share = Decimal(str(cfg.section("forking").number("new_gen_share", low=0, high=1)))
        created: list[AccountGroup] = []
        for acct in list(self.accounts_of("gen")):
            surplus = acct.balance - acct.base
            if surplus < threshold:
                continue
            n = len(self.groups)
            group = AccountGroup(f"{self.id}/fork-{n}", acct.group_id, [])
            self.groups[group.id] = group
            to_gen = money(surplus * gen_share)
            to_com = surplus - to_gen
            acct.balance -= surplus
            self._record(at, "fork", acct.id, -surplus, f"fork: surplus {surplus} over base {acct.base}", group.id)
            acct.base = acct.balance
            acct.peak = acct.balance
            for kind, amount in (("gen", to_gen), ("com", to_com)):
                new_id = f"{group.id}/{kind}"
                self.accounts[new_id] = Account(new_id, kind, ZERO, amount, amount, group.id)
                group.account_ids.append(new_id)
                self._credit(new_id, amount, at, "fork", f"seeded by fork of {acct.id}", acct.id)
            created.append(group)
        return created

    def group_positions(self, group_id: str) -> list[Position]:
        """The open positions of a group's accounts."""
        if group_id not in self.groups:
            raise InvalidInputError.of("group_id", f"no group {group_id!r} in portfolio {self.id!r}")
        members = set(self.groups[group_id].account_ids)
        return [x for x in self.positions.values() if x.account_id in members]

    def check_merges(self, at: dt.datetime, marks: Mapping[str, Amount] | None = None) -> list[AccountGroup]:
        """Merges every forked group whose equity reached the threshold into the parent portfolio's Com-Acc.

        `marks` maps position id -> current closing price per share (an option's mark, a stock's price). A
        group's equity is its cash and LEAPS plus its positions valued at those marks; a merging group's
        positions are closed at them (closing orders recorded as "close" transactions), then its whole balance
        moves to the parent Com-Acc and the group is marked merged: no position of it stays open. Every
        position of every group still forked needs a valid mark, or InvalidInputError names it
        (`marks[<position id>]`) and nothing changes. Without marks (None: no prices known), only groups that
        hold nothing but cash are checked; a group with open positions waits until they are closed."""
        threshold = money(settings.default().doc.section("merging").number("threshold", low=0))
        main_com = next(
            a for a in self.accounts.values() if a.kind == "com" and self.groups[a.group_id].parent_id is None
        )
        due: list[tuple[AccountGroup, list[tuple[Position, Decimal]], Decimal]] = []
        for group in list(self.groups.values()):
            if group.parent_id is None or group.merged:
                continue
            held = self.group_positions(group.id)
            if held and marks is None:
                continue
            priced: list[tuple[Position, Decimal]] = []
            for pos in held:
                name = f"marks[{pos.id}]"
                if marks is None or pos.id not in marks:
                    raise InvalidInputError.of(name, f"no closing price for position {pos.id} of group {group.id}")
                price = _number(marks[pos.id], name)
                if price < 0:
                    raise InvalidInputError.of(name, f"must be >= 0, got {price}")
                priced.append((pos, price))
            equity = sum((self.accounts[i].balance + self.accounts[i].leaps for i in group.account_ids), ZERO)
            equity += sum((_closing(pos, price, abs(_exact(pos.quantity)))[0] for pos, price in priced), ZERO)
            if equity >= threshold:
                due.append((group, priced, equity))
        for group, priced, equity in due:
            for pos, price in priced:
                self.close_position(pos.id, price, at, f"merge of {group.id}: closing order at {price} per share")
            for account_id in group.account_ids:
                acct = self.accounts[account_id]
                amount = acct.balance + acct.leaps
                acct.balance = ZERO
                acct.leaps = ZERO
                self._record(at, "merge", account_id, -amount, f"merge of {group.id} at equity {equity}", main_com.id)
            group.merged = True
            self._credit(main_com.id, equity, at, "merge", f"merged group {group.id}", group.id)
        return [group for group, _, _ in due]

    def reinvest_quarter(self, at: dt.datetime) -> list[Transaction]:
        """On a quarter's last NYSE trading day (the US/Eastern date of `at`), Rev-Acc and Com-Acc reinvest the
        P&L realised since the last reinvestment, if positive: 75% into option contracts (collateral that stays
        in the account's cash) and 25% into the account's LEAPS sleeve. Every account's count of realised P&L
        then starts again from zero. On any other day it does nothing and returns []."""
        try:
            due = is_quarter_end(_eastern_date(at))
        except InvalidInputError as err:  # a year the NYSE calendar does not cover
            raise InvalidInputError.of("at", err.reason or str(err)) from None
        if not due:
            return []
        cfg = settings.default()
        leaps_share = Decimal(str(cfg.doc.section("reinvestment").number("leaps_share", low=0, high=1)))
        out: list[Transaction] = []
        for acct in self.accounts.values():
            if self.groups[acct.group_id].merged:
                continue
            gains = acct.quarter_realised
            acct.quarter_realised = ZERO
            if not cfg.account(acct.kind).reinvestment or gains <= 0:
                continue
            to_leaps = money(gains * leaps_share)
            to_contracts = gains - to_leaps
            out.append(
                self._record(
                    at,
                    "reinvestment",
                    acct.id,
                    to_contracts,
                    f"quarterly reinvestment: {to_contracts} of {gains} realised into contracts",
                )
            )
            acct.reinvest_cash += to_contracts
            acct.balance -= to_leaps
            acct.leaps += to_leaps
            out.append(
                self._record(
                    at,
                    "leaps",
                    acct.id,
                    to_leaps,
                    f"quarterly reinvestment: {to_leaps} of {gains} realised into LEAPS",
                )
            )
        return out


@dataclass(frozen=True)
class Projection:
    """Expected balance path, income, and a Monte Carlo band (5th, 50th, 95th percentiles) per year."""

    years: list[int]
    expected: list[float]
    income: list[float]
    p05: list[float]
    p50: list[float]
    p95: list[float]


PROJECT_MAX_YEARS = 100
PROJECT_MAX_PATHS = 1_000_000
PROJECT_MAX_PATH_YEARS = 4_000_000
"""The most simulated path-years one projection may ask for (paths x years): about 1 s and 100 MB."""
_PROJECT_CHUNK = 1 << 18  # path-years simulated at once (about 25 MB of temporaries)


def project(total: float, years: int, *, paths: int = 2000, seed: int = 0) -> Projection:
    """Projects a new portfolio of `total` over `years`: each account earns its weekly target compounded over
    52 weeks, scaled by the market-year multiplier (good 60% x1.10, average 30% x1.00, poor 10% x0.80);
    80% of each year's return is taken as income and 20% reinvested.

    The work is bounded: years in 1..PROJECT_MAX_YEARS, paths in 1..PROJECT_MAX_PATHS and paths x years at most
    PROJECT_MAX_PATH_YEARS; the paths are simulated in chunks, so memory stays near 16 bytes per path-year."""
    if isinstance(years, bool) or not (isinstance(years, int) and 1 <= years <= PROJECT_MAX_YEARS):
        raise InvalidInputError.of("years", f"must be an integer in 1..{PROJECT_MAX_YEARS}, got {years!r}")
    if isinstance(paths, bool) or not (isinstance(paths, int) and 1 <= paths <= PROJECT_MAX_PATHS):
        raise InvalidInputError.of("paths", f"must be an integer in 1..{PROJECT_MAX_PATHS}, got {paths!r}")
    if paths * years > PROJECT_MAX_PATH_YEARS:
        raise InvalidInputError.of(
            "paths",
            f"paths x years must be at most {PROJECT_MAX_PATH_YEARS}, got {paths} x {years} = {paths * years}",
        )
    if isinstance(seed, bool) or not (isinstance(seed, int) and seed >= 0):
        raise InvalidInputError.of("seed", f"must be an integer >= 0, got {seed!r}")
    alloc = allocate(total)
    cfg = settings.default()
    proj = cfg.doc.section("projection")
    reinvest = proj.number("reinvest_share", low=0, high=1)
    my = proj.section("market_years")
    year_kinds = my.keys()
    probs, mults = zip(*(my.numbers(k, 2) for k in year_kinds), strict=True)
    p = np.asarray(probs) / np.sum(probs)
    m = np.asarray(mults)
    start = np.array([float(alloc[k].allocation) for k in settings.ACCOUNT_TYPES])
    annual = np.array([(1 + cfg.account(k).weekly_target) ** 52 - 1 for k in settings.ACCOUNT_TYPES])
    expected_mult = float(p @ m)
    bal = start.copy()
    expected, income = [], []
    for _ in range(years):
        ret = bal * annual * expected_mult
        income.append(float(ret.sum() * (1 - reinvest)))
        bal = bal + ret * reinvest
        expected.append(float(bal.sum()))
    rng = np.random.default_rng(seed)
    # Drawing the paths chunk by chunk (rows in order) gives the same numbers as one draw of (paths, years).
    path_totals = np.empty((paths, years))
    rows = max(1, _PROJECT_CHUNK // years)
    for first in range(0, paths, rows):
        n = min(rows, paths - first)
        draws = m[rng.choice(len(m), size=(n, years), p=p)]
        growth = 1 + annual[None, None, :] * draws[:, :, None] * reinvest
        np.sum(start[None, None, :] * np.cumprod(growth, axis=1), axis=2, out=path_totals[first : first + n])
    q05, q50, q95 = np.percentile(path_totals, [5, 50, 95], axis=0)
    return Projection(list(range(1, years + 1)), expected, income, q05.tolist(), q50.tolist(), q95.tolist())
