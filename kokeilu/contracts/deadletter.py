"""The contract of a dead letter on `kokeilu.deadletter.v1`: its key, value and headers.

kokeilu/kafka/deadletter.py builds dead letters to this; the AsyncAPI document describes it.
"""
from __future__ import annotations

from .envelope import MAX_EVENT_BYTES

# A value over the event limit is kept cut to its first KEEP_BYTES.
KEEP_BYTES = 64 * 1024
MAX_ERROR = 2000
MAX_KEY = 200
# Any other header text is cut to this many characters.
MAX_HEADER = 500

# Why a record was set aside.
REASONS: dict[str, str] = {
    "unparseable": "not readable as a CloudEvent (not JSON, not an object, over the size limit, not a valid envelope)",
    "invalid": "a CloudEvent whose type is unknown or belongs on another topic, or whose data does not validate",
    "failed": "a valid event whose processing failed for good (an illegal transition, a refused measurement), or a "
              "dead letter that could not be stored with its value",
    "unpublishable": "an event a service recorded in its outbox that the brokers can never accept (parked by the "
                     "relay instead of blocking the events behind it)",
}

# Every header a dead letter may carry (UTF-8 text, no NUL), and what it says.
HEADERS: dict[str, str] = {
    "kokeilu.source.topic": "The topic the record was read from (its full name, after KOKEILU_TOPIC_PREFIX when one "
                            "is set); for reason `unpublishable`, the topic the event was meant for (without the "
                            "prefix).",
    "kokeilu.source.partition": "The partition the record was read from (a consumer's dead letters only).",
    "kokeilu.source.offset": "The record's offset in that partition (a consumer's dead letters only).",
    "kokeilu.consumer.group": "The consumer group that could not process it (a consumer's dead letters only).",
    "kokeilu.outbox.id": "The outbox row of the unpublishable event (reason `unpublishable` only).",
    "kokeilu.service": "The service that set the record aside.",
    "kokeilu.reason": "Why: " + "; ".join(f"`{name}`: {why}" for name, why in REASONS.items()) + ".",
    "kokeilu.error": f"The error, at most {MAX_ERROR} characters.",
    "kokeilu.value.truncated": f"Present when the original value was larger than the event limit ({MAX_EVENT_BYTES} "
                               f"bytes): its size in bytes. The value is then its first {KEEP_BYTES} bytes; the whole "
                               "record stays on its source topic at the partition and offset named, as long as that "
                               "topic keeps it.",
}
# Headers every dead letter carries.
ALWAYS = ("kokeilu.source.topic", "kokeilu.service", "kokeilu.reason", "kokeilu.error")
# Headers whose text is a decimal integer.
NUMERIC = ("kokeilu.source.partition", "kokeilu.source.offset", "kokeilu.value.truncated")

KEY = (f"The original record's key as UTF-8 text (at most {MAX_KEY} characters), or no key when the original had "
       "none.")
VALUE = ("The original record's value, byte for byte: usually a CloudEvent in structured JSON, but whatever the record "
         f"held. Cut to its first {KEEP_BYTES} bytes when it was over the event limit (see kokeilu.value.truncated); "
         "no value (null) when the dead letter could not be stored with it, or the original was a tombstone.")
