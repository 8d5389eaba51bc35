"""The catalogue's domain figures, on the service's registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from kokeilu.metrics import metrics_for

from .ports import CatalogueUnitOfWork

_registry = metrics_for("catalogue").registry

results = Counter(
    "kokeilu_results",
    "Result events published on the public results topic, by event (published, updated, withdrawn).",
    ["service", "event"],
    registry=_registry,
)
for _event in ("published", "updated", "withdrawn"):  # at 0 from the start, so increase() sees the first
    results.labels(service="catalogue", event=_event)
catalogue_size = Gauge(
    "kokeilu_catalogue_results",
    "Results in the catalogue (read from the store at scrape).",
    ["service"],
    registry=_registry,
)


def refresh(uow: CatalogueUnitOfWork) -> None:
    with uow:
        catalogue_size.labels(service="catalogue").set(uow.entries.count_published())


def count_result(event: str) -> None:
    """A public result event (published, updated, withdrawn) went out with a change."""
    results.labels(service="catalogue", event=event).inc()
