"""The OpenAPI 3.1 document of each service, generated from its route table: every `@api`
entrypoint of the service class (method, path, scope, body model, and what the route's
decorator says of its responses) and the pydantic models the service itself validates with.

    document("proposals")        # the document as a dict
    python -m kokeilu.contracts.schemas   # writes schemas/openapi/<service>.json (and --check)

Each service serves its own at `GET /openapi.json` (no token), built once from the class it runs.
A route added to a service class is in its document at the next `make schemas`; a route whose
decorator says nothing more is documented as answering a JSON object with the errors every route
of its kind can answer.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from kokeilu.auth import SCOPES

from .entrypoint import Api
from .inputs import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_PATH_VALUE

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
SERVICES = {
    "proposals": ("services.proposals.service:ProposalsService", 8001),
    "evaluation": ("services.evaluation.service:EvaluationService", 8002),
    "notifications": ("services.notifications.service:NotificationsService", 8003),
    "catalogue": ("services.catalogue.service:CatalogueService", 8004),
}
DESCRIPTIONS = {
    "proposals": "Proposals, their revisions, pilots and KPI measurements.",
    "evaluation": "Screenings, evaluation panels, conflict declarations, scores and decisions.",
    "notifications": "Subscriptions (webhook, e-mail, daily digest) and their deliveries.",
    "catalogue": "The results catalogue: search, single results and the public open data.",
}
IDEMPOTENCY_HEADER = "Idempotency-Key"
REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_METHOD_ORDER = {m: i for i, m in enumerate(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])}

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error of the API, including those the web server writes itself.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "additionalProperties": True,
            "description": "Some errors carry more: a 403 `required_scope`; a 409 `illegal_transition` "
            "`current_status` and `allowed_actions`.",
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. `validation_failed`."},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "What is wrong, by field: dotted paths, list items by index "
                    "(`proposer.contact_email`, `kpis.0.target`), `(body)` for the whole body.",
                },
                "required_scope": {"type": "string"},
                "current_status": {"type": "string"},
                "allowed_actions": {"type": "array", "items": {"type": "string"}},
            },
        }
    },
}


def _error(code: str, message: str, **more: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": more.pop("fields", {}), **more}}


# status: (component name, description, example, headers)
ERRORS: dict[int, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    400: (
        "BadRequest",
        "The body is not a JSON object, or nests deeper than "
        f"{MAX_JSON_DEPTH} levels, or the query string is not UTF-8, or the request's framing is malformed.",
        _error(
            "bad_request",
            "request body is not JSON: Expecting value: line 1 column 1 (char 0)",
            fields={"(body)": "not JSON"},
        ),
        {},
    ),
    401: (
        "Unauthenticated",
        "No valid bearer token.",
        _error("unauthenticated", "missing Authorization header; send 'Authorization: Bearer <token>'"),
        {"WWW-Authenticate": {"description": '`Bearer realm="kokeilu"`', "schema": {"type": "string"}}},
    ),
    403: (
        "Forbidden",
        "The token lacks the route's scope (the error names `required_scope`).",
        _error("forbidden", "this token lacks the scope 'proposals:write'", required_scope="proposals:write"),
        {},
    ),
    404: (
        "NotFound",
        "No such id (the error names the path parameter).",
        _error("not_found", "no proposal 7f0c6d9e-0000-4000-8000-000000000001", fields={"proposal_id": "unknown"}),
        {},
    ),
    408: (
        "RequestTimeout",
        "An announced body did not arrive in time; the connection is closed.",
        _error("request_timeout", "the request body did not arrive within 20 seconds", fields={"(body)": "timed out"}),
        {},
    ),
    409: (
        "Conflict",
        "The action is not allowed in the current state.",
        _error(
            "illegal_transition",
            "cannot withdraw a proposal that is completed",
            current_status="completed",
            allowed_actions=[],
        ),
        {},
    ),
    411: (
        "LengthRequired",
        "A chunked body: send it with a Content-Length.",
        _error(
            "length_required",
            "send the body with a Content-Length (chunked bodies are not read)",
            fields={"Content-Length": "required"},
        ),
        {},
    ),
    413: (
        "PayloadTooLarge",
        f"A body over {MAX_BODY_BYTES} bytes, or one whose event would not fit on a topic.",
        _error("payload_too_large", f"request body larger than {MAX_BODY_BYTES} bytes", fields={"(body)": "too large"}),
        {},
    ),
    422: (
        "ValidationFailed",
        "A body, query or path value fails validation (NUL characters and lone surrogates "
        f"included, path values longer than {MAX_PATH_VALUE} characters); `fields` names each.",
        _error(
            "validation_failed",
            "the request is not valid: proposer.contact_email",
            fields={"proposer.contact_email": "String should match pattern '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'"},
        ),
        {},
    ),
    503: (
        "Unavailable",
        "Try again shortly: the store was briefly unavailable, or the service has more open "
        "connections than it serves at once.",
        _error("unavailable", "a dependency is briefly unavailable; try again shortly"),
        {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    ),
}


def service_class(service: str) -> type:
    module, _, name = SERVICES[service][0].partition(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def routes(cls: type) -> list[tuple[str, Api]]:
    """(method name, entrypoint) of every `@api` route of `cls`, in path order."""
    found = []
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        for entrypoint in getattr(fn, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, Api):
                found.append((name, entrypoint))
    return sorted(found, key=lambda r: (openapi_path(r[1].url), _METHOD_ORDER.get(r[1].method, 99)))


def openapi_path(url: str) -> str:
    return _PATH_PARAM.sub(r"{\1}", url)


def path_params(url: str) -> list[str]:
    return _PATH_PARAM.findall(url)


def _summary(fn: Callable[..., Any]) -> tuple[str, str | None]:
    doc = inspect.getdoc(fn)
    if not doc:
        return fn.__name__.replace("_", " ").capitalize(), None
    first, _, rest = doc.partition("\n\n")
    return " ".join(first.split()), (" ".join(rest.split()) or None)


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: `X | None = None` is just an optional X."""
    schema = dict(schema)
    options = schema.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        schema.pop("anyOf")
        schema = {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **schema}
    if schema.get("default", ...) is None:
        schema.pop("default")
    return schema


