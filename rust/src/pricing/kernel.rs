//! The batch pricing loop over pulp's portable SIMD vectors: one chunk of options at a time, as
//! many per instruction as the CPU's widest instruction set holds (eight with AVX-512, four with
//! AVX2 + FMA, one on the scalar fallback), chosen at run time.
//!
//! The formulas are those of `greeks::bs_greeks_unchecked`, with these vector changes:
//! - ln and exp are the vector versions in `crate::simd` (an ulp or two from libm's), and
//!   exp(-d2^2/2) is taken directly rather than as exp(-d1^2/2) F / K_disc (an exponential
//!   costs less than a division here), both with gradual underflow as libm's;
//! - 1/sd comes from the one division 1/(spot sd) that gamma needs;
//! - N(d1) and N(d2) evaluate Cody's rational pieces (`normal`) and select per lane, each with a
//!   single division, so the probabilities keep Cody's ~1e-15 relative accuracy in both tails.
//!   The central piece and the price use the scalar's order of operations, so at the money
//!   with zero carry (d1 = sd/2 exactly) the price is the scalar's bit for bit.
//!
//! The work runs in blocks of vectors, one step at a time over the block, so the long dependency
//! chains of neighbouring vectors overlap.
//!
//! Lanes the vector code does not cover are recomputed by the scalar `bs_greeks_unchecked`:
//! invalid inputs (so the batch reports them exactly as before), spot/strike outside the normal
//! range, discount exponents below -708 (where exp is subnormal), spot x sd or 1/sd outside the
//! normal range (1/sd is taken as spot / (spot sd)) and any non-finite result.

use pulp::{Arch, Simd, WithSimd};

use super::batch::{Flags, GreeksSlices, Market};
use super::greeks::{bs_greeks_unchecked, Greeks};
use super::normal::{A, B, C, CENTRAL_LIMIT, D, FAR_LIMIT, INV_SQRT_2PI, P, Q};
use super::{bs_price_unchecked, OptionKind};
use crate::simd::{any, exp, exp_non_positive_gradual, ln, polynomial, EXP_FLOOR};

/// Cody's upper-tail numerator C(u), highest degree first.
const TAIL_NUM: [f64; 9] = [C[8], C[0], C[1], C[2], C[3], C[4], C[5], C[6], C[7]];
/// Cody's upper-tail denominator D(u) (monic), highest degree first.
const TAIL_DEN: [f64; 9] = [1.0, D[0], D[1], D[2], D[3], D[4], D[5], D[6], D[7]];
/// Beyond FAR_LIMIT Cody's tail is rational in z = 1/u^2: m(u) = (1/sqrt(2 pi) - z P(z)/Q(z)) / u.
/// With y = u^2 and the reversed polynomials P~(y) = y^5 P(1/y), Q~(y) = y^5 Q(1/y),
/// m(u) = (y Q~(y) / sqrt(2 pi) - P~(y)) / (y Q~(y) u): one division, no 1/u^2.
const FAR_NUM: [f64; 6] = [P[4], P[3], P[2], P[1], P[0], P[5]];
const FAR_DEN: [f64; 6] = [Q[4], Q[3], Q[2], Q[1], Q[0], 1.0];
/// Past this |d| the Gaussian factor is exactly 0 (exp(-800) underflows); clamping the far
/// rational's argument keeps it finite, so the tail is 0 x finite = 0.
const FAR_CLAMP: f64 = 40.0;

/// The market inputs of one vector of options (or of a block of vectors).
#[derive(Clone, Copy)]
struct Inputs<V> {
    spot: V,
    strike: V,
    t: V,
    vol: V,
    rate: V,
    div: V,
}

/// Price and greeks of one vector of options.
#[derive(Clone, Copy)]
struct Values<V> {
    price: V,
    delta: V,
    gamma: V,
    vega: V,
    theta: V,
    rho: V,
}

