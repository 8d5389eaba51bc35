"""Screening rules: each looks at a submitted proposal and says what, if anything, is wrong.

Rules are plain functions of (proposal, policy) -> failure reason or None, so a new rule is a
new function in RULES; the policy (caps, eligible environments) comes from configuration. The
duplicate rule also looks at the other open proposals, so it takes them as a third argument.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from difflib import SequenceMatcher

from pydantic import BaseModel, Field, field_validator

from kokeilu.contracts.evaluation import RuleFailure
from kokeilu.contracts.proposals import Environment, FocusArea, ProposalSubmitted


DEFAULT_BUDGET_CAPS_EUR: dict[FocusArea, float] = {
    FocusArea.smart_mobility: 250_000, FocusArea.learning: 100_000, FocusArea.sustainable_development: 150_000}


class ScreeningPolicy(BaseModel):
    """What the programme accepts. Defaults are the local ones; production sets its own."""

    budget_cap_eur: dict[FocusArea, float] = Field(default_factory=lambda: dict(DEFAULT_BUDGET_CAPS_EUR))
    eligible_environments: set[Environment] = Field(default_factory=lambda: set(Environment))
    min_summary_chars: int = 40
    # Titles at least this similar (difflib ratio of normalised titles) to an open proposal's
    # fail the duplicate rule; null switches the rule off.
    duplicate_title_similarity: float | None = Field(default=0.9, ge=0, le=1)

    @field_validator("budget_cap_eur", mode="before")
    @classmethod
    def _keep_the_other_default_caps(cls, caps):
        # Configuring the cap of one focus area must not leave the others without a cap.
        if not isinstance(caps, dict):
            return caps
        given = {k.value if isinstance(k, FocusArea) else k: v for k, v in caps.items()}
        return {**{k.value: v for k, v in DEFAULT_BUDGET_CAPS_EUR.items()}, **given}


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


def normalise_title(title: str) -> str:
    text = unicodedata.normalize("NFKC", title).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def duplicate(p: ProposalSubmitted, policy: ScreeningPolicy, open_proposals: Iterable[tuple[str, str]]) -> str | None:
    """Near-identical title to an open proposal (id, title) other than this one."""
    if policy.duplicate_title_similarity is None:
        return None
    threshold = policy.duplicate_title_similarity
    matcher = SequenceMatcher(None)
    matcher.set_seq2(normalise_title(p.title))  # difflib caches what it learns about seq2
    best = None
    for other_id, other_title in open_proposals:
        if other_id == p.proposal_id:
            continue
        matcher.set_seq1(normalise_title(other_title))
        # The quick upper bounds skip most titles without the full (quadratic) comparison.
        if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
            continue
        ratio = matcher.ratio()
        if ratio >= threshold and (best is None or ratio > best[0]):
            best = (ratio, other_id, other_title)
    if best is None:
        return None
    return f"title is near-identical ({best[0]:.0%}) to open proposal {best[1]} ({best[2]!r})"


def screen(proposal: ProposalSubmitted, policy: ScreeningPolicy,
           open_proposals: Iterable[tuple[str, str]] = ()) -> list[RuleFailure]:
    """Every failed rule, with its reason; an empty list means the proposal passes."""
    failures = []
    for name, rule in RULES.items():
        reason = rule(proposal, policy)
        if reason:
            failures.append(RuleFailure(rule=name, reason=reason))
    reason = duplicate(proposal, policy, open_proposals)
    if reason:
        failures.append(RuleFailure(rule="duplicate", reason=reason))
    return failures
