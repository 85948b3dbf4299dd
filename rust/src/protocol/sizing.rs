//! Position sizing (PROTOCOL section 8): a cash-secured put sized to the account's deployment target, and
//! covered calls.

use super::exact;
use crate::error::{check, CoreError, CoreResult};

/// The largest per-symbol weight an account may configure: total deployment never exceeds 95% of equity
/// (PROTOCOL section 3), so a single-symbol account may raise `max_symbol_weight` up to this.
pub const MAX_SYMBOL_WEIGHT: f64 = 0.95;

/// Inputs of a cash-secured put's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PutSizing {
    /// Account equity E.
    pub equity: f64,
    /// Free cash F after the buffer.
    pub free_cash: f64,
    /// Strike K.
    pub strike: f64,
    /// Per-symbol target share t = D / number of the account's symbols (the caller divides).
    pub target_share: f64,
    /// Concentration cap on one symbol as a share of equity (R07, 0.25 by default), in (0, 0.95].
    pub max_symbol_weight: f64,
    /// Exposure the account already has to the symbol, in dollars.
    pub existing_exposure: f64,
    /// Label (section 3), ATR-regime, drawdown-protection and VIX multipliers; 0 means zero contracts.
    pub m_label: f64,
    pub m_atr: f64,
    pub m_drawdown: f64,
    pub m_vix: f64,
    /// Drawdown budget: the allowed share of the deployment target, in [0, 1].
    pub allowed_exposure: f64,
    /// Shares per contract M (100).
    pub multiplier: f64,
}

/// What bound a put's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binding {
    /// The per-symbol target t.
    Target,
    /// The concentration cap `max_symbol_weight`, lower than t.
    SymbolCap,
    /// Free cash after the buffer.
    FreeCash,
    /// A multiplier (or the allowed exposure) of 0.
    ZeroMultiplier,
}

impl Binding {
    /// "target", "symbol_cap", "free_cash" or "zero_multiplier".
    pub fn name(self) -> &'static str {
        match self {
            Binding::Target => "target",
            Binding::SymbolCap => "symbol_cap",
            Binding::FreeCash => "free_cash",
            Binding::ZeroMultiplier => "zero_multiplier",
        }
    }
}

/// The budget and the contracts it buys, with the binding constraint named for the explanation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeResult {
    pub budget: f64,
    pub contracts: u32,
    pub binding: Binding,
}

fn unit_interval(field: &str, x: f64) -> CoreResult<f64> {
    if x.is_finite() && (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(CoreError::invalid(
            field,
            format!("must be in [0, 1], got {x}"),
        ))
    }
}

impl PutSizing {
    /// Every input finite and in its domain; the error names the first bad argument.
    pub fn validate(&self) -> CoreResult<()> {
        check::non_negative("equity", self.equity)?;
        check::non_negative("free_cash", self.free_cash)?;
        check::positive("strike", self.strike)?;
        check::non_negative("target_share", self.target_share)?;
        let w = self.max_symbol_weight;
        if !(w.is_finite() && w > 0.0 && exact::at_most(w, MAX_SYMBOL_WEIGHT)) {
            return Err(CoreError::invalid(
                "max_symbol_weight",
                format!("must be in (0, {MAX_SYMBOL_WEIGHT}], got {w}"),
            ));
        }
        check::non_negative("existing_exposure", self.existing_exposure)?;
        check::non_negative("m_label", self.m_label)?;
        check::non_negative("m_atr", self.m_atr)?;
        check::non_negative("m_drawdown", self.m_drawdown)?;
        check::non_negative("m_vix", self.m_vix)?;
        unit_interval("allowed_exposure", self.allowed_exposure)?;
        check::positive("multiplier", self.multiplier)?;
        Ok(())
    }
}

