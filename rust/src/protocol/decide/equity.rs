//! Equity at market (PROTOCOL section 10): cash plus the signed market value of held positions, a short option
//! counting as a liability at its Black-Scholes mark. Every decision reads its account's equity and the
//! portfolio's; the backtest reads every account's each day, so the marks are taken here in one pass.

use crate::error::{CoreError, CoreResult};
use crate::pricing::{self, OptionKind};
use crate::risk::PositionKind;

use super::scenarios::OPTION_MULTIPLIER;

/// One held position with today's price and IV of its symbol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marked {
    pub kind: PositionKind,
    /// Signed: contracts for options (negative short), shares for stock.
    pub quantity: f64,
    /// Unused for stock.
    pub strike: f64,
    /// Calendar days from today to expiry (negative once expired); None without an expiry (an option without
    /// one cannot be priced: t is 0 and the pricing error names it). Unused for stock.
    pub days_to_expiry: Option<i64>,
    pub spot: f64,
    pub iv: f64,
}

/// Calendar time to expiry in years (Actual/365), at least one hour so a same-day option still prices; 0 without
/// an expiry.
pub fn years_to_expiry(days: Option<i64>) -> f64 {
    match days {
        // Day counts of calendar dates fit an f64 exactly.
        Some(days) => days.max(0) as f64 / 365.0 + 1.0 / (365.0 * 24.0),
        None => 0.0,
    }
}

/// Value per share of `p` at today's spot and IV (stock: the spot).
pub fn mark(p: &Marked, rate: f64) -> CoreResult<f64> {
    let kind = match p.kind {
        PositionKind::Stock => return Ok(p.spot),
        PositionKind::Call => OptionKind::Call,
        PositionKind::Put => OptionKind::Put,
    };
    let t = years_to_expiry(p.days_to_expiry);
    pricing::bs_price(kind, p.spot, p.strike, t, p.iv.max(1e-4), rate, 0.0)
}

/// Signed market value of `p` in dollars (a short option is a liability).
pub fn market_value(p: &Marked, rate: f64) -> CoreResult<f64> {
    let multiplier = if p.kind == PositionKind::Stock {
        1.0
    } else {
        OPTION_MULTIPLIER
    };
    Ok(p.quantity * multiplier * mark(p, rate)?)
}

/// `cash` plus the market value of every position of `book`, added in order (the same sum, bit for bit, as
/// adding one position after another); an error names the pricing input at fault.
pub fn value_at_market(cash: f64, book: &[Marked], rate: f64) -> CoreResult<f64> {
    finite_cash("cash", cash)?;
    let mut total = cash;
    for p in book {
        total += market_value(p, rate)?;
    }
    Ok(total)
}

/// A held position, the account whose equity it counts in (an index into the accounts' cash; None when that
/// account is not asked for) and whether it counts in the portfolio's equity (false once its account was merged
/// away).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holding {
    pub marked: Marked,
    pub account: Option<usize>,
    pub counted: bool,
}

/// The equities of some accounts and of the portfolio.
#[derive(Debug, Clone, PartialEq)]
pub struct Equities {
    pub accounts: Vec<f64>,
    pub portfolio: f64,
}

/// Each account's cash plus the market value of its positions, and the portfolio's cash plus the value of every
/// counted position, from one mark per position. Positions are added in book order, so each sum is the one
/// `value_at_market` gives over the same positions.
pub fn equities(
    account_cash: Vec<f64>,
    portfolio_cash: f64,
    book: &[Holding],
    rate: f64,
) -> CoreResult<Equities> {
    for &cash in &account_cash {
        finite_cash("account_cash", cash)?;
    }
    finite_cash("portfolio_cash", portfolio_cash)?;
    let mut accounts = account_cash;
    let mut portfolio = portfolio_cash;
    for (i, h) in book.iter().enumerate() {
        if h.account.is_none() && !h.counted {
            continue;
        }
        let value = market_value(&h.marked, rate)?;
        if let Some(a) = h.account {
            let n = accounts.len();
            let slot = accounts.get_mut(a).ok_or_else(|| {
                CoreError::invalid(
                    "account",
                    format!("position {i}: index {a} of {n} accounts"),
                )
            })?;
            *slot += value;
        }
        if h.counted {
            portfolio += value;
        }
    }
    Ok(Equities {
        accounts,
        portfolio,
    })
}

fn finite_cash(field: &str, cash: f64) -> CoreResult<()> {
    if cash.is_finite() {
        Ok(())
    } else {
        Err(CoreError::invalid(
            field,
            format!("must be finite, got {cash}"),
        ))
    }
}
