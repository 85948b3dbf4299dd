//! Properties of every public pricing function: arbitrary inputs (NaN, infinities, zeros,
//! negatives, subnormals, empty and mismatched slices) give Ok or Err, never a panic; inside a
//! realistic domain the results are finite and obey the no-arbitrage bounds and their inverses.

use proptest::prelude::*;

use super::*;

fn any_kind() -> impl Strategy<Value = OptionKind> {
    prop_oneof![Just(OptionKind::Call), Just(OptionKind::Put)]
}

/// Any f64 at all, with the awkward ones over-represented.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::ANY,
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(1e-300),
        -5.0..5.0f64,
        0.0..300.0f64,
    ]
}

fn any_vec() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(any_f64(), 0..4)
}

/// A value of one market argument: mostly ordinary, sometimes of any magnitude (1e-300..1e300;
/// of either sign unless `positive`), and unless `valid`, sometimes anything at all.
fn market_value(lo: f64, hi: f64, positive: bool, valid: bool) -> BoxedStrategy<f64> {
    let wide = (-690.0..690.0f64).prop_map(f64::exp);
    let signed =
        (-690.0..690.0f64, any::<bool>()).prop_map(|(e, neg)| if neg { -e.exp() } else { e.exp() });
    let ordinary = lo..hi;
    match (positive, valid) {
        (true, true) => prop_oneof![6 => ordinary, 2 => wide].boxed(),
        (false, true) => prop_oneof![6 => ordinary, 2 => signed].boxed(),
        (_, false) => prop_oneof![6 => ordinary, 1 => wide, 1 => signed, 1 => any_f64()].boxed(),
    }
}

/// The six market columns of a batch of n options, each of length n or (sometimes) 1, long
/// enough that the vector kernel runs full vectors and a ragged tail; `valid`: every value is a
/// valid input (possibly extreme), so the batch fails only where a result overflows.
fn market_columns(valid: bool) -> impl Strategy<Value = [Vec<f64>; 6]> {
    (1usize..40).prop_flat_map(move |n| {
        let column = move |lo: f64, hi: f64, positive: bool| {
            prop_oneof![
                4 => prop::collection::vec(market_value(lo, hi, positive, valid), n),
                1 => prop::collection::vec(market_value(lo, hi, positive, valid), 1),
            ]
        };
        (
            column(1.0, 1_000.0, true),
            column(0.5, 2_000.0, true),
            column(1e-4, 5.0, true),
            column(0.01, 3.0, true),
            column(-0.05, 0.2, false),
            column(-0.05, 0.1, false),
        )
            .prop_map(|(s, k, t, v, r, q)| [s, k, t, v, r, q])
    })
}

