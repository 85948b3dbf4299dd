"""The execution section of the service's configuration as the execution package's objects."""

from __future__ import annotations

from allsuse.config import ExecutionConfig
from allsuse.execution.model import MarketParams
from allsuse.execution.schedule import Schedule, collar_params


def market_params(cfg: ExecutionConfig) -> MarketParams:
    """The paper market's parameters of `cfg`."""
    return MarketParams(
        impact_coefficient=cfg.impact_coefficient,
        permanent_impact_coefficient=cfg.permanent_impact_coefficient,
        option_daily_volume=cfg.option_daily_volume,
        stock_daily_volume=cfg.stock_daily_volume,
        spread_base=cfg.spread_base,
        spread_iv=cfg.spread_iv,
        spread_moneyness=cfg.spread_moneyness,
        stock_spread=cfg.stock_spread,
        stock_spread_iv=cfg.stock_spread_iv,
        profile_curvature=cfg.profile_curvature,
        passive_fill_intensity=cfg.passive_fill_intensity,
        passive_fill_decay=cfg.passive_fill_decay,
        adverse_selection_share=cfg.adverse_selection_share,
    )


def schedule(cfg: ExecutionConfig) -> Schedule:
    """The adaptive schedule of `cfg`, with the collar of the rule set's R13."""
    rates = {
        "normal": cfg.participation_normal,
        "risk_reduction": cfg.participation_risk_reduction,
        "emergency": cfg.participation_emergency,
    }
    share, min_tick = collar_params()
    return Schedule(
        rates,
        slice_contracts=cfg.slice_contracts,
        replace_timeout_minutes=cfg.replace_timeout_minutes,
        collar=share,
        buy_back_tick=min_tick,
        passive_steps={"normal": cfg.passive_steps_normal, "risk_reduction": cfg.passive_steps_risk_reduction},
    )


__all__ = ["market_params", "schedule"]
