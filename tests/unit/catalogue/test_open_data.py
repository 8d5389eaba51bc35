"""The DCAT-AP output of edge-case results against the DCAT-AP 3.0.1 shapes, without a broker (the
integration test validates a catalogue built by a real workflow run)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kokeilu.contracts.results import Result
from services.catalogue import opendata
from tests.support import ROOT

SHAPES = ROOT / "tests" / "data" / "dcat-ap-3.0.1"
BASE = "https://open.kokeilu.example/catalogue/"


def at(month: int, day: int = 1) -> datetime:
    return datetime(2026, month, day, 10, tzinfo=UTC)


def result(rid: str, **kw) -> Result:
    fields = dict(
        result_id=rid,
        proposal_id=rid,
        title=f"Pilot {rid}",
        summary="What is tried.",
        focus_area="learning",
        environment="school",
        proposer_kind="school",
        status="in_evaluation",
        contact_unit="City of Espoo",
        published_at=at(3),
        updated_at=at(3),
    )
    fields.update(kw)
    return Result(**fields)


RESULTS = [
    result("a", summary=""),  # an empty summary: the description falls back to the title
    result("b", focus_area="smart_mobility", environment="kera", status="planned", updated_at=at(4)),
    # a pilot whose start (a domain time) is later than the latest event: the period still ends after it starts
    result(
        "c",
        focus_area="sustainable_development",
        environment="west_metro",
        status="piloting",
        started_at=at(6),
        updated_at=at(5),
    ),
    result(
        "d",
        environment="waterfront_walkway",
        status="completed",
        outcome="stop",
        started_at=at(4),
        completed_at=at(8),
        lessons_learned="Charge the tablets first.",
        updated_at=at(8),
    ),
    result("e", environment="citywide", proposer_kind="resident"),
]


def graph(results, languages=None):
    from rdflib import Graph

    doc = opendata.catalog_jsonld(results, BASE, "City of Espoo", languages)
    return Graph().parse(data=json.dumps(doc), format="json-ld")


@pytest.mark.parametrize("shapes", ["shapes.ttl", "range.ttl", "shapes_recommended.ttl", "deprecateduris.ttl"])
def test_edge_case_results_pass_the_shapes(shapes):
    from pyshacl import validate
    from rdflib import Graph

    conforms, _, text = validate(
        graph(RESULTS, {"a": "fi", "b": "sv", "d": "en"}),
        shacl_graph=Graph().parse(SHAPES / shapes),
        inference="none",
        allow_warnings=False,
    )
    assert conforms, text


def test_the_period_never_ends_before_it_starts_and_links_use_the_public_base():
    from rdflib import URIRef
    from rdflib.namespace import DCAT, DCTERMS

    g = graph(RESULTS)
    c = URIRef(BASE + "results/c")
    period = g.value(c, DCTERMS.temporal)
    assert g.value(period, DCAT.startDate).toPython() == g.value(period, DCAT.endDate).toPython() == at(6)
    links = {str(o) for o in g.objects(None, DCAT.accessURL)}
    assert BASE + "results/c.json" in links and all(u.startswith(BASE + "results/") for u in links)
    assert g.value(URIRef(BASE + "results/a"), DCTERMS.description).value == "Pilot a"
