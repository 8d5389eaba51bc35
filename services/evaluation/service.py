"""The evaluation service: screens proposals, runs the panels and decides."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from kokeilu import service_base
from kokeilu.contracts import CloudEvent, topics
from kokeilu.contracts import catalog as types
from kokeilu.contracts.proposals import ProposalRevised, ProposalStatusChanged, ProposalSubmitted
from kokeilu.http import api
from kokeilu.http.entrypoint import ApiRequest
from kokeilu.kafka.consumer import consume
from kokeilu.platform import Figures, Store, timer

from . import handlers, metrics
from .api import (
    CONFLICT_EXAMPLE,
    ERRORS,
    MANAGE,
    SCORES_EXAMPLE,
    ConflictBody,
    EvaluationList,
    EvaluationListQuery,
    EvaluationView,
    ProposalEvaluationView,
    Queue,
    ScoresBody,
    is_manager,
)
from .settings import policy, workflow
from .store import EvaluationUnitOfWork

PROPOSAL_EVENTS = (types.PROPOSAL_SUBMITTED, types.PROPOSAL_REVISED, types.PROPOSAL_STATUS_CHANGED)


def _evaluator(request: ApiRequest) -> str:
    """The name of the request's principal (every route here is scoped: the request has one)."""
    principal = request.principal
    assert principal is not None
    return principal.name


class EvaluationService(service_base.PlatformService):
    name = "evaluation"
    uow: Callable[[], EvaluationUnitOfWork] = Store(EvaluationUnitOfWork)  # a factory, in a worker
    figures: handlers.Figures = Figures(metrics)  # deferred to the batch's commit in a consumer
    errors = ERRORS

    @api("GET", "/v1/evaluations/queue", scope="evaluation:write", response=Queue)
    def queue(self, request: ApiRequest) -> dict[str, Any]:
        """The open evaluations assigned to the token's evaluator."""
        return {"evaluator": _evaluator(request), "items": handlers.queue(_evaluator(request), self.uow())}

    @api("GET", "/v1/evaluations", scope=MANAGE, query=EvaluationListQuery, response=EvaluationList)
    def list_open(self, request: ApiRequest) -> dict[str, Any]:
        """Open evaluations (programme managers)."""
        overdue = request.args.get("overdue", "").lower() in ("1", "true", "yes")
        return {"items": handlers.open_evaluations(self.uow(), overdue)}

    @api("GET", "/v1/evaluations/<proposal_id>", scope="evaluation:read", response=ProposalEvaluationView)
    def get(self, request: ApiRequest, proposal_id: str) -> dict[str, Any]:
        """The evaluation of a proposal."""
        return handlers.get_evaluation(proposal_id, self.uow(), _evaluator(request), is_manager(request))

    @api(
        "POST",
        "/v1/evaluations/<proposal_id>/conflict",
        scope="evaluation:write",
        body=ConflictBody,
        response=EvaluationView,
        errors=(403, 409),
        example=CONFLICT_EXAMPLE,
    )
    def declare_conflict(self, request: ApiRequest, proposal_id: str, body: ConflictBody) -> dict[str, Any]:
        """Declare whether the token's evaluator has a conflict of interest (one who has is recused and replaced)."""
        e = handlers.declare_conflict(
            proposal_id, _evaluator(request), body.conflict, body.reason, self.uow(), workflow(), self.figures
        )
        return e.view(_evaluator(request), is_manager(request))

    @api(
        "POST",
        "/v1/evaluations/<proposal_id>/scores",
        scope="evaluation:write",
        body=ScoresBody,
        response=EvaluationView,
        errors=(403, 409),
        example=SCORES_EXAMPLE,
    )
    def submit_scores(self, request: ApiRequest, proposal_id: str, body: ScoresBody) -> dict[str, Any]:
        """Score a proposal on the rubric (0 to 5 per criterion); at quorum the panel decides."""
        e = handlers.submit_scores(
            proposal_id, _evaluator(request), body.scores, body.comment, self.uow(), workflow(), self.figures
        )
        return e.view(_evaluator(request), is_manager(request))

    @consume(topics.PROPOSALS, types=PROPOSAL_EVENTS, bulk=dict.fromkeys(PROPOSAL_EVENTS, "on_proposal_events"))
    def on_proposal_event(self, event: CloudEvent, data: BaseModel) -> str:
        """One record at a time: what the consumer falls back to when a run fails as a whole."""
        if isinstance(data, ProposalSubmitted):
            return handlers.on_proposal_submitted(event, data, self.uow(), policy(), workflow(), self.figures)
        if isinstance(data, ProposalRevised):
            return handlers.on_proposal_revised(event, data, self.uow(), policy(), workflow(), self.figures)
        if isinstance(data, ProposalStatusChanged):
            return handlers.on_status_changed(event, data, self.uow())
        return "ignored"

    def on_proposal_events(self, items: Sequence[tuple[CloudEvent, handlers.ProposalEvent]]) -> list[str]:
        """The consumer's bulk method: a run of the proposals' events, applied in order at once."""
        return handlers.on_proposal_events(items, self.uow(), policy(), workflow(), self.figures)

    @timer(interval=workflow().overdue_check_seconds)
    def check_overdue(self) -> None:
        handlers.flag_overdue(self.uow(), figures=self.figures)

    def refresh_metrics(self) -> None:
        metrics.refresh(self.uow(), workflow().panels)
