"""Accounts (PROTOCOL section 1): the 40/30/30 split with 5% buffers, deposits and withdrawals, forking,
merging and quarterly reinvestment, each a recorded transaction; and projections over N years.

Money in the ledger is `decimal.Decimal` rounded to the cent, so no cent is lost however many
transactions accumulate.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.positions import Position

CENT = Decimal("0.01")


def money(value: float | int | str | Decimal, name: str = "amount") -> Decimal:
    """A money amount as Decimal cents; NaN, infinity or text that is not a number names the argument."""
    try:
        d = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except ArithmeticError:
        raise InvalidInputError.of(name, f"must be a number, got {value!r}") from None
    if not d.is_finite():
        raise InvalidInputError.of(name, f"must be a finite amount, got {value!r}")
    return d.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class AccountAllocation:
    """One account's share of a new portfolio."""

    kind: str
    allocation: Decimal
    buffer: Decimal
    deployable: Decimal


def allocate(total: float | int | str | Decimal) -> dict[str, AccountAllocation]:
    """Splits a new portfolio of `total` into Gen/Rev/Com allocations, buffers and deployable amounts.

    allocate(100000)["gen"].deployable == Decimal("38000.00").
    """
    t = money(total, "total")
    if t <= 0:
        raise InvalidInputError.of("total", f"must be > 0, got {total!r}")
    cfg = settings.default()
    out: dict[str, AccountAllocation] = {}
    for kind in settings.ACCOUNT_TYPES:
        spec = cfg.account(kind)
        alloc = money(t * Decimal(str(spec.allocation)))
        buffer = money(alloc * Decimal(str(spec.buffer)))
        out[kind] = AccountAllocation(kind, alloc, buffer, alloc - buffer)
    return out


@dataclass(frozen=True)
class Transaction:
    """A recorded movement of money with its timestamp and reason."""

    id: int
    at: dt.datetime
    kind: str  # deposit, withdrawal, fork, merge, reinvestment, leaps, income
    account_id: str
    amount: Decimal
    reason: str
    counterparty: str | None = None


