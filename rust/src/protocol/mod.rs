//! The ALL-USE protocol rules that are numbers: week types, protocol levels and the ATR regime,
//! drawdown protection and breakers, sizing and strike selection. Thresholds arrive from configuration
//! and are compared on exact values (`exact`: within 1e-9 relative of a boundary counts as on it).

pub mod decide;
pub mod drawdown;
pub mod exact;
pub mod level;
pub mod sizing;
pub mod strike;
pub mod week_type;
