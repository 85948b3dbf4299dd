//! Drawdown protection, the drawdown budget, VIX breakers and trading states (PROTOCOL section 6).

use super::exact;
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

    /// The level a drawdown reaches by the table alone: 0 none .. 4 emergency (thresholds compared on exact
    /// values, so 0.0499999999999 is light).
    pub fn raw_level(&self, drawdown: f64) -> u8 {
        self.thresholds
            .iter()
            .filter(|&&t| exact::at_least(drawdown, t))
            .count() as u8
    }

    /// Threshold at which `level` (1 light .. 4 emergency) starts; 0 for none.
    fn threshold(&self, level: u8) -> f64 {
        match level {
            1..=4 => self.thresholds[usize::from(level - 1)],
            _ => 0.0,
        }
    }

    /// Whether protection may step down from `level` (>= 1) to the level below, given the drawdown and the
    /// episode's trough: from light to none once the drawdown is at or under (1 - off_recovery) x trough; from a
    /// higher level L once it is at or under threshold(L-1) + (1 - step_down_recovery) x (trough - threshold(L-1)),
    /// i.e. half way back from the trough to the lower level's threshold with the default 0.5.
    fn may_step_down(&self, level: u8, drawdown: f64, trough: f64) -> bool {
        if level <= 1 {
            return exact::at_most(drawdown, (1.0 - self.off_recovery) * trough);
        }
        let lower = self.threshold(level - 1);
        let distance = (trough - lower).max(0.0);
        exact::at_most(drawdown, lower + (1.0 - self.step_down_recovery) * distance)
    }
}

/// Level names, none first.
pub const PROTECTION_NAMES: [&str; 5] = ["none", "light", "moderate", "aggressive", "emergency"];

/// The protection state of one account, carried from one observation to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProtectionState {
    /// 0 none, 1 light, 2 moderate, 3 aggressive, 4 emergency.
    pub level: u8,
    /// The trough T: the worst drawdown (share of peak) of the current episode, i.e. since protection last left
    /// none; 0 while protection is off.
    pub trough: f64,
    /// Day number (e.g. days since epoch) of the last observation and how many level changes happened that day.
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

/// Moves the protection state for a new drawdown observation (share of peak, >= 0) on `day` (PROTOCOL section 6).
///
/// - Up immediately: a drawdown past a higher level's threshold moves straight to that level.
/// - Down one level at a time, as far as the step-down rules allow in this observation, never under the level the
///   table gives for the drawdown: from L to L-1 at or under threshold(L-1) + (T - threshold(L-1)) / 2, from light
///   to none at or under 0.1 x T, where T is the trough of the episode (worst drawdown since protection last left
///   none). Trough 12% at moderate: light at 8.5%, none at 1.2%.
/// - A change of level (up, or down by one or more levels) is one adjustment; at most `max_adjustments_per_day`
///   a day, after which the level holds until the next day (the trough still follows the drawdown).
pub fn step_protection(
    state: ProtectionState,
    drawdown: f64,
    day: i64,
    table: &ProtectionTable,
) -> CoreResult<ProtectionState> {
    table.validate()?;
    let dd = check::non_negative("drawdown", drawdown)?;
    if !(state.trough.is_finite() && state.trough >= 0.0) {
        return Err(CoreError::invalid(
            "state.trough",
            format!("must be a finite number >= 0, got {}", state.trough),
        ));
    }
    let mut next = state;
    if next.day != day {
        next.day = day;
        next.adjustments_today = 0;
    }
    let current = next.level.min(4);
    next.level = current;
    // While protection is off the stored trough is 0 (or the drawdown of an escalation the daily limit held back).
    let trough = next.trough.max(dd);
    let raw = table.raw_level(dd);
    let mut target = current;
    if raw > current {
        target = raw;
    } else {
        while target > raw && table.may_step_down(target, dd, trough) {
            target -= 1;
        }
    }
    if target != current && next.adjustments_today < table.max_adjustments_per_day {
        next.adjustments_today += 1;
        next.level = target;
    }
    next.trough = if next.level == 0 && raw == 0 {
        0.0
    } else {
        trough
    };
    Ok(next)
}

