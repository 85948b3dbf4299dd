//! The decision flow on small hand-built inputs: each branch picked, the explanation written, bad input named.

use super::flow::*;
use super::scenarios::Scenarios;
use super::strike::StrikePicker;
use super::Tables;
use crate::error::CoreResult;
use crate::protocol::drawdown::{ProtectionTable, VixBreakers};
use crate::protocol::level::{AtrRegimeTable, LevelThresholds};
use crate::protocol::strike::StrikeGrid;
use crate::protocol::week_type::WeekTypeBounds;
use crate::risk::PositionKind;
use crate::rules::{compile, RuleSet};

const RULES: &str = r#"{"version": 1, "rules": [
 {"code": "R01_DELTA_BAND", "severity": "CRITICAL", "applies_to": ["entry", "roll"]},
 {"code": "R05_CASH_SECURED", "severity": "CRITICAL", "applies_to": ["entry"]}
]}"#;

fn rule(days: &[u8], band: Option<(f64, f64)>) -> EntryRule {
    EntryRule {
        entry_days: days.to_vec(),
        band,
        m_label: 1.0,
    }
}

fn account(kind: &str) -> AccountRules {
    AccountRules {
        kind: kind.into(),
        name: format!("{kind}-acc"),
        buffer: 0.05,
        max_drawdown: 0.2,
        target_share: 0.9,
        max_symbol_weight: 0.9,
        allowed_symbols: vec!["AAA".into()],
        entry: [
            rule(&[0, 3], Some((30.0, 40.0))),
            rule(&[], None),
            rule(&[3], Some((20.0, 30.0))),
        ],
    }
}

fn decider() -> CoreResult<Decider> {
    let d = Decider {
        accounts: [account("gen"), account("rev"), account("com")],
        tables: Tables::compile(
            WeekTypeBounds::default(),
            LevelThresholds::default(),
            AtrRegimeTable::default(),
            ProtectionTable::default(),
            VixBreakers::default(),
        )?,
        strikes: StrikePicker::new(StrikeGrid::default())?,
        atr_period: 14,
        atr_fallback_pct: 1.0,
        protection_multipliers: [1.0, 0.75, 0.5, 0.25, 0.0],
        drawdown_budget_k: 2.0,
        es_budget_share: 0.1,
        es_level: 0.975,
        entry_max_dte: 7,
        max_contracts_per_order: 10,
        call_band: (20.0, 30.0),
        call_recovery_band: (20.0, 30.0),
        call_roll_down_band: (40.0, 50.0),
        covered_call_cap_share: 0.5,
        roll_max_debit_share: 0.5,
        level_atr_period: 5,
        level_atr_fallback_share: 0.02,
        rev_roll_excursion: 1.0,
        take_profit: [0.5, 0.5, 0.5],
        confidence: Confidences {
            hold_normal: 0.8,
            hold_enhanced: 0.6,
            close: 0.9,
            roll: 0.7,
        },
        protection_cuts: [0.0, 0.2, 0.4, 0.6, 1.0],
        light_vol_above: 0.35,
        light_cut: 0.2,
        emergency_close_count: 3,
        cash_settled: vec![],
    };
    d.validate()?;
    Ok(d)
}

/// 2024-03-07, a Thursday.
const THURSDAY: i64 = 738_952;

fn input(book: Vec<Holding>) -> DecisionInput {
    let n = 60;
    let close: Vec<f64> = (0..n).map(|k| 100.0 + 0.1 * k as f64).collect();
    DecisionInput {
        account_id: "p/gen-1".into(),
        account_kind: "gen".into(),
        account_state: "ACTIVE".into(),
        balance: 1_000_000.0,
        reinvest_cash: 0.0,
        peak: 1_000_000.0,
        equity: 1_000_000.0,
        portfolio_equity: 1_000_000.0,
        symbol: "AAA".into(),
        sector: "tech".into(),
        label: "green".into(),
        label_confidence: 0.8,
        notes: vec!["label=green".into()],
        today: THURSDAY,
        weekday: 3,
        entry_expiry: THURSDAY + 6,
        frozen_until: None,
        spot: *close.last().unwrap_or(&100.0),
        iv: 0.3,
        rate: 0.0,
        days: (0..n).map(|k| THURSDAY - (n - 1 - k) as i64).collect(),
        high: close.iter().map(|c| c + 0.5).collect(),
        low: close.iter().map(|c| c - 0.5).collect(),
        close,
        protection_level: 0,
        drawdown: 0.0,
        vix: Some(15.0),
        vix_multiplier: 1.0,
        vix_state: "ACTIVE".into(),
        system_state: "ACTIVE".into(),
        orders_last_minute: 0,
        earnings_in_week: None,
        group_symbols: Some(vec!["AAA".into()]),
        book,
        column: 0,
        trust: TrustGate {
            scores: [0.3; 5],
            auto_threshold: 0.7,
            confidence_threshold: 0.7,
        },
        cuts_done: vec![],
        roll_available: None,
        chain_puts: vec![],
        chain_calls: vec![],
    }
}

