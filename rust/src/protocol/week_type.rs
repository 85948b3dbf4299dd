//! Week types (PROTOCOL section 4): what a week did to a position, from the position going into
//! expiry, the week's move and whether a roll is available.

use super::exact;
use crate::error::{check, CoreError, CoreResult};

/// The position going into expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    Cash,
    ShortPut,
    LongStock,
    ShortCall,
}

impl Position {
    /// Parses CASH, SHORT_PUT, LONG_STOCK or SHORT_CALL (any case, '-' or '_').
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "CASH" => Ok(Position::Cash),
            "SHORT_PUT" => Ok(Position::ShortPut),
            "LONG_STOCK" => Ok(Position::LongStock),
            "SHORT_CALL" => Ok(Position::ShortCall),
            _ => Err(CoreError::invalid(
                "position",
                format!("must be one of CASH, SHORT_PUT, LONG_STOCK, SHORT_CALL, got '{s}'"),
            )),
        }
    }
}

/// The eleven week types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeekType {
    Idle,
    PutExpiresWorthless,
    PutAssignedWithinLimit,
    PutRollOver,
    PutAssignedOverLimit,
    DeepDrawdown,
    StrongAppreciation,
    Appreciation,
    PremiumOnly,
    CallRollOver,
    Recovery,
}

impl WeekType {
    /// Every week type, in table order.
    pub const ALL: [WeekType; 11] = [
        WeekType::Idle,
        WeekType::PutExpiresWorthless,
        WeekType::PutAssignedWithinLimit,
        WeekType::PutRollOver,
        WeekType::PutAssignedOverLimit,
        WeekType::DeepDrawdown,
        WeekType::StrongAppreciation,
        WeekType::Appreciation,
        WeekType::PremiumOnly,
        WeekType::CallRollOver,
        WeekType::Recovery,
    ];

    /// The code used everywhere outside the core, e.g. "P-EW".
    pub fn code(self) -> &'static str {
        match self {
            WeekType::Idle => "W-IDL",
            WeekType::PutExpiresWorthless => "P-EW",
            WeekType::PutAssignedWithinLimit => "P-AWL",
            WeekType::PutRollOver => "P-RO",
            WeekType::PutAssignedOverLimit => "P-AOL",
            WeekType::DeepDrawdown => "P-DD",
            WeekType::StrongAppreciation => "C-WAP+",
            WeekType::Appreciation => "C-WAP",
            WeekType::PremiumOnly => "C-PNO",
            WeekType::CallRollOver => "C-RO",
            WeekType::Recovery => "C-REC",
        }
    }

    /// Plain-language name.
    pub fn name(self) -> &'static str {
        match self {
            WeekType::Idle => "idle week",
            WeekType::PutExpiresWorthless => "put expires worthless",
            WeekType::PutAssignedWithinLimit => "put assigned within limit",
            WeekType::PutRollOver => "put roll-over",
            WeekType::PutAssignedOverLimit => "put assigned over limit",
            WeekType::DeepDrawdown => "deep drawdown",
            WeekType::StrongAppreciation => "strong appreciation",
            WeekType::Appreciation => "appreciation",
            WeekType::PremiumOnly => "premium only",
            WeekType::CallRollOver => "call roll-over",
            WeekType::Recovery => "recovery",
        }
    }

    /// What the protocol does in such a week.
    pub fn action(self) -> &'static str {
        match self {
            WeekType::Idle => "wait; hold cash",
            WeekType::PutExpiresWorthless => "collect premium; sell the next put",
            WeekType::PutAssignedWithinLimit => "accept assignment; sell covered calls next",
            WeekType::PutRollOver => "roll out (and down) to avoid assignment",
            WeekType::PutAssignedOverLimit => "accept assignment; covered calls next",
            WeekType::DeepDrawdown => "capital preservation: protocol level 3",
            WeekType::StrongAppreciation | WeekType::Appreciation => "let shares be called away",
            WeekType::PremiumOnly => "keep premium; lower cost basis",
            WeekType::CallRollOver => "roll the call down to the current price",
            WeekType::Recovery => "sell 20-30 delta calls, leave recovery room",
        }
    }

    /// Expected week return range in percent (low, high).
    pub fn expected_return_pct(self) -> (f64, f64) {
        match self {
            WeekType::Idle => (0.0, 0.0),
            WeekType::PutExpiresWorthless
            | WeekType::PutAssignedWithinLimit
            | WeekType::PutAssignedOverLimit
            | WeekType::PremiumOnly => (1.8, 2.2),
            WeekType::PutRollOver => (1.0, 1.5),
            WeekType::DeepDrawdown => (-0.5, 0.0),
            WeekType::StrongAppreciation => (5.0, 6.0),
            WeekType::Appreciation => (3.0, 4.0),
            WeekType::CallRollOver => (0.8, 1.2),
            WeekType::Recovery => (0.5, 0.8),
        }
    }
}

