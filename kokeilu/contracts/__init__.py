"""The event contract: frozen pydantic v2 models. Imports no Kafka, nameko or SQLAlchemy."""

from . import catalog, topics
from .catalog import ALL as EVENT_TYPES
from .catalog import BY_NAME, EventType, decode
from .envelope import CONTENT_TYPE, CloudEvent, InvalidEvent, new_event, new_id, parse_envelope, utcnow
from .sources import service_source

__all__ = [
    "catalog",
    "topics",
    "EVENT_TYPES",
    "BY_NAME",
    "EventType",
    "decode",
    "CONTENT_TYPE",
    "CloudEvent",
    "InvalidEvent",
    "new_event",
    "new_id",
    "parse_envelope",
    "utcnow",
    "service_source",
]
