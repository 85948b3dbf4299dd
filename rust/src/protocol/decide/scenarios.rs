//! The scenarios a decision values its book over (PROTOCOL section 6): the joint daily returns of the book's
//! symbols, and the IV shifts that go with them (IV moves against the price, in proportion to the move, never
//! below 10% of today's IV), built once per market and reused by every revaluation of the day.

use crate::error::{check, CoreError, CoreResult};
use crate::risk::{self, Book, PositionKind, ScenarioMatrix};

/// Contract multiplier of an option position (shares per contract).
pub const OPTION_MULTIPLIER: f64 = 100.0;

/// One held (or proposed) position, as the revaluation needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    pub kind: PositionKind,
    /// Index of the position's symbol in the scenario columns.
    pub underlying: usize,
    /// Signed: contracts for options (negative short), shares for stock.
    pub quantity: f64,
    /// 1.0 for stock (unused).
    pub strike: f64,
    /// Years to expiry; 1.0 for stock (unused).
    pub t: f64,
}

/// The P&L vectors of the last few books valued over one set of scenarios: every account of a portfolio values
/// the same held book on the same day, so the revaluation is done once (keyed by the exact positions, bit for bit).
#[derive(Debug, Default)]
struct PnlMemo(std::sync::Mutex<Vec<MemoEntry>>);

/// A book's key (kind, column and the bits of quantity, strike and t per position) and its P&L per scenario.
type MemoEntry = (Vec<[u64; 5]>, Vec<f64>);

/// How many books the memo keeps.
const MEMO_BOOKS: usize = 16;

impl Clone for PnlMemo {
    fn clone(&self) -> Self {
        PnlMemo::default()
    }
}

impl PartialEq for PnlMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn memo_key(positions: &[Held]) -> Vec<[u64; 5]> {
    positions
        .iter()
        .map(|p| {
            [
                p.kind as u64,
                p.underlying as u64,
                p.quantity.to_bits(),
                p.strike.to_bits(),
                p.t.to_bits(),
            ]
        })
        .collect()
}

/// The length of every column of `columns` (the symbols' returns, one column each), or an error naming `columns`
/// when there is none (with `empty` as its reason) or the first column `columns[i]` of another length than column 0.
pub fn columns_of_one_length(columns: &[&[f64]], empty: &str) -> CoreResult<usize> {
    let Some(first) = columns.first() else {
        return Err(CoreError::invalid("columns", empty));
    };
    let rows = first.len();
    for (i, c) in columns.iter().enumerate() {
        if c.len() != rows {
            return Err(CoreError::invalid(
                format!("columns[{i}]"),
                format!("has {} values, column 0 has {rows}", c.len()),
            ));
        }
    }
    Ok(rows)
}

/// Scenario returns (rows x symbols, row-major), their IV shifts, and today's spot and IV per symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenarios {
    returns: Vec<f64>,
    shifts: Vec<f64>,
    rows: usize,
    cols: usize,
    spot: Vec<f64>,
    iv: Vec<f64>,
    rate: f64,
    horizon: f64,
    memo: PnlMemo,
}

