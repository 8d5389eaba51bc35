"""Catalogue search on the real store, SQLite FTS5 and PostgreSQL full-text search alike."""

import json

import pytest

from kokeilu.contracts import decode, parse_envelope
from kokeilu.store import Database
from services.catalogue import handlers
from services.catalogue.search import SearchQuery
from services.catalogue.store import CatalogueUnitOfWork
from tests import builders as ev
from tests.integration.test_store import ROOT  # the sqlite/postgres fixture database_url is in conftest.py


@pytest.fixture
def uow_factory(database_url):  # noqa: F811
    db = Database(database_url, ROOT / "services" / "catalogue" / "migrations")
    db.migrate()
    yield lambda: CatalogueUnitOfWork(db)
    db.dispose()


def apply(uow_factory, raw):
    event = parse_envelope(json.dumps(raw).encode())
    handlers.apply(event, decode(event), uow_factory(), "Espoo")


def search(uow_factory, **q):
    return handlers.search_results(SearchQuery.model_validate(q), uow_factory())


def test_full_text_filters_facets_and_pages(uow_factory):
    texts = [
        ("a", "Snow ploughs on the Waterfront Walkway", "learning", "waterfront_walkway"),
        ("b", "Reading buddies at Kera school", "learning", "school"),
        ("c", "Shuttle feeder for Kera station", "smart_mobility", "kera"),
    ]
    for n, (pid, title, area, env) in enumerate(texts):
        apply(
            uow_factory,
            ev.submitted(pid, title=title, focus_area=area, environment=env, time=f"2026-03-0{n + 1}T10:00:00Z"),
        )
        apply(uow_factory, ev.screened(pid, time=f"2026-03-0{n + 1}T11:00:00Z"))
    apply(uow_factory, ev.started("c"))
    apply(uow_factory, ev.completed("c", lessons="Riders loved the winter timetable"))

    assert [r.result_id for r in search(uow_factory, q="kera").items] in (["b", "c"], ["c", "b"])
    assert [r.result_id for r in search(uow_factory, q="winter").items] == ["c"]  # lessons are searched
    assert search(uow_factory, q='kera" OR "x').total == 0  # user text is not query syntax
    page = search(uow_factory, focus_area="learning")
    assert page.total == 2 and page.facets["environment"] == {"school": 1, "waterfront_walkway": 1}
    assert search(uow_factory).facets["status"] == {"completed": 1, "in_evaluation": 2}
    assert search(uow_factory, status="completed", outcome="scale_up", year="2026").total == 1
    assert [r.result_id for r in search(uow_factory, sort="title").items] == ["b", "c", "a"]
    first = search(uow_factory, limit=2)
    second = search(uow_factory, limit=2, cursor=first.next_cursor)
    assert [r.result_id for r in first.items + second.items] == ["c", "b", "a"] and second.next_cursor is None
    relevance = search(uow_factory, q="kera", limit=1)
    assert len(search(uow_factory, q="kera", limit=1, cursor=relevance.next_cursor).items) == 1


def test_a_kpi_series_is_one_row_per_day_however_many_measurements(uow_factory, database_url):
    """Measurements go into their UTC day's row by one upsert each (count, sum, min, max, last); the
    published result carries the series from the pilot's completion on, the API always."""
    import sqlalchemy as sa

    apply(uow_factory, ev.submitted("k"))
    apply(uow_factory, ev.screened("k"))
    apply(uow_factory, ev.decided("k"))
    apply(uow_factory, ev.started("k"))
    values = {
        "2026-05-01T06:00:00Z": 60,
        "2026-05-01T23:59:00Z": 66,
        "2026-05-01T12:00:00Z": 90,
        "2026-05-02T00:00:00Z": 70,
        "2026-05-04T08:00:00+03:00": 72,
    }
    for at, value in values.items():
        apply(uow_factory, ev.measured("k", value, time=at))
    with uow_factory() as uow:
        rows = uow.conn.execute(sa.text("SELECT count(*) FROM kpi_series")).scalar_one()
        published = uow.entries.get("k").result
    assert rows == 3
    assert published.kpis[0].series is None  # not in the public events while piloting
    [kpi] = handlers.get_result("k", uow_factory()).kpis
    assert [(str(p.start), p.count, p.mean, p.min, p.max, p.last) for p in kpi.series] == [
        ("2026-05-01", 3, 72.0, 60, 90, 66),
        ("2026-05-02", 1, 70, 70, 70, 70),
        ("2026-05-04", 1, 72, 72, 72, 72),
    ]
    apply(uow_factory, ev.completed("k"))
    with uow_factory() as uow:
        done = uow.entries.get("k").result
    assert done.status.value == "completed" and done.kpis[0].series == kpi.series  # published on completion
