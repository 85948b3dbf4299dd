//! Full revaluation of a book of options and stock over scenarios of underlying returns and
//! implied-volatility shifts (PROTOCOL section 6, pre-trade risk).
//!
//! P&L(s) = sum_i quantity_i x multiplier_i x (V_i(scenario s) - V_i(today)). Options are priced
//! with Black-Scholes-Merton at t - horizon (intrinsic value once that is <= 0), stock linearly.
//! The book is validated once; per-position constants (log strike, discount factors, sqrt t) are
//! hoisted out of the scenario loop, which runs in parallel over scenarios for large problems.

use rayon::prelude::*;

use super::kernel::{log_spot_column, Lanes, LiveOption};
use super::var::{tail_count, tail_risk_in_place};
use crate::error::{check, CoreError, CoreResult};
use crate::pricing::{bs_price_unchecked, validate_inputs, OptionKind};

/// Scenarios per parallel work item.
const SCENARIO_CHUNK: usize = 256;
/// Below this many (scenario, position) pairs the loop stays on the calling thread.
const PARALLEL_THRESHOLD: usize = 20_000;

/// What a position holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PositionKind {
    Stock,
    Call,
    Put,
}

impl PositionKind {
    /// The integer code the Python adapter uses: 0 stock, 1 call, 2 put.
    pub const fn code(self) -> i64 {
        match self {
            PositionKind::Stock => 0,
            PositionKind::Call => 1,
            PositionKind::Put => 2,
        }
    }

    /// The kind with code 0, 1 or 2; None for any other code.
    pub const fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(PositionKind::Stock),
            1 => Some(PositionKind::Call),
            2 => Some(PositionKind::Put),
            _ => None,
        }
    }

    /// Parses "stock", "call" or "put" (any case); anything else names `book.kind`.
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "stock" | "s" => Ok(PositionKind::Stock),
            "call" | "c" => Ok(PositionKind::Call),
            "put" | "p" => Ok(PositionKind::Put),
            _ => Err(CoreError::invalid(
                "book.kind",
                format!("must be 'stock', 'call' or 'put', got '{s}'"),
            )),
        }
    }

    /// The option kind, or None for stock.
    pub const fn option_kind(self) -> Option<OptionKind> {
        match self {
            PositionKind::Stock => None,
            PositionKind::Call => Some(OptionKind::Call),
            PositionKind::Put => Some(OptionKind::Put),
        }
    }
}

/// One position, the row view of a [`Book`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub kind: PositionKind,
    /// Index of the underlying in the spot vector and the scenario columns.
    pub underlying: usize,
    /// Signed size in contracts (options) or shares (stock); negative is short.
    pub quantity: f64,
    /// Units per contract: 100 for listed options, 1 for stock.
    pub multiplier: f64,
    /// Option fields; ignored (conventionally NaN) for stock.
    pub strike: f64,
    pub t: f64,
    pub vol: f64,
    pub rate: f64,
    pub div: f64,
}

impl Position {
    /// `quantity` shares of underlying `underlying` (multiplier 1).
    pub fn stock(underlying: usize, quantity: f64) -> Self {
        Position {
            kind: PositionKind::Stock,
            underlying,
            quantity,
            multiplier: 1.0,
            strike: f64::NAN,
            t: f64::NAN,
            vol: f64::NAN,
            rate: f64::NAN,
            div: f64::NAN,
        }
    }

    /// `quantity` option contracts (multiplier 100).
    #[allow(clippy::too_many_arguments)]
    pub fn option(
        kind: OptionKind,
        underlying: usize,
        quantity: f64,
        strike: f64,
        t: f64,
        vol: f64,
        rate: f64,
        div: f64,
    ) -> Self {
        let kind = match kind {
            OptionKind::Call => PositionKind::Call,
            OptionKind::Put => PositionKind::Put,
        };
        Position {
            kind,
            underlying,
            quantity,
            multiplier: 100.0,
            strike,
            t,
            vol,
            rate,
            div,
        }
    }

