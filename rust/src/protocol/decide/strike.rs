//! The strike of an order from a synthetic chain (PROTOCOL section 9): the grid compiled once per configuration,
//! the strike whose delta is nearest the target inside the band, and its Black-Scholes mid.

use crate::error::CoreResult;
use crate::pricing::{self, OptionKind};
use crate::protocol::strike::{self, StrikeGrid};

/// A picked strike: the strike, its absolute delta in whole numbers and its mid (per share).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    pub strike: f64,
    pub abs_delta: f64,
    pub mid: f64,
}

/// The validated grid a decision picks synthetic strikes from.
#[derive(Debug, Clone, PartialEq)]
pub struct StrikePicker {
    grid: StrikeGrid,
}

impl StrikePicker {
    /// Validates the grid once.
    pub fn new(grid: StrikeGrid) -> CoreResult<Self> {
        grid.validate()?;
        Ok(StrikePicker { grid })
    }

    /// The strike nearest `target` delta inside [band_low, band_high] on the synthetic chain around `spot`, with its
    /// mid; None when no strike of the chain lies inside the band.
    #[allow(clippy::too_many_arguments)]
    pub fn pick(
        &self,
        kind: OptionKind,
        spot: f64,
        t: f64,
        vol: f64,
        rate: f64,
        band_low: f64,
        band_high: f64,
        target: f64,
    ) -> CoreResult<Option<Pick>> {
        let Some(choice) = strike::select_synthetic(
            kind, spot, t, vol, rate, 0.0, band_low, band_high, target, &self.grid,
        )?
        else {
            return Ok(None);
        };
        let mid = pricing::bs_price(kind, spot, choice.strike, t, vol, rate, 0.0)?;
        Ok(Some(Pick {
            strike: choice.strike,
            abs_delta: choice.abs_delta,
            mid,
        }))
    }
}
