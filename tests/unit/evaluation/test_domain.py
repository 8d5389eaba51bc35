"""The evaluation domain: rubric maths, decision rules, panel balance, conflicts, blind scores."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kokeilu.contracts.evaluation import Decision
from services.evaluation.domain import (
    CRITERIA,
    Evaluation,
    EvaluationRefused,
    InvalidScores,
    NotAssigned,
    Rubric,
    assign,
    decide,
)
from tests.builders import WHEN

RUBRIC = Rubric()


def sheet(*values) -> dict[str, int]:
    if len(values) == 1:
        values = values * len(CRITERIA)
    return dict(zip(CRITERIA, values, strict=False))


def test_the_weighted_score_uses_the_configured_weights():
    rubric = Rubric(
        weights={"strategy_fit": 1, "feasibility": 0, "impact": 0, "sustainability": 0, "reuse_scalability": 1}
    )
    outcome = decide([sheet(5, 0, 0, 0, 1)], rubric, 1000, False)
    assert outcome.weighted_score == 3.0
    assert outcome.criterion_averages == {
        "strategy_fit": 5,
        "feasibility": 0,
        "impact": 0,
        "sustainability": 0,
        "reuse_scalability": 1,
    }


def test_averages_are_per_criterion_over_the_panel():
    outcome = decide([sheet(4), sheet(3), sheet(5)], RUBRIC, 1000, False)
    assert outcome.criterion_averages == {c: 4.0 for c in CRITERIA}
    assert outcome.weighted_score == 4.0


@pytest.mark.parametrize(
    "score, decision",
    [
        (5, Decision.approved),
        (3.5, Decision.approved),
        (3.4, Decision.revision_requested),
        (2.5, Decision.revision_requested),
        (2.4, Decision.rejected),
        (0, Decision.rejected),
    ],
)
def test_the_threshold_decides(score, decision):
    # two evaluators whose averages land exactly on `score`
    low, high = int(score), int(score) + (1 if score != int(score) else 0)
    sheets = [sheet(low), sheet(high)] if high != low else [sheet(low)]
    if score not in (3.5, 2.5) and high != low:  # 3.4 and 2.4: five sheets
        tenths = round((score - low) * 10)
        sheets = [sheet(high)] * tenths + [sheet(low)] * (10 - tenths)
    assert decide(sheets, RUBRIC, 1000, False).decision is decision


def test_the_thresholds_are_configurable():
    strict = Rubric(approve_at=4.5, revise_at=4.0)
    assert decide([sheet(4)], strict, 1000, False).decision is Decision.revision_requested
    assert decide([sheet(3)], strict, 1000, False).decision is Decision.rejected
    with pytest.raises(ValueError, match="revise_at must not exceed approve_at"):
        Rubric(approve_at=2, revise_at=3)
    with pytest.raises(ValueError, match="weights must name exactly the criteria"):
        Rubric(weights={"impact": 1})


def test_a_wide_spread_raises_the_disagreement_flag_and_says_where():
    outcome = decide([sheet(1, 4, 4, 4, 4), sheet(4, 4, 4, 4, 4)], RUBRIC, 1000, False)
    assert outcome.disagreement and outcome.disagreement_on == ("strategy_fit",)
    assert "disagreed widely on fit with the city strategy" in outcome.rationale
    assert not decide([sheet(2), sheet(4)], RUBRIC, 1000, False).disagreement


def test_external_funding_is_recommended_by_the_rules():
    assert decide([sheet(4)], RUBRIC, 1000, True).external_funding_recommended
    assert not decide([sheet(4)], RUBRIC, 1000, False).external_funding_recommended, "not sought"
    assert not decide([sheet(2)], RUBRIC, 1_000_000, True).external_funding_recommended, "not approved"
    approved_low = [sheet(4), sheet(3)]  # 3.5: approved below the funding score
    assert not decide(approved_low, RUBRIC, 1000, True).external_funding_recommended
    assert decide(approved_low, RUBRIC, 250_000, True).external_funding_recommended, "large budget"
    assert "Recommended for external funding" in decide([sheet(4)], RUBRIC, 1000, True).rationale


def test_the_rationale_names_no_evaluator():
    e = Evaluation.open("p", 1, "learning", "T", 1000, False, ["helmi", "juha"], WHEN, WHEN)
    for name in ("helmi", "juha"):
        e = e.declare(name, False, None, WHEN, None).score(name, sheet(4), "fine", WHEN)
    e = e.conclude(RUBRIC, WHEN)
    assert "helmi" not in e.outcome.rationale and "juha" not in e.outcome.rationale
    assert "Weighted score 4.00" in e.outcome.rationale


# panels ------------------------------------------------------------------------------------
def test_the_least_loaded_are_assigned_with_ties_by_name():
    assert assign(["d", "c", "b", "a"], {"a": 2, "b": 0, "c": 0, "d": 1}, 3) == ["b", "c", "d"]
    assert assign(["b", "a"], {}, 3) == ["a", "b"], "a small panel gives what it has"
    assert assign(["a", "b", "c"], {}, 2, exclude={"a"}) == ["b", "c"]


@settings(max_examples=100, deadline=None)
@given(
    panel=st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True),
    n=st.integers(1, 5),
    proposals=st.integers(1, 40),
)
def test_assignment_keeps_the_panel_balanced(panel, n, proposals):
    load = {m: 0 for m in panel}
    for _ in range(proposals):
        chosen = assign(panel, load, n)
        assert len(chosen) == min(n, len(panel)) and len(set(chosen)) == len(chosen)
        for m in chosen:
            load[m] += 1
        assert max(load.values()) - min(load.values()) <= 1


# conflicts and scores ------------------------------------------------------------------------
def opened(*evaluators) -> Evaluation:
    return Evaluation.open("p", 1, "learning", "T", 1000, False, list(evaluators), WHEN, WHEN + timedelta(days=14))


def test_a_conflicted_evaluator_is_recused_and_replaced():
    e = opened("helmi", "juha").declare("helmi", True, "my sister runs the company", WHEN, "kaisa")
    assert e.evaluators == ["juha", "kaisa"]
    assert [a.evaluator for a in e.assignments if a.recused] == ["helmi"]
    with pytest.raises(NotAssigned):
        e.declare("helmi", False, None, WHEN, None)
    with pytest.raises(NotAssigned):
        e.score("helmi", sheet(5), None, WHEN)


def test_scoring_needs_a_declaration_first_and_happens_once():
    e = opened("helmi")
    with pytest.raises(EvaluationRefused, match="declare"):
        e.score("helmi", sheet(3), None, WHEN)
    e = e.declare("helmi", False, None, WHEN, None)
    with pytest.raises(EvaluationRefused):
        e.declare("helmi", False, None, WHEN, None)
    e = e.score("helmi", sheet(3), None, WHEN)
    with pytest.raises(EvaluationRefused, match="already scored"):
        e.score("helmi", sheet(4), None, WHEN)


def test_an_unassigned_evaluator_can_do_nothing():
    with pytest.raises(NotAssigned):
        opened("helmi").declare("pekka", False, None, WHEN, None)


@pytest.mark.parametrize(
    "scores, field",
    [
        ({**sheet(3), "impact": 6}, "impact"),
        ({**sheet(3), "impact": -1}, "impact"),
        ({k: v for k, v in sheet(3).items() if k != "feasibility"}, "feasibility"),
        ({**sheet(3), "beauty": 5}, "beauty"),
    ],
)
def test_scores_outside_the_rubric_are_refused_naming_the_criterion(scores, field):
    e = opened("helmi").declare("helmi", False, None, WHEN, None)
    with pytest.raises(InvalidScores) as caught:
        e.score("helmi", scores, None, WHEN)
    assert field in caught.value.fields


def test_scores_stay_blind_until_every_assigned_evaluator_has_scored():
    e = opened("helmi", "juha")
    e = e.declare("helmi", False, None, WHEN, None).score("helmi", sheet(4), "good", WHEN)
    mine = e.view("helmi")
    assert not mine["scores_revealed"]
    assert [a["evaluator"] for a in mine["assignments"]] == ["helmi"] and mine["assignments"][0]["scores"]
    theirs = e.view("juha")
    assert [a["scores"] for a in theirs["assignments"]] == [None]
    manager = e.view(manager=True)
    assert {a["evaluator"]: (a["scored"], a["scores"]) for a in manager["assignments"]} == {
        "helmi": (True, None),
        "juha": (False, None),
    }
    assert "assignments" not in e.view("someone else")
    e = e.declare("juha", False, None, WHEN, None).score("juha", sheet(2), None, WHEN)
    assert e.at_quorum
    revealed = e.view("juha")
    assert revealed["scores_revealed"] and {a["evaluator"]: a["scores"]["impact"] for a in revealed["assignments"]} == {
        "helmi": 4,
        "juha": 2,
    }


def test_quorum_counts_only_evaluators_not_recused():
    e = opened("helmi", "juha").declare("helmi", False, None, WHEN, None).score("helmi", sheet(4), None, WHEN)
    assert not e.at_quorum
    e = e.declare("juha", True, "conflict", WHEN, None)  # nobody left to replace juha
    assert e.at_quorum
    assert e.conclude(RUBRIC, WHEN).outcome.decision is Decision.approved


def test_overdue_is_once_and_only_while_open():
    e = opened("helmi")
    assert not e.is_overdue(WHEN) and e.is_overdue(WHEN + timedelta(days=14))
    assert not e.mark_overdue(WHEN).is_overdue(WHEN + timedelta(days=30))
    assert not e.close(WHEN).is_overdue(WHEN + timedelta(days=30))
