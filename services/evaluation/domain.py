"""The evaluation of one proposal revision: panel, conflicts of interest, blind scores and the
decision by the rubric. No infrastructure here."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, Field, model_validator

from kokeilu.contracts.evaluation import Decision

CRITERIA = ("strategy_fit", "feasibility", "impact", "sustainability", "reuse_scalability")
CRITERION_NAMES = {
    "strategy_fit": "fit with the city strategy",
    "feasibility": "feasibility",
    "impact": "impact",
    "sustainability": "sustainability",
    "reuse_scalability": "reuse and scalability",
}
MAX_SCORE = 5


class Rubric(BaseModel):
    """Weights of the criteria and the decision rules (KOKEILU_RUBRIC, JSON)."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "strategy_fit": 0.30,
            "feasibility": 0.20,
            "impact": 0.20,
            "sustainability": 0.15,
            "reuse_scalability": 0.15,
        }
    )
    approve_at: float = 3.5  # weighted score >= this: approved
    revise_at: float = 2.5  # >= this (and below approve_at): revision requested; below: rejected
    disagreement_spread: int = 3  # max - min of any criterion >= this raises the disagreement flag
    external_funding_min_score: float = 4.0
    external_funding_min_budget_eur: float = 200_000

    @model_validator(mode="after")
    def _check(self) -> Self:
        if set(self.weights) != set(CRITERIA):
            raise ValueError(f"weights must name exactly the criteria {', '.join(CRITERIA)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("weights must be non-negative and not all zero")
        if self.revise_at > self.approve_at:
            raise ValueError("revise_at must not exceed approve_at")
        return self


class EvaluationRefused(Exception):
    """The step is not possible now (409)."""


class UnknownEvaluation(LookupError):
    """No evaluation of that proposal (404)."""


class NotAssigned(Exception):
    """The evaluator is not (or no longer) assigned to this evaluation (403)."""


class InvalidScores(ValueError):
    """Scores that do not fit the rubric (422); `fields` names each problem."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("scores do not fit the rubric: " + ", ".join(sorted(fields)))
        self.fields = fields


def assign(panel: list[str], load: dict[str, int], n: int, exclude: AbstractSet[str] = frozenset()) -> list[str]:
    """The `n` least-loaded panel members not excluded; ties go by name, so the choice is deterministic."""
    candidates = sorted((m for m in dict.fromkeys(panel) if m not in exclude), key=lambda m: (load.get(m, 0), m))
    return candidates[: max(0, n)]


def check_scores(scores: dict[str, int]) -> dict[str, int]:
    fields = {}
    for name in CRITERIA:
        if name not in scores:
            fields[name] = "missing"
    for name, value in scores.items():
        if name not in CRITERIA:
            fields[name] = "not a criterion of the rubric"
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SCORE:
            fields[name] = f"must be a whole number from 0 to {MAX_SCORE}"
    if fields:
        raise InvalidScores(fields)
    return dict(scores)


@dataclass(frozen=True)
class Assignment:
    evaluator: str
    assigned_at: datetime
    recused: bool = False
    conflict: bool | None = None  # None until declared
    conflict_reason: str | None = None
    declared_at: datetime | None = None
    scores: dict[str, int] | None = None
    comment: str | None = None
    scored_at: datetime | None = None

    @property
    def active(self) -> bool:
        return not self.recused


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    weighted_score: float
    criterion_averages: dict[str, float]
    disagreement: bool
    disagreement_on: tuple[str, ...]
    external_funding_recommended: bool
    rationale: str


def weighted(averages: dict[str, float], weights: dict[str, float]) -> float:
    return round(sum(weights[c] * averages[c] for c in CRITERIA) / sum(weights.values()), 6)


def decide(
    score_sheets: list[dict[str, int]], rubric: Rubric, budget_eur: float, external_funding_sought: bool
) -> Outcome:
    """The panel's decision from its score sheets (at least one)."""
    if not score_sheets:
        raise EvaluationRefused("no scores to decide on")
    averages = {c: round(sum(s[c] for s in score_sheets) / len(score_sheets), 6) for c in CRITERIA}
    score = weighted(averages, rubric.weights)
    if score >= rubric.approve_at:
        decision = Decision.approved
    elif score >= rubric.revise_at:
        decision = Decision.revision_requested
    else:
        decision = Decision.rejected
    spread_on = tuple(
        c
        for c in CRITERIA
        if max(s[c] for s in score_sheets) - min(s[c] for s in score_sheets) >= rubric.disagreement_spread
    )
    funding = (
        decision is Decision.approved
        and external_funding_sought
        and (score >= rubric.external_funding_min_score or budget_eur >= rubric.external_funding_min_budget_eur)
    )
    rationale = _rationale(decision, score, averages, len(score_sheets), rubric, spread_on, funding)
    return Outcome(
        decision,
        round(score, 3),
        {c: round(a, 3) for c, a in averages.items()},
        bool(spread_on),
        spread_on,
        funding,
        rationale,
    )


def _rationale(
    decision: Decision,
    score: float,
    averages: dict[str, float],
    n: int,
    rubric: Rubric,
    spread_on: tuple[str, ...],
    funding: bool,
) -> str:
    verdict = {
        Decision.approved: f"approved (at least {rubric.approve_at})",
        Decision.revision_requested: f"revision requested (at least {rubric.revise_at}, below {rubric.approve_at})",
        Decision.rejected: f"rejected (below {rubric.revise_at})",
    }[decision]
    ranked = sorted(CRITERIA, key=lambda c: (averages[c], c))
    text = f"Weighted score {score:.2f} of {MAX_SCORE} from {n} evaluator{'s' if n != 1 else ''}: {verdict}. "
    if f"{averages[ranked[0]]:.1f}" == f"{averages[ranked[-1]]:.1f}":  # a tie as shown: no strongest or weakest
        text += f"All criteria scored equally ({averages[ranked[0]]:.1f})."
    else:
        text += (
            f"Strongest: {CRITERION_NAMES[ranked[-1]]} ({averages[ranked[-1]]:.1f}); "
            f"weakest: {CRITERION_NAMES[ranked[0]]} ({averages[ranked[0]]:.1f})."
        )
    if spread_on:
        text += " The evaluators disagreed widely on " + ", ".join(CRITERION_NAMES[c] for c in spread_on) + "."
    if funding:
        text += " Recommended for external funding."
    return text


@dataclass(frozen=True)
class Evaluation:
    proposal_id: str
    revision: int
    focus_area: str
    title: str
    budget_eur: float
    external_funding_sought: bool
    opened_at: datetime
    due_at: datetime
    assignments: tuple[Assignment, ...] = ()
    status: str = "open"  # open | decided | closed (the proposal was withdrawn)
    overdue_at: datetime | None = None
    decided_at: datetime | None = None
    outcome: Outcome | None = None

    @classmethod
    def open(
        cls,
        proposal_id: str,
        revision: int,
        focus_area: str,
        title: str,
        budget_eur: float,
        external_funding_sought: bool,
        evaluators: list[str],
        now: datetime,
        due_at: datetime,
    ) -> Evaluation:
        return cls(
            proposal_id,
            revision,
            focus_area,
            title,
            budget_eur,
            external_funding_sought,
            now,
            due_at,
            tuple(Assignment(e, now) for e in evaluators),
        )

    @property
    def active(self) -> list[Assignment]:
        return [a for a in self.assignments if a.active]

    @property
    def evaluators(self) -> list[str]:
        return [a.evaluator for a in self.active]

    def assignment(self, evaluator: str) -> Assignment:
        for a in self.assignments:
            if a.evaluator == evaluator and a.active:
                return a
        raise NotAssigned(f"{evaluator} is not assigned to evaluate proposal {self.proposal_id}")

    def _open_check(self) -> None:
        if self.status != "open":
            raise EvaluationRefused(f"the evaluation of proposal {self.proposal_id} is {self.status}")

    def _with(self, updated: Assignment, *added: Assignment) -> Evaluation:
        kept = tuple(updated if (a.evaluator == updated.evaluator) else a for a in self.assignments)
        return replace(self, assignments=kept + added)

    def declare(
        self, evaluator: str, conflict: bool, reason: str | None, now: datetime, replacement: str | None
    ) -> Evaluation:
        """A declaration of conflict (or none); a conflicted evaluator is recused and `replacement`
        (chosen from the panel by the caller) assigned instead."""
        self._open_check()
        a = self.assignment(evaluator)
        if a.conflict is not None:
            raise EvaluationRefused(f"{evaluator} has already declared for proposal {self.proposal_id}")
        declared = replace(a, conflict=conflict, conflict_reason=reason, declared_at=now, recused=conflict)
        added = (Assignment(replacement, now),) if conflict and replacement else ()
        return self._with(declared, *added)

    def score(self, evaluator: str, scores: dict[str, int], comment: str | None, now: datetime) -> Evaluation:
        self._open_check()
        a = self.assignment(evaluator)
        if a.conflict is None:
            raise EvaluationRefused("declare a conflict of interest (or none) before scoring")
        if a.scores is not None:
            raise EvaluationRefused(f"{evaluator} has already scored proposal {self.proposal_id}")
        return self._with(replace(a, scores=check_scores(scores), comment=comment, scored_at=now))

    @property
    def at_quorum(self) -> bool:
        """Every assigned evaluator (recused ones aside) has scored."""
        return bool(self.active) and all(a.scores is not None for a in self.active)

    def conclude(self, rubric: Rubric, now: datetime) -> Evaluation:
        self._open_check()
        if not self.at_quorum:
            raise EvaluationRefused("not every assigned evaluator has scored")
        outcome = decide(
            [a.scores for a in self.active if a.scores is not None],
            rubric,
            self.budget_eur,
            self.external_funding_sought,
        )
        return replace(self, status="decided", decided_at=now, outcome=outcome)

    def close(self, now: datetime) -> Evaluation:
        return replace(self, status="closed", decided_at=now) if self.status == "open" else self

    def is_overdue(self, now: datetime) -> bool:
        return self.status == "open" and self.overdue_at is None and now >= self.due_at

    def mark_overdue(self, now: datetime) -> Evaluation:
        return replace(self, overdue_at=now)

    # what each reader may see -------------------------------------------------------------------
    def view(self, viewer: str | None = None, manager: bool = False) -> dict[str, Any]:
        """Scores stay blind until quorum: before it, an evaluator sees only their own sheet and a
        manager sees who has scored, never the numbers."""
        revealed = self.at_quorum or self.status == "decided"
        body = {
            "proposal_id": self.proposal_id,
            "revision": self.revision,
            "focus_area": self.focus_area,
            "title": self.title,
            "status": self.status,
            "opened_at": self.opened_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "overdue": self.overdue_at is not None,
            "scores_revealed": revealed,
            "criteria": list(CRITERIA),
            "scored": sum(1 for a in self.active if a.scores is not None),
            "assigned": len(self.active),
        }
        if manager or viewer in {a.evaluator for a in self.assignments}:
            body["assignments"] = [
                self._assignment_view(a, revealed or a.evaluator == viewer)
                for a in self.assignments
                if manager or a.evaluator == viewer or revealed
            ]
        if self.outcome is not None:
            o = self.outcome
            body["decision"] = {
                "decision": o.decision.value,
                "weighted_score": o.weighted_score,
                "criterion_averages": o.criterion_averages,
                "disagreement": o.disagreement,
                "external_funding_recommended": o.external_funding_recommended,
                "rationale": o.rationale,
                "decided_at": self.decided_at.isoformat() if self.decided_at is not None else None,
            }
        return body

    @staticmethod
    def _assignment_view(a: Assignment, show_scores: bool) -> dict[str, Any]:
        return {
            "evaluator": a.evaluator,
            "recused": a.recused,
            "conflict_declared": a.conflict is not None,
            "conflict": a.conflict,
            "scored": a.scores is not None,
            "scores": a.scores if show_scores else None,
            "comment": a.comment if show_scores else None,
        }
