use super::*;

const ALL_RULES: &str = r#"{"version": 1, "rules": [
 {"code": "R01_DELTA_BAND", "severity": "CRITICAL", "applies_to": ["entry", "roll"]},
 {"code": "R02_DTE_WINDOW", "severity": "CRITICAL", "applies_to": ["entry", "roll"],
  "params": {"entry_min_dte": 1, "entry_max_dte": 7, "roll_max_dte": 14}},
 {"code": "R03_ENTRY_DAY", "severity": "HIGH", "applies_to": ["entry"]},
 {"code": "R04_SYMBOL_ALLOWED", "severity": "CRITICAL", "applies_to": ["entry", "roll"], "params": {"restricted": ["GME"]}},
 {"code": "R05_CASH_SECURED", "severity": "CRITICAL", "applies_to": ["entry", "roll"]},
 {"code": "R06_POSITION_SIZE", "severity": "HIGH", "applies_to": ["entry"]},
 {"code": "R07_SYMBOL_CONCENTRATION", "severity": "HIGH", "applies_to": ["entry", "roll"],
  "params": {"max_share": 0.25, "max_symbol_weight_ceiling": 0.95}},
 {"code": "R08_SECTOR_CONCENTRATION", "severity": "MEDIUM", "applies_to": ["entry", "roll"], "params": {"max_share": 0.40}},
 {"code": "R09_ES_BUDGET", "severity": "CRITICAL", "applies_to": ["entry", "roll"], "params": {"max_share": 0.04}},
 {"code": "R10_TRADING_STATE", "severity": "CRITICAL", "applies_to": ["entry", "roll", "close", "reduce", "assignment"]},
 {"code": "R11_VIX_BREAKER", "severity": "CRITICAL", "applies_to": ["entry", "roll", "close", "reduce"],
  "params": {"hedged_at": 50, "reducing_at": 65, "halted_at": 80}},
 {"code": "R12_LIQUIDITY", "severity": "HIGH", "applies_to": ["entry", "roll"],
  "params": {"min_open_interest": 500, "min_volume": 100, "max_spread_share": 0.05}},
 {"code": "R13_PRICE_COLLAR", "severity": "CRITICAL", "applies_to": ["entry", "roll", "close", "reduce"],
  "params": {"max_deviation_share": 0.05, "min_tick": 0.05}},
 {"code": "R14_MAX_ORDER_SIZE", "severity": "HIGH", "applies_to": ["entry", "roll", "close"], "params": {"max_contracts": 50}},
 {"code": "R15_ORDER_RATE", "severity": "HIGH", "applies_to": ["entry", "roll", "close"], "params": {"max_per_minute": 30}},
 {"code": "R16_DUPLICATE", "severity": "CRITICAL", "applies_to": ["entry", "roll", "close", "reduce", "withdrawal"]},
 {"code": "R17_EARNINGS_BLACKOUT", "severity": "MEDIUM", "applies_to": ["entry", "roll"]},
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
        option_kind: None,
        group_symbols: vec![],
        group_exposure_after: None,
        max_symbol_weight: None,
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
        ("R11_VIX_BREAKER", |c| c.vix = Some(65.0)),
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
    // v2: a reduce is a buy-back, a closing order, so HALTED lets it through
    ctx.kind = "reduce".into();
    assert!(result_of(&ctx, "R10_TRADING_STATE").passed);
    ctx.system_state = "REDUCING".into();
    assert!(result_of(&ctx, "R10_TRADING_STATE").passed);
    ctx.kind = "entry".into();
    ctx.reduces_exposure = false;
    assert!(!result_of(&ctx, "R10_TRADING_STATE").passed);
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

// --- v2 (PROTOCOL sections 6 and 7) ----------------------------------------------------------------------------

