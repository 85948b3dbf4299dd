//! Batch versions of the pricing functions over slices.
//!
//! Every numeric argument is a slice of length 1 (one value for every option) or of the common
//! length n (see `check::broadcast_len`). Errors name the argument and its first bad element.
//! Loops run the unchecked kernels, split over rayon's pool in chunks when the batch is large
//! enough to pay for it. Price and greeks run the SIMD kernel (`kernel`), which checks the inputs
//! in the same pass and hands invalid or extreme options to the scalar code; the batch rescans
//! its inputs only when that pass saw a bad value. The `_into` variants write into caller-owned
//! slices (the Python adapter passes numpy's own buffers).

use rayon::prelude::*;

use super::implied_vol::implied_vol_unchecked;
use super::kernel::{greeks_chunk, price_chunk};
use super::strike::strike_for_delta_unchecked;
use super::{out_of_range, OptionKind};
use crate::error::{check, CoreError, CoreResult};

/// Batches at least this long are split over threads.
pub const PARALLEL_THRESHOLD: usize = 16_384;
/// Options per parallel task.
const CHUNK: usize = 4_096;

/// One broadcast argument: `at(i)` is element i, or the single value for every i.
#[derive(Clone, Copy)]
struct Column<'a> {
    values: &'a [f64],
    step: usize,
}

impl<'a> Column<'a> {
    fn new(values: &'a [f64]) -> Self {
        Column {
            values,
            step: usize::from(values.len() > 1),
        }
    }

    #[inline(always)]
    fn at(&self, i: usize) -> f64 {
        // In bounds: the length is 1 (step 0) or the batch length n > i (checked by broadcast_len).
        self.values[i * self.step]
    }
}

/// Every element finite and > 0; the error names the argument and the first bad element.
fn all_positive(field: &str, xs: &[f64]) -> CoreResult<()> {
    match xs.iter().position(|&x| !(x.is_finite() && x > 0.0)) {
        None => Ok(()),
        Some(i) => Err(CoreError::invalid(
            field,
            format!("element {i} must be a finite number > 0, got {}", xs[i]),
        )),
    }
}

/// Output vector of length n whose element i is `f(i)`, computed in parallel chunks for large n.
fn fill(n: usize, f: impl Fn(usize) -> f64 + Sync) -> Vec<f64> {
    let mut out = vec![0.0; n];
    if n >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                let base = c * CHUNK;
                for (j, o) in chunk.iter_mut().enumerate() {
                    *o = f(base + j);
                }
            });
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            *o = f(i);
        }
    }
    out
}

/// The market arguments of a pricing batch, each of length 1 (shared by every option) or n.
#[derive(Debug, Clone, Copy)]
pub struct MarketSlices<'a> {
    pub spot: &'a [f64],
    pub strike: &'a [f64],
    pub t: &'a [f64],
    pub vol: &'a [f64],
    pub rate: &'a [f64],
    pub div: &'a [f64],
}

impl MarketSlices<'_> {
    /// The batch length n, or an error naming the first argument that is empty or whose length is
    /// neither 1 nor n.
    pub fn batch_len(&self) -> CoreResult<usize> {
        check::broadcast_len(&[
            ("spot", self.spot.len()),
            ("strike", self.strike.len()),
            ("t", self.t.len()),
            ("vol", self.vol.len()),
            ("rate", self.rate.len()),
            ("div", self.div.len()),
        ])
    }
}

/// The six market columns of a pricing batch. Lengths are checked on construction; values are
/// checked inside the pricing loop (one pass over memory), and only when that loop saw a bad value
/// does `validate` rescan to name the argument and its first bad element.
pub(super) struct Market<'a> {
    n: usize,
    pub(super) slices: MarketSlices<'a>,
    spot: Column<'a>,
    strike: Column<'a>,
    t: Column<'a>,
    vol: Column<'a>,
    rate: Column<'a>,
    div: Column<'a>,
}