/// N(x) given gauss = exp(-x^2/2), as `normal::cdf_with_gaussian` computes it: 1/2 + x A(z)/B(z)
/// for |x| <= 0.674, else the tail gauss x m(|x|) (or its complement for x > 0) with m Cody's
/// rational in |x| up to sqrt(32) and in 1/x^2 beyond.
#[inline(always)]
fn cdf_with_gaussian<S: Simd>(simd: S, x: S::f64s, gauss: S::f64s) -> S::f64s {
    let splat = |v: f64| simd.splat_f64s(v);
    let u = simd.abs_f64s(x);
    let central = simd.less_than_or_equal_f64s(u, splat(CENTRAL_LIMIT));
    let far = simd.greater_than_f64s(u, splat(FAR_LIMIT));
    // Central piece, in the scalar's order of operations (unfused).
    let z = simd.mul_f64s(x, x);
    let step = |acc: S::f64s, c: f64| simd.add_f64s(simd.mul_f64s(acc, z), splat(c));
    let num_central = step(step(step(step(splat(A[4]), A[0]), A[1]), A[2]), A[3]);
    let den_central = step(step(step(simd.add_f64s(z, splat(B[0])), B[1]), B[2]), B[3]);
    // Tail piece (lanes beyond it may overflow here; they are not selected).
    let num_tail = polynomial(simd, &TAIL_NUM, u);
    let den_tail = polynomial(simd, &TAIL_DEN, u);
    let (mut num, mut den) = (num_tail, den_tail);
    // Far piece, only where a lane needs it (most vectors have none).
    if any(simd, far) {
        let uc = simd.min_f64s(u, splat(FAR_CLAMP));
        let y = simd.mul_f64s(uc, uc);
        let y_den = simd.mul_f64s(y, polynomial(simd, &FAR_DEN, y));
        let num_far = simd.mul_add_e_f64s(
            splat(INV_SQRT_2PI),
            y_den,
            simd.neg_f64s(polynomial(simd, &FAR_NUM, y)),
        );
        num = simd.select_f64s(far, num_far, num);
        den = simd.select_f64s(far, simd.mul_f64s(y_den, uc), den);
    }
    let num = simd.select_f64s(central, simd.mul_f64s(x, num_central), num);
    let den = simd.select_f64s(central, den_central, den);
    let ratio = simd.div_f64s(num, den);
    let tail = simd.mul_f64s(gauss, ratio);
    simd.select_f64s(
        central,
        simd.add_f64s(splat(0.5), ratio),
        simd.select_f64s(
            simd.greater_than_f64s(x, splat(0.0)),
            simd.sub_f64s(splat(1.0), tail),
            tail,
        ),
    )
}

/// Vectors per block: each step of the evaluation runs over a block before the next starts, so
/// the long dependency chains of neighbouring vectors (divisions, ln, exp, the rationals)
/// overlap in the CPU instead of running one after another; the block's intermediates stay in
/// the L1 cache.
const BLOCK: usize = 8;

