"""The proposals service: owns proposals and pilots; consumes intake and evaluation events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from werkzeug.wrappers import Response

from kokeilu import service_base
from kokeilu.contracts import CloudEvent, topics
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import EvaluationDecided, ScreeningCompleted
from kokeilu.contracts.proposals import IntakeMeasurement, Submission
from kokeilu.http import api
from kokeilu.http.entrypoint import ApiRequest
from kokeilu.kafka.consumer import consume
from kokeilu.platform import Figures, Store

from . import handlers, metrics, ports
from .api import (
    COMPLETE_PILOT_EXAMPLE,
    ERRORS,
    MEASUREMENT_EXAMPLE,
    START_PILOT_EXAMPLE,
    SUBMISSION_EXAMPLE,
    WITHDRAW_EXAMPLE,
    CompletePilotBody,
    ListQuery,
    MeasurementBody,
    MeasurementList,
    MeasurementView,
    ProposalPage,
    ProposalView,
    StartPilotBody,
    WithdrawBody,
    measurement_json,
    proposal_json,
)
from .domain import Proposal
from .idempotency import Answer, idempotent
from .store import ProposalsUnitOfWork


class ProposalsService(service_base.PlatformService):
    name = "proposals"
    uow: Callable[[], ProposalsUnitOfWork] = Store(ProposalsUnitOfWork)  # a factory, in a worker
    figures: handlers.Figures = Figures(metrics)  # deferred to the batch's commit in a consumer
    errors = ERRORS

    @api(
        "POST",
        "/v1/proposals",
        scope="proposals:write",
        body=Submission,
        response=ProposalView,
        status=201,
        idempotent=True,
        example=SUBMISSION_EXAMPLE,
    )
    def submit(self, request: ApiRequest, body: Submission) -> Answer | Response:
        """Submit a proposal; it goes to screening."""
        return idempotent(
            request,
            self.uow,
            lambda uow: (201, proposal_json(handlers.submit_proposal(body, uow, figures=self.figures))),
        )

    @api("GET", "/v1/proposals/<proposal_id>", scope="proposals:read", response=ProposalView)
    def get(self, request: ApiRequest, proposal_id: str) -> dict[str, Any]:
        """One proposal."""
        return proposal_json(handlers.get_proposal(proposal_id, self.uow()))

    @api("GET", "/v1/proposals", scope="proposals:read", query=ListQuery, response=ProposalPage)
    def list(self, request: ApiRequest) -> dict[str, Any]:
        """Proposals, newest first, filtered, with cursor pagination."""
        query = ListQuery.model_validate(request.args.to_dict())
        items = handlers.list_proposals(
            self.uow(), query.status and query.status.value, query.limit, query.cursor, **query.filters()
        )
        cursor = items[-1].id if len(items) == query.limit else None
        return {"items": [proposal_json(p) for p in items], "next_cursor": cursor}

    @api(
        "POST",
        "/v1/proposals/<proposal_id>/revise",
        scope="proposals:write",
        body=Submission,
        response=ProposalView,
        errors=(409,),
        idempotent=True,
        example=SUBMISSION_EXAMPLE,
    )
    def revise(self, request: ApiRequest, proposal_id: str, body: Submission) -> Answer | Response:
        """Revise a proposal whose revision was requested; it goes back to screening."""
        return self._act(request, lambda uow: handlers.revise(proposal_id, body, uow, self.figures))

    @api(
        "POST",
        "/v1/proposals/<proposal_id>/withdraw",
        scope="proposals:write",
        body=WithdrawBody,
        response=ProposalView,
        errors=(409,),
        idempotent=True,
        example=WITHDRAW_EXAMPLE,
    )
    def withdraw(self, request: ApiRequest, proposal_id: str, body: WithdrawBody) -> Answer | Response:
        """Withdraw a proposal (from any open state but piloting)."""
        return self._act(request, lambda uow: handlers.withdraw(proposal_id, body.reason, uow, self.figures))

    @api(
        "POST",
        "/v1/proposals/<proposal_id>/pilot/start",
        scope="proposals:write",
        body=StartPilotBody,
        response=ProposalView,
        errors=(409,),
        idempotent=True,
        example=START_PILOT_EXAMPLE,
    )
    def start_pilot(self, request: ApiRequest, proposal_id: str, body: StartPilotBody) -> Answer | Response:
        """Start the pilot of an approved proposal."""
        return self._act(request, lambda uow: handlers.start_pilot(proposal_id, body.planned_end, uow, self.figures))

    @api(
        "POST",
        "/v1/proposals/<proposal_id>/pilot/complete",
        scope="proposals:write",
        body=CompletePilotBody,
        response=ProposalView,
        errors=(409,),
        idempotent=True,
        example=COMPLETE_PILOT_EXAMPLE,
    )
    def complete_pilot(self, request: ApiRequest, proposal_id: str, body: CompletePilotBody) -> Answer | Response:
        """Complete a pilot with its outcome, actual KPI values and lessons learned."""
        return self._act(
            request,
            lambda uow: handlers.complete_pilot(
                proposal_id, body.outcome, body.actual_kpis, body.lessons_learned, uow, self.figures
            ),
        )

    @api(
        "POST",
        "/v1/proposals/<proposal_id>/measurements",
        scope="proposals:write",
        body=MeasurementBody,
        response=MeasurementView,
        status=201,
        errors=(409,),
        idempotent=True,
        example=MEASUREMENT_EXAMPLE,
    )
    def record_measurement(self, request: ApiRequest, proposal_id: str, body: MeasurementBody) -> Answer | Response:
        """Record a KPI measurement of a piloting proposal."""
        principal = request.principal
        assert principal is not None  # a scoped route's request has its token's
        return idempotent(
            request,
            self.uow,
            lambda uow: (
                201,
                measurement_json(
                    handlers.record_measurement(
                        proposal_id, body.kpi, body.value, body.measured_at, f"http:{principal.name}", uow
                    )
                ),
            ),
        )

    @api("GET", "/v1/proposals/<proposal_id>/measurements", scope="proposals:read", response=MeasurementList)
    def measurements(self, request: ApiRequest, proposal_id: str) -> dict[str, Any]:
        """The measurements of a proposal."""
        return {"items": [measurement_json(m) for m in handlers.measurements_of(proposal_id, self.uow())]}

    def _act(self, request: ApiRequest, action: Callable[[ports.ProposalsUnitOfWork], Proposal]) -> Answer | Response:
        return idempotent(request, self.uow, lambda uow: (200, proposal_json(action(uow))))

    @consume(
        topics.INTAKE,
        on_reject="intake_rejected",
        bulk={types.INTAKE_MEASUREMENT: "on_intake_run", types.INTAKE_PROPOSAL: "on_intake_run"},
    )
    def on_intake(self, event: CloudEvent, data: BaseModel) -> str:
        if isinstance(data, IntakeMeasurement):
            return handlers.on_intake_measurement(event, data, self.uow(), self.figures)
        if isinstance(data, Submission):
            return handlers.on_intake(event, data, self.uow(), self.figures)
        raise handlers.IntakeRefused(f"{event.type} is not an intake event")

    def intake_rejected(self, raw: bytes | None, event: CloudEvent | None, reason: str) -> None:
        """The intake consumer's on_reject: tells the source system why its record was refused."""
        handlers.intake_rejected(raw, event, reason, self.uow(), self.figures)

    def on_intake_run(self, items: Sequence[tuple[CloudEvent, BaseModel]]) -> Sequence[str | handlers.IntakeRefused]:
        """The intake consumer's bulk method: a run of consecutive `intake.proposal` and
        `intake.measurement` records."""
        return handlers.on_intake_run(items, self.uow(), self.figures)

    # A group of its own (kokeilu.proposals.workflow): two consumers with different topics in one
    # group make every join of either a rebalance of both (seconds without progress at start).
    @consume(
        topics.EVALUATIONS,
        group="workflow",
        types=(types.SCREENING_COMPLETED, types.EVALUATION_DECIDED),
        bulk={types.SCREENING_COMPLETED: "on_evaluation_run", types.EVALUATION_DECIDED: "on_evaluation_run"},
    )
    def on_evaluation(self, event: CloudEvent, data: BaseModel) -> str:
        if isinstance(data, ScreeningCompleted):
            return handlers.on_screening_completed(event, data, self.uow(), self.figures)
        if isinstance(data, EvaluationDecided):
            return handlers.on_evaluation_decided(event, data, self.uow(), self.figures)
        return "ignored"

    def on_evaluation_run(self, items: Sequence[tuple[CloudEvent, BaseModel]]) -> Sequence[str | Exception]:
        """The workflow consumer's bulk method: a run of evaluation's outcomes."""
        return handlers.on_evaluation_run(items, self.uow(), self.figures)

    def refresh_metrics(self) -> None:
        metrics.refresh_state_gauge(self.uow())
