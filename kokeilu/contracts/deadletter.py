"""The contract of a dead letter on `kokeilu.deadletter.v1`: its key, value and headers; and of
what redriving one (`python -m kokeilu.deadletters redrive`) writes.

kokeilu/kafka/deadletter.py builds dead letters to this; the AsyncAPI document describes it.

Original headers: a dead letter carries the original record's headers unchanged (e.g. its
`content-type`, so the value still reads as a CloudEvent in structured mode), next to the
`kokeilu.*` headers below, which are the platform's alone. An original header is left out, and
named in `kokeilu.headers.omitted`, when its name starts with `kokeilu.` (it would read as, or
overwrite, one of ours), when its name or value is not UTF-8 text without NUL (PostgreSQL's
JSON refuses NUL; the outbox stores headers as JSON text), when its value is longer than
MAX_HEADER characters (it is never cut: a header is kept exactly or not at all), when it repeats
a name already kept, or when it would take the original headers past MAX_ORIGINAL_HEADERS or
MAX_ORIGINAL_HEADER_BYTES (a dead letter must stay publishable).
"""

from __future__ import annotations

from .envelope import MAX_EVENT_BYTES

# A value over the event limit is kept cut to its first KEEP_BYTES.
KEEP_BYTES = 64 * 1024
MAX_ERROR = 2000
MAX_KEY = 200
# Any other header text is cut to this many characters; an original header longer than this is omitted.
MAX_HEADER = 500
# The original headers a dead letter keeps: at most this many, of at most this many bytes (names and values).
MAX_ORIGINAL_HEADERS = 50
MAX_ORIGINAL_HEADER_BYTES = 16 * 1024
# The platform's header namespace: an original header in it is never kept (see above).
NAMESPACE = "kokeilu."
OMITTED = "kokeilu.headers.omitted"

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
    OMITTED: "Present when original headers were left out (see `original headers`): their names, comma-separated, "
    f"at most {MAX_HEADER} characters.",
    "kokeilu.value.truncated": f"Present when the original value was larger than the event limit ({MAX_EVENT_BYTES} "
    f"bytes): its size in bytes. The value is then its first {KEEP_BYTES} bytes; the whole "
    "record stays on its source topic at the partition and offset named, as long as that "
    "topic keeps it.",
}
# Headers every dead letter carries.
ALWAYS = ("kokeilu.source.topic", "kokeilu.service", "kokeilu.reason", "kokeilu.error")
ORIGINAL_HEADERS = (
    "Every other header is one of the original record's, unchanged (e.g. `content-type: application/cloudevents+json`"
    ", so the value still reads as a CloudEvent). An original header is left out, and named in "
    f"`{OMITTED}`, when its name starts with `{NAMESPACE}`, when its name or value is not UTF-8 text without "
    f"NUL, when its value is over {MAX_HEADER} characters, when it repeats a name, or past {MAX_ORIGINAL_HEADERS} "
    f"headers or {MAX_ORIGINAL_HEADER_BYTES} bytes of them."
)
# Headers whose text is a decimal integer.
NUMERIC = ("kokeilu.source.partition", "kokeilu.source.offset", "kokeilu.value.truncated")

KEY = f"The original record's key as UTF-8 text (at most {MAX_KEY} characters), or no key when the original had none."
VALUE = (
    "The original record's value, byte for byte: usually a CloudEvent in structured JSON, but whatever the record "
    f"held. Cut to its first {KEEP_BYTES} bytes when it was over the event limit (see kokeilu.value.truncated); "
    "no value (null) when the dead letter could not be stored with it, or the original was a tombstone."
)

# Redriving: `python -m kokeilu.deadletters redrive` produces a dead letter's value, with its key
# and its original headers, back to its source topic, plus this header naming the dead letter
# (`<partition>:<offset>` on the dead-letter topic). A consumer applies the record as any other
# (an event it already applied is dropped by its inbox) and counts it as redriven.
REDRIVE_OF = "kokeilu.redrive.of"
REDRIVE_OF_DESCRIPTION = (
    "Present when an operator redrove this record from the dead-letter topic "
    "(`python -m kokeilu.deadletters redrive`): the dead letter's `<partition>:<offset>` on "
    "kokeilu.deadletter.v1. Otherwise the record is the original, byte for byte, with its "
    "original key and headers."
)
REDRIVE_OF_PATTERN = "^[0-9]+:[0-9]+$"

# Each redrive is recorded on the compacted topic kokeilu.deadletter-redrives.v1 once the redriven
# record is acknowledged: key `<partition>:<offset>` of the dead letter, value a JSON object with
# these fields. The tool reads it before redriving, so no dead letter (and no source record) is
# redriven twice.
REDRIVE_RECORD = {
    "deadletter": "The dead letter, `<partition>:<offset>` on kokeilu.deadletter.v1 (also the record key).",
    "source": "Where the original was: {topic, partition, offset} for a consumer's dead letter, {topic, service, "
    "outbox_id} for the relay's (reason `unpublishable`); topic without KOKEILU_TOPIC_PREFIX.",
    "redriven_to": "{topic, partition, offset} of the redriven record (topic with the prefix).",
    "service": "The service that set the record aside.",
    "reason": "Why it was set aside (kokeilu.reason).",
    "at": "When it was redriven (ISO 8601, UTC).",
    "by": "Who redrove it: the operating-system user and the Kafka principal, when one is configured.",
}
