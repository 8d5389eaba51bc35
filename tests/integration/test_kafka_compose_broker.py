"""The secured three-node Kafka cluster of docker-compose.yml (kafka-1, kafka-2, kafka-3), run
without Docker.

deploy/compose/kafka-node.sh's `container` entrypoint (which renders each node's configuration
through deploy/kafka/secure.sh) runs three times, with the environment docker-compose.yml gives
each node, on a stand-in for the image's /opt/kafka (two scripts that run the same Kafka 4.1.1
jars as the apache/kafka image). Only what cannot work outside Docker is changed: the host
names (localhost for `kafka-N`, so the quorum's addresses too), free ports on 127.0.0.1, and
paths. Then the compose healthcheck's command, the kafka-init command and each service's
credentials are used as compose gives them: the passwords the nodes' SCRAM users were formatted
with are the ones the services log in with, kafka-init's topics are on all three nodes, and its
ACLs let each service see its own topics only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from kokeilu.config import Settings
from kokeilu.contracts import topics
from kokeilu.kafka import acls
from tests.support import ROOT, free_port, wait_until
from tests.test_compose import COMPOSE_FILE, compose_default, load_yaml

pytestmark = pytest.mark.kafka

SECURE_SH = ROOT / "deploy" / "kafka" / "secure.sh"
NODE_SH = ROOT / "deploy" / "compose" / "kafka-node.sh"
NODES = ("kafka-1", "kafka-2", "kafka-3")
LIBS = Path(os.environ.get("KAFKA_LIBS_DIR", ROOT / ".local" / "kafka" / "libs"))


def resolved(environment: dict) -> dict[str, str]:
    return {key: compose_default(value) for key, value in environment.items()}


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class ComposeBroker:
    """The three nodes; `port` is kafka-1's client port, `home` its /opt/kafka."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.compose = load_yaml(COMPOSE_FILE)
        ports = free_ports(2 * len(NODES))
        self.ports = dict(zip(NODES, ports[: len(NODES)], strict=False))
        self.controller_ports = dict(zip(NODES, ports[len(NODES) :], strict=False))
        self.port = self.ports["kafka-1"]
        self.homes = {node: tmp / node / "opt-kafka" for node in NODES}
        self.home = self.homes["kafka-1"]
        self.ca = tmp / "kafka-ca" / "ca.pem"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict = {}

    def java(self, main: str, *extra: str) -> str:
        return (
            f"exec java -Xms128m -Xmx512m -Dlog4j2.configurationFile={ROOT}/deploy/kafka/log4j2.properties "
            f'-Dkafka.logs.dir={self.tmp}/logs {" ".join(extra)} -cp "{LIBS}/*" {main} "$@"\n'
        )

    def start(self) -> None:
        assert (LIBS / "kafka_2.13-4.1.1.jar").exists(), f"Kafka jars not in {LIBS} (run deploy/kafka.sh start once)"
        # kafka-certs, with the stand-in host name (one certificate for the three nodes, as in compose).
        subprocess.run(
            [
                "bash",
                str(SECURE_SH),
                "certs",
                str(self.tmp / "kafka-secrets"),
                str(self.ca.parent),
                "localhost",
                "127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        voters = ",".join(f"{n}@localhost:{self.controller_ports[node]}" for n, node in enumerate(NODES, start=1))
        for node in NODES:
            home = self.homes[node]
            (home / "bin").mkdir(parents=True)
            (home / "config").mkdir()
            for name, main in (
                ("kafka-storage.sh", "kafka.tools.StorageTool"),
                ("kafka-server-start.sh", "kafka.Kafka"),
            ):
                script = home / "bin" / name
                script.write_text("#!/usr/bin/env bash\n" + self.java(main))
                script.chmod(0o755)
            env = resolved(self.compose["services"][node]["environment"])
            assert env["KAFKA_QUORUM_VOTERS"] == ",".join(f"{n}@{name}:9093" for n, name in enumerate(NODES, start=1))
            env.update(
                PATH=os.environ["PATH"],
                KAFKA_HOME=str(home),
                KAFKA_SECRETS_DIR=str(self.tmp / "kafka-secrets"),
                KAFKA_SECURE_SCRIPT=str(SECURE_SH),
                KAFKA_DATA_DIR=str(self.tmp / node / "kafka-data"),
                KAFKA_HOST="localhost",
                KAFKA_BIND_HOST="127.0.0.1",
                KAFKA_QUORUM_VOTERS=voters,
                KAFKA_PORT=str(self.ports[node]),
                KAFKA_CONTROLLER_PORT=str(self.controller_ports[node]),
                KAFKA_OFFSETS_PARTITIONS="4",
            )
            (self.tmp / node / "kafka-data" / "data").mkdir(parents=True)
            self.logs[node] = open(self.tmp / node / "container.log", "ab")
            self.procs[node] = subprocess.Popen(
                ["bash", str(NODE_SH), "container"],
                env=env,
                stdout=self.logs[node],
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for node in NODES:
            wait_until(
                lambda node=node: self._alive() and port_open(self.ports[node]),
                timeout=180,
                interval=0.5,
                what=f"{node} to listen ({self.tmp / node / 'container.log'})",
            )

    def _alive(self) -> bool:
        for node, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{node} exited:\n" + (self.tmp / node / "container.log").read_text()[-3000:])
        return True

    def healthcheck(self) -> subprocess.CompletedProcess:
        """The compose healthcheck's kafka-broker-api-versions.sh, with the same --command-config."""
        command = self.compose["services"]["kafka-1"]["healthcheck"]["test"][1]
        assert "--command-config /opt/kafka/config/admin-client.properties" in command
        return subprocess.run(
            [
                "java",
                "-Xmx256m",
                "-cp",
                f"{LIBS}/*",
                "org.apache.kafka.tools.BrokerApiVersionsCommand",
                "--bootstrap-server",
                f"localhost:{self.port}",
                "--command-config",
                str(self.home / "config" / "admin-client.properties"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def client_env(self, service: str) -> dict[str, str]:
        env = resolved(self.compose["services"][service]["environment"])
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(f"{node}:9092" for node in NODES)
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=",".join(f"localhost:{self.ports[node]}" for node in NODES),
            KAFKA_SSL_CAFILE=str(self.ca),
        )
        return env

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self.logs.values():
            log.close()


@pytest.fixture(scope="module")
def compose_broker(tmp_path_factory):
    broker = ComposeBroker(tmp_path_factory.mktemp("compose-kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


def test_the_compose_healthcheck_logs_in_as_admin_over_sasl_ssl(compose_broker):
    result = wait_until(
        lambda: (r := compose_broker.healthcheck()).returncode == 0 and r,
        timeout=90,
        interval=1,
        what="the healthcheck command to succeed",
    )
    assert f"localhost:{compose_broker.port}" in result.stdout
    props = (compose_broker.home / "config" / "admin-client.properties").read_text()
    assert "security.protocol=SASL_SSL" in props and 'username="admin"' in props
    assert oct((compose_broker.home / "config" / "admin-client.properties").stat().st_mode & 0o777) == "0o600"
    assert oct((compose_broker.home / "config" / "kokeilu-server.properties").stat().st_mode & 0o777) == "0o600"


def test_kafka_init_then_each_service_logs_in_with_its_compose_password_and_sees_its_topics(compose_broker):
    init = compose_broker.compose["services"]["kafka-init"]
    env = {**os.environ, **compose_broker.client_env("kafka-init"), "PYTHONPATH": str(ROOT)}
    command = init["command"]
    assert command[0] == "python"
    applied = subprocess.run(
        [sys.executable, *command[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert applied.returncode == 0, applied.stderr
    assert "SCRAM credentials set for" in applied.stdout

    # kafka-init made every topic with three replicas, and each needs two in sync for a write.
    admin_settings = Settings(
        **{k.lower(): v for k, v in compose_broker.client_env("kafka-init").items() if k.startswith("KAFKA_")}
    )
    admin = KafkaAdminClient(**admin_settings.kafka_client_options(), client_id="check-replication")
    try:
        described = {t["name"]: t for t in admin.describe_topics()}
        brokers = {b["broker_id"] for b in admin.describe_cluster()["brokers"]}
    finally:
        admin.close()
    assert brokers == {1, 2, 3}
    for topic in topics.ALL:
        partitions = described[topic]["partitions"]
        assert partitions and all(len(p["replica_nodes"]) == 3 for p in partitions), topic
    node_config = (compose_broker.home / "config" / "kokeilu-server.properties").read_text()
    assert "\nmin.insync.replicas=2\n" in f"\n{node_config}\n"

    for service, access in acls.SERVICES.items():
        settings = Settings(
            **{k.lower(): v for k, v in compose_broker.client_env(service).items() if k.startswith("KAFKA_")}
        )
        assert settings.kafka_sasl_username == service
        expected = set(access.writes) | set(access.reads)
        seen: list[set] = []

        def sees_its_topics(settings=settings, expected=expected, seen=seen) -> bool:
            admin = KafkaAdminClient(**settings.kafka_client_options(), client_id="check")
            try:
                seen.append(set(admin.list_topics()))
            finally:
                admin.close()
            return seen[-1] == expected

        # ACLs reach the broker's authorizer through the metadata log, a moment after kafka-init.
        try:
            wait_until(sees_its_topics, timeout=30, interval=0.5, what=f"{service} to see its topics")
        except AssertionError:
            pytest.fail(f"{service} sees {sorted(seen[-1]) if seen else 'nothing'}, not {sorted(expected)}")
