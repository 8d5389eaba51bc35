"""Use cases of the evaluation service: message first, then the unit of work (and the configuration)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from kokeilu.contracts import CloudEvent, utcnow
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import EvaluationDecided, EvaluationOpened, EvaluationOverdue, ScreeningCompleted
from kokeilu.contracts.proposals import ProposalRevised, ProposalStatus, ProposalStatusChanged, ProposalSubmitted

from .domain import Evaluation, UnknownEvaluation, assign
from .ports import EvaluationUnitOfWork
from .screening import ScreeningPolicy, screen
from .settings import Workflow

CONSUMER = "evaluation"
# Held by whatever reads the open proposals or the evaluators' workload to decide (UnitOfWork.lock).
SCREENING_LOCK = "evaluation.screening-and-panels"
# A proposal in one of these states is no longer open: the duplicate rule ignores it.
CLOSED = {ProposalStatus.screening_failed, ProposalStatus.rejected, ProposalStatus.completed, ProposalStatus.withdrawn}


class Figures(Protocol):
    """What the use cases report of what happened, after it is committed: the service passes its
    metrics module, which has these functions (a module satisfies this Protocol)."""

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Time a proposal spent in screening or in evaluation."""
        ...

    def count_decision(self, decision: str, disagreement: bool) -> None:
        """A panel's decision."""
        ...

    def count_overdue(self, n: int) -> None:
        """Evaluations that went past their SLA just now."""
        ...


class Uncounted:
    """Figures that count nothing (the default: unit tests of the use cases)."""

    @staticmethod
    def observe_stage(stage: str, seconds: float) -> None:
        """Time a proposal spent in screening or in evaluation."""

    @staticmethod
    def count_decision(decision: str, disagreement: bool) -> None:
        """A panel's decision."""

    @staticmethod
    def count_overdue(n: int) -> None:
        """Evaluations that went past their SLA just now."""


UNCOUNTED: Figures = Uncounted()


# proposals' events ---------------------------------------------------------------------------
ProposalEvent = ProposalSubmitted | ProposalRevised | ProposalStatusChanged


def on_proposal_submitted(
    event: CloudEvent,
    proposal: ProposalSubmitted,
    uow: EvaluationUnitOfWork,
    policy: ScreeningPolicy,
    workflow: Workflow | None = None,
    figures: Figures = UNCOUNTED,
) -> str:
    return on_proposal_events([(event, proposal)], uow, policy, workflow, figures)[0]


def on_proposal_revised(
    event: CloudEvent,
    revised: ProposalRevised,
    uow: EvaluationUnitOfWork,
    policy: ScreeningPolicy,
    workflow: Workflow | None = None,
    figures: Figures = UNCOUNTED,
) -> str:
    """A revision is screened again and, when it passes, evaluated by a new panel."""
    return on_proposal_events([(event, revised)], uow, policy, workflow, figures)[0]


def on_status_changed(event: CloudEvent, change: ProposalStatusChanged, uow: EvaluationUnitOfWork) -> str:
    """A closed proposal stops counting for the duplicate rule; a withdrawn one's evaluation closes."""
    return on_proposal_events([(event, change)], uow, None)[0]


def on_proposal_events(
    items: Sequence[tuple[CloudEvent, ProposalEvent]],
    uow: EvaluationUnitOfWork,
    policy: ScreeningPolicy | None,
    workflow: Workflow | None = None,
    figures: Figures = UNCOUNTED,
) -> list[str]:
    """A run of proposals' events applied in order, each once, in one unit of work (the
    consumer's bulk method): a submission or revision is screened and, when it passes, given a
    panel; a proposal that closes stops counting for the duplicate rule (a withdrawn one's
    evaluation closes). One read of the inbox, of the evaluators' workload, and one write of
    each table for the whole run (the store's repositories hold their writes until commit, and
    answer later reads in the run as if written). `policy` may be None only for a run without
    submissions or revisions. What each returns: "applied", "duplicate" or "ignored" (a status
    change that does not close the proposal)."""
    wf = workflow or Workflow()
    outcomes = ["ignored"] * len(items)
    todo = [
        i
        for i, (_, data) in enumerate(items)
        if not isinstance(data, ProposalStatusChanged) or data.to_status in CLOSED
    ]
    if not todo:
        return outcomes
    now = utcnow()
    screened: list[float] = []
    with uow:
        fresh = uow.first_times(CONSUMER, [items[i][0] for i in todo])
        new = [i for i, first in zip(todo, fresh, strict=True) if first]
        for i, first in zip(todo, fresh, strict=True):
            outcomes[i] = "applied" if first else "duplicate"
        if any(not isinstance(items[i][1], ProposalStatusChanged) for i in new):
            # The duplicate rule and the panel's workload read what other screenings write:
            # instances screening at the same moment take turns, or twins would both pass and
            # two panels be chosen from one workload. Taken before any row lock of the run.
            uow.lock(SCREENING_LOCK)
        # Each proposal's flow, for the evaluators' actions and the overdue clock later (rows:
        # after the lock); what the run records about it is made in its event's span.
        uow.remember_flows(
            [(items[i][1].proposal_id, items[i][0]) for i in new if not isinstance(items[i][1], ProposalStatusChanged)]
        )
        for i in new:
            event, data = items[i]
            if isinstance(data, ProposalStatusChanged):
                _close(uow, data, now)
                continue
            if policy is None:
                raise TypeError("a run with submissions or revisions needs the screening policy")
            if isinstance(data, ProposalRevised):
                content = ProposalSubmitted(**data.model_dump(exclude={"revised_at"}), submitted_at=data.revised_at)
            else:
                content = data
            _screen_and_open(event, content, uow, policy, wf, now)
            screened.append((now - content.submitted_at).total_seconds())
        uow.applied(CONSUMER, [items[i][0] for i in new])
        uow.commit()
    for seconds in screened:
        figures.observe_stage("screening", seconds)
    return outcomes


