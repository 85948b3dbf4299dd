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
    /// The numeric parameters as given, for cross-checks against other configuration.
    numbers: Vec<(String, f64)>,
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
        ceiling: f64,
    },
    SectorConcentration {
        max_share: f64,
    },
    EsBudget {
        max_share: f64,
    },
    TradingState,
    VixBreaker {
        hedged_at: f64,
        reducing_at: f64,
        halted_at: f64,
    },
    Liquidity {
        min_open_interest: f64,
        min_volume: f64,
        max_spread_share: f64,
    },
    PriceCollar {
        max_deviation_share: f64,
        min_tick: f64,
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
        | "R16_DUPLICATE"
        | "R17_EARNINGS_BLACKOUT"
        | "R18_NO_WITHDRAWAL" => &[],
        "R02_DTE_WINDOW" => &[
            ("entry_min_dte", Number),
            ("entry_max_dte", Number),
            ("roll_max_dte", Number),
        ],
        "R04_SYMBOL_ALLOWED" => &[("restricted", Strings)],
        "R07_SYMBOL_CONCENTRATION" => {
            &[("max_share", Number), ("max_symbol_weight_ceiling", Number)]
        }
        "R08_SECTOR_CONCENTRATION" | "R09_ES_BUDGET" => &[("max_share", Number)],
        "R11_VIX_BREAKER" => &[
            ("hedged_at", Number),
            ("reducing_at", Number),
            ("halted_at", Number),
        ],
        "R12_LIQUIDITY" => &[
            ("min_open_interest", Number),
            ("min_volume", Number),
            ("max_spread_share", Number),
        ],
        "R13_PRICE_COLLAR" => &[("max_deviation_share", Number), ("min_tick", Number)],
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
        "R07_SYMBOL_CONCENTRATION" => {
            let max_share = num("max_share")?;
            let ceiling = num("max_symbol_weight_ceiling")?;
            if !(max_share <= ceiling && ceiling <= 1.0) {
                return Err(err(
                    format!("{at}.params.max_symbol_weight_ceiling"),
                    format!(
                        "must be at least max_share ({}) and at most 1, got {}",
                        n(max_share),
                        n(ceiling)
                    ),
                ));
            }
            Check::SymbolConcentration { max_share, ceiling }
        }
        "R08_SECTOR_CONCENTRATION" => Check::SectorConcentration {
            max_share: num("max_share")?,
        },
        "R09_ES_BUDGET" => Check::EsBudget {
            max_share: num("max_share")?,
        },
        "R10_TRADING_STATE" => Check::TradingState,
        "R11_VIX_BREAKER" => {
            let hedged_at = num("hedged_at")?;
            let reducing_at = num("reducing_at")?;
            let halted_at = num("halted_at")?;
            if hedged_at >= reducing_at {
                return Err(err(
                    format!("{at}.params.reducing_at"),
                    format!(
                        "must be above hedged_at ({}), got {}",
                        n(hedged_at),
                        n(reducing_at)
                    ),
                ));
            }
            if reducing_at >= halted_at {
                return Err(err(
                    format!("{at}.params.halted_at"),
                    format!(
                        "must be above reducing_at ({}), got {}",
                        n(reducing_at),
                        n(halted_at)
                    ),
                ));
            }
            Check::VixBreaker {
                hedged_at,
                reducing_at,
                halted_at,
            }
        }
        "R12_LIQUIDITY" => Check::Liquidity {
            min_open_interest: num("min_open_interest")?,
            min_volume: num("min_volume")?,
            max_spread_share: num("max_spread_share")?,
        },
        "R13_PRICE_COLLAR" => Check::PriceCollar {
            max_deviation_share: num("max_deviation_share")?,
            min_tick: num("min_tick")?,
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
    let mut numbers = Vec::new();
    for (name, kind) in params_schema {
        if matches!(kind, Param::Number) {
            numbers.push((name.to_string(), num(name)?));
        }
    }
    Ok(CompiledRule {
        code,
        severity,
        applies_to,
        numbers,
        check,
    })
}

/// Formats a number compactly: integers without decimals, others with up to 4; never `inf` or `NaN`.
fn n(x: f64) -> String {
    if !x.is_finite() {
        "undefined".to_string()
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = crate::protocol::decide::pyfmt::fixed(x, 4).to_string();
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A trading state (PROTOCOL section 6); HEDGED is the VIX breaker's hedged week, which trades like ACTIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Hedged,
    Reducing,
    Halted,
}

/// The states a caller may pass, as `expected=` shows them.
const STATES: &str = "ACTIVE|REDUCING|HALTED";

impl State {
    /// A state a caller passes: ACTIVE, REDUCING or HALTED (exact spelling); anything else is unknown.
    fn parse(s: &str) -> Option<State> {
        match s {
            "ACTIVE" => Some(State::Active),
            "REDUCING" => Some(State::Reducing),
            "HALTED" => Some(State::Halted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Active => "ACTIVE",
            State::Hedged => "HEDGED",
            State::Reducing => "REDUCING",
            State::Halted => "HALTED",
        }
    }

    /// REDUCING: only orders that lower exposure; HALTED: only cancels, closes and reduce orders.
    fn allows(self, ctx: &OrderContext) -> bool {
        match self {
            State::Active | State::Hedged => true,
            State::Reducing => ctx.lowers_exposure(),
            State::Halted => ctx.is_closing(),
        }
    }
}

/// A caller's state field: absent (empty), known, or unknown.
enum Given<'a> {
    Absent,
    Known(State),
    Unknown(&'a str),
}

fn given(s: &str) -> Given<'_> {
    if s.is_empty() {
        Given::Absent
    } else {
        State::parse(s).map_or(Given::Unknown(s), Given::Known)
    }
}

/// x >= threshold, where a value within 1e-9 (relative) of the threshold counts as on it (PROTOCOL section 5).
fn at_or_above(x: f64, threshold: f64) -> bool {
    x >= threshold || (threshold - x).abs() <= 1e-9 * threshold.abs()
}

impl CompiledRule {
    /// A numeric parameter of the rule as compiled (None when the rule has no such parameter).
    pub fn number_param(&self, name: &str) -> Option<f64> {
        self.numbers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

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
        let kind = c.option_kind.as_deref();
        match &self.check {
            // A share purchase or sale has no delta band or expiry.
            Check::DeltaBand | Check::DteWindow { .. } if kind == Some("stock") => (
                true,
                format!("option_kind=stock applies=options_only account={acct}"),
            ),
            // A covered call is secured by the shares it covers, not by cash.
            Check::CashSecured if kind == Some("call") => (
                true,
                format!("option_kind=call secured_by=shares account={acct}"),
            ),
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
            Check::SymbolConcentration { max_share, ceiling } => {
                let exp = need!(c.symbol_exposure_after, "symbol_exposure_after");
                let eq = need!(c.account_equity, "account_equity");
                symbol_concentration(c, exp, eq, *max_share, *ceiling)
            }
            Check::SectorConcentration { max_share } => {
                let exp = need!(c.sector_exposure_after, "sector_exposure_after");
                let eq = need!(c.portfolio_equity, "portfolio_equity");
                if eq <= 0.0 {
                    return (
                        false,
                        format!(
                            "sector={} share=undefined portfolio_equity={} max={}",
                            c.sector,
                            n(eq),
                            n(*max_share)
                        ),
                    );
                }
                let share = exp / eq;
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
            Check::TradingState => trading_state(c),
            Check::VixBreaker {
                hedged_at,
                reducing_at,
                halted_at,
            } => vix_breaker(c, *hedged_at, *reducing_at, *halted_at),
            Check::Liquidity {
                min_open_interest,
                min_volume,
                max_spread_share,
            } => match &c.chain {
                None => (true, "chain=none".to_string()),
                Some(ch) => {
                    let mid = 0.5 * (ch.bid + ch.ask);
                    // No positive mid, no measurable spread: the quote is not liquid (shown as undefined).
                    let spread = if mid > 0.0 {
                        (ch.ask - ch.bid) / mid
                    } else {
                        f64::NAN
                    };
                    let ok = ch.open_interest >= *min_open_interest
                        && ch.volume >= *min_volume
                        && spread.is_finite()
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
                min_tick,
            } => {
                let limit = need!(c.limit_price, "limit_price");
                let mid = need!(c.mid, "mid");
                price_collar(c, limit, mid, *max_deviation_share, *min_tick)
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
            Check::EarningsBlackout => earnings_blackout(c),
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

/// R07: max(symbol share, group share) against the account's limit (its own `max_symbol_weight` when given).
fn symbol_concentration(
    c: &OrderContext,
    exposure: f64,
    equity: f64,
    max_share: f64,
    ceiling: f64,
) -> (bool, String) {
    let acct = &c.account_id;
    let limit = match c.max_symbol_weight {
        None => max_share,
        Some(w) if w > 0.0 && w <= ceiling => w,
        Some(w) => {
            let text = format!("max_symbol_weight={} expected=0<w<={}", n(w), n(ceiling));
            return (
                false,
                format!("invalid=max_symbol_weight {text} account={acct}"),
            );
        }
    };
    let grouped = !c.group_symbols.is_empty() || c.group_exposure_after.is_some();
    let group_exposure = match (grouped, c.group_exposure_after) {
        (false, _) => None,
        (true, Some(g)) => Some(g),
        (true, None) => {
            return (
                false,
                format!(
                    "missing=group_exposure_after group={} account={acct}",
                    group_name(c)
                ),
            )
        }
    };
    if equity <= 0.0 {
        return (
            false,
            format!(
                "symbol={} share=undefined account_equity={} max={} account={acct}",
                c.symbol,
                n(equity),
                n(limit)
            ),
        );
    }
    let share = exposure / equity;
    let mut ok = share <= limit + 1e-12;
    let mut text = format!("symbol={} share={}", c.symbol, n(share));
    if let Some(g) = group_exposure {
        let group_share = g / equity;
        ok = ok && group_share <= limit + 1e-12;
        text.push_str(&format!(
            " group={} group_share={}",
            group_name(c),
            n(group_share)
        ));
    }
    (ok, format!("{text} max={} account={acct}", n(limit)))
}

fn group_name(c: &OrderContext) -> String {
    if c.group_symbols.is_empty() {
        "unnamed".to_string()
    } else {
        c.group_symbols.join("+")
    }
}

/// R10: both the account's and the system's state must allow the order; an unknown state fails, an absent one
/// fails an order that a HALTED state would refuse (a buy-back passes whatever the state, so it needs none).
fn trading_state(c: &OrderContext) -> (bool, String) {
    let fields = [
        ("account_state", c.account_state.as_str()),
        ("system_state", c.system_state.as_str()),
    ];
    let mut ok = true;
    let mut shown = Vec::with_capacity(2);
    for (field, value) in fields {
        match given(value) {
            Given::Unknown(s) => {
                return (
                    false,
                    format!(
                        "{field}={s} unknown={field} expected={STATES} kind={}",
                        c.kind
                    ),
                )
            }
            Given::Absent if !c.is_closing() => {
                return (false, format!("missing={field} kind={}", c.kind));
            }
            Given::Absent => shown.push(format!("{field}=none")),
            Given::Known(state) => {
                ok = ok && state.allows(c);
                shown.push(format!("{field}={}", state.name()));
            }
        }
    }
    (
        ok,
        format!(
            "{} kind={} reduces={}",
            shown.join(" "),
            c.kind,
            c.reduces_exposure
        ),
    )
}

/// R11: the breaker from the VIX number itself (PROTOCOL section 6); without a VIX, a known `vix_state`.
fn vix_breaker(
    c: &OrderContext,
    hedged_at: f64,
    reducing_at: f64,
    halted_at: f64,
) -> (bool, String) {
    let (state, shown) = match c.vix {
        Some(v) if v < 0.0 => return (false, format!("vix={} invalid=vix expected=vix>=0", n(v))),
        Some(v) => {
            let (state, threshold) = if at_or_above(v, halted_at) {
                (State::Halted, Some(halted_at))
            } else if at_or_above(v, reducing_at) {
                (State::Reducing, Some(reducing_at))
            } else if at_or_above(v, hedged_at) {
                (State::Hedged, Some(hedged_at))
            } else {
                (State::Active, None)
            };
            let at = threshold
                .map(|t| format!(" at={}", n(t)))
                .unwrap_or_default();
            (state, format!("vix={}{at}", n(v)))
        }
        None => match given(&c.vix_state) {
            Given::Known(state) => (state, format!("vix=none vix_state={}", state.name())),
            Given::Unknown(s) => {
                return (
                    false,
                    format!(
                        "vix=none vix_state={s} unknown=vix_state expected={STATES} kind={}",
                        c.kind
                    ),
                )
            }
            Given::Absent if c.is_closing() => {
                return (
                    true,
                    format!("vix=none vix_state=none kind={} closing=true", c.kind),
                )
            }
            Given::Absent => return (false, format!("missing=vix kind={}", c.kind)),
        },
    };
    let note = if state == State::Hedged {
        " note=hedged_week"
    } else {
        ""
    };
    (
        state.allows(c),
        format!("{shown} state={} kind={}{note}", state.name(), c.kind),
    )
}

/// R13: limit within the collar of mid; buying back at or under the minimum tick always passes (a worthless
/// option's close); a mid that is not positive has no deviation and fails (shown as undefined).
fn price_collar(
    c: &OrderContext,
    limit: f64,
    mid: f64,
    max_deviation_share: f64,
    min_tick: f64,
) -> (bool, String) {
    if limit < 0.0 {
        return (
            false,
            format!(
                "limit={} mid={} invalid=limit_price expected=limit>=0",
                n(limit),
                n(mid)
            ),
        );
    }
    if c.is_buy_back() && limit <= min_tick * (1.0 + 1e-9) {
        return (
            true,
            format!(
                "limit={} mid={} min_tick={} kind={} buy_back_at_min_tick=true",
                n(limit),
                n(mid),
                n(min_tick),
                c.kind
            ),
        );
    }
    if mid <= 0.0 {
        return (
            false,
            format!(
                "limit={} mid={} deviation=undefined max={}",
                n(limit),
                n(mid),
                n(max_deviation_share)
            ),
        );
    }
    let dev = (limit - mid).abs() / mid;
    (
        dev <= max_deviation_share + 1e-12,
        format!(
            "limit={} mid={} deviation={} max={}",
            n(limit),
            n(mid),
            n(dev),
            n(max_deviation_share)
        ),
    )
}

/// R17: no new put and no put roll into a week with the symbol's earnings (when a calendar is given); calls
/// and stock are never blacked out. Without `option_kind`, an entry is checked as before v2 and a roll is not.
fn earnings_blackout(c: &OrderContext) -> (bool, String) {
    let Some(earnings) = c.earnings_in_week else {
        return (true, "calendar=none".to_string());
    };
    let symbol = &c.symbol;
    match c.option_kind.as_deref() {
        Some("put") => (
            !(earnings && matches!(c.kind.as_str(), "entry" | "roll")),
            format!(
                "symbol={symbol} earnings_in_week={earnings} option_kind=put kind={}",
                c.kind
            ),
        ),
        Some(other) => (
            true,
            format!(
                "symbol={symbol} earnings_in_week={earnings} option_kind={other} applies=puts_only"
            ),
        ),
        None if c.kind == "entry" => (
            !(earnings && c.is_new_exposure()),
            format!("symbol={symbol} earnings_in_week={earnings}"),
        ),
        None => (
            true,
            format!(
                "symbol={symbol} earnings_in_week={earnings} option_kind=none kind={} checked=false",
                c.kind
            ),
        ),
    }
}