/// budget = min(min(t, max_symbol_weight) x E x m_label x m_ATR x m_drawdown x m_VIX x allowed_exposure - existing,
/// F), floored at 0; contracts = floor(budget / (K x M)) on exact values (4.9999999999 is 5); zero means no trade
/// (never rounded up). Any multiplier of 0 (or an allowed exposure of 0) gives 0 contracts, binding
/// "zero_multiplier". Never panics: bad input, or a budget too large to count in contracts, is an error.
pub fn size_put(p: &PutSizing) -> CoreResult<SizeResult> {
    p.validate()?;
    let multipliers = [
        p.m_label,
        p.m_atr,
        p.m_drawdown,
        p.m_vix,
        p.allowed_exposure,
    ];
    if multipliers.contains(&0.0) {
        return Ok(SizeResult {
            budget: 0.0,
            contracts: 0,
            binding: Binding::ZeroMultiplier,
        });
    }
    let (share, mut binding) = if exact::at_most(p.target_share, p.max_symbol_weight) {
        (p.target_share, Binding::Target)
    } else {
        (p.max_symbol_weight, Binding::SymbolCap)
    };
    let gross = multipliers.iter().fold(share * p.equity, |acc, m| acc * m) - p.existing_exposure;
    if !gross.is_finite() {
        return Err(CoreError::invalid(
            "equity",
            "the budget is out of range of a finite number",
        ));
    }
    let mut budget = gross;
    if exact::below(p.free_cash, gross) {
        budget = p.free_cash;
        binding = Binding::FreeCash;
    }
    let budget = budget.max(0.0);
    if budget == 0.0 {
        return Ok(SizeResult {
            budget,
            contracts: 0,
            binding,
        });
    }
    let raw = exact::floor(budget / (p.strike * p.multiplier));
    if !raw.is_finite() || raw > f64::from(u32::MAX) {
        return Err(CoreError::invalid(
            "strike",
            "budget / (strike x multiplier) is out of range",
        ));
    }
    Ok(SizeResult {
        budget,
        contracts: raw.max(0.0) as u32,
        binding,
    })
}

