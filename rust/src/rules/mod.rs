//! The pre-trade compliance rules engine (PROTOCOL section 7).
//!
//! Rules are data: a rule set (code, severity, parameters, which decision kinds it applies to) arrives as
//! JSON (the Python side reads config/rules.yaml), is validated and compiled once, then evaluated against an
//! order context. Each result reads `CODE: key=value ...`.

mod context;
mod spec;

pub use context::{Chain, OrderContext};
pub use spec::{compile, CompiledRule, RuleSet, Severity};

use crate::error::CoreResult;

/// The outcome of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleResult {
    pub code: String,
    pub severity: Severity,
    pub passed: bool,
    /// `CODE: key=value ...`
    pub message: String,
}

/// The decision outcome implied by a set of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    ApprovedWithWarnings,
    RequiresApproval,
    Rejected,
}

impl Outcome {
    /// Upper-case name: APPROVED, APPROVED_WITH_WARNINGS, REQUIRES_APPROVAL, REJECTED.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Approved => "APPROVED",
            Outcome::ApprovedWithWarnings => "APPROVED_WITH_WARNINGS",
            Outcome::RequiresApproval => "REQUIRES_APPROVAL",
            Outcome::Rejected => "REJECTED",
        }
    }
}

/// Any CRITICAL failure rejects; else any HIGH requires approval; else any MEDIUM warns; else approved.
pub fn outcome(results: &[RuleResult]) -> Outcome {
    let failed = |s: Severity| results.iter().any(|r| !r.passed && r.severity == s);
    if failed(Severity::Critical) {
        Outcome::Rejected
    } else if failed(Severity::High) {
        Outcome::RequiresApproval
    } else if failed(Severity::Medium) {
        Outcome::ApprovedWithWarnings
    } else {
        Outcome::Approved
    }
}

/// Evaluates every rule of the set that applies to the context's decision kind.
pub fn evaluate(set: &RuleSet, ctx: &OrderContext) -> CoreResult<Vec<RuleResult>> {
    ctx.validate()?;
    Ok(set
        .rules
        .iter()
        .filter(|r| r.applies(&ctx.kind))
        .map(|r| r.evaluate(ctx))
        .collect())
}

#[cfg(test)]
mod tests;
