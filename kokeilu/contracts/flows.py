"""Who publishes and who consumes each topic: the one table.

The Kafka ACLs (kokeilu/kafka/acls.py) grant exactly this, and the AsyncAPI document
(kokeilu/contracts/asyncapi.py) describes it: a `send` operation for each topic the platform's
services publish, a `receive` operation for each topic they consume. A unit test checks the
services' rows against their `@consume` entrypoints (tests/unit/platform/test_kafka_acls.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import topics


@dataclass(frozen=True)
class Party:
    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    description: str = ""


# The platform: its four services. Every service also publishes the dead letters of what it
# could not process (or publish).
SERVICES: dict[str, Party] = {
    "proposals": Party(
        publishes=(topics.PROPOSALS, topics.DEADLETTER),
        consumes=(topics.INTAKE, topics.EVALUATIONS),
        description="proposals, revisions, pilots, KPI measurements",
    ),
    "evaluation": Party(
        publishes=(topics.EVALUATIONS, topics.DEADLETTER),
        consumes=(topics.PROPOSALS,),
        description="screening, panels, decisions, SLA clocks",
    ),
    "notifications": Party(
        publishes=(topics.NOTIFICATIONS, topics.DEADLETTER),
        consumes=(topics.PROPOSALS, topics.EVALUATIONS, topics.RESULTS),
        description="subscriptions, webhook and e-mail deliveries",
    ),
    "catalogue": Party(
        publishes=(topics.RESULTS, topics.DEADLETTER),
        consumes=(topics.PROPOSALS, topics.EVALUATIONS),
        description="the public results catalogue",
    ),
}

# Outside the platform. City systems (the e-services portal, school systems, sensor platforms)
# send proposals and measurements in; departments read the public results; operators read the
# dead letters and redrive them to the topics they came from, recording each redrive
# (`python -m kokeilu.deadletters`, as the Kafka admin).
CITY_SYSTEMS = Party(publishes=(topics.INTAKE,), description="integrated city systems")
DEPARTMENTS = Party(consumes=(topics.RESULTS,), description="city departments")
# A dead letter's source: a topic a service consumes, or (reason `unpublishable`) one it publishes.
REDRIVE_TARGETS = tuple(t for t in topics.ALL if t != topics.DEADLETTER)
OPERATORS = Party(
    publishes=REDRIVE_TARGETS + topics.OPERATIONS,
    consumes=(topics.DEADLETTER,) + topics.OPERATIONS,
    description="operators, as the Kafka admin: read dead letters, redrive them to their source topic",
)
OUTSIDE: dict[str, Party] = {"city systems": CITY_SYSTEMS, "departments": DEPARTMENTS, "operators": OPERATORS}


def publishers(topic: str) -> list[str]:
    """The services that publish `topic` (empty: only parties outside the platform do)."""
    return [name for name, party in SERVICES.items() if topic in party.publishes]


def consumers(topic: str) -> list[str]:
    """The services that consume `topic`."""
    return [name for name, party in SERVICES.items() if topic in party.consumes]


def outside(topic: str, action: str) -> list[str]:
    """The parties outside the platform that `publishes` or `consumes` `topic`."""
    return [name for name, party in OUTSIDE.items() if topic in getattr(party, action)]
