"""The public results portal: server-rendered HTML (Jinja2, autoescaped), no login, no script.

    /portal                     landing page: search box, facets with counts, the latest results
    /portal/results             search results: full text, facet filters, cursor paging (`after`)
    /portal/open-data           the open data and the public results topic, explained
    /results/<id>               a result: facts, decision, KPIs and a chart per KPI over time
    /results/<id>/kpis.csv      every KPI's daily series, as CSV

Every page takes `?lang=fi|sv|en`; without it a result shows in its own language and the other
pages in the best language of Accept-Language (Finnish by default). Pure functions of what the
handlers read; the service routes call them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment as Jinja
from jinja2 import FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kokeilu.contracts.bounds import text
from kokeilu.contracts.proposals import Environment, FocusArea, PilotOutcome
from kokeilu.contracts.results import Result, ResultStatus

from . import chart, i18n, opendata
from .domain import DailyKpi
from .search import FACETS, SearchPage, SearchQuery

PAGE_SIZE = 20
FILTERS = ("focus_area", "environment", "status", "outcome", "year")
CODE_KINDS = {"focus_area": "focus_area", "environment": "environment", "status": "status", "outcome": "outcome"}

_templates = Jinja(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class LangQuery(BaseModel):
    """The language of a portal page."""

    model_config = ConfigDict(extra="allow")
    lang: i18n.Lang | None = Field(
        default=None,
        description="fi, sv or en; by default the result's own language (other pages: Accept-Language, else fi).",
    )


class PortalQuery(LangQuery):
    """`GET /portal/results`: the catalogue's search, as a web page (one value per filter, or several)."""

    q: text(200) | None = Field(default=None, description="Full text over title, summary and lessons learned.")
    focus_area: FocusArea | None = None
    environment: Environment | None = None
    status: ResultStatus | None = None
    outcome: PilotOutcome | None = None
    year: int | None = Field(default=None, ge=1, le=9999, description="The year the result was published.")
    after: str | None = Field(default=None, max_length=500, description="The cursor of the next page.")


class BadRequest(ValueError):
    """A query value the portal cannot use: `field` names the parameter."""

    def __init__(self, field: str, value: str):
        super().__init__(f"{field}: {value!r}")
        self.field, self.value = field, value


@dataclass(frozen=True)
class Urls:
    base: str

    def _u(self, path: str, **params: Any) -> str:
        query = urlencode([(k, v) for k, v in params.items() if v not in (None, "", [])], doseq=True)
        return f"{self.base.rstrip('/')}{path}" + (f"?{query}" if query else "")

    def home(self, lang: str | None = None) -> str:
        return self._u("/portal", lang=lang)

    def results(self, lang: str | None = None, **filters: Any) -> str:
        return self._u("/portal/results", lang=lang, **filters)

    def open_data(self, lang: str | None = None) -> str:
        return self._u("/portal/open-data", lang=lang)

    def result(self, r_or_id: Result | str, lang: str | None = None) -> str:
        rid = getattr(r_or_id, "result_id", r_or_id)
        return self._u(f"/results/{rid}", lang=lang)

    def kpis_csv(self, r: Result) -> str:
        return self._u(f"/results/{r.result_id}/kpis.csv")

    def json(self, r: Result) -> str:
        return self._u(f"/results/{r.result_id}.json")

    @property
    def catalog(self) -> str:
        return opendata.catalog_url(self.base)

    @property
    def csv(self) -> str:
        return self._u("/v1/results.csv")


def language(requested: str | None, accept_language: str | None, default: str = i18n.DEFAULT) -> str:
    if requested is not None and requested not in i18n.LANGUAGES:
        raise BadRequest("lang", requested)
    return i18n.pick(requested, accept_language, default)


def search_query(args: dict[str, Any]) -> tuple[SearchQuery, dict[str, Any]]:
    """The SearchQuery for the portal's parameters, and the filters as given (for links); BadRequest
    naming the first parameter whose value is not one the catalogue knows."""
    filters = {name: args[name] for name in ("q", *FILTERS) if args.get(name)}
    try:
        query = SearchQuery.model_validate({**filters, "cursor": args.get("after") or None, "limit": PAGE_SIZE})
    except ValidationError as exc:
        where = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "q"
        raise BadRequest(
            "after" if where == "cursor" else where, str(args.get(where if where != "cursor" else "after"))
        )
    return query, filters


def _switch(lang: str, url_for: Callable[[str], str]) -> list[dict[str, Any]]:
    return [
        {"code": code, "name": i18n.NATIVE[code], "url": url_for(code), "current": code == lang}
        for code in i18n.LANGUAGES
    ]


