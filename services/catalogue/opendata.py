"""Open data: the catalogue as DCAT-AP 3 JSON-LD, as CSV, and one HTML page per result with
schema.org Dataset markup. Pure functions of the published results (no personal data is in them)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from kokeilu.contracts.results import Result

LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"
ESPOO = "https://sws.geonames.org/660129/"  # GeoNames: Espoo, Finland
THEMES = {  # the EU data theme vocabulary, as DCAT-AP asks
    "smart_mobility": "http://publications.europa.eu/resource/authority/data-theme/TRAN",
    "learning": "http://publications.europa.eu/resource/authority/data-theme/EDUC",
    "sustainable_development": "http://publications.europa.eu/resource/authority/data-theme/ENVI",
}
PLACES = {"west_metro": "West Metro growth corridor, Espoo", "kera": "Kera, Espoo",
          "waterfront_walkway": "Waterfront Walkway, Espoo", "school": "Schools of Espoo", "citywide": "Espoo"}
FILE_TYPE = "http://publications.europa.eu/resource/authority/file-type/"
CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "schema": "http://schema.org/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "locn": "http://www.w3.org/ns/locn#",
}
CATALOGUE_TITLE = "Kokeilu: results of the City of Espoo's experimentation programme"
CATALOGUE_DESCRIPTION = ("Pilots run in Espoo's test environments with companies, schools and residents: what was "
                         "tried, where, with which KPIs, and what was learned. Licensed CC BY 4.0.")

_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html", "j2"]))


def page_url(base: str, r: Result) -> str:
    return f"{base.rstrip('/')}/results/{r.result_id}"


def _date(value) -> dict:
    return {"@value": value.isoformat(), "@type": "xsd:dateTime"}


def _agent(name: str) -> dict:
    return {"@type": "foaf:Agent", "foaf:name": name}


def dataset(r: Result, base: str) -> dict:
    page = page_url(base, r)
    api = f"{base.rstrip('/')}/v1/results/{r.result_id}"
    period = {"@type": "dct:PeriodOfTime", "dcat:startDate": _date(r.started_at or r.published_at)}
    if r.completed_at:
        period["dcat:endDate"] = _date(r.completed_at)
    keywords = [r.focus_area.value.replace("_", " "), r.environment.value.replace("_", " "), r.status.value]
    if r.outcome:
        keywords.append(r.outcome.value.replace("_", " "))
    licence = {"@id": LICENCE_URL}
    return {
        "@id": page,
        "@type": "dcat:Dataset",
        "dct:identifier": r.result_id,
        "dct:title": r.title,
        "dct:description": r.summary + (f"\n\nLessons learned: {r.lessons_learned}" if r.lessons_learned else ""),
        "dct:publisher": _agent(r.contact_unit),
        "dcat:contactPoint": {"@type": "vcard:Organization", "vcard:fn": r.contact_unit},
        "dct:license": licence,
        "dct:issued": _date(r.published_at),
        "dct:modified": _date(r.updated_at),
        "dct:spatial": {"@type": "dct:Location", "locn:geographicName": PLACES[r.environment.value],
                        "dct:isPartOf": {"@id": ESPOO}},
        "dct:temporal": period,
        "dcat:theme": {"@id": THEMES[r.focus_area.value]},
        "dcat:keyword": keywords,
        "dcat:landingPage": {"@id": page},
        "dcat:distribution": [
            {"@id": page + "#html", "@type": "dcat:Distribution", "dct:title": "Result page",
             "dcat:accessURL": {"@id": page}, "dct:format": {"@id": FILE_TYPE + "HTML"},
             "dcat:mediaType": {"@id": "https://www.iana.org/assignments/media-types/text/html"},
             "dct:license": licence},
            {"@id": page + "#json", "@type": "dcat:Distribution", "dct:title": "Result as JSON (catalogue API)",
             "dcat:accessURL": {"@id": api}, "dct:format": {"@id": FILE_TYPE + "JSON"},
             "dcat:mediaType": {"@id": "https://www.iana.org/assignments/media-types/application/json"},
             "dct:license": licence},
        ],
    }


def catalog_jsonld(results: list[Result], base: str, publisher: str) -> dict:
    base = base.rstrip("/")
    return {
        "@context": CONTEXT,
        "@id": f"{base}/v1/catalog.jsonld",
        "@type": "dcat:Catalog",
        "dct:title": CATALOGUE_TITLE,
        "dct:description": CATALOGUE_DESCRIPTION,
        "dct:publisher": _agent(publisher),
        "dct:license": {"@id": LICENCE_URL},
        "dct:spatial": {"@id": ESPOO},
        "foaf:homepage": {"@id": f"{base}/v1/results"},
        "dcat:dataset": [dataset(r, base) for r in results],
    }


CSV_COLUMNS = ("result_id", "title", "summary", "focus_area", "environment", "status", "outcome", "proposer_kind",
               "organisation", "partners", "school_name", "hypothesis", "kpis", "budget_eur", "duration_weeks",
               "decision_rationale", "lessons_learned", "started_at", "completed_at", "published_at", "updated_at",
               "licence", "contact_unit", "url")


def _cell(value) -> str:
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


def schema_org(r: Result, base: str) -> dict:
    page = page_url(base, r)
    return {
        "@context": "https://schema.org", "@type": "Dataset", "@id": page, "url": page, "identifier": r.result_id,
        "name": r.title, "description": r.summary, "license": LICENCE_URL,
        "isAccessibleForFree": True,
        "creator": {"@type": "Organization", "name": r.contact_unit},
        "publisher": {"@type": "Organization", "name": r.contact_unit},
        "spatialCoverage": {"@type": "Place", "name": PLACES[r.environment.value]},
        "temporalCoverage": f"{(r.started_at or r.published_at).date().isoformat()}/"
                            f"{r.completed_at.date().isoformat() if r.completed_at else '..'}",
        "keywords": [r.focus_area.value, r.environment.value, r.status.value],
        "datePublished": r.published_at.isoformat(), "dateModified": r.updated_at.isoformat(),
        "distribution": [{"@type": "DataDownload", "encodingFormat": "application/json",
                          "contentUrl": f"{base.rstrip('/')}/v1/results/{r.result_id}"}],
    }


def result_page(r: Result, base: str) -> str:
    return _templates.get_template("result.html.j2").render(r=r, ld=schema_org(r, base), place=PLACES[r.environment.value],
                                                            licence_url=LICENCE_URL)
