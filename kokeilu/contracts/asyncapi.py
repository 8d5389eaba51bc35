"""The AsyncAPI 3.0 document of every topic (schemas/asyncapi.json), from the contract.

Written from the platform's point of view: a `send` operation for each topic its services
publish, a `receive` operation for each topic they consume (kokeilu/contracts/flows.py says
who does which). Messages: one per event type of the catalogue (payload: the checked-in JSON
Schema of the whole CloudEvent), and the dead letter (kokeilu/contracts/deadletter.py).

schemas.py writes it; tests/unit/platform/test_asyncapi.py has the official parser (@asyncapi/parser,
tools/asyncapi/) validate it.
"""

from __future__ import annotations

from typing import Any

from . import deadletter, flows, topics
from .catalog import ALL, EventType
from .envelope import CONTENT_TYPE, MAX_EVENT_BYTES
from .sources import DEFAULT_SOURCE_BASE, SOURCE_BASE_VARIABLE, service_source

VERSION = "1.2.0"
KAFKA_BINDING = "0.5.0"
DEAD_LETTER = "dead_letter"

TOPIC_DESCRIPTIONS = {
    topics.INTAKE: "Commands from integrated city systems (e-services portal, school systems, sensor platforms).",
    topics.PROPOSALS: "Internal: the proposal lifecycle, published by the proposals service.",
    topics.EVALUATIONS: "Internal: screening and evaluation outcomes, published by the evaluation service.",
    topics.NOTIFICATIONS: "Internal: delivery outcomes, published by the notifications service.",
    topics.RESULTS: "Public: the results catalogue, compacted, keyed by result id. No personal data.",
    topics.DEADLETTER: "Records a service could not process (or publish), kept with headers saying where they were "
    "and why. Read by operators, as the Kafka admin (docs/operations.md, "
    "KokeiluRecordsDeadLettered).",
}

# The record key of each topic's events, beyond "the event's `subject`".
KEY_NOTES = {
    topics.INTAKE: "Chosen by the sending system; the platform does not read it. Recommended: the proposal id for "
    "`intake.measurement` (one proposal's measurements then stay in order), the event's `id` for "
    "`intake.proposal`.",
    topics.PROPOSALS: "One proposal's events stay in order on one partition.",
    topics.EVALUATIONS: "One proposal's events stay in order on one partition.",
    topics.NOTIFICATIONS: "One subscription's outcomes stay in order on one partition.",
    topics.RESULTS: "The topic is compacted: the latest event of each result is kept for good.",
}

SECURITY_SCHEME = "scramSha512"
PROPOSAL_ID = EventType.__dataclass_fields__["subject"].default


def message_name(event_type: EventType) -> str:
    return event_type.short.replace(".", "_").replace("-", "_")


def channel_name(topic: str) -> str:
    return topic.replace(".", "_")


def subject_description(event_type: EventType) -> str:
    """The `subject` of an event type, as its JSON Schema says it."""
    if event_type.topic == topics.INTAKE:
        return event_type.subject
    return event_type.subject + " Also the record key."


def key_schema(event_type: EventType) -> dict[str, Any]:
    if event_type.topic == topics.INTAKE:
        return {"type": ["string", "null"], "description": KEY_NOTES[topics.INTAKE]}
    description = f"The event's `subject`, i.e. {event_type.subject[0].lower()}{event_type.subject[1:]}"
    if event_type.topic in (topics.NOTIFICATIONS, topics.RESULTS) or event_type.subject == PROPOSAL_ID:
        description += " " + KEY_NOTES[event_type.topic]
    return {"type": "string", "minLength": 1, "maxLength": 200, "description": description}


def event_message(event_type: EventType) -> dict[str, Any]:
    published_by_platform = event_type.topic != topics.INTAKE
    headers = {
        "type": "object",
        "properties": {
            "content-type": {
                "type": "string",
                "const": CONTENT_TYPE,
                "description": "CloudEvents Kafka protocol binding, structured content mode: the whole CloudEvent is "
                "the record value."
                + ("" if published_by_platform else " Set it; the platform reads the value whatever the header says."),
            },
            "traceparent": {
                "type": "string",
                "description": "The event's `traceparent` attribute (W3C Trace Context) "
                "repeated as a header, where Kafka tooling looks for it.",
            },
            deadletter.REDRIVE_OF: {
                "type": "string",
                "pattern": deadletter.REDRIVE_OF_PATTERN,
                "description": deadletter.REDRIVE_OF_DESCRIPTION,
            },
        },
    }
    if published_by_platform:
        headers["required"] = ["content-type"]
    return {
        "name": event_type.name,
        "title": event_type.short,
        "summary": event_type.summary,
        "contentType": CONTENT_TYPE,
        "headers": headers,
        "payload": {"$ref": f"events/{event_type.name}.v{event_type.version}.json"},
        "correlationId": {"$ref": "#/components/correlationIds/correlationid"},
        "bindings": {"kafka": {"key": key_schema(event_type), "bindingVersion": KAFKA_BINDING}},
    }