/// Covered calls: floor(shares / multiplier) contracts, at most `max_cover_share` of them (0.5 in C-REC or under
/// moderate-or-worse drawdown protection, else 1.0). Both floors are on exact values.
pub fn size_covered_calls(shares: f64, max_cover_share: f64, multiplier: f64) -> CoreResult<u32> {
    check::non_negative("shares", shares)?;
    check::positive("multiplier", multiplier)?;
    unit_interval("max_cover_share", max_cover_share)?;
    let full = exact::floor(shares / multiplier);
    let capped = exact::floor(full * max_cover_share);
    if !capped.is_finite() || capped > f64::from(u32::MAX) {
        return Err(CoreError::invalid("shares", "too many shares"));
    }
    Ok(capped.max(0.0) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> PutSizing {
        PutSizing {
            equity: 38_000.0,
            free_cash: 38_000.0,
            strike: 30.0,
            target_share: 0.125,
            max_symbol_weight: 0.25,
            existing_exposure: 0.0,
            m_label: 1.0,
            m_atr: 1.0,
            m_drawdown: 1.0,
            m_vix: 1.0,
            allowed_exposure: 1.0,
            multiplier: 100.0,
        }
    }

    fn contracts_and_binding(p: PutSizing) -> (u32, &'static str) {
        size_put(&p)
            .map(|r| (r.contracts, r.binding.name()))
            .unwrap_or((u32::MAX, "error"))
    }

    #[test]
    fn floors_and_never_rounds_up() {
        // 12.5% of 38,000 = 4,750; 4,750 / 3,000 = 1.58 -> 1 contract
        let r = size_put(&base()).unwrap();
        assert_eq!(
            (r.contracts, r.binding, r.budget),
            (1, Binding::Target, 4_750.0)
        );
        let r = size_put(&PutSizing {
            strike: 50.0,
            ..base()
        })
        .unwrap();
        assert_eq!(r.contracts, 0);
    }

    #[test]
    fn sizes_to_the_deployment_target() {
        // Gen-Acc, 100,000 of equity, D = 90% over 4 symbols: t = 22.5%; 22,500 / (20 x 100) = 11.25 -> 11
        let p = PutSizing {
            equity: 100_000.0,
            free_cash: 95_000.0,
            strike: 20.0,
            target_share: 0.9 / 4.0,
            ..base()
        };
        let r = size_put(&p).unwrap();
        assert_eq!((r.contracts, r.binding), (11, Binding::Target));
        assert!((r.budget - 22_500.0).abs() < 1e-9);
        // every multiplier scales the budget: 22,500 x 0.75 x 1.1 x 0.8 x 0.5 x 0.5 = 3,712.5 -> 1
        let r = size_put(&PutSizing {
            m_label: 0.75,
            m_atr: 1.1,
            m_drawdown: 0.8,
            m_vix: 0.5,
            allowed_exposure: 0.5,
            ..p
        })
        .unwrap();
        assert!((r.budget - 3_712.5).abs() < 1e-9);
        assert_eq!(r.contracts, 1);
    }

    #[test]
    fn binding_constraints() {
        // t above the cap: the cap binds (single symbol at 90% -> 25%)
        let p = PutSizing {
            target_share: 0.9,
            ..base()
        };
        assert_eq!(contracts_and_binding(p), (3, "symbol_cap")); // 9,500 / 3,000
                                                                 // a single-symbol account may raise the cap to 95%
        let p = PutSizing {
            max_symbol_weight: 0.95,
            strike: 10.0,
            ..p
        };
        assert_eq!(contracts_and_binding(p), (34, "target")); // 34,200 / 1,000
                                                              // existing exposure comes off the scaled target
        let r = size_put(&PutSizing {
            existing_exposure: 3_000.0,
            ..base()
        })
        .unwrap();
        assert_eq!((r.budget, r.contracts), (1_750.0, 0));
        let r = size_put(&PutSizing {
            existing_exposure: 8_000.0,
            ..base()
        })
        .unwrap();
        assert_eq!(
            (r.budget, r.contracts, r.binding),
            (0.0, 0, Binding::Target)
        );
        // free cash binds below the target
        let r = size_put(&PutSizing {
            free_cash: 1_000.0,
            ..base()
        })
        .unwrap();
        assert_eq!(
            (r.budget, r.contracts, r.binding),
            (1_000.0, 0, Binding::FreeCash)
        );
    }

    #[test]
    fn a_multiplier_of_zero_is_zero_contracts() {
        for p in [
            PutSizing {
                m_label: 0.0,
                ..base()
            },
            PutSizing {
                m_atr: 0.0,
                ..base()
            },
            PutSizing {
                m_drawdown: 0.0,
                ..base()
            },
            PutSizing {
                m_vix: 0.0,
                ..base()
            },
            PutSizing {
                allowed_exposure: 0.0,
                ..base()
            },
        ] {
            let r = size_put(&p).unwrap();
            assert_eq!(
                (r.budget, r.contracts, r.binding),
                (0.0, 0, Binding::ZeroMultiplier)
            );
        }
    }

    #[test]
    fn contract_floor_is_exact() {
        // a budget of 4.9999999999 contracts is 5 contracts (PROTOCOL section 5)
        let r = size_put(&PutSizing {
            equity: 100_000.0,
            free_cash: 100_000.0,
            target_share: 4.999_999_999_9 * 3_000.0 / 100_000.0,
            ..base()
        })
        .unwrap();
        assert_eq!(r.contracts, 5);
        let r = size_put(&PutSizing {
            equity: 100_000.0,
            free_cash: 100_000.0,
            target_share: 4.9999 * 3_000.0 / 100_000.0,
            ..base()
        })
        .unwrap();
        assert_eq!(r.contracts, 4);
    }

    #[test]
    fn bad_input_names_the_argument() {
        let field = |p: PutSizing| size_put(&p).err().map(|e| e.field().to_string());
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            field(PutSizing {
                max_symbol_weight: 0.0,
                ..base()
            }),
            some("max_symbol_weight")
        );
        assert_eq!(
            field(PutSizing {
                max_symbol_weight: 0.96,
                ..base()
            }),
            some("max_symbol_weight")
        );
        assert_eq!(
            field(PutSizing {
                max_symbol_weight: 0.95,
                ..base()
            }),
            None
        );
        assert_eq!(
            field(PutSizing {
                equity: -1.0,
                ..base()
            }),
            some("equity")
        );
        assert_eq!(
            field(PutSizing {
                free_cash: f64::NAN,
                ..base()
            }),
            some("free_cash")
        );
        assert_eq!(
            field(PutSizing {
                strike: 0.0,
                ..base()
            }),
            some("strike")
        );
        assert_eq!(
            field(PutSizing {
                target_share: -0.1,
                ..base()
            }),
            some("target_share")
        );
        assert_eq!(
            field(PutSizing {
                existing_exposure: -1.0,
                ..base()
            }),
            some("existing_exposure")
        );
        assert_eq!(
            field(PutSizing {
                m_label: f64::NAN,
                ..base()
            }),
            some("m_label")
        );
        assert_eq!(
            field(PutSizing {
                m_atr: -0.5,
                ..base()
            }),
            some("m_atr")
        );
        assert_eq!(
            field(PutSizing {
                m_drawdown: f64::INFINITY,
                ..base()
            }),
            some("m_drawdown")
        );
        assert_eq!(
            field(PutSizing {
                m_vix: -1.0,
                ..base()
            }),
            some("m_vix")
        );
        assert_eq!(
            field(PutSizing {
                allowed_exposure: 1.5,
                ..base()
            }),
            some("allowed_exposure")
        );
        assert_eq!(
            field(PutSizing {
                multiplier: 0.0,
                ..base()
            }),
            some("multiplier")
        );
        // a budget no u32 counts is an error, not a panic
        assert!(size_put(&PutSizing {
            equity: 1e300,
            free_cash: 1e300,
            strike: 1e-300,
            ..base()
        })
        .is_err());
    }

    #[test]
    fn covered_calls() {
        assert_eq!(size_covered_calls(350.0, 1.0, 100.0), Ok(3));
        assert_eq!(size_covered_calls(350.0, 0.5, 100.0), Ok(1));
        assert_eq!(size_covered_calls(400.0 * (1.0 - 1e-12), 1.0, 100.0), Ok(4));
        assert!(size_covered_calls(-1.0, 1.0, 100.0).is_err());
        assert!(size_covered_calls(100.0, 1.5, 100.0).is_err());
        assert!(size_covered_calls(1e300, 1.0, 1e-300).is_err());
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            proptest::num::f64::ANY,
            -1e3f64..1e7,
            Just(0.0),
            Just(1.0),
            Just(0.95),
        ]
    }

    proptest! {
        #[test]
        fn size_put_never_panics(
            v in proptest::collection::vec(any_f64(), 12),
        ) {
            let p = PutSizing {
                equity: v[0],
                free_cash: v[1],
                strike: v[2],
                target_share: v[3],
                max_symbol_weight: v[4],
                existing_exposure: v[5],
                m_label: v[6],
                m_atr: v[7],
                m_drawdown: v[8],
                m_vix: v[9],
                allowed_exposure: v[10],
                multiplier: v[11],
            };
            if let Ok(r) = size_put(&p) {
                prop_assert!(r.budget.is_finite() && r.budget >= 0.0);
                prop_assert!(r.budget <= p.free_cash.max(0.0) * (1.0 + 1e-9) + 1e-12);
                let per_contract = p.strike * p.multiplier;
                if per_contract.is_finite() && per_contract > 0.0 {
                    prop_assert!(f64::from(r.contracts) * per_contract <= r.budget * (1.0 + 2e-9) + 1e-9);
                }
            }
        }

        #[test]
        fn size_put_is_monotone_in_the_multipliers(
            equity in 1e3f64..1e8, strike in 1f64..5e3, t in 0f64..1.0, m in 0f64..1.5, k in 0f64..1.0,
        ) {
            let p = PutSizing { equity, free_cash: equity, strike, target_share: t, max_symbol_weight: 0.95,
                ..base() };
            let full = size_put(&p).map(|r| r.contracts);
            let scaled = size_put(&PutSizing { m_atr: m.min(1.0), allowed_exposure: k, ..p }).map(|r| r.contracts);
            prop_assert!(scaled.unwrap_or(0) <= full.unwrap_or(0));
        }

        #[test]
        fn covered_calls_never_panic(s in any_f64(), c in any_f64(), m in any_f64()) {
            if let Ok(n) = size_covered_calls(s, c, m) {
                prop_assert!(f64::from(n) <= s / m + 1.0);
            }
        }
    }
}
