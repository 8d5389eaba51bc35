"""The evaluation service's screening rules, each both ways, and the near-duplicate index the
duplicate rule looks candidates up by (the screening use case is in test_handlers.py)."""

from __future__ import annotations

from difflib import SequenceMatcher

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from rapidfuzz.distance import LCSseq

from kokeilu.contracts.proposals import Environment, FocusArea
from services.evaluation.screening import (
    RULES,
    ScreeningPolicy,
    budget_cap,
    completeness,
    duplicate,
    eligible_environment,
    lengths_within_reach,
    normalise_title,
    screen,
    title_keys,
    title_profile,
    within_reach,
)
from services.evaluation.settings import EvaluationSettings
from tests.builders import a_proposal_submitted
from tests.unit.fakes import FakeEvaluationUnitOfWork

POLICY = ScreeningPolicy()
CAPS = {FocusArea.smart_mobility: 250_000, FocusArea.learning: 100_000, FocusArea.sustainable_development: 150_000}
LONG_SUMMARY = "A six-month shuttle pilot between Kera station and the new housing blocks."


def failed_rules(proposal, policy=POLICY) -> list[str]:
    return [f.rule for f in screen(proposal, policy)]


# completeness ------------------------------------------------------------------------------
def test_a_complete_proposal_passes_completeness():
    assert completeness(a_proposal_submitted(), POLICY) is None


@pytest.mark.parametrize("hypothesis", [None, "", "   \n"])
def test_a_proposal_without_a_hypothesis_fails_completeness_naming_it(hypothesis):
    reason = completeness(a_proposal_submitted(hypothesis=hypothesis), POLICY)
    assert reason == "missing a hypothesis"


def test_a_proposal_without_kpis_fails_completeness_naming_them():
    reason = completeness(a_proposal_submitted(kpis=[]), POLICY)
    assert reason == "missing at least one KPI with baseline and target"


def test_a_too_short_summary_fails_completeness_naming_the_minimum():
    reason = completeness(a_proposal_submitted(summary="Short shuttle pilot."), POLICY)
    assert reason == f"missing a summary of at least {POLICY.min_summary_chars} characters"


def test_a_summary_padded_with_spaces_is_still_too_short():
    assert completeness(a_proposal_submitted(summary="Short shuttle pilot." + " " * 60), POLICY) is not None


def test_a_summary_of_exactly_the_minimum_passes():
    assert completeness(a_proposal_submitted(summary="x" * POLICY.min_summary_chars), POLICY) is None


def test_completeness_names_everything_missing_at_once():
    reason = completeness(a_proposal_submitted(hypothesis=None, kpis=[], summary="Too short."), POLICY)
    assert "a hypothesis" in reason
    assert "at least one KPI" in reason
    assert f"a summary of at least {POLICY.min_summary_chars} characters" in reason


# budget cap --------------------------------------------------------------------------------
@pytest.mark.parametrize("area, cap", CAPS.items(), ids=lambda v: getattr(v, "value", v))
def test_a_budget_at_or_below_the_cap_of_its_focus_area_passes(area, cap):
    assert budget_cap(a_proposal_submitted(focus_area=area, budget_eur=cap), POLICY) is None
    assert budget_cap(a_proposal_submitted(focus_area=area, budget_eur=cap - 1), POLICY) is None
    assert budget_cap(a_proposal_submitted(focus_area=area, budget_eur=0), POLICY) is None


@pytest.mark.parametrize("area, cap", CAPS.items(), ids=lambda v: getattr(v, "value", v))
def test_a_budget_over_the_cap_of_its_focus_area_fails_screening(area, cap):
    reason = budget_cap(a_proposal_submitted(focus_area=area, budget_eur=cap + 1), POLICY)
    assert reason is not None
    assert area.value in reason
    assert f"{cap:,.0f}" in reason


def test_the_cap_is_that_of_the_proposals_own_focus_area():
    budget = 200_000  # over the learning cap, under the smart mobility one
    assert failed_rules(a_proposal_submitted(focus_area="learning", budget_eur=budget)) == ["budget_cap"]
    assert failed_rules(a_proposal_submitted(focus_area="smart_mobility", budget_eur=budget)) == []


def test_a_configured_cap_replaces_the_default():
    policy = ScreeningPolicy(budget_cap_eur={**CAPS, FocusArea.learning: 80_000})
    assert budget_cap(a_proposal_submitted(focus_area="learning", budget_eur=90_000), policy) is not None
    assert budget_cap(a_proposal_submitted(focus_area="learning", budget_eur=80_000), policy) is None


