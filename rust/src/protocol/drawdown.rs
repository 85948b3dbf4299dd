//! Drawdown protection, the drawdown budget, VIX breakers and trading states (PROTOCOL section 6).

use crate::error::{check, CoreError, CoreResult};

/// What orders an account (or the whole system) may place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TradingState {
    /// Anything the rules allow.
    Active,
    /// Only orders that reduce exposure.
    Reducing,
    /// Only cancels and closing orders.
    Halted,
}

impl TradingState {
    /// Upper-case name: ACTIVE, REDUCING, HALTED.
    pub fn name(self) -> &'static str {
        match self {
            TradingState::Active => "ACTIVE",
            TradingState::Reducing => "REDUCING",
            TradingState::Halted => "HALTED",
        }
    }

    /// Parses ACTIVE, REDUCING or HALTED.
    pub fn parse(field: &str, s: &str) -> CoreResult<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ACTIVE" => Ok(TradingState::Active),
            "REDUCING" => Ok(TradingState::Reducing),
            "HALTED" => Ok(TradingState::Halted),
            _ => Err(CoreError::invalid(
                field,
                format!("must be ACTIVE, REDUCING or HALTED, got '{s}'"),
            )),
        }
    }
}

/// Drawdown protection table: thresholds (share of peak) of light, moderate, aggressive, emergency,
/// the new-exposure multiplier of each of the five levels (none first), and the hysteresis rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProtectionTable {
    pub thresholds: [f64; 4],
    pub multipliers: [f64; 5],
    /// Step down one level once the drawdown has recovered this share of its distance to the level below.
    pub step_down_recovery: f64,
    /// Switch protection off once this share of the trough drawdown is recovered.
    pub off_recovery: f64,
    /// Level changes allowed per account per day.
    pub max_adjustments_per_day: u32,
}

impl Default for ProtectionTable {
    fn default() -> Self {
        ProtectionTable {
            thresholds: [0.05, 0.10, 0.15, 0.20],
            multipliers: [1.0, 0.8, 0.6, 0.4, 0.0],
            step_down_recovery: 0.5,
            off_recovery: 0.9,
            max_adjustments_per_day: 5,
        }
    }
}

impl ProtectionTable {
    /// Thresholds increasing in (0, 1); multipliers in [0, 1]; recovery shares in (0, 1].
    pub fn validate(&self) -> CoreResult<()> {
        check::all_finite("thresholds", &self.thresholds)?;
        if !self.thresholds.windows(2).all(|w| w[0] < w[1])
            || self.thresholds[0] <= 0.0
            || self.thresholds[3] >= 1.0
        {
            return Err(CoreError::invalid(
                "thresholds",
                "must be strictly increasing inside (0, 1)",
            ));
        }
        if let Some(i) = self
            .multipliers
            .iter()
            .position(|m| !(m.is_finite() && (0.0..=1.0).contains(m)))
        {
            return Err(CoreError::invalid(
                "multipliers",
                format!("element {i} must be in [0, 1]"),
            ));
        }
        for (field, v) in [
            ("step_down_recovery", self.step_down_recovery),
            ("off_recovery", self.off_recovery),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                return Err(CoreError::invalid(
                    field,
                    format!("must be in (0, 1], got {v}"),
                ));
            }
        }
        Ok(())
    }

    /// The level a drawdown reaches with no history: 0 none .. 4 emergency.
    pub fn raw_level(&self, drawdown: f64) -> u8 {
        self.thresholds.iter().filter(|&&t| drawdown >= t).count() as u8
    }
}

/// Tolerance for comparing drawdown shares, so 0.12 - 0.035 counts as 0.085.
const EPS: f64 = 1e-12;

/// Level names, none first.
pub const PROTECTION_NAMES: [&str; 5] = ["none", "light", "moderate", "aggressive", "emergency"];

/// The protection state of one account, carried from one observation to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProtectionState {
    pub level: u8,
    /// Deepest drawdown since protection last switched on.
    pub trough: f64,
    /// Day number (e.g. days since epoch) of the last adjustment and how many happened that day.
    pub day: i64,
    pub adjustments_today: u32,
}

impl Default for ProtectionState {
    fn default() -> Self {
        ProtectionState {
            level: 0,
            trough: 0.0,
            day: i64::MIN,
            adjustments_today: 0,
        }
    }
}

/// Moves the protection state for a new drawdown observation (share of peak, >= 0) on `day`.
/// Escalation is immediate; stepping down waits for half the recovery toward the level below;
/// protection switches off after 90% of the trough is recovered; at most N changes a day.
pub fn step_protection(
    state: ProtectionState,
    drawdown: f64,
    day: i64,
    table: &ProtectionTable,
) -> CoreResult<ProtectionState> {
    table.validate()?;
    let dd = check::non_negative("drawdown", drawdown)?;
    let mut next = state;
    if next.day != day {
        next.day = day;
        next.adjustments_today = 0;
    }
    let current = next.level.min(4);
    next.trough = if current == 0 {
        dd
    } else {
        next.trough.max(dd)
    };
    let raw = table.raw_level(dd);
    let target = if raw > current {
        raw
    } else if current > 0 && dd <= next.trough * (1.0 - table.off_recovery) + EPS {
        0
    } else if current > 0 {
        let below = if current >= 2 {
            table.thresholds[(current - 2) as usize]
        } else {
            0.0
        };
        let distance = (next.trough - below).max(0.0);
        if dd <= next.trough - table.step_down_recovery * distance + EPS {
            current - 1
        } else {
            current
        }
    } else {
        current
    };
    if target != current {
        if next.adjustments_today >= table.max_adjustments_per_day {
            return Ok(next);
        }
        next.adjustments_today += 1;
        next.level = target;
        if target == 0 {
            next.trough = 0.0;
        }
    }
    Ok(next)
}

