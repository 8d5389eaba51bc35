"""Evaluation configuration from the environment (KOKEILU_SCREENING_POLICY as JSON)."""
from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

from .screening import ScreeningPolicy


class EvaluationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOKEILU_", extra="ignore")

    # e.g. {"budget_cap_eur": {"learning": 80000}, "eligible_environments": ["kera", "school"]}
    screening_policy: ScreeningPolicy = ScreeningPolicy()


@lru_cache
def policy() -> ScreeningPolicy:
    return EvaluationSettings().screening_policy
