"""The notifications store: subscriptions, a small projection of proposals (for focus-area
filters on events that do not carry it), deliveries and every attempt."""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from kokeilu.store import UnitOfWork, UtcDateTime, add_messaging_tables

from .domain import DeliveryStatus, Subscription, SubscriptionFilter

metadata = sa.MetaData()
add_messaging_tables(metadata)

subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("subscriber", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("filter", sa.JSON(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
)
proposal_areas = sa.Table(
    "proposal_areas", metadata,
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("focus_area", sa.String(40), nullable=False),
)
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("subscription_id", sa.String(64), nullable=False, index=True),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True, index=True),
    sa.Column("locked_until", UtcDateTime(), nullable=True),
    sa.Column("last_status_code", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.String(2000), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("subscription_id", "event_id", name="uq_delivery_per_event"),
)
attempts = sa.Table(
    "delivery_attempts", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(64), nullable=False, index=True),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("latency_seconds", sa.Float(), nullable=False),
    sa.Column("error", sa.String(2000), nullable=True),
)


def _subscription(row) -> Subscription:
    return Subscription(row.id, row.subscriber, row.channel, row.url,
                        SubscriptionFilter.model_validate(row.filter), row.created_at)


class SubscriptionRepository:
    def __init__(self, conn):
        self.conn = conn

    def add(self, s: Subscription) -> None:
        self.conn.execute(subscriptions.insert().values(
            id=s.id, subscriber=s.subscriber, channel=s.channel, url=s.url,
            filter=s.filter.model_dump(mode="json"), created_at=s.created_at))

    def active(self) -> list[Subscription]:
        rows = self.conn.execute(sa.select(subscriptions).where(subscriptions.c.deleted_at.is_(None))
                                 .order_by(subscriptions.c.created_at))
        return [_subscription(r) for r in rows]

    def delete(self, subscription_id: str, now: datetime) -> bool:
        return self.conn.execute(subscriptions.update().where(
            subscriptions.c.id == subscription_id, subscriptions.c.deleted_at.is_(None)).values(deleted_at=now)).rowcount > 0

    def remember_focus_area(self, proposal_id: str, focus_area: str) -> None:
        if self.focus_area_of(proposal_id) is None:
            self.conn.execute(proposal_areas.insert().values(proposal_id=proposal_id, focus_area=focus_area))

    def focus_area_of(self, proposal_id: str | None) -> str | None:
        if not proposal_id:
            return None
        return self.conn.execute(sa.select(proposal_areas.c.focus_area)
                                 .where(proposal_areas.c.proposal_id == proposal_id)).scalar_one_or_none()


class DeliveryRepository:
    def __init__(self, conn, is_sqlite: bool):
        self.conn = conn
        self.is_sqlite = is_sqlite

    def add(self, delivery_id, subscription_id, event_id, event_type, payload: bytes, now) -> None:
        self.conn.execute(deliveries.insert().values(
            id=delivery_id, subscription_id=subscription_id, event_id=event_id, event_type=event_type,
            payload=payload, status=DeliveryStatus.pending.value, attempts=0, next_attempt_at=now,
            created_at=now, updated_at=now))

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list:
        """Due deliveries, leased for `lease` so another instance does not send them too."""
        query = (sa.select(deliveries.c.id, deliveries.c.attempts, deliveries.c.payload, deliveries.c.event_id,
                           deliveries.c.event_type, deliveries.c.subscription_id, subscriptions.c.url,
                           subscriptions.c.channel)
                 .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
                 .where(deliveries.c.status == DeliveryStatus.pending.value,
                        deliveries.c.next_attempt_at <= now,
                        sa.or_(deliveries.c.locked_until.is_(None), deliveries.c.locked_until < now))
                 .order_by(deliveries.c.next_attempt_at).limit(limit))
        if not self.is_sqlite:
            query = query.with_for_update(of=deliveries, skip_locked=True)
        rows = list(self.conn.execute(query))
        if rows:
            self.conn.execute(deliveries.update().where(deliveries.c.id.in_([r.id for r in rows]))
                              .values(locked_until=now + lease))
        return rows

    def record_attempt(self, delivery_id, attempt, at, status_code, latency, error, status: DeliveryStatus,
                       next_attempt_at) -> None:
        self.conn.execute(attempts.insert().values(
            delivery_id=delivery_id, attempt=attempt, at=at, status_code=status_code,
            latency_seconds=latency, error=error))
        self.conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(
            attempts=attempt, status=status.value, next_attempt_at=next_attempt_at, locked_until=None,
            last_status_code=status_code, last_error=error, updated_at=at))

    def list(self, subscription_id: str | None, status: str | None, limit: int) -> list[dict]:
        query = sa.select(deliveries).order_by(deliveries.c.created_at.desc(), deliveries.c.id).limit(limit)
        if subscription_id:
            query = query.where(deliveries.c.subscription_id == subscription_id)
        if status:
            query = query.where(deliveries.c.status == status)
        rows = list(self.conn.execute(query))
        tries: dict[str, list] = {r.id: [] for r in rows}
        if rows:
            for a in self.conn.execute(sa.select(attempts).where(attempts.c.delivery_id.in_(list(tries)))
                                       .order_by(attempts.c.attempt)):
                tries[a.delivery_id].append({
                    "attempt": a.attempt, "at": a.at.isoformat(), "status_code": a.status_code,
                    "latency_seconds": round(a.latency_seconds, 4), "error": a.error})
        return [{
            "id": r.id, "subscription_id": r.subscription_id, "event_id": r.event_id, "event_type": r.event_type,
            "status": r.status, "attempts": tries[r.id],
            "next_attempt_at": r.next_attempt_at.isoformat() if r.next_attempt_at and r.status == "pending" else None,
            "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat(),
        } for r in rows]


class NotificationsUnitOfWork(UnitOfWork):
    def bind(self, conn):
        self.subscriptions = SubscriptionRepository(conn)
        self.deliveries = DeliveryRepository(conn, self.database.is_sqlite)
