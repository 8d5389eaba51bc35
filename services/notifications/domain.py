"""Subscriptions, matching, and the retry policy of deliveries. No infrastructure here."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from kokeilu.contracts import BY_NAME
from kokeilu.contracts.proposals import FocusArea


class SubscriptionFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[str] = Field(default_factory=list, max_length=50)
    focus_areas: list[FocusArea] = Field(default_factory=list)

    @field_validator("types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        unknown = [t for t in types if t not in BY_NAME]
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {sorted(BY_NAME)}")
        return types


class NewSubscription(BaseModel):
    """`POST /v1/subscriptions` body (DESIGN.md's shape)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscriber: str = Field(min_length=1, max_length=200)
    channel: Literal["webhook"]
    url: HttpUrl
    filter: SubscriptionFilter = SubscriptionFilter()


@dataclass(frozen=True)
class Subscription:
    id: str
    subscriber: str
    channel: str
    url: str
    filter: SubscriptionFilter
    created_at: datetime

    def matches(self, event_type: str, focus_area: str | None) -> bool:
        if self.filter.types and event_type not in self.filter.types:
            return False
        if self.filter.focus_areas:
            return focus_area is not None and focus_area in {f.value for f in self.filter.focus_areas}
        return True


class DeliveryStatus(str, Enum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 1.0
    cap_seconds: float = 300.0

    def retryable(self, status_code: int | None) -> bool:
        """Timeouts and connection errors (no status), 429 and 5xx are worth another try; other 4xx are not."""
        return status_code is None or status_code == 429 or status_code >= 500

    def next_attempt(self, attempts: int, now: datetime, rng: random.Random | None = None) -> datetime:
        """Exponential backoff with full jitter after `attempts` tries."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** (attempts - 1)))
        return now + timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))
