"""The proposals service's domain figures, on the service's registry."""
from __future__ import annotations

from prometheus_client import Gauge

from kokeilu.contracts.proposals import ProposalStatus
from kokeilu.metrics import metrics_for

_registry = metrics_for("proposals").registry

proposals_by_state = Gauge("kokeilu_proposals", "Proposals in the store, by state (read from the store at scrape).",
                           ["service", "state"], registry=_registry)


def refresh_state_gauge(uow) -> None:
    with uow:
        counts = uow.proposals.count_by_status()
    for state in ProposalStatus:
        proposals_by_state.labels(service="proposals", state=state.value).set(counts.get(state.value, 0))