/// Drawdown budget, CPPI-style (PROTOCOL section 6): floor = peak x (1 - cap); cushion = (equity - floor) /
/// (peak - floor), 1 at the peak and 0 at the cap; allowed exposure = min(1, k x cushion), clamped to [0, 1], as a
/// share of the account's deployment target. With k = 2 the whole target is allowed until half the cap is lost, then
/// it shrinks linearly to nothing at the cap. Results within 1e-9 of 0 or 1 are 0 or 1.
pub fn allowed_exposure(peak: f64, equity: f64, cap: f64, k: f64) -> CoreResult<f64> {
    check::positive("peak", peak)?;
    check::non_negative("equity", equity)?;
    check::open_unit("cap", cap)?;
    check::positive("k", k)?;
    // cushion = (equity - floor) / (peak - floor) = 1 - (peak - equity) / (peak x cap), written so that the peak
    // gives exactly 1 and a cap too small for peak - floor to be representable still divides by a non-zero number.
    let lost = peak - equity;
    if lost <= 0.0 {
        return Ok(1.0);
    }
    let allowed = k * (1.0 - lost / (peak * cap));
    Ok(if exact::at_least(allowed, 1.0) {
        1.0
    } else if allowed.is_nan() || exact::at_most(allowed, 0.0) {
        0.0
    } else {
        allowed.clamp(0.0, 1.0)
    })
}