/// Drawdown budget: floor = peak x (1 - cap); allowed exposure = min(1, k x (equity - floor) / equity), >= 0.
pub fn allowed_exposure(peak: f64, equity: f64, cap: f64, k: f64) -> CoreResult<f64> {
    check::positive("peak", peak)?;
    check::positive("equity", equity)?;
    check::open_unit("cap", cap)?;
    check::positive("k", k)?;
    let floor = peak * (1.0 - cap);
    Ok((k * (equity - floor) / equity).clamp(0.0, 1.0))
}

/// The state of an account from its drawdown against its own cap.
pub fn account_state(drawdown: f64, cap: f64) -> CoreResult<TradingState> {
    check::non_negative("drawdown", drawdown)?;
    check::open_unit("cap", cap)?;
    Ok(if drawdown >= cap {
        TradingState::Reducing
    } else {
        TradingState::Active
    })
}

/// VIX breaker table (system-wide).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VixBreakers {
    pub hedged_at: f64,
    pub hedged_multiplier: f64,
    pub reducing_at: f64,
    pub halted_at: f64,
}

impl Default for VixBreakers {
    fn default() -> Self {
        VixBreakers {
            hedged_at: 50.0,
            hedged_multiplier: 0.5,
            reducing_at: 65.0,
            halted_at: 80.0,
        }
    }
}

/// What the VIX allows: new-deployment multiplier, whether the week is hedged, and the system state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VixReading {
    pub multiplier: f64,
    pub hedged: bool,
    pub state: TradingState,
}

/// Applies the VIX breakers.
pub fn vix_breaker(vix: f64, b: &VixBreakers) -> CoreResult<VixReading> {
    let v = check::non_negative("vix", vix)?;
    if !(b.hedged_at < b.reducing_at && b.reducing_at < b.halted_at) {
        return Err(CoreError::invalid(
            "vix_breakers",
            "thresholds must increase: hedged < reducing < halted",
        ));
    }
    check::non_negative("hedged_multiplier", b.hedged_multiplier)?;
    let state = if v >= b.halted_at {
        TradingState::Halted
    } else if v >= b.reducing_at {
        TradingState::Reducing
    } else {
        TradingState::Active
    };
    let hedged = v >= b.hedged_at;
    let multiplier = match state {
        TradingState::Active if hedged => b.hedged_multiplier,
        TradingState::Active => 1.0,
        _ => 0.0,
    };
    Ok(VixReading {
        multiplier,
        hedged,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drawdown_level() {
        let t = ProtectionTable::default();
        for (dd, lvl) in [
            (0.0, 0),
            (0.0499, 0),
            (0.05, 1),
            (0.10, 2),
            (0.15, 3),
            (0.20, 4),
            (0.5, 4),
        ] {
            let s = step_protection(ProtectionState::default(), dd, 1, &t).map(|s| s.level);
            assert_eq!(s, Ok(lvl), "dd={dd}");
        }
    }

    #[test]
    fn hysteresis_steps_down_half_way_and_switches_off_at_ninety_percent() {
        let t = ProtectionTable::default();
        let s = step_protection(ProtectionState::default(), 0.12, 1, &t).unwrap();
        assert_eq!(s.level, 2);
        // trough 12%, level below (light) starts at 5%: distance 7, half = 3.5 -> step down at <= 8.5%
        let s2 = step_protection(s, 0.09, 1, &t).unwrap();
        assert_eq!(s2.level, 2);
        let s3 = step_protection(s2, 0.085, 1, &t).unwrap();
        assert_eq!(s3.level, 1);
        let s4 = step_protection(s3, 0.0119, 1, &t).unwrap();
        assert_eq!(s4.level, 0);
    }

    #[test]
    fn at_most_five_adjustments_a_day() {
        let t = ProtectionTable::default();
        let mut s = ProtectionState::default();
        let mut changes = 0;
        for i in 0..20 {
            let dd = if i % 2 == 0 { 0.06 } else { 0.0 };
            let n = step_protection(s, dd, 7, &t).unwrap();
            if n.level != s.level {
                changes += 1;
            }
            s = n;
        }
        assert_eq!(changes, 5);
        let next_day = step_protection(s, 0.0, 8, &t).unwrap();
        assert_eq!(
            next_day.adjustments_today,
            u32::from(next_day.level != s.level)
        );
    }

    #[test]
    fn budget_states_and_vix() {
        // At the peak the cushion is the whole cap: 4 x 15% = 0.6 of normal exposure (PROTOCOL section 6).
        assert!((allowed_exposure(100.0, 100.0, 0.15, 4.0).unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(allowed_exposure(100.0, 100.0, 0.30, 4.0), Ok(1.0));
        let a = allowed_exposure(100.0, 90.0, 0.15, 4.0).unwrap();
        assert!((a - 4.0 * 5.0 / 90.0).abs() < 1e-12);
        assert_eq!(allowed_exposure(100.0, 80.0, 0.15, 4.0), Ok(0.0));
        assert_eq!(account_state(0.15, 0.15), Ok(TradingState::Reducing));
        assert_eq!(account_state(0.1499, 0.15), Ok(TradingState::Active));
        let b = VixBreakers::default();
        assert_eq!(vix_breaker(49.9, &b).map(|r| r.multiplier), Ok(1.0));
        assert_eq!(vix_breaker(50.0, &b).map(|r| r.multiplier), Ok(0.5));
        assert_eq!(
            vix_breaker(66.0, &b).map(|r| r.state),
            Ok(TradingState::Reducing)
        );
        assert_eq!(
            vix_breaker(80.0, &b).map(|r| r.state),
            Ok(TradingState::Halted)
        );
    }
}
