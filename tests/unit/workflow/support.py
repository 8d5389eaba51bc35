"""Helpers of the workflow unit tests: the services' real stores on a SQLite file of the test's
own (migrated by Alembic), and readers of what a unit of work recorded in the outbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from kokeilu.contracts import CloudEvent, new_event
from kokeilu.contracts.catalog import BY_NAME
from kokeilu.contracts.proposals import Submission
from kokeilu.store import INBOX, OUTBOX, Database
from tests.support import submission as submission_body

ROOT = Path(__file__).resolve().parents[3]
WHEN = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def database(tmp_path: Path, service: str) -> Database:
    db = Database(f"sqlite:///{tmp_path / service}.db", ROOT / "services" / service / "migrations")
    db.migrate()
    return db


def notifications_store(tmp_path: Path):
    """A fixture body: units of work of the notifications service on a store of the test's own."""
    from services.notifications.store import NotificationsUnitOfWork

    db = database(tmp_path, "notifications")
    yield lambda: NotificationsUnitOfWork(db)
    db.dispose()


def apply_to_notifications(uow_factory, raw: dict) -> str:
    """A raw event (as on a topic) applied by the notifications service's handler."""
    from kokeilu.contracts import decode, parse_envelope
    from services.notifications import handlers

    event = parse_envelope(json.dumps(raw).encode())
    return handlers.on_event(event, decode(event), uow_factory())


def outbox(db: Database, type_: str | None = None) -> list[CloudEvent]:
    with db.transaction() as conn:
        rows = list(conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id)))
    events = [CloudEvent.model_validate(json.loads(r.value)) for r in rows if r.event_type != "deadletter"]
    return [e for e in events if type_ is None or e.type == type_ or e.type.endswith("." + type_)]


def inbox_size(db: Database) -> int:
    with db.transaction() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(INBOX)).scalar_one()


def submission(**overrides) -> Submission:
    return Submission.model_validate(submission_body(**overrides))


def event(
    type_short: str, data, source: str = "tests", event_id: str | None = None, subject: str | None = None
) -> CloudEvent:
    t = BY_NAME["fi.espoo.kokeilu." + type_short]
    e = new_event(
        t.name,
        data,
        source=source,
        subject=subject or getattr(data, "proposal_id", None) or "x",
        dataschema=t.dataschema,
    )
    return e.model_copy(update={"id": event_id}) if event_id else e


def redelivery(e: CloudEvent) -> CloudEvent:
    """The same event again (same source and id), as a fresh object."""
    return CloudEvent.model_validate(json.loads(e.to_bytes()))


def new_id() -> str:
    return str(uuid.uuid4())
