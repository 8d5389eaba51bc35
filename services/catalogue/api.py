"""The catalogue over HTTP: how query strings are read and how the domain's refusals are answered
(ERRORS, read by the `api` entrypoint). The portal's HTML pages are in portal.py."""

from __future__ import annotations

from werkzeug.wrappers import Request

from kokeilu.http.entrypoint import Refusal

from .search import BadCursor

ERRORS = {
    BadCursor: Refusal(
        422,
        "validation_failed",
        message=lambda exc: f"the request is not valid: cursor ({exc})",
        fields=lambda exc: {"cursor": str(exc)},
    ),
}


def query_args(request: Request) -> dict[str, str]:
    """Query parameters; a repeated one (status=a&status=b) is read as a list."""
    return {k: ",".join(v) if len(v) > 1 else v[0] for k, v in request.args.lists()}
