"""Open data that validates, on the catalogue as a real process fed a workflow's events on the real
broker: its DCAT-AP 3 output passes the SEMICeu DCAT-AP 3.0.1 SHACL shapes (tests/data/dcat-ap-3.0.1)
with no result at all, and every link to the catalogue in the DCAT output, the schema.org markup and
the HTML pages answers 200 without a token."""

import json
import re
import uuid

import pytest
import requests

from kokeilu.contracts import topics
from tests import builders as ev
from tests.support import AUTH, ROOT, Platform, send_events, wait_until

pytestmark = pytest.mark.kafka

SHAPES = ROOT / "tests" / "data" / "dcat-ap-3.0.1"
# The catalogue as the public reaches it: behind a proxy, under a path. Links must use it.
PUBLIC = "https://open.kokeilu.example/catalogue"
EU = "http://publications.europa.eu/resource/authority/"


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    platform = Platform(tmp_path_factory.mktemp("opendata"), extra_env={"KOKEILU_PUBLIC_BASE_URL": PUBLIC})
    platform.start("catalogue")
    yield platform
    platform.stop()


def local(platform, url: str) -> str:
    """The catalogue's own address for a public URL (the proxy's job), without the fragment."""
    assert url.startswith(PUBLIC + "/"), url
    return platform.url("catalogue", url[len(PUBLIC) :].split("#")[0])


def public_get(platform, url: str):
    return requests.get(local(platform, url), timeout=10)  # no token


@pytest.fixture(scope="module")
def published(catalogue, probe):
    """A few results from a workflow: three languages, every focus area and environment, every status;
    one rejected (withdrawn from the catalogue) and one that failed screening (never in it)."""
    ids = {name: str(uuid.uuid4()) for name in ("fi", "sv", "en", "done", "resident", "rejected", "failed")}
    p = ids
    send_events(
        catalogue,
        probe,
        ev.submitted(
            p["fi"],
            title="Lukukaverit Keran koulussa",
            language="fi",
            school_name="Keran koulu",
            summary="Isommat oppilaat lukevat pienempien kanssa kahdesti viikossa.",
        ),
        ev.screened(p["fi"]),
        ev.submitted(
            p["sv"],
            title="Matarbuss till Kera station",
            language="sv",
            focus_area="smart_mobility",
            environment="kera",
            summary="En självkörande matarbuss mellan Kera station och nya bostäder.",
        ),
        ev.screened(p["sv"]),
        ev.decided(p["sv"]),
        ev.submitted(
            p["en"],
            title="Litter sensors on the Waterfront Walkway",
            language="en",
            focus_area="sustainable_development",
            environment="waterfront_walkway",
        ),
        ev.screened(p["en"]),
        ev.decided(p["en"]),
        ev.started(p["en"]),
        ev.measured(p["en"], 71),
        ev.submitted(
            p["done"],
            title="Länsimetron liityntäpyörät",
            language="fi",
            focus_area="smart_mobility",
            environment="west_metro",
        ),
        ev.screened(p["done"]),
        ev.decided(p["done"]),
        ev.started(p["done"]),
        ev.completed(p["done"]),
        ev.submitted(
            p["resident"],
            title="Community compost for the whole city",
            language="en",
            focus_area="sustainable_development",
            environment="citywide",
            proposer={"organisation": "Maija Meikäläinen", "kind": "resident"},
        ),
        ev.screened(p["resident"]),
        ev.submitted(p["rejected"]),
        ev.screened(p["rejected"]),
        ev.submitted(p["failed"]),
        ev.screened(p["failed"], passed=False),
    )
    expected = {
        "fi": "in_evaluation",
        "sv": "planned",
        "en": "piloting",
        "done": "completed",
        "resident": "in_evaluation",
    }
    for name, status in expected.items():
        wait_until(
            lambda: (
                (r := public_get(catalogue, f"{PUBLIC}/results/{p[name]}.json")).status_code == 200
                and r.json()["status"] == status
            ),
            what=f"{name} result {status}",
        )
    wait_until(lambda: public_get(catalogue, f"{PUBLIC}/results/{p['en']}.json").json()["kpis"][0]["actual"] == 71)
    # Rejected once it was in the catalogue (the two topics' records reach the catalogue in no
    # fixed order: a decision applied before the proposal was known would never publish a result).
    wait_until(
        lambda: public_get(catalogue, f"{PUBLIC}/results/{p['rejected']}.json").status_code == 200,
        what="the rejected proposal's result published before its decision",
    )
    send_events(catalogue, probe, ev.decided(p["rejected"], "rejected"))
    return ids