def test_configuring_one_focus_areas_cap_keeps_the_caps_of_the_others():
    # The shape KOKEILU_SCREENING_POLICY gives (services/evaluation/settings.py): only one area's cap.
    policy = ScreeningPolicy.model_validate({"budget_cap_eur": {"learning": 80_000}})
    assert budget_cap(a_proposal_submitted(focus_area="smart_mobility", budget_eur=50_000_000), policy) is not None
    assert policy.budget_cap_eur == {**CAPS, FocusArea.learning: 80_000}


def test_the_environment_can_set_one_focus_areas_cap(monkeypatch):
    monkeypatch.setenv("KOKEILU_SCREENING_POLICY", '{"budget_cap_eur": {"sustainable_development": 90000}}')
    policy = EvaluationSettings().screening_policy
    assert policy.budget_cap_eur == {**CAPS, FocusArea.sustainable_development: 90_000}
    assert (
        budget_cap(a_proposal_submitted(focus_area="learning", budget_eur=CAPS[FocusArea.learning] + 1), policy)
        is not None
    )


def test_a_cap_for_an_unknown_focus_area_is_refused():
    with pytest.raises(ValidationError):
        ScreeningPolicy.model_validate({"budget_cap_eur": {"space_travel": 1}})


# eligible environment ----------------------------------------------------------------------
def test_every_environment_is_eligible_by_default():
    for env in Environment:
        assert eligible_environment(a_proposal_submitted(environment=env), POLICY) is None


def test_a_proposal_in_an_environment_the_policy_excludes_fails_naming_the_open_ones():
    policy = ScreeningPolicy(eligible_environments=set(Environment) - {Environment.waterfront_walkway})
    reason = eligible_environment(a_proposal_submitted(environment="waterfront_walkway"), policy)
    assert reason is not None
    assert "waterfront_walkway is not open" in reason
    assert "kera" in reason and "west_metro" in reason
    assert eligible_environment(a_proposal_submitted(environment="kera"), policy) is None


# screen ------------------------------------------------------------------------------------
def test_a_good_proposal_passes_every_rule():
    assert screen(a_proposal_submitted(), POLICY) == []


def test_screen_returns_every_failed_rule_not_just_the_first():
    policy = ScreeningPolicy(eligible_environments={Environment.school})
    bad = a_proposal_submitted(
        "p-1", hypothesis=None, focus_area="learning", budget_eur=1_000_000, environment="kera", title="Kera shuttle"
    )
    failures = screen(bad, policy, [("p-9", "Kera shuttle!")])
    assert [f.rule for f in failures] == ["completeness", "budget_cap", "eligible_environment", "duplicate"]
    assert all(f.reason for f in failures)


# duplicate ------------------------------------------------------------------------------------
READING = "Reading buddies at Kera school"


def test_a_near_identical_title_of_an_open_proposal_is_a_duplicate():
    others = [("p-2", "Reading Buddies at Kera School!"), ("p-3", "Solar benches on the Waterfront Walkway")]
    reason = duplicate(a_proposal_submitted("p-1", title=READING), POLICY, others)
    assert "p-2" in reason and "p-3" not in reason


def test_a_different_title_or_the_proposal_itself_is_no_duplicate():
    proposal = a_proposal_submitted("p-1", title=READING)
    assert duplicate(proposal, POLICY, [("p-2", "Solar benches on the Waterfront Walkway")]) is None
    assert duplicate(proposal, POLICY, [("p-1", READING)]) is None
    assert duplicate(proposal, ScreeningPolicy(duplicate_title_similarity=None), [("p-2", READING)]) is None


def test_the_similarity_threshold_is_configurable():
    proposal, others = a_proposal_submitted("p-1", title=READING), [("p-2", "Reading buddies at Espoo schools")]
    assert duplicate(proposal, POLICY, others) is None
    assert duplicate(proposal, ScreeningPolicy(duplicate_title_similarity=0.7), others) is not None


def test_titles_are_normalised_before_comparing():
    assert normalise_title("  Reading—BUDDIES,  at Kera   school. ") == "reading buddies at kera school"


@settings(max_examples=100, deadline=None)
@given(
    hypothesis=st.sampled_from([None, "", "A shuttle raises rail use."]),
    kpis=st.booleans(),
    summary=st.sampled_from(["Too short.", LONG_SUMMARY]),
    area=st.sampled_from(list(FocusArea)),
    budget=st.floats(min_value=0, max_value=1_000_000, allow_nan=False),
    env=st.sampled_from(list(Environment)),
    open_envs=st.sets(st.sampled_from(list(Environment))),
)
def test_screen_fails_exactly_the_rules_that_fail_on_their_own(hypothesis, kpis, summary, area, budget, env, open_envs):
    policy = ScreeningPolicy(eligible_environments=open_envs)
    proposal = a_proposal_submitted(
        hypothesis=hypothesis,
        summary=summary,
        focus_area=area,
        budget_eur=budget,
        environment=env,
        **({} if kpis else {"kpis": []}),
    )
    expected = [name for name, rule in RULES.items() if rule(proposal, policy)]
    assert failed_rules(proposal, policy) == expected
    assert ("budget_cap" in expected) == (budget > CAPS[area])
    assert ("eligible_environment" in expected) == (env not in open_envs)