/// The move boundaries of the table, in percent. Defaults are PROTOCOL section 4; config may change them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeekTypeBounds {
    /// SHORT_PUT: m >= this is P-EW.
    pub put_worthless_min: f64,
    /// SHORT_PUT: m >= this (and below put_worthless_min) is P-AWL.
    pub put_assigned_min: f64,
    /// Every non-cash position: m < this is P-DD.
    pub deep_drawdown_below: f64,
    /// Stock/calls: m >= this is C-WAP+.
    pub call_strong_min: f64,
    /// Stock/calls: m >= this is C-WAP.
    pub call_appreciation_min: f64,
    /// Stock/calls: m >= this is C-PNO.
    pub call_premium_min: f64,
    /// Stock/calls: m >= this is C-RO; below (down to deep_drawdown_below) is C-REC.
    pub call_roll_min: f64,
    /// Confidence is high when m is at least this far from every boundary of its table.
    pub confidence_margin: f64,
    pub confidence_high: f64,
    pub confidence_low: f64,
}

impl Default for WeekTypeBounds {
    fn default() -> Self {
        WeekTypeBounds {
            put_worthless_min: -1.0,
            put_assigned_min: -5.0,
            deep_drawdown_below: -15.0,
            call_strong_min: 5.0,
            call_appreciation_min: 1.0,
            call_premium_min: -5.0,
            call_roll_min: -10.0,
            confidence_margin: 0.5,
            confidence_high: 0.9,
            confidence_low: 0.6,
        }
    }
}

impl WeekTypeBounds {
    /// Checks the boundaries are finite and ordered as the table needs.
    pub fn validate(&self) -> CoreResult<()> {
        let named = [
            ("put_worthless_min", self.put_worthless_min),
            ("put_assigned_min", self.put_assigned_min),
            ("deep_drawdown_below", self.deep_drawdown_below),
            ("call_strong_min", self.call_strong_min),
            ("call_appreciation_min", self.call_appreciation_min),
            ("call_premium_min", self.call_premium_min),
            ("call_roll_min", self.call_roll_min),
            ("confidence_margin", self.confidence_margin),
            ("confidence_high", self.confidence_high),
            ("confidence_low", self.confidence_low),
        ];
        for (name, v) in named {
            check::finite(name, v)?;
        }
        let ordered = |field: &str, lo: f64, hi: f64| {
            if lo < hi {
                Ok(())
            } else {
                Err(CoreError::invalid(
                    field,
                    format!("must be above {lo}, got {hi}"),
                ))
            }
        };
        ordered(
            "put_assigned_min",
            self.deep_drawdown_below,
            self.put_assigned_min,
        )?;
        ordered(
            "put_worthless_min",
            self.put_assigned_min,
            self.put_worthless_min,
        )?;
        ordered(
            "call_roll_min",
            self.deep_drawdown_below,
            self.call_roll_min,
        )?;
        ordered(
            "call_premium_min",
            self.call_roll_min,
            self.call_premium_min,
        )?;
        ordered(
            "call_appreciation_min",
            self.call_premium_min,
            self.call_appreciation_min,
        )?;
        ordered(
            "call_strong_min",
            self.call_appreciation_min,
            self.call_strong_min,
        )?;
        check::non_negative("confidence_margin", self.confidence_margin)?;
        Ok(())
    }
}

/// A classified week: its type and how confident the classification is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification {
    pub week_type: WeekType,
    pub confidence: f64,
}

