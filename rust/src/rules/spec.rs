//! Rule-set specification: parsing and validating the rule data, and each rule's check.

use serde_json::{Map, Value};

use super::context::OrderContext;
use super::RuleResult;
use crate::error::{CoreError, CoreResult};

/// How much a failure of the rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Medium,
    High,
    Critical,
}

impl Severity {
    /// MEDIUM, HIGH or CRITICAL.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// A validated rule with its typed parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRule {
    pub code: String,
    pub severity: Severity,
    pub applies_to: Vec<String>,
    check: Check,
}

/// A compiled rule set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    pub version: i64,
    pub rules: Vec<CompiledRule>,
}

#[derive(Debug, Clone, PartialEq)]
enum Check {
    DeltaBand,
    DteWindow {
        entry_min: f64,
        entry_max: f64,
        roll_max: f64,
    },
    EntryDay,
    SymbolAllowed {
        restricted: Vec<String>,
    },
    CashSecured,
    PositionSize,
    SymbolConcentration {
        max_share: f64,
    },
    SectorConcentration {
        max_share: f64,
    },
    EsBudget {
        max_share: f64,
    },
    TradingState,
    VixBreaker,
    Liquidity {
        min_open_interest: f64,
        min_volume: f64,
        max_spread_share: f64,
    },
    PriceCollar {
        max_deviation_share: f64,
    },
    MaxOrderSize {
        max_contracts: f64,
    },
    OrderRate {
        max_per_minute: f64,
    },
    Duplicate,
    EarningsBlackout,
    NoWithdrawal,
}

#[derive(Clone, Copy)]
enum Param {
    Number,
    Strings,
}

/// Each known code and the parameters it requires.
fn schema(code: &str) -> Option<&'static [(&'static str, Param)]> {
    use Param::*;
    Some(match code {
        "R01_DELTA_BAND"
        | "R03_ENTRY_DAY"
        | "R05_CASH_SECURED"
        | "R06_POSITION_SIZE"
        | "R10_TRADING_STATE"
        | "R11_VIX_BREAKER"
        | "R16_DUPLICATE"
        | "R17_EARNINGS_BLACKOUT"
        | "R18_NO_WITHDRAWAL" => &[],
        "R02_DTE_WINDOW" => &[
            ("entry_min_dte", Number),
            ("entry_max_dte", Number),
            ("roll_max_dte", Number),
        ],
        "R04_SYMBOL_ALLOWED" => &[("restricted", Strings)],
        "R07_SYMBOL_CONCENTRATION" | "R08_SECTOR_CONCENTRATION" | "R09_ES_BUDGET" => {
            &[("max_share", Number)]
        }
        "R12_LIQUIDITY" => &[
            ("min_open_interest", Number),
            ("min_volume", Number),
            ("max_spread_share", Number),
        ],
        "R13_PRICE_COLLAR" => &[("max_deviation_share", Number)],
        "R14_MAX_ORDER_SIZE" => &[("max_contracts", Number)],
        "R15_ORDER_RATE" => &[("max_per_minute", Number)],
        _ => return None,
    })
}

const KINDS: [&str; 6] = [
    "entry",
    "roll",
    "close",
    "reduce",
    "assignment",
    "withdrawal",
];
const RULE_KEYS: [&str; 5] = ["code", "severity", "applies_to", "params", "description"];

fn err(field: String, reason: impl Into<String>) -> CoreError {
    CoreError::invalid(field, reason)
}

/// Compiles a rule set from its JSON form: `{"version": 1, "rules": [{code, severity, applies_to, params}]}`.
/// Errors name the rule and the field, e.g. `rules[13] R14_MAX_ORDER_SIZE.params.max_contracts`.
pub fn compile(json: &str) -> CoreResult<RuleSet> {
    let doc: Value = serde_json::from_str(json).map_err(|e| err("rules".into(), e.to_string()))?;
    let top = doc
        .as_object()
        .ok_or_else(|| err("rules".into(), "the rule file must be a mapping"))?;
    for key in top.keys() {
        if key != "version" && key != "rules" {
            return Err(err(key.clone(), "unknown field (expected version, rules)"));
        }
    }
    let version = match top.get("version") {
        Some(v) => v
            .as_i64()
            .ok_or_else(|| err("version".into(), "must be an integer"))?,
        None => return Err(err("version".into(), "is missing")),
    };
    let list = top
        .get("rules")
        .ok_or_else(|| err("rules".into(), "is missing"))?
        .as_array()
        .ok_or_else(|| err("rules".into(), "must be a list"))?;
    let mut rules = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let rule = compile_rule(i, raw)?;
        if rules.iter().any(|r: &CompiledRule| r.code == rule.code) {
            return Err(err(
                format!("rules[{i}] {}.code", rule.code),
                "appears more than once",
            ));
        }
        rules.push(rule);
    }
    Ok(RuleSet { version, rules })
}

