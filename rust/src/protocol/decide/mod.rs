//! The decision's typed inputs, compiled once: the protocol thresholds every decision reads (week types,
//! protocol levels, the ATR regime, drawdown protection, VIX breakers) and the order context the rules see.
//! `Tables` is built from config/protocol.yaml when the engine is built (and on reload), validated once, and
//! then only read, so a decision never rebuilds or re-checks a threshold.

use crate::error::{CoreError, CoreResult};
use crate::protocol::drawdown::{self, ProtectionState, ProtectionTable, VixBreakers, VixReading};
use crate::protocol::level::{self, AtrRegime, AtrRegimeTable, LevelReading, LevelThresholds};
use crate::protocol::week_type::{self, Classification, Position, WeekTypeBounds};

pub mod equity;
pub mod facts;
pub mod flow;
pub mod group;
pub mod label;
pub mod pyfmt;
pub mod scenarios;
pub mod sizing;
pub mod strike;

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod tests;

/// The compiled protocol thresholds of one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub week: WeekTypeBounds,
    pub level: LevelThresholds,
    pub regime: AtrRegimeTable,
    pub protection: ProtectionTable,
    pub vix: VixBreakers,
}

impl Tables {
    /// Validates every table once; an error names the table's field.
    pub fn compile(
        week: WeekTypeBounds,
        level: LevelThresholds,
        regime: AtrRegimeTable,
        protection: ProtectionTable,
        vix: VixBreakers,
    ) -> CoreResult<Self> {
        week.validate()?;
        level.validate()?;
        protection.validate()?;
        // The regime and breaker tables are checked by their functions; a probe reading checks them here once.
        level::atr_regime(1.0, &regime)?;
        drawdown::vix_breaker(0.0, &vix)?;
        Ok(Tables {
            week,
            level,
            regime,
            protection,
            vix,
        })
    }

    /// The week type of (position, move in percent, roll availability), section 4.
    pub fn classify_week(
        &self,
        position: Position,
        move_pct: f64,
        roll_available: bool,
    ) -> CoreResult<Classification> {
        week_type::classify_week(position, move_pct, roll_available, &self.week)
    }

    /// The protocol level of a position, section 5.
    pub fn protocol_level(
        &self,
        reference: f64,
        spot: f64,
        atr: Option<f64>,
        loss: f64,
        equity: f64,
    ) -> CoreResult<LevelReading> {
        level::protocol_level(reference, spot, atr, loss, equity, &self.level)
    }

    /// The ATR regime and its size multiplier for ATR as a percent of spot.
    pub fn atr_regime(&self, atr_pct: f64) -> CoreResult<(AtrRegime, f64)> {
        level::atr_regime(atr_pct, &self.regime)
    }

    /// One day's step of an account's drawdown protection.
    pub fn step_protection(
        &self,
        state: ProtectionState,
        drawdown: f64,
        day: i64,
    ) -> CoreResult<ProtectionState> {
        drawdown::step_protection(state, drawdown, day, &self.protection)
    }

    /// The new-exposure multiplier of a protection level (0 none .. 4 emergency).
    pub fn protection_multiplier(&self, level: u8) -> CoreResult<f64> {
        self.protection
            .multipliers
            .get(usize::from(level))
            .copied()
            .ok_or_else(|| CoreError::invalid("level", format!("must be 0..4, got {level}")))
    }

    /// The VIX breaker reading of a VIX value.
    pub fn vix_breaker(&self, vix: f64) -> CoreResult<VixReading> {
        drawdown::vix_breaker(vix, &self.vix)
    }
}
