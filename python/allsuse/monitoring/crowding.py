"""Factor crowding of a book: how concentrated its weights are, and how much its symbols move as one.

Measures (docs/monitoring.md):
* HHI: the sum of squared position weights (weights are absolute exposures over their total): 1/n for n equal
  weights, 1 for a single position;
* Gini of the weights: 0 when equal, towards 1 when one dominates;
* correlation clusters: hierarchical clustering of the held symbols' daily returns, average linkage on the
  distance 1 - correlation, cut at `cluster_distance` (scipy); the share of the weights in the largest cluster;
* the absorption ratio: the share of the returns' variance explained by the first fifth (at least one) of the
  eigenvectors of their covariance.

The level is LOW, MEDIUM or HIGH: the highest any of HHI, the largest cluster's share and the absorption ratio
reaches against its thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from allsuse.config import MonitoringConfig
from allsuse.errors import InvalidInputError
from allsuse.protocol.market import MarketData
from allsuse.protocol.positions import MULTIPLIER

if TYPE_CHECKING:
    from allsuse.protocol.accounts import Portfolio
    from allsuse.protocol.engine import Engine

LEVELS = ("LOW", "MEDIUM", "HIGH")


def _weights(exposures: Mapping[str, float]) -> dict[str, float]:
    total = sum(abs(v) for v in exposures.values())
    if not exposures or not math.isfinite(total):
        raise InvalidInputError.of("exposures", "must hold finite exposures")
    if total == 0:
        return {s: 1.0 / len(exposures) for s in exposures}
    return {s: abs(v) / total for s, v in exposures.items()}


def hhi(weights: Sequence[float]) -> float:
    """Herfindahl-Hirschman index of weights (normalised to sum to 1 first)."""
    w = np.abs(np.asarray(weights, dtype=np.float64))
    if w.size == 0 or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise InvalidInputError.of("weights", "must hold at least one finite, non-zero weight")
    w = w / w.sum()
    return float(np.sum(w * w))


def gini(weights: Sequence[float]) -> float:
    """Gini coefficient of weights: 0 for equal weights; (n - 1) / n when one holds everything."""
    w = np.sort(np.abs(np.asarray(weights, dtype=np.float64)))
    if w.size == 0 or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise InvalidInputError.of("weights", "must hold at least one finite, non-zero weight")
    n = w.size
    ranks = np.arange(1, n + 1)
    return float(2.0 * np.sum(ranks * w) / (n * w.sum()) - (n + 1.0) / n)


def clusters(correlation: npt.NDArray[np.float64], symbols: Sequence[str], distance: float) -> list[list[str]]:
    """Symbols grouped by average-linkage hierarchical clustering on 1 - correlation, cut at `distance`; largest
    cluster first, each sorted, ties by name."""
    c = np.asarray(correlation, dtype=np.float64)
    n = len(symbols)
    if c.shape != (n, n) or not np.all(np.isfinite(c)):
        raise InvalidInputError.of("correlation", f"must be a finite {n}x{n} matrix")
    if n == 1:
        return [list(symbols)]
    d = np.clip(1.0 - c, 0.0, 2.0)
    d = (d + d.T) / 2.0
    np.fill_diagonal(d, 0.0)
    labels = fcluster(linkage(squareform(d, checks=False), method="average"), t=distance, criterion="distance")
    groups: dict[int, list[str]] = {}
    for label, symbol in zip(labels.tolist(), symbols, strict=True):
        groups.setdefault(int(label), []).append(symbol)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g))


def absorption_ratio(covariance: npt.NDArray[np.float64]) -> float:
    """The share of total variance explained by the largest ceil(n / 5) eigenvalues of a covariance matrix."""
    c = np.asarray(covariance, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0 or not np.all(np.isfinite(c)):
        raise InvalidInputError.of("covariance", "must be a finite square matrix")
    eigen = np.sort(np.clip(np.linalg.eigvalsh((c + c.T) / 2.0), 0.0, None))[::-1]
    total = float(eigen.sum())
    if total <= 0:
        return 0.0
    k = max(1, math.ceil(c.shape[0] / 5))
    return float(eigen[:k].sum() / total)


@dataclass(frozen=True)
class Crowding:
    """The crowding of one book."""

    level: str
    hhi: float
    gini: float
    absorption_ratio: float
    clusters: tuple[tuple[str, ...], ...]
    cluster_weights: tuple[float, ...]
    weights: dict[str, float]
    reasons: tuple[str, ...]

    @property
    def crowded_cluster(self) -> tuple[str, ...]:
        """The cluster holding the largest share of the weights."""
        if not self.clusters:
            return ()
        return self.clusters[int(np.argmax(self.cluster_weights))]


def _level(value: float, medium: float, high: float) -> int:
    return 2 if value >= high else 1 if value >= medium else 0


def measure(
    exposures: Mapping[str, float], returns: npt.NDArray[np.float64], symbols: Sequence[str], config: MonitoringConfig
) -> Crowding:
    """The crowding of a book whose absolute exposure per symbol is `exposures`, with the joint daily `returns`
    (rows: days, columns: `symbols`, which must cover the exposures' symbols)."""
    weights = _weights(exposures)
    held = [s for s in symbols if s in weights]
    if sorted(held) != sorted(weights):
        raise InvalidInputError.of("symbols", "must include every symbol with an exposure")
    r = np.asarray(returns, dtype=np.float64)[:, [list(symbols).index(s) for s in held]]
    if r.shape[0] < 3:
        raise InvalidInputError.of("returns", f"need at least 3 days of returns, got {r.shape[0]}")
    w = [weights[s] for s in held]
    if len(held) > 1:
        std = r.std(axis=0)
        corr = np.corrcoef(r, rowvar=False) if np.all(std > 0) else np.eye(len(held))
        corr = np.where(np.isfinite(corr), corr, 0.0)
        groups = clusters(corr, held, config.crowding_cluster_distance)
        ratio = absorption_ratio(np.cov(r, rowvar=False))
    else:
        groups, ratio = [held], 1.0
    shares = tuple(float(sum(weights[s] for s in g)) for g in groups)
    h, top = hhi(w), max(shares)
    levels = {
        f"HHI {h:.2f}": _level(h, config.crowding_hhi_medium, config.crowding_hhi_high),
        f"largest cluster {top:.0%} of the weights": _level(
            top, config.crowding_cluster_medium, config.crowding_cluster_high
        ),
        f"absorption ratio {ratio:.2f}": _level(
            ratio, config.crowding_absorption_medium, config.crowding_absorption_high
        ),
    }
    worst = max(levels.values())
    reasons = tuple(k for k, v in levels.items() if v == worst and worst > 0)
    return Crowding(
        LEVELS[worst],
        h,
        gini(w),
        ratio,
        tuple(tuple(g) for g in groups),
        shares,
        dict(zip(held, w, strict=True)),
        reasons,
    )


def exposures_of(portfolio: Portfolio, market: MarketData) -> dict[str, float]:
    """Absolute exposure per symbol of the accounts not merged away: shares at market plus put collateral
    (strike x 100 x contracts); short calls are covered by shares and add none."""
    merged = {gid for gid, g in portfolio.groups.items() if g.merged}
    live = {a.id for a in portfolio.accounts.values() if a.group_id not in merged}
    out: dict[str, float] = {}
    for p in portfolio.positions.values():
        if p.account_id not in live:
            continue
        if p.kind == "stock":
            value = abs(p.quantity) * market.bars_for(p.symbol).last_close
        elif p.kind == "put":
            value = abs(p.quantity) * p.strike * MULTIPLIER
        else:
            continue
        out[p.symbol] = out.get(p.symbol, 0.0) + value
    return out


def portfolio_crowding(
    engine: Engine, portfolio: Portfolio, market: MarketData, config: MonitoringConfig
) -> Crowding | None:
    """The crowding of a portfolio's book on `market` (None for a book without exposure)."""
    exposures = {s: v for s, v in exposures_of(portfolio, market).items() if v > 0}
    if not exposures:
        return None
    symbols = sorted(exposures)
    return measure(exposures, engine.historical_returns(symbols, market), symbols, config)


__all__ = [
    "LEVELS",
    "Crowding",
    "absorption_ratio",
    "clusters",
    "exposures_of",
    "gini",
    "hhi",
    "measure",
    "portfolio_crowding",
]
