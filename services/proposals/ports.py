"""What the proposals service's use cases need of its store, as Protocols: its unit of work and
the repositories it binds. services/proposals/store.py has them, and so do the unit tests'
fakes (tests/unit/fakes.py, where mypy checks that they do)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from kokeilu import ports

from .domain import Measurement, Proposal


class ProposalRepository(Protocol):
    def add(self, p: Proposal) -> None: ...

    def add_many(self, ps: list[Proposal]) -> None: ...

    def save(self, p: Proposal) -> None: ...

    def save_many(self, ps: Iterable[Proposal]) -> None:
        """`save` of each, at once."""
        ...

    def get(self, proposal_id: str) -> Proposal | None: ...

    def get_many(self, proposal_ids: Iterable[str]) -> dict[str, Proposal]: ...

    def list(
        self,
        status: str | None = None,
        limit: int = 50,
        after: str | None = None,
        focus_area: str | None = None,
        environment: str | None = None,
        submitted_from: datetime | None = None,
        submitted_to: datetime | None = None,
    ) -> list[Proposal]:
        """Newest first; `after` is the id of the last proposal of the page before."""
        ...

    def count_by_status(self) -> dict[str, int]: ...


class MeasurementRepository(Protocol):
    def add(self, m: Measurement) -> None: ...

    def add_many(self, ms: list[Measurement]) -> None: ...

    def for_proposal(self, proposal_id: str) -> list[Measurement]:
        """In the order they were measured."""
        ...


class StoredAnswer(Protocol):
    """The answer kept for an Idempotency-Key (status 0 and no body until it is completed)."""

    @property
    def route(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def body(self) -> Any: ...  # the JSON body answered


class IdempotencyRepository(Protocol):
    def get(self, principal: str, key: str) -> StoredAnswer | None: ...

    def add(self, principal: str, key: str, route: str, now: datetime) -> None: ...

    def complete(self, principal: str, key: str, status: int, body: Any) -> None: ...

    def release(self, principal: str, key: str) -> None: ...


class ProposalsUnitOfWork(ports.UnitOfWork, Protocol):
    """The proposals service's unit of work (services/proposals/store.py's ProposalsUnitOfWork)."""

    @property
    def proposals(self) -> ProposalRepository: ...
    @property
    def measurements(self) -> MeasurementRepository: ...
    @property
    def idempotency(self) -> IdempotencyRepository: ...