# (model, "validation" or "serialization") -> its schema, or a $ref to it (pydantic's models_json_schema).
Refs = dict[Any, dict[str, Any]]


def _model_schemas(entrypoints: list[Api]) -> tuple[dict[str, Any], Refs]:
    """The component schemas of every model the routes use, and a ref (or schema) per (model, mode)."""
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for ep in entrypoints:
        wanted: list[tuple[type[BaseModel] | None, JsonSchemaMode]] = [
            (ep.body_model, "validation"),
            (ep.doc.query, "validation"),
            (ep.doc.response, "serialization"),
        ]
        wanted += [(m, "serialization") for m in ep.doc.responses.values()]
        pairs += [(m, mode) for m, mode in wanted if m is not None and (m, mode) not in pairs]
    if not pairs:
        return {}, {}
    refs, defs = models_json_schema(pairs, ref_template=REF)
    return defs.get("$defs", {}), dict(refs)


def _error_ref(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{ERRORS[status][0]}"}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def operation(
    method_name: str, fn: Callable[..., Any], ep: Api, refs: Refs, components: dict[str, Any]
) -> dict[str, Any]:
    summary, description = _summary(fn)
    doc = ep.doc
    op: dict[str, Any] = {"operationId": method_name, "summary": summary}
    scope_text = (
        "Public: no token needed."
        if ep.public
        else f"Needs a bearer token with the scope `{ep.scope}` (or `admin`)."
        if ep.scope
        else "Needs a bearer token (any scope)."
    )
    op["description"] = " ".join(filter(None, [description, scope_text]))
    op["security"] = [] if ep.public else [{"bearer": [ep.scope] if ep.scope else []}]

    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_PATH_VALUE},
        }
        for name in path_params(ep.url)
    ]
    if doc.query is not None:
        # (a query model is no component of its own: _built drops it once every route has read it)
        query = components[refs[(doc.query, "validation")]["$ref"].rsplit("/", 1)[1]]
        required = set(query.get("required", ()))
        for name, schema in query.get("properties", {}).items():
            schema = _without_null(schema)
            param = {"name": name, "in": "query", "required": name in required}
            if "description" in schema:
                param["description"] = schema["description"]
            param["schema"] = schema
            if schema.get("type") == "array":
                param["description"] = (
                    param.get("description", "") + " Repeat the parameter, or give the values comma-separated."
                ).strip()
                param.update(style="form", explode=True)
            params.append(param)
    if doc.idempotent:
        params.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if params:
        op["parameters"] = params

    if ep.body_model is not None:
        media = {"schema": refs[(ep.body_model, "validation")]}
        if doc.example is not None:
            media["example"] = doc.example
        op["requestBody"] = {
            "required": True,
            "description": f"JSON, at most {MAX_BODY_BYTES} bytes.",
            "content": {"application/json": media},
        }

    responses: dict[str, Any] = {}
    success: dict[str, Any] = {"description": "Success."}
    if doc.status != 204:
        if doc.response is not None:
            schema = refs[(doc.response, "serialization")]
        elif doc.media_type == "application/json" or doc.media_type.endswith("+json"):
            schema = {"type": "object", "description": "A JSON object (not described further)."}
        else:
            schema = {"type": "string"}
        success["content"] = {doc.media_type: {"schema": schema}}
    if doc.idempotent:
        success["headers"] = {
            "Idempotent-Replayed": {
                "description": "`true` when this is the stored answer to an earlier request with the same "
                "Idempotency-Key.",
                "schema": {"type": "string", "enum": ["true"]},
            }
        }
    responses[str(doc.status)] = success

    statuses = {400, 422, 503} | set(doc.errors)
    if not ep.public:
        statuses |= {401, 403}
    if path_params(ep.url):
        statuses.add(404)
    if ep.body_model is not None:
        statuses |= {408, 411, 413}
    for status in sorted(statuses | set(doc.responses)):
        model = doc.responses.get(status)
        if model is None:
            responses[str(status)] = _error_ref(status)
        else:
            schema = refs[(model, "serialization")]
            if status in statuses:  # the route's own body, or the platform's error (e.g. an overloaded server)
                schema = {"anyOf": [schema, {"$ref": "#/components/schemas/Error"}]}
            responses[str(status)] = {
                "description": ERRORS[status][1] if status in ERRORS else "See the schema.",
                "content": _json_content(schema),
            }
    op["responses"] = responses
    return op


