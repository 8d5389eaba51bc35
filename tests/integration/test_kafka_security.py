"""Kafka security (issue 8, finding 10) on a real broker.

A private broker is started the way production runs it (deploy/kafka.sh with KAFKA_SECURE=1:
SASL_SSL with SCRAM-SHA-512, StandardAuthorizer, nothing allowed without an ACL), the ACLs of
kokeilu.kafka.acls are applied with its CLI as the admin principal, and proposals and
evaluation and catalogue run as real processes, each with its own principal. The services work; a forged
event from a principal that may not write the topic is refused by the broker and never
reaches the topic; a department reads the public results but nothing internal; clients that do
not authenticate (or do not trust the broker's CA) cannot connect.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ACLOperation, KafkaAdminClient, ResourceType
from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

from examples import results_consumer
from kokeilu.config import Settings
from kokeilu.contracts import topics
from kokeilu.kafka import acls
from tests.builders import cloudevent, submission
from tests.support import ROOT, Platform, free_port, wait_until

pytestmark = pytest.mark.kafka

KAFKA_SH = ROOT / "deploy" / "kafka.sh"
USERS = ("admin", "proposals", "evaluation", "notifications", "catalogue", "intake", "department")
T = "fi.espoo.kokeilu."


@dataclass
class SecureBroker:
    bootstrap: str
    cafile: str
    passwords: dict[str, str]
    data_dir: Path

    def options(self, user: str, password: str | None = None) -> dict:
        """kafka-python options of `user` (what Settings.kafka_client_options gives a service)."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user,
            "sasl_plain_password": self.passwords[user] if password is None else password,
            "ssl_cafile": self.cafile,
        }

    def env(self, user: str) -> dict[str, str]:
        """The environment a process of `user` gets (docker-compose.yml sets the same variables)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": self.passwords[user],
            "KAFKA_SSL_CAFILE": self.cafile,
        }


def distinct_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    data = tmp_path_factory.mktemp("kafka-secure")
    port, controller = distinct_ports(2)
    # Random passwords rather than the -local-only defaults: what the environment says is what counts.
    passwords = {user: secrets.token_hex(12) for user in USERS}
    env = {
        **os.environ,
        "KAFKA_SECURE": "1",
        "KAFKA_DATA_DIR": str(data),
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        **{acls.password_variable(user): password for user, password in passwords.items()},
    }
    try:
        started = subprocess.run([str(KAFKA_SH), "start"], env=env, capture_output=True, text=True, timeout=240)
        logs = data / "logs" / "server.log"
        assert started.returncode == 0, started.stderr + (logs.read_text()[-3000:] if logs.exists() else "")
        yield SecureBroker(f"127.0.0.1:{port}", str(data / "secrets" / "ca.pem"), passwords, data)
    finally:
        subprocess.run([str(KAFKA_SH), "stop"], env=env, capture_output=True, timeout=90)


def run_acls(broker: SecureBroker, prefix: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **broker.env("admin"),
        "KOKEILU_TOPIC_PREFIX": prefix,
        "KOKEILU_TOPIC_PARTITIONS": "3",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "kokeilu.kafka.acls", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def platform(broker, tmp_path_factory):
    services = ("proposals", "evaluation", "catalogue")
    shared = {k: v for k, v in broker.env("admin").items() if k not in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")}
    own = {s: {"KAFKA_SASL_USERNAME": s, "KAFKA_SASL_PASSWORD": broker.passwords[s]} for s in services}
    p = Platform(tmp_path_factory.mktemp("secure-platform"), extra_env=shared, service_env=own)
    # The admin step of docker-compose.yml (kafka-init): topics and ACLs before any service starts.
    applied = run_acls(broker, p.prefix, "apply", "--department", "department")
    assert applied.returncode == 0, applied.stderr
    p.acl_output = applied.stdout
    try:
        p.start(*services)
        yield p
    finally:
        p.stop()


def read_all(broker: SecureBroker, user: str, topic: str) -> list:
    """Every record on `topic` up to its end offsets now, read as `user` without a group."""
    consumer = KafkaConsumer(**broker.options(user), group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions, f"{user} sees no partitions of {topic}"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records = []
        wait_until(
            lambda: (
                records.extend(r for batch in consumer.poll(timeout_ms=300).values() for r in batch)
                or all(consumer.position(tp) >= end[tp] for tp in partitions)
            ),
            timeout=30,
            what=f"reading {topic} to its end as {user}",
        )
        return records
    finally:
        consumer.close()


def submit(platform) -> str:
    created = platform.post("proposals", "/v1/proposals", submission(title=f"Secured Kera pilot {uuid.uuid4().hex}"))
    assert created.status_code == 201, created.text
    return created.json()["id"]


def status_of(platform, pid: str) -> str:
    return platform.get("proposals", f"/v1/proposals/{pid}").json()["status"]


def test_the_admin_step_creates_the_topics_and_exactly_the_acls_of_the_table(broker, platform):
    wanted = acls.bindings(Settings(kokeilu_topic_prefix=platform.prefix), ("department",))
    assert platform.acl_output.startswith(f"{len(wanted)} ACLs in the table; {len(wanted)} created, 0 deleted")
    admin = KafkaAdminClient(**broker.options("admin"))
    try:
        assert {platform.topic(t) for t in topics.ALL} <= set(admin.list_topics())
        on_this_prefix = {
            a for a in acls.current(admin) if a.resource_pattern.resource_name.startswith(platform.prefix)
        }
        assert on_this_prefix == wanted
        # A grant made by hand, outside the table, is taken away by the next apply.
        extra = acls._acl("department", ACLOperation.WRITE, ResourceType.TOPIC, platform.topic(topics.RESULTS))
        assert not admin.create_acls([extra])["failed"]
    finally:
        admin.close()
    again = run_acls(broker, platform.prefix, "apply", "--department", "department")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"{len(wanted)} ACLs in the table; 0 created, 1 deleted"), again.stdout
    admin = KafkaAdminClient(**broker.options("admin"))
    try:
        # ACL changes reach the broker's authorizer through the metadata log, a moment later.
        wait_until(lambda: extra not in acls.current(admin), timeout=30, what="the hand-made grant to be gone")
        assert acls.current(admin) >= wanted
    finally:
        admin.close()


def test_each_service_works_with_its_own_principal(broker, platform):
    pid = submit(platform)
    # evaluation (principal `evaluation`) read the proposal and published its screening on
    # kokeilu.evaluations.v1; proposals (principal `proposals`) read that and moved on.
    wait_until(lambda: status_of(platform, pid) == "in_evaluation", timeout=60, what=f"{pid} to be in_evaluation")
    # `catalogue` may read kokeilu.proposals.v1: it finds the event proposals published.
    submitted = [json.loads(r.value) for r in read_all(broker, "catalogue", platform.topic(topics.PROPOSALS))]
    assert any(e["type"] == T + "proposal.submitted" and e["subject"] == pid for e in submitted)
    screened = [json.loads(r.value) for r in read_all(broker, "proposals", platform.topic(topics.EVALUATIONS))]
    assert any(e["type"] == T + "screening.completed" and e["subject"] == pid for e in screened)
    # The services may not create topics; they said so, and carried on with the admin's topics.
    assert "not authorised to create topics" in platform.log_text("proposals")


FORGERIES = [
    # (principal, topic, event type): none of them may write that topic.
    ("notifications", topics.EVALUATIONS, "evaluation.decided"),
    ("department", topics.EVALUATIONS, "evaluation.decided"),
    ("intake", topics.EVALUATIONS, "evaluation.decided"),
    ("evaluation", topics.PROPOSALS, "proposal.status-changed"),
    ("catalogue", topics.PROPOSALS, "proposal.status-changed"),
    ("notifications", topics.INTAKE, "intake.proposal"),
    ("department", topics.RESULTS, "result.published"),
]


@pytest.mark.parametrize("user,topic,type_", FORGERIES, ids=[f"{u}->{t}" for u, t, _ in FORGERIES])
def test_a_forged_event_from_an_unauthorised_principal_is_refused(broker, platform, user, topic, type_):
    pid = submit(platform)
    wait_until(lambda: status_of(platform, pid) == "in_evaluation", timeout=60, what=f"{pid} to be in_evaluation")
    forged_id = f"forged-{uuid.uuid4()}"
    forged = cloudevent(
        T + type_,
        {"proposal_id": pid, "outcome": "approved", "status": "approved"},
        subject=pid,
        source="evaluation",
        event_id=forged_id,
    )
    producer = KafkaProducer(**broker.options(user), acks="all", enable_idempotence=False, retries=0)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(platform.topic(topic), key=pid.encode(), value=json.dumps(forged).encode()).get(timeout=30)
    finally:
        producer.close(timeout=5)
    # Nothing of it is on the topic (read by the admin), so no service could apply it.
    assert not [r for r in read_all(broker, "admin", platform.topic(topic)) if forged_id.encode() in r.value]
    assert status_of(platform, pid) == "in_evaluation"


def test_an_idempotent_producer_of_another_principal_is_refused_too(broker, platform):
    """The services' relay is idempotent; WRITE on its own topics does not stretch to others'."""
    producer = KafkaProducer(**broker.options("notifications"), acks="all", enable_idempotence=True)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(platform.topic(topics.EVALUATIONS), value=b"{}").get(timeout=30)
    finally:
        producer.close(timeout=5)
    # A department may write nothing at all: the broker refuses it even a producer id.
    producer = KafkaProducer(**broker.options("department"), acks="all", enable_idempotence=True)
    try:
        with pytest.raises(Exception) as refused:
            producer.send(platform.topic(topics.RESULTS), key=b"k", value=b"{}").get(timeout=30)
        assert "ClusterAuthorizationFailed" in str(refused.value) or isinstance(
            refused.value, ClusterAuthorizationFailedError
        )
    finally:
        producer.close(timeout=5)


def test_a_department_reads_the_public_results_but_nothing_internal(broker, platform, tmp_path):
    pid = submit(platform)
    # catalogue (principal `catalogue`) publishes the result; the department's example consumer
    # (examples/results_consumer.py), logged in as `department` with a group of its own, keeps it.
    database = str(tmp_path / "department.db")
    group = f"{platform.prefix}kokeilu.department.department"
    security = results_consumer.secured("department", broker.passwords["department"], broker.cafile)

    def kept() -> bool:
        results_consumer.run(
            broker.bootstrap, group, database, platform.topic(topics.RESULTS), idle_seconds=2, security=security
        )
        return sqlite3.connect(database).execute("SELECT status FROM results WHERE result_id = ?", (pid,)).fetchone()

    wait_until(kept, timeout=60, interval=0, what="the department to keep the published result")

    consumer = KafkaConsumer(**broker.options("department"), group_id=None)
    try:
        proposals = platform.topic(topics.PROPOSALS)
        assert not consumer.partitions_for_topic(proposals)  # may not even see it
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.beginning_offsets([TopicPartition(proposals, 0)])
    finally:
        consumer.close()

    # Another's consumer group (here the catalogue's) is refused.
    consumer = KafkaConsumer(
        platform.topic(topics.RESULTS),
        **broker.options("department"),
        group_id=f"{platform.prefix}kokeilu.catalogue",
        auto_offset_reset="earliest",
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            for _ in range(50):  # bounded: the refusal comes with the first join
                consumer.poll(timeout_ms=200)
    finally:
        consumer.close()


CREDENTIALS = {
    "plaintext": {"security_protocol": "PLAINTEXT"},
    "tls without sasl": {"security_protocol": "SSL"},
    "wrong password": {"sasl_plain_password": "not-the-password"},
    "unknown user": {"sasl_plain_username": "mallory"},
    "broker CA not trusted": {"ssl_cafile": None},
}


@pytest.mark.parametrize("case", sorted(CREDENTIALS))
def test_clients_that_do_not_authenticate_cannot_connect(broker, case):
    options = {**broker.options("proposals"), **CREDENTIALS[case]}
    if options["security_protocol"] != "SASL_SSL":
        options = {k: v for k, v in options.items() if not k.startswith("sasl_")}
    # The broker hangs up (kafka-python reports a failed SCRAM exchange only sometimes before
    # the socket closes): the client never gets as far as metadata.
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(**options, bootstrap_timeout_ms=4000, request_timeout_ms=4000).close()
    # The same client with the right credentials connects: what failed was the credential.
    admin = KafkaAdminClient(**broker.options("proposals"), bootstrap_timeout_ms=10000)
    try:
        assert isinstance(admin.list_topics(), list)
    finally:
        admin.close()
