"""The evaluation service: screens proposals against the programme's rules."""
from __future__ import annotations

from kokeilu.contracts import topics
from kokeilu.contracts.proposals import ProposalSubmitted
from kokeilu.http import NotFound, api
from kokeilu.kafka.consumer import consume
from kokeilu.platform import Store
from kokeilu import service_base

from . import handlers
from .settings import policy
from .store import EvaluationUnitOfWork


class EvaluationService(service_base.PlatformService):
    name = "evaluation"
    uow = Store(EvaluationUnitOfWork)

    @api("GET", "/v1/evaluations/<proposal_id>", scope="evaluation:read")
    def get(self, request, proposal_id):
        evaluation = handlers.get_evaluation(proposal_id, self.uow())
        if evaluation is None:
            raise NotFound(f"no evaluation for proposal {proposal_id}", {"proposal_id": "unknown"})
        return evaluation

    @consume(topics.PROPOSALS)
    def on_proposal_event(self, event, data):
        if isinstance(data, ProposalSubmitted):
            return handlers.on_proposal_submitted(event, data, self.uow(), policy())
        return "ignored"
