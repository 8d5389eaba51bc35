"""The results catalogue as a real process on the real broker: the lifecycle of a result on the
public topic, search, open data, and a rebuild from the topics that equals the live catalogue."""

import csv
import io
import json
import subprocess
import sys
import uuid

import pytest
import requests
import sqlalchemy as sa

from kokeilu.contracts import topics
from kokeilu.contracts.sources import service_source
from tests import builders as ev
from tests.support import ROOT, send_events, wait_until

pytestmark = pytest.mark.kafka

T = "fi.espoo.kokeilu.result."


@pytest.fixture(scope="module")
def catalogue(module_platform):
    return module_platform.start("catalogue")


def result_of(platform, pid, **expected):
    def current():
        response = platform.get("catalogue", f"/v1/results/{pid}")
        body = response.json() if response.status_code == 200 else None
        return body if body and all(body.get(k) == v for k, v in expected.items()) else None

    return wait_until(current, timeout=30, what=f"result {pid} with {expected}")


def test_a_result_follows_its_proposal_from_screening_to_a_completed_pilot(catalogue, probe):
    pid = str(uuid.uuid4())
    send_events(catalogue, probe, ev.submitted(pid), ev.screened(pid))
    result_of(catalogue, pid, status="in_evaluation")
    send_events(catalogue, probe, ev.decided(pid), ev.status(pid, "in_evaluation", "approved"))
    planned = result_of(catalogue, pid, status="planned")
    assert planned["decision_rationale"].startswith("Strong fit")
    send_events(catalogue, probe, ev.started(pid), ev.measured(pid, 71))
    piloting = result_of(catalogue, pid, status="piloting")
    wait_until(lambda: catalogue.get("catalogue", f"/v1/results/{pid}").json()["kpis"][0]["actual"] == 71)
    send_events(catalogue, probe, ev.completed(pid))
    done = result_of(catalogue, pid, status="completed")
    assert done["outcome"] == "scale_up" and done["lessons_learned"].startswith("Pairs")
    assert done["kpis"][0] == {
        "name": "words per minute",
        "unit": "wpm",
        "baseline": 60,
        "target": 80,
        "actual": 84,
        "series": [
            {"start": "2026-05-01", "end": "2026-05-01", "count": 1, "mean": 71, "min": 71, "max": 71, "last": 71}
        ],
    }
    assert done["started_at"].startswith("2026-04-01") and done["completed_at"].startswith("2026-08-01")
    assert piloting["published_at"] == done["published_at"] == "2026-03-02T10:01:00Z"  # event times: rebuilds are exact
    assert done["updated_at"] == "2026-08-01T08:00:00Z"

    on_topic = probe.events(
        catalogue.topic(topics.RESULTS), T + "updated", count=4, where=lambda e: e["subject"] == pid
    )
    assert [e["data"]["status"] for e in on_topic][-1] == "completed"
    [published] = probe.events(catalogue.topic(topics.RESULTS), T + "published", where=lambda e: e["subject"] == pid)
    assert published["source"] == service_source("catalogue")  # absolute: <base>services/catalogue
    records = probe.records(catalogue.topic(topics.RESULTS), lambda r: r.key == pid.encode(), count=5)
    assert {r.key for r in records} == {pid.encode()}  # keyed by result id: compaction keeps the latest


@pytest.mark.parametrize("how", ["rejected", "withdrawn"])
def test_a_proposal_rejected_or_withdrawn_before_its_pilot_leaves_the_catalogue(catalogue, probe, how):
    pid = str(uuid.uuid4())
    send_events(catalogue, probe, ev.submitted(pid), ev.screened(pid))
    result_of(catalogue, pid, status="in_evaluation")
    if how == "rejected":
        send_events(catalogue, probe, ev.decided(pid, "rejected"), ev.status(pid, "in_evaluation", "rejected"))
    else:
        send_events(catalogue, probe, ev.status(pid, "in_evaluation", "withdrawn"))
    [gone] = probe.events(catalogue.topic(topics.RESULTS), T + "withdrawn", where=lambda e: e["subject"] == pid)
    assert gone["data"]["reason"] == how
    wait_until(lambda: catalogue.get("catalogue", f"/v1/results/{pid}").status_code == 404)