/// The good entry as JSON with `overrides` merged over it, parsed the way the Python engine's context is.
fn ctx_with(overrides: serde_json::Value) -> OrderContext {
    let mut base = serde_json::json!({
        "kind": "entry", "account_id": "gen-1", "account_type": "gen", "label": "green", "symbol": "NVDA",
        "sector": "tech", "delta": 45.0, "band_low": 40.0, "band_high": 50.0, "dte": 1.0, "weekday": 3,
        "entry_days": [3], "allowed_symbols": ["TSLA", "NVDA"], "strike": 30.0, "contracts": 1.0,
        "multiplier": 100.0, "free_cash": 38000.0, "notional": 3000.0, "size_cap": 5700.0,
        "account_equity": 38000.0, "symbol_exposure_after": 3000.0, "portfolio_equity": 100000.0,
        "sector_exposure_after": 3000.0, "es_after": 1000.0, "account_state": "ACTIVE",
        "system_state": "ACTIVE", "vix_state": "ACTIVE", "vix": 18.0, "reduces_exposure": false,
        "limit_price": 1.0, "mid": 1.0, "orders_last_minute": 0.0, "idempotency_seen": false,
        "earnings_in_week": false
    });
    if let (Some(b), Some(o)) = (base.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
    OrderContext::from_json(&base.to_string()).unwrap()
}

fn check(overrides: serde_json::Value, code: &str) -> RuleResult {
    result_of(&ctx_with(overrides), code)
}

fn assert_clean(r: &RuleResult) {
    let lower = r.message.to_lowercase();
    assert!(
        !lower.contains("inf") && !lower.contains("nan"),
        "non-finite number in {}",
        r.message
    );
    assert!(
        r.message.starts_with(&format!("{}: ", r.code)),
        "{}",
        r.message
    );
}

#[test]
fn r10_unknown_states_fail_and_name_the_state() {
    use serde_json::json;
    for (field, value) in [("account_state", "FROZEN"), ("system_state", "active")] {
        let r = check(json!({ field: value }), "R10_TRADING_STATE");
        assert!(!r.passed, "{}", r.message);
        assert!(
            r.message.contains(&format!("{field}={value}")),
            "{}",
            r.message
        );
        assert!(r.message.contains("unknown="), "{}", r.message);
        assert_clean(&r);
        // an unknown state is refused for a buy-back too: the input is malformed
        let r = check(
            json!({ field: value, "kind": "close", "reduces_exposure": true }),
            "R10_TRADING_STATE",
        );
        assert!(!r.passed, "{}", r.message);
    }
}

#[test]
fn r10_halted_lets_buy_backs_through_and_nothing_else() {
    use serde_json::json;
    for state in ["account_state", "system_state"] {
        for (kind, reduces, passes) in [
            ("close", true, true),
            ("reduce", true, true),
            ("reduce", false, true),
            ("close", false, true),
            ("assignment", true, true),
            ("entry", false, false),
            ("roll", true, false),
            ("roll", false, false),
            ("assignment", false, false),
        ] {
            let r = check(
                json!({ state: "HALTED", "kind": kind, "reduces_exposure": reduces }),
                "R10_TRADING_STATE",
            );
            assert_eq!(
                r.passed, passes,
                "HALTED {kind} reduces={reduces}: {}",
                r.message
            );
        }
    }
}

#[test]
fn r10_reducing_lets_only_exposure_reducing_orders_through() {
    use serde_json::json;
    for (kind, reduces, passes) in [
        ("close", true, true),
        ("reduce", true, true),
        ("roll", true, true),
        ("roll", false, false),
        ("entry", false, false),
        ("assignment", false, false),
    ] {
        let r = check(
            json!({ "account_state": "REDUCING", "kind": kind, "reduces_exposure": reduces }),
            "R10_TRADING_STATE",
        );
        assert_eq!(
            r.passed, passes,
            "REDUCING {kind} reduces={reduces}: {}",
            r.message
        );
    }
}

#[test]
fn r10_absent_state_fails_opening_orders_but_not_buy_backs() {
    use serde_json::json;
    let r = check(json!({ "account_state": "" }), "R10_TRADING_STATE");
    assert!(!r.passed, "{}", r.message);
    assert!(r.message.contains("missing=account_state"), "{}", r.message);
    let r = check(
        json!({ "account_state": "", "system_state": "", "kind": "close", "reduces_exposure": true }),
        "R10_TRADING_STATE",
    );
    assert!(r.passed, "{}", r.message);
}

#[test]
fn r11_reads_the_vix_number_not_the_callers_state() {
    use serde_json::json;
    let cases = [
        (18.0, "entry", false, true, "ACTIVE"),
        (49.99, "entry", false, true, "ACTIVE"),
        (50.0, "entry", false, true, "HEDGED"),
        (64.0, "roll", false, true, "HEDGED"),
        (65.0, "entry", false, false, "REDUCING"),
        (65.0, "roll", false, false, "REDUCING"),
        (70.0, "roll", true, true, "REDUCING"),
        (70.0, "close", true, true, "REDUCING"),
        (80.0, "roll", true, false, "HALTED"),
        (80.0, "entry", false, false, "HALTED"),
        (95.0, "close", true, true, "HALTED"),
        (95.0, "reduce", true, true, "HALTED"),
    ];
    for (vix, kind, reduces, passes, state) in cases {
        // the caller's vix_state says ACTIVE whatever the number: the rule must not trust it
        let r = check(
            json!({ "vix": vix, "vix_state": "ACTIVE", "kind": kind, "reduces_exposure": reduces }),
            "R11_VIX_BREAKER",
        );
        assert_eq!(r.passed, passes, "vix={vix} {kind}: {}", r.message);
        assert!(
            r.message.contains(&format!("state={state}")),
            "{}",
            r.message
        );
        assert_clean(&r);
    }
    // a boundary a rounding error away counts as on it (PROTOCOL section 5)
    let r = check(json!({ "vix": 64.99999999999999 }), "R11_VIX_BREAKER");
    assert!(!r.passed, "{}", r.message);
    // the hedged week passes with a note
    let r = check(json!({ "vix": 55.0 }), "R11_VIX_BREAKER");
    assert!(
        r.passed && r.message.contains("note=hedged"),
        "{}",
        r.message
    );
    // a negative VIX is not a reading
    let r = check(json!({ "vix": -1.0 }), "R11_VIX_BREAKER");
    assert!(!r.passed, "{}", r.message);
}

#[test]
fn r11_without_a_vix_falls_back_to_a_known_state_only() {
    use serde_json::json;
    let r = check(
        json!({ "vix": null, "vix_state": "ACTIVE" }),
        "R11_VIX_BREAKER",
    );
    assert!(r.passed, "{}", r.message);
    let r = check(
        json!({ "vix": null, "vix_state": "REDUCING" }),
        "R11_VIX_BREAKER",
    );
    assert!(!r.passed, "{}", r.message);
    let r = check(
        json!({ "vix": null, "vix_state": "HALTED", "kind": "reduce", "reduces_exposure": true }),
        "R11_VIX_BREAKER",
    );
    assert!(r.passed, "{}", r.message);
    let r = check(
        json!({ "vix": null, "vix_state": "CALM" }),
        "R11_VIX_BREAKER",
    );
    assert!(!r.passed, "{}", r.message);
    assert!(
        r.message.contains("vix_state=CALM") && r.message.contains("unknown="),
        "{}",
        r.message
    );
    let r = check(json!({ "vix": null, "vix_state": "" }), "R11_VIX_BREAKER");
    assert!(
        !r.passed && r.message.contains("missing=vix"),
        "{}",
        r.message
    );
}

#[test]
fn r13_buy_back_of_a_worthless_option_passes() {
    use serde_json::json;
    for kind in ["close", "reduce"] {
        for limit in [0.0, 0.01, 0.05] {
            let r = check(
                json!({ "kind": kind, "reduces_exposure": true, "limit_price": limit, "mid": 0.0 }),
                "R13_PRICE_COLLAR",
            );
            assert!(r.passed, "{kind} limit={limit}: {}", r.message);
            assert_clean(&r);
        }
    }
    // over the minimum tick the collar applies as usual, and a zero mid never prints inf or NaN
    let r = check(
        json!({ "kind": "close", "reduces_exposure": true, "limit_price": 0.10, "mid": 0.0 }),
        "R13_PRICE_COLLAR",
    );
    assert!(!r.passed, "{}", r.message);
    assert_clean(&r);
    // selling at a zero mid is refused, cleanly
    let r = check(
        json!({ "limit_price": 0.0, "mid": 0.0 }),
        "R13_PRICE_COLLAR",
    );
    assert!(!r.passed, "{}", r.message);
    assert_clean(&r);
    let r = check(
        json!({ "limit_price": 0.05, "mid": 0.0 }),
        "R13_PRICE_COLLAR",
    );
    assert!(!r.passed, "{}", r.message);
    assert_clean(&r);
    // a negative limit is never a buy-back at the minimum tick
    let r = check(
        json!({ "kind": "close", "reduces_exposure": true, "limit_price": -0.05, "mid": 0.0 }),
        "R13_PRICE_COLLAR",
    );
    assert!(!r.passed, "{}", r.message);
}

#[test]
fn r17_blackout_is_for_puts_and_put_rolls_only() {
    use serde_json::json;
    let cases = [
        ("entry", "put", false, false),
        ("roll", "put", false, false),
        ("roll", "put", true, false),
        ("entry", "call", false, true),
        ("roll", "call", false, true),
        ("entry", "stock", false, true),
    ];
    for (kind, option_kind, reduces, passes) in cases {
        let r = check(
            json!({ "kind": kind, "option_kind": option_kind, "reduces_exposure": reduces, "earnings_in_week": true }),
            "R17_EARNINGS_BLACKOUT",
        );
        assert_eq!(r.passed, passes, "{kind} {option_kind}: {}", r.message);
        assert_clean(&r);
    }
    // no calendar, no check
    let r = check(
        json!({ "option_kind": "put", "earnings_in_week": null }),
        "R17_EARNINGS_BLACKOUT",
    );
    assert!(r.passed, "{}", r.message);
    // without option_kind an entry is checked as before
    let r = check(json!({ "earnings_in_week": true }), "R17_EARNINGS_BLACKOUT");
    assert!(!r.passed, "{}", r.message);
    // an option kind that is none of put, call, stock is refused by the context
    let set = compile(ALL_RULES).unwrap();
    let ctx = ctx_with(json!({ "option_kind": "future" }));
    assert_eq!(
        evaluate(&set, &ctx).err().map(|e| e.field().to_string()),
        Some("option_kind".into())
    );
}

#[test]
fn r07_tail_dependent_group_counts_as_one_symbol() {
    use serde_json::json;
    // NVDA alone is 10% of equity, the NVDA+AMD group 30% > 25%
    let r = check(
        json!({ "symbol_exposure_after": 3800.0, "group_symbols": ["NVDA", "AMD"], "group_exposure_after": 11400.0 }),
        "R07_SYMBOL_CONCENTRATION",
    );
    assert!(!r.passed, "{}", r.message);
    assert!(
        r.message.contains("group=AMD+NVDA") || r.message.contains("group=NVDA+AMD"),
        "{}",
        r.message
    );
    assert_clean(&r);
    let r = check(
        json!({ "symbol_exposure_after": 3800.0, "group_symbols": ["NVDA", "AMD"], "group_exposure_after": 9500.0 }),
        "R07_SYMBOL_CONCENTRATION",
    );
    assert!(r.passed, "{}", r.message);
    // a group without its exposure is a missing input
    let r = check(
        json!({ "group_symbols": ["NVDA", "AMD"] }),
        "R07_SYMBOL_CONCENTRATION",
    );
    assert!(
        !r.passed && r.message.contains("missing=group_exposure_after"),
        "{}",
        r.message
    );
    // no group given: the symbol alone, as before
    let r = check(
        json!({ "symbol_exposure_after": 9500.0 }),
        "R07_SYMBOL_CONCENTRATION",
    );
    assert!(r.passed, "{}", r.message);
}

#[test]
fn r07_single_symbol_account_may_raise_its_weight() {
    use serde_json::json;
    let r = check(
        json!({ "symbol_exposure_after": 30000.0, "max_symbol_weight": 0.9 }),
        "R07_SYMBOL_CONCENTRATION",
    );
    assert!(r.passed && r.message.contains("max=0.9"), "{}", r.message);
    let r = check(
        json!({ "symbol_exposure_after": 36100.0, "max_symbol_weight": 0.95 }),
        "R07_SYMBOL_CONCENTRATION",
    );
    assert!(r.passed, "{}", r.message);
    let r = check(
        json!({ "symbol_exposure_after": 36200.0, "max_symbol_weight": 0.95 }),
        "R07_SYMBOL_CONCENTRATION",
    );
    assert!(!r.passed, "{}", r.message);
    for bad in [0.0, -0.1, 0.96, 1.0] {
        let r = check(
            json!({ "symbol_exposure_after": 10.0, "max_symbol_weight": bad }),
            "R07_SYMBOL_CONCENTRATION",
        );
        assert!(!r.passed, "{bad}: {}", r.message);
        assert!(r.message.contains("max_symbol_weight"), "{}", r.message);
    }
}

#[test]
fn r07_and_r08_with_no_equity_fail_without_infinities() {
    use serde_json::json;
    let r = check(json!({ "account_equity": 0.0 }), "R07_SYMBOL_CONCENTRATION");
    assert!(!r.passed, "{}", r.message);
    assert_clean(&r);
    let r = check(
        json!({ "portfolio_equity": 0.0 }),
        "R08_SECTOR_CONCENTRATION",
    );
    assert!(!r.passed, "{}", r.message);
    assert_clean(&r);
    let r = check(
        json!({ "chain": {"open_interest": 900.0, "volume": 900.0, "bid": 0.0, "ask": 0.0} }),
        "R12_LIQUIDITY",
    );
    assert!(!r.passed, "{}", r.message);
    assert_clean(&r);
}

#[test]
fn r14_checks_each_child_order() {
    use serde_json::json;
    let r = check(json!({ "contracts": 50.0 }), "R14_MAX_ORDER_SIZE");
    assert!(r.passed, "{}", r.message);
    let r = check(json!({ "contracts": 51.0 }), "R14_MAX_ORDER_SIZE");
    assert_eq!(r.message, "R14_MAX_ORDER_SIZE: contracts=51 max=50");
    assert!(!r.passed);
}

#[test]
fn new_rule_parameters_are_validated() {
    let base: serde_json::Value = serde_json::from_str(ALL_RULES).unwrap();
    let with = |code: &str, params: serde_json::Value| {
        let mut doc = base.clone();
        for r in doc["rules"].as_array_mut().unwrap() {
            if r["code"] == code {
                r["params"] = params.clone();
            }
        }
        compile(&doc.to_string())
    };
    use serde_json::json;
    let e = with(
        "R11_VIX_BREAKER",
        json!({"hedged_at": 50, "reducing_at": 90, "halted_at": 80}),
    )
    .err()
    .unwrap();
    assert!(e.field().contains("R11_VIX_BREAKER.params"), "{e}");
    let e = with(
        "R11_VIX_BREAKER",
        json!({"hedged_at": 50, "reducing_at": 65}),
    )
    .err()
    .unwrap();
    assert_eq!(e.field(), "rules[10] R11_VIX_BREAKER.params.halted_at");
    let e = with("R13_PRICE_COLLAR", json!({"max_deviation_share": 0.05}))
        .err()
        .unwrap();
    assert_eq!(e.field(), "rules[12] R13_PRICE_COLLAR.params.min_tick");
    let e = with(
        "R07_SYMBOL_CONCENTRATION",
        json!({"max_share": 0.5, "max_symbol_weight_ceiling": 0.4}),
    )
    .err()
    .unwrap();
    assert!(e.field().contains("R07_SYMBOL_CONCENTRATION.params"), "{e}");
}

#[test]
fn numeric_parameters_can_be_read_back() {
    let set = compile(ALL_RULES).unwrap();
    let r11 = set
        .rules
        .iter()
        .find(|r| r.code == "R11_VIX_BREAKER")
        .unwrap();
    assert_eq!(r11.number_param("halted_at"), Some(80.0));
    assert_eq!(r11.number_param("colour"), None);
    let r04 = set
        .rules
        .iter()
        .find(|r| r.code == "R04_SYMBOL_ALLOWED")
        .unwrap();
    assert_eq!(r04.number_param("restricted"), None);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn number() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            Just(Some(0.0)),
            Just(Some(-0.0)),
            Just(Some(-1.0)),
            Just(Some(1e300)),
            (-1e6f64..1e6).prop_map(Some),
        ]
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("ACTIVE".to_string()),
            Just("REDUCING".to_string()),
            Just("HALTED".to_string()),
            "[a-zA-Z]{0,8}",
        ]
    }

    fn kind() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "entry",
            "roll",
            "close",
            "reduce",
            "assignment",
            "withdrawal",
        ])
        .prop_map(str::to_string)
    }

    proptest! {
        #[test]
        fn any_context_gives_clean_messages(
            k in kind(),
            states in (word(), word(), word()),
            nums in prop::collection::vec(number(), 12),
            flags in (any::<bool>(), prop::option::of(any::<bool>())),
            option_kind in prop::option::of(prop::sample::select(vec!["put", "call", "stock"])),
            group in prop::collection::vec("[A-Z]{1,4}", 0..3),
        ) {
            let mut c = good_entry();
            c.kind = k;
            (c.account_state, c.system_state, c.vix_state) = states;
            c.vix = nums[0];
            c.limit_price = nums[1];
            c.mid = nums[2];
            c.account_equity = nums[3];
            c.symbol_exposure_after = nums[4];
            c.group_exposure_after = nums[5];
            c.max_symbol_weight = nums[6];
            c.portfolio_equity = nums[7];
            c.contracts = nums[8];
            c.strike = nums[9];
            c.free_cash = nums[10];
            c.chain = nums[11].map(|x| Chain { open_interest: x, volume: x, bid: x, ask: x });
            c.reduces_exposure = flags.0;
            c.earnings_in_week = flags.1;
            c.option_kind = option_kind.map(str::to_string);
            c.group_symbols = group;
            let set = compile(ALL_RULES).unwrap();
            for r in evaluate(&set, &c).unwrap() {
                let words: Vec<String> = r
                    .message
                    .to_lowercase()
                    .split([' ', '='])
                    .map(str::to_string)
                    .collect();
                prop_assert!(r.message.starts_with(&format!("{}: ", r.code)), "{}", r.message);
                prop_assert!(
                    !words.iter().any(|w| w == "inf" || w == "-inf" || w == "nan"),
                    "{}",
                    r.message
                );
            }
        }
    }
}