/// Element i of a column of length 1 or n.
fn at(column: &[f64], i: usize) -> f64 {
    column[if column.len() == 1 { 0 } else { i }]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn scalar_functions_never_panic(
        kind in any_kind(), a in any_f64(), s in any_f64(), k in any_f64(), t in any_f64(),
        v in any_f64(), r in any_f64(), q in any_f64(),
    ) {
        let _ = OptionKind::parse(&format!("{a}"));
        if let Ok(p) = bs_price(kind, s, k, t, v, r, q) {
            prop_assert!(p.is_finite());
        }
        if let Ok(g) = bs_greeks(kind, s, k, t, v, r, q) {
            prop_assert!(g.is_finite());
        }
        let _ = bs_price_unchecked(kind, s, k, t, v, r, q);
        let _ = bs_greeks_unchecked(kind, s, k, t, v, r, q);
        if let Ok(iv) = implied_vol(kind, a, s, k, t, r, q) {
            prop_assert!(iv.is_finite() && iv > 0.0);
        }
        if let Ok(strike) = strike_for_delta(kind, a, s, t, v, r, q) {
            prop_assert!(strike.is_finite() && strike > 0.0);
        }
        let _ = normal::inv_cdf(a);
        let _ = normal::cdf(a);
        let _ = normal::pdf(a);
        let _ = normal::erfcx(a);
    }

    #[test]
    fn batch_functions_never_panic(
        kind in any_kind(), a in any_vec(), s in any_vec(), k in any_vec(), t in any_vec(),
        v in any_vec(), r in any_vec(), q in any_vec(),
    ) {
        if let Ok(p) = bs_price_batch(kind, &s, &k, &t, &v, &r, &q) {
            prop_assert!(p.iter().all(|x| x.is_finite()));
        }
        if let Ok(g) = bs_greeks_batch(kind, &s, &k, &t, &v, &r, &q) {
            prop_assert_eq!(g.price.len(), g.rho.len());
        }
        if let Ok(iv) = implied_vol_batch(kind, &a, &s, &k, &t, &r, &q) {
            prop_assert_eq!(iv.failed, iv.vol.iter().filter(|x| x.is_nan()).count());
        }
        if let Ok(ks) = strike_for_delta_batch(kind, &a, &s, &t, &v, &r, &q) {
            prop_assert!(ks.iter().all(|x| x.is_finite() && *x > 0.0));
        }
        // Caller-owned outputs of any length (the right one is the batch length).
        let market = batch::MarketSlices { spot: &s, strike: &k, t: &t, vol: &v, rate: &r, div: &q };
        let len = a.len();
        let mut out = vec![vec![0.0; len]; 6];
        let _ = batch::bs_price_batch_into(kind, &market, &mut out[0]);
        if let [p, d, g, ve, th, rh] = &mut out[..] {
            let slices = batch::GreeksSlices { price: p, delta: d, gamma: g, vega: ve, theta: th, rho: rh };
            if batch::bs_greeks_batch_into(kind, &market, slices).is_ok() {
                prop_assert_eq!(Ok(len), market.batch_len());
            }
        }
    }

    #[test]
    fn batch_greeks_are_the_scalar_greeks_element_by_element(
        kind in any_kind(), cols in any::<bool>().prop_flat_map(market_columns),
    ) {
        let [s, k, t, v, r, q] = &cols;
        let n = cols.iter().map(Vec::len).max().unwrap_or(1);
        let scalar: Vec<CoreResult<Greeks>> = (0..n)
            .map(|i| bs_greeks(kind, at(s, i), at(k, i), at(t, i), at(v, i), at(r, i), at(q, i)))
            .collect();
        let batch = bs_greeks_batch(kind, s, k, t, v, r, q);
        let prices = bs_price_batch(kind, s, k, t, v, r, q);
        // Ok exactly when every element is Ok on its own.
        prop_assert_eq!(batch.is_ok(), scalar.iter().all(Result::is_ok), "{:?}", batch);
        match batch {
            Ok(g) => {
                for (i, x) in scalar.iter().enumerate() {
                    let x = x.clone().unwrap_or_default();
                    let got = Greeks {
                        price: g.price[i], delta: g.delta[i], gamma: g.gamma[i],
                        vega: g.vega[i], theta: g.theta[i], rho: g.rho[i],
                    };
                    let inputs = [at(s, i), at(k, i), at(t, i), at(v, i), at(r, i), at(q, i)];
                    prop_assert_eq!(kernel::agrees(kind, inputs, &got, &x), Ok(()));
                }
                // Prices alone are the greeks' prices, bit for bit.
                let prices = prices.unwrap_or_default();
                prop_assert!(prices.iter().zip(&g.price).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
            Err(e) => {
                // With valid inputs the error is the scalar one of the first element that fails.
                let all_valid = (0..n).all(|i| {
                    validate_inputs(at(s, i), at(k, i), at(t, i), at(v, i), at(r, i), at(q, i)).is_ok()
                });
                if all_valid {
                    let first = scalar.iter().position(Result::is_err).unwrap_or(n);
                    let want = scalar.get(first).and_then(|x| x.clone().err());
                    prop_assert_eq!(Some(e.field().to_string()), want.map(|w| w.field().to_string()));
                    let element = format!("element {first}:");
                    prop_assert!(e.reason().starts_with(&element), "{} / {}", e.reason(), element);
                }
            }
        }
    }

    #[test]
    fn realistic_inputs_give_bounded_finite_greeks(
        kind in any_kind(), s in 1.0..1_000.0f64, m in 0.3..3.0f64, days in 1u32..1_500,
        v in 0.01..3.0f64, r in -0.02..0.15f64, q in -0.02..0.10f64,
    ) {
        let (k, t) = (s * m, f64::from(days) / 365.0);
        let g = bs_greeks(kind, s, k, t, v, r, q);
        prop_assert!(g.is_ok());
        let g = g.unwrap_or_default();
        let (fwd, kd) = (s * (-q * t).exp(), k * (-r * t).exp());
        let intrinsic = (kind.sign() * (fwd - kd)).max(0.0);
        let upper = if kind == OptionKind::Call { fwd } else { kd };
        let slack = 1e-12 * s.max(k);
        prop_assert!(g.price >= intrinsic - slack && g.price <= upper + slack, "{g:?}");
        prop_assert!(g.gamma >= 0.0 && g.vega >= 0.0);
        prop_assert!(kind.sign() * g.delta >= 0.0 && g.delta.abs() <= (-q * t).exp() * (1.0 + 1e-15));
    }

    #[test]
    fn implied_vol_inverts_price_where_it_is_identifiable(
        kind in any_kind(), m in 0.5..2.0f64, days in 1u32..730, v in 0.02..2.0f64,
        r in 0.0..0.1f64, q in 0.0..0.05f64,
    ) {
        let (s, k, t) = (100.0, 100.0 * m, f64::from(days) / 365.0);
        let g = bs_greeks(kind, s, k, t, v, r, q).unwrap_or_default();
        let fwd_disc = s * (-q * t).exp();
        let k_disc = k * (-r * t).exp();
        let time_value = g.price - (kind.sign() * (fwd_disc - k_disc)).max(0.0);
        // Only when the price still resolves the volatility to 1e-6 can it be asked back.
        prop_assume!(time_value > 1e-300 && g.vega * v * 1e-6 > 1e3 * f64::EPSILON * g.price.max(fwd_disc));
        let iv = implied_vol(kind, g.price, s, k, t, r, q);
        prop_assert!(iv.is_ok(), "{iv:?}");
        let iv = iv.unwrap_or(f64::NAN);
        prop_assert!((iv - v).abs() <= 1e-6 * v, "vol {v} -> {iv}");
    }

    #[test]
    fn strike_for_delta_inverts_delta(
        kind in any_kind(), target in 0.02..0.95f64, days in 1u32..730, v in 0.02..2.0f64,
        r in 0.0..0.1f64, q in 0.0..0.05f64,
    ) {
        let t = f64::from(days) / 365.0;
        let target = target * (-q * t).exp() * kind.sign();
        let k = strike_for_delta(kind, target, 100.0, t, v, r, q);
        prop_assert!(k.is_ok(), "{k:?}");
        let d = bs_greeks(kind, 100.0, k.unwrap_or(f64::NAN), t, v, r, q).map(|g| g.delta).unwrap_or(f64::NAN);
        prop_assert!((d - target).abs() <= 1e-10, "target {target} got {d}");
    }
}