def test_a_pilot_stopped_midway_keeps_its_lessons(catalogue, probe):
    pid = str(uuid.uuid4())
    send_events(
        catalogue,
        probe,
        ev.submitted(pid),
        ev.screened(pid),
        ev.decided(pid),
        ev.started(pid),
        ev.completed(pid, outcome="stop", lessons="Tablets were not charged at the start of lessons."),
        ev.status(pid, "piloting", "withdrawn", time="2026-08-02T00:00:00Z"),
    )
    done = result_of(catalogue, pid, status="completed")
    assert done["outcome"] == "stop" and "Tablets" in done["lessons_learned"]


def test_search_filters_facets_sorting_and_cursor_pages(catalogue, probe):
    tag = uuid.uuid4().hex[:8]
    ids = []
    for n, (area, env) in enumerate([("learning", "school"), ("smart_mobility", "kera"), ("learning", "citywide")]):
        pid = str(uuid.uuid4())
        ids.append(pid)
        send_events(
            catalogue,
            probe,
            ev.submitted(
                pid, title=f"Pilot {n} {tag}", focus_area=area, environment=env, time=f"2026-03-0{n + 1}T10:00:00Z"
            ),
            ev.screened(pid, time=f"2026-03-0{n + 1}T11:00:00Z"),
        )
    for pid in ids:
        result_of(catalogue, pid)
    found = catalogue.get("catalogue", f"/v1/results?q={tag}").json()
    assert found["total"] == 3 and {r["result_id"] for r in found["items"]} == set(ids)
    assert found["facets"]["focus_area"] == {"learning": 2, "smart_mobility": 1}
    assert found["facets"]["year"] == {"2026": 3}
    learning = catalogue.get("catalogue", f"/v1/results?q={tag}&focus_area=learning&sort=title").json()
    assert [r["title"] for r in learning["items"]] == [f"Pilot 0 {tag}", f"Pilot 2 {tag}"]
    pages, cursor = [], None
    while True:
        page = catalogue.get(
            "catalogue", f"/v1/results?q={tag}&sort=newest&limit=2" + (f"&cursor={cursor}" if cursor else "")
        ).json()
        pages.append([r["result_id"] for r in page["items"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == [[ids[2], ids[1]], [ids[0]]]
    bad = catalogue.get("catalogue", "/v1/results?status=nope")
    assert bad.status_code == 422 and "status.0" in bad.json()["error"]["fields"]


def test_open_data_is_dcat_ap_json_ld_csv_and_an_html_page_per_result(catalogue, probe):
    from rdflib import Graph, Literal, URIRef
    from rdflib.namespace import DCAT, DCTERMS, RDF

    pid = str(uuid.uuid4())
    send_events(catalogue, probe, ev.submitted(pid, title="Open <data> & pilots"), ev.screened(pid))
    result_of(catalogue, pid)
    response = requests.get(catalogue.url("catalogue", "/v1/catalog.jsonld"), timeout=10)  # public: no token
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/ld+json")
    graph = Graph().parse(data=response.text, format="json-ld")
    [catalog] = graph.subjects(RDF.type, DCAT.Catalog)
    for prop in (DCTERMS.title, DCTERMS.description, DCTERMS.publisher):
        assert graph.value(catalog, prop) is not None, prop
    dataset = URIRef(f"http://127.0.0.1:8004/results/{pid}")
    assert (catalog, DCAT.dataset, dataset) in graph and (dataset, RDF.type, DCAT.Dataset) in graph
    assert graph.value(dataset, DCTERMS.title) == Literal("Open <data> & pilots", lang="fi")  # the proposal's language
    assert graph.value(dataset, DCTERMS.identifier) == Literal(pid)
    assert graph.value(dataset, DCTERMS.license) == URIRef(
        "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0"
    )
    for prop in (DCTERMS.description, DCTERMS.publisher, DCTERMS.spatial, DCTERMS.temporal):
        assert graph.value(dataset, prop) is not None, prop
    period = graph.value(dataset, DCTERMS.temporal)
    assert graph.value(period, DCAT.startDate) is not None
    distributions = list(graph.objects(dataset, DCAT.distribution))
    assert len(distributions) == 2
    for d in distributions:
        assert graph.value(d, DCAT.accessURL) is not None and graph.value(d, DCTERMS.license) is not None

    rows = list(
        csv.DictReader(io.StringIO(requests.get(catalogue.url("catalogue", "/v1/results.csv"), timeout=10).text))
    )
    [row] = [r for r in rows if r["result_id"] == pid]
    assert row["title"] == "Open <data> & pilots" and row["licence"] == "CC-BY-4.0"

    page = requests.get(catalogue.url("catalogue", f"/results/{pid}"), timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Open &lt;data&gt; &amp; pilots" in page.text  # escaped
    ld = page.text.split('<script type="application/ld+json">')[1].split("</script>")[0]
    markup = json.loads(ld)
    assert markup["@type"] == "Dataset" and markup["name"] == "Open <data> & pilots"
    assert requests.get(catalogue.url("catalogue", f"/results/{uuid.uuid4()}"), timeout=10).status_code == 404
    as_json = requests.get(catalogue.url("catalogue", f"/results/{pid}.json"), timeout=10)  # public too
    assert as_json.status_code == 200 and as_json.json()["title"] == "Open <data> & pilots"


def test_a_rebuilt_catalogue_equals_the_live_one(catalogue, probe, tmp_path):
    # Out of order across topics, revisions of facts, a withdrawal: the rebuild must agree anyway.
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    send_events(catalogue, probe, ev.screened(a), ev.submitted(a), ev.decided(a), ev.started(a), ev.measured(a, 70))
    send_events(catalogue, probe, ev.submitted(b), ev.screened(b), ev.decided(b, "rejected"))
    send_events(catalogue, probe, ev.submitted(c), ev.screened(c), ev.started(c), ev.completed(c))
    result_of(catalogue, a, status="piloting")
    result_of(catalogue, c, status="completed")
    wait_until(lambda: catalogue.get("catalogue", f"/v1/results/{b}").status_code == 404)
    wait_until(lambda: catalogue.get("catalogue", f"/v1/results/{a}").json()["kpis"][0]["actual"] == 70)

    url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    env = catalogue.env("catalogue", 0)
    run = subprocess.run(
        [sys.executable, "-m", "services.catalogue.rebuild", "--database-url", url, "--every", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "rebuilding from" in run.stderr and "done:" in run.stderr

    live = {}
    cursor = None
    while True:
        page = catalogue.get("catalogue", "/v1/results?limit=200" + (f"&cursor={cursor}" if cursor else "")).json()
        live.update({r["result_id"]: r for r in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            break
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rebuilt = {
            row.result_id: json.loads(row.document) if isinstance(row.document, str) else row.document
            for row in conn.execute(sa.text("SELECT result_id, document FROM results"))
        }
        outbox = conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one()
    engine.dispose()
    assert {a, c} <= set(rebuilt) and b not in rebuilt
    assert rebuilt == live
    assert outbox == 0  # a rebuild publishes nothing


def test_the_portal_refuses_unknown_values_naming_the_parameter_as_json_or_as_a_page(catalogue):
    def get(path, accept="*/*"):
        return requests.get(catalogue.url("catalogue", path), headers={"Accept": accept}, timeout=10)

    for path, field in (
        ("/portal/results?focus_area=nope", "focus_area"),
        ("/portal?lang=de", "lang"),
        ("/results?year=soon", "year"),
        ("/portal/results?after=garbage", "after"),
    ):
        api = get(path)
        assert api.status_code == 422 and api.json()["error"]["fields"].keys() == {field}, (path, api.text)
        page = get(path, "text/html,application/xhtml+xml,*/*;q=0.8")
        assert page.status_code == 422 and page.headers["Content-Type"].startswith("text/html")
        assert field in page.text and "<h1>" in page.text
    missing = get(f"/results/{uuid.uuid4()}/kpis.csv")
    assert missing.status_code == 404 and missing.json()["error"]["fields"] == {"proposal_id": "unknown"}
    assert get(f"/results/{uuid.uuid4()}", "text/html").status_code == 404
    assert get("/portal/results?lang=sv&utm_source=mail").status_code == 200  # other parameters are ignored
