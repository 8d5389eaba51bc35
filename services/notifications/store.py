"""The notifications store: subscriptions, a small projection of proposals (for focus-area
filters on events that do not carry it), deliveries and every attempt."""

from __future__ import annotations

import uuid
import weakref
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from kokeilu.contracts import service_source
from kokeilu.store import UnitOfWork, UtcDateTime, add_messaging_tables
from kokeilu.store.statements import insert_new

from .domain import DeliveryStatus, Subscription, SubscriptionFilter
from .ports import AttemptMade, NewDelivery, NewDigestItem

metadata = sa.MetaData()
add_messaging_tables(metadata)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("subscriber", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("url", sa.String(2000), nullable=True),
    sa.Column("filter", sa.JSON(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("deleted_at", UtcDateTime(), nullable=True),
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("mode", sa.String(20), nullable=False, server_default="immediate"),
    sa.Column("secret", sa.String(100), nullable=True),
    sa.Column("language", sa.String(5), nullable=False, server_default="fi"),
    # The token principal that made it; rows from before owners existed belong to "admin".
    sa.Column("owner", sa.String(200), nullable=False, server_default="admin", index=True),
    # Whether the owner had the personal-data scope (otherwise what it receives is redacted).
    sa.Column("personal_data", sa.Boolean(), nullable=False, server_default=sa.false()),
)
# One row: a token that changes with every change to a subscription (in the same transaction), so
# an instance knows whether the matching index it holds (SubscriptionIndex) is still the store's.
subscription_changes = sa.Table(
    "subscription_changes",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("version", sa.String(32), nullable=False),
)
# What notifications knows of each proposal: for filters, the e-mail language, and the proposer's
# address (personal data; it stays in this store and never goes on a topic).
proposal_areas = sa.Table(
    "proposal_areas",
    metadata,
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("focus_area", sa.String(40), nullable=False),
    sa.Column("environment", sa.String(40), nullable=True),
    sa.Column("language", sa.String(5), nullable=True),
    sa.Column("title", sa.String(200), nullable=True),
    sa.Column("contact_email", sa.String(254), nullable=True),
    # A resident proposer's name (their "organisation"): personal data, only to redact it from
    # what subscribers without the personal-data scope receive.
    sa.Column("resident_name", sa.String(200), nullable=True),
    # When the proposer followed the unsubscribe link of an e-mail about this proposal: no more
    # proposer e-mails about it (per proposal, not per address; see docs/operations.md "E-mail").
    sa.Column("proposer_opted_out_at", UtcDateTime(), nullable=True),
)
deliveries = sa.Table(
    "deliveries",
    metadata,
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
    sa.Column("kind", sa.String(20), nullable=False, server_default="event"),
    sa.Column("channel", sa.String(20), nullable=True),
    sa.Column("recipient", sa.String(2000), nullable=True),
    sa.Column("language", sa.String(5), nullable=True),
    # 0005: the flow of the event delivered (kokeilu/tracing.py), which its outcome event joins
    sa.Column("correlation_id", sa.String(200), nullable=True),
    sa.Column("traceparent", sa.String(512), nullable=True),
    sa.UniqueConstraint("subscription_id", "event_id", name="uq_delivery_per_event"),
)
# Events waiting for a subscription's next digest; `digest_id` is the delivery that carried them.
digest_items = sa.Table(
    "digest_items",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.String(64), nullable=False, index=True),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("digest_id", sa.String(64), nullable=True, index=True),
    sa.UniqueConstraint("subscription_id", "event_id", name="uq_digest_item_per_event"),
)
# One row per digest window: the job that built it (an instance that finds the row there does nothing).
digest_runs = sa.Table(
    "digest_runs",
    metadata,
    sa.Column("window_end", UtcDateTime(), primary_key=True),
    sa.Column("ran_at", UtcDateTime(), nullable=False),
    sa.Column("items", sa.Integer(), nullable=False),
    sa.Column("digests", sa.Integer(), nullable=False),
)

attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(64), nullable=False, index=True),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("latency_seconds", sa.Float(), nullable=False),
    sa.Column("error", sa.String(2000), nullable=True),
)


def _subscription(row: sa.Row[Any]) -> Subscription:
    return Subscription(
        row.id,
        row.subscriber,
        row.channel,
        row.url,
        SubscriptionFilter.model_validate(row.filter),
        row.created_at,
        email=row.email,
        mode=row.mode,
        secret=row.secret,
        language=row.language,
        owner=row.owner,
        personal_data=bool(row.personal_data),
    )