def dead_letter_message() -> dict[str, Any]:
    properties = {}
    for name, description in deadletter.HEADERS.items():
        schema: dict[str, Any] = {"type": "string", "description": description}
        if name in deadletter.NUMERIC:
            schema["pattern"] = "^[0-9]+$"
        elif name == "kokeilu.reason":
            schema["enum"] = list(deadletter.REASONS)
        elif name == "kokeilu.error":
            schema["maxLength"] = deadletter.MAX_ERROR
        else:
            schema["maxLength"] = deadletter.MAX_HEADER
        properties[name] = schema
    return {
        "name": "deadletter",
        "title": "Dead letter",
        "summary": "A record a service set aside: the original value, with headers saying where it was and why.",
        "description": "Written through the service's outbox, once per original record. A consumer's dead letter "
        "names the record's topic, partition, offset and consumer group; the relay's (reason "
        "`unpublishable`) names the topic the event was meant for and its outbox row. "
        + deadletter.ORIGINAL_HEADERS
        + " Operators list, show and redrive dead letters with "
        '`python -m kokeilu.deadletters` (docs/operations.md, "Dead letters: read, fix, redrive"); '
        f"a redriven record carries `{deadletter.REDRIVE_OF}`.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": list(deadletter.ALWAYS),
            "properties": properties,
            # Any other header is an original one, kept unchanged; none of them is in our namespace.
            "propertyNames": {
                "anyOf": [
                    {"enum": list(deadletter.HEADERS)},
                    {"not": {"pattern": "^" + deadletter.NAMESPACE.replace(".", "\\.")}},
                ]
            },
            "additionalProperties": {
                "type": "string",
                "maxLength": deadletter.MAX_HEADER,
                "description": "An original header, unchanged.",
            },
        },
        "payload": {"type": ["string", "null"], "format": "binary", "description": deadletter.VALUE},
        "bindings": {
            "kafka": {
                "key": {"type": ["string", "null"], "maxLength": deadletter.MAX_KEY, "description": deadletter.KEY},
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "examples": [
            {
                "name": "invalid-intake",
                "summary": "An intake event whose data failed validation, set aside by the proposals service "
                "(record key: the original's, e.g. `portal-42`).",
                "headers": {
                    "content-type": CONTENT_TYPE,
                    "kokeilu.source.topic": topics.INTAKE,
                    "kokeilu.source.partition": "3",
                    "kokeilu.source.offset": "1187",
                    "kokeilu.consumer.group": "kokeilu.proposals",
                    "kokeilu.service": "proposals",
                    "kokeilu.reason": "invalid",
                    "kokeilu.error": "invalid data for fi.espoo.kokeilu.intake.proposal: title: Field required",
                },
                "payload": '{"specversion": "1.0", "id": "portal-42", "source": "e-services-portal", ...}',
            }
        ],
    }


def messages_of(topic: str) -> dict[str, dict[str, Any]]:
    if topic == topics.DEADLETTER:
        return {DEAD_LETTER: {"$ref": f"#/components/messages/{DEAD_LETTER}"}}
    return {message_name(t): {"$ref": f"#/components/messages/{message_name(t)}"} for t in ALL if t.topic == topic}


def _names(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else "".join(items)


def channel(topic: str) -> dict[str, Any]:
    publishers = flows.publishers(topic) + flows.outside(topic, "publishes")
    consumers = flows.consumers(topic) + flows.outside(topic, "consumes")
    who = f" Published by {_names(publishers)}; consumed by {_names(consumers) or 'no one inside the platform'}."
    policy = "compact" if topic in topics.COMPACTED else "delete"
    return {
        "address": topic,
        "title": topic,
        "description": TOPIC_DESCRIPTIONS[topic] + who,
        "messages": messages_of(topic),
        "bindings": {"kafka": {"topicConfiguration": {"cleanup.policy": [policy]}, "bindingVersion": KAFKA_BINDING}},
    }


def operations() -> dict[str, dict[str, Any]]:
    out = {}
    for topic in topics.ALL:
        name = channel_name(topic)
        refs = [{"$ref": f"#/channels/{name}/messages/{m}"} for m in messages_of(topic)]
        publishers, consumers = flows.publishers(topic), flows.consumers(topic)
        if publishers:
            out[f"send_{name}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{name}"},
                "title": f"Publish to {topic}",
                "summary": f"The {_names(publishers)} service{'s' if len(publishers) > 1 else ''} "
                f"publish{'' if len(publishers) > 1 else 'es'} to {topic}, through the transactional "
                "outbox (idempotent producer, acks=all).",
                "messages": refs,
            }
        if consumers:
            groups = "|".join(consumers)
            out[f"receive_{name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{name}"},
                "title": f"Consume {topic}",
                "summary": f"The {_names(consumers)} service{'s' if len(consumers) > 1 else ''} "
                f"consume{'' if len(consumers) > 1 else 's'} {topic}; each applies a record once "
                "(the inbox, keyed by `source` + `id`) and dead-letters what it cannot process.",
                "messages": refs,
                "bindings": {
                    "kafka": {
                        "groupId": {
                            "type": "string",
                            "pattern": f"^(.*)kokeilu\\.({groups})(\\..+)?$",
                            "description": "kokeilu.<service>[.<suffix>], after KOKEILU_TOPIC_PREFIX when one is set.",
                        },
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            }
    return out


def flow_table() -> str:
    rows = ["| topic | published by | consumed by |", "| --- | --- | --- |"]
    for topic in topics.ALL:
        rows.append(
            f"| `{topic}` | {', '.join(flows.publishers(topic) + flows.outside(topic, 'publishes'))} | "
            f"{', '.join(flows.consumers(topic) + flows.outside(topic, 'consumes')) or '-'} |"
        )
    return "\n".join(rows)


def document() -> dict[str, Any]:
    description = f"""Every topic of the Kokeilu platform, from the platform's point of view: `send` operations for \
what its services publish, `receive` operations for what they consume.

Every record but a dead letter is a CloudEvent 1.0 in structured JSON mode (header `content-type: {CONTENT_TYPE}`, \
the whole event as the value, at most {MAX_EVENT_BYTES} bytes). The record key is the event's `subject`: the \
aggregate id, so one proposal's events stay in order. The payload schemas are the checked-in JSON Schemas in \
`events/`, one per event type, generated from the models.

`source`: the platform's services publish with `source` = `<base>services/<service>`, the base being \
`{SOURCE_BASE_VARIABLE}` (default `{DEFAULT_SOURCE_BASE}`, so e.g. `{service_source("proposals", DEFAULT_SOURCE_BASE)}`). \
Events published before this base existed say `kokeilu/<service>`. Consumers accept any `source`; `source` + `id` \
identifies an event.

Topic names are the addresses below, after `KOKEILU_TOPIC_PREFIX` when one is set (empty in production).

{flow_table()}
"""
    return {
        "asyncapi": "3.0.0",
        "id": "urn:kokeilu:events",
        "info": {
            "title": "Kokeilu events",
            "version": VERSION,
            "description": description,
            "license": {"name": "CC-BY-4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "title": "Local broker",
                "description": "The single local broker of `make run` and the tests (`deploy/kafka.sh`): PLAINTEXT, "
                "no authentication, no ACLs.",
            },
            "production": {
                "host": "{bootstrap}",
                "protocol": "kafka-secure",
                "title": "Production cluster",
                "description": "The secured cluster: SASL_SSL, i.e. TLS (the cluster's CA) then SASL/SCRAM-SHA-512, "
                "and ACLs that let each principal write only what it publishes and read only what it "
                'consumes (docs/operations.md, "Kafka security").',
                "variables": {
                    "bootstrap": {
                        "default": "kokeilu-kafka-bootstrap.kafka.svc:9093",
                        "description": "A bootstrap broker: the Kubernetes cluster's bootstrap service (deploy/k8s), or "
                        "one of the compose stack's brokers.",
                        "examples": [
                            "kokeilu-kafka-bootstrap.kafka.svc:9093",
                            "kafka-1:9092",
                            "kafka-2:9092",
                            "kafka-3:9092",
                        ],
                    }
                },
                "security": [{"$ref": f"#/components/securitySchemes/{SECURITY_SCHEME}"}],
            },
        },
        "channels": {channel_name(topic): channel(topic) for topic in topics.ALL},
        "operations": operations(),
        "components": {
            "messages": {**{message_name(t): event_message(t) for t in ALL}, DEAD_LETTER: dead_letter_message()},
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "scramSha512",
                    "description": "SASL/SCRAM-SHA-512 over TLS (Kafka SASL_SSL). Principals: each service under its own "
                    "name, `intake` for city systems, one per department; the ACL table is "
                    "kokeilu/contracts/flows.py, applied by `python -m kokeilu.kafka.acls apply`.",
                }
            },
            "correlationIds": {
                "correlationid": {
                    "description": "The CloudEvents `correlationid` extension: one id follows a proposal through every "
                    "service (an event caused by another carries its correlation id on).",
                    "location": "$message.payload#/correlationid",
                }
            },
        },
    }
