"""Evaluation over HTTP: request bodies and the domain's refusals as HTTP errors."""
from __future__ import annotations

from contextlib import contextmanager

from pydantic import BaseModel, Field

from kokeilu.http import ApiError, Conflict, NotFound, Unprocessable

from .domain import EvaluationRefused, InvalidScores, NotAssigned
from .handlers import UnknownEvaluation

MANAGE = "evaluation:manage"


class Body(BaseModel):
    model_config = {"extra": "forbid"}


class ConflictBody(Body):
    conflict: bool
    reason: str | None = Field(default=None, max_length=2000)


class ScoresBody(Body):
    scores: dict[str, int] = Field(description="0 to 5 for each criterion of the rubric")
    comment: str | None = Field(default=None, max_length=5000)


class NotAssignedError(ApiError):
    status, code = 403, "not_assigned"


@contextmanager
def domain_errors():
    try:
        yield
    except UnknownEvaluation as exc:
        raise NotFound(str(exc), {"proposal_id": "unknown"}) from None
    except NotAssigned as exc:
        raise NotAssignedError(str(exc)) from None
    except EvaluationRefused as exc:
        raise Conflict(str(exc)) from None
    except InvalidScores as exc:
        raise Unprocessable(str(exc), {f"scores.{k}": v for k, v in exc.fields.items()}) from None


def is_manager(request) -> bool:
    return request.principal is not None and request.principal.has(MANAGE)
