"""The catalogue service: the results read model, its search and open-data exports, and the
public results topic."""
from __future__ import annotations

import json

from werkzeug.wrappers import Response

from kokeilu import service_base
from kokeilu.contracts import topics
from kokeilu.contracts.results import Result
from kokeilu.http import NotFound, Unprocessable, api
from kokeilu.kafka.consumer import consume
from kokeilu.platform import Store

from . import handlers, metrics, opendata
from .search import BadCursor, ResultPage, SearchQuery
from .settings import CatalogueSettings
from .store import CatalogueUnitOfWork


def query_args(request) -> dict:
    """Query parameters; a repeated one (status=a&status=b) is read as a list."""
    return {k: ",".join(v) if len(v) > 1 else v[0] for k, v in request.args.lists()}


class CatalogueService(service_base.PlatformService):
    name = "catalogue"
    uow = Store(CatalogueUnitOfWork)
    settings = CatalogueSettings()
    contact_unit = settings.contact_unit

    @api("GET", "/v1/results/<proposal_id>", scope="catalogue:read", response=Result)
    def get(self, request, proposal_id):
        """One result of the catalogue."""
        return self._result(proposal_id).model_dump(mode="json")

    @api("GET", "/v1/results", scope="catalogue:read", query=SearchQuery, response=ResultPage)
    def list(self, request):
        """Search the catalogue: full text, filters, facets, sorting and cursor pagination."""
        query = SearchQuery.model_validate(query_args(request))
        try:
            page = handlers.search_results(query, self.uow())
        except BadCursor as exc:
            raise Unprocessable(f"the request is not valid: cursor ({exc})", {"cursor": str(exc)}) from None
        return {"items": [r.model_dump(mode="json") for r in page.items], "total": page.total,
                "facets": page.facets, "next_cursor": page.next_cursor}

    # Open data: public on purpose (no token), read-only, and the results carry no personal data
    # (a Result is what the public topic kokeilu.results.v1 carries; unpublished results are 404).
    @api("GET", "/v1/catalog.jsonld", public=True, media_type="application/ld+json")
    def catalog_jsonld(self, request):
        """The catalogue as open data: DCAT-AP 3, JSON-LD."""
        results, languages = handlers.open_data(self.uow())
        body = opendata.catalog_jsonld(results, self.settings.public_base_url, self.contact_unit, languages)
        return Response(_json(body), mimetype="application/ld+json")

    @api("GET", "/v1/results.csv", public=True, media_type="text/csv")
    def results_csv(self, request):
        """Every result as CSV (open data)."""
        body = opendata.results_csv(handlers.all_results(self.uow()), self.settings.public_base_url)
        return Response(body, mimetype="text/csv", headers={
            "Content-Disposition": 'attachment; filename="kokeilu-results.csv"'})

    @api("GET", "/results", public=True, media_type="text/html")
    def results_index(self, request):
        """The published results: a public web page, the catalogue's homepage."""
        html = opendata.results_index(handlers.all_results(self.uow()), self.settings.public_base_url)
        return Response(html, mimetype="text/html")

    @api("GET", "/results/<proposal_id>", public=True, media_type="text/html")
    def result_page(self, request, proposal_id):
        """A result's public web page (HTML with schema.org markup)."""
        html = opendata.result_page(self._result(proposal_id), self.settings.public_base_url)
        return Response(html, mimetype="text/html")

    @api("GET", "/results/<proposal_id>.json", public=True, response=Result)
    def result_json(self, request, proposal_id):
        """A published result as JSON, without a token (what the open-data links point at)."""
        return self._result(proposal_id).model_dump(mode="json")

    def _result(self, proposal_id):
        result = handlers.get_result(proposal_id, self.uow())
        if result is None:
            raise NotFound(f"no result for proposal {proposal_id}", {"proposal_id": "unknown"})
        return result

    @consume(topics.PROPOSALS, topics.EVALUATIONS, types=handlers.HANDLED)
    def on_workflow_event(self, event, data):
        return self._counted(handlers.apply(event, data, self.uow(), self.contact_unit))

    @staticmethod
    def _counted(outcome: str) -> str:
        if outcome in ("published", "updated", "withdrawn"):
            metrics.results.labels(service="catalogue", event=outcome).inc()
            return "applied"
        return outcome

    def refresh_metrics(self):
        metrics.refresh(self.uow())


def _json(body) -> str:
    return json.dumps(body, ensure_ascii=False)
