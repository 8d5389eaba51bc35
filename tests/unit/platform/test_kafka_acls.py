"""The ACL table of kokeilu.kafka.acls agrees with what the services consume, and is least privilege."""

from __future__ import annotations

import importlib
import re

import pytest
from kafka.admin import ACLOperation, ACLResourcePatternType, ResourceType
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from kokeilu.config import Settings
from kokeilu.contracts import topics
from kokeilu.kafka import acls
from kokeilu.kafka.consumer import EventConsumer
from tests.support import ROOT, SERVICE_CLASSES

# Which service owns (alone publishes) which topic; every service also writes dead letters.
OWNER = {
    topics.PROPOSALS: "proposals",
    topics.EVALUATIONS: "evaluation",
    topics.NOTIFICATIONS: "notifications",
    topics.RESULTS: "catalogue",
    topics.INTAKE: "intake",
}


def consumed_topics(service: str) -> set[str]:
    cls = getattr(importlib.import_module(f"services.{service}.service"), SERVICE_CLASSES[service])
    found = set()
    for attribute in vars(cls).values():
        for entrypoint in getattr(attribute, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, EventConsumer):
                found.update(entrypoint.topic_names)
    return found


@pytest.mark.parametrize("service", sorted(SERVICE_CLASSES))
def test_each_service_may_read_exactly_what_it_consumes(service):
    consumed = consumed_topics(service)
    assert consumed, f"{service} consumes nothing?"
    assert set(acls.SERVICES[service].reads) == consumed


def test_every_topic_but_dead_letters_has_exactly_one_writer():
    writers: dict[str, set[str]] = {}
    for user, access in acls.principals(("department", "environment")).items():
        for topic in access.writes:
            writers.setdefault(topic, set()).add(user)
    assert writers.pop(topics.DEADLETTER) == set(acls.SERVICES)
    assert {topic: next(iter(users)) for topic, users in writers.items() if len(users) == 1} == OWNER
    assert all(len(users) == 1 for users in writers.values())


def test_departments_only_read_the_public_results_with_their_own_groups():
    prefix = "p1."
    grants = [
        a
        for a in acls.bindings(Settings(kokeilu_topic_prefix=prefix), ("environment",))
        if a.principal == "User:environment"
    ]
    topics_read = {
        a.resource_pattern.resource_name for a in grants if a.resource_pattern.resource_type == ResourceType.TOPIC
    }
    assert topics_read == {prefix + topics.RESULTS}
    assert {a.operation for a in grants} == {ACLOperation.READ}
    groups = {
        (a.resource_pattern.resource_name, a.resource_pattern.pattern_type)
        for a in grants
        if a.resource_pattern.resource_type == ResourceType.GROUP
    }
    assert groups == {
        ("p1.kokeilu.department.environment", ACLResourcePatternType.LITERAL),
        ("p1.kokeilu.department.environment.", ACLResourcePatternType.PREFIXED),
    }


def test_no_principal_gets_more_than_read_and_write_nor_any_cluster_grant():
    grants = acls.bindings(Settings(), ("department",))
    assert {a.operation for a in grants} == {ACLOperation.READ, ACLOperation.WRITE}
    assert {a.resource_pattern.resource_type for a in grants} == {ResourceType.TOPIC, ResourceType.GROUP}
    assert all(a.host == "*" and a.principal.startswith("User:") for a in grants)
    service_groups = {
        a.resource_pattern.resource_name
        for a in grants
        if a.resource_pattern.resource_type == ResourceType.GROUP and a.principal == "User:proposals"
    }
    assert service_groups == {"kokeilu.proposals", "kokeilu.proposals."}


@pytest.mark.parametrize("name", ["proposals", "intake", "Bad Name", "", "x" * 80])
def test_a_department_may_not_take_a_service_name_or_a_strange_one(name):
    with pytest.raises(ValueError, match=f"department name {re.escape(repr(name))}: .* not a service's name"):
        acls.principals((name,))


def test_the_operations_guide_shows_the_table_the_code_applies():
    guide = (ROOT / "docs" / "operations.md").read_text()
    section = guide[guide.index("### Principals and ACLs") :]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4:
            rows[re.findall(r"`([^`]+)`", cells[0])[0]] = [
                set(re.findall(r"`(kokeilu\.[a-z]+\.v1)`", c)) for c in cells[1:3]
            ]
    for user, access in {**acls.SERVICES, **acls.CITY_SYSTEMS, "department": acls.department("department")}.items():
        assert rows[user] == [set(access.writes), set(access.reads)], user
