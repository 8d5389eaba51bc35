"""What the evaluation service's use cases need of its store, as Protocols: its unit of work and
the repositories it binds. services/evaluation/store.py has them, and so do the unit tests'
fakes (tests/unit/fakes.py, where mypy checks that they do)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from kokeilu import ports
from kokeilu.contracts.evaluation import ScreeningCompleted

from .domain import Evaluation


class ScreeningRepository(Protocol):
    def add(
        self, s: ScreeningCompleted, focus_area: str, title: str, submitted_at: datetime, revision: int = 1
    ) -> None:
        """The latest screening of a proposal (a revision replaces the one before)."""
        ...

    def get(self, proposal_id: str) -> dict[str, Any] | None:
        """The proposal's latest screening as the API shows it (a JSON object)."""
        ...


class KnownProposalRepository(Protocol):
    def upsert(self, proposal_id: str, title: str, is_open: bool, now: datetime) -> None: ...

    def close(self, proposal_id: str, now: datetime) -> None: ...

    def near_duplicate_candidates(self, title: str, similarity: float = 0.0) -> list[tuple[str, str]]:
        """(id, title) of the open proposals whose titles share a key with `title` and may reach
        `similarity` with it (screening.within_reach)."""
        ...


class EvaluationRepository(Protocol):
    def add(self, e: Evaluation) -> None: ...

    def save(self, e: Evaluation) -> None: ...

    def current(self, proposal_id: str, for_update: bool = False) -> Evaluation | None:
        """The proposal's evaluation of its latest revision."""
        ...

    def mark_overdue(self, e: Evaluation, now: datetime) -> bool:
        """False when it was flagged already (by another instance)."""
        ...

    def open_ones(self, due_before: datetime | None = None) -> list[Evaluation]: ...

    def workload(self) -> dict[str, int]:
        """Open assignments not yet scored, per evaluator."""
        ...

    def counted_workload(self) -> dict[str, int]: ...

    def queue(self, evaluator: str) -> list[Evaluation]: ...

    def counts(self) -> dict[str, int]: ...


class EvaluationUnitOfWork(ports.UnitOfWork, Protocol):
    """The evaluation service's unit of work (services/evaluation/store.py's EvaluationUnitOfWork)."""

    @property
    def screenings(self) -> ScreeningRepository: ...
    @property
    def known(self) -> KnownProposalRepository: ...
    @property
    def evaluations(self) -> EvaluationRepository: ...
