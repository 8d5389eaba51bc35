"""The proposals service's domain figures, on the service's registry."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from kokeilu.contracts.proposals import ProposalStatus
from kokeilu.metrics import BoundedValues, known_type, metrics_for

_registry = metrics_for("proposals").registry

proposals_by_state = Gauge("kokeilu_proposals", "Proposals in the store, by state (read from the store at scrape).",
                           ["service", "state"], registry=_registry)
transitions = Counter("kokeilu_proposal_transitions", "Proposal state changes, by action and target state.",
                      ["service", "action", "to_state"], registry=_registry)
time_to_decision = Histogram(
    "kokeilu_proposal_time_to_decision_seconds", "From submission (or the latest revision) to the panel's decision.",
    ["service", "decision"], registry=_registry,
    buckets=(60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400, 120 * 86400))
intake = Counter("kokeilu_intake", "Intake events by type, source system and outcome (accepted, rejected, duplicate).",
                 ["service", "type", "source", "outcome"], registry=_registry)


def refresh_state_gauge(uow) -> None:
    with uow:
        counts = uow.proposals.count_by_status()
    for state in ProposalStatus:
        proposals_by_state.labels(service="proposals", state=state.value).set(counts.get(state.value, 0))


def count_transition(action: str, to_state: ProposalStatus) -> None:
    transitions.labels(service="proposals", action=action, to_state=to_state.value).inc()


# Intake sources are the city's systems: a handful. A flood of invented ones counts as `other`.
_sources = BoundedValues(limit=50)


def count_intake(type_: str, source: str, outcome: str) -> None:
    intake.labels(service="proposals", type=known_type(type_).rsplit(".", 1)[-1], source=_sources(source),
                  outcome=outcome).inc()