/// The state of an account from its drawdown against its own cap (at or past the cap, on exact values: REDUCING).
pub fn account_state(drawdown: f64, cap: f64) -> CoreResult<TradingState> {
    check::non_negative("drawdown", drawdown)?;
    check::open_unit("cap", cap)?;
    Ok(if exact::at_least(drawdown, cap) {
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

/// Applies the VIX breakers (thresholds compared on exact values).
pub fn vix_breaker(vix: f64, b: &VixBreakers) -> CoreResult<VixReading> {
    let v = check::non_negative("vix", vix)?;
    if !(b.hedged_at < b.reducing_at && b.reducing_at < b.halted_at) {
        return Err(CoreError::invalid(
            "vix_breakers",
            "thresholds must increase: hedged < reducing < halted",
        ));
    }
    check::non_negative("hedged_multiplier", b.hedged_multiplier)?;
    let state = if exact::at_least(v, b.halted_at) {
        TradingState::Halted
    } else if exact::at_least(v, b.reducing_at) {
        TradingState::Reducing
    } else {
        TradingState::Active
    };
    let hedged = exact::at_least(v, b.hedged_at);
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
    use proptest::prelude::*;

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![proptest::num::f64::ANY, -1.0f64..2.0, Just(0.0), Just(1.0)]
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_the_level_in_range(
            level in any::<u8>(), trough in any_f64(), day in any::<i64>(), adj in any::<u32>(),
            dds in proptest::collection::vec(any_f64(), 1..20), today in any::<i64>(),
        ) {
            let t = ProtectionTable::default();
            let mut s = ProtectionState { level, trough, day, adjustments_today: adj };
            for dd in dds {
                if let Ok(n) = step_protection(s, dd, today, &t) {
                    prop_assert!(n.level <= 4);
                    prop_assert!(n.level >= t.raw_level(dd) || n.adjustments_today >= t.max_adjustments_per_day);
                    s = n;
                }
            }
        }

        #[test]
        fn budget_and_breakers_never_panic(
            peak in any_f64(), equity in any_f64(), cap in any_f64(), k in any_f64(), vix in any_f64(),
        ) {
            if let Ok(a) = allowed_exposure(peak, equity, cap, k) {
                prop_assert!((0.0..=1.0).contains(&a));
            }
            let _ = account_state(equity, cap);
            let _ = vix_breaker(vix, &VixBreakers::default());
        }

        #[test]
        fn the_budget_falls_with_the_drawdown(dd1 in 0f64..0.2, dd2 in 0f64..0.2, cap in 0.01f64..0.5) {
            let (lo, hi) = if dd1 < dd2 { (dd1, dd2) } else { (dd2, dd1) };
            let a = allowed_exposure(100.0, 100.0 * (1.0 - lo), cap, 2.0);
            let b = allowed_exposure(100.0, 100.0 * (1.0 - hi), cap, 2.0);
            prop_assert!(b.unwrap_or(f64::NAN) <= a.unwrap_or(f64::NAN));
        }
    }

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
    fn thresholds_are_exact() {
        let t = ProtectionTable::default();
        for (dd, lvl) in [
            (0.05 * (1.0 - 1e-12), 1),
            (0.10 * (1.0 - 5e-10), 2),
            (0.15 - 1e-17, 3),
            (0.20 * (1.0 - 1e-11), 4),
            (0.05 * (1.0 - 1e-8), 0),
        ] {
            let s = step_protection(ProtectionState::default(), dd, 1, &t).map(|s| s.level);
            assert_eq!(s, Ok(lvl), "dd={dd}");
        }
        assert_eq!(
            account_state(0.15 * (1.0 - 1e-12), 0.15),
            Ok(TradingState::Reducing)
        );
    }

    #[test]
    fn vix_breakers_are_exact() {
        let b = VixBreakers::default();
        let r = vix_breaker(50.0 * (1.0 - 1e-12), &b).unwrap();
        assert_eq!((r.multiplier, r.hedged), (0.5, true));
        let r = vix_breaker(65.0 * (1.0 - 1e-12), &b).unwrap();
        assert_eq!(r.state, TradingState::Reducing);
        let r = vix_breaker(80.0 * (1.0 - 1e-12), &b).unwrap();
        assert_eq!(r.state, TradingState::Halted);
        let r = vix_breaker(80.0 * (1.0 - 1e-8), &b).unwrap();
        assert_eq!(r.state, TradingState::Reducing);
    }

    #[test]
    fn step_down_follows_the_protocol_examples() {
        let t = ProtectionTable::default();
        // trough 12% at moderate -> light at 8.5% (not before), none at 1.2% (not at 6%)
        let s = step_protection(ProtectionState::default(), 0.12, 1, &t).unwrap();
        assert_eq!(s.level, 2);
        let s = step_protection(s, 0.0851, 1, &t).unwrap();
        assert_eq!(s.level, 2);
        let s = step_protection(s, 0.085, 1, &t).unwrap();
        assert_eq!(s.level, 1);
        let s = step_protection(s, 0.06, 1, &t).unwrap();
        assert_eq!(
            s.level, 1,
            "light does not switch off at 6% after a 12% trough"
        );
        let s = step_protection(s, 0.0121, 1, &t).unwrap();
        assert_eq!(s.level, 1);
        let s = step_protection(s, 0.012, 1, &t).unwrap();
        assert_eq!(s.level, 0);
        // trough 6% at light -> none at 0.6%, not at 3%
        let s = step_protection(ProtectionState::default(), 0.06, 2, &t).unwrap();
        assert_eq!(s.level, 1);
        let s = step_protection(s, 0.03, 2, &t).unwrap();
        assert_eq!(s.level, 1);
        let s = step_protection(s, 0.0061, 2, &t).unwrap();
        assert_eq!(s.level, 1);
        let s = step_protection(s, 0.006, 2, &t).unwrap();
        assert_eq!(s.level, 0);
    }

    #[test]
    fn moderate_never_jumps_straight_to_none() {
        let t = ProtectionTable::default();
        let s = step_protection(ProtectionState::default(), 0.12, 1, &t).unwrap();
        // 1.0% is under both 8.5% and 1.2%: one observation steps down as far as the rules allow, via light
        let s = step_protection(s, 0.01, 1, &t).unwrap();
        assert_eq!(s.level, 0);
        assert_eq!(s.adjustments_today, 2);
    }

    #[test]
    fn a_step_down_never_goes_under_the_table_level() {
        let t = ProtectionTable::default();
        // trough 30% at emergency: half way to aggressive (15%) is 22.5%, but 22% is still emergency by the table
        let s = step_protection(ProtectionState::default(), 0.30, 1, &t).unwrap();
        assert_eq!(s.level, 4);
        let s = step_protection(s, 0.22, 1, &t).unwrap();
        assert_eq!(s.level, 4);
        let s = step_protection(s, 0.199, 1, &t).unwrap();
        assert_eq!(s.level, 3);
    }

    #[test]
    fn cppi_budget() {
        // floor = 85, cushion = (equity - 85) / 15; allowed = min(1, 2 x cushion)
        assert_eq!(allowed_exposure(100.0, 100.0, 0.15, 2.0), Ok(1.0));
        assert_eq!(allowed_exposure(100.0, 92.5, 0.15, 2.0), Ok(1.0)); // half the cap lost
        let a = allowed_exposure(100.0, 88.75, 0.15, 2.0).unwrap(); // 3/4 of the cap
        assert!((a - 0.5).abs() < 1e-12, "{a}");
        assert_eq!(allowed_exposure(100.0, 85.0, 0.15, 2.0), Ok(0.0)); // at the cap
        assert_eq!(allowed_exposure(100.0, 70.0, 0.15, 2.0), Ok(0.0)); // past it
        let a = allowed_exposure(100.0, 95.0, 0.10, 2.0).unwrap(); // Rev-Acc: cushion 0.5 -> 1.0
        assert_eq!(a, 1.0);
        let a = allowed_exposure(100.0, 98.0, 0.07, 1.0).unwrap(); // k = 1: cushion 5/7
        assert!((a - 5.0 / 7.0).abs() < 1e-12, "{a}");
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
        // CPPI: at the peak the cushion is 1, so the whole deployment target is allowed (PROTOCOL section 6).
        assert_eq!(allowed_exposure(100.0, 100.0, 0.15, 2.0), Ok(1.0));
        let a = allowed_exposure(100.0, 90.0, 0.15, 2.0).unwrap();
        assert!((a - 2.0 * 5.0 / 15.0).abs() < 1e-12);
        assert_eq!(allowed_exposure(100.0, 80.0, 0.15, 2.0), Ok(0.0));
        assert!(allowed_exposure(100.0, f64::NAN, 0.15, 2.0).is_err());
        assert!(allowed_exposure(100.0, 90.0, 0.0, 2.0).is_err());
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
