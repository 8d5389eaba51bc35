"""Open data: the catalogue as DCAT-AP 3 JSON-LD, as CSV, one JSON document per result, and the
schema.org Dataset markup of each result's page (the pages themselves: portal.py). Pure functions of
the published results (no personal data is in them).

The DCAT-AP output validates against the SEMICeu DCAT-AP 3.0.1 SHACL shapes (core, range and
recommended; tests/integration/test_open_data_dcat.py). Values come from the EU vocabularies
DCAT-AP asks for (licence, file type, data theme, language, planned availability), IANA media
types, ADMS licence and publisher types, and GeoNames; since a validator usually has none of those
vocabularies at hand, each term used is described in the document itself (its class, label and
concept scheme), as the range shapes need.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from kokeilu.contracts.results import Result

EU = "http://publications.europa.eu/resource/authority/"
ADMS = "http://purl.org/adms/"
IANA = "https://www.iana.org/assignments/media-types/"
GEO_WKT = "http://www.opengis.net/ont/geosparql#wktLiteral"

# The licence of every result: CC BY 4.0, as the EU licence authority table names it (DCAT-AP), and
# the Creative Commons page people read (the HTML pages and schema.org markup link to that one).
LICENCE = EU + "licence/CC_BY_4_0"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"

ESPOO = "https://sws.geonames.org/660129/"  # GeoNames: Espoo, Finland
THEMES = {  # the EU data theme vocabulary, as DCAT-AP asks
    "smart_mobility": EU + "data-theme/TRAN",
    "learning": EU + "data-theme/EDUC",
    "sustainable_development": EU + "data-theme/ENVI",
}
PLACES = {
    "west_metro": "West Metro growth corridor, Espoo",
    "kera": "Kera, Espoo",
    "waterfront_walkway": "Waterfront Walkway, Espoo",
    "school": "Schools of Espoo",
    "citywide": "Espoo",
}


def _box(west: float, south: float, east: float, north: float) -> str:
    return f"POLYGON(({west} {south}, {east} {south}, {east} {north}, {west} {north}, {west} {south}))"


# Where the test environments are: WGS84 longitude/latitude, approximate (for finding results on a
# map, not for surveying). Schools and city-wide pilots are placed in Espoo as a whole.
AREAS = {
    "espoo": (_box(24.50, 60.08, 24.86, 60.37), "POINT(24.6559 60.2055)"),
    "west_metro": (_box(24.63, 60.145, 24.84, 60.185), "POINT(24.74 60.165)"),
    "kera": (_box(24.715, 60.212, 24.740, 60.223), "POINT(24.7275 60.2176)"),
    "waterfront_walkway": (_box(24.60, 60.13, 24.84, 60.18), "POINT(24.72 60.15)"),
}
LANGUAGES = {"fi": EU + "language/FIN", "sv": EU + "language/SWE", "en": EU + "language/ENG"}
FILE_TYPE = EU + "file-type/"
MEDIA_TYPES = {"HTML": IANA + "text/html", "JSON": IANA + "application/json"}
STABLE = EU + "planned-availability/STABLE"
LICENCE_TYPE = ADMS + "licencetype/Attribution"
PUBLISHER_TYPE = ADMS + "publishertype/LocalAuthority"
DATA_THEMES = EU + "data-theme"

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "dcatap": "http://data.europa.eu/r5r/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "schema": "http://schema.org/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "locn": "http://www.w3.org/ns/locn#",
}
CATALOGUE_TITLE = "Kokeilu: results of the City of Espoo's experimentation programme"
CATALOGUE_DESCRIPTION = (
    "Pilots run in Espoo's test environments with companies, schools and residents: what was "
    "tried, where, with which KPIs, and what was learned. Licensed CC BY 4.0."
)


# -- public URLs --------------------------------------------------------------------------------
def index_url(base: str) -> str:
    """The results portal's landing page: the catalogue's home page (services/catalogue/portal.py)."""
    return f"{base.rstrip('/')}/portal"


def page_url(base: str, r: Result) -> str:
    return f"{base.rstrip('/')}/results/{r.result_id}"


def json_url(base: str, r: Result) -> str:
    """The result as JSON, public (no token), beside its page."""
    return page_url(base, r) + ".json"


def catalog_url(base: str) -> str:
    return f"{base.rstrip('/')}/v1/catalog.jsonld"


# -- DCAT-AP 3 ----------------------------------------------------------------------------------
def _date(value: datetime) -> dict[str, Any]:
    return {"@value": value.isoformat(), "@type": "xsd:dateTime"}


def _text(value: str, language: str | None) -> dict[str, Any] | str:
    return {"@value": value, "@language": language} if language else value


def _agent(name: str) -> dict[str, Any]:
    return {"@type": "foaf:Agent", "foaf:name": name, "dct:type": {"@id": PUBLISHER_TYPE}}


def _contact(name: str, base: str) -> dict[str, Any]:
    return {"@type": ["vcard:Kind", "vcard:Organization"], "vcard:fn": name, "vcard:hasURL": {"@id": index_url(base)}}


def _location(key: str, name: str) -> dict[str, Any]:
    bbox, centroid = AREAS[key]
    return {
        "@type": "dct:Location",
        "locn:geographicName": _text(name, "en"),
        "dcat:bbox": {"@value": bbox, "@type": GEO_WKT},
        "dcat:centroid": {"@value": centroid, "@type": GEO_WKT},
    }


def _period(r: Result) -> dict[str, Any]:
    """What the record covers: from the pilot's start (or, before it, the result's publication) to
    its end (or, while it goes on, the result's latest update)."""
    start = r.started_at or r.published_at
    end = max(start, r.completed_at or r.updated_at)
    return {"@type": "dct:PeriodOfTime", "dcat:startDate": _date(start), "dcat:endDate": _date(end)}


def _distribution(iri: str, kind: str, title: str, description: str, url: str, download: bool) -> dict[str, Any]:
    d = {
        "@id": iri,
        "@type": "dcat:Distribution",
        "dct:title": _text(title, "en"),
        "dct:description": _text(description, "en"),
        "dcat:accessURL": {"@id": url},
        "dct:format": {"@id": FILE_TYPE + kind},
        "dcat:mediaType": {"@id": MEDIA_TYPES[kind]},
        "dct:license": {"@id": LICENCE},
        "dcatap:availability": {"@id": STABLE},
    }
    if download:
        d["dcat:downloadURL"] = {"@id": url}
    return d


def dataset(r: Result, base: str, language: str | None = None) -> dict[str, Any]:
    """One result as a dcat:Dataset; `language` is the one its title and summary are written in."""
    page = page_url(base, r)
    keywords = [r.focus_area.value.replace("_", " "), r.environment.value.replace("_", " "), r.status.value]
    if r.outcome:
        keywords.append(r.outcome.value.replace("_", " "))
    spatial = [{"@id": ESPOO}]
    if r.environment.value in AREAS:
        spatial.append(_location(r.environment.value, PLACES[r.environment.value]))
    description = r.summary + (f"\n\nLessons learned: {r.lessons_learned}" if r.lessons_learned else "")
    d = {
        "@id": page,
        "@type": ["dcat:Dataset", "foaf:Document"],  # the result's page is the dataset's IRI and landing page
        "dct:identifier": r.result_id,
        "dct:title": _text(r.title, language),
        "dct:description": _text(description or r.title, language),
        "dct:publisher": _agent(r.contact_unit),
        "dcat:contactPoint": _contact(r.contact_unit, base),
        "dct:license": {"@id": LICENCE},
        "dct:issued": _date(r.published_at),
        "dct:modified": _date(r.updated_at),
        "dct:spatial": spatial,
        "dct:temporal": _period(r),
        "dcat:theme": {"@id": THEMES[r.focus_area.value]},
        "dcat:keyword": [_text(k, "en") for k in keywords],
        "dcat:landingPage": {"@id": page},
        "dcat:distribution": [
            _distribution(
                page + "#html",
                "HTML",
                "Result page",
                "The result as a web page, with schema.org Dataset markup.",
                page,
                download=False,
            ),
            _distribution(
                page + "#json",
                "JSON",
                "Result as JSON",
                "The result as a JSON document, as on the public topic kokeilu.results.v1 "
                "(schema fi.espoo.kokeilu.result.published.v1).",
                json_url(base, r),
                download=True,
            ),
        ],
    }
    if language in LANGUAGES:
        d["dct:language"] = {"@id": LANGUAGES[language]}
    return d


def _concept(iri: str, label: str, scheme: str, *types: str) -> dict[str, Any]:
    return {
        "@id": iri,
        "@type": ["skos:Concept", *types],
        "skos:prefLabel": _text(label, "en"),
        "skos:inScheme": {"@id": scheme},
    }


def _scheme(iri: str, title: str) -> dict[str, Any]:
    return {"@id": iri, "@type": "skos:ConceptScheme", "dct:title": _text(title, "en")}


def vocabulary(base: str) -> list[dict[str, Any]]:
    """The terms the catalogue uses, each with the class DCAT-AP expects of it, a label and its
    concept scheme (the EU vocabularies say the same; a validator without them needs it here)."""
    return [
        {
            **_concept(
                LICENCE, "Creative Commons Attribution 4.0 International", EU + "licence", "dct:LicenseDocument"
            ),
            "dct:type": {"@id": LICENCE_TYPE},
            "foaf:page": {"@id": LICENCE_URL},
        },
        _concept(LICENCE_TYPE, "Attribution", ADMS + "licencetype/1.0"),
        _concept(PUBLISHER_TYPE, "Local Authority", ADMS + "publishertype/1.0"),
        _concept(THEMES["smart_mobility"], "Transport", DATA_THEMES),
        _concept(THEMES["learning"], "Education, culture and sport", DATA_THEMES),
        _concept(THEMES["sustainable_development"], "Environment", DATA_THEMES),
        _concept(STABLE, "stable", EU + "planned-availability"),
        *(_concept(FILE_TYPE + kind, kind, EU + "file-type", "dct:MediaTypeOrExtent") for kind in MEDIA_TYPES),
        *(
            {"@id": iri, "@type": "dct:MediaType", "skos:notation": iri.removeprefix(IANA)}
            for iri in MEDIA_TYPES.values()
        ),
        *(
            _concept(iri, name, EU + "language", "dct:LinguisticSystem")
            for iri, name in zip(LANGUAGES.values(), ("Finnish", "Swedish", "English"), strict=True)
        ),
        {"@id": ESPOO, **_location("espoo", "Espoo")},
        {"@id": LICENCE_URL, "@type": "foaf:Document"},
        {"@id": index_url(base), "@type": "foaf:Document"},
        _scheme(DATA_THEMES, "Data theme"),
        _scheme(EU + "licence", "Licence"),
        _scheme(EU + "planned-availability", "Planned availability"),
        _scheme(EU + "file-type", "File type"),
        _scheme(EU + "language", "Language"),
        _scheme(ADMS + "licencetype/1.0", "Licence type"),
        _scheme(ADMS + "publishertype/1.0", "Publisher type"),
    ]


def catalog_jsonld(
    results: list[Result], base: str, publisher: str, languages: dict[str, str] | None = None
) -> dict[str, Any]:
    """The catalogue as DCAT-AP 3 JSON-LD: the dcat:Catalog, then the vocabulary terms it uses.
    `languages` gives, by result id, the language of a result's title and summary."""
    languages = languages or {}
    catalog = {
        "@id": catalog_url(base),
        "@type": "dcat:Catalog",
        "dct:title": _text(CATALOGUE_TITLE, "en"),
        "dct:description": _text(CATALOGUE_DESCRIPTION, "en"),
        "dct:publisher": _agent(publisher),
        "dct:license": {"@id": LICENCE},
        "dct:spatial": {"@id": ESPOO},
        "dct:language": [{"@id": iri} for iri in LANGUAGES.values()],
        "dcat:themeTaxonomy": {"@id": DATA_THEMES},
        "foaf:homepage": {"@id": index_url(base)},
        "dcat:dataset": [dataset(r, base, languages.get(r.result_id)) for r in results],
    }
    if results:  # the catalogue's first and latest publication: those of its results
        catalog["dct:issued"] = _date(min(r.published_at for r in results))
        catalog["dct:modified"] = _date(max(r.updated_at for r in results))
    return {"@context": CONTEXT, "@graph": [catalog, *vocabulary(base)]}


# -- CSV ----------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "result_id",
    "title",
    "summary",
    "focus_area",
    "environment",
    "status",
    "outcome",
    "proposer_kind",
    "organisation",
    "partners",
    "school_name",
    "hypothesis",
    "kpis",
    "budget_eur",
    "duration_weeks",
    "decision_rationale",
    "lessons_learned",
    "started_at",
    "completed_at",
    "published_at",
    "updated_at",
    "licence",
    "contact_unit",
    "url",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    # A text cell that a spreadsheet would run as a formula is quoted (CSV injection).
    return "'" + text if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def results_csv(results: list[Result], base: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        doc = r.model_dump(mode="json")
        doc["partners"] = "; ".join(r.partners)
        doc["kpis"] = json.dumps(doc["kpis"], ensure_ascii=False)
        doc["url"] = page_url(base, r)
        writer.writerow([_cell(doc.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


# -- HTML and schema.org ------------------------------------------------------------------------
def schema_org(r: Result, base: str) -> dict[str, Any]:
    page = page_url(base, r)
    return {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "@id": page,
        "url": page,
        "identifier": r.result_id,
        "name": r.title,
        "description": r.summary,
        "license": LICENCE_URL,
        "isAccessibleForFree": True,
        "creator": {"@type": "Organization", "name": r.contact_unit},
        "publisher": {"@type": "Organization", "name": r.contact_unit},
        "spatialCoverage": {"@type": "Place", "name": PLACES[r.environment.value]},
        "temporalCoverage": f"{(r.started_at or r.published_at).date().isoformat()}/"
        f"{r.completed_at.date().isoformat() if r.completed_at else '..'}",
        "keywords": [r.focus_area.value, r.environment.value, r.status.value],
        "datePublished": r.published_at.isoformat(),
        "dateModified": r.updated_at.isoformat(),
        "includedInDataCatalog": {"@type": "DataCatalog", "name": CATALOGUE_TITLE, "url": index_url(base)},
        "distribution": [
            {"@type": "DataDownload", "encodingFormat": "application/json", "contentUrl": json_url(base, r)}
        ],
    }