def _close(uow: EvaluationUnitOfWork, change: ProposalStatusChanged, now: datetime) -> None:
    uow.known.close(change.proposal_id, now)
    if change.to_status is ProposalStatus.withdrawn:
        current = uow.evaluations.current(change.proposal_id, for_update=True)
        if current is not None and current.status == "open":
            uow.evaluations.save(current.close(now))


def _screen_and_open(
    event: CloudEvent,
    proposal: ProposalSubmitted,
    uow: EvaluationUnitOfWork,
    policy: ScreeningPolicy,
    wf: Workflow,
    now: datetime,
) -> None:
    """One submission or revision screened, and given a panel when it passes (in the caller's
    unit of work, which holds the screening lock)."""
    pid = proposal.proposal_id
    # Only the open proposals the store's index finds similar enough to matter (not every open one).
    similarity = policy.duplicate_title_similarity
    candidates = uow.known.near_duplicate_candidates(proposal.title, similarity) if similarity else []
    failures = screen(proposal, policy, candidates)
    outcome = ScreeningCompleted(
        proposal_id=pid,
        passed=not failures,
        failed_rules=failures,
        screened_at=now,
        focus_area=proposal.focus_area.value,
    )
    uow.screenings.add(outcome, proposal.focus_area.value, proposal.title, proposal.submitted_at, proposal.revision)
    uow.known.upsert(pid, proposal.title, not failures, now)
    uow.emit(types.SCREENING_COMPLETED, outcome, pid, event)
    if failures:
        return
    current = uow.evaluations.current(pid)
    if current is not None and current.revision >= proposal.revision:
        return
    if current is not None:
        uow.evaluations.save(current.close(now))
    panel = wf.panels.get(proposal.focus_area.value, [])
    evaluators = assign(panel, uow.evaluations.workload(), wf.evaluators_per_proposal)
    opened = Evaluation.open(
        pid,
        proposal.revision,
        proposal.focus_area.value,
        proposal.title,
        proposal.budget_eur,
        proposal.external_funding_sought,
        evaluators,
        now,
        now + timedelta(hours=wf.evaluation_sla_hours),
    )
    uow.evaluations.add(opened)
    uow.emit(
        types.EVALUATION_OPENED,
        EvaluationOpened(
            proposal_id=pid,
            focus_area=opened.focus_area,
            evaluators=evaluators,
            opened_at=now,
            due_at=opened.due_at,
        ),
        pid,
        event,
    )


# evaluators' actions -------------------------------------------------------------------------
def _current(uow: EvaluationUnitOfWork, proposal_id: str) -> Evaluation:
    """The evaluation an evaluator acts on; what the action publishes joins the proposal's flow."""
    evaluation = uow.evaluations.current(proposal_id, for_update=True)
    if evaluation is None:
        raise UnknownEvaluation(f"no evaluation for proposal {proposal_id}")
    uow.join_flow(proposal_id)
    return evaluation


