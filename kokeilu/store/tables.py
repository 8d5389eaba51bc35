"""The outbox and inbox tables that every service's store has beside its own tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql

JSONB = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC) if value is not None else None

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[datetime | None], Any] | None:
        """On SQLite, the text SQLAlchemy's DATETIME would store for process_bind_param's value
        ("YYYY-MM-DD HH:MM:SS.ffffff", in UTC), written by datetime.isoformat at half the cost
        of the two steps (every row has a time or two); a test holds the two to the same text."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not UTC:
                if value.tzinfo is None:
                    raise ValueError("naive datetime given to a UtcDateTime column")
                value = value.astimezone(UTC)
            return value.isoformat(" ", "microseconds")[:26]

        return process

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def add_messaging_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
    )
    sa.Index("ix_outbox_unsent", outbox.c.sent_at, outbox.c.id)
    inbox = sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(400), primary_key=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("applied_at", UtcDateTime(), nullable=False),
    )
    return outbox, inbox


def create_messaging_tables(op: Any) -> None:  # alembic.op (a module of proxies)
    """For a service's first Alembic migration: create the outbox and inbox from the one definition above."""
    metadata = sa.MetaData()
    add_messaging_tables(metadata)
    bind = op.get_bind()
    metadata.create_all(bind)


def add_flows_table(metadata: sa.MetaData) -> sa.Table:
    """The flow (correlation id and the trace context it began in) of each aggregate this
    service has published events about, by the events' subject: what keeps an aggregate's later
    events, caused by an HTTP request or a timer rather than by an event, in its flow
    (kokeilu/tracing.py). For the services that act on aggregates outside events."""
    return sa.Table(
        "flows",
        metadata,
        sa.Column("subject", sa.String(200), primary_key=True),
        sa.Column("correlation_id", sa.String(200), nullable=False),
        sa.Column("traceparent", sa.String(512), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )


def create_flows_table(op: Any) -> None:  # alembic.op
    """For the migration that adds the flows table, from the one definition above."""
    metadata = sa.MetaData()
    add_flows_table(metadata)
    metadata.create_all(op.get_bind())
