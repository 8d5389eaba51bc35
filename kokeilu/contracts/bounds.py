"""Bounds every contract field keeps, so that what the API accepts the platform can carry:

- numbers are finite (`Frozen` sets `allow_inf_nan=False`); a measured quantity (KPI baseline,
  target, actual, a measurement) is within +-MAX_MAGNITUDE, which every store holds exactly enough;
- every string has a maximum length and no NUL character or lone surrogate (neither PostgreSQL
  nor UTF-8 can hold them); every list has a maximum number of items.

With these bounds the largest possible event stays far under MAX_EVENT_BYTES (a test checks it).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

MAX_MAGNITUDE = 1e15


def _printable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain lone surrogates") from None
    return value


def text(max_length: int, min_length: int = 0) -> Any:  # an Annotated[str, ...], used as a type
    """A string type of at most `max_length` characters, without NUL or lone surrogates."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_printable)]


Id = text(64, 1)
Name = text(200, 1)
Reason = text(2000)
LongText = text(10_000)
Measure = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
