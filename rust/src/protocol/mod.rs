//! The ALL-USE protocol rules that are numbers: week types, protocol levels and the ATR regime,
//! drawdown protection and breakers, sizing and strike selection. Thresholds arrive from configuration.

pub mod drawdown;
pub mod level;
pub mod sizing;
pub mod strike;
pub mod week_type;