@dataclass
class Account:
    """One account: its cash balance, base (for forks), peak (for drawdowns), LEAPS sleeve and state."""

    id: str
    kind: str
    balance: Decimal
    base: Decimal
    peak: Decimal
    group_id: str
    state: str = "ACTIVE"
    leaps: Decimal = Decimal("0.00")
    quarter_realised: Decimal = Decimal("0.00")

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
    def create(cls, portfolio_id: str, total: float | int | str | Decimal, at: dt.datetime) -> Portfolio:
        """A new portfolio split 40/30/30; each account's creation is a deposit transaction."""
        p = cls(portfolio_id)
        group = AccountGroup(f"{portfolio_id}/main", None, [])
        p.groups[group.id] = group
        for kind, a in allocate(total).items():
            account_id = f"{portfolio_id}/{kind}-1"
            p.accounts[account_id] = Account(account_id, kind, Decimal("0.00"), a.allocation, a.allocation, group.id)
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
    ) -> Transaction:
        tx = Transaction(next(self._ids), at, kind, account_id, amount, reason, counterparty)
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
    ) -> Transaction:
        acct = self.account(account_id)
        acct.balance += amount
        acct.peak = max(acct.peak, acct.balance)
        return self._record(at, kind, account_id, amount, reason, counterparty)

    def account(self, account_id: str) -> Account:
        """The account with this id, or InvalidInputError naming `account_id`."""
        if account_id not in self.accounts:
            raise InvalidInputError.of("account_id", f"no account {account_id!r} in portfolio {self.id!r}")
        return self.accounts[account_id]

    def accounts_of(self, kind: str) -> list[Account]:
        """Active (non-merged) accounts of one type."""
        return [a for a in self.accounts.values() if a.kind == kind and not self.groups[a.group_id].merged]

    @property
    def equity(self) -> Decimal:
        """Total balance of every account not merged away."""
        return sum(
            (a.balance + a.leaps for a in self.accounts.values() if not self.groups[a.group_id].merged),
            Decimal("0.00"),
        )

    # --- deposits, withdrawals, P&L -----------------------------------------------------------------
    def deposit(
        self, account_id: str, amount: float | int | str | Decimal, at: dt.datetime, reason: str = "deposit"
    ) -> Transaction:
        """Adds money to an account. The base grows too, so a deposit never counts as fork surplus."""
        amt = money(amount)
        if amt <= 0:
            raise InvalidInputError.of("amount", f"must be > 0, got {amount!r}")
        acct = self.account(account_id)
        acct.base += amt
        return self._credit(account_id, amt, at, "deposit", reason)

    def withdraw(
        self,
        account_id: str,
        amount: float | int | str | Decimal,
        at: dt.datetime,
        reason: str = "withdrawal",
    ) -> Transaction:
        """Takes money out. A Com-Acc withdrawal is rejected (R18); so is more than the balance."""
        amt = money(amount)
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

    def book_pnl(self, account_id: str, pnl: float | Decimal, at: dt.datetime, reason: str) -> Transaction:
        """Books realised trading P&L (premium, assignment loss, close) to an account."""
        amt = money(pnl, "pnl")
        acct = self.account(account_id)
        acct.quarter_realised += amt
        return self._credit(account_id, amt, at, "pnl", reason)

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
                self.accounts[new_id] = Account(new_id, kind, Decimal("0.00"), amount, amount, group.id)
                group.account_ids.append(new_id)
                self._credit(new_id, amount, at, "fork", f"seeded by fork of {acct.id}", acct.id)
            created.append(group)
        return created

    def check_merges(self, at: dt.datetime) -> list[AccountGroup]:
        """Merges every forked group whose total reached the threshold into the parent portfolio's Com-Acc."""
        threshold = money(settings.default().doc.section("merging").number("threshold", low=0))
        merged: list[AccountGroup] = []
        main_com = next(
            a for a in self.accounts.values() if a.kind == "com" and self.groups[a.group_id].parent_id is None
        )
        for group in list(self.groups.values()):
            if group.parent_id is None or group.merged:
                continue
            total = sum(
                (self.accounts[i].balance + self.accounts[i].leaps for i in group.account_ids),
                Decimal("0.00"),
            )
            if total < threshold:
                continue
            for account_id in group.account_ids:
                acct = self.accounts[account_id]
                amount = acct.balance + acct.leaps
                acct.balance = Decimal("0.00")
                acct.leaps = Decimal("0.00")
                self._record(at, "merge", account_id, -amount, f"merge of {group.id} at total {total}", main_com.id)
            group.merged = True
            self._credit(main_com.id, total, at, "merge", f"merged group {group.id}", group.id)
            merged.append(group)
        return merged

    def reinvest_quarter(self, at: dt.datetime) -> list[Transaction]:
        """On a quarter's last trading day: Rev-Acc and Com-Acc reinvest the quarter's realised gains, 75% into
        option contracts (collateral that stays deployable) and 25% into the account's LEAPS sleeve."""
        cfg = settings.default()
        sec = cfg.doc.section("reinvestment")
        leaps_share = Decimal(str(sec.number("leaps_share", low=0, high=1)))
        out: list[Transaction] = []
        for acct in self.accounts.values():
            spec = cfg.account(acct.kind)
            if not spec.reinvestment or self.groups[acct.group_id].merged:
                continue
            gains = acct.quarter_realised
            acct.quarter_realised = Decimal("0.00")
            if gains <= 0:
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


def project(total: float, years: int, *, paths: int = 2000, seed: int = 0) -> Projection:
    """Projects a new portfolio of `total` over `years`: each account earns its weekly target compounded over
    52 weeks, scaled by the market-year multiplier (good 60% x1.10, average 30% x1.00, poor 10% x0.80);
    80% of each year's return is taken as income and 20% reinvested."""
    if not (isinstance(years, int) and 1 <= years <= 100):
        raise InvalidInputError.of("years", f"must be an integer in 1..100, got {years!r}")
    if not (isinstance(paths, int) and 1 <= paths <= 1_000_000):
        raise InvalidInputError.of("paths", f"must be an integer in 1..1000000, got {paths!r}")
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
    draws = m[rng.choice(len(m), size=(paths, years), p=p)]
    growth = 1 + annual[None, None, :] * draws[:, :, None] * reinvest
    path_totals = (start[None, None, :] * np.cumprod(growth, axis=1)).sum(axis=2)
    q05, q50, q95 = np.percentile(path_totals, [5, 50, 95], axis=0)
    return Projection(list(range(1, years + 1)), expected, income, q05.tolist(), q50.tolist(), q95.tolist())
