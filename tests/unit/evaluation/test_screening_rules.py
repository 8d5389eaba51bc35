"""Each screening rule both ways, the duplicate rule included."""

from __future__ import annotations

import pytest

from kokeilu.contracts.proposals import Environment, FocusArea, ProposalSubmitted
from services.evaluation.screening import ScreeningPolicy, duplicate, normalise_title, screen
from tests.unit.workflow.support import WHEN

POLICY = ScreeningPolicy()


def proposal(**overrides) -> ProposalSubmitted:
    data = {
        "proposal_id": "p-1",
        "title": "Reading buddies at Kera school",
        "summary": "Older pupils read with younger ones twice a week, with a tablet app to log progress.",
        "focus_area": "learning",
        "environment": "school",
        "proposer": {"organisation": "Kera school", "kind": "school"},
        "hypothesis": "Reading buddies raise reading fluency.",
        "kpis": [{"name": "words per minute", "unit": "wpm", "baseline": 60, "target": 80}],
        "budget_eur": 20000,
        "duration_weeks": 20,
        "language": "fi",
        "submitted_at": WHEN,
    }
    data.update(overrides)
    return ProposalSubmitted.model_validate(data)


def rules(p, policy=POLICY, others=()) -> dict[str, str]:
    return {f.rule: f.reason for f in screen(p, policy, others)}


def test_a_complete_proposal_passes_every_rule():
    assert rules(proposal()) == {}


@pytest.mark.parametrize(
    "overrides, missing",
    [
        ({"hypothesis": None}, "hypothesis"),
        ({"hypothesis": "   "}, "hypothesis"),
        ({"kpis": []}, "KPI"),
        ({"summary": "Too short."}, "summary"),
    ],
)
def test_completeness_fails_naming_what_is_missing(overrides, missing):
    reasons = rules(proposal(**overrides))
    assert set(reasons) == {"completeness"} and missing in reasons["completeness"]


@pytest.mark.parametrize(
    "area, cap", [("learning", 100_000), ("smart_mobility", 250_000), ("sustainable_development", 150_000)]
)
def test_the_budget_cap_is_per_focus_area(area, cap):
    assert "budget_cap" not in rules(proposal(focus_area=area, budget_eur=cap))
    assert "budget_cap" in rules(proposal(focus_area=area, budget_eur=cap + 1))


def test_the_eligible_environment_rule_both_ways():
    policy = ScreeningPolicy(eligible_environments={Environment.kera, Environment.school})
    assert "eligible_environment" not in rules(proposal(environment="school"), policy)
    reason = rules(proposal(environment="waterfront_walkway"), policy)["eligible_environment"]
    assert "waterfront_walkway" in reason and "kera, school" in reason


def test_a_near_identical_title_of_an_open_proposal_is_a_duplicate():
    others = [("p-2", "Reading Buddies at Kera School!"), ("p-3", "Solar benches on the Waterfront Walkway")]
    reason = rules(proposal(), others=others)["duplicate"]
    assert "p-2" in reason and "p-3" not in reason


def test_a_different_title_or_the_proposal_itself_is_no_duplicate():
    assert "duplicate" not in rules(proposal(), others=[("p-2", "Solar benches on the Waterfront Walkway")])
    assert "duplicate" not in rules(proposal(), others=[("p-1", "Reading buddies at Kera school")])
    assert (
        duplicate(
            proposal(), ScreeningPolicy(duplicate_title_similarity=None), [("p-2", "Reading buddies at Kera school")]
        )
        is None
    )


def test_the_similarity_threshold_is_configurable():
    others = [("p-2", "Reading buddies at Espoo schools")]
    assert "duplicate" not in rules(proposal(), others=others)
    assert "duplicate" in rules(proposal(), ScreeningPolicy(duplicate_title_similarity=0.7), others)


def test_titles_are_normalised_before_comparing():
    assert normalise_title("  Reading—BUDDIES,  at Kera   school. ") == "reading buddies at kera school"


def test_every_failed_rule_is_named_together():
    policy = ScreeningPolicy(eligible_environments={Environment.kera}, budget_cap_eur={FocusArea.learning: 1000})
    reasons = rules(proposal(hypothesis=None), policy, [("p-9", "Reading buddies at Kera school")])
    assert set(reasons) == {"completeness", "budget_cap", "eligible_environment", "duplicate"}
