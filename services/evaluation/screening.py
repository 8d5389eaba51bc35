"""Screening rules: each looks at a submitted proposal and says what, if anything, is wrong.

Rules are plain functions of (proposal, policy) -> failure reason or None, so a new rule is a
new function in RULES; the policy (caps, eligible environments) comes from configuration.
"""
from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from kokeilu.contracts.evaluation import RuleFailure
from kokeilu.contracts.proposals import Environment, FocusArea, ProposalSubmitted


class ScreeningPolicy(BaseModel):
    """What the programme accepts. Defaults are the local ones; production sets its own."""

    budget_cap_eur: dict[FocusArea, float] = Field(default_factory=lambda: {
        FocusArea.smart_mobility: 250_000, FocusArea.learning: 100_000, FocusArea.sustainable_development: 150_000})
    eligible_environments: set[Environment] = Field(default_factory=lambda: set(Environment))
    min_summary_chars: int = 40


Rule = Callable[[ProposalSubmitted, ScreeningPolicy], "str | None"]


def completeness(p: ProposalSubmitted, policy: ScreeningPolicy) -> str | None:
    missing = []
    if not (p.hypothesis or "").strip():
        missing.append("a hypothesis")
    if not p.kpis:
        missing.append("at least one KPI with baseline and target")
    if len(p.summary.strip()) < policy.min_summary_chars:
        missing.append(f"a summary of at least {policy.min_summary_chars} characters")
    return ("missing " + ", ".join(missing)) if missing else None


def budget_cap(p: ProposalSubmitted, policy: ScreeningPolicy) -> str | None:
    cap = policy.budget_cap_eur.get(p.focus_area)
    if cap is not None and p.budget_eur > cap:
        return f"requested budget {p.budget_eur:,.0f} EUR exceeds the {p.focus_area.value} cap of {cap:,.0f} EUR"
    return None


def eligible_environment(p: ProposalSubmitted, policy: ScreeningPolicy) -> str | None:
    if p.environment not in policy.eligible_environments:
        allowed = ", ".join(sorted(e.value for e in policy.eligible_environments))
        return f"test environment {p.environment.value} is not open for pilots now (open: {allowed})"
    return None


RULES: dict[str, Rule] = {
    "completeness": completeness,
    "budget_cap": budget_cap,
    "eligible_environment": eligible_environment,
}


def screen(proposal: ProposalSubmitted, policy: ScreeningPolicy) -> list[RuleFailure]:
    """Every failed rule, with its reason; an empty list means the proposal passes."""
    failures = []
    for name, rule in RULES.items():
        reason = rule(proposal, policy)
        if reason:
            failures.append(RuleFailure(rule=name, reason=reason))
    return failures