fn scenarios() -> CoreResult<Scenarios> {
    let returns: Vec<f64> = (0..200)
        .map(|k| ((k * 37) % 41) as f64 / 1000.0 - 0.02)
        .collect();
    Scenarios::new(
        returns,
        200,
        1,
        vec![105.9],
        vec![0.3],
        5.0,
        1.0 / 365.0,
        0.0,
    )
}

fn rules() -> CoreResult<RuleSet> {
    compile(RULES)
}

fn short_put(strike: f64, expiry: i64, premium: f64) -> Holding {
    Holding {
        id: "p1".into(),
        account_id: "p/gen-1".into(),
        symbol: "AAA".into(),
        kind: PositionKind::Put,
        quantity: -2.0,
        strike,
        expiry: Some(expiry),
        roll_expiry: Some(expiry + 7),
        premium,
        cost_basis: 0.0,
        band: Some((30.0, 40.0)),
        sector: "tech".into(),
        last_close: 105.9,
        iv: 0.3,
        column: 0,
        in_book: true,
    }
}

#[test]
fn an_entry_day_opens_a_put_sized_and_valued_in_the_core() -> CoreResult<()> {
    let d = decide(&decider()?, &input(vec![]), &Some(&scenarios()?), &rules()?)?;
    assert_eq!(d.action, "OPEN_PUT", "{:?}", d.notes);
    let order = d.order.as_ref().map(|o| (o.kind, o.side, o.contracts > 0));
    assert_eq!(order, Some(("put", "sell_to_open", true)));
    assert!(d.es_after > d.es_before, "{} {}", d.es_after, d.es_before);
    assert!(d.notes.iter().any(|n| n.starts_with("ATR(14)=")));
    assert!(d.notes.iter().any(|n| n.starts_with("sizing: budget=")));
    assert_eq!(d.compliance.len(), 2);
    assert_eq!(d.trust_kind, "entry");
    assert!(d.requires_approval, "trust 0.3 is under the 0.7 threshold");
    assert!(d.counts_order && d.rules_checked && d.records == 1);
    // More contracts than max_contracts_per_order are sliced into child orders.
    assert_eq!(
        d.orders.iter().map(|o| o.contracts).sum::<u32>(),
        d.order.as_ref().map_or(0, |o| o.contracts)
    );
    Ok(())
}

#[test]
fn a_label_without_entries_and_a_frozen_account_make_no_trade() -> CoreResult<()> {
    let (dec, scen, set) = (decider()?, scenarios()?, rules()?);
    let mut red = input(vec![]);
    red.label = "red".into();
    let d = decide(&dec, &red, &Some(&scen), &set)?;
    assert_eq!(d.action, "NO_TRADE");
    assert_eq!(
        d.notes.last().map(String::as_str),
        Some("gen-acc makes no new entries in Red")
    );
    let mut frozen = input(vec![]);
    frozen.frozen_until = Some(THURSDAY + 3);
    let d = decide(&dec, &frozen, &Some(&scen), &set)?;
    assert_eq!(
        d.notes.last().map(String::as_str),
        Some("new entries frozen until 2024-03-10 (protocol level 2)")
    );
    assert!(!d.rules_checked && d.compliance.is_empty());
    Ok(())
}

#[test]
fn a_decayed_put_is_closed_and_an_expired_one_is_classified() -> CoreResult<()> {
    let (dec, scen, set) = (decider()?, scenarios()?, rules()?);
    // Far out of the money with a rich credit: decayed past take-profit, closed at its mark.
    let d = decide(
        &dec,
        &input(vec![short_put(80.0, THURSDAY + 8, 3.0)]),
        &Some(&scen),
        &set,
    )?;
    assert_eq!(d.action, "CLOSE", "{:?}", d.notes);
    assert_eq!(d.position_id.as_deref(), Some("p1"));
    assert_eq!(d.trust_kind, "exit");
    // Expiring today out of the money: a week type, then HOLD to expiry.
    let d = decide(
        &dec,
        &input(vec![short_put(80.0, THURSDAY, 1.0)]),
        &Some(&scen),
        &set,
    )?;
    assert!(d.week_type.is_some(), "{:?}", d.notes);
    assert!(d.notes.iter().any(|n| n.starts_with("week_type=")));
    Ok(())
}

#[test]
fn a_deep_loss_closes_at_a_stop_loss_and_goes_reducing() -> CoreResult<()> {
    let d = decide(
        &decider()?,
        &input(vec![short_put(140.0, THURSDAY + 8, 1.0)]),
        &Some(&scenarios()?),
        &rules()?,
    )?;
    assert_eq!(d.action, "CLOSE", "{:?}", d.notes);
    assert_eq!(d.protocol_level, 3);
    assert!(d.reducing);
    assert_eq!(d.account_state, "REDUCING");
    assert_eq!(d.trust_kind, "emergency");
    assert!(d.requires_approval, "emergencies always need a person");
    Ok(())
}

