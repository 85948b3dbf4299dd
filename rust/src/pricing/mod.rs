//! Black-Scholes-Merton pricing with a continuous dividend yield.
//!
//! Conventions follow QuantLib's analytic European engine: vega per 1.00 of volatility,
//! theta per year, rho per 1.00 of rate; `t` is in years.

pub mod batch;
pub mod greeks;
pub mod implied_vol;
mod kernel;
pub mod normal;
pub mod strike;

#[cfg(test)]
mod proptests;

pub use batch::{
    bs_greeks_batch, bs_price_batch, implied_vol_batch, strike_for_delta_batch, GreeksBatch,
    ImpliedVols,
};
pub use greeks::{bs_greeks, bs_greeks_unchecked, Greeks};
pub use implied_vol::implied_vol;
pub use strike::strike_for_delta;

use crate::error::{check, CoreError, CoreResult};

/// Call or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionKind {
    Call,
    Put,
}

impl OptionKind {
    /// Parses "call" or "put" (any case); anything else names the `kind` argument.
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "call" | "c" => Ok(OptionKind::Call),
            "put" | "p" => Ok(OptionKind::Put),
            _ => Err(CoreError::invalid(
                "kind",
                format!("must be 'call' or 'put', got '{s}'"),
            )),
        }
    }

    /// +1 for a call, -1 for a put.
    #[inline]
    pub fn sign(self) -> f64 {
        match self {
            OptionKind::Call => 1.0,
            OptionKind::Put => -1.0,
        }
    }
}

/// Validates the market inputs shared by every pricing call (spot, strike, t, vol > 0; rate, div finite).
pub fn validate_inputs(
    spot: f64,
    strike: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> CoreResult<()> {
    check::positive("spot", spot)?;
    check::positive("strike", strike)?;
    check::positive("t", t)?;
    check::positive("vol", vol)?;
    check::finite("rate", rate)?;
    check::finite("div", div)?;
    Ok(())
}

/// Price without validation: the revaluation and solver inner loops call this after checking once.
/// Inputs must satisfy `validate_inputs`; otherwise the result may be NaN (never a panic).
#[inline]
pub fn bs_price_unchecked(
    kind: OptionKind,
    spot: f64,
    strike: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> f64 {
    let w = kind.sign();
    let st = greeks::stage(spot, strike, t, vol, rate, div);
    let (n1, n2) = greeks::probabilities(w, &st);
    greeks::price_of(w, &st, n1, n2)
}

/// Validated Black-Scholes-Merton price of one European option.
///
/// Valid but extreme inputs whose price is not representable (vol * sqrt(t) or a discount factor
/// overflowing) are an error naming the argument responsible, never a NaN.
pub fn bs_price(
    kind: OptionKind,
    spot: f64,
    strike: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> CoreResult<f64> {
    validate_inputs(spot, strike, t, vol, rate, div)?;
    let price = bs_price_unchecked(kind, spot, strike, t, vol, rate, div);
    if price.is_finite() {
        Ok(price)
    } else {
        Err(out_of_range(spot, strike, t, vol, rate, div))
    }
}

/// The error for valid inputs whose result overflowed: names the first argument that pushes an
/// intermediate (vol sqrt(t), the rate or dividend discount factor, spot/strike) out of range.
pub(crate) fn out_of_range(
    spot: f64,
    strike: f64,
    t: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> CoreError {
    let sd = vol * t.sqrt();
    let representable = |x: f64| x.is_finite() && x > 0.0;
    if !representable(sd) || !representable(1.0 / (spot * sd)) {
        CoreError::invalid(
            "vol",
            format!("vol * sqrt(t) = {sd} is outside the range a price can be computed in"),
        )
    } else if !representable((-rate * t).exp()) || !(rate - div).is_finite() {
        CoreError::invalid(
            "rate",
            format!(
                "rate * t = {} is outside the range a price can be computed in",
                rate * t
            ),
        )
    } else if !representable((-div * t).exp()) {
        CoreError::invalid(
            "div",
            format!(
                "div * t = {} is outside the range a price can be computed in",
                div * t
            ),
        )
    } else {
        CoreError::invalid(
            "spot",
            format!(
                "spot / strike = {} is outside the range a price can be computed in",
                spot / strike
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_call_parity() {
        let (s, k, t, v, r, q) = (100.0, 95.0, 0.5, 0.25, 0.03, 0.01);
        let c = bs_price(OptionKind::Call, s, k, t, v, r, q).unwrap_or(f64::NAN);
        let p = bs_price(OptionKind::Put, s, k, t, v, r, q).unwrap_or(f64::NAN);
        let parity = s * (-q * t).exp() - k * (-r * t).exp();
        assert!((c - p - parity).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_inputs_by_name() {
        let e = bs_price(OptionKind::Call, -1.0, 100.0, 1.0, 0.2, 0.0, 0.0);
        assert_eq!(
            e.err().map(|e| e.field().to_string()),
            Some("spot".to_string())
        );
        let e = bs_price(OptionKind::Call, 100.0, 100.0, 1.0, f64::NAN, 0.0, 0.0);
        assert_eq!(
            e.err().map(|e| e.field().to_string()),
            Some("vol".to_string())
        );
        assert!(OptionKind::parse("straddle").is_err());
    }
}
