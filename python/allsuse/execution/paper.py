"""PaperBroker: a Broker that works orders against a simulated intraday market (allsuse.execution.model).

Time moves in whole minutes of a 390-minute session when the driver calls `advance()`: each instrument's mid takes a
random step (its daily volatility spread over the session's minutes, from a generator seeded by the broker's seed
and the instrument, so a run is repeatable), the minute's market volume is the daily volume times the U-shaped
profile, and every working order fills as much as its participation cap and its limit allow: the price of q units
is mid +/- (half spread + mid x k sigma_d sqrt(q / V)), and the fill moves the mid by its permanent impact
(gamma sigma_d q / V of mid). An order that cannot cross (a limit at the near touch, at mid, or anywhere short of
the far touch) rests and is filled passively, at its limit, at the rate lambda(delta) = A exp(-k delta / h) of the
model (Avellaneda and Stoikov 2008), each fill up to its participation allowance, with the adverse selection of
Glosten and Milgrom: a fill comes with a move of the mid of alpha h against the filled order, a minute without one
with a move away from the resting order that keeps the mid a martingale (allsuse.execution.model).

With `noise=False` the mid moves only by impact and by the expected adverse selection: the run gives the expected
cost of an execution without the luck of the path (the bench's "expected" figures). A resting order then fills its
expected quantity pi x chunk each minute (accumulated, filled in whole units when the sum rounds to one, at its
limit), and the mid moves away from it so that the units of the order still to trade bear alpha h for every unit
expected to have filled passively, the expected cost of adverse selection (the minute an order's last unit fills
has no units left to bear it: that minute's share is not charged); when the order ends this drift is taken back
(the mid is a martingale: in expectation it is where it was). With `noise=True` fills and moves are drawn, from a
generator seeded by the broker's seed and the client order id.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import AsyncIterator

import numpy as np

from allsuse.errors import InvalidInputError
from allsuse.execution.broker import (
    CANCELLED,
    FILLED,
    PARTIALLY_FILLED,
    WORKING,
    BrokerOrder,
    Fill,
    Instrument,
    OrderState,
    Quote,
)
from allsuse.execution.model import (
    SESSION_MINUTES,
    MarketParams,
    adverse_drift,
    daily_volatility,
    fill_intensity,
    fill_probability,
    impact_share,
    max_quantity_within,
    permanent_share,
    spread_price,
    spread_share,
    volume_profile,
)


class _Book:
    """One instrument's simulated market."""

    def __init__(self, instrument: Instrument, params: MarketParams, seed: int) -> None:
        self.instrument = instrument
        self.mid = instrument.mid
        self.spread_share = spread_share(
            instrument.kind, instrument.iv, instrument.spot, instrument.strike or instrument.spot, params
        )
        self.sigma_daily = daily_volatility(
            instrument.kind, instrument.iv, instrument.spot, instrument.mid, instrument.delta
        )
        self.daily_volume = params.stock_daily_volume if instrument.kind == "stock" else params.option_daily_volume
        self.rng = np.random.default_rng([seed, zlib.crc32(instrument.key.encode())])
        self.last_volume = 0.0

    @property
    def spread(self) -> float:
        return spread_price(self.instrument.kind, self.mid, self.spread_share)

    def step(self, volume: float, noise: bool) -> None:
        sigma = self.sigma_daily / math.sqrt(SESSION_MINUTES)
        z = float(self.rng.standard_normal())  # drawn either way: the same seed gives the same later draws
        if noise:
            self.mid *= math.exp(sigma * z - sigma * sigma / 2)
        self.last_volume = volume


