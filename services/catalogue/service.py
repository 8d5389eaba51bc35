"""The catalogue service: the results read model, its search and open-data exports, and the
public results topic."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from werkzeug.wrappers import Response

from kokeilu import service_base
from kokeilu.contracts import CloudEvent, topics
from kokeilu.contracts.results import Result
from kokeilu.errors import PermanentError
from kokeilu.http import NotFound, Unprocessable, api
from kokeilu.http.entrypoint import ApiRequest
from kokeilu.kafka.consumer import consume
from kokeilu.platform import Figures, Store

from . import handlers, i18n, metrics, opendata, portal
from .api import ERRORS, query_args
from .search import BadCursor, ResultPage, SearchQuery
from .settings import settings
from .store import CatalogueUnitOfWork


class CatalogueService(service_base.PlatformService):
    name = "catalogue"
    uow: Callable[[], CatalogueUnitOfWork] = Store(CatalogueUnitOfWork)  # a factory, in a worker
    figures = Figures(metrics)  # the metrics module; deferred to the batch's commit in a consumer
    errors = ERRORS

    @api("GET", "/v1/results/<proposal_id>", scope="catalogue:read", response=Result)
    def get(self, request: ApiRequest, proposal_id: str) -> dict[str, Any]:
        """One result of the catalogue."""
        return self._result(proposal_id).model_dump(mode="json")

    @api("GET", "/v1/results", scope="catalogue:read", query=SearchQuery, response=ResultPage)
    def list(self, request: ApiRequest) -> dict[str, Any]:
        """Search the catalogue: full text, filters, facets, sorting and cursor pagination."""
        page = handlers.search_results(SearchQuery.model_validate(query_args(request)), self.uow())
        return {
            "items": [r.model_dump(mode="json") for r in page.items],
            "total": page.total,
            "facets": page.facets,
            "next_cursor": page.next_cursor,
        }

    # Open data: public on purpose (no token), read-only, and the results carry no personal data
    # (a Result is what the public topic kokeilu.results.v1 carries; unpublished results are 404).
    @api("GET", "/v1/catalog.jsonld", public=True, media_type="application/ld+json")
    def catalog_jsonld(self, request: ApiRequest) -> Response:
        """The catalogue as open data: DCAT-AP 3, JSON-LD."""
        results, languages = handlers.open_data(self.uow())
        body = opendata.catalog_jsonld(results, settings().public_base_url, settings().contact_unit, languages)
        return Response(_json(body), mimetype="application/ld+json")

    @api("GET", "/v1/results.csv", public=True, media_type="text/csv")
    def results_csv(self, request: ApiRequest) -> Response:
        """Every result as CSV (open data)."""
        body = opendata.results_csv(handlers.all_results(self.uow()), settings().public_base_url)
        return Response(
            body, mimetype="text/csv", headers={"Content-Disposition": 'attachment; filename="kokeilu-results.csv"'}
        )

    # The public portal (services/catalogue/portal.py): HTML for people, no token, no script.
    @api("GET", "/portal", public=True, media_type="text/html", query=portal.LangQuery)
    def portal_home(self, request: ApiRequest) -> Response:
        """The results portal's landing page: search box, facets with counts, the latest results."""

        def page(lang: str) -> str:
            found = handlers.search_results(SearchQuery(limit=5), self.uow())
            return portal.landing(found, lang, self.base)

        return self._html(request, page)

    @api("GET", "/portal/results", public=True, media_type="text/html", query=portal.PortalQuery)
    def portal_results(self, request: ApiRequest) -> Response:
        """The portal's search: full text, facet filters (focus area, test environment, status, outcome,
        year), cursor paging with `after`."""
        return self._search_page(request)

    @api("GET", "/results", public=True, media_type="text/html", query=portal.PortalQuery)
    def results_index(self, request: ApiRequest) -> Response:
        """The published results as a web page (the portal's result list)."""
        return self._search_page(request)

    @api("GET", "/portal/open-data", public=True, media_type="text/html", query=portal.LangQuery)
    def portal_open_data(self, request: ApiRequest) -> Response:
        """The open data and the public results topic, explained for the portal's readers."""
        return self._html(request, lambda lang: portal.open_data_page(lang, self.base))

    @api("GET", "/results/<proposal_id>", public=True, media_type="text/html", query=portal.LangQuery)
    def result_page(self, request: ApiRequest, proposal_id: str) -> Response:
        """A result's public web page: facts, decision, KPIs and their charts over time, in fi, sv or en
        (by default the result's own language), with schema.org markup."""
        result = handlers.get_result(proposal_id, self.uow())
        default = result.language.value if result is not None and result.language else i18n.DEFAULT

        def page(lang: str) -> str:
            if result is None:
                raise NotFound(f"no result for proposal {proposal_id}", {"proposal_id": "unknown"})
            return portal.result_page(result, lang, self.base)

        return self._html(request, page, own_language=default)

    @api("GET", "/results/<proposal_id>/kpis.csv", public=True, media_type="text/csv")
    def result_kpis_csv(self, request: ApiRequest, proposal_id: str) -> Response:
        """A result's KPI measurements per UTC day (count, mean, min, max, last), as CSV (open data)."""
        result, days = handlers.kpi_days(proposal_id, self.uow())
        if result is None:
            raise NotFound(f"no result for proposal {proposal_id}", {"proposal_id": "unknown"})
        return Response(
            portal.kpis_csv(result, days),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="kokeilu-{proposal_id}-kpis.csv"'},
        )

    @api("GET", "/results/<proposal_id>.json", public=True, response=Result)
    def result_json(self, request: ApiRequest, proposal_id: str) -> dict[str, Any]:
        """A published result as JSON, without a token (what the open-data links point at)."""
        return self._result(proposal_id).model_dump(mode="json")

    @property
    def base(self) -> str:
        return settings().public_base_url

    def _search_page(self, request: ApiRequest) -> Response:
        args = query_args(request)

        def page(lang: str) -> str:
            query, filters = portal.search_query(args)
            try:
                found = handlers.search_results(query, self.uow())
            except BadCursor:
                raise portal.BadRequest("after", args.get("after", "")) from None
            return portal.results_list(found, filters, args.get("after") or None, lang, self.base)

        return self._html(request, page)

    def _html(self, request: ApiRequest, render: Callable[[str], str], own_language: str | None = None) -> Response:
        """A portal page in the language asked for (`lang`; else a result's `own_language`; else the
        reader's Accept-Language); its errors as an HTML page for a browser (one that prefers
        text/html), else as the API's JSON error, with the same status."""
        html = request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
        accept_language = None if own_language else request.headers.get("Accept-Language")
        try:
            lang = portal.language(request.args.get("lang"), accept_language, own_language or i18n.DEFAULT)
        except portal.BadRequest as exc:
            lang = i18n.pick(None, request.headers.get("Accept-Language"))
            return self._bad_request(exc, lang, html)
        try:
            return Response(render(lang), mimetype="text/html")
        except portal.BadRequest as exc:
            return self._bad_request(exc, lang, html)
        except NotFound:
            if not html:
                raise
            t = i18n.Translator(lang)
            return Response(
                portal.error_page(404, "not_found_title", t("not_found"), lang, self.base),
                status=404,
                mimetype="text/html",
            )

    def _bad_request(self, exc: portal.BadRequest, lang: str, html: bool) -> Response:
        if not html:
            raise Unprocessable(
                f"the request is not valid: {exc.field}",
                {exc.field: f"not a value this page knows: {exc.value[:80]!r}"},
            )
        t = i18n.Translator(lang)
        message = t("bad_value", value=exc.value[:80], field=exc.field)
        return Response(
            portal.error_page(422, "bad_request_title", message, lang, self.base), status=422, mimetype="text/html"
        )

    def _result(self, proposal_id: str) -> Result:
        result = handlers.get_result(proposal_id, self.uow())
        if result is None:
            raise NotFound(f"no result for proposal {proposal_id}", {"proposal_id": "unknown"})
        return result

    # Every record goes to on_workflow_events in runs (one read and one write of each entry a run
    # changes); on_workflow_event applies one record when a run fails as a whole.
    @consume(
        topics.PROPOSALS,
        topics.EVALUATIONS,
        types=handlers.HANDLED,
        bulk=dict.fromkeys(handlers.HANDLED, "on_workflow_events"),
    )
    def on_workflow_event(self, event: CloudEvent, data: BaseModel) -> str:
        return self._counted(handlers.apply(event, data, self.uow(), settings().contact_unit))

    def on_workflow_events(self, items: Sequence[tuple[CloudEvent, BaseModel]]) -> Sequence[str | PermanentError]:
        outcomes = handlers.apply_many(items, self.uow(), settings().contact_unit)
        return [o if isinstance(o, PermanentError) else self._counted(o) for o in outcomes]

    def _counted(self, outcome: str) -> str:
        if outcome in handlers.PUBLIC_TYPES:  # published, updated or withdrawn
            self.figures.count_result(outcome)
            return "applied"
        return outcome

    def refresh_metrics(self) -> None:
        metrics.refresh(self.uow())


def _json(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)
