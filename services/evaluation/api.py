"""Evaluation over HTTP: request bodies and the domain's refusals as HTTP errors."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated

from pydantic import BaseModel, Field

from kokeilu.contracts.bounds import Reason, text

from kokeilu.http import ApiError, Conflict, NotFound, Unprocessable

from .domain import EvaluationRefused, InvalidScores, NotAssigned
from .handlers import UnknownEvaluation

MANAGE = "evaluation:manage"


class Body(BaseModel):
    model_config = {"extra": "forbid", "allow_inf_nan": False}


class ConflictBody(Body):
    conflict: bool
    reason: Reason | None = None


class ScoresBody(Body):
    # Bounded here; whether each fits the rubric (0 to 5, every criterion) the domain says.
    scores: dict[text(64), Annotated[int, Field(ge=-1000, le=1000)]] = Field(
        max_length=20, description="0 to 5 for each criterion of the rubric")
    comment: text(5000) | None = None


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
