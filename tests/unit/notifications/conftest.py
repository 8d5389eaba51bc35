"""Fixtures of the notifications tests that run on the service's real store (a SQLite file of the
test's own): digests are grouped and unsubscribe links followed by its queries."""

import json

import pytest

from kokeilu.contracts import decode, parse_envelope
from services.notifications import handlers
from services.notifications.store import NotificationsUnitOfWork
from tests.support import database


@pytest.fixture
def uow_factory(tmp_path):
    """Units of work of the notifications service on a store of the test's own."""
    db = database(tmp_path, "notifications")
    yield lambda: NotificationsUnitOfWork(db)
    db.dispose()


@pytest.fixture
def apply(uow_factory):
    """A raw event (as on a topic) applied by the notifications service's handler."""

    def apply(raw: dict) -> str:
        event = parse_envelope(json.dumps(raw).encode())
        return handlers.on_event(event, decode(event), uow_factory())

    return apply
