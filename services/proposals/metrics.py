"""The proposals service's domain figures, on the service's registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from kokeilu.contracts.evaluation import Decision
from kokeilu.contracts.proposals import ProposalStatus
from kokeilu.metrics import BoundedValues, child, known_type, metrics_for

from .domain import TERMINAL
from .ports import ProposalsUnitOfWork

_registry = metrics_for("proposals").registry

proposals_by_state = Gauge(
    "kokeilu_proposals",
    "Proposals in the store, by state (read from the store at scrape).",
    ["service", "state"],
    registry=_registry,
)
transitions = Counter(
    "kokeilu_proposal_transitions",
    "Proposal state changes, by action and target state.",
    ["service", "action", "to_state"],
    registry=_registry,
)
time_to_decision = Histogram(
    "kokeilu_proposal_time_to_decision_seconds",
    "From submission (or the latest revision) to the panel's decision.",
    ["service", "decision"],
    registry=_registry,
    buckets=(60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400, 120 * 86400),
)
for _decision in Decision:  # exported as 0 from the start, so rate() sees the first decision
    time_to_decision.labels(service="proposals", decision=_decision.value)
state_seconds = Histogram(
    "kokeilu_proposal_state_seconds",
    "Time a proposal spent in a state, observed when it leaves it.",
    ["service", "state"],
    registry=_registry,
    buckets=(
        1,
        10,
        60,
        600,
        3600,
        6 * 3600,
        86400,
        3 * 86400,
        7 * 86400,
        14 * 86400,
        30 * 86400,
        60 * 86400,
        120 * 86400,
    ),
)
for _state in ProposalStatus:  # every state a proposal can leave, at 0 from the start
    if _state not in TERMINAL:
        state_seconds.labels(service="proposals", state=_state.value)
intake = Counter(
    "kokeilu_intake",
    "Intake events by type, source system and outcome (accepted, rejected, duplicate).",
    ["service", "type", "source", "outcome"],
    registry=_registry,
)


def refresh_state_gauge(uow: ProposalsUnitOfWork) -> None:
    with uow:
        counts = uow.proposals.count_by_status()
    for state in ProposalStatus:
        proposals_by_state.labels(service="proposals", state=state.value).set(counts.get(state.value, 0))


def count_transition(
    action: str,
    to_state: ProposalStatus,
    from_state: ProposalStatus | None = None,
    seconds_in_state: float | None = None,
) -> None:
    """One change of state; with `from_state`, how long the proposal had been in it."""
    child(transitions, service="proposals", action=action, to_state=to_state.value).inc()
    if from_state is not None and seconds_in_state is not None:
        child(state_seconds, service="proposals", state=from_state.value).observe(max(0.0, seconds_in_state))


# Intake sources are the city's systems: a handful. A flood of invented ones counts as `other`.
_sources = BoundedValues(limit=50)


def count_intake(type_: str, source: str, outcome: str) -> None:
    child(
        intake, service="proposals", type=known_type(type_).rsplit(".", 1)[-1], source=_sources(source), outcome=outcome
    ).inc()


def observe_time_to_decision(decision: str, seconds: float) -> None:
    time_to_decision.labels(service="proposals", decision=decision).observe(max(0.0, seconds))