def _links(paths: dict[str, Any]) -> None:
    """A POST that creates something (201 with an `id`) links to every operation on the
    created item's own path (`<collection>/{param}...`), with the param taken from the answer."""
    for path, item in paths.items():
        post = item.get("post")
        created = post and post["responses"].get("201")
        if not created or "content" not in created:
            continue
        links = {}
        for other, other_item in paths.items():
            match = re.fullmatch(re.escape(path) + r"/\{([^}]+)\}(/.*)?", other)
            if not match:
                continue
            for op in other_item.values():
                links[op["operationId"]] = {
                    "operationId": op["operationId"],
                    "parameters": {match.group(1): "$response.body#/id"},
                }
        if links:
            created["links"] = dict(sorted(links.items()))


def document(service: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `service`, from its class's route table."""
    return build(service_class(service), service)


@cache
def _built(cls: type, service: str) -> dict[str, Any]:
    found = routes(cls)
    entrypoints = [ep for _, ep in found]
    components, refs = _model_schemas(entrypoints)
    paths: dict[str, Any] = {}
    for method_name, ep in found:
        fn = getattr(cls, method_name)
        paths.setdefault(openapi_path(ep.url), {})[ep.method.lower()] = operation(method_name, fn, ep, refs, components)
    for ep in entrypoints:
        if ep.doc.query is not None:
            components.pop(refs[(ep.doc.query, "validation")]["$ref"].rsplit("/", 1)[1], None)
    _links(paths)
    used = {
        status for status, (name, *_rest) in ERRORS.items() if f'"#/components/responses/{name}"' in json.dumps(paths)
    }
    scope_lines = "\n".join(f"- `{s}`" for s in SCOPES)
    port = SERVICES.get(service, (None, None))[1]
    doc: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"Kokeilu {service}",
            "version": API_VERSION,
            "summary": DESCRIPTIONS.get(service, service),
            "description": (
                f"{DESCRIPTIONS.get(service, '')} Generated from the service's route table and models "
                "(`python -m kokeilu.contracts.schemas`); the service serves it at `GET /openapi.json`.\n\n"
                'Errors are always `{"error": {"code", "message", "fields"}}`. Every route but the '
                "public ones needs `Authorization: Bearer <token>` with the scope its `security` names "
                "(`admin` has them all). No bad input gets a 5xx: a 503 means try again shortly."
            ),
            "license": {"name": "EUPL-1.2", "identifier": "EUPL-1.2"},
        },
        "servers": [{"url": f"http://127.0.0.1:{port}", "description": "`make run`"}] if port else [],
        "tags": [{"name": service, "description": DESCRIPTIONS.get(service, service)}],
        "paths": paths,
        "components": {
            "schemas": {**components, "Error": ERROR_SCHEMA},
            "responses": {
                ERRORS[s][0]: {
                    "description": ERRORS[s][1],
                    **({"headers": ERRORS[s][3]} if ERRORS[s][3] else {}),
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "example": ERRORS[s][2]}
                    },
                }
                for s in sorted(used)
            },
            "parameters": {
                "IdempotencyKey": {
                    "name": IDEMPOTENCY_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Any unique string per request (e.g. a UUID). A retry with the same key (same token, "
                    "same route) gets the stored answer of the first request, never a second effect; "
                    "a key used for another route is a 422.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
                }
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token configured by its SHA-256 (`KOKEILU_TOKENS`), or `KOKEILU_ADMIN_TOKEN`. "
                    "Each operation's security requirement names the scope it needs; `admin` has every "
                    "scope. Scopes:\n" + scope_lines,
                }
            },
        },
    }
    for op in (op for item in paths.values() for op in item.values()):
        op["tags"] = [service]
    if not any(ep.doc.idempotent for ep in entrypoints):
        del doc["components"]["parameters"]
    return doc


def build(cls: type, service: str) -> dict[str, Any]:
    """The document of service class `cls` (built once per class; a copy each call)."""
    return copy.deepcopy(_built(cls, service))


@cache
def served(cls: type, service: str) -> bytes:
    """What `GET /openapi.json` answers: the document as JSON, built once per process."""
    return (json.dumps(_built(cls, service), indent=2, sort_keys=True) + "\n").encode()