def _subscription_values(s: Subscription) -> dict[str, Any]:
    return dict(
        subscriber=s.subscriber,
        channel=s.channel,
        url=s.url,
        filter=s.filter.model_dump(mode="json"),
        email=s.email,
        mode=s.mode,
        secret=s.secret,
        language=s.language,
        owner=s.owner,
        personal_data=s.personal_data,
    )


class SubscriptionIndex:
    """The active subscriptions by the filter values they name, so that the ones an event may
    match are found by key, whatever the number of subscriptions: each is filed under every
    (event type, focus area, proposal id) its filter allows, "*" for a part the filter leaves
    open. The candidates are then checked with Subscription.matches (environments too)."""

    def __init__(self, active: list[Subscription]):
        self.by_key: dict[tuple[str, str, str], list[tuple[int, Subscription]]] = defaultdict(list)
        for order, sub in enumerate(active):
            f = sub.filter
            for t in f.types or ["*"]:
                for area in [a.value for a in f.focus_areas] or ["*"]:
                    self.by_key[(t, area, f.proposal_id or "*")].append((order, sub))

    def candidates(self, event_type: str, focus_area: str | None, proposal_id: str | None) -> list[Subscription]:
        found: dict[int, Subscription] = {}
        for t in (event_type, "*"):
            for area in (focus_area, "*") if focus_area else ("*",):
                for pid in (proposal_id, "*") if proposal_id else ("*",):
                    found.update(self.by_key.get((t, area, pid), ()))
        return [found[order] for order in sorted(found)]  # in the order they were made, as before


# Each database's index, with the version of the subscriptions it was built from.
_INDEXES: weakref.WeakKeyDictionary[sa.Engine, tuple[str, SubscriptionIndex]] = weakref.WeakKeyDictionary()
# Statements of the consume path (every event), built once: building one costs more than running it.
_PROPOSAL = sa.select(proposal_areas).where(proposal_areas.c.proposal_id == sa.bindparam("id"))
_UPDATE_PROPOSAL = proposal_areas.update().where(proposal_areas.c.proposal_id == sa.bindparam("_id"))
_INSERT_PROPOSAL = proposal_areas.insert()
_INSERT_DELIVERY = deliveries.insert()
_INSERT_DIGEST_ITEM = digest_items.insert()
_VERSION = sa.select(subscription_changes.c.version).where(subscription_changes.c.id == 1)
_INSERT_ATTEMPT = attempts.insert()
_RECORD_ATTEMPT = deliveries.update().where(deliveries.c.id == sa.bindparam("_id"))
_BUMP = subscription_changes.update().where(subscription_changes.c.id == 1).values(version=sa.bindparam("version"))


class SubscriptionRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn
        # The subscriptions' version as this transaction read it (matching): read once for a
        # run of events applied together, again after this transaction changed a subscription.
        self._version: str | None = None
        # The proposals' facts this transaction read (proposal): an event of a proposal read
        # before in the run reads them from here; what this repository writes drops them.
        self._facts: dict[str, dict[str, Any] | None] = {}

    def _changed(self) -> None:
        self._version = None
        self.conn.execute(_BUMP, {"version": uuid.uuid4().hex})

    def matching(
        self, event_type: str, focus_area: str | None, environment: str | None, proposal_id: str | None
    ) -> list[Subscription]:
        """The active subscriptions whose filter matches, in the order they were made: found
        through this process's SubscriptionIndex, rebuilt when a subscription changed since
        (one key lookup per event otherwise, however many subscriptions there are)."""
        version = self._version
        if version is None:
            version = self._version = self.conn.execute(_VERSION).scalar_one()
        held = _INDEXES.get(self.conn.engine)
        if held is None or held[0] != version:
            held = version, SubscriptionIndex(self.active())
            _INDEXES[self.conn.engine] = held
        return [
            s
            for s in held[1].candidates(event_type, focus_area, proposal_id)
            if s.matches(event_type, focus_area, environment, proposal_id)
        ]

    def add(self, s: Subscription) -> None:
        self.conn.execute(subscriptions.insert().values(id=s.id, created_at=s.created_at, **_subscription_values(s)))
        self._changed()

    def get(self, subscription_id: str) -> Subscription | None:
        row = self.conn.execute(
            sa.select(subscriptions).where(subscriptions.c.id == subscription_id, subscriptions.c.deleted_at.is_(None))
        ).first()
        return _subscription(row) if row else None

    def update(self, s: Subscription) -> None:
        self.conn.execute(subscriptions.update().where(subscriptions.c.id == s.id).values(**_subscription_values(s)))
        self._changed()

    def active(self) -> list[Subscription]:
        rows = self.conn.execute(
            sa.select(subscriptions).where(subscriptions.c.deleted_at.is_(None)).order_by(subscriptions.c.created_at)
        )
        return [_subscription(r) for r in rows]

    def delete(self, subscription_id: str, now: datetime) -> bool:
        deleted = bool(
            self.conn.execute(
                subscriptions.update()
                .where(subscriptions.c.id == subscription_id, subscriptions.c.deleted_at.is_(None))
                .values(deleted_at=now)
            ).rowcount
            > 0
        )
        if deleted:
            self._changed()
        return deleted

    def remember_proposal(
        self,
        proposal_id: str,
        focus_area: str,
        environment: str | None,
        language: str,
        title: str | None,
        contact_email: str | None,
        resident_name: str | None = None,
        content: bool = False,
    ) -> None:
        """The latest facts of a proposal; a revision (which has no address) keeps the address known.
        `content`: the facts come from the proposal's content, which says who the resident is (if any)."""
        values: dict[str, str | None] = dict(
            focus_area=focus_area, environment=environment, language=language, title=title
        )
        if contact_email:
            values["contact_email"] = contact_email
        if content:
            values["resident_name"] = resident_name
        self._facts.pop(proposal_id, None)
        if self.conn.execute(_UPDATE_PROPOSAL, {**values, "_id": proposal_id}).rowcount == 0:
            self.conn.execute(_INSERT_PROPOSAL, {**values, "proposal_id": proposal_id})

    def proposal(self, proposal_id: str | None) -> dict[str, Any] | None:
        if not proposal_id:
            return None
        if proposal_id in self._facts:
            known = self._facts[proposal_id]
        else:
            row = self.conn.execute(_PROPOSAL, {"id": proposal_id}).first()
            known = self._facts[proposal_id] = dict(row._mapping) if row else None
        return dict(known) if known is not None else None

    def focus_area_of(self, proposal_id: str | None) -> str | None:
        return (self.proposal(proposal_id) or {}).get("focus_area")

    def opt_out_proposer(self, proposal_id: str, now: datetime) -> bool:
        """Record that the proposer of `proposal_id` wants no more e-mails about it (the first time
        counts). False when they had opted out already."""
        self._facts.pop(proposal_id, None)
        update = (
            proposal_areas.update()
            .where(proposal_areas.c.proposal_id == proposal_id, proposal_areas.c.proposer_opted_out_at.is_(None))
            .values(proposer_opted_out_at=now)
        )
        if self.conn.execute(update).rowcount:
            return True
        if self.proposal(proposal_id) is not None:
            return False
        # Not known here (yet): remembered all the same, so no later e-mail about it goes out.
        self.conn.execute(
            proposal_areas.insert(), dict(proposal_id=proposal_id, focus_area="", proposer_opted_out_at=now)
        )
        self._facts.pop(proposal_id, None)  # read as unknown just above
        return True