impl<'a> Market<'a> {
    pub(super) fn new(m: &MarketSlices<'a>) -> CoreResult<Self> {
        let n = m.batch_len()?;
        Ok(Market {
            n,
            slices: *m,
            spot: Column::new(m.spot),
            strike: Column::new(m.strike),
            t: Column::new(m.t),
            vol: Column::new(m.vol),
            rate: Column::new(m.rate),
            div: Column::new(m.div),
        })
    }

    /// Option i's inputs and whether they are valid (spot, strike, t, vol finite and > 0; rate,
    /// div finite), without branches.
    #[inline(always)]
    pub(super) fn get(&self, i: usize) -> ([f64; 6], bool) {
        let x = [
            self.spot.at(i),
            self.strike.at(i),
            self.t.at(i),
            self.vol.at(i),
            self.rate.at(i),
            self.div.at(i),
        ];
        let positive = |v: f64| (v > 0.0) & (v < f64::INFINITY);
        let finite = |v: f64| v.abs() < f64::INFINITY;
        let ok = positive(x[0])
            & positive(x[1])
            & positive(x[2])
            & positive(x[3])
            & finite(x[4])
            & finite(x[5]);
        (x, ok)
    }

    /// The error for the first invalid value, in argument order.
    fn validate(&self) -> CoreResult<()> {
        let m = &self.slices;
        all_positive("spot", m.spot)?;
        all_positive("strike", m.strike)?;
        all_positive("t", m.t)?;
        all_positive("vol", m.vol)?;
        check::all_finite("rate", m.rate)?;
        check::all_finite("div", m.div)?;
        Ok(())
    }

    /// The outcome of a pricing loop: bad input first, then a non-finite result at `first_bad`.
    fn outcome(
        &self,
        flags: Flags,
        first_non_finite: impl FnOnce() -> Option<usize>,
    ) -> CoreResult<()> {
        if flags.bad_input {
            self.validate()?;
        }
        if flags.non_finite {
            if let Some(i) = first_non_finite() {
                return Err(self.out_of_range(i));
            }
        }
        Ok(())
    }

    /// The error for element i, whose valid inputs overflowed.
    fn out_of_range(&self, i: usize) -> CoreError {
        let e = out_of_range(
            self.spot.at(i),
            self.strike.at(i),
            self.t.at(i),
            self.vol.at(i),
            self.rate.at(i),
            self.div.at(i),
        );
        CoreError::invalid(e.field(), format!("element {i}: {}", e.reason()))
    }
}

/// What a pricing loop saw: an invalid input, a non-finite result.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Flags {
    pub(super) bad_input: bool,
    pub(super) non_finite: bool,
}

impl Flags {
    fn or(self, other: Flags) -> Flags {
        Flags {
            bad_input: self.bad_input | other.bad_input,
            non_finite: self.non_finite | other.non_finite,
        }
    }
}

/// An output slice whose length must be the batch length.
fn check_output(field: &str, out: &[f64], n: usize) -> CoreResult<()> {
    if out.len() == n {
        Ok(())
    } else {
        Err(CoreError::invalid(
            field,
            format!("output has length {}, the batch has {n}", out.len()),
        ))
    }
}

/// Black-Scholes-Merton prices of a batch of options of one kind, written into `out` (length n).
pub fn bs_price_batch_into(
    kind: OptionKind,
    market: &MarketSlices<'_>,
    out: &mut [f64],
) -> CoreResult<()> {
    let m = Market::new(market)?;
    check_output("price", out, m.n)?;
    let arch = pulp::Arch::new();
    let flags = if m.n >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .map(|(c, chunk)| price_chunk(arch, kind, &m, c * CHUNK, chunk))
            .reduce(Flags::default, Flags::or)
    } else {
        price_chunk(arch, kind, &m, 0, out)
    };
    m.outcome(flags, || out.iter().position(|p| !p.is_finite()))
}

/// Black-Scholes-Merton prices of a batch of options of one kind.
pub fn bs_price_batch(
    kind: OptionKind,
    spot: &[f64],
    strike: &[f64],
    t: &[f64],
    vol: &[f64],
    rate: &[f64],
    div: &[f64],
) -> CoreResult<Vec<f64>> {
    let market = MarketSlices {
        spot,
        strike,
        t,
        vol,
        rate,
        div,
    };
    let mut out = vec![0.0; market.batch_len()?];
    bs_price_batch_into(kind, &market, &mut out)?;
    Ok(out)
}

