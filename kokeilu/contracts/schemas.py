"""Generates the checked-in JSON Schemas, the AsyncAPI document and each service's OpenAPI
document (schemas/openapi/<service>.json, from the service's route table: kokeilu/http/openapi.py)
from the models.

    python -m kokeilu.contracts.schemas           # rewrite schemas/
    python -m kokeilu.contracts.schemas --check   # exit 1 when schemas/ is stale

Other departments build on these files, so they are part of the product: regenerate and commit
them with every contract change (a test fails when they are stale).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .asyncapi import document as asyncapi_document
from .asyncapi import subject_description
from .catalog import ALL, EventType

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def event_schema(event_type: EventType) -> dict[str, Any]:
    data_schema = event_type.model.model_json_schema(mode="serialization")
    defs = data_schema.pop("$defs", {})
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": event_type.dataschema,
        "title": event_type.name,
        "description": event_type.summary + " CloudEvents 1.0, structured JSON mode.",
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1},
            "source": {"type": "string", "minLength": 1},
            "type": {"const": event_type.name},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string", "description": subject_description(event_type)},
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"const": event_type.dataschema},
            "correlationid": {
                "type": "string",
                "description": "The same for every event about one proposal, "
                "caused directly or not by one submission or intake event.",
            },
            "causationid": {"type": "string", "description": "The id of the event that caused this one."},
            "traceparent": {
                "type": "string",
                "maxLength": 512,
                "description": "W3C Trace Context of the span that produced the event (CloudEvents "
                "distributed-tracing extension); one proposal is one trace.",
            },
            "tracestate": {"type": "string", "maxLength": 512},
            "data": data_schema,
        },
    }
    if defs:
        schema["$defs"] = defs
    return schema


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document: kokeilu/contracts/asyncapi.py."""
    return asyncapi_document()


def openapi_documents() -> dict[Path, dict[str, Any]]:
    """One OpenAPI 3.1 document per service. Imported here, not at the top: the contract models
    themselves import no nameko, and only this reads the services' route tables."""
    from kokeilu.http import openapi

    return {SCHEMA_DIR / "openapi" / f"{service}.json": openapi.document(service) for service in openapi.SERVICES}


GENERATED_DIRS = ("events", "openapi")


def render() -> dict[Path, str]:
    files = {SCHEMA_DIR / "events" / f"{t.name}.v{t.version}.json": event_schema(t) for t in ALL}
    files[SCHEMA_DIR / "asyncapi.json"] = asyncapi()
    files.update(openapi_documents())
    return {path: json.dumps(body, indent=2, sort_keys=True) + "\n" for path, body in files.items()}


def stale() -> list[Path]:
    expected = render()
    present = {p for d in GENERATED_DIRS if (SCHEMA_DIR / d).exists() for p in (SCHEMA_DIR / d).glob("*.json")}
    out = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    out += sorted(present - set(expected))
    return out


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for path in bad:
            print(f"stale: {path}")
        return 1 if bad else 0
    files = render()
    for directory in GENERATED_DIRS:
        (SCHEMA_DIR / directory).mkdir(parents=True, exist_ok=True)
        for old in (SCHEMA_DIR / directory).glob("*.json"):
            old.unlink()
    for path, text in files.items():
        path.write_text(text)
    print(f"wrote {len(files)} files under {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