class DeliveryRepository:
    def __init__(self, conn: sa.Connection, is_sqlite: bool):
        self.conn = conn
        self.is_sqlite = is_sqlite

    def add(
        self,
        delivery_id: str,
        subscription_id: str,
        event_id: str,
        event_type: str,
        payload: bytes,
        now: datetime,
        kind: str = "event",
        channel: str | None = None,
        recipient: str | None = None,
        language: str | None = None,
        correlation_id: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        """A delivery to a subscription; `channel`/`recipient` for one that has no subscription (the
        proposer); `correlation_id`/`traceparent`: the flow of the event it delivers."""
        self.add_many(
            [
                NewDelivery(
                    delivery_id,
                    subscription_id,
                    event_id,
                    event_type,
                    payload,
                    now,
                    kind,
                    channel,
                    recipient,
                    language,
                    correlation_id,
                    traceparent,
                )
            ]
        )

    def add_many(self, deliveries: Sequence[NewDelivery]) -> None:
        """Each of `deliveries` as add() queues it, in one statement (executemany)."""
        if not deliveries:
            return
        pending = DeliveryStatus.pending.value
        self.conn.execute(
            _INSERT_DELIVERY,
            [
                dict(
                    id=d.delivery_id,
                    subscription_id=d.subscription_id,
                    event_id=d.event_id,
                    event_type=d.event_type,
                    payload=d.payload,
                    status=pending,
                    attempts=0,
                    next_attempt_at=d.now,
                    created_at=d.now,
                    updated_at=d.now,
                    kind=d.kind,
                    channel=d.channel,
                    recipient=d.recipient,
                    language=d.language,
                    correlation_id=d.correlation_id,
                    traceparent=d.traceparent,
                )
                for d in deliveries
            ],
        )

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[sa.Row[Any]]:
        """Due deliveries, leased for `lease` so another instance does not send them too."""
        query = (
            sa.select(
                deliveries.c.id,
                deliveries.c.attempts,
                deliveries.c.payload,
                deliveries.c.event_id,
                deliveries.c.event_type,
                deliveries.c.subscription_id,
                deliveries.c.kind,
                deliveries.c.language,
                deliveries.c.correlation_id,
                deliveries.c.traceparent,
                sa.func.coalesce(deliveries.c.channel, subscriptions.c.channel).label("channel"),
                sa.func.coalesce(deliveries.c.recipient, subscriptions.c.email, subscriptions.c.url).label("url"),
                subscriptions.c.secret,
                subscriptions.c.subscriber,
                subscriptions.c.language.label("subscription_language"),
            )
            .outerjoin(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
            .where(
                deliveries.c.status == DeliveryStatus.pending.value,
                deliveries.c.next_attempt_at <= now,
                # a deleted subscription gets nothing more (proposer e-mails have no subscription row)
                sa.or_(subscriptions.c.id.is_(None), subscriptions.c.deleted_at.is_(None)),
                # nor does a proposer who opted out of e-mails about that proposal
                deliveries.c.subscription_id.not_in(
                    sa.select(sa.literal("proposer:") + proposal_areas.c.proposal_id)
                    .where(proposal_areas.c.proposer_opted_out_at.is_not(None))
                    .scalar_subquery()
                ),
                sa.or_(deliveries.c.locked_until.is_(None), deliveries.c.locked_until < now),
            )
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit)
        )
        if not self.is_sqlite:
            query = query.with_for_update(of=deliveries, skip_locked=True)
        rows = list(self.conn.execute(query))
        if rows:
            self.conn.execute(
                deliveries.update().where(deliveries.c.id.in_([r.id for r in rows])).values(locked_until=now + lease)
            )
        return rows

    def record_attempt(
        self,
        delivery_id: str,
        attempt: int,
        at: datetime,
        status_code: int | None,
        latency: float,
        error: str | None,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> None:
        self.record_attempts(
            [AttemptMade(delivery_id, attempt, at, status_code, latency, error, status, next_attempt_at)]
        )

    def record_attempts(self, attempts: Sequence[AttemptMade]) -> None:
        """Each of `attempts` as record_attempt() records it: its row, and its delivery's status,
        in one statement (executemany) each."""
        if not attempts:
            return
        self.conn.execute(
            _INSERT_ATTEMPT,
            [
                dict(
                    delivery_id=a.delivery_id,
                    attempt=a.attempt,
                    at=a.at,
                    status_code=a.status_code,
                    latency_seconds=a.latency,
                    error=a.error,
                )
                for a in attempts
            ],
        )
        self.conn.execute(
            _RECORD_ATTEMPT,
            [
                dict(
                    _id=a.delivery_id,
                    attempts=a.attempt,
                    status=a.status.value,
                    next_attempt_at=a.next_attempt_at,
                    locked_until=None,
                    last_status_code=a.status_code,
                    last_error=a.error,
                    updated_at=a.at,
                )
                for a in attempts
            ],
        )

    def list(
        self,
        subscription_id: str | None,
        status: str | None,
        limit: int,
        channel: str | None = None,
        event_type: str | None = None,
        kind: str | None = None,
        owner: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; with `owner`, only deliveries of that principal's subscriptions."""
        query = (
            sa.select(deliveries, sa.func.coalesce(deliveries.c.channel, subscriptions.c.channel).label("via"))
            .outerjoin(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
            .order_by(deliveries.c.created_at.desc(), deliveries.c.id)
            .limit(limit)
        )
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        if subscription_id:
            query = query.where(deliveries.c.subscription_id == subscription_id)
        if status == "dead_lettered":  # every delivery that failed for good waits in the dead-letter list
            status = DeliveryStatus.failed.value
        if status:
            query = query.where(deliveries.c.status == status)
        if channel:
            query = query.where(sa.func.coalesce(deliveries.c.channel, subscriptions.c.channel) == channel)
        if event_type:
            query = query.where(deliveries.c.event_type == event_type)
        if kind:
            query = query.where(deliveries.c.kind == kind)
        rows = list(self.conn.execute(query))
        tries: dict[str, list[dict[str, Any]]] = {r.id: [] for r in rows}
        if rows:
            for a in self.conn.execute(
                sa.select(attempts).where(attempts.c.delivery_id.in_(list(tries))).order_by(attempts.c.attempt)
            ):
                tries[a.delivery_id].append(
                    {
                        "attempt": a.attempt,
                        "at": a.at.isoformat(),
                        "status_code": a.status_code,
                        "latency_seconds": round(a.latency_seconds, 4),
                        "error": a.error,
                    }
                )
        return [
            {
                "id": r.id,
                "subscription_id": r.subscription_id,
                "event_id": r.event_id,
                "event_type": r.event_type,
                "status": r.status,
                "dead_lettered": r.status == DeliveryStatus.failed.value,
                "channel": r.via,
                "kind": r.kind,
                "attempts": tries[r.id],
                "next_attempt_at": r.next_attempt_at.isoformat()
                if r.next_attempt_at and r.status == "pending"
                else None,
                "created_at": r.created_at.isoformat(),
                "updated_at": r.updated_at.isoformat(),
            }
            for r in rows
        ]


class DigestRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def add_item(self, subscription_id: str, event_id: str, event_type: str, payload: bytes, now: datetime) -> None:
        self.add_items([NewDigestItem(subscription_id, event_id, event_type, payload, now)])

    def add_items(self, items: Sequence[NewDigestItem]) -> None:
        """Each of `items` as add_item() records it, in one statement (executemany)."""
        if not items:
            return
        self.conn.execute(
            _INSERT_DIGEST_ITEM,
            [
                dict(
                    subscription_id=i.subscription_id,
                    event_id=i.event_id,
                    event_type=i.event_type,
                    payload=i.payload,
                    created_at=i.now,
                )
                for i in items
            ],
        )

    def claim_window(self, end: datetime, now: datetime) -> bool:
        """True for the one job that builds the digests of the window ending at `end`: the run's
        row is the claim. Another instance's job for the same window waits for this transaction
        (the row's key) and then gets False, without an error."""
        row = dict(window_end=end, ran_at=now, items=0, digests=0)
        return insert_new(self.conn, digest_runs, row)  # the run's row is the claim

    def pending(self, before: datetime) -> list[sa.Row[Any]]:
        """Items not yet in a digest, recorded before `before`, with their subscription (still active)."""
        return list(
            self.conn.execute(
                sa.select(
                    digest_items.c.id,
                    digest_items.c.subscription_id,
                    digest_items.c.event_id,
                    digest_items.c.event_type,
                    digest_items.c.payload,
                    subscriptions.c.subscriber,
                    subscriptions.c.email,
                    subscriptions.c.language,
                    subscriptions.c.owner,
                )
                .join(subscriptions, subscriptions.c.id == digest_items.c.subscription_id)
                .where(
                    digest_items.c.digest_id.is_(None),
                    digest_items.c.created_at < before,
                    subscriptions.c.deleted_at.is_(None),
                )
                .order_by(digest_items.c.created_at, digest_items.c.id)
            )
        )

    def subscriptions_of(self, digest_id: str) -> list[str]:
        """The subscriptions whose items the digest `digest_id` (its delivery) carried."""
        return sorted(
            self.conn.execute(
                sa.select(digest_items.c.subscription_id).distinct().where(digest_items.c.digest_id == digest_id)
            ).scalars()
        )

    def mark(self, item_ids: list[int], digest_id: str) -> None:
        self.conn.execute(digest_items.update().where(digest_items.c.id.in_(item_ids)).values(digest_id=digest_id))

    def record_run(self, end: datetime, items: int, digests: int) -> None:
        self.conn.execute(
            digest_runs.update().where(digest_runs.c.window_end == end).values(items=items, digests=digests)
        )


SOURCE = service_source("notifications")  # <KOKEILU_EVENT_SOURCE_BASE>services/notifications


class NotificationsUnitOfWork(UnitOfWork):
    source = SOURCE  # of every event this service publishes

    def bind(self, conn: sa.Connection) -> None:
        self.subscriptions = SubscriptionRepository(conn)
        self.deliveries = DeliveryRepository(conn, self.database.is_sqlite)
        self.digests = DigestRepository(conn)