/// Prices and greeks of a batch, one vector per quantity (structure of arrays).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GreeksBatch {
    pub price: Vec<f64>,
    pub delta: Vec<f64>,
    pub gamma: Vec<f64>,
    pub vega: Vec<f64>,
    pub theta: Vec<f64>,
    pub rho: Vec<f64>,
}

/// Where `bs_greeks_batch_into` writes: six slices of the batch length.
#[derive(Debug)]
pub struct GreeksSlices<'a> {
    pub price: &'a mut [f64],
    pub delta: &'a mut [f64],
    pub gamma: &'a mut [f64],
    pub vega: &'a mut [f64],
    pub theta: &'a mut [f64],
    pub rho: &'a mut [f64],
}

impl GreeksSlices<'_> {
    fn check(&self, n: usize) -> CoreResult<()> {
        check_output("price", self.price, n)?;
        check_output("delta", self.delta, n)?;
        check_output("gamma", self.gamma, n)?;
        check_output("vega", self.vega, n)?;
        check_output("theta", self.theta, n)?;
        check_output("rho", self.rho, n)
    }

    /// Index of the first element with a non-finite value in any of the six outputs.
    fn first_non_finite(&self) -> Option<usize> {
        [
            &*self.price,
            &*self.delta,
            &*self.gamma,
            &*self.vega,
            &*self.theta,
            &*self.rho,
        ]
        .iter()
        .filter_map(|c| c.iter().position(|x| !x.is_finite()))
        .min()
    }
}

/// Black-Scholes-Merton prices and greeks (QuantLib conventions, see `greeks`) of a batch,
/// written into `out` (six slices of the batch length).
pub fn bs_greeks_batch_into(
    kind: OptionKind,
    market: &MarketSlices<'_>,
    out: GreeksSlices<'_>,
) -> CoreResult<()> {
    let m = Market::new(market)?;
    out.check(m.n)?;
    let GreeksSlices {
        price,
        delta,
        gamma,
        vega,
        theta,
        rho,
    } = out;
    let arch = pulp::Arch::new();
    let flags = if m.n >= PARALLEL_THRESHOLD {
        (
            price.par_chunks_mut(CHUNK),
            delta.par_chunks_mut(CHUNK),
            gamma.par_chunks_mut(CHUNK),
            vega.par_chunks_mut(CHUNK),
            theta.par_chunks_mut(CHUNK),
            rho.par_chunks_mut(CHUNK),
        )
            .into_par_iter()
            .enumerate()
            .map(|(c, (price, delta, gamma, vega, theta, rho))| {
                let chunk = GreeksSlices {
                    price,
                    delta,
                    gamma,
                    vega,
                    theta,
                    rho,
                };
                greeks_chunk(arch, kind, &m, c * CHUNK, chunk)
            })
            .reduce(Flags::default, Flags::or)
    } else {
        let all = GreeksSlices {
            price: &mut *price,
            delta: &mut *delta,
            gamma: &mut *gamma,
            vega: &mut *vega,
            theta: &mut *theta,
            rho: &mut *rho,
        };
        greeks_chunk(arch, kind, &m, 0, all)
    };
    let written = GreeksSlices {
        price,
        delta,
        gamma,
        vega,
        theta,
        rho,
    };
    m.outcome(flags, || written.first_non_finite())
}

