"""What a service's use cases need of a unit of work, as a `Protocol`: the transaction, the outbox,
the inbox and the flows. kokeilu.store.UnitOfWork has it (and so do the unit tests' fakes); each
service's `ports` module extends it with its repositories, and its handlers take that type.

No infrastructure here: a handlers module imports this without a database driver."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self

from pydantic import BaseModel

from kokeilu.contracts import CloudEvent
from kokeilu.contracts.catalog import EventType


class UnitOfWork(Protocol):
    """One all-or-nothing transaction: `with uow: ...; uow.commit()` (leaving without commit, or
    by an exception, undoes the block's work; a block inside another is a savepoint)."""

    def __enter__(self) -> Self: ...

    # bool | None, not bool: a unit of work never swallows the exception that leaves its block
    # (mypy reads a `bool` here as "it may", and the code after a `with` as reachable by it).
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None: ...

    def commit(self) -> None: ...

    def lock(self, name: str) -> None:
        """Hold `name` until the transaction ends."""
        ...

    # outbox
    def emit(
        self,
        event_type: EventType,
        data: BaseModel,
        subject: str,
        cause: CloudEvent | None = None,
        *,
        correlationid: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        """Record a new event of `event_type` about `subject`, to be published after commit."""
        ...

    def publish(self, event: CloudEvent, key: str | None = None) -> None:
        """Record an event to be published after commit."""
        ...

    # flows
    def remember_flow(self, subject: str) -> None: ...

    def remember_flows(self, causes: Sequence[tuple[str, CloudEvent]]) -> None:
        """remember_flow for aggregates made or acted on by the consumed events of a run applied together."""
        ...

    def join_flow(self, subject: str) -> None: ...

    def join_flows(self, subjects: Iterable[str]) -> None: ...

    # inbox
    def first_time(self, consumer: str, event: CloudEvent) -> bool:
        """Record that `consumer` applies `event`; False when it already did."""
        ...

    def first_times(self, consumer: str, events: Sequence[CloudEvent]) -> list[bool]:
        """For a run of events applied together: whether each is new to `consumer`; writes nothing."""
        ...

    def applied(self, consumer: str, events: Sequence[CloudEvent]) -> None:
        """Record that `consumer` applied each of `events` (new to it: see first_times)."""
        ...

    def first_time_key(self, consumer: str, key: str, kind: str) -> bool:
        """Record that `consumer` handled what `key` names; False when it already did."""
        ...
