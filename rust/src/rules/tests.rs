use super::*;

const ALL_RULES: &str = r#"{"version": 1, "rules": [
 {"code": "R01_DELTA_BAND", "severity": "CRITICAL", "applies_to": ["entry", "roll"]},
 {"code": "R02_DTE_WINDOW", "severity": "CRITICAL", "applies_to": ["entry", "roll"],
  "params": {"entry_min_dte": 1, "entry_max_dte": 7, "roll_max_dte": 14}},
 {"code": "R03_ENTRY_DAY", "severity": "HIGH", "applies_to": ["entry"]},
 {"code": "R04_SYMBOL_ALLOWED", "severity": "CRITICAL", "applies_to": ["entry", "roll"], "params": {"restricted": ["GME"]}},
 {"code": "R05_CASH_SECURED", "severity": "CRITICAL", "applies_to": ["entry", "roll"]},
 {"code": "R06_POSITION_SIZE", "severity": "HIGH", "applies_to": ["entry"]},
 {"code": "R07_SYMBOL_CONCENTRATION", "severity": "HIGH", "applies_to": ["entry", "roll"], "params": {"max_share": 0.25}},
 {"code": "R08_SECTOR_CONCENTRATION", "severity": "MEDIUM", "applies_to": ["entry", "roll"], "params": {"max_share": 0.40}},
 {"code": "R09_ES_BUDGET", "severity": "CRITICAL", "applies_to": ["entry", "roll"], "params": {"max_share": 0.04}},
 {"code": "R10_TRADING_STATE", "severity": "CRITICAL", "applies_to": ["entry", "roll", "close", "reduce", "assignment"]},
 {"code": "R11_VIX_BREAKER", "severity": "CRITICAL", "applies_to": ["entry", "roll", "close", "reduce"]},
 {"code": "R12_LIQUIDITY", "severity": "HIGH", "applies_to": ["entry", "roll"],
  "params": {"min_open_interest": 500, "min_volume": 100, "max_spread_share": 0.05}},
 {"code": "R13_PRICE_COLLAR", "severity": "CRITICAL", "applies_to": ["entry", "roll", "close"], "params": {"max_deviation_share": 0.05}},
 {"code": "R14_MAX_ORDER_SIZE", "severity": "HIGH", "applies_to": ["entry", "roll", "close"], "params": {"max_contracts": 50}},
 {"code": "R15_ORDER_RATE", "severity": "HIGH", "applies_to": ["entry", "roll", "close"], "params": {"max_per_minute": 30}},
 {"code": "R16_DUPLICATE", "severity": "CRITICAL", "applies_to": ["entry", "roll", "close", "reduce", "withdrawal"]},
 {"code": "R17_EARNINGS_BLACKOUT", "severity": "MEDIUM", "applies_to": ["entry"]},
 {"code": "R18_NO_WITHDRAWAL", "severity": "CRITICAL", "applies_to": ["withdrawal"]}
]}"#;

fn good_entry() -> OrderContext {
    OrderContext {
        kind: "entry".into(),
        account_id: "gen-1".into(),
        account_type: "gen".into(),
        label: "green".into(),
        symbol: "NVDA".into(),
        sector: "tech".into(),
        delta: Some(45.0),
        band_low: Some(40.0),
        band_high: Some(50.0),
        dte: Some(1.0),
        weekday: Some(3),
        entry_days: vec![3],
        allowed_symbols: vec!["TSLA".into(), "NVDA".into()],
        strike: Some(30.0),
        contracts: Some(1.0),
        multiplier: Some(100.0),
        free_cash: Some(38_000.0),
        notional: Some(3_000.0),
        size_cap: Some(5_700.0),
        account_equity: Some(38_000.0),
        symbol_exposure_after: Some(3_000.0),
        portfolio_equity: Some(100_000.0),
        sector_exposure_after: Some(3_000.0),
        es_after: Some(1_000.0),
        account_state: "ACTIVE".into(),
        system_state: "ACTIVE".into(),
        vix_state: "ACTIVE".into(),
        vix: Some(18.0),
        reduces_exposure: false,
        chain: None,
        limit_price: Some(1.0),
        mid: Some(1.0),
        orders_last_minute: Some(0.0),
        idempotency_seen: false,
        earnings_in_week: Some(false),
        withdrawal_amount: None,
    }
}

