"""The evaluation service's domain figures, on the service's registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from kokeilu.contracts.evaluation import Decision
from kokeilu.metrics import metrics_for

from .ports import EvaluationUnitOfWork

_registry = metrics_for("evaluation").registry
_S = "evaluation"

evaluations = Gauge(
    "kokeilu_evaluations",
    "Evaluations by status (open, decided, closed; open_overdue), read at scrape.",
    ["service", "status"],
    registry=_registry,
)
overdue = Counter(
    "kokeilu_evaluations_overdue",
    "Evaluations that went past their SLA (each counted once).",
    ["service"],
    registry=_registry,
)
overdue.labels(service="evaluation")  # exported as 0 from the start, so increase() alerts see the first one
evaluator_load = Gauge(
    "kokeilu_evaluator_load",
    "Open, unscored assignments per panel evaluator, read at scrape.",
    ["service", "evaluator"],
    registry=_registry,
)
stage_seconds = Histogram(
    "kokeilu_evaluation_stage_seconds",
    "SLA clocks: time a proposal spent in screening and in evaluation.",
    ["service", "stage"],
    registry=_registry,
    buckets=(1, 10, 60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400),
)
decisions = Counter(
    "kokeilu_evaluation_decisions",
    "Panel decisions, by decision and whether the scores disagreed.",
    ["service", "decision", "disagreement"],
    registry=_registry,
)
# Exported at 0 from the start, so that rate() and increase() see the first observation too.
for _stage in ("screening", "evaluation"):
    stage_seconds.labels(service=_S, stage=_stage)
for _decision in Decision:
    for _disagreement in ("false", "true"):
        decisions.labels(service=_S, decision=_decision.value, disagreement=_disagreement)


def observe_stage(stage: str, seconds: float) -> None:
    stage_seconds.labels(service=_S, stage=stage).observe(max(0.0, seconds))


def count_decision(decision: str, disagreement: bool) -> None:
    decisions.labels(service=_S, decision=decision, disagreement=str(disagreement).lower()).inc()


def count_overdue(n: int) -> None:
    if n:
        overdue.labels(service=_S).inc(n)


def refresh(uow: EvaluationUnitOfWork, panels: dict[str, list[str]]) -> None:
    with uow:
        counts = uow.evaluations.counts()
        load = uow.evaluations.workload()
    for status in ("open", "decided", "closed", "open_overdue"):
        evaluations.labels(service=_S, status=status).set(counts.get(status, 0))
    for evaluator in sorted({m for members in panels.values() for m in members} | set(load)):
        evaluator_load.labels(service=_S, evaluator=evaluator).set(load.get(evaluator, 0))