/// Classifies one week. `move_pct` is (close - previous Friday close) / previous Friday close x 100.
/// Boundaries are compared on exact values: a move within 1e-9 relative of a boundary is on it.
pub fn classify_week(
    position: Position,
    move_pct: f64,
    roll_available: bool,
    bounds: &WeekTypeBounds,
) -> CoreResult<Classification> {
    bounds.validate()?;
    let m = check::finite("move_pct", move_pct)?;
    let b = bounds;
    let (week_type, edges): (WeekType, &[f64]) = match position {
        Position::Cash => (WeekType::Idle, &[]),
        Position::ShortPut => {
            let t = if exact::at_least(m, b.put_worthless_min) {
                WeekType::PutExpiresWorthless
            } else if exact::at_least(m, b.put_assigned_min) {
                WeekType::PutAssignedWithinLimit
            } else if exact::at_least(m, b.deep_drawdown_below) {
                if roll_available {
                    WeekType::PutRollOver
                } else {
                    WeekType::PutAssignedOverLimit
                }
            } else {
                WeekType::DeepDrawdown
            };
            (
                t,
                &[
                    b.put_worthless_min,
                    b.put_assigned_min,
                    b.deep_drawdown_below,
                ],
            )
        }
        Position::LongStock | Position::ShortCall => {
            let t = if exact::at_least(m, b.call_strong_min) {
                WeekType::StrongAppreciation
            } else if exact::at_least(m, b.call_appreciation_min) {
                WeekType::Appreciation
            } else if exact::at_least(m, b.call_premium_min) {
                WeekType::PremiumOnly
            } else if exact::at_least(m, b.call_roll_min) {
                WeekType::CallRollOver
            } else if exact::at_least(m, b.deep_drawdown_below) {
                WeekType::Recovery
            } else {
                WeekType::DeepDrawdown
            };
            (
                t,
                &[
                    b.call_strong_min,
                    b.call_appreciation_min,
                    b.call_premium_min,
                    b.call_roll_min,
                    b.deep_drawdown_below,
                ],
            )
        }
    };
    let clear = edges
        .iter()
        .all(|e| exact::at_least((m - e).abs(), b.confidence_margin));
    let confidence = if clear {
        b.confidence_high
    } else {
        b.confidence_low
    };
    Ok(Classification {
        week_type,
        confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_finite_move_has_exactly_one_type(m in proptest::num::f64::ANY, roll in any::<bool>()) {
            for p in [Position::Cash, Position::ShortPut, Position::LongStock, Position::ShortCall] {
                let c = classify_week(p, m, roll, &WeekTypeBounds::default());
                prop_assert_eq!(c.is_ok(), m.is_finite());
            }
        }
    }

    fn code(p: Position, m: f64, roll: bool) -> &'static str {
        classify_week(p, m, roll, &WeekTypeBounds::default())
            .map(|c| c.week_type.code())
            .unwrap_or("ERR")
    }

    #[test]
    fn boundaries_are_exactly_those_of_the_table() {
        use Position::*;
        assert_eq!(code(Cash, -40.0, true), "W-IDL");
        assert_eq!(code(ShortPut, -1.0, true), "P-EW");
        assert_eq!(code(ShortPut, -1.000_001, true), "P-AWL");
        assert_eq!(code(ShortPut, -5.0, true), "P-AWL");
        assert_eq!(code(ShortPut, -5.000_001, true), "P-RO");
        assert_eq!(code(ShortPut, -5.000_001, false), "P-AOL");
        assert_eq!(code(ShortPut, -15.0, true), "P-RO");
        assert_eq!(code(ShortPut, -15.0, false), "P-AOL");
        assert_eq!(code(ShortPut, -15.000_001, true), "P-DD");
        for p in [LongStock, ShortCall] {
            assert_eq!(code(p, 5.0, true), "C-WAP+");
            assert_eq!(code(p, 4.999, true), "C-WAP");
            assert_eq!(code(p, 1.0, true), "C-WAP");
            assert_eq!(code(p, 0.999, true), "C-PNO");
            assert_eq!(code(p, -5.0, true), "C-PNO");
            assert_eq!(code(p, -5.001, true), "C-RO");
            assert_eq!(code(p, -10.0, true), "C-RO");
            assert_eq!(code(p, -10.001, true), "C-REC");
            assert_eq!(code(p, -15.0, false), "C-REC");
            assert_eq!(code(p, -15.001, false), "P-DD");
        }
    }

    #[test]
    fn boundaries_are_exact_within_1e9_relative() {
        use Position::*;
        assert_eq!(code(ShortPut, -(1.0 + 1e-12), true), "P-EW");
        assert_eq!(code(ShortPut, -5.0 * (1.0 + 1e-12), true), "P-AWL");
        assert_eq!(code(ShortPut, -15.0 * (1.0 + 1e-12), false), "P-AOL");
        assert_eq!(code(ShortPut, -(1.0 + 1e-8), true), "P-AWL");
        for p in [LongStock, ShortCall] {
            assert_eq!(code(p, 5.0 * (1.0 - 1e-12), true), "C-WAP+");
            assert_eq!(code(p, 1.0 * (1.0 - 1e-12), true), "C-WAP");
            assert_eq!(code(p, -5.0 * (1.0 + 1e-12), true), "C-PNO");
            assert_eq!(code(p, -10.0 * (1.0 + 1e-12), true), "C-RO");
            assert_eq!(code(p, -15.0 * (1.0 + 1e-12), true), "C-REC");
        }
        // a move computed from prices: (99 - 100) / 100 x 100 = -1 is P-EW
        assert_eq!(code(ShortPut, (99.0 - 100.0) / 100.0 * 100.0, true), "P-EW");
    }

    #[test]
    fn confidence_drops_near_a_boundary() {
        let b = WeekTypeBounds::default();
        let near = classify_week(Position::ShortPut, -1.2, true, &b).map(|c| c.confidence);
        let far = classify_week(Position::ShortPut, 3.0, true, &b).map(|c| c.confidence);
        assert_eq!(near, Ok(0.6));
        assert_eq!(far, Ok(0.9));
    }

    #[test]
    fn rejects_non_finite_move_and_unknown_position() {
        let b = WeekTypeBounds::default();
        assert!(classify_week(Position::ShortPut, f64::NAN, true, &b).is_err());
        assert_eq!(
            Position::parse("naked-call")
                .err()
                .map(|e| e.field().to_string()),
            Some("position".into())
        );
        assert_eq!(Position::parse("short-put"), Ok(Position::ShortPut));
    }
}