def _conclude_if_quorum(uow: EvaluationUnitOfWork, evaluation: Evaluation, wf: Workflow, now: datetime) -> Evaluation:
    if evaluation.status != "open" or not evaluation.at_quorum:
        return evaluation
    decided = evaluation.conclude(wf.rubric, now)
    o = decided.outcome
    assert o is not None  # a concluded evaluation has its outcome
    uow.emit(
        types.EVALUATION_DECIDED,
        EvaluationDecided(
            proposal_id=decided.proposal_id,
            decision=o.decision,
            weighted_score=o.weighted_score,
            threshold=wf.rubric.approve_at,
            criterion_averages=o.criterion_averages,
            rationale=o.rationale,
            disagreement=o.disagreement,
            external_funding_recommended=o.external_funding_recommended,
            decided_at=now,
            focus_area=decided.focus_area,
        ),
        decided.proposal_id,
    )
    uow.known.upsert(decided.proposal_id, decided.title, o.decision.value != "rejected", now)
    return decided


def _after(decided: Evaluation, before: Evaluation, figures: Figures) -> None:
    if (
        decided.status == "decided"
        and before.status == "open"
        and decided.decided_at is not None  # set, with the outcome, by conclude()
        and decided.outcome is not None
    ):
        figures.observe_stage("evaluation", (decided.decided_at - decided.opened_at).total_seconds())
        figures.count_decision(decided.outcome.decision.value, decided.outcome.disagreement)


def declare_conflict(
    proposal_id: str,
    evaluator: str,
    conflict: bool,
    reason: str | None,
    uow: EvaluationUnitOfWork,
    wf: Workflow,
    figures: Figures = UNCOUNTED,
) -> Evaluation:
    now = utcnow()
    with uow:
        if conflict:  # a replacement is chosen from the workload: in turn with screenings
            uow.lock(SCREENING_LOCK)
        before = _current(uow, proposal_id)
        before.assignment(evaluator)  # NotAssigned before anything else
        replacement = None
        if conflict:
            taken = {a.evaluator for a in before.assignments}
            chosen = assign(wf.panels.get(before.focus_area, []), uow.evaluations.workload(), 1, exclude=taken)
            replacement = chosen[0] if chosen else None
        after = _conclude_if_quorum(uow, before.declare(evaluator, conflict, reason, now, replacement), wf, now)
        uow.evaluations.save(after)
        uow.commit()
    _after(after, before, figures)
    return after


def submit_scores(
    proposal_id: str,
    evaluator: str,
    scores: dict[str, int],
    comment: str | None,
    uow: EvaluationUnitOfWork,
    wf: Workflow,
    figures: Figures = UNCOUNTED,
) -> Evaluation:
    now = utcnow()
    with uow:
        before = _current(uow, proposal_id)
        after = _conclude_if_quorum(uow, before.score(evaluator, scores, comment, now), wf, now)
        uow.evaluations.save(after)
        uow.commit()
    _after(after, before, figures)
    return after


def flag_overdue(uow: EvaluationUnitOfWork, now: datetime | None = None, figures: Figures = UNCOUNTED) -> int:
    """Emit evaluation.overdue once for each open evaluation past its due time."""
    now = now or utcnow()
    flagged = 0
    with uow:
        for evaluation in uow.evaluations.open_ones(due_before=now):
            if not uow.evaluations.mark_overdue(evaluation, now):
                continue  # another instance flagged it first
            sla = (evaluation.due_at - evaluation.opened_at).total_seconds() / 3600
            uow.join_flow(evaluation.proposal_id)
            uow.emit(
                types.EVALUATION_OVERDUE,
                EvaluationOverdue(
                    proposal_id=evaluation.proposal_id,
                    opened_at=evaluation.opened_at,
                    due_at=evaluation.due_at,
                    sla_hours=round(sla, 6),
                ),
                evaluation.proposal_id,
            )
            flagged += 1
        uow.commit()
    figures.count_overdue(flagged)
    return flagged


# queries -------------------------------------------------------------------------------------
def get_evaluation(
    proposal_id: str, uow: EvaluationUnitOfWork, viewer: str | None = None, manager: bool = False
) -> dict[str, Any]:
    """The proposal's screening and current evaluation; UnknownEvaluation when it has neither."""
    with uow:
        screening = uow.screenings.get(proposal_id)
        evaluation = uow.evaluations.current(proposal_id)
    if screening is None and evaluation is None:
        raise UnknownEvaluation(f"no evaluation for proposal {proposal_id}")
    body = screening or {"proposal_id": proposal_id}
    body["evaluation"] = evaluation.view(viewer, manager) if evaluation else None
    return body


def queue(evaluator: str, uow: EvaluationUnitOfWork) -> list[dict[str, Any]]:
    with uow:
        items = uow.evaluations.queue(evaluator)
    return [e.view(evaluator) for e in items]


def open_evaluations(uow: EvaluationUnitOfWork, overdue_only: bool = False) -> list[dict[str, Any]]:
    with uow:
        items = uow.evaluations.open_ones()
    return [e.view(manager=True) for e in items if e.overdue_at is not None or not overdue_only]
