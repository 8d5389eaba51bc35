"""The CloudEvents 1.0 envelope in structured JSON mode, as Kokeilu puts it on every topic."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "fi.espoo.kokeilu."
MAX_EVENT_BYTES = 512 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A random UUID (version 4) as text: what str(uuid.uuid4()) gives, at less than half its
    cost (made for every event, and for every new aggregate; its UUID object is never used)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Frozen(BaseModel):
    # Finite numbers only: JSON has no NaN or infinity, and a null where a number was promised
    # is an event every consumer refuses. Other bounds: contracts/bounds.py.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class CloudEvent(BaseModel):
    """A CloudEvent with `data` kept as parsed JSON; `decode_data` gives the typed model."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200)
    time: datetime
    subject: str | None = Field(default=None, max_length=200)
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    data: Any = None
    correlationid: str | None = None
    causationid: str | None = None
    # The CloudEvents distributed-tracing extension: W3C Trace Context of the span that produced it.
    traceparent: str | None = Field(default=None, max_length=512)
    tracestate: str | None = Field(default=None, max_length=512)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class InvalidEvent(ValueError):
    """A record that is not a CloudEvent Kokeilu can process; `reason` says why, for the dead-letter topic."""

    def __init__(self, reason: str, event: CloudEvent | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event = event


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_envelope(raw: bytes | None) -> CloudEvent:
    if raw is None:
        raise InvalidEvent("empty record value (tombstone) where an event was expected")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event of {len(raw)} bytes exceeds the limit of {MAX_EVENT_BYTES}")
    try:  # a well-formed event: parsed and validated in one pass (pydantic-core's JSON parser)
        return CloudEvent.model_validate_json(raw)
    except ValueError:  # ValidationError; json.loads and model_validate below say what is wrong
        pass
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidEvent("not JSON Kokeilu accepts: nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidEvent("not a CloudEvent: the JSON value is not an object")
    try:
        return CloudEvent.model_validate(body)
    except ValidationError as exc:
        raise InvalidEvent(f"not a valid CloudEvent: {describe_validation_error(exc)}") from None


def carried(
    cause: CloudEvent | None, correlationid: str | None, traceparent: str | None
) -> tuple[str | None, str | None]:
    """The correlation id and traceparent of an event `cause` caused: the cause's correlation (or
    its id), and its trace unless one is given."""
    if cause is None:
        return correlationid, traceparent
    return cause.correlationid or cause.id, traceparent or cause.traceparent


def new_event(
    type_: str,
    data: BaseModel,
    *,
    source: str,
    subject: str,
    dataschema: str | None = None,
    cause: CloudEvent | None = None,
    correlationid: str | None = None,
    traceparent: str | None = None,
    causationid: str | None = None,
) -> CloudEvent:
    """A new event, as new_event_json writes it; `cause` carries the correlation id and trace on
    and names itself as the causation (without one, `causationid` names it). (A unit of work
    puts the event in the flow in hand when it records it: kokeilu/tracing.py.)"""
    correlationid, traceparent = carried(cause, correlationid, traceparent)
    return CloudEvent.model_validate_json(
        new_event_json(
            type_,
            data,
            source=source,
            subject=subject,
            dataschema=dataschema,
            correlationid=correlationid,
            traceparent=traceparent,
            causationid=cause.id if cause is not None else causationid,
        )
    )


def new_event_json(
    type_: str,
    data: BaseModel,
    *,
    source: str,
    subject: str,
    dataschema: str | None = None,
    correlationid: str | None = None,
    traceparent: str | None = None,
    causationid: str | None = None,
) -> bytes:
    """A new event's JSON (structured CloudEvents), written in one pass from `data`: what a unit
    of work's emit records, and what new_event parses into a CloudEvent. Its id is new, its
    correlation id `correlationid` or else its own id (a new flow)."""
    event_id = new_id()
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": type_,
        "time": utcnow(),
        "subject": subject,
        "datacontenttype": "application/json",
    }
    if dataschema is not None:
        envelope["dataschema"] = dataschema
    envelope["data"] = data
    envelope["correlationid"] = correlationid or event_id
    if causationid is not None:
        envelope["causationid"] = causationid
    if traceparent is not None:
        envelope["traceparent"] = traceparent
    # exclude_none leaves out the model's unset fields (a dict's None values it would keep).
    return to_json(envelope, exclude_none=True, by_alias=False)
