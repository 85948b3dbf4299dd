//! The tail-dependent group of a symbol (PROTOCOL sections 6 and 7): the symbol and every symbol linked to it by a
//! chain of pairs whose lower-tail coefficient exceeds the limit, one risk for concentration (R07).

use crate::error::{CoreError, CoreResult};
use crate::risk;

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
    let mut in_group = vec![false; cols];
    in_group[0] = true;
    let mut frontier = vec![0usize];
    while let Some(a) = frontier.pop() {
        for b in 1..cols {
            if in_group[b] {
                continue;
            }
            let (x, y) = (&columns[a], &columns[b]);
            let coefficient = risk::tail_dependence(x, y, q)?.max(risk::tail_dependence(y, x, q)?);
            if coefficient > limit {
                in_group[b] = true;
                frontier.push(b);
            }
        }
    }
    Ok((0..cols).filter(|&c| in_group[c]).collect())
}
