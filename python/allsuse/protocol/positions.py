"""Open positions of an account: short puts, short calls and stock, with their marks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from allsuse import _core

MULTIPLIER = 100.0


@dataclass
class Position:
    """One open position. Options: `quantity` in contracts (negative = short), `premium` the credit per share
    received at entry. Stock: `quantity` in shares, `cost_basis` per share."""

    id: str
    account_id: str
    symbol: str
    kind: str  # put, call or stock
    quantity: float
    opened: dt.date
    strike: float = 0.0
    expiry: dt.date | None = None
    premium: float = 0.0
    cost_basis: float = 0.0
    iv: float = 0.0
    # The delta band of the week the option was opened in: a roll keeps it (PROTOCOL section 3).
    band: tuple[float, float] | None = None

    @property
    def is_option(self) -> bool:
        """True for puts and calls."""
        return self.kind in ("put", "call")

    def years_to_expiry(self, today: dt.date) -> float:
        """Calendar time to expiry in years (Actual/365), at least one hour so a same-day option still prices."""
        if self.expiry is None:
            return 0.0
        return max((self.expiry - today).days, 0) / 365.0 + 1.0 / (365.0 * 24.0)

    def mark(self, spot: float, iv: float, today: dt.date, rate: float = 0.0) -> float:
        """Value per share (options) or per share of stock, at today's spot and IV."""
        if not self.is_option:
            return spot
        t = self.years_to_expiry(today)
        # The scalar core call: marks are taken thousands of times a backtest, and the inputs are known floats.
        return _core.bs_price(self.kind, float(spot), float(self.strike), t, max(float(iv), 1e-4), float(rate), 0.0)

    def market_value(self, spot: float, iv: float, today: dt.date, rate: float = 0.0) -> float:
        """Signed market value in dollars (a short option is a liability)."""
        mult = MULTIPLIER if self.is_option else 1.0
        return self.quantity * mult * self.mark(spot, iv, today, rate)

    def collateral(self) -> float:
        """Cash a short put ties up: strike x 100 x contracts."""
        if self.kind == "put" and self.quantity < 0:
            return self.strike * MULTIPLIER * -self.quantity
        return 0.0

    def exposure(self, spot: float) -> float:
        """Dollar exposure to the underlying used for concentration: put collateral or stock value."""
        if self.kind == "stock":
            return self.quantity * spot
        return self.collateral()

    def unrealised_loss(self, spot: float, iv: float, today: dt.date, rate: float = 0.0) -> float:
        """Loss in dollars against the entry (positive = losing)."""
        if self.is_option:
            return (self.mark(spot, iv, today, rate) - self.premium) * MULTIPLIER * -self.quantity
        return (self.cost_basis - spot) * self.quantity