    /// The same position with another multiplier.
    pub fn with_multiplier(self, multiplier: f64) -> Self {
        Position { multiplier, ..self }
    }
}

/// A book of positions as a struct of arrays (one entry per position in every field).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    pub kind: Vec<PositionKind>,
    pub underlying: Vec<usize>,
    pub quantity: Vec<f64>,
    pub multiplier: Vec<f64>,
    pub strike: Vec<f64>,
    pub t: Vec<f64>,
    pub vol: Vec<f64>,
    pub rate: Vec<f64>,
    pub div: Vec<f64>,
}

impl Book {
    /// An empty book.
    pub fn new() -> Self {
        Book::default()
    }

    /// A book holding `positions` in order.
    pub fn from_positions(positions: impl IntoIterator<Item = Position>) -> Self {
        let mut book = Book::new();
        for p in positions {
            book.push(p);
        }
        book
    }

    /// Appends one position.
    pub fn push(&mut self, p: Position) {
        self.kind.push(p.kind);
        self.underlying.push(p.underlying);
        self.quantity.push(p.quantity);
        self.multiplier.push(p.multiplier);
        self.strike.push(p.strike);
        self.t.push(p.t);
        self.vol.push(p.vol);
        self.rate.push(p.rate);
        self.div.push(p.div);
    }

    /// Number of positions (the length of `kind`).
    pub fn len(&self) -> usize {
        self.kind.len()
    }

    /// True when the book holds no position.
    pub fn is_empty(&self) -> bool {
        self.kind.is_empty()
    }

    /// Checks every field has one entry per position, each underlying index is below
    /// `n_underlyings`, quantities are finite, multipliers positive, and option fields are valid
    /// Black-Scholes inputs. Errors name `book.<field>` and the position.
    pub fn validate(&self, n_underlyings: usize) -> CoreResult<()> {
        let n = self.len();
        let lengths = [
            ("book.underlying", self.underlying.len()),
            ("book.quantity", self.quantity.len()),
            ("book.multiplier", self.multiplier.len()),
            ("book.strike", self.strike.len()),
            ("book.t", self.t.len()),
            ("book.vol", self.vol.len()),
            ("book.rate", self.rate.len()),
            ("book.div", self.div.len()),
        ];
        for (field, len) in lengths {
            if len != n {
                return Err(CoreError::invalid(
                    field,
                    format!("has {len} entries, but book.kind has {n} positions"),
                ));
            }
        }
        for i in 0..n {
            let position = |e: CoreError| {
                CoreError::invalid(
                    format!("book.{}", e.field()),
                    format!("position {i}: {}", e.reason()),
                )
            };
            if self.underlying[i] >= n_underlyings {
                return Err(CoreError::invalid(
                    "book.underlying",
                    format!(
                        "position {i}: index {} is out of range for {n_underlyings} underlyings",
                        self.underlying[i]
                    ),
                ));
            }
            check::finite("quantity", self.quantity[i]).map_err(position)?;
            check::positive("multiplier", self.multiplier[i]).map_err(position)?;
            if self.kind[i] != PositionKind::Stock {
                // Spot is checked separately; 1.0 stands in for it here.
                validate_inputs(
                    1.0,
                    self.strike[i],
                    self.t[i],
                    self.vol[i],
                    self.rate[i],
                    self.div[i],
                )
                .map_err(position)?;
            }
        }
        Ok(())
    }
}

/// A row-major matrix of scenarios (one row per scenario, one column per underlying).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScenarioMatrix<'a> {
    data: &'a [f64],
    rows: usize,
    cols: usize,
}

impl<'a> ScenarioMatrix<'a> {
    /// Wraps `data` (row-major, `rows` x `cols`); a length mismatch names `field`.
    pub fn new(field: &str, data: &'a [f64], rows: usize, cols: usize) -> CoreResult<Self> {
        match rows.checked_mul(cols) {
            Some(len) if len == data.len() => Ok(ScenarioMatrix { data, rows, cols }),
            _ => Err(CoreError::invalid(
                field,
                format!("has {} values, which is not {rows} x {cols}", data.len()),
            )),
        }
    }

