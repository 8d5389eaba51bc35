"""Idempotency-Key on POSTs: a repeated key (per token principal) on the same route replays the
stored response instead of doing the work again.

Only successful (2xx) responses are stored: a refused request changed nothing, so repeating it
is harmless. The response is stored right after the work's own transaction; two requests with
the same key racing each other (rather than a retry after a lost answer) may both do the work.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from kokeilu.contracts import utcnow
from kokeilu.http import Unprocessable, json_response

HEADER = "Idempotency-Key"
MAX_KEY = 200


def idempotent(request, uow_factory: Callable, work: Callable[[], tuple[int, dict]]):
    key = request.headers.get(HEADER)
    if key is None:
        return work()
    if not key.strip() or len(key) > MAX_KEY:
        raise Unprocessable(f"{HEADER} must be 1 to {MAX_KEY} characters", {HEADER: "invalid"})
    principal = request.principal.name if request.principal else "anonymous"
    route = f"{request.method} {request.path}"
    with uow_factory() as uow:
        stored = uow.idempotency.get(principal, key)
    if stored is not None:
        if stored.route != route:
            raise Unprocessable(f"this {HEADER} was used for another request ({stored.route})", {HEADER: "reused"})
        return _replay(stored.status, stored.body)
    status, body = work()
    if 200 <= status < 300:
        try:
            with uow_factory() as uow:
                uow.idempotency.add(principal, key, route, status, body, utcnow())
                uow.commit()
        except IntegrityError:  # a concurrent request with the same key stored its answer first
            pass
    return status, body


def _replay(status: int, body) -> Response:
    response = json_response(body, status) if body is not None else Response(status=status)
    response.headers["Idempotent-Replayed"] = "true"
    return response