#[test]
fn bad_input_is_named_not_a_panic() -> CoreResult<()> {
    let (dec, scen, set) = (decider()?, scenarios()?, rules()?);
    let mut nan = input(vec![]);
    nan.spot = f64::NAN;
    let err = decide(&dec, &nan, &Some(&scen), &set)
        .err()
        .map(|e| e.field().to_string());
    assert_eq!(err.as_deref(), Some("spot"));
    let mut short = input(vec![]);
    short.days.pop();
    let err = decide(&dec, &short, &Some(&scen), &set)
        .err()
        .map(|e| e.field().to_string());
    assert_eq!(err.as_deref(), Some("days"));
    let mut col = input(vec![]);
    col.column = 3;
    let err = decide(&dec, &col, &Some(&scen), &set)
        .err()
        .map(|e| e.field().to_string());
    assert_eq!(err.as_deref(), Some("column"));
    // An entry needs the scenarios; without them the error names them.
    let err = decide(&dec, &input(vec![]), &None, &set)
        .err()
        .map(|e| e.field().to_string());
    assert_eq!(err.as_deref(), Some("scenarios"));
    let mut kind = input(vec![]);
    kind.account_kind = "xyz".into();
    let err = decide(&dec, &kind, &Some(&scen), &set)
        .err()
        .map(|e| e.field().to_string());
    assert_eq!(err.as_deref(), Some("account.kind"));
    let mut bad = decider()?;
    bad.protection_cuts[2] = f64::INFINITY;
    assert_eq!(
        bad.validate()
            .err()
            .map(|e| e.field().to_string())
            .as_deref(),
        Some("drawdown_protection.cuts")
    );
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Bars given apart from the input (the Python binding's arrays, read in place): whatever their lengths and
    /// values, checked bars decide as the input holding them would, and unchecked ones are an error naming the
    /// column, never a panic.
    #[test]
    fn bars_read_apart_decide_as_the_inputs_own_or_are_named(
        n in 0usize..80,
        cut in proptest::option::of((0usize..4, 0usize..80)),
        broken in proptest::option::of((0usize..3, 0usize..80, 0u8..3)),
    ) {
        let (dec, scen, set) = (decider().map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?,
            scenarios().map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?,
            rules().map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?);
        let mut own = input(vec![]);
        let close: Vec<f64> = (0..n).map(|k| 100.0 + 0.1 * k as f64).collect();
        own.days = (0..n).map(|k| THURSDAY - (n - k) as i64 + 1).collect();
        own.high = close.iter().map(|c| c + 0.5).collect();
        own.low = close.iter().map(|c| c - 0.5).collect();
        own.close = close;
        if let Some((column, at)) = cut {
            match column {
                0 => { own.days.truncate(at); }
                1 => { own.high.truncate(at); }
                2 => { own.low.truncate(at); }
                _ => { own.close.truncate(at); }
            }
        }
        if let Some((column, at, how)) = broken {
            let value = [f64::NAN, f64::INFINITY, -1e300][how as usize];
            let target = match column { 0 => &mut own.high, 1 => &mut own.low, _ => &mut own.close };
            if let Some(x) = target.get_mut(at) { *x = value; }
        }
        let source = Some(&scen);
        let apart = own.bars().validate().and_then(|()| {
            let mut empty = own.clone();
            empty.days = Vec::new();
            empty.high = Vec::new();
            empty.low = Vec::new();
            empty.close = Vec::new();
            decide_over(&dec, &empty, own.bars(), &empty.book, &source, &set)
        });
        let whole = decide(&dec, &own, &source, &set);
        match (apart, whole) {
            (Ok(a), Ok(w)) => proptest::prop_assert_eq!(a, w),
            (Err(a), Err(w)) => {
                proptest::prop_assert!(["days", "high", "low", "close"].contains(&a.field()) || a.field() == w.field());
            }
            (a, w) => proptest::prop_assert!(false, "apart {:?} whole {:?}", a.map(|d| d.action), w.map(|d| d.action)),
        }
    }
}

proptest::proptest! {
    /// The bars' finiteness check agrees with `check::all_finite` on any column (lengths across the 8-wide chunks,
    /// NaN, infinities, subnormals, huge values anywhere).
    #[test]
    fn the_bars_check_names_what_all_finite_names(
        values in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::num::f64::ANY,
                proptest::strategy::Just(f64::NAN),
                proptest::strategy::Just(f64::INFINITY),
                proptest::strategy::Just(f64::NEG_INFINITY),
                proptest::strategy::Just(f64::MIN_POSITIVE / 4.0),
                -1e300f64..1e300,
            ],
            0..40,
        ),
    ) {
        let days = vec![0i64; values.len()];
        let bars = Bars { days: &days, high: &values, low: &values, close: &values };
        let ours = bars.validate().err().map(|e| (e.field().to_string(), e.reason().to_string()));
        let theirs = crate::error::check::all_finite("high", &values)
            .err()
            .map(|e| (e.field().to_string(), e.reason().to_string()));
        proptest::prop_assert_eq!(ours, theirs);
    }
}
