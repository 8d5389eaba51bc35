"""API errors as JSON: {"error": {"code", "message", "fields"}}."""
from __future__ import annotations

import json

from pydantic import ValidationError
from werkzeug.wrappers import Response


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Unprocessable(ApiError):
    status, code = 422, "validation_failed"


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, default=str), status=status, headers=headers, mimetype="application/json")


def error_response(status: int, code: str, message: str, fields: dict | None = None, **extra) -> Response:
    error = {"code": code, "message": message, "fields": fields or {}}
    error.update(extra)
    return json_response({"error": error}, status)


def validation_fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
        fields.setdefault(where, err["msg"])
    return fields