fn compile_rule(i: usize, raw: &Value) -> CoreResult<CompiledRule> {
    let at = format!("rules[{i}]");
    let obj = raw
        .as_object()
        .ok_or_else(|| err(at.clone(), "must be a mapping"))?;
    let code = obj
        .get("code")
        .ok_or_else(|| err(format!("{at}.code"), "is missing"))?
        .as_str()
        .ok_or_else(|| err(format!("{at}.code"), "must be a string"))?
        .to_string();
    let at = format!("{at} {code}");
    for key in obj.keys() {
        if !RULE_KEYS.contains(&key.as_str()) {
            return Err(err(
                format!("{at}.{key}"),
                format!("unknown field (expected {})", RULE_KEYS.join(", ")),
            ));
        }
    }
    let params_schema =
        schema(&code).ok_or_else(|| err(format!("{at}.code"), "unknown rule code"))?;
    let severity = match obj.get("severity").and_then(Value::as_str) {
        Some("CRITICAL") => Severity::Critical,
        Some("HIGH") => Severity::High,
        Some("MEDIUM") => Severity::Medium,
        Some(other) => {
            return Err(err(
                format!("{at}.severity"),
                format!("must be CRITICAL, HIGH or MEDIUM, got '{other}'"),
            ))
        }
        None => return Err(err(format!("{at}.severity"), "is missing or not a string")),
    };
    let applies = obj
        .get("applies_to")
        .ok_or_else(|| err(format!("{at}.applies_to"), "is missing"))?
        .as_array()
        .ok_or_else(|| {
            err(
                format!("{at}.applies_to"),
                "must be a list of decision kinds",
            )
        })?;
    let mut applies_to = Vec::new();
    for a in applies {
        let s = a
            .as_str()
            .ok_or_else(|| err(format!("{at}.applies_to"), "must hold strings"))?;
        if !KINDS.contains(&s) {
            return Err(err(
                format!("{at}.applies_to"),
                format!(
                    "unknown decision kind '{s}' (expected {})",
                    KINDS.join(", ")
                ),
            ));
        }
        applies_to.push(s.to_string());
    }
    let empty = Map::new();
    let params = match obj.get("params") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(err(format!("{at}.params"), "must be a mapping")),
    };
    for key in params.keys() {
        if !params_schema.iter().any(|(n, _)| n == key) {
            let expected: Vec<&str> = params_schema.iter().map(|(n, _)| *n).collect();
            let hint = if expected.is_empty() {
                "none".to_string()
            } else {
                expected.join(", ")
            };
            return Err(err(
                format!("{at}.params.{key}"),
                format!("unknown parameter (expected {hint})"),
            ));
        }
    }
    let num = |name: &str| -> CoreResult<f64> {
        let field = format!("{at}.params.{name}");
        let v = params
            .get(name)
            .ok_or_else(|| err(field.clone(), "is missing"))?;
        let x = v
            .as_f64()
            .ok_or_else(|| err(field.clone(), format!("must be a number, got {v}")))?;
        if !x.is_finite() || x < 0.0 {
            return Err(err(field, format!("must be a finite number >= 0, got {x}")));
        }
        Ok(x)
    };
    let strings = |name: &str| -> CoreResult<Vec<String>> {
        let field = format!("{at}.params.{name}");
        let v = params
            .get(name)
            .ok_or_else(|| err(field.clone(), "is missing"))?;
        let arr = v
            .as_array()
            .ok_or_else(|| err(field.clone(), "must be a list of strings"))?;
        arr.iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(field.clone(), "must be a list of strings"))
            })
            .collect()
    };
    let check = match code.as_str() {
        "R01_DELTA_BAND" => Check::DeltaBand,
        "R02_DTE_WINDOW" => Check::DteWindow {
            entry_min: num("entry_min_dte")?,
            entry_max: num("entry_max_dte")?,
            roll_max: num("roll_max_dte")?,
        },
        "R03_ENTRY_DAY" => Check::EntryDay,
        "R04_SYMBOL_ALLOWED" => Check::SymbolAllowed {
            restricted: strings("restricted")?,
        },
        "R05_CASH_SECURED" => Check::CashSecured,
        "R06_POSITION_SIZE" => Check::PositionSize,
        "R07_SYMBOL_CONCENTRATION" => Check::SymbolConcentration {
            max_share: num("max_share")?,
        },
        "R08_SECTOR_CONCENTRATION" => Check::SectorConcentration {
            max_share: num("max_share")?,
        },
        "R09_ES_BUDGET" => Check::EsBudget {
            max_share: num("max_share")?,
        },
        "R10_TRADING_STATE" => Check::TradingState,
        "R11_VIX_BREAKER" => Check::VixBreaker,
        "R12_LIQUIDITY" => Check::Liquidity {
            min_open_interest: num("min_open_interest")?,
            min_volume: num("min_volume")?,
            max_spread_share: num("max_spread_share")?,
        },
        "R13_PRICE_COLLAR" => Check::PriceCollar {
            max_deviation_share: num("max_deviation_share")?,
        },
        "R14_MAX_ORDER_SIZE" => Check::MaxOrderSize {
            max_contracts: num("max_contracts")?,
        },
        "R15_ORDER_RATE" => Check::OrderRate {
            max_per_minute: num("max_per_minute")?,
        },
        "R16_DUPLICATE" => Check::Duplicate,
        "R17_EARNINGS_BLACKOUT" => Check::EarningsBlackout,
        _ => Check::NoWithdrawal,
    };
    Ok(CompiledRule {
        code,
        severity,
        applies_to,
        check,
    })
}