impl Scenarios {
    /// IV shift of each scenario: max(-sensitivity x return, -0.9) x today's IV of the column.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        returns: Vec<f64>,
        rows: usize,
        cols: usize,
        spot: Vec<f64>,
        iv: Vec<f64>,
        iv_move_sensitivity: f64,
        horizon: f64,
        rate: f64,
    ) -> CoreResult<Self> {
        ScenarioMatrix::new("scenario_returns", &returns, rows, cols)?;
        for (name, xs) in [("spot", &spot), ("iv", &iv)] {
            if xs.len() != cols {
                return Err(CoreError::invalid(
                    name,
                    format!("has {} values for {cols} symbols", xs.len()),
                ));
            }
            check::all_finite(name, xs)?;
        }
        check::finite("iv_move_sensitivity", iv_move_sensitivity)?;
        check::finite("horizon", horizon)?;
        check::finite("rate", rate)?;
        let shifts = returns
            .chunks_exact(cols.max(1))
            .flat_map(|row| {
                row.iter().zip(&iv).map(|(r, v)| {
                    let relative = -iv_move_sensitivity * r;
                    let relative = if relative.is_nan() || relative >= -0.9 {
                        relative
                    } else {
                        -0.9
                    };
                    relative * v
                })
            })
            .collect();
        Ok(Scenarios {
            returns,
            shifts,
            rows,
            cols,
            spot,
            iv,
            rate,
            horizon,
            memo: PnlMemo::default(),
        })
    }

    /// `new` from the symbols' return columns given one by one (all of one length, the scenarios), laid out row by
    /// row here: the very scenarios `new` makes of the matrix whose columns they are.
    #[allow(clippy::too_many_arguments)]
    pub fn from_columns(
        columns: &[&[f64]],
        spot: Vec<f64>,
        iv: Vec<f64>,
        iv_move_sensitivity: f64,
        horizon: f64,
        rate: f64,
    ) -> CoreResult<Self> {
        let rows = columns_of_one_length(columns, "needs at least one symbol's column")?;
        let cols = columns.len();
        let mut returns = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            returns.extend(columns.iter().map(|c| c[r]));
        }
        Scenarios::new(
            returns,
            rows,
            cols,
            spot,
            iv,
            iv_move_sensitivity,
            horizon,
            rate,
        )
    }

    /// Scenarios (rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Symbols (columns).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// P&L of `positions` in each scenario by full revaluation over the horizon; zeros for an empty book. A book
    /// valued before over these scenarios is not valued again.
    pub fn book_pnl(&self, positions: &[Held]) -> CoreResult<Vec<f64>> {
        if positions.is_empty() {
            return Ok(vec![0.0; self.rows]);
        }
        let key = memo_key(positions);
        if let Ok(memo) = self.memo.0.lock() {
            if let Some((_, pnl)) = memo.iter().find(|(k, _)| *k == key) {
                return Ok(pnl.clone());
            }
        }
        let pnl = self.revalue(positions)?;
        if let Ok(mut memo) = self.memo.0.lock() {
            if memo.len() >= MEMO_BOOKS {
                memo.remove(0);
            }
            memo.push((key, pnl.clone()));
        }
        Ok(pnl)
    }

    fn revalue(&self, positions: &[Held]) -> CoreResult<Vec<f64>> {
        let mut book = Book::new();
        for (i, p) in positions.iter().enumerate() {
            let vol = *self.iv.get(p.underlying).ok_or_else(|| {
                CoreError::invalid(
                    "book.underlying",
                    format!(
                        "position {i}: index {} of {} symbols",
                        p.underlying, self.cols
                    ),
                )
            })?;
            book.kind.push(p.kind);
            book.underlying.push(p.underlying);
            book.quantity.push(p.quantity);
            book.multiplier.push(if p.kind == PositionKind::Stock {
                1.0
            } else {
                OPTION_MULTIPLIER
            });
            book.strike.push(p.strike);
            book.t.push(p.t);
            book.vol.push(vol);
            book.rate.push(self.rate);
            book.div.push(0.0);
        }
        let returns = ScenarioMatrix::new("scenario_returns", &self.returns, self.rows, self.cols)?;
        let shifts = ScenarioMatrix::new("vol_shifts", &self.shifts, self.rows, self.cols)?;
        risk::revalue(&book, &self.spot, &returns, Some(&shifts), self.horizon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one check of the return columns' shape (the scenario set's and the tail group's): their length, or the
    /// column named with the reason each caller gives when there is none.
    #[test]
    fn columns_of_one_length_gives_the_length_or_names_the_column() {
        let (a, b, c) = ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0]);
        assert_eq!(columns_of_one_length(&[&a, &b], "none"), Ok(3));
        assert_eq!(columns_of_one_length(&[&a[..0]], "none"), Ok(0));
        let err = columns_of_one_length(&[&a, &b, &c], "none").unwrap_err();
        assert_eq!(
            err,
            CoreError::invalid("columns[2]", "has 2 values, column 0 has 3")
        );
        let err = columns_of_one_length(&[], "needs at least one").unwrap_err();
        assert_eq!(err, CoreError::invalid("columns", "needs at least one"));
        assert!(
            Scenarios::from_columns(&[], vec![], vec![], 0.0, 1.0, 0.0).is_err_and(
                |e| e == CoreError::invalid("columns", "needs at least one symbol's column")
            )
        );
        assert!(
            crate::protocol::decide::group::tail_group_of_columns(&[], 0.05, 0.3).is_err_and(
                |e| e == CoreError::invalid("columns", "needs at least the symbol's column")
            )
        );
    }
}
