"""The catalogue service: the results read model and the public results topic."""
from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kokeilu.contracts import topics
from kokeilu.contracts.evaluation import ScreeningCompleted
from kokeilu.contracts.proposals import ProposalSubmitted
from kokeilu.http import NotFound, api
from kokeilu.kafka.consumer import consume
from kokeilu.platform import Store
from kokeilu import service_base

from . import handlers, metrics
from .store import CatalogueUnitOfWork


class CatalogueSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOKEILU_", extra="ignore")
    contact_unit: str = "City of Espoo, experimentation programme"


class ListQuery(BaseModel):
    model_config = {"extra": "forbid"}
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=64)


class CatalogueService(service_base.PlatformService):
    name = "catalogue"
    uow = Store(CatalogueUnitOfWork)
    contact_unit = CatalogueSettings().contact_unit

    @api("GET", "/v1/results/<proposal_id>", scope="catalogue:read")
    def get(self, request, proposal_id):
        result = handlers.get_result(proposal_id, self.uow())
        if result is None:
            raise NotFound(f"no result for proposal {proposal_id}", {"proposal_id": "unknown"})
        return result.model_dump(mode="json")

    @api("GET", "/v1/results", scope="catalogue:read")
    def list(self, request):
        query = ListQuery.model_validate(request.args.to_dict())
        items = handlers.list_results(self.uow(), query.limit, query.cursor)
        cursor = items[-1].result_id if len(items) == query.limit else None
        return {"items": [r.model_dump(mode="json") for r in items], "next_cursor": cursor}

    @consume(topics.PROPOSALS)
    def on_proposal_event(self, event, data):
        if isinstance(data, ProposalSubmitted):
            return self._counted(handlers.on_proposal_submitted(event, data, self.uow(), self.contact_unit))
        return "ignored"

    @consume(topics.EVALUATIONS)
    def on_evaluation_event(self, event, data):
        if isinstance(data, ScreeningCompleted):
            return self._counted(handlers.on_screening_completed(event, data, self.uow(), self.contact_unit))
        return "ignored"

    @staticmethod
    def _counted(outcome: str) -> str:
        if outcome == "published":
            metrics.results.labels(service="catalogue", event="published").inc()
            return "applied"
        return outcome

    def refresh_metrics(self):
        metrics.refresh(self.uow())
