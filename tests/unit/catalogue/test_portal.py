"""The results portal without a browser: every label and code in fi, sv and en, dates and numbers
in each locale's form, honest wording for tied scores, the chart's accessible SVG, the KPI series
and their CSV, and the queries it refuses."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime

import pytest

from kokeilu.contracts import decode, parse_envelope
from kokeilu.contracts.evaluation import Decision
from kokeilu.contracts.proposals import Environment, FocusArea, PilotOutcome, ProposerKind
from kokeilu.contracts.results import ResultStatus
from services.catalogue import handlers, i18n, portal
from services.catalogue.domain import DailyKpi, series_points
from services.catalogue.search import SearchQuery
from services.evaluation.domain import CRITERIA, Rubric, decide
from tests import builders as ev
from tests.unit.fakes import FakeCatalogueUnitOfWork

BASE = "https://open.example/kokeilu"


def test_every_label_is_in_every_language():
    keys = {lang: set(m) for lang, m in i18n.MESSAGES.items()}
    assert set(keys) == set(i18n.LANGUAGES)
    assert keys["fi"] == keys["sv"] == keys["en"]
    for lang, messages in i18n.MESSAGES.items():
        for key, text in messages.items():
            fields = set(re.findall(r"{(\w+)}", text))
            assert fields == set(re.findall(r"{(\w+)}", i18n.MESSAGES["en"][key])), (lang, key)


@pytest.mark.parametrize(
    "kind, enum",
    [
        ("focus_area", FocusArea),
        ("environment", Environment),
        ("status", ResultStatus),
        ("outcome", PilotOutcome),
        ("decision", Decision),
        ("proposer_kind", ProposerKind),
    ],
)
def test_every_code_has_a_human_name_in_every_language(kind, enum):
    for lang in i18n.LANGUAGES:
        names = i18n.CODES[kind][lang]
        assert set(names) == {e.value for e in enum}, (kind, lang)
        assert all("_" not in n for n in names.values())
    assert set(i18n.CODES["criterion"]["fi"]) == set(CRITERIA)


def test_dates_and_numbers_in_each_locale():
    d = datetime(2026, 5, 4, 23, 0, tzinfo=UTC)
    assert [i18n.Translator(lang).date(d) for lang in i18n.LANGUAGES] == ["4.5.2026", "4.5.2026", "4 May 2026"]
    assert i18n.Translator("fi").number(45000.5) == "45\u202f000,5"
    assert i18n.Translator("en").number(45000.5) == "45,000.5"
    assert i18n.Translator("sv").number(-2.0) == "\u22122"
    assert i18n.Translator("en").number(4.0, 1, trim=False) == "4.0"
    assert i18n.pick(None, "sv-FI,sv;q=0.9,en;q=0.5") == "sv" and i18n.pick(None, "de") == "fi"


def _result(**decided):
    uow = FakeCatalogueUnitOfWork()
    for raw in (ev.submitted("r1", language="fi"), ev.screened("r1"), ev.decided("r1", **decided)):
        event = parse_envelope(json.dumps(raw).encode())
        handlers.apply(event, decode(event), uow, "Espoo")
    return handlers.get_result("r1", uow), uow


def test_tied_scores_are_not_called_strongest_and_weakest():
    tied = decide([{c: 4 for c in CRITERIA}] * 3, Rubric(), 10_000, False)
    assert "All criteria scored equally (4.0)." in tied.rationale and "Strongest" not in tied.rationale
    r, _ = _result()
    r = r.model_copy(update={"weighted_score": 4.0, "criterion_averages": tied.criterion_averages})
    assert portal.decision_summary(r, i18n.Translator("sv")) == [
        "Viktade poäng 4/5: godkänt.",
        "Alla kriterier fick samma bedömning (4,0).",
    ]
    mixed = r.model_copy(update={"criterion_averages": {**tied.criterion_averages, "impact": 5.0}})
    assert portal.decision_summary(mixed, i18n.Translator("en"))[1] == (
        "Strongest: impact (5.0); weakest: feasibility (4.0)."
    )


def test_a_kpi_series_merges_days_only_when_they_do_not_fit():
    days = [DailyKpi(date(2026, 1, 1 + i), 2, 10.0 * (i + 1), i, 10 * i, i + 0.5) for i in range(10)]
    assert len(series_points(days, 60)) == 10
    merged = series_points(days, 4)
    assert len(merged) <= 4 and sum(p.count for p in merged) == 20
    assert (merged[0].start, merged[0].end, merged[0].mean, merged[0].max) == (
        date(2026, 1, 1),
        date(2026, 1, 3),
        10.0,
        20,
    )
    assert merged[-1].last == 9.5


def test_the_result_page_draws_each_kpi_as_an_accessible_svg_with_a_table_and_csv():
    r, uow = _result()
    for raw in (
        ev.started("r1"),
        ev.measured("r1", 62, "2026-05-01T08:00:00Z"),
        ev.measured("r1", 70, "2026-05-01T18:00:00Z"),
        ev.measured("r1", 81, "2026-05-03T08:00:00Z"),
    ):
        event = parse_envelope(json.dumps(raw).encode())
        handlers.apply(event, decode(event), uow, "Espoo")
    r = handlers.get_result("r1", uow)
    html = portal.result_page(r, "en", BASE)
    assert '<html lang="en">' in html and '<h1 lang="fi">' in html  # the content keeps its own language
    svg = html[html.index('<svg class="chart"') : html.index("</svg>", html.index('<svg class="chart"'))]
    assert 'role="img"' in svg and 'aria-labelledby="kpi-0-title kpi-0-desc"' in svg
    assert '<title id="kpi-0-title">words per minute: daily mean</title>' in svg
    assert "3 measurements from 1 May 2026 to 3 May 2026" in svg and "Baseline 60" in svg and "Target 80" in svg
    assert svg.count("<circle") == 2
    assert '<td class="n">66</td>' in html  # the first day's mean in the table
    assert f'href="{BASE}/results/r1/kpis.csv"' in html
    rows = list(csv.DictReader(io.StringIO(portal.kpis_csv(r, uow.entries.daily("r1")))))
    assert [(row["day"], row["count"], row["mean"]) for row in rows] == [
        ("2026-05-01", "2", "66.0"),
        ("2026-05-03", "1", "81.0"),
    ]
    assert "smart_mobility" not in html and "in_evaluation" not in html.split("<script")[0]


def test_the_pages_link_the_open_data_and_each_other_in_three_languages():
    r, uow = _result()
    page = handlers.search_results(SearchQuery(limit=5), uow)
    for lang in i18n.LANGUAGES:
        html = portal.landing(page, lang, BASE)
        assert f'<html lang="{lang}">' in html
        assert f'href="{BASE}/v1/catalog.jsonld"' in html and f'href="{BASE}/v1/results.csv"' in html
        assert f"{BASE}/portal/open-data?lang={lang}#topic" in html
        assert f'href="{BASE}/portal/results?lang={lang}&amp;focus_area=learning"' in html
        for other in i18n.LANGUAGES:
            assert f'hreflang="{other}"' in html


@pytest.mark.parametrize(
    "args, field",
    [
        ({"focus_area": "nope"}, "focus_area"),
        ({"year": "soon"}, "year"),
        ({"status": "done"}, "status"),
        ({"after": "garbage!"}, None),
    ],
)
def test_a_value_the_catalogue_does_not_know_is_refused_naming_the_parameter(args, field):
    if field is None:  # a cursor is read by the search itself (BadCursor); the route names `after`
        query, _ = portal.search_query(args)
        assert query.cursor == "garbage!"
        return
    with pytest.raises(portal.BadRequest) as caught:
        portal.search_query(args)
    assert caught.value.field == field
    with pytest.raises(portal.BadRequest) as caught:
        portal.language("de", None)
    assert caught.value.field == "lang"