/// Black-Scholes-Merton prices and greeks (QuantLib conventions, see `greeks`) of a batch.
pub fn bs_greeks_batch(
    kind: OptionKind,
    spot: &[f64],
    strike: &[f64],
    t: &[f64],
    vol: &[f64],
    rate: &[f64],
    div: &[f64],
) -> CoreResult<GreeksBatch> {
    let market = MarketSlices {
        spot,
        strike,
        t,
        vol,
        rate,
        div,
    };
    let n = market.batch_len()?;
    let mut g = GreeksBatch {
        price: vec![0.0; n],
        delta: vec![0.0; n],
        gamma: vec![0.0; n],
        vega: vec![0.0; n],
        theta: vec![0.0; n],
        rho: vec![0.0; n],
    };
    let out = GreeksSlices {
        price: &mut g.price,
        delta: &mut g.delta,
        gamma: &mut g.gamma,
        vega: &mut g.vega,
        theta: &mut g.theta,
        rho: &mut g.rho,
    };
    bs_greeks_batch_into(kind, &market, out)?;
    Ok(g)
}

/// Implied volatilities of a batch, with NaN where a price has no solution.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImpliedVols {
    /// The volatility of each option, NaN where its price is outside the no-arbitrage bounds
    /// (or, never seen in testing, where the solver did not converge).
    pub vol: Vec<f64>,
    /// How many elements are NaN.
    pub failed: usize,
}

/// Implied volatilities of a batch of options of one kind.
///
/// Bad market inputs (non-finite or non-positive spot, strike, t; non-finite rate, div; a
/// non-finite price) are errors; a finite price outside its no-arbitrage bounds gives NaN in
/// its element and counts in `failed`.
pub fn implied_vol_batch(
    kind: OptionKind,
    price: &[f64],
    spot: &[f64],
    strike: &[f64],
    t: &[f64],
    rate: &[f64],
    div: &[f64],
) -> CoreResult<ImpliedVols> {
    let n = check::broadcast_len(&[
        ("price", price.len()),
        ("spot", spot.len()),
        ("strike", strike.len()),
        ("t", t.len()),
        ("rate", rate.len()),
        ("div", div.len()),
    ])?;
    check::all_finite("price", price)?;
    all_positive("spot", spot)?;
    all_positive("strike", strike)?;
    all_positive("t", t)?;
    check::all_finite("rate", rate)?;
    check::all_finite("div", div)?;
    let (p, s, k, tt, r, q) = (
        Column::new(price),
        Column::new(spot),
        Column::new(strike),
        Column::new(t),
        Column::new(rate),
        Column::new(div),
    );
    let vol = fill(n, |i| {
        implied_vol_unchecked(kind, p.at(i), s.at(i), k.at(i), tt.at(i), r.at(i), q.at(i))
            .unwrap_or(f64::NAN)
    });
    let failed = vol.iter().filter(|v| v.is_nan()).count();
    Ok(ImpliedVols { vol, failed })
}

/// Strikes for target deltas (see `strike::strike_for_delta`); an unreachable delta anywhere is an
/// error naming `delta` and its element.
pub fn strike_for_delta_batch(
    kind: OptionKind,
    delta: &[f64],
    spot: &[f64],
    t: &[f64],
    vol: &[f64],
    rate: &[f64],
    div: &[f64],
) -> CoreResult<Vec<f64>> {
    let n = check::broadcast_len(&[
        ("delta", delta.len()),
        ("spot", spot.len()),
        ("t", t.len()),
        ("vol", vol.len()),
        ("rate", rate.len()),
        ("div", div.len()),
    ])?;
    check::all_finite("delta", delta)?;
    all_positive("spot", spot)?;
    all_positive("t", t)?;
    all_positive("vol", vol)?;
    check::all_finite("rate", rate)?;
    check::all_finite("div", div)?;
    let (d, s, tt, v, r, q) = (
        Column::new(delta),
        Column::new(spot),
        Column::new(t),
        Column::new(vol),
        Column::new(rate),
        Column::new(div),
    );
    let solve = |i: usize| {
        strike_for_delta_unchecked(kind, d.at(i), s.at(i), tt.at(i), v.at(i), r.at(i), q.at(i))
    };
    let strikes = fill(n, |i| solve(i).unwrap_or(f64::NAN));
    // Report the first failing element, deterministically, whatever order the threads ran in.
    if let Some(i) = strikes.iter().position(|k| k.is_nan()) {
        if let Err(e) = solve(i) {
            return Err(CoreError::invalid(
                e.field(),
                format!("element {i}: {}", e.reason()),
            ));
        }
    }
    Ok(strikes)
}