    /// Number of scenarios.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of underlyings.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The row-major values.
    pub fn data(&self) -> &'a [f64] {
        self.data
    }
}

/// The P&L of every scenario together with its tail measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Revaluation {
    /// One P&L per scenario, in the scenarios' order.
    pub pnl: Vec<f64>,
    /// ES of `pnl` at the requested level, a positive loss.
    pub expected_shortfall: f64,
    /// VaR of `pnl` at the requested level, a positive loss.
    pub value_at_risk: f64,
}

/// An option past its expiry at the horizon: worth its intrinsic value in every scenario.
#[derive(Debug, Clone, Copy)]
struct ExpiredLeg {
    underlying: usize,
    /// +1 for a call, -1 for a put.
    sign: f64,
    strike: f64,
    /// quantity x multiplier.
    scale: f64,
    /// Today's value.
    today: f64,
}

/// An option still alive at the horizon.
#[derive(Debug, Clone, Copy)]
struct LiveLeg {
    underlying: usize,
    /// quantity x multiplier.
    scale: f64,
    /// Today's value.
    today: f64,
    option: LiveOption,
}

/// A stock position: P&L = scale x return.
#[derive(Debug, Clone, Copy)]
struct StockLeg {
    underlying: usize,
    /// quantity x multiplier x today's spot.
    scale: f64,
}

/// The book split by how each position is revalued, constants hoisted.
#[derive(Debug, Default)]
struct Legs {
    stocks: Vec<StockLeg>,
    expired: Vec<ExpiredLeg>,
    live: Vec<LiveLeg>,
}

impl Legs {
    fn count(&self) -> usize {
        self.stocks.len() + self.expired.len() + self.live.len()
    }
}