/// Prices and greeks of the first `n <= BLOCK` vectors of options in `block`, of sign w (+1 call,
/// -1 put), into `out`, and in `redo` the lanes the scalar code must redo (see the module
/// documentation).
#[inline(always)]
fn evaluate_block<S: Simd>(
    simd: S,
    w: f64,
    block: &Inputs<[S::f64s; BLOCK]>,
    n: usize,
    out: &mut [Values<S::f64s>; BLOCK],
    redo: &mut [S::m64s; BLOCK],
) {
    let splat = |v: f64| simd.splat_f64s(v);
    let (zero, inf) = (splat(0.0), splat(f64::INFINITY));
    let positive =
        |v: S::f64s| simd.and_m64s(simd.greater_than_f64s(v, zero), simd.less_than_f64s(v, inf));
    let finite = |v: S::f64s| simd.less_than_f64s(simd.abs_f64s(v), inf);
    let n = n.min(BLOCK);
    let x = |j: usize| Inputs {
        spot: block.spot[j],
        strike: block.strike[j],
        t: block.t[j],
        vol: block.vol[j],
        rate: block.rate[j],
        div: block.div[j],
    };
    let mut moneyness = [zero; BLOCK];
    let mut sqrt_t = [zero; BLOCK];
    let mut sd = [zero; BLOCK];
    let mut inv_spot_sd = [zero; BLOCK];
    let mut covered = [simd.less_than_f64s(zero, zero); BLOCK];

    // Divisions and square roots, independent of each other.
    for j in 0..n {
        let x = x(j);
        moneyness[j] = simd.div_f64s(x.spot, x.strike);
        sqrt_t[j] = simd.sqrt_f64s(x.t);
        sd[j] = simd.mul_f64s(x.vol, sqrt_t[j]);
        let spot_sd = simd.mul_f64s(x.spot, sd[j]);
        inv_spot_sd[j] = simd.div_f64s(splat(1.0), spot_sd);
        let valid = simd.and_m64s(
            simd.and_m64s(
                simd.and_m64s(positive(x.spot), positive(x.strike)),
                simd.and_m64s(positive(x.t), positive(x.vol)),
            ),
            simd.and_m64s(finite(x.rate), finite(x.div)),
        );
        // ln needs normal moneyness; exp below -708 would be 0 where libm's is subnormal.
        let floor = splat(EXP_FLOOR);
        let in_range = simd.and_m64s(
            simd.and_m64s(
                simd.greater_than_or_equal_f64s(moneyness[j], splat(f64::MIN_POSITIVE)),
                simd.less_than_or_equal_f64s(moneyness[j], splat(f64::MAX)),
            ),
            simd.and_m64s(
                simd.greater_than_or_equal_f64s(simd.mul_f64s(simd.neg_f64s(x.div), x.t), floor),
                simd.greater_than_or_equal_f64s(simd.mul_f64s(simd.neg_f64s(x.rate), x.t), floor),
            ),
        );
        // 1/sd is taken as spot / (spot sd): both must be representable for d1 to be right.
        let inv_sd_ok = simd.and_m64s(
            simd.and_m64s(
                simd.greater_than_or_equal_f64s(spot_sd, splat(f64::MIN_POSITIVE)),
                simd.less_than_or_equal_f64s(spot_sd, splat(f64::MAX)),
            ),
            finite(simd.mul_f64s(x.spot, inv_spot_sd[j])),
        );
        covered[j] = simd.and_m64s(simd.and_m64s(valid, in_range), inv_sd_ok);
    }

    // d1 = (ln(S/K) + (r - q) t) / sd + sd / 2, with 1/sd = spot / (spot sd).
    let mut d1 = [zero; BLOCK];
    let mut d2 = [zero; BLOCK];
    for j in 0..n {
        let x = x(j);
        let drift = simd.mul_f64s(simd.sub_f64s(x.rate, x.div), x.t);
        let inv_sd = simd.mul_f64s(x.spot, inv_spot_sd[j]);
        let log_moneyness = ln(simd, moneyness[j]);
        d1[j] = simd.mul_add_e_f64s(
            splat(0.5),
            sd[j],
            simd.mul_f64s(simd.add_f64s(log_moneyness, drift), inv_sd),
        );
        d2[j] = simd.sub_f64s(d1[j], sd[j]);
    }

    // Discount factors and the two Gaussian factors exp(-d^2/2).
    let mut df_div = [zero; BLOCK];
    let mut k_disc = [zero; BLOCK];
    let mut gauss1 = [zero; BLOCK];
    let mut gauss2 = [zero; BLOCK];
    for j in 0..n {
        let x = x(j);
        df_div[j] = exp(simd, simd.mul_f64s(simd.neg_f64s(x.div), x.t));
        k_disc[j] = simd.mul_f64s(
            x.strike,
            exp(simd, simd.mul_f64s(simd.neg_f64s(x.rate), x.t)),
        );
        let half = splat(-0.5);
        gauss1[j] =
            exp_non_positive_gradual(simd, simd.mul_f64s(simd.mul_f64s(half, d1[j]), d1[j]));
        gauss2[j] =
            exp_non_positive_gradual(simd, simd.mul_f64s(simd.mul_f64s(half, d2[j]), d2[j]));
    }

    // N(w d1), N(w d2).
    let sign = splat(w);
    let mut n1 = [zero; BLOCK];
    let mut n2 = [zero; BLOCK];
    for j in 0..n {
        n1[j] = cdf_with_gaussian(simd, simd.mul_f64s(sign, d1[j]), gauss1[j]);
        n2[j] = cdf_with_gaussian(simd, simd.mul_f64s(sign, d2[j]), gauss2[j]);
    }

    for j in 0..n {
        let x = x(j);
        let fwd_disc = simd.mul_f64s(x.spot, df_div[j]);
        let pdf = simd.mul_f64s(splat(INV_SQRT_2PI), gauss1[j]);
        let fwd_pdf = simd.mul_f64s(fwd_disc, pdf);
        // F phi(d1) vol / (2 sqrt t) in the scalar's order, with 1 / sqrt(t) = vol / sd and
        // 1/sd = spot / (spot sd).
        let inv_two_sqrt_t = simd.mul_f64s(
            splat(0.5),
            simd.mul_f64s(x.vol, simd.mul_f64s(x.spot, inv_spot_sd[j])),
        );
        let time_decay = simd.mul_f64s(simd.mul_f64s(fwd_pdf, x.vol), inv_two_sqrt_t);
        let carry = simd.sub_f64s(
            simd.mul_f64s(simd.mul_f64s(x.rate, k_disc[j]), n2[j]),
            simd.mul_f64s(simd.mul_f64s(x.div, fwd_disc), n1[j]),
        );
        let v = Values {
            price: simd.mul_f64s(
                sign,
                simd.sub_f64s(
                    simd.mul_f64s(fwd_disc, n1[j]),
                    simd.mul_f64s(k_disc[j], n2[j]),
                ),
            ),
            delta: simd.mul_f64s(simd.mul_f64s(sign, df_div[j]), n1[j]),
            gamma: simd.mul_f64s(simd.mul_f64s(df_div[j], pdf), inv_spot_sd[j]),
            vega: simd.mul_f64s(fwd_pdf, sqrt_t[j]),
            theta: simd.sub_f64s(simd.neg_f64s(time_decay), simd.mul_f64s(sign, carry)),
            rho: simd.mul_f64s(simd.mul_f64s(simd.mul_f64s(sign, x.t), k_disc[j]), n2[j]),
        };
        // The sum is finite only if every term is (an overflowing sum just sends the lane to
        // the scalar code).
        let sum = simd.add_f64s(
            simd.add_f64s(
                simd.add_f64s(v.price, v.delta),
                simd.add_f64s(v.gamma, v.vega),
            ),
            simd.add_f64s(v.theta, v.rho),
        );
        out[j] = v;
        redo[j] = simd.not_m64s(simd.and_m64s(covered[j], finite(sum)));
    }
}

/// One column of a chunk: its own value per option (full vectors, then the ragged tail as one
/// vector), or one value for all.
enum Column<'a, V> {
    Each { head: &'a [V], tail: V },
    All(V),
}

