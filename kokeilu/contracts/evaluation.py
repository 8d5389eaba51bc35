"""Events the evaluation service publishes."""
from __future__ import annotations

from datetime import datetime

from pydantic import Field

from .envelope import Frozen


class RuleFailure(Frozen):
    rule: str
    reason: str


class ScreeningCompleted(Frozen):
    """`fi.espoo.kokeilu.screening.completed`: the proposal passed screening, or names every failed rule."""

    proposal_id: str
    passed: bool
    failed_rules: list[RuleFailure] = Field(default_factory=list)
    screened_at: datetime