# The near-duplicate index (title_keys): the store looks candidates up by these keys ------------
TITLES = [
    "Autonomous shuttle feeder for Kera station",
    "Smart street lighting on the Waterfront Walkway",
    "School meal waste tracking in Tapiola",
    "E-scooter parking hubs along the West Metro",
    "Stormwater sensors in Leppävaara",
    "Älykäs katuvalaistus Matinkylässä asukkaille",
    "Kouluruoan hävikin seuranta Espoonlahden kouluissa",
    "Library robot tutors for first graders",
    "Snow-melt cycle lanes in Otaniemi",
    "Heat pump retrofit pilot for the Kera school",
    "Demand responsive transit in Kalajärvi",
    "Air quality monitoring at metro stations",
    "Harbour sauna rafts with local companies",
    "VR history lessons at Olari school",
    "Robottibussi Keran asemalta uusille asuinalueille",
    "Green roof pilot on the Espoo cultural centre",
]


def edits(title: str, rnd) -> list[str]:
    """Resubmissions as people make them: a typo, a word added, dropped or changed, two typos,
    another case and punctuation."""
    words = title.split()
    i, j = rnd.randrange(len(title)), rnd.randrange(len(title))
    w = rnd.randrange(len(words))
    return [
        title[:i] + "x" + title[i + 1 :],
        title + " 2027",
        " ".join(words[:w] + ["uusi"] + words[w:]),
        " ".join(words[:w] + words[w + 1 :]),
        " ".join(words[:w] + ["new"] + words[w + 1 :]),
        (title[:i] + "q" + title[i + 1 :])[:j] + "z" + (title[:i] + "q" + title[i + 1 :])[j + 1 :],
        title.upper() + "!",
        title.replace(" ", " - ", 1),
    ]


def test_a_resubmission_near_identical_to_an_open_title_shares_an_index_key():
    import random

    rnd = random.Random(20261128)
    checked = 0
    for title in TITLES:
        keys = set(title_keys(title))
        for _ in range(20):
            for edited in edits(title, rnd):
                if duplicate_ratio(title, edited) >= 0.9:
                    checked += 1
                    assert keys & set(title_keys(edited)), (title, edited)
    assert checked > 1500


def test_titles_identical_once_normalised_always_share_the_exact_key():
    assert title_keys("Kera: SHUTTLE, feeder!")[-1] == title_keys("kera shuttle feeder")[-1]


def test_unrelated_titles_share_no_index_key():
    shared = [(a, b) for n, a in enumerate(TITLES) for b in TITLES[n + 1 :] if set(title_keys(a)) & set(title_keys(b))]
    assert shared == []


def test_the_rule_finds_through_the_index_what_it_finds_among_every_open_proposal():
    import random

    rnd = random.Random(7)
    uow = FakeEvaluationUnitOfWork()
    with uow:
        for n, title in enumerate(TITLES):
            uow.known.upsert(f"p{n}", title, True, None)
        uow.commit()
    every = [(f"p{n}", t) for n, t in enumerate(TITLES)]
    for title in TITLES:
        for edited in edits(title, rnd):
            proposal = a_proposal_submitted(title=edited)
            with uow:
                candidates = uow.known.near_duplicate_candidates(edited, POLICY.duplicate_title_similarity)
            assert duplicate(proposal, POLICY, candidates) == duplicate(proposal, POLICY, every), edited


# within_reach: the candidates the profiles rule out before their titles are read ------------
def within(a: str, b: str, similarity: float) -> bool:
    return within_reach(title_profile(a), [title_profile(b)], similarity) == [True]


# Titles with a few letters edited (to reach high ratios), long repetitive ones (letter counts
# of 255 and more), letters outside a-z, digits and punctuation.
title_text = st.builds(
    lambda part, times: part * times, st.text(alphabet="aaeikst ÄäöÅß0ﬃ,-", max_size=40), st.integers(1, 15)
)


@settings(max_examples=500, deadline=None)
@given(title=title_text, edits=st.lists(st.tuples(st.integers(0, 600), st.sampled_from("aqäö 1-")), max_size=6))
@example(title="a" * 300, edits=[])
@example(title="Kera " + "ö" * 260, edits=[(3, "q")])
def test_the_profiles_never_rule_out_a_title_as_similar_as_difflib_finds_it(title, edits):
    edited = title
    for at, char in edits:
        edited = edited[:at] + char + edited[at + 1 :]
    # quick_ratio (letters in common, unjunked) is never below the ratio: the bound must not be
    # below either.
    a, b = normalise_title(title), normalise_title(edited)
    assert within(title, edited, SequenceMatcher(None, a, b).quick_ratio())
    assert within(edited, title, SequenceMatcher(None, b, a).quick_ratio())


