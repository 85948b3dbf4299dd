//! The tail-dependent group of a symbol (PROTOCOL sections 6 and 7): the symbol and every symbol linked to it by a
//! chain of pairs whose lower-tail coefficient exceeds the limit, one risk for concentration (R07).

use crate::error::{check, CoreError, CoreResult};
use crate::protocol::decide::scenarios::columns_of_one_length;
use crate::risk::tail::quantile_in_place;

/// Columns of `returns` (rows x cols, row-major; column 0 the symbol) in the symbol's group, in column order.
/// With fewer than 20 rows the tail cannot be read: the symbol alone.
pub fn tail_group(
    returns: &[f64],
    rows: usize,
    cols: usize,
    q: f64,
    limit: f64,
) -> CoreResult<Vec<usize>> {
    if cols == 0 || rows.checked_mul(cols) != Some(returns.len()) {
        return Err(CoreError::invalid(
            "returns",
            format!("has {} values, not {rows} x {cols}", returns.len()),
        ));
    }
    if rows < 20 {
        return Ok(vec![0]);
    }
    let columns: Vec<Vec<f64>> = (0..cols)
        .map(|c| returns.iter().skip(c).step_by(cols).copied().collect())
        .collect();
    let views: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
    tail_group_of_columns(&views, q, limit)
}

/// `tail_group` over the symbols' return columns given one by one (column 0 the symbol; all of one length), so a
/// caller holding the columns builds no matrix. Each column's q-quantile is computed once, not once per pair it
/// is in; the coefficients, and so the group and any error, are those of `risk::tail_dependence` pair by pair
/// (checks in the same order: the first pair's x, its y, q, then each further column as a y).
pub fn tail_group_of_columns(columns: &[&[f64]], q: f64, limit: f64) -> CoreResult<Vec<usize>> {
    let rows = columns_of_one_length(columns, "needs at least the symbol's column")?;
    if rows < 20 {
        return Ok(vec![0]);
    }
    let mut tail = Tails {
        columns,
        quantile: vec![None; columns.len()],
        checked: vec![false; columns.len()],
        q,
        q_checked: false,
        scratch: Vec::with_capacity(rows),
    };
    let cols = columns.len();
    let mut in_group = vec![false; cols];
    in_group[0] = true;
    let mut frontier = vec![0usize];
    while let Some(a) = frontier.pop() {
        for (b, member) in in_group.iter_mut().enumerate().skip(1) {
            if *member {
                continue;
            }
            let coefficient = tail.dependence(a, b)?.max(tail.dependence(b, a)?);
            if coefficient > limit {
                *member = true;
                frontier.push(b);
            }
        }
    }
    Ok((0..cols).filter(|&c| in_group[c]).collect())
}

/// The columns of one group measurement with each column's finiteness checked and q-quantile found once.
struct Tails<'a> {
    columns: &'a [&'a [f64]],
    quantile: Vec<Option<f64>>,
    checked: Vec<bool>,
    q: f64,
    q_checked: bool,
    scratch: Vec<f64>,
}

impl Tails<'_> {
    fn check(&mut self, c: usize, field: &str) -> CoreResult<()> {
        if !self.checked[c] {
            check::all_finite(field, self.columns[c])?;
            self.checked[c] = true;
        }
        Ok(())
    }

    fn quantile_of(&mut self, c: usize) -> f64 {
        if let Some(v) = self.quantile[c] {
            return v;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(self.columns[c]);
        let v = quantile_in_place(&mut self.scratch, self.q);
        self.quantile[c] = Some(v);
        v
    }

    /// `risk::tail_dependence(columns[x], columns[y], q)`: #(x <= Qx and y <= Qy) / #(x <= Qx).
    fn dependence(&mut self, x: usize, y: usize) -> CoreResult<f64> {
        self.check(x, "x")?;
        self.check(y, "y")?;
        if !self.q_checked {
            check::open_unit("q", self.q)?;
            self.q_checked = true;
        }
        let (qx, qy) = (self.quantile_of(x), self.quantile_of(y));
        let (mut in_x, mut in_both) = (0usize, 0usize);
        for (&a, &b) in self.columns[x].iter().zip(self.columns[y]) {
            if a <= qx {
                in_x += 1;
                if b <= qy {
                    in_both += 1;
                }
            }
        }
        // The q-quantile is never below the minimum, so in_x >= 1.
        Ok(in_both as f64 / in_x as f64)
    }
}