impl<'a, V: Copy> Column<'a, V> {
    /// The column of `values` (length 1, or covering `base..base + len`) for one chunk.
    #[inline(always)]
    fn new<S: Simd<f64s = V>>(simd: S, values: &'a [f64], base: usize, len: usize) -> Self {
        match values {
            [one] => Column::All(simd.splat_f64s(*one)),
            _ => {
                let (head, tail) = S::as_simd_f64s(&values[base..base + len]);
                Column::Each {
                    head,
                    tail: simd.partial_load_f64s(tail),
                }
            }
        }
    }

    /// Vectors first..first + count into `into`.
    #[inline(always)]
    fn fill(&self, first: usize, count: usize, into: &mut [V; BLOCK]) {
        match self {
            Column::Each { head, .. } => {
                into[..count].copy_from_slice(&head[first..first + count]);
            }
            Column::All(v) => into.fill(*v),
        }
    }

    #[inline(always)]
    fn tail(&self) -> V {
        match self {
            Column::Each { tail, .. } => *tail,
            Column::All(v) => *v,
        }
    }
}

/// The six input columns of a chunk.
struct Columns<'a, V> {
    spot: Column<'a, V>,
    strike: Column<'a, V>,
    t: Column<'a, V>,
    vol: Column<'a, V>,
    rate: Column<'a, V>,
    div: Column<'a, V>,
}

impl<'a, V: Copy> Columns<'a, V> {
    #[inline(always)]
    fn new<S: Simd<f64s = V>>(simd: S, m: &Market<'a>, base: usize, len: usize) -> Self {
        let s = &m.slices;
        Columns {
            spot: Column::new(simd, s.spot, base, len),
            strike: Column::new(simd, s.strike, base, len),
            t: Column::new(simd, s.t, base, len),
            vol: Column::new(simd, s.vol, base, len),
            rate: Column::new(simd, s.rate, base, len),
            div: Column::new(simd, s.div, base, len),
        }
    }

    /// Vectors first..first + count of every column into `into`.
    #[inline(always)]
    fn fill(&self, first: usize, count: usize, into: &mut Inputs<[V; BLOCK]>) {
        self.spot.fill(first, count, &mut into.spot);
        self.strike.fill(first, count, &mut into.strike);
        self.t.fill(first, count, &mut into.t);
        self.vol.fill(first, count, &mut into.vol);
        self.rate.fill(first, count, &mut into.rate);
        self.div.fill(first, count, &mut into.div);
    }

    /// The ragged end of every column, as vector 0 of `into`.
    #[inline(always)]
    fn fill_tail(&self, into: &mut Inputs<[V; BLOCK]>) {
        into.spot[0] = self.spot.tail();
        into.strike[0] = self.strike.tail();
        into.t[0] = self.t.tail();
        into.vol[0] = self.vol.tail();
        into.rate[0] = self.rate.tail();
        into.div[0] = self.div.tail();
    }
}

/// Appends `first + lane` for each set lane of `mask` below `count` to `out`.
#[inline(always)]
fn push_lanes<S: Simd>(simd: S, mask: S::m64s, first: usize, count: usize, out: &mut Vec<usize>) {
    if !any(simd, mask) {
        return;
    }
    let mut lanes = [0.0; 16]; // as many as any instruction set's f64 lanes (8), and more
    if S::F64_LANES > lanes.len() {
        out.extend(first..first + count); // never so far: redo the whole vector
        return;
    }
    simd.partial_store_f64s(
        &mut lanes,
        simd.select_f64s(mask, simd.splat_f64s(1.0), simd.splat_f64s(0.0)),
    );
    for (lane, &flag) in lanes.iter().enumerate().take(count.min(S::F64_LANES)) {
        if flag != 0.0 {
            out.push(first + lane);
        }
    }
}

/// Runs `evaluate_block` over a chunk of `len` options: `emit(i, values)` receives full vector i,
/// `emit_tail(values)` the ragged end. Returns the options to redo.
#[inline(always)]
fn run_chunk<S: Simd>(
    simd: S,
    w: f64,
    market: &Market<'_>,
    base: usize,
    len: usize,
    mut emit: impl FnMut(usize, &Values<S::f64s>),
    emit_tail: impl FnOnce(&Values<S::f64s>),
) -> Vec<usize> {
    let columns = Columns::new(simd, market, base, len);
    let lanes = S::F64_LANES;
    let full = len / lanes;
    let zero = simd.splat_f64s(0.0);
    let blank = Values {
        price: zero,
        delta: zero,
        gamma: zero,
        vega: zero,
        theta: zero,
        rho: zero,
    };
    let no = simd.less_than_f64s(zero, zero);
    let mut inputs = Inputs {
        spot: [zero; BLOCK],
        strike: [zero; BLOCK],
        t: [zero; BLOCK],
        vol: [zero; BLOCK],
        rate: [zero; BLOCK],
        div: [zero; BLOCK],
    };
    let mut values = [blank; BLOCK];
    let mut redo_mask = [no; BLOCK];
    let mut redo = Vec::new();
    let mut first = 0;
    while first < full {
        let count = (full - first).min(BLOCK);
        columns.fill(first, count, &mut inputs);
        evaluate_block(simd, w, &inputs, count, &mut values, &mut redo_mask);
        for j in 0..count {
            emit(first + j, &values[j]);
            push_lanes(simd, redo_mask[j], (first + j) * lanes, lanes, &mut redo);
        }
        first += count;
    }
    let rest = len - full * lanes;
    if rest > 0 {
        columns.fill_tail(&mut inputs);
        evaluate_block(simd, w, &inputs, 1, &mut values, &mut redo_mask);
        emit_tail(&values[0]);
        push_lanes(simd, redo_mask[0], full * lanes, rest, &mut redo);
    }
    redo
}