#[cfg(test)]
mod tests {
    use super::super::greeks::{bs_greeks, Greeks};
    use super::super::implied_vol::implied_vol;
    use super::super::kernel::agrees;
    use super::super::strike::strike_for_delta;
    use super::*;

    fn field<T>(r: CoreResult<T>) -> Option<String> {
        r.err().map(|e| e.field().to_string())
    }

    #[test]
    fn batch_equals_scalar_with_broadcasting() {
        let n = PARALLEL_THRESHOLD + 123; // exercises the parallel path and a ragged last chunk
        let strikes: Vec<f64> = (0..n).map(|i| 50.0 + 150.0 * i as f64 / n as f64).collect();
        let vols: Vec<f64> = (0..n).map(|i| 0.05 + (i % 97) as f64 * 0.01).collect();
        for kind in [OptionKind::Call, OptionKind::Put] {
            let g = bs_greeks_batch(kind, &[100.0], &strikes, &[0.3], &vols, &[0.02], &[0.01]);
            let Ok(g) = g else {
                unreachable!("valid batch")
            };
            let prices = bs_price_batch(kind, &[100.0], &strikes, &[0.3], &vols, &[0.02], &[0.01])
                .unwrap_or_default();
            for i in [0, 1, CHUNK - 1, CHUNK, n / 2, n - 1] {
                let x = bs_greeks(kind, 100.0, strikes[i], 0.3, vols[i], 0.02, 0.01)
                    .unwrap_or_default();
                // The batch runs the vector kernel: the scalar numbers to rounding (see `agrees`).
                let got = Greeks {
                    price: g.price[i],
                    delta: g.delta[i],
                    gamma: g.gamma[i],
                    vega: g.vega[i],
                    theta: g.theta[i],
                    rho: g.rho[i],
                };
                let inputs = [100.0, strikes[i], 0.3, vols[i], 0.02, 0.01];
                assert_eq!(agrees(kind, inputs, &got, &x), Ok(()));
                // Prices alone are the greeks' prices, bit for bit.
                assert_eq!(prices[i].to_bits(), g.price[i].to_bits());
            }
            assert!(prices
                .iter()
                .zip(&g.price)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            let iv =
                implied_vol_batch(kind, &g.price, &[100.0], &strikes, &[0.3], &[0.02], &[0.01])
                    .unwrap_or_default();
            assert_eq!(iv.vol.len(), n);
            for i in [0, CHUNK, n / 2, n - 1] {
                let v = implied_vol(kind, g.price[i], 100.0, strikes[i], 0.3, 0.02, 0.01);
                match v {
                    Ok(v) => assert_eq!(iv.vol[i], v),
                    Err(_) => assert!(iv.vol[i].is_nan()),
                }
            }
        }
    }

    #[test]
    fn a_bad_value_deep_in_a_parallel_batch_is_named() {
        let n = PARALLEL_THRESHOLD * 2 + 7;
        let mut vols = vec![0.2; n];
        vols[n - 2] = -0.1;
        let strikes = vec![100.0; n];
        let e = bs_greeks_batch(
            OptionKind::Call,
            &[100.0],
            &strikes,
            &[0.5],
            &vols,
            &[0.0],
            &[0.0],
        );
        let Err(e) = e else {
            unreachable!("negative vol")
        };
        assert_eq!(e.field(), "vol");
        assert!(
            e.reason().starts_with(&format!("element {}", n - 2)),
            "{}",
            e.reason()
        );
        // The earlier argument wins when two are bad, as in the scalar call.
        let mut spots = vec![100.0; n];
        spots[n - 1] = f64::NAN;
        let e = bs_price_batch(
            OptionKind::Put,
            &spots,
            &strikes,
            &[0.5],
            &vols,
            &[0.0],
            &[0.0],
        );
        assert_eq!(field(e), Some("spot".into()));
        // A valid batch whose element overflows is named too (vol * sqrt(t) = inf).
        let mut big = vec![0.2; n];
        big[5] = 1e300;
        let e = bs_greeks_batch(
            OptionKind::Put,
            &[100.0],
            &strikes,
            &[1e20],
            &big,
            &[0.0],
            &[0.0],
        );
        let Err(e) = e else { unreachable!("overflow") };
        assert_eq!(e.field(), "vol");
        assert!(e.reason().starts_with("element 5"), "{}", e.reason());
    }

    #[test]
    fn implied_vol_batch_counts_out_of_bounds_prices() {
        // S=100 K=100 t=1 r=q=0: call bounds (0, 100).
        let prices = [8.0, -1.0, 0.0, 100.0, 250.0, 12.0];
        let iv = implied_vol_batch(
            OptionKind::Call,
            &prices,
            &[100.0],
            &[100.0],
            &[1.0],
            &[0.0],
            &[0.0],
        );
        let Ok(iv) = iv else {
            unreachable!("valid batch")
        };
        assert_eq!(iv.failed, 4);
        assert!(iv.vol[0] > 0.0 && iv.vol[5] > iv.vol[0]);
        assert!(iv.vol[1..5].iter().all(|v| v.is_nan()));
        let e = implied_vol_batch(
            OptionKind::Call,
            &[f64::NAN],
            &[100.0],
            &[100.0],
            &[1.0],
            &[0.0],
            &[0.0],
        );
        assert_eq!(field(e), Some("price".to_string()));
    }

    #[test]
    fn strike_batch_matches_scalar_and_names_first_bad_element() {
        let deltas = [0.1, 0.25, 0.5, 0.75];
        let ks = strike_for_delta_batch(
            OptionKind::Call,
            &deltas,
            &[100.0],
            &[0.5],
            &[0.3],
            &[0.01],
            &[0.0],
        )
        .unwrap_or_default();
        for (i, &d) in deltas.iter().enumerate() {
            assert_eq!(
                Ok(ks[i]),
                strike_for_delta(OptionKind::Call, d, 100.0, 0.5, 0.3, 0.01, 0.0)
            );
        }
        let e = strike_for_delta_batch(
            OptionKind::Call,
            &[0.5, 1.5, -1.0],
            &[100.0],
            &[0.5],
            &[0.3],
            &[0.0],
            &[0.0],
        );
        let Err(e) = e else {
            unreachable!("unreachable delta")
        };
        assert_eq!(e.field(), "delta");
        assert!(e.reason().starts_with("element 1"), "{}", e.reason());
    }

    #[test]
    fn shape_and_value_errors_name_the_argument() {
        let one = [1.0];
        assert_eq!(
            field(bs_price_batch(
                OptionKind::Call,
                &[100.0, 90.0],
                &[1.0, 2.0, 3.0],
                &one,
                &one,
                &one,
                &one
            )),
            Some("strike".into())
        );
        assert_eq!(
            field(bs_price_batch(
                OptionKind::Call,
                &[],
                &one,
                &one,
                &one,
                &one,
                &one
            )),
            Some("spot".into())
        );
        assert_eq!(
            field(bs_greeks_batch(
                OptionKind::Put,
                &one,
                &one,
                &one,
                &[0.2, 0.0],
                &one,
                &one
            )),
            Some("vol".into())
        );
        assert_eq!(
            field(bs_greeks_batch(
                OptionKind::Put,
                &one,
                &one,
                &[f64::INFINITY],
                &one,
                &one,
                &one
            )),
            Some("t".into())
        );
        assert_eq!(
            field(bs_greeks_batch(
                OptionKind::Put,
                &one,
                &one,
                &one,
                &one,
                &one,
                &[f64::NAN]
            )),
            Some("div".into())
        );
        assert_eq!(
            field(implied_vol_batch(
                OptionKind::Put,
                &one,
                &one,
                &one,
                &one,
                &[],
                &one
            )),
            Some("rate".into())
        );
        assert_eq!(
            field(strike_for_delta_batch(
                OptionKind::Put,
                &one,
                &[-1.0],
                &one,
                &one,
                &one,
                &one
            )),
            Some("spot".into())
        );
    }
}