def _render(template: str, lang: str, base: str, switch: Callable[[str], str], **context: Any) -> str:
    t = i18n.Translator(lang)
    return _templates.get_template(template).render(t=t, urls=Urls(base), langs=_switch(lang, switch), **context)


def _facet_options(t: i18n.Translator, page: SearchPage) -> dict[str, list[tuple[str, str, int]]]:
    """Each facet's values with their human names and counts: (value, label, count)."""
    out: dict[str, list[tuple[str, str, int]]] = {}
    for name in FACETS:
        counts = page.facets.get(name, {})
        kind = CODE_KINDS.get(name)
        items = [(value, t.code(kind, value) if kind else value, n) for value, n in counts.items()]
        out[name] = sorted(items, key=lambda v: v[0], reverse=True) if name == "year" else items
    return out


def landing(page: SearchPage, lang: str, base: str) -> str:
    t = i18n.Translator(lang)
    return _render(
        "portal.html.j2", lang, base, lambda code: Urls(base).home(code), page=page, facets=_facet_options(t, page)
    )


def results_list(page: SearchPage, filters: dict[str, Any], after: str | None, lang: str, base: str) -> str:
    t = i18n.Translator(lang)
    urls = Urls(base)
    # every facet value a filter can take (the counts are over the current matches)
    return _render(
        "results.html.j2",
        lang,
        base,
        lambda code: urls.results(code, after=after, **filters),
        page=page,
        filters=filters,
        after=after,
        facets=_facet_options(t, page),
        next_url=urls.results(lang, after=page.next_cursor, **filters) if page.next_cursor else None,
        first_url=urls.results(lang, **filters) if after else None,
    )


def open_data_page(lang: str, base: str) -> str:
    return _render("open_data.html.j2", lang, base, lambda code: Urls(base).open_data(code))


def decision_summary(r: Result, t: i18n.Translator) -> list[str]:
    """The panel's decision in the reader's language: the score, then the strongest and weakest
    criteria, or that all criteria scored the same (as rounded to one decimal, as shown)."""
    if r.decision is None or r.weighted_score is None:
        return []
    lines = [t("score", score=t.number(r.weighted_score), decision=t.code("decision", r.decision))]
    averages = r.criterion_averages or {}
    if len(averages) > 1:
        ranked = sorted(averages, key=lambda c: (averages[c], c))
        low, high = round(averages[ranked[0]], 1), round(averages[ranked[-1]], 1)
        if low == high:
            lines.append(t("all_equal", v=t.number(low, 1, trim=False)))
        else:
            lines.append(
                t(
                    "strongest",
                    best=t.code("criterion", ranked[-1]),
                    best_v=t.number(high, 1, trim=False),
                    worst=t.code("criterion", ranked[0]),
                    worst_v=t.number(low, 1, trim=False),
                )
            )
    return lines


def result_page(r: Result, lang: str, base: str) -> str:
    t = i18n.Translator(lang)
    charts = [(k, chart.render(k, f"kpi-{i}", t)) for i, k in enumerate(r.kpis)]
    return _render(
        "result.html.j2",
        lang,
        base,
        lambda code: Urls(base).result(r, code),
        r=r,
        ld=opendata.schema_org(r, base),
        place=t.code("environment", r.environment),
        licence_url=opendata.LICENCE_URL,
        decision_lines=decision_summary(r, t),
        charts=charts,
        content_lang=(r.language.value if r.language else None),
    )


def error_page(status: int, title_key: str, message: str, lang: str, base: str) -> str:
    return _render(
        "error.html.j2",
        lang,
        base,
        lambda code: Urls(base).home(code),
        status=status,
        title_key=title_key,
        message=message,
    )


KPI_CSV_COLUMNS = ("result_id", "kpi", "unit", "baseline", "target", "day", "count", "mean", "min", "max", "last")


def kpis_csv(r: Result, days: dict[str, list[DailyKpi]]) -> str:
    """Every KPI's measurements per UTC day, with the KPI's baseline and target on each row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(KPI_CSV_COLUMNS)
    for k in r.kpis:
        for d in days.get(k.name, []):
            writer.writerow(
                [
                    r.result_id,
                    opendata._cell(k.name),
                    opendata._cell(k.unit),
                    k.baseline,
                    k.target,
                    d.day.isoformat(),
                    d.count,
                    d.total / d.count,
                    d.min,
                    d.max,
                    d.last,
                ]
            )
    return out.getvalue()