@pytest.fixture(scope="module")
def catalog(catalogue, published):
    from rdflib import Graph

    response = public_get(catalogue, f"{PUBLIC}/v1/catalog.jsonld")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/ld+json")
    return Graph().parse(data=response.text, format="json-ld")


@pytest.mark.parametrize("shapes", ["shapes.ttl", "range.ttl", "shapes_recommended.ttl", "deprecateduris.ttl"])
def test_the_dcat_ap_output_passes_the_shapes_without_a_single_result(catalog, shapes):
    results, text = validate(catalog, shapes)
    assert results == [], f"{len(results)} results from {shapes}:\n{text}"


def test_the_controlled_vocabulary_shapes_only_warn_where_no_eu_term_exists(catalog):
    """mdr-vocabularies.shape.ttl wants the publisher from the EU corporate-body table (which lists EU
    bodies, not a city) and every place as an IRI from the EU tables or GeoNames (the test
    environments have none: they are described by name, bounding box and centroid)."""
    from rdflib.namespace import DCTERMS, SH

    results, text = validate(catalog, "mdr-vocabularies.shape.ttl")
    assert {(severity, path) for severity, path, _ in results} <= {
        (SH.Warning, DCTERMS.publisher),
        (SH.Warning, DCTERMS.spatial),
    }, text


def validate(data, shapes):
    """(severity, path, focus) of each result of validating `data` against one shapes file, and the report."""
    from pyshacl import validate as shacl
    from rdflib import Graph
    from rdflib.namespace import SH

    graph = Graph().parse(SHAPES / shapes, format="turtle")
    _, report, text = shacl(data, shacl_graph=graph, inference="none", allow_warnings=False)
    results = [
        (report.value(r, SH.resultSeverity), report.value(r, SH.resultPath), report.value(r, SH.focusNode))
        for r in report.objects(None, SH.result)
    ]
    return results, text


def test_the_catalogue_uses_the_eu_vocabularies(catalog, published):
    from rdflib import URIRef
    from rdflib.namespace import DCAT, DCTERMS, RDF

    [cat] = catalog.subjects(RDF.type, DCAT.Catalog)
    datasets = set(catalog.objects(cat, DCAT.dataset))
    ids = {name: URIRef(f"{PUBLIC}/results/{pid}") for name, pid in published.items()}
    assert datasets == {ids[n] for n in ("fi", "sv", "en", "done", "resident")}  # nothing unpublished
    assert catalog.value(cat, DCTERMS.license) == URIRef(EU + "licence/CC_BY_4_0")
    assert set(catalog.objects(cat, DCTERMS.language)) == {URIRef(EU + f"language/{c}") for c in ("FIN", "SWE", "ENG")}
    assert catalog.value(cat, DCAT.themeTaxonomy) == URIRef(EU + "data-theme")
    assert catalog.value(cat, DCTERMS.issued) is not None and catalog.value(cat, DCTERMS.modified) is not None
    assert catalog.value(ids["sv"], DCTERMS.language) == URIRef(EU + "language/SWE")
    assert catalog.value(ids["sv"], DCTERMS.title).language == "sv"
    assert catalog.value(ids["sv"], DCAT.theme) == URIRef(EU + "data-theme/TRAN")
    for d in datasets:
        for dist in catalog.objects(d, DCAT.distribution):
            fmt = catalog.value(dist, DCTERMS.format)
            assert fmt in {URIRef(EU + "file-type/HTML"), URIRef(EU + "file-type/JSON")}
            assert (fmt, RDF.type, DCTERMS.MediaTypeOrExtent) in catalog
            assert (catalog.value(dist, DCAT.mediaType), RDF.type, DCTERMS.MediaType) in catalog
    assert "Meikäläinen" not in catalog.serialize(format="turtle")