fn validate_scenarios(
    book: &Book,
    spot: &[f64],
    returns: &ScenarioMatrix<'_>,
    vol_shifts: Option<&ScenarioMatrix<'_>>,
    horizon: f64,
) -> CoreResult<()> {
    check::non_empty("spot", spot)?;
    for (i, &s) in spot.iter().enumerate() {
        if !(s.is_finite() && s > 0.0) {
            return Err(CoreError::invalid(
                "spot",
                format!("element {i} must be a finite number > 0, got {s}"),
            ));
        }
    }
    check::non_negative("horizon", horizon)?;
    book.validate(spot.len())?;
    if returns.cols() != spot.len() {
        return Err(CoreError::invalid(
            "scenario_returns",
            format!(
                "has {} columns, but spot has {} underlyings",
                returns.cols(),
                spot.len()
            ),
        ));
    }
    if returns.rows() == 0 {
        return Err(CoreError::invalid(
            "scenario_returns",
            "must hold at least one scenario",
        ));
    }
    let cols = returns.cols();
    for (j, &r) in returns.data().iter().enumerate() {
        if !(r.is_finite() && r > -1.0) {
            return Err(CoreError::invalid(
                "scenario_returns",
                format!(
                    "element ({}, {}) must be a finite simple return > -1 (a spot above 0), got {r}",
                    j / cols,
                    j % cols
                ),
            ));
        }
    }
    if let Some(shifts) = vol_shifts {
        if shifts.rows() != returns.rows() || shifts.cols() != cols {
            return Err(CoreError::invalid(
                "vol_shifts",
                format!(
                    "has shape ({}, {}), which does not match scenario_returns ({}, {})",
                    shifts.rows(),
                    shifts.cols(),
                    returns.rows(),
                    cols
                ),
            ));
        }
        // The lowest volatility of a live option on each underlying bounds every shifted vol.
        let mut lowest = vec![f64::INFINITY; cols];
        for i in 0..book.len() {
            if book.kind[i] != PositionKind::Stock && book.t[i] - horizon > 0.0 {
                let u = book.underlying[i];
                lowest[u] = lowest[u].min(book.vol[i]);
            }
        }
        for (row, values) in shifts.data().chunks_exact(cols).enumerate() {
            for (col, (&shift, &low)) in values.iter().zip(&lowest).enumerate() {
                if !shift.is_finite() || (low.is_finite() && low + shift <= 0.0) {
                    return Err(CoreError::invalid(
                        "vol_shifts",
                        format!(
                            "element ({row}, {col}) must be finite and keep every option's \
                             volatility above 0 (lowest vol {low} + shift {shift})"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn legs(book: &Book, spot: &[f64], horizon: f64) -> Legs {
    let mut legs = Legs::default();
    for i in 0..book.len() {
        let underlying = book.underlying[i];
        let s0 = spot[underlying];
        let scale = book.quantity[i] * book.multiplier[i];
        let Some(kind) = book.kind[i].option_kind() else {
            legs.stocks.push(StockLeg {
                underlying,
                scale: scale * s0,
            });
            continue;
        };
        let (strike, t, vol, rate, div) = (
            book.strike[i],
            book.t[i],
            book.vol[i],
            book.rate[i],
            book.div[i],
        );
        let today = bs_price_unchecked(kind, s0, strike, t, vol, rate, div);
        let tau = t - horizon;
        if tau <= 0.0 {
            legs.expired.push(ExpiredLeg {
                underlying,
                sign: kind.sign(),
                strike,
                scale,
                today,
            });
            continue;
        }
        let fwd_disc = (-div * tau).exp();
        let strike_disc = strike * (-rate * tau).exp();
        let option = LiveOption {
            sign: kind.sign(),
            ln_strike: strike.ln(),
            sqrt_t: tau.sqrt(),
            vol,
            drift: (rate - div) * tau,
            fwd_disc,
            strike_disc,
            fwd_over_strike: fwd_disc / strike_disc,
            strike_over_fwd: strike_disc / fwd_disc,
        };
        legs.live.push(LiveLeg {
            underlying,
            scale,
            today,
            option,
        });
    }
    legs
}

/// Per-chunk columns (underlying-major) of the scenario quantities the kernel reads.
struct Columns {
    len: usize,
    ret: Vec<f64>,
    spot: Vec<f64>,
    ln_spot: Vec<f64>,
    inv_spot: Vec<f64>,
    vol_shift: Vec<f64>,
}

impl Columns {
    /// Transposes scenarios first..first + len of the row-major inputs into columns; the logs of
    /// the scenario spots are taken in vector registers.
    #[inline(always)]
    fn fill<S: pulp::Simd>(
        simd: S,
        spot: &[f64],
        returns: &[f64],
        shifts: Option<&[f64]>,
        first: usize,
        len: usize,
    ) -> Columns {
        let n_u = spot.len();
        let size = n_u * len;
        let mut c = Columns {
            len,
            ret: vec![0.0; size],
            spot: vec![0.0; size],
            ln_spot: vec![0.0; size],
            inv_spot: vec![0.0; size],
            vol_shift: vec![0.0; size],
        };
        for s in 0..len {
            let row = (first + s) * n_u;
            for (u, &s0) in spot.iter().enumerate() {
                let r = returns[row + u];
                let s1 = s0 * (1.0 + r);
                let j = u * len + s;
                c.ret[j] = r;
                c.spot[j] = s1;
                c.inv_spot[j] = 1.0 / s1;
                if let Some(shifts) = shifts {
                    c.vol_shift[j] = shifts[row + u];
                }
            }
        }
        for (u, &s0) in spot.iter().enumerate() {
            let columns = u * len..(u + 1) * len;
            log_spot_column(simd, s0, &c.ret[columns.clone()], &mut c.ln_spot[columns]);
        }
        c
    }

    fn column<'a>(&self, values: &'a [f64], underlying: usize) -> &'a [f64] {
        &values[underlying * self.len..(underlying + 1) * self.len]
    }
}

/// One chunk's work, compiled by pulp for each instruction set and run with the best one.
struct ChunkKernel<'a> {
    legs: &'a Legs,
    spot: &'a [f64],
    returns: &'a [f64],
    shifts: Option<&'a [f64]>,
    first: usize,
    out: &'a mut [f64],
}

impl pulp::WithSimd for ChunkKernel<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let (legs, out) = (self.legs, self.out);
        let c = &Columns::fill(
            simd,
            self.spot,
            self.returns,
            self.shifts,
            self.first,
            out.len(),
        );
        for leg in &legs.stocks {
            for (slot, &r) in out.iter_mut().zip(c.column(&c.ret, leg.underlying)) {
                *slot += leg.scale * r;
            }
        }
        for leg in &legs.expired {
            for (slot, &s) in out.iter_mut().zip(c.column(&c.spot, leg.underlying)) {
                *slot += leg.scale * ((leg.sign * (s - leg.strike)).max(0.0) - leg.today);
            }
        }
        for leg in &legs.live {
            let u = leg.underlying;
            let columns = Lanes {
                spot: c.column(&c.spot, u),
                ln_spot: c.column(&c.ln_spot, u),
                inv_spot: c.column(&c.inv_spot, u),
                vol_shift: c.column(&c.vol_shift, u),
            };
            leg.option
                .accumulate(simd, leg.scale, leg.today, columns, out);
        }
    }
}

/// Adds every leg's P&L for one chunk of scenarios into `out` (one slot per scenario).
fn revalue_chunk(
    arch: pulp::Arch,
    legs: &Legs,
    spot: &[f64],
    returns: &[f64],
    shifts: Option<&[f64]>,
    first: usize,
    out: &mut [f64],
) {
    arch.dispatch(ChunkKernel {
        legs,
        spot,
        returns,
        shifts,
        first,
        out,
    });
}

/// The P&L of `book` in every scenario: `spot` per underlying today, `scenario_returns` simple
/// returns (scenarios x underlyings), optional absolute `vol_shifts` of the same shape added to
/// every option's vol on that underlying, and a `horizon` in years by which each option's t
/// decreases (an option with t - horizon <= 0 is worth its intrinsic value).
pub fn revalue(
    book: &Book,
    spot: &[f64],
    scenario_returns: &ScenarioMatrix<'_>,
    vol_shifts: Option<&ScenarioMatrix<'_>>,
    horizon: f64,
) -> CoreResult<Vec<f64>> {
    validate_scenarios(book, spot, scenario_returns, vol_shifts, horizon)?;
    let legs = legs(book, spot, horizon);
    let returns = scenario_returns.data();
    let shifts = vol_shifts.map(|m| m.data());
    let mut pnl = vec![0.0_f64; scenario_returns.rows()];
    let work = pnl.len().saturating_mul(legs.count());
    let arch = pulp::Arch::new();
    let run = |c: usize, out: &mut [f64]| {
        revalue_chunk(arch, &legs, spot, returns, shifts, c * SCENARIO_CHUNK, out)
    };
    if work >= PARALLEL_THRESHOLD {
        pnl.par_chunks_mut(SCENARIO_CHUNK)
            .enumerate()
            .for_each(|(c, out)| run(c, out));
    } else {
        pnl.chunks_mut(SCENARIO_CHUNK)
            .enumerate()
            .for_each(|(c, out)| run(c, out));
    }
    Ok(pnl)
}

/// [`revalue`] plus the ES and VaR of the resulting P&L at `confidence` (PROTOCOL section 6).
pub fn revalue_with_risk(
    book: &Book,
    spot: &[f64],
    scenario_returns: &ScenarioMatrix<'_>,
    vol_shifts: Option<&ScenarioMatrix<'_>>,
    horizon: f64,
    confidence: f64,
) -> CoreResult<Revaluation> {
    check::open_unit("confidence", confidence)?;
    let pnl = revalue(book, spot, scenario_returns, vol_shifts, horizon)?;
    let k = tail_count(pnl.len(), confidence)?;
    let mut scratch = pnl.clone();
    let tail = tail_risk_in_place(&mut scratch, k);
    Ok(Revaluation {
        pnl,
        expected_shortfall: tail.expected_shortfall,
        value_at_risk: tail.value_at_risk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_book() -> Book {
        Book::from_positions([
            Position::option(OptionKind::Put, 0, -3.0, 95.0, 5.0 / 365.0, 0.35, 0.04, 0.0),
            Position::option(
                OptionKind::Call,
                0,
                -2.0,
                110.0,
                12.0 / 365.0,
                0.30,
                0.04,
                0.01,
            ),
            Position::option(
                OptionKind::Put,
                1,
                -1.0,
                190.0,
                0.5 / 365.0,
                0.25,
                0.03,
                0.0,
            ),
            Position::stock(1, 200.0),
            Position::option(OptionKind::Call, 1, 4.0, 210.0, 0.25, 0.28, 0.03, 0.005)
                .with_multiplier(10.0),
        ])
    }

    /// The straightforward way: reprice every position with the validated pricer.
    fn naive(book: &Book, spot: &[f64], returns: &[f64], shifts: &[f64], horizon: f64) -> Vec<f64> {
        let n_u = spot.len();
        (0..returns.len() / n_u)
            .map(|s| {
                (0..book.len())
                    .map(|i| {
                        let u = book.underlying[i];
                        let s1 = spot[u] * (1.0 + returns[s * n_u + u]);
                        let scale = book.quantity[i] * book.multiplier[i];
                        match book.kind[i].option_kind() {
                            None => scale * (s1 - spot[u]),
                            Some(kind) => {
                                let (k, t, v, r, q) = (
                                    book.strike[i],
                                    book.t[i],
                                    book.vol[i],
                                    book.rate[i],
                                    book.div[i],
                                );
                                let v0 = bs_price_unchecked(kind, spot[u], k, t, v, r, q);
                                let v1 = if t - horizon > 0.0 {
                                    bs_price_unchecked(
                                        kind,
                                        s1,
                                        k,
                                        t - horizon,
                                        v + shifts[s * n_u + u],
                                        r,
                                        q,
                                    )
                                } else {
                                    (kind.sign() * (s1 - k)).max(0.0)
                                };
                                scale * (v1 - v0)
                            }
                        }
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn matches_naive_repricing_sequential_and_parallel() {
        let book = sample_book();
        let spot = [100.0, 200.0];
        for n_s in [7usize, 5000] {
            let returns: Vec<f64> = (0..n_s * 2)
                .map(|j| ((j * 7919 % 401) as f64 - 200.0) / 2000.0)
                .collect();
            let shifts: Vec<f64> = (0..n_s * 2)
                .map(|j| ((j * 104_729 % 101) as f64 - 50.0) / 1000.0)
                .collect();
            let rm = ScenarioMatrix::new("scenario_returns", &returns, n_s, 2).unwrap();
            let sm = ScenarioMatrix::new("vol_shifts", &shifts, n_s, 2).unwrap();
            let horizon = 1.0 / 252.0;
            let got = revalue(&book, &spot, &rm, Some(&sm), horizon).unwrap();
            let want = naive(&book, &spot, &returns, &shifts, horizon);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn unchanged_scenario_over_zero_horizon_is_zero() {
        let book = sample_book();
        let zero = [0.0, 0.0];
        let rm = ScenarioMatrix::new("scenario_returns", &zero, 1, 2).unwrap();
        let pnl = revalue(&book, &[100.0, 200.0], &rm, None, 0.0).unwrap();
        assert!(pnl[0].abs() < 1e-9);
    }

    #[test]
    fn expired_option_is_worth_intrinsic() {
        let book = Book::from_positions([Position::option(
            OptionKind::Put,
            0,
            1.0,
            100.0,
            0.001,
            0.2,
            0.0,
            0.0,
        )]);
        let r = [-0.1];
        let rm = ScenarioMatrix::new("scenario_returns", &r, 1, 1).unwrap();
        let pnl = revalue(&book, &[100.0], &rm, None, 1.0 / 252.0).unwrap();
        let today = bs_price_unchecked(OptionKind::Put, 100.0, 100.0, 0.001, 0.2, 0.0, 0.0);
        assert!((pnl[0] - 100.0 * (10.0 - today)).abs() < 1e-9);
    }

    #[test]
    fn stock_only_book_is_linear() {
        let book = Book::from_positions([Position::stock(0, 150.0), Position::stock(1, -40.0)]);
        let r = [0.01, -0.02, -0.05, 0.03];
        let r2: Vec<f64> = r.iter().map(|x| 2.0 * x).collect();
        let spot = [50.0, 80.0];
        let a = revalue(
            &book,
            &spot,
            &ScenarioMatrix::new("r", &r, 2, 2).unwrap(),
            None,
            1.0,
        )
        .unwrap();
        let b = revalue(
            &book,
            &spot,
            &ScenarioMatrix::new("r", &r2, 2, 2).unwrap(),
            None,
            1.0,
        )
        .unwrap();
        assert_eq!(a[0], 150.0 * 50.0 * 0.01 + -40.0 * 80.0 * -0.02);
        assert_eq!(b, a.iter().map(|x| 2.0 * x).collect::<Vec<_>>());
    }

    #[test]
    fn with_risk_reports_tail() {
        let book = Book::from_positions([Position::stock(0, 1.0)]);
        let r: Vec<f64> = (1..=40).map(|i| -(i as f64) / 100.0).collect();
        let rm = ScenarioMatrix::new("scenario_returns", &r, 40, 1).unwrap();
        let out = revalue_with_risk(&book, &[100.0], &rm, None, 0.0, 0.95).unwrap();
        // k = 2: losses 40 and 39.
        assert!((out.value_at_risk - 39.0).abs() < 1e-12);
        assert!((out.expected_shortfall - 39.5).abs() < 1e-12);
    }

    #[test]
    fn bad_input_names_the_field() {
        let book = sample_book();
        let ok = [0.0, 0.0];
        let rm = ScenarioMatrix::new("scenario_returns", &ok, 1, 2).unwrap();
        let field =
            |r: CoreResult<Vec<f64>>| r.err().map(|e| e.field().to_string()).unwrap_or_default();
        let mut b = book.clone();
        b.strike[1] = -5.0;
        assert_eq!(
            field(revalue(&b, &[100.0, 200.0], &rm, None, 0.0)),
            "book.strike"
        );
        let mut b = book.clone();
        b.vol[0] = f64::NAN;
        assert_eq!(
            field(revalue(&b, &[100.0, 200.0], &rm, None, 0.0)),
            "book.vol"
        );
        let mut b = book.clone();
        b.underlying[0] = 2;
        assert_eq!(
            field(revalue(&b, &[100.0, 200.0], &rm, None, 0.0)),
            "book.underlying"
        );
        let mut b = book.clone();
        b.div.pop();
        assert_eq!(
            field(revalue(&b, &[100.0, 200.0], &rm, None, 0.0)),
            "book.div"
        );
        assert_eq!(
            field(revalue(&book, &[100.0, -1.0], &rm, None, 0.0)),
            "spot"
        );
        assert_eq!(
            field(revalue(&book, &[100.0], &rm, None, 0.0)),
            "book.underlying"
        );
        assert_eq!(
            field(revalue(&book, &[100.0, 200.0], &rm, None, -1.0)),
            "horizon"
        );
        let crash = [0.0, -1.0];
        let cm = ScenarioMatrix::new("scenario_returns", &crash, 1, 2).unwrap();
        let e = revalue(&book, &[100.0, 200.0], &cm, None, 0.0)
            .err()
            .unwrap();
        assert_eq!(e.field(), "scenario_returns");
        assert!(e.reason().contains("(0, 1)"));
        let big = [0.0, -0.5];
        let sm = ScenarioMatrix::new("vol_shifts", &big, 1, 2).unwrap();
        assert_eq!(
            field(revalue(&book, &[100.0, 200.0], &rm, Some(&sm), 0.0)),
            "vol_shifts"
        );
        let wrong = [0.0, 0.0, 0.0, 0.0];
        let sm = ScenarioMatrix::new("vol_shifts", &wrong, 2, 2).unwrap();
        assert_eq!(
            field(revalue(&book, &[100.0, 200.0], &rm, Some(&sm), 0.0)),
            "vol_shifts"
        );
        assert!(ScenarioMatrix::new("scenario_returns", &wrong, 3, 2).is_err());
        assert!(ScenarioMatrix::new("scenario_returns", &wrong, usize::MAX, 2).is_err());
        let r = revalue_with_risk(&book, &[100.0, 200.0], &rm, None, 0.0, 1.0);
        assert_eq!(
            r.err().map(|e| e.field().to_string()),
            Some("confidence".to_string())
        );
        assert_eq!(
            PositionKind::parse("future")
                .err()
                .map(|e| e.field().to_string()),
            Some("book.kind".into())
        );
        assert_eq!(
            PositionKind::from_code(PositionKind::Put.code()),
            Some(PositionKind::Put)
        );
        assert_eq!(PositionKind::from_code(7), None);
    }

    #[test]
    fn empty_book_has_zero_pnl() {
        let r = [0.05];
        let rm = ScenarioMatrix::new("scenario_returns", &r, 1, 1).unwrap();
        assert_eq!(
            revalue(&Book::new(), &[10.0], &rm, None, 0.0).unwrap(),
            vec![0.0]
        );
    }

    fn arb_position() -> impl Strategy<Value = Position> {
        (
            0i64..4,
            0usize..3,
            prop::num::f64::ANY,
            prop::num::f64::ANY,
            prop::num::f64::ANY,
            prop::num::f64::ANY,
            prop::num::f64::ANY,
            prop::num::f64::ANY,
            prop::num::f64::ANY,
        )
            .prop_map(
                |(code, underlying, quantity, multiplier, strike, t, vol, rate, div)| Position {
                    kind: PositionKind::from_code(code).unwrap_or(PositionKind::Call),
                    underlying,
                    quantity,
                    multiplier,
                    strike,
                    t,
                    vol,
                    rate,
                    div,
                },
            )
    }

    fn arb_valid_position() -> impl Strategy<Value = Position> {
        (
            0i64..3,
            0usize..2,
            -50.0f64..50.0,
            1.0f64..500.0,
            0.0001f64..2.0,
            0.01f64..3.0,
            -0.1f64..0.2,
            0.0f64..0.1,
        )
            .prop_map(|(code, u, q, k, t, v, r, d)| Position {
                kind: PositionKind::from_code(code).unwrap_or(PositionKind::Stock),
                underlying: u,
                quantity: q,
                multiplier: 100.0,
                strike: k,
                t,
                vol: v,
                rate: r,
                div: d,
            })
    }

    proptest! {
        #[test]
        fn never_panics(
            positions in prop::collection::vec(arb_position(), 0..4),
            spot in prop::collection::vec(prop::num::f64::ANY, 0..3),
            returns in prop::collection::vec(prop::num::f64::ANY, 0..9),
            shifts in prop::collection::vec(prop::num::f64::ANY, 0..9),
            rows in 0usize..5,
            horizon in prop::num::f64::ANY,
            confidence in prop::num::f64::ANY,
        ) {
            let book = Book::from_positions(positions);
            let cols = spot.len();
            if let Ok(rm) = ScenarioMatrix::new("scenario_returns", &returns, rows, cols) {
                let sm = ScenarioMatrix::new("vol_shifts", &shifts, rows, cols).ok();
                let _ = revalue(&book, &spot, &rm, sm.as_ref(), horizon);
                let _ = revalue_with_risk(&book, &spot, &rm, None, horizon, confidence);
            }
        }

        #[test]
        fn valid_books_give_finite_pnl(
            positions in prop::collection::vec(arb_valid_position(), 0..6),
            returns in prop::collection::vec(-0.99f64..3.0, 2..20),
            horizon in 0.0f64..0.1,
        ) {
            let book = Book::from_positions(positions);
            let rows = returns.len() / 2;
            let rm = ScenarioMatrix::new("scenario_returns", &returns[..rows * 2], rows, 2).unwrap();
            let pnl = revalue(&book, &[100.0, 50.0], &rm, None, horizon).unwrap();
            prop_assert!(pnl.iter().all(|x| x.is_finite()));
        }
    }
}
