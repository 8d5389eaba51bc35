"""Idempotency-Key on POSTs: a repeated key (per token principal) on the same route replays the
stored response instead of doing the work again.

The key, the work and the stored answer are one transaction: the key is inserted first (its
primary key is the claim), the work runs in the same unit of work, and the answer is written
before the commit. So:

- a crash at any moment leaves either nothing (the retry does the work, at once) or the work
  together with its answer (the retry gets the first answer); never the work without the key;
- two requests racing with the same key cannot both do the work: the second one's insert waits
  for the first transaction (PostgreSQL: the unique key; SQLite: the file's write lock, which
  one transaction of any instance holds at a time) and then
  replays its answer, or, if the first was refused and rolled back, does the work itself;
- a refused request (an exception: 4xx or otherwise) changes nothing and keeps no key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from kokeilu.auth import Principal
from kokeilu.contracts import utcnow
from kokeilu.http import Unprocessable, json_response

from .ports import ProposalsUnitOfWork


class Request(Protocol):
    """What this needs of a request (kokeilu.http's entrypoint sets its principal)."""

    @property
    def headers(self) -> Headers: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def principal(self) -> Principal | None: ...


# What a request's work answers: (status, JSON body); or a response already made (a replay).
Answer = tuple[int, Any]
Work = Callable[[ProposalsUnitOfWork], Answer]

HEADER = "Idempotency-Key"
MAX_KEY = 200


def idempotent(request: Request, uow_factory: Callable[[], ProposalsUnitOfWork], work: Work) -> Answer | Response:
    """`work(uow)` does the request's work in the unit of work it is given and returns
    (status, body)."""
    key = request.headers.get(HEADER)
    if key is None:
        return work(uow_factory())
    if not key.strip() or len(key) > MAX_KEY:
        raise Unprocessable(f"{HEADER} must be 1 to {MAX_KEY} characters", {HEADER: "invalid"})
    principal = request.principal.name if request.principal else "anonymous"
    route = f"{request.method} {request.path}"
    try:
        return _once(uow_factory(), principal, key, route, work)
    except IntegrityError:  # a racing twin committed the same key first: replay its answer
        return _once(uow_factory(), principal, key, route, work)


def _once(uow: ProposalsUnitOfWork, principal: str, key: str, route: str, work: Work) -> Answer | Response:
    with uow:
        stored = uow.idempotency.get(principal, key)
        if stored is not None:
            if stored.route != route:
                raise Unprocessable(f"this {HEADER} was used for another request ({stored.route})", {HEADER: "reused"})
            return _replay(stored.status, stored.body)
        uow.idempotency.add(principal, key, route, utcnow())
        status, body = work(uow)
        if 200 <= status < 300:
            uow.idempotency.complete(principal, key, status, body)
        else:
            uow.idempotency.release(principal, key)
        uow.commit()
    return status, body


def _replay(status: int, body: Any) -> Response:
    response = json_response(body, status) if body is not None else Response(status=status)
    response.headers["Idempotent-Replayed"] = "true"
    return response
