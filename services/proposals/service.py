"""The proposals service: owns proposals; consumes intake and evaluation events."""
from __future__ import annotations

from kokeilu.contracts import topics
from kokeilu.contracts.evaluation import ScreeningCompleted
from kokeilu.contracts.proposals import Submission
from kokeilu.http import NotFound, api
from kokeilu.kafka.consumer import consume
from kokeilu.platform import Store
from kokeilu import service_base

from . import handlers
from .api import ListQuery, proposal_json
from .metrics import refresh_state_gauge
from .store import ProposalsUnitOfWork


class ProposalsService(service_base.PlatformService):
    name = "proposals"
    uow = Store(ProposalsUnitOfWork)

    @api("POST", "/v1/proposals", scope="proposals:write", body=Submission)
    def submit(self, request, body: Submission):
        return 201, proposal_json(handlers.submit_proposal(body, self.uow()))

    @api("GET", "/v1/proposals/<proposal_id>", scope="proposals:read")
    def get(self, request, proposal_id):
        proposal = handlers.get_proposal(proposal_id, self.uow())
        if proposal is None:
            raise NotFound(f"no proposal {proposal_id}", {"proposal_id": "unknown"})
        return proposal_json(proposal)

    @api("GET", "/v1/proposals", scope="proposals:read")
    def list(self, request):
        query = ListQuery.model_validate(request.args.to_dict())
        items = handlers.list_proposals(self.uow(), query.status and query.status.value, query.limit, query.cursor)
        cursor = items[-1].id if len(items) == query.limit else None
        return {"items": [proposal_json(p) for p in items], "next_cursor": cursor}

    @consume(topics.INTAKE)
    def on_intake(self, event, data):
        return handlers.on_intake(event, data, self.uow())

    @consume(topics.EVALUATIONS)
    def on_evaluation(self, event, data):
        if isinstance(data, ScreeningCompleted):
            return handlers.on_screening_completed(event, data, self.uow())
        return "ignored"

    def refresh_metrics(self):
        refresh_state_gauge(self.uow())