/// Formats a number compactly: integers without decimals, others with up to 4.
fn n(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn state_allows(state: &str, ctx: &OrderContext) -> bool {
    match state {
        "HALTED" => ctx.kind == "close",
        "REDUCING" => ctx.reduces_exposure || matches!(ctx.kind.as_str(), "close" | "reduce"),
        _ => true,
    }
}

impl CompiledRule {
    /// Whether the rule applies to a decision kind.
    pub fn applies(&self, kind: &str) -> bool {
        self.applies_to.iter().any(|k| k == kind)
    }

    /// Evaluates the rule; a missing input the rule needs is a failure naming it (never a silent pass).
    pub fn evaluate(&self, ctx: &OrderContext) -> RuleResult {
        let (passed, detail) = self.check(ctx);
        RuleResult {
            code: self.code.clone(),
            severity: self.severity,
            passed,
            message: format!("{}: {}", self.code, detail),
        }
    }

    fn check(&self, c: &OrderContext) -> (bool, String) {
        macro_rules! need {
            ($v:expr, $name:literal) => {
                match $v {
                    Some(x) => x,
                    None => return (false, concat!("missing=", $name).to_string()),
                }
            };
        }
        let acct = &c.account_id;
        match &self.check {
            Check::DeltaBand => {
                let d = need!(c.delta, "delta");
                let lo = need!(c.band_low, "band_low");
                let hi = need!(c.band_high, "band_high");
                (
                    d >= lo && d <= hi,
                    format!("delta={} band={}-{} account={acct}", n(d), n(lo), n(hi)),
                )
            }
            Check::DteWindow {
                entry_min,
                entry_max,
                roll_max,
            } => {
                let dte = need!(c.dte, "dte");
                if c.kind == "roll" {
                    (
                        dte >= 1.0 && dte <= *roll_max,
                        format!("dte={} max={} kind=roll", n(dte), n(*roll_max)),
                    )
                } else {
                    (
                        dte >= *entry_min && dte <= *entry_max,
                        format!(
                            "dte={} window={}-{} kind={}",
                            n(dte),
                            n(*entry_min),
                            n(*entry_max),
                            c.kind
                        ),
                    )
                }
            }
            Check::EntryDay => {
                let day = need!(c.weekday, "weekday");
                const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
                let name = NAMES.get(usize::from(day)).copied().unwrap_or("?");
                let allowed: Vec<&str> = c
                    .entry_days
                    .iter()
                    .filter_map(|d| NAMES.get(usize::from(*d)).copied())
                    .collect();
                let shown = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(",")
                };
                (
                    c.entry_days.contains(&day),
                    format!(
                        "day={name} entry_days={shown} account={acct} label={}",
                        c.label
                    ),
                )
            }
            Check::SymbolAllowed { restricted } => {
                let allowed = c.allowed_symbols.iter().any(|s| s == &c.symbol);
                let blocked = restricted.iter().any(|s| s == &c.symbol);
                (
                    allowed && !blocked,
                    format!(
                        "symbol={} allowed={} restricted={} account={acct}",
                        c.symbol, allowed, blocked
                    ),
                )
            }
            Check::CashSecured => {
                let k = need!(c.strike, "strike");
                let q = need!(c.contracts, "contracts");
                let m = c.multiplier.unwrap_or(100.0);
                let free = need!(c.free_cash, "free_cash");
                let required = k * m * q;
                (
                    required <= free + 1e-9,
                    format!(
                        "required={} free_cash={} account={acct}",
                        n(required),
                        n(free)
                    ),
                )
            }
            Check::PositionSize => {
                let notional = need!(c.notional, "notional");
                let cap = need!(c.size_cap, "size_cap");
                (
                    notional <= cap + 1e-9,
                    format!("notional={} cap={} account={acct}", n(notional), n(cap)),
                )
            }
            Check::SymbolConcentration { max_share } => {
                let exp = need!(c.symbol_exposure_after, "symbol_exposure_after");
                let eq = need!(c.account_equity, "account_equity");
                let share = if eq > 0.0 { exp / eq } else { f64::INFINITY };
                (
                    share <= *max_share + 1e-12,
                    format!(
                        "symbol={} share={} max={} account={acct}",
                        c.symbol,
                        n(share),
                        n(*max_share)
                    ),
                )
            }
            Check::SectorConcentration { max_share } => {
                let exp = need!(c.sector_exposure_after, "sector_exposure_after");
                let eq = need!(c.portfolio_equity, "portfolio_equity");
                let share = if eq > 0.0 { exp / eq } else { f64::INFINITY };
                (
                    share <= *max_share + 1e-12,
                    format!(
                        "sector={} share={} max={}",
                        c.sector,
                        n(share),
                        n(*max_share)
                    ),
                )
            }
            Check::EsBudget { max_share } => {
                let es = need!(c.es_after, "es_after");
                let eq = need!(c.portfolio_equity, "portfolio_equity");
                let limit = max_share * eq;
                (
                    es <= limit + 1e-9,
                    format!(
                        "es_after={} limit={} share={}",
                        n(es),
                        n(limit),
                        n(*max_share)
                    ),
                )
            }
            Check::TradingState => {
                let ok = state_allows(&c.account_state, c) && state_allows(&c.system_state, c);
                (
                    ok,
                    format!(
                        "account_state={} system_state={} kind={} reduces={}",
                        or_active(&c.account_state),
                        or_active(&c.system_state),
                        c.kind,
                        c.reduces_exposure
                    ),
                )
            }
            Check::VixBreaker => {
                let vix = c.vix.map(n).unwrap_or_else(|| "none".into());
                (
                    state_allows(&c.vix_state, c),
                    format!(
                        "vix={vix} state={} kind={}",
                        or_active(&c.vix_state),
                        c.kind
                    ),
                )
            }
            Check::Liquidity {
                min_open_interest,
                min_volume,
                max_spread_share,
            } => match &c.chain {
                None => (true, "chain=none".to_string()),
                Some(ch) => {
                    let mid = 0.5 * (ch.bid + ch.ask);
                    let spread = if mid > 0.0 {
                        (ch.ask - ch.bid) / mid
                    } else {
                        f64::INFINITY
                    };
                    let ok = ch.open_interest >= *min_open_interest
                        && ch.volume >= *min_volume
                        && spread <= *max_spread_share + 1e-12;
                    (
                        ok,
                        format!(
                            "open_interest={} volume={} spread={} min_oi={} min_volume={} max_spread={}",
                            n(ch.open_interest),
                            n(ch.volume),
                            n(spread),
                            n(*min_open_interest),
                            n(*min_volume),
                            n(*max_spread_share)
                        ),
                    )
                }
            },
            Check::PriceCollar {
                max_deviation_share,
            } => {
                let limit = need!(c.limit_price, "limit_price");
                let mid = need!(c.mid, "mid");
                let dev = if mid > 0.0 {
                    (limit - mid).abs() / mid
                } else {
                    f64::INFINITY
                };
                (
                    dev <= *max_deviation_share + 1e-12,
                    format!(
                        "limit={} mid={} deviation={} max={}",
                        n(limit),
                        n(mid),
                        n(dev),
                        n(*max_deviation_share)
                    ),
                )
            }
            Check::MaxOrderSize { max_contracts } => {
                let q = need!(c.contracts, "contracts");
                (
                    q <= *max_contracts,
                    format!("contracts={} max={}", n(q), n(*max_contracts)),
                )
            }
            Check::OrderRate { max_per_minute } => {
                let r = need!(c.orders_last_minute, "orders_last_minute");
                (
                    r < *max_per_minute,
                    format!(
                        "orders_last_minute={} max={} account={acct}",
                        n(r),
                        n(*max_per_minute)
                    ),
                )
            }
            Check::Duplicate => (!c.idempotency_seen, format!("seen={}", c.idempotency_seen)),
            Check::EarningsBlackout => match c.earnings_in_week {
                None => (true, "calendar=none".to_string()),
                Some(e) => (
                    !(e && c.is_new_exposure()),
                    format!("symbol={} earnings_in_week={e}", c.symbol),
                ),
            },
            Check::NoWithdrawal => {
                let ok = !(c.kind == "withdrawal" && c.account_type == "com");
                let amount = c.withdrawal_amount.map(n).unwrap_or_else(|| "none".into());
                (
                    ok,
                    format!(
                        "account={acct} account_type={} amount={amount}",
                        c.account_type
                    ),
                )
            }
        }
    }
}

fn or_active(s: &str) -> &str {
    if s.is_empty() {
        "ACTIVE"
    } else {
        s
    }
}