def test_the_profiles_never_rule_out_a_resubmission():
    import random

    rnd = random.Random(20261128)
    for title in TITLES:
        for _ in range(20):
            for edited in edits(title, rnd):
                assert within(title, edited, duplicate_ratio(title, edited)), (title, edited)


def test_the_profiles_rule_out_titles_of_other_lengths_or_letters():
    title = "Autonomous shuttle feeder for Kera station"
    assert not within(title, title + " and the new housing blocks", 0.9)  # lengths alone
    assert not within(title, "Autonomous shuttle feeder: Kivenlahti, Soukka", 0.9)  # letters
    assert within(title, "Autonomous shuttle feeder: Kivenlahti, Soukka", 0.8)
    assert within("", "", 1.0)  # two empty titles are identical for difflib (ratio 1)


@settings(max_examples=500, deadline=None)
@given(
    length=st.integers(0, 600),
    other=st.integers(0, 600),
    similarity=st.floats(0, 1) | st.sampled_from([0.9, 0.5, 1.0, 0.0]),
)
def test_the_lengths_within_reach_keep_every_length_difflibs_real_quick_ratio_keeps(length, other, similarity):
    shortest, longest = lengths_within_reach(length, similarity)
    total = length + other
    real_quick_ratio = 2.0 * min(length, other) / total if total else 1.0
    assert (shortest <= other <= longest) or real_quick_ratio < similarity


def test_the_lengths_within_reach_leave_out_what_cannot_reach():
    assert lengths_within_reach(100, 0.9) == (80, 124)  # exactly 81.8 and 122.2
    assert lengths_within_reach(100, 0.0) == (0, 2**31 - 1)


def test_within_reach_answers_for_each_candidate_in_order():
    title = "Stormwater sensors in Leppävaara"
    others = [title_profile(t) for t in ("Stormwater sensors in Leppavaara", "Library robot tutors", title)]
    assert within_reach(title_profile(title), others, 0.9) == [True, False, True]
    assert within_reach(title_profile(title), [], 0.9) == []


def duplicate_ratio(a: str, b: str) -> float:
    from difflib import SequenceMatcher

    return SequenceMatcher(None, normalise_title(a), normalise_title(b)).ratio()


# The longest common subsequence, the bound `duplicate` checks before difflib's ratio ----------
def longest_common_subsequence(a: str, b: str) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal, row[0] = 0, 0
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


@settings(max_examples=300, deadline=None)
@given(a=st.text(alphabet="abcäж ", max_size=80), b=st.text(alphabet="abcäж ", max_size=80))
def test_rapidfuzz_lcsseq_is_the_longest_common_subsequence_of_letters(a, b):
    # What `duplicate` takes it for (also with letters outside ASCII).
    assert LCSseq.similarity(b, a) == LCSseq.similarity(a, b) == longest_common_subsequence(a, b)


@settings(max_examples=300, deadline=None)
@given(title=title_text, edits=st.lists(st.tuples(st.integers(0, 600), st.sampled_from("aqäö 1-")), max_size=6))
def test_the_subsequence_bound_is_never_below_difflibs_ratio(title, edits):
    edited = title
    for at, char in edits:
        edited = edited[:at] + char + edited[at + 1 :]
    a, b = normalise_title(edited), normalise_title(title)
    if a or b:
        assert 2.0 * LCSseq.similarity(b, a) / (len(a) + len(b)) >= duplicate_ratio(edited, title)


def test_index_rows_without_a_profile_stay_candidates_beside_rows_ruled_out():
    # What the store does with the rows under a title's keys: a row written by the release
    # before 0006 (no profile) is kept, one whose profile rules it out is not, each id once.
    from services.evaluation.store import _reachable_ids

    title = "Stormwater sensors in Leppävaara"
    mine = title_profile(title)
    alike, far = title_profile("Stormwater sensors in Leppavaara"), title_profile("Library robot tutors")
    rows = [
        ("alike", alike[0], alike[1]),
        ("far", far[0], far[1]),
        ("old", None, None),
        ("alike", alike[0], memoryview(alike[1])),  # psycopg2's bytea, under a second key
    ]
    assert _reachable_ids(mine, rows, 0.9) == ["alike", "old"]
    assert _reachable_ids(mine, [r for r in rows if r[0] != "old"], 0.9) == ["alike"]
    assert _reachable_ids(mine, [], 0.9) == []