fn result_of(ctx: &OrderContext, code: &str) -> RuleResult {
    let set = compile(ALL_RULES).unwrap();
    evaluate(&set, ctx)
        .unwrap()
        .into_iter()
        .find(|r| r.code == code)
        .unwrap()
}

#[test]
fn all_rules_compile_and_a_good_entry_is_approved() {
    let set = compile(ALL_RULES).unwrap();
    assert_eq!(set.rules.len(), 18);
    let results = evaluate(&set, &good_entry()).unwrap();
    assert!(results.iter().all(|r| r.passed), "{results:?}");
    assert_eq!(outcome(&results), Outcome::Approved);
}

#[test]
fn every_rule_fails_when_it_should() {
    type Case = (&'static str, fn(&mut OrderContext));
    let cases: Vec<Case> = vec![
        ("R01_DELTA_BAND", |c| c.delta = Some(52.0)),
        ("R02_DTE_WINDOW", |c| c.dte = Some(8.0)),
        ("R03_ENTRY_DAY", |c| c.weekday = Some(0)),
        ("R04_SYMBOL_ALLOWED", |c| c.symbol = "GME".into()),
        ("R05_CASH_SECURED", |c| c.free_cash = Some(2_999.0)),
        ("R06_POSITION_SIZE", |c| c.notional = Some(6_000.0)),
        ("R07_SYMBOL_CONCENTRATION", |c| {
            c.symbol_exposure_after = Some(9_501.0)
        }),
        ("R08_SECTOR_CONCENTRATION", |c| {
            c.sector_exposure_after = Some(40_001.0)
        }),
        ("R09_ES_BUDGET", |c| c.es_after = Some(4_001.0)),
        ("R10_TRADING_STATE", |c| c.account_state = "REDUCING".into()),
        ("R11_VIX_BREAKER", |c| c.vix_state = "REDUCING".into()),
        ("R12_LIQUIDITY", |c| {
            c.chain = Some(Chain {
                open_interest: 499.0,
                volume: 100.0,
                bid: 1.0,
                ask: 1.02,
            })
        }),
        ("R13_PRICE_COLLAR", |c| c.limit_price = Some(1.06)),
        ("R14_MAX_ORDER_SIZE", |c| c.contracts = Some(51.0)),
        ("R15_ORDER_RATE", |c| c.orders_last_minute = Some(30.0)),
        ("R16_DUPLICATE", |c| c.idempotency_seen = true),
        ("R17_EARNINGS_BLACKOUT", |c| c.earnings_in_week = Some(true)),
    ];
    for (code, mutate) in cases {
        let mut ctx = good_entry();
        mutate(&mut ctx);
        let r = result_of(&ctx, code);
        assert!(!r.passed, "{code} should fail: {}", r.message);
        assert!(r.message.starts_with(&format!("{code}: ")), "{}", r.message);
    }
    let mut w = good_entry();
    w.kind = "withdrawal".into();
    w.account_type = "com".into();
    w.withdrawal_amount = Some(1_000.0);
    let r = result_of(&w, "R18_NO_WITHDRAWAL");
    assert!(!r.passed);
    w.account_type = "gen".into();
    assert!(result_of(&w, "R18_NO_WITHDRAWAL").passed);
}

#[test]
fn message_format_matches_protocol_example() {
    let mut ctx = good_entry();
    ctx.delta = Some(52.0);
    assert_eq!(
        result_of(&ctx, "R01_DELTA_BAND").message,
        "R01_DELTA_BAND: delta=52 band=40-50 account=gen-1"
    );
}

#[test]
fn outcomes_follow_severity() {
    let set = compile(ALL_RULES).unwrap();
    let mut ctx = good_entry();
    ctx.earnings_in_week = Some(true);
    assert_eq!(
        outcome(&evaluate(&set, &ctx).unwrap()),
        Outcome::ApprovedWithWarnings
    );
    ctx.weekday = Some(0);
    assert_eq!(
        outcome(&evaluate(&set, &ctx).unwrap()),
        Outcome::RequiresApproval
    );
    ctx.delta = Some(60.0);
    assert_eq!(outcome(&evaluate(&set, &ctx).unwrap()), Outcome::Rejected);
}

#[test]
fn reducing_and_halted_states() {
    let mut ctx = good_entry();
    ctx.kind = "close".into();
    ctx.reduces_exposure = true;
    ctx.system_state = "HALTED".into();
    assert!(result_of(&ctx, "R10_TRADING_STATE").passed);
    ctx.kind = "reduce".into();
    assert!(!result_of(&ctx, "R10_TRADING_STATE").passed);
    ctx.system_state = "REDUCING".into();
    assert!(result_of(&ctx, "R10_TRADING_STATE").passed);
}

#[test]
fn missing_inputs_fail_and_name_the_field() {
    let mut ctx = good_entry();
    ctx.delta = None;
    let r = result_of(&ctx, "R01_DELTA_BAND");
    assert!(!r.passed);
    assert_eq!(r.message, "R01_DELTA_BAND: missing=delta");
}

#[test]
fn bad_rule_files_name_rule_and_field() {
    let cases = [
        (
            r#"{"version": 1, "rules": [{"code": "R14_MAX_ORDER_SIZE", "severity": "HIGH", "applies_to": ["entry"], "params": {}}]}"#,
            "rules[0] R14_MAX_ORDER_SIZE.params.max_contracts",
        ),
        (
            r#"{"version": 1, "rules": [{"code": "R14_MAX_ORDER_SIZE", "severity": "HIGH", "applies_to": ["entry"], "params": {"max_contracts": "fifty"}}]}"#,
            "rules[0] R14_MAX_ORDER_SIZE.params.max_contracts",
        ),
        (
            r#"{"version": 1, "rules": [{"code": "R14_MAX_ORDER_SIZE", "severity": "HIGH", "applies_to": ["entry"], "params": {"max_contracts": 5, "colour": 1}}]}"#,
            "rules[0] R14_MAX_ORDER_SIZE.params.colour",
        ),
        (
            r#"{"version": 1, "rules": [{"code": "R01_DELTA_BAND", "severity": "HIGH", "applies_to": ["entry"], "weight": 3}]}"#,
            "rules[0] R01_DELTA_BAND.weight",
        ),
        (
            r#"{"version": 1, "rules": [{"code": "R99_MOON", "severity": "HIGH", "applies_to": ["entry"]}]}"#,
            "rules[0] R99_MOON.code",
        ),
        (
            r#"{"version": 1, "rules": [{"code": "R01_DELTA_BAND", "severity": "LOW", "applies_to": ["entry"]}]}"#,
            "rules[0] R01_DELTA_BAND.severity",
        ),
        (
            r#"{"version": 1, "rules": [{"code": "R01_DELTA_BAND", "severity": "HIGH", "applies_to": ["brunch"]}]}"#,
            "rules[0] R01_DELTA_BAND.applies_to",
        ),
        (r#"{"rules": []}"#, "version"),
        (r#"[1, 2]"#, "rules"),
    ];
    for (json, field) in cases {
        let e = compile(json).err().unwrap();
        assert_eq!(e.field(), field, "{e}");
    }
}

#[test]
fn context_rejects_unknown_fields_and_non_finite_numbers() {
    assert!(OrderContext::from_json(r#"{"kind": "entry", "colour": "red"}"#).is_err());
    let mut ctx = good_entry();
    ctx.strike = Some(f64::NAN);
    let set = compile(ALL_RULES).unwrap();
    assert_eq!(
        evaluate(&set, &ctx).err().map(|e| e.field().to_string()),
        Some("strike".into())
    );
    ctx = good_entry();
    ctx.kind = "moonshot".into();
    assert!(evaluate(&set, &ctx).is_err());
}
