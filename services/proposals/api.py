"""How proposals look over HTTP, and the query parameters of the list."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from kokeilu.contracts.proposals import ProposalStatus

from .domain import Proposal


def proposal_json(p: Proposal) -> dict:
    body = p.submission.model_dump(mode="json")
    body.update(
        id=p.id, status=p.status.value, submitted_at=p.submitted_at.isoformat(),
        updated_at=p.updated_at.isoformat(), source=p.source,
        allowed_actions=p.allowed_actions(),
        screening_failures=[f.model_dump(mode="json") for f in p.screening_failures],
    )
    return body


class ListQuery(BaseModel):
    model_config = {"extra": "forbid"}

    status: ProposalStatus | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=64)
