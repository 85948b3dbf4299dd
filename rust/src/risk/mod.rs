//! Risk: tail measures of a P&L distribution (PROTOCOL section 6), tail dependence, performance
//! metrics of a return series (empyrical-reloaded definitions) and full revaluation of a book of
//! options and stock over price/volatility scenarios.
//!
//! Every function validates its input once and returns `CoreError::InvalidInput` naming the
//! argument (with the element index) instead of panicking.

mod kernel;
pub mod metrics;
pub mod revaluation;
pub mod tail;
pub mod var;

pub use metrics::{max_drawdown, metrics, Metrics};
pub use revaluation::{
    revalue, revalue_with_risk, Book, Position, PositionKind, Revaluation, ScenarioMatrix,
};
pub use tail::{quantile, tail_dependence, DEFAULT_TAIL_Q};
pub use var::{
    expected_shortfall, tail_count, tail_risk, value_at_risk, TailRisk, DEFAULT_CONFIDENCE,
};