/// Where a chunk's results go: the price alone, or all six quantities.
trait Sink {
    fn len(&self) -> usize;
    /// Writes the scalar result of option j of the chunk.
    fn put(&mut self, j: usize, g: &Greeks);
}

impl Sink for &mut [f64] {
    fn len(&self) -> usize {
        <[f64]>::len(self)
    }
    fn put(&mut self, j: usize, g: &Greeks) {
        self[j] = g.price;
    }
}

impl Sink for GreeksSlices<'_> {
    fn len(&self) -> usize {
        self.price.len()
    }
    fn put(&mut self, j: usize, g: &Greeks) {
        self.price[j] = g.price;
        self.delta[j] = g.delta;
        self.gamma[j] = g.gamma;
        self.vega[j] = g.vega;
        self.theta[j] = g.theta;
        self.rho[j] = g.rho;
    }
}

/// The vector pass over prices: writes every price, returns the options to redo.
struct PricePass<'a, 'm> {
    w: f64,
    market: &'a Market<'m>,
    base: usize,
    out: &'a mut [f64],
}

impl WithSimd for PricePass<'_, '_> {
    type Output = Vec<usize>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<usize> {
        let len = self.out.len();
        let (head, tail) = S::as_mut_simd_f64s(self.out);
        run_chunk(
            simd,
            self.w,
            self.market,
            self.base,
            len,
            |i, v| head[i] = v.price,
            |v| simd.partial_store_f64s(tail, v.price),
        )
    }
}

/// The vector pass over prices and greeks: writes all six, returns the options to redo.
struct GreeksPass<'a, 'm> {
    w: f64,
    market: &'a Market<'m>,
    base: usize,
    out: GreeksSlices<'a>,
}

impl WithSimd for GreeksPass<'_, '_> {
    type Output = Vec<usize>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<usize> {
        let len = self.out.price.len();
        let GreeksSlices {
            price,
            delta,
            gamma,
            vega,
            theta,
            rho,
        } = self.out;
        let (price_head, price_tail) = S::as_mut_simd_f64s(price);
        let (delta_head, delta_tail) = S::as_mut_simd_f64s(delta);
        let (gamma_head, gamma_tail) = S::as_mut_simd_f64s(gamma);
        let (vega_head, vega_tail) = S::as_mut_simd_f64s(vega);
        let (theta_head, theta_tail) = S::as_mut_simd_f64s(theta);
        let (rho_head, rho_tail) = S::as_mut_simd_f64s(rho);
        run_chunk(
            simd,
            self.w,
            self.market,
            self.base,
            len,
            |i, v| {
                price_head[i] = v.price;
                delta_head[i] = v.delta;
                gamma_head[i] = v.gamma;
                vega_head[i] = v.vega;
                theta_head[i] = v.theta;
                rho_head[i] = v.rho;
            },
            |v| {
                simd.partial_store_f64s(price_tail, v.price);
                simd.partial_store_f64s(delta_tail, v.delta);
                simd.partial_store_f64s(gamma_tail, v.gamma);
                simd.partial_store_f64s(vega_tail, v.vega);
                simd.partial_store_f64s(theta_tail, v.theta);
                simd.partial_store_f64s(rho_tail, v.rho);
            },
        )
    }
}

/// Redoes options `redo` (indices into the chunk starting at `base`) with the scalar code and
/// reports what it saw: invalid inputs, non-finite results (`price_only`: in the price).
fn redo_scalar(
    kind: OptionKind,
    m: &Market<'_>,
    base: usize,
    redo: &[usize],
    price_only: bool,
    out: &mut impl Sink,
) -> Flags {
    let mut flags = Flags::default();
    for &j in redo {
        if j >= out.len() {
            continue;
        }
        let ([s, k, t, v, r, q], ok) = m.get(base + j);
        let g = if price_only {
            Greeks {
                price: bs_price_unchecked(kind, s, k, t, v, r, q),
                ..Greeks::default()
            }
        } else {
            bs_greeks_unchecked(kind, s, k, t, v, r, q)
        };
        out.put(j, &g);
        flags.bad_input |= !ok;
        flags.non_finite |= if price_only {
            !g.price.is_finite()
        } else {
            !g.is_finite()
        };
    }
    flags
}

/// Prices of options `base..base + out.len()` of `m`.
pub(super) fn price_chunk(
    arch: Arch,
    kind: OptionKind,
    m: &Market<'_>,
    base: usize,
    mut out: &mut [f64],
) -> Flags {
    let redo = arch.dispatch(PricePass {
        w: kind.sign(),
        market: m,
        base,
        out: &mut *out,
    });
    redo_scalar(kind, m, base, &redo, true, &mut out)
}

