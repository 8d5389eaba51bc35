"""Evaluation configuration from the environment (KOKEILU_-prefixed; JSON for structured values)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .domain import Rubric
from .screening import ScreeningPolicy

DEFAULT_PANELS = {
    "smart_mobility": ["aino", "eero", "liisa", "matti"],
    "learning": ["helmi", "juha", "kaisa", "pekka"],
    "sustainable_development": ["sanna", "timo", "ulla", "veikko"],
}


class Workflow(BaseModel):
    """Panels, rubric and SLA: what the evaluation workflow runs on."""

    panels: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_PANELS.items()})
    evaluators_per_proposal: int = Field(default=3, ge=1, le=20)
    rubric: Rubric = Field(default_factory=Rubric)
    evaluation_sla_hours: float = Field(default=14 * 24, gt=0)
    overdue_check_seconds: float = Field(default=60, gt=0)


class EvaluationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOKEILU_", extra="ignore")

    # e.g. {"budget_cap_eur": {"learning": 80000}, "eligible_environments": ["kera", "school"]}
    screening_policy: ScreeningPolicy = ScreeningPolicy()
    # e.g. {"learning": ["helmi", "juha", "kaisa"], ...}: evaluator names are token principal names
    panels: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_PANELS.items()})
    evaluators_per_proposal: int = 3
    # e.g. {"weights": {...}, "approve_at": 3.5, "revise_at": 2.5, "disagreement_spread": 3}
    rubric: Rubric = Field(default_factory=Rubric)
    evaluation_sla_hours: float = 14 * 24
    overdue_check_seconds: float = 60


@lru_cache
def settings() -> EvaluationSettings:
    return EvaluationSettings()


def policy() -> ScreeningPolicy:
    return settings().screening_policy


@lru_cache
def workflow() -> Workflow:
    s = settings()
    return Workflow(
        panels=s.panels,
        evaluators_per_proposal=s.evaluators_per_proposal,
        rubric=s.rubric,
        evaluation_sla_hours=s.evaluation_sla_hours,
        overdue_check_seconds=s.overdue_check_seconds,
    )