def test_every_link_to_the_catalogue_answers_without_a_token(catalogue, catalog, published):
    from rdflib import URIRef
    from rdflib.namespace import DCAT, FOAF

    ours = {str(t) for triple in catalog for t in triple if isinstance(t, URIRef) and str(t).startswith(PUBLIC)}
    for name in ("fi", "sv", "en", "done", "resident"):
        page = f"{PUBLIC}/results/{published[name]}"
        assert page + ".json" in ours and page in ours
    [homepage] = catalog.objects(None, FOAF.homepage)
    assert str(homepage) == f"{PUBLIC}/portal"
    access = {str(u) for u in catalog.objects(None, DCAT.accessURL)} | {
        str(u) for u in catalog.objects(None, DCAT.downloadURL)
    }
    assert access and all("/v1/results" not in u for u in access)  # not the API, which wants a token

    # the schema.org markup and the links of each result's page and of the index
    for name in ("fi", "sv", "en", "done", "resident"):
        page = public_get(catalogue, f"{PUBLIC}/results/{published[name]}")
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        markup = json.loads(page.text.split('<script type="application/ld+json">')[1].split("</script>")[0])
        assert markup["isAccessibleForFree"] is True
        [download] = markup["distribution"]
        assert download["contentUrl"] == f"{PUBLIC}/results/{published[name]}.json"
        ours |= set(_strings(markup, PUBLIC)) | set(re.findall(r'href="(' + re.escape(PUBLIC) + r'[^"]*)"', page.text))
    index = public_get(catalogue, f"{PUBLIC}/results")
    ours |= set(re.findall(r'href="(' + re.escape(PUBLIC) + r'[^"]*)"', index.text))

    answers = {url: public_get(catalogue, url) for url in sorted(ours)}
    assert {url: r.status_code for url, r in answers.items() if r.status_code != 200} == {}
    for url, r in answers.items():
        if url.endswith(".json"):
            assert r.headers["Content-Type"].startswith("application/json")
            assert r.json() == catalogue.get("catalogue", f"/v1/results/{r.json()['result_id']}").json()


def _strings(value, prefix):
    if isinstance(value, str):
        if value.startswith(prefix):
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v, prefix)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, prefix)


def test_the_public_json_of_a_result_is_the_public_result_and_nothing_else(catalogue, published):
    resident = public_get(catalogue, f"{PUBLIC}/results/{published['resident']}.json").json()
    assert resident["proposer_kind"] == "resident" and resident["organisation"] is None
    assert "Meikäläinen" not in json.dumps(resident, ensure_ascii=False)
    assert "contact_email" not in json.dumps(resident)


@pytest.mark.parametrize("name", ["rejected", "failed", None])
def test_an_unpublished_or_unknown_result_is_a_json_404(catalogue, probe, published, name):
    pid = published[name] if name else str(uuid.uuid4())
    if name == "rejected":  # it was in the catalogue until the decision
        probe.events(
            catalogue.topic(topics.RESULTS), "fi.espoo.kokeilu.result.withdrawn", where=lambda e: e["subject"] == pid
        )
    for path in (f"/results/{pid}.json", f"/results/{pid}"):
        response = public_get(catalogue, PUBLIC + path)
        assert response.status_code == 404 and response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"]["code"] == "not_found"
    assert catalogue.get("catalogue", f"/v1/results/{pid}", headers=AUTH).status_code == 404
