"""Idempotency-Key on POSTs: a repeated key (per token principal) on the same route replays the
stored response instead of doing the work again.

The key is claimed before the work starts (a row with status 0, "in progress"), so two requests
with the same key racing each other cannot both do the work: the second is told 409 while the
first runs, and gets the replay after. Only successful (2xx) responses are kept; a refused
request releases its claim, since it changed nothing and may be repeated. A claim left behind by
a crash is taken over after STALE.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from kokeilu.contracts import utcnow
from kokeilu.http import Conflict, Unprocessable, json_response

HEADER = "Idempotency-Key"
MAX_KEY = 200
IN_PROGRESS = 0
STALE = timedelta(minutes=2)


def idempotent(request, uow_factory: Callable, work: Callable[[], tuple[int, dict]]):
    key = request.headers.get(HEADER)
    if key is None:
        return work()
    if not key.strip() or len(key) > MAX_KEY:
        raise Unprocessable(f"{HEADER} must be 1 to {MAX_KEY} characters", {HEADER: "invalid"})
    principal = request.principal.name if request.principal else "anonymous"
    route = f"{request.method} {request.path}"
    try:
        replay = _claim(uow_factory, principal, key, route)
    except IntegrityError:  # another instance claimed it between our read and our insert
        replay = _claim(uow_factory, principal, key, route)
    if replay is not None:
        return replay
    try:
        status, body = work()
    except BaseException:
        _finish(uow_factory, principal, key, None, None)
        raise
    _finish(uow_factory, principal, key, status, body)
    return status, body


def _claim(uow_factory, principal: str, key: str, route: str) -> Response | None:
    """None when this request now owns the key; otherwise the answer to give instead."""
    now = utcnow()
    with uow_factory() as uow:
        stored = uow.idempotency.get(principal, key)
        if stored is None:
            uow.idempotency.add(principal, key, route, IN_PROGRESS, None, now)
            uow.commit()
            return None
        if stored.route != route:
            raise Unprocessable(f"this {HEADER} was used for another request ({stored.route})", {HEADER: "reused"})
        if stored.status != IN_PROGRESS:
            return _replay(stored.status, stored.body)
        if now - stored.created_at < STALE:
            raise Conflict(f"a request with this {HEADER} is still in progress; retry shortly", {HEADER: "in_progress"})
        uow.idempotency.retake(principal, key, now)
        uow.commit()
        return None


def _finish(uow_factory, principal: str, key: str, status: int | None, body) -> None:
    with uow_factory() as uow:
        if status is not None and 200 <= status < 300:
            uow.idempotency.complete(principal, key, status, body)
        else:
            uow.idempotency.release(principal, key)
        uow.commit()


def _replay(status: int, body) -> Response:
    response = json_response(body, status) if body is not None else Response(status=status)
    response.headers["Idempotent-Replayed"] = "true"
    return response
