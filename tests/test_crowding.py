"""Factor crowding (allsuse.monitoring.crowding) against hand-computed cases: HHI and Gini of known weights, the
clusters of a constructed correlation matrix, the absorption ratio of a known covariance, the level and its
reasons, and a portfolio's exposures; the monitoring config's thresholds are validated."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from allsuse import config
from allsuse.config import MonitoringConfig
from allsuse.errors import InvalidInputError
from allsuse.monitoring.crowding import (
    absorption_ratio,
    clusters,
    exposures_of,
    gini,
    hhi,
    measure,
    portfolio_crowding,
)
from allsuse.protocol import Bars, Engine, MarketData, Portfolio, Position

TODAY = dt.date(2024, 3, 7)


def test_hhi_and_gini_of_known_weights() -> None:
    assert hhi([1, 1, 1, 1]) == pytest.approx(0.25)
    assert hhi([0.5, 0.3, 0.2]) == pytest.approx(0.25 + 0.09 + 0.04)
    assert hhi([5.0]) == 1.0 and hhi([2, -2]) == pytest.approx(0.5)  # absolute exposures
    assert gini([1, 1, 1, 1]) == pytest.approx(0.0, abs=1e-12)
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)  # (n - 1) / n
    # [1, 2, 3]: sum |xi - xj| over all ordered pairs = 8; G = 8 / (2 * 3^2 * mean 2) = 2/9
    assert gini([3, 1, 2]) == pytest.approx(2 / 9)
    for bad in ([], [0, 0], [1, float("nan")]):
        with pytest.raises(InvalidInputError):
            hhi(bad)


def test_clusters_of_a_constructed_correlation_matrix() -> None:
    # Two blocks: {A, B, C} correlated 0.9 among themselves, {D, E} at 0.8, 0.1 across.
    names = ["A", "B", "C", "D", "E"]
    c = np.full((5, 5), 0.1)
    c[:3, :3] = 0.9
    c[3:, 3:] = 0.8
    np.fill_diagonal(c, 1.0)
    assert clusters(c, names, 0.5) == [["A", "B", "C"], ["D", "E"]]
    # Cut below 0.2 (1 - 0.8): D and E part; cut above the cross distance 0.9: one cluster.
    assert clusters(c, names, 0.15) == [["A", "B", "C"], ["D"], ["E"]]
    assert clusters(c, names, 0.95) == [names]
    # Average linkage: F joins {A, B} at the mean distance (0.1 + 0.7) / 2 = 0.4, so a cut at 0.45 keeps it.
    c3 = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, 0.3], [0.9, 0.3, 1.0]])
    assert clusters(c3, ["A", "B", "F"], 0.45) == [["A", "B", "F"]]
    assert clusters(c3, ["A", "B", "F"], 0.35) == [["A", "B"], ["F"]]
    with pytest.raises(InvalidInputError):
        clusters(np.eye(2), names, 0.5)


def test_absorption_ratio_of_a_known_covariance() -> None:
    # Eigenvalues 4, 1, 1, 1, 1 (a rank-one factor on the identity would not be diagonal; a diagonal one is):
    cov = np.diag([4.0, 1.0, 1.0, 1.0, 1.0])
    assert absorption_ratio(cov) == pytest.approx(4 / 8)  # ceil(5/5) = 1 eigenvector
    cov6 = np.diag([3.0, 2.0, 1.0, 1.0, 1.0, 2.0])
    assert absorption_ratio(cov6) == pytest.approx((3 + 2) / 10)  # ceil(6/5) = 2 eigenvectors
    # One common factor: ones * ones' * 0.9 + 0.1 I has eigenvalues 0.9 n + 0.1 and 0.1 (n - 1 times).
    n = 5
    one = np.full((n, n), 0.9) + 0.1 * np.eye(n)
    assert absorption_ratio(one) == pytest.approx((0.9 * n + 0.1) / n)


def test_measure_levels_and_reasons() -> None:
    rng = np.random.default_rng(11)
    factor = rng.normal(0, 0.01, 250)
    noise = rng.normal(0, 0.01, (250, 5))
    independent = noise
    together = factor[:, None] * 3 + noise * 0.2
    names = ["A", "B", "C", "D", "E"]
    equal = {s: 1.0 for s in names}
    cfg = MonitoringConfig()
    low = measure(equal, independent, names, cfg)
    assert low.level == "LOW" and low.reasons == () and len(low.clusters) == 5
    assert low.hhi == pytest.approx(0.2) and low.gini == pytest.approx(0.0, abs=1e-12)
    high = measure(equal, together, names, cfg)
    assert high.level == "HIGH" and high.clusters == (tuple(names),)
    assert high.crowded_cluster == tuple(names) and high.cluster_weights == pytest.approx((1.0,))
    assert any(r.startswith("largest cluster 100%") for r in high.reasons)
    assert any(r.startswith("absorption ratio") for r in high.reasons)
    # Concentration alone: one symbol holds 70% of the weights (HHI 0.49 + 4 * 0.075^2 = 0.5125).
    heavy = measure({"A": 70.0, "B": 7.5, "C": 7.5, "D": 7.5, "E": 7.5}, independent, names, cfg)
    assert heavy.level == "HIGH" and heavy.hhi == pytest.approx(0.5125)
    assert heavy.reasons[0] == "HHI 0.51" and heavy.crowded_cluster == ("A",)
    with pytest.raises(InvalidInputError):
        measure({"Z": 1.0}, independent, names, cfg)


def test_a_portfolio_s_exposures_and_crowding() -> None:
    days = tuple(TODAY - dt.timedelta(days=k) for k in range(60, -1, -1))
    rng = np.random.default_rng(2)
    bars = {}
    for s in ("AAA", "BBB"):
        c = 50.0 * np.cumprod(1.0 + rng.normal(0, 0.01, len(days)))
        bars[s] = Bars(days, c, c, c, c, np.full(len(days), 1e6))
    market = MarketData(bars=bars, iv={"AAA": 0.4, "BBB": 0.3})
    p = Portfolio.create("cr", 1_000_000, dt.datetime(2024, 1, 2, 9, 30))
    p.positions["a"] = Position("a", "cr/gen-1", "AAA", "put", -3.0, TODAY, 48.0, dt.date(2024, 3, 15), 1.0)
    p.positions["b"] = Position("b", "cr/com-1", "BBB", "stock", 200.0, TODAY, cost_basis=40.0)
    p.positions["c"] = Position("c", "cr/com-1", "BBB", "call", -2.0, TODAY, 60.0, dt.date(2024, 3, 15), 0.5)
    exposures = exposures_of(p, market)
    assert exposures == {"AAA": pytest.approx(14_400.0), "BBB": pytest.approx(200 * bars["BBB"].last_close)}
    got = portfolio_crowding(Engine(), p, market, MonitoringConfig())
    assert got is not None and set(got.weights) == {"AAA", "BBB"}
    w = 14_400.0 / (14_400.0 + 200 * bars["BBB"].last_close)
    assert got.hhi == pytest.approx(w**2 + (1 - w) ** 2)
    assert (
        portfolio_crowding(Engine(), Portfolio.create("e", 1, dt.datetime(2024, 1, 2)), market, MonitoringConfig())
        is None
    )


def test_monitoring_thresholds_are_validated() -> None:
    assert config.load("development", {}).monitoring == MonitoringConfig()
    with pytest.raises(InvalidInputError) as err:
        config.load("development", {"ALLSUSE_MONITORING_CROWDING_HHI_MEDIUM": "0.5"})
    assert err.value.field == "monitoring.crowding_hhi_medium"
    with pytest.raises(InvalidInputError) as err:
        config.load("development", {"ALLSUSE_MONITORING_CROWDING_ABSORPTION_HIGH": "1.5"})
    assert err.value.field == "monitoring.crowding_absorption_high"
