"""What the catalogue service's use cases need of its store, as Protocols: its unit of work and
the repository it binds. services/catalogue/store.py has them, and so do the unit tests' fakes
(tests/unit/fakes.py, where mypy checks that they do)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from kokeilu import ports
from kokeilu.contracts.results import KpiPoint, Result

from .domain import DailyKpi, Entry
from .search import SearchPage, SearchQuery


class EntryRepository(Protocol):
    def get(self, proposal_id: str) -> Entry:
        """The proposal's entry; a new, empty one when the catalogue has none yet."""
        ...

    def get_many(self, proposal_ids: Iterable[str]) -> dict[str, Entry]:
        """`get` of each proposal, in one read."""
        ...

    def save_many(self, changes: Sequence[tuple[Entry, Entry | None]]) -> None:
        """Store each changed entry, given with the entry as `get_many` returned it in this unit
        of work (its published result is then known to be the one stored), or None."""
        ...

    def record_measurement(self, result_id: str, kpi: str, value: float, measured_at: datetime) -> None:
        """Count a measurement in its day of the KPI's series."""
        ...

    def daily(self, result_id: str) -> dict[str, list[DailyKpi]]:
        """Every KPI's days, in order."""
        ...

    def series(self, result_id: str, kpis: int = 1) -> dict[str, list[KpiPoint]]:
        """Every KPI's series as a result publishes it (`kpis`: how many share the budget of points)."""
        ...

    def search(self, query: SearchQuery) -> SearchPage: ...

    def all_results(self) -> list[Result]:
        """Every published result, newest first."""
        ...

    def languages(self) -> dict[str, str]:
        """The language of each published result's title and summary, by result id."""
        ...

    def count_entries(self) -> int: ...

    def count_published(self) -> int: ...


class CatalogueUnitOfWork(ports.UnitOfWork, Protocol):
    """The catalogue service's unit of work (services/catalogue/store.py's CatalogueUnitOfWork)."""

    @property
    def entries(self) -> EntryRepository: ...
