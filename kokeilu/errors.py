"""How a consumer tells a failure that will pass from one that will not."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


class TransientError(Exception):
    """Retry later: a dependency is briefly unavailable."""


class PermanentError(Exception):
    """This event can never be applied (unknown proposal, wrong state ...): dead-letter it."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (TransientError, OperationalError, InterfaceError, ConnectionError, TimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
