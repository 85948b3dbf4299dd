//! Batch versions of the pricing functions over slices.
//!
//! Every numeric argument is a slice of length 1 (one value for every option) or of the common
//! length n (see `check::broadcast_len`). Inputs are validated once, up front, with the error naming
//! the argument and the first bad element; the loop then runs the unchecked kernels, split over
//! rayon's pool in chunks when the batch is large enough to pay for it.

use rayon::prelude::*;

use super::greeks::bs_greeks_unchecked;
use super::implied_vol::implied_vol_unchecked;
use super::strike::strike_for_delta_unchecked;
use super::{bs_price_unchecked, out_of_range, OptionKind};
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

/// The six market columns of a pricing batch, validated.
struct Market<'a> {
    n: usize,
    spot: Column<'a>,
    strike: Column<'a>,
    t: Column<'a>,
    vol: Column<'a>,
    rate: Column<'a>,
    div: Column<'a>,
}

impl<'a> Market<'a> {
    fn new(
        spot: &'a [f64],
        strike: &'a [f64],
        t: &'a [f64],
        vol: &'a [f64],
        rate: &'a [f64],
        div: &'a [f64],
    ) -> CoreResult<Self> {
        let n = check::broadcast_len(&[
            ("spot", spot.len()),
            ("strike", strike.len()),
            ("t", t.len()),
            ("vol", vol.len()),
            ("rate", rate.len()),
            ("div", div.len()),
        ])?;
        all_positive("spot", spot)?;
        all_positive("strike", strike)?;
        all_positive("t", t)?;
        all_positive("vol", vol)?;
        check::all_finite("rate", rate)?;
        check::all_finite("div", div)?;
        Ok(Market {
            n,
            spot: Column::new(spot),
            strike: Column::new(strike),
            t: Column::new(t),
            vol: Column::new(vol),
            rate: Column::new(rate),
            div: Column::new(div),
        })
    }
}

impl Market<'_> {
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
    let m = Market::new(spot, strike, t, vol, rate, div)?;
    let prices = fill(m.n, |i| {
        bs_price_unchecked(
            kind,
            m.spot.at(i),
            m.strike.at(i),
            m.t.at(i),
            m.vol.at(i),
            m.rate.at(i),
            m.div.at(i),
        )
    });
    match prices.iter().position(|p| !p.is_finite()) {
        None => Ok(prices),
        Some(i) => Err(m.out_of_range(i)),
    }
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
    let m = Market::new(spot, strike, t, vol, rate, div)?;
    let n = m.n;
    let mut out = GreeksBatch {
        price: vec![0.0; n],
        delta: vec![0.0; n],
        gamma: vec![0.0; n],
        vega: vec![0.0; n],
        theta: vec![0.0; n],
        rho: vec![0.0; n],
    };
    let kernel = |base: usize,
                  p: &mut [f64],
                  d: &mut [f64],
                  g: &mut [f64],
                  v: &mut [f64],
                  th: &mut [f64],
                  r: &mut [f64]| {
        let rows = p
            .iter_mut()
            .zip(d.iter_mut())
            .zip(g.iter_mut())
            .zip(v.iter_mut())
            .zip(th.iter_mut())
            .zip(r.iter_mut());
        for (j, (((((p, d), g), v), th), r)) in rows.enumerate() {
            let i = base + j;
            let x = bs_greeks_unchecked(
                kind,
                m.spot.at(i),
                m.strike.at(i),
                m.t.at(i),
                m.vol.at(i),
                m.rate.at(i),
                m.div.at(i),
            );
            *p = x.price;
            *d = x.delta;
            *g = x.gamma;
            *v = x.vega;
            *th = x.theta;
            *r = x.rho;
        }
    };
    if n >= PARALLEL_THRESHOLD {
        (
            out.price.par_chunks_mut(CHUNK),
            out.delta.par_chunks_mut(CHUNK),
            out.gamma.par_chunks_mut(CHUNK),
            out.vega.par_chunks_mut(CHUNK),
            out.theta.par_chunks_mut(CHUNK),
            out.rho.par_chunks_mut(CHUNK),
        )
            .into_par_iter()
            .enumerate()
            .for_each(|(c, (p, d, g, v, th, r))| kernel(c * CHUNK, p, d, g, v, th, r));
    } else {
        kernel(
            0,
            &mut out.price,
            &mut out.delta,
            &mut out.gamma,
            &mut out.vega,
            &mut out.theta,
            &mut out.rho,
        );
    }
    Ok(out)
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
    use super::super::greeks::bs_greeks;
    use super::super::implied_vol::implied_vol;
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
                assert_eq!(
                    (g.price[i], g.delta[i], g.gamma[i], g.vega[i], g.theta[i], g.rho[i]),
                    (x.price, x.delta, x.gamma, x.vega, x.theta, x.rho)
                );
                assert_eq!(prices[i], x.price);
            }
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