/// Prices and greeks of options `base..base + out.len()` of `m`.
pub(super) fn greeks_chunk(
    arch: Arch,
    kind: OptionKind,
    m: &Market<'_>,
    base: usize,
    mut out: GreeksSlices<'_>,
) -> Flags {
    let redo = arch.dispatch(GreeksPass {
        w: kind.sign(),
        market: m,
        base,
        out: GreeksSlices {
            price: &mut *out.price,
            delta: &mut *out.delta,
            gamma: &mut *out.gamma,
            vega: &mut *out.vega,
            theta: &mut *out.theta,
            rho: &mut *out.rho,
        },
    });
    redo_scalar(kind, m, base, &redo, false, &mut out)
}

/// Whether vector result `got` agrees with the scalar `want` for inputs `x` = (spot, strike, t,
/// vol, rate, div): every quantity to 1e-12 of its magnitude while |d1|, |d2| <= 10 (tails down to
/// 1e-23), and to 1e-14 d^2 beyond, which is how the rounding of the exponent -d^2/2 grows (the
/// scalar code carries the same error). The magnitude of price and theta, which are differences,
/// is the sum of their terms' absolute values; values below 1e-290 only need to be below it too.
/// Beyond |d| = 37 (exp(-d^2/2) < 1e-297) the scalar's own Gaussian factors are subnormal or
/// derived from one, with as few as a handful of significant bits, so nothing is compared there.
#[cfg(test)]
pub(super) fn agrees(
    kind: OptionKind,
    x: [f64; 6],
    got: &Greeks,
    want: &Greeks,
) -> Result<(), String> {
    use super::normal::{cdf, pdf};
    let [s, k, t, v, r, q] = x;
    let w = kind.sign();
    let sd = v * t.sqrt();
    let d1 = ((s / k).ln() + (r - q) * t) / sd + 0.5 * sd;
    let d2 = d1 - sd;
    let (fwd, kd) = (s * (-q * t).exp(), k * (-r * t).exp());
    let (n1, n2) = (cdf(w * d1), cdf(w * d2));
    let price_terms = fwd * n1 + kd * n2;
    let theta_terms =
        fwd * pdf(d1) * v / (2.0 * t.sqrt()) + (r * kd * n2).abs() + (q * fwd * n1).abs();
    let d = d1.abs().max(d2.abs());
    if d > 37.0 {
        return Ok(());
    }
    let rel = 1e-14 * d.powi(2).max(100.0);
    let checks = [
        ("price", got.price, want.price, price_terms),
        ("delta", got.delta, want.delta, want.delta.abs()),
        ("gamma", got.gamma, want.gamma, want.gamma.abs()),
        ("vega", got.vega, want.vega, want.vega.abs()),
        ("theta", got.theta, want.theta, theta_terms),
        ("rho", got.rho, want.rho, want.rho.abs()),
    ];
    for (name, a, b, magnitude) in checks {
        let bound = (rel * magnitude).max(1e-290);
        if (a - b).abs() > bound || (a - b).is_nan() {
            return Err(format!(
                "{kind:?} {x:?}: {name} {a:e} vs scalar {b:e} (|diff| {:e} > {bound:e})",
                (a - b).abs()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::batch::MarketSlices;
    use super::*;
    use pulp::Scalar;

    /// A small deterministic generator (SplitMix64), uniform in [0, 1).
    struct Uniform(u64);
    impl Uniform {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
        fn between(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.next()
        }
    }

    /// Random options: spot 1..1000, strike 0.3..3 x spot (log-uniform: deep in and out of the
    /// money), 1 day to 2 years, vol 1%..150%, rate and dividend each 0 (30%) or up to 10% / 6%.
    fn random_market(n: usize, seed: u64) -> [Vec<f64>; 6] {
        let mut u = Uniform(seed);
        let mut cols: [Vec<f64>; 6] = Default::default();
        for _ in 0..n {
            let spot = u.between(1.0, 1000.0);
            let strike = spot * u.between(0.3f64.ln(), 3.0f64.ln()).exp();
            let t = u.between(1.0, 731.0).floor() / 365.0;
            let vol = u.between(0.01, 1.5);
            let rate = if u.next() < 0.3 {
                0.0
            } else {
                u.between(0.0, 0.1)
            };
            let div = if u.next() < 0.3 {
                0.0
            } else {
                u.between(0.0, 0.06)
            };
            for (c, x) in cols.iter_mut().zip([spot, strike, t, vol, rate, div]) {
                c.push(x);
            }
        }
        cols
    }

    /// One instruction set to run a pass on.
    #[derive(Clone, Copy, Debug)]
    enum Isa {
        Scalar,
        Dispatched,
        #[cfg(target_arch = "x86_64")]
        V3(pulp::x86::V3),
        #[cfg(target_arch = "x86_64")]
        V4(pulp::x86::V4),
    }

    impl Isa {
        /// Scalar, whatever `Arch` picks, and AVX2 + FMA and AVX-512 where this CPU has them.
        fn all() -> Vec<Isa> {
            let mut all = vec![Isa::Scalar, Isa::Dispatched];
            #[cfg(target_arch = "x86_64")]
            {
                all.extend(pulp::x86::V3::try_new().map(Isa::V3));
                all.extend(pulp::x86::V4::try_new().map(Isa::V4));
            }
            all
        }

        fn run<W: WithSimd>(self, op: W) -> W::Output {
            match self {
                Isa::Scalar => op.with_simd(Scalar),
                Isa::Dispatched => Arch::new().dispatch(op),
                #[cfg(target_arch = "x86_64")]
                Isa::V3(simd) => Simd::vectorize(simd, op),
                #[cfg(target_arch = "x86_64")]
                Isa::V4(simd) => Simd::vectorize(simd, op),
            }
        }
    }

    fn market(cols: &[Vec<f64>; 6]) -> MarketSlices<'_> {
        MarketSlices {
            spot: &cols[0],
            strike: &cols[1],
            t: &cols[2],
            vol: &cols[3],
            rate: &cols[4],
            div: &cols[5],
        }
    }

    /// Prices and greeks of one chunk through the vector pass on `isa`, then the scalar redo.
    fn greeks_on(isa: Isa, kind: OptionKind, cols: &[Vec<f64>; 6]) -> (Vec<Greeks>, Flags) {
        let slices = market(cols);
        let Ok(m) = Market::new(&slices) else {
            unreachable!("lengths agree")
        };
        let n = cols.iter().map(Vec::len).max().unwrap_or(0);
        let mut out = vec![vec![f64::NAN; n]; 6];
        let [p, d, g, v, th, r] = &mut out[..] else {
            unreachable!("six columns")
        };
        let mut sink = GreeksSlices {
            price: p,
            delta: d,
            gamma: g,
            vega: v,
            theta: th,
            rho: r,
        };
        let redo = isa.run(GreeksPass {
            w: kind.sign(),
            market: &m,
            base: 0,
            out: GreeksSlices {
                price: &mut *sink.price,
                delta: &mut *sink.delta,
                gamma: &mut *sink.gamma,
                vega: &mut *sink.vega,
                theta: &mut *sink.theta,
                rho: &mut *sink.rho,
            },
        });
        let flags = redo_scalar(kind, &m, 0, &redo, false, &mut sink);
        let greeks = (0..n)
            .map(|i| Greeks {
                price: out[0][i],
                delta: out[1][i],
                gamma: out[2][i],
                vega: out[3][i],
                theta: out[4][i],
                rho: out[5][i],
            })
            .collect();
        (greeks, flags)
    }

    /// Prices of one chunk through the price pass on `isa`, then the scalar redo.
    fn prices_on(isa: Isa, kind: OptionKind, cols: &[Vec<f64>; 6]) -> (Vec<f64>, Flags) {
        let slices = market(cols);
        let Ok(m) = Market::new(&slices) else {
            unreachable!("lengths agree")
        };
        let n = cols.iter().map(Vec::len).max().unwrap_or(0);
        let mut out = vec![f64::NAN; n];
        let redo = isa.run(PricePass {
            w: kind.sign(),
            market: &m,
            base: 0,
            out: &mut out,
        });
        let flags = redo_scalar(kind, &m, 0, &redo, true, &mut &mut out[..]);
        (out, flags)
    }

    /// Option i's inputs (columns of length 1 are broadcast).
    fn inputs(cols: &[Vec<f64>; 6], i: usize) -> [f64; 6] {
        let at = |c: &Vec<f64>| if c.len() == 1 { c[0] } else { c[i] };
        [
            at(&cols[0]),
            at(&cols[1]),
            at(&cols[2]),
            at(&cols[3]),
            at(&cols[4]),
            at(&cols[5]),
        ]
    }

    fn scalar(kind: OptionKind, x: [f64; 6]) -> Greeks {
        bs_greeks_unchecked(kind, x[0], x[1], x[2], x[3], x[4], x[5])
    }

    #[test]
    fn vector_greeks_match_the_scalar_code_on_random_options_on_every_isa() {
        // An odd length, so every pass also runs its ragged tail.
        let cols = random_market(100_003, 42);
        for isa in Isa::all() {
            for kind in [OptionKind::Call, OptionKind::Put] {
                let (got, flags) = greeks_on(isa, kind, &cols);
                assert!(!flags.bad_input && !flags.non_finite, "{isa:?} {flags:?}");
                let mut failures = Vec::new();
                for (i, g) in got.iter().enumerate() {
                    let x = inputs(&cols, i);
                    if let Err(e) = agrees(kind, x, g, &scalar(kind, x)) {
                        failures.push(e);
                    }
                }
                assert!(
                    failures.is_empty(),
                    "{isa:?}: {} failures, first {:?}",
                    failures.len(),
                    failures.first()
                );
            }
        }
    }

    #[test]
    fn broadcast_columns_give_the_same_numbers_as_full_ones() {
        let full = random_market(1_001, 7);
        // Spot, vol and rate shared by every option.
        let mut shared = full.clone();
        for c in [0, 3, 4] {
            shared[c] = vec![full[c][0]];
        }
        let mut expanded = full.clone();
        for c in [0, 3, 4] {
            expanded[c] = vec![full[c][0]; 1_001];
        }
        for isa in Isa::all() {
            let (a, _) = greeks_on(isa, OptionKind::Put, &shared);
            let (b, _) = greeks_on(isa, OptionKind::Put, &expanded);
            assert_eq!(a, b, "{isa:?}");
        }
    }

    #[test]
    fn an_option_gets_the_same_numbers_wherever_it_sits_in_the_batch() {
        // Shifting by 3 moves every option to another lane, block and (near the end) the tail.
        let cols = random_market(1_003, 5);
        let mut shifted = cols.clone();
        for c in &mut shifted {
            c.rotate_left(3);
        }
        for isa in Isa::all() {
            let (a, _) = greeks_on(isa, OptionKind::Call, &cols);
            let (mut b, _) = greeks_on(isa, OptionKind::Call, &shifted);
            b.rotate_right(3);
            assert_eq!(a, b, "{isa:?}");
        }
    }

    #[test]
    fn the_price_pass_gives_the_greeks_pass_price_bit_for_bit() {
        let mut cols = random_market(4_099, 11);
        // Lanes the scalar code redoes, too.
        cols[0][3] = 1e300;
        cols[1][3] = 1e-10;
        cols[5][100] = 800.0;
        cols[3][200] = -0.2;
        for isa in Isa::all() {
            for kind in [OptionKind::Call, OptionKind::Put] {
                let (greeks, _) = greeks_on(isa, kind, &cols);
                let (prices, _) = prices_on(isa, kind, &cols);
                for (g, p) in greeks.iter().zip(&prices) {
                    assert_eq!(g.price.to_bits(), p.to_bits(), "{isa:?} {kind:?}");
                }
            }
        }
    }

    #[test]
    fn lanes_outside_the_vector_domain_are_the_scalar_results() {
        // Valid but extreme: moneyness overflowing or subnormal, discount exponents beyond -708,
        // vol * sqrt(t) subnormal, huge or tiny values everywhere; and invalid inputs.
        let rows: [[f64; 6]; 15] = [
            // spot x sd overflows (found by the property test: 1/sd would be taken as 0).
            [f64::MAX, 1520.0, 3.88, 2.28, 0.0, 0.09],
            // sd subnormal, at and away from the money.
            [1e10, 1e10, 1e-300, 1e-160, 0.0, 0.0],
            [1e10, 2e10, 1e-300, 1e-160, 0.0, 0.0],
            [1e300, 1e-10, 1.0, 0.2, 0.0, 0.0],
            [1e-10, 1e300, 1.0, 0.2, 0.0, 0.0],
            [1e-300, 1e10, 1.0, 0.2, 0.0, 0.0],
            [100.0, 100.0, 2.0, 0.2, 0.0, 400.0],
            [100.0, 100.0, 2.0, 0.2, 400.0, 0.0],
            [100.0, 100.0, 2.0, 0.2, -400.0, 0.0],
            [100.0, 100.0, 1e-300, 1e-10, 0.0, 0.0],
            [100.0, 100.0, 1e20, 1e300, 0.0, 0.0],
            [f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX],
            [100.0, 100.0, 1.0, -0.2, 0.0, 0.0],
            [100.0, f64::NAN, 1.0, 0.2, 0.0, 0.0],
            [100.0, 100.0, 1.0, 0.2, f64::INFINITY, 0.0],
        ];
        let mut cols: [Vec<f64>; 6] = Default::default();
        for (c, col) in cols.iter_mut().enumerate() {
            // Ordinary options between the odd ones, so each odd one shares a vector with them.
            for row in &rows {
                col.push(row[c]);
                col.push([100.0, 95.0, 0.5, 0.25, 0.03, 0.01][c]);
            }
        }
        for isa in Isa::all() {
            for kind in [OptionKind::Call, OptionKind::Put] {
                let (got, flags) = greeks_on(isa, kind, &cols);
                // Invalid inputs are seen, and so is the scalar code's overflow (vol * sqrt(t) = inf).
                assert!(flags.bad_input && flags.non_finite, "{isa:?}");
                for (i, g) in got.iter().enumerate() {
                    let x = inputs(&cols, i);
                    let want = scalar(kind, x);
                    if i % 2 == 0 {
                        let same = [
                            (g.price, want.price),
                            (g.delta, want.delta),
                            (g.gamma, want.gamma),
                            (g.vega, want.vega),
                            (g.theta, want.theta),
                            (g.rho, want.rho),
                        ]
                        .iter()
                        .all(|(a, b)| a.to_bits() == b.to_bits() || (a - b).abs() <= 1e-290);
                        assert!(same, "{isa:?} {kind:?} {x:?}: {g:?} vs {want:?}");
                    } else {
                        assert_eq!(agrees(kind, x, g, &want), Ok(()));
                    }
                }
            }
        }
    }
}