class PaperBroker:
    """The paper Broker (see the module doc). `start_minute`: the session minute the simulation starts at."""

    name = "paper"

    def __init__(
        self, params: MarketParams | None = None, *, seed: int = 0, start_minute: int = 0, noise: bool = True
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InvalidInputError.of("seed", f"must be a whole number >= 0, got {seed!r}")
        if not 0 <= start_minute < SESSION_MINUTES:
            raise InvalidInputError.of("start_minute", f"must be in 0..{SESSION_MINUTES - 1}, got {start_minute}")
        self.params = params or MarketParams()
        self.seed = seed
        self.noise = noise
        self.minute = start_minute
        self.profile = volume_profile(self.params.profile_curvature)
        self._books: dict[str, _Book] = {}
        self._orders: dict[str, OrderState] = {}
        self._allowance: dict[str, float] = {}
        self._credit: dict[str, float] = {}  # expected passive fill not yet a whole unit (noise=False)
        self._drift: dict[str, float] = {}  # the expected adverse-selection drift an order put on its mid
        self._draws: dict[str, np.random.Generator] = {}  # passive fill draws (noise=True)
        self._positions: dict[str, int] = {}
        self._listeners: list[asyncio.Queue[Fill]] = []
        self._fills = 0

    def _book(self, instrument: Instrument) -> _Book:
        book = self._books.get(instrument.key)
        if book is None:
            instrument.check()
            book = self._books[instrument.key] = _Book(instrument, self.params, self.seed)
        return book

    def minute_volume(self, instrument: Instrument, minute: int | None = None) -> float:
        """The market volume of `instrument` in a session minute (default: the current one)."""
        book = self._book(instrument)
        m = self.minute if minute is None else minute
        return book.daily_volume * self.profile[m % SESSION_MINUTES]

    # --- the Broker interface ------------------------------------------------------------------------------
    async def submit(self, order: BrokerOrder) -> OrderState:
        """Accepts a limit order; an existing client_order_id returns that order unchanged."""
        existing = self._orders.get(order.client_order_id)
        if existing is not None:
            return existing
        order.check()
        self._book(order.instrument)
        state = OrderState(order, submitted_minute=self.minute)
        self._orders[order.client_order_id] = state
        self._allowance[order.client_order_id] = 0.0
        self._credit[order.client_order_id] = 0.0
        self._drift[order.client_order_id] = 0.0
        self._draws[order.client_order_id] = np.random.default_rng(
            [self.seed, zlib.crc32(order.client_order_id.encode())]
        )
        return state

    async def cancel(self, client_order_id: str) -> OrderState:
        """Cancels the unfilled rest; the status says whether anything was filled."""
        state = self._get(client_order_id)
        if not state.done:
            state.status = PARTIALLY_FILLED if state.filled else CANCELLED
            self._settle(state)
        return state

    async def replace(
        self, client_order_id: str, *, limit_price: float | None = None, quantity: int | None = None
    ) -> OrderState:
        """Cancel-replace of a working order: a new limit and/or total quantity (at least what is filled)."""
        state = self._get(client_order_id)
        if state.done:
            raise InvalidInputError.of("client_order_id", f"{client_order_id} is {state.status}, not working")
        order = state.order
        new = BrokerOrder(
            order.client_order_id,
            order.instrument,
            order.side,
            order.quantity if quantity is None else quantity,
            order.limit_price if limit_price is None else limit_price,
            order.max_participation,
        )
        new.check()
        if new.quantity < state.filled:
            raise InvalidInputError.of("quantity", f"must be >= the {state.filled} already filled")
        state.order = new
        state.replaced += 1
        if state.remaining == 0:
            state.status = FILLED
            self._settle(state)
        return state

    async def fills(self) -> AsyncIterator[Fill]:
        """Every fill from the moment of the call on."""
        queue: asyncio.Queue[Fill] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.remove(queue)

    async def positions(self) -> dict[str, int]:
        """Net signed quantity per instrument key."""
        return {k: v for k, v in self._positions.items() if v}

    async def quote(self, instrument: Instrument) -> Quote:
        """Mid, full spread and the last minute's volume of the instrument."""
        book = self._book(instrument)
        return Quote(book.mid, book.spread, book.last_volume, self.minute)

    async def order(self, client_order_id: str) -> OrderState | None:
        """The order with this id, or None."""
        return self._orders.get(client_order_id)

    # --- the simulation ------------------------------------------------------------------------------------
    async def advance(self, minutes: int = 1) -> list[Fill]:
        """Moves the market `minutes` minutes on and fills working orders; returns (and streams) the fills."""
        if minutes < 1:
            raise InvalidInputError.of("minutes", f"must be >= 1, got {minutes}")
        out: list[Fill] = []
        for _ in range(minutes):
            self.minute += 1
            share = self.profile[self.minute % SESSION_MINUTES]
            for book in self._books.values():
                book.step(book.daily_volume * share, self.noise)
            for state in list(self._orders.values()):
                if state.status == WORKING:
                    fill = self._work(state)
                    if fill is not None:
                        out.append(fill)
        for fill in out:
            for queue in self._listeners:
                queue.put_nowait(fill)
        return out

    def _work(self, state: OrderState) -> Fill | None:
        order = state.order
        book = self._books[order.instrument.key]
        cid = order.client_order_id
        cap = state.remaining
        if order.max_participation is not None:
            self._allowance[cid] += order.max_participation * book.last_volume
            cap = min(cap, int(self._allowance[cid] + 1e-9))
        sign = 1.0 if order.side == "BUY" else -1.0
        half = book.spread / book.mid / 2
        room = sign * (order.limit_price / book.mid - 1.0) - half  # impact share the limit still allows
        quantity = min(
            cap, max_quantity_within(room, book.daily_volume, book.sigma_daily, self.params.impact_coefficient)
        )
        if quantity < 1:
            return self._rest(state, book, sign)
        impact = impact_share(quantity, book.daily_volume, book.sigma_daily, self.params.impact_coefficient)
        mid = book.mid
        price = mid * (1.0 + sign * (half + impact))
        return self._fill(state, book, sign, quantity, price, impact, passive=False)

    def _rest(self, state: OrderState, book: _Book, sign: float) -> Fill | None:
        """A minute of an order that cannot cross: filled passively at its limit (see the module doc)."""
        order = state.order
        cid = order.client_order_id
        p = self.params
        half = book.spread / 2
        distance = sign * (book.mid - order.limit_price)  # h at the near touch, 0 at mid
        # Adverse selection is a share of the model's spread, not of the tick that may floor it (a one-tick spread
        # of a cheap option is wide for want of a smaller price step, not for information): alpha h as a share.
        informed = p.adverse_selection_share * book.spread_share / 2
        if p.passive_fill_intensity <= 0 or distance <= -half:
            return None  # no passive flow, or a limit at the far touch that its impact keeps from filling
        pi = min(fill_probability(fill_intensity(distance, half, p.passive_fill_intensity, p.passive_fill_decay)),
                 1 - 1e-9)  # fmt: skip
        capped = order.max_participation is not None
        if not self.noise:
            chunk = min(state.remaining - max(self._credit[cid], 0.0), self._allowance[cid] if capped else math.inf)
            if chunk <= 0:
                return None
            expected = pi * chunk
            self._credit[cid] += expected
            if capped:
                self._allowance[cid] -= expected
            quantity = min(state.remaining, math.floor(self._credit[cid] + 0.5))  # whole units, rounded
            self._credit[cid] -= quantity
            fill = self._fill(state, book, sign, quantity, order.limit_price, 0.0, passive=True) if quantity else None
            if not state.done:  # the units still to trade bear alpha h of each unit expected to have filled
                drift = sign * informed * expected / state.remaining
                book.mid *= math.exp(drift)
                self._drift[cid] += drift
            return fill
        chunk_units = min(state.remaining, int(self._allowance[cid] + 1e-9)) if capped else state.remaining
        if chunk_units < 1:
            return None
        if float(self._draws[cid].random()) < pi:
            fill = self._fill(state, book, sign, chunk_units, order.limit_price, 0.0, passive=True)
            book.mid *= math.exp(-sign * informed)  # the flow that filled it moves the mid against it
            return fill
        book.mid *= math.exp(sign * adverse_drift(p.adverse_selection_share, book.spread_share / 2, pi))
        return None

    def _fill(
        self, state: OrderState, book: _Book, sign: float, quantity: int, price: float, impact: float, *, passive: bool
    ) -> Fill:
        order = state.order
        mid = book.mid
        if order.max_participation is not None and not (passive and not self.noise):
            self._allowance[order.client_order_id] -= quantity
        permanent = permanent_share(
            quantity, book.daily_volume, book.sigma_daily, self.params.permanent_impact_coefficient
        )
        book.mid = mid * (1.0 + sign * permanent)
        total = state.avg_price * state.filled + price * quantity
        state.filled += quantity
        state.avg_price = total / state.filled
        if state.remaining == 0:
            state.status = FILLED
            self._settle(state)
        key = order.instrument.key
        self._positions[key] = self._positions.get(key, 0) + int(sign) * quantity
        self._fills += 1
        return Fill(f"{order.client_order_id}#{self._fills}", order.client_order_id, quantity, price, mid,
                    self.minute, impact, passive)  # fmt: skip

    def _settle(self, state: OrderState) -> None:
        """An order ended: the expected run takes back the adverse-selection drift it put on its mid."""
        cid = state.order.client_order_id
        drift = self._drift.get(cid, 0.0)
        if drift:
            self._books[state.order.instrument.key].mid *= math.exp(-drift)
            self._drift[cid] = 0.0

    def _get(self, client_order_id: str) -> OrderState:
        state = self._orders.get(client_order_id)
        if state is None:
            raise InvalidInputError.of("client_order_id", f"no order {client_order_id!r}")
        return state


__all__ = ["PaperBroker"]
