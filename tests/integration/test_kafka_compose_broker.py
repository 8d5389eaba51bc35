"""The secured kafka service of docker-compose.yml, run without Docker.

deploy/kafka/secure.sh's `container` entrypoint runs with the environment docker-compose.yml
gives the kafka service, on a stand-in for the image's /opt/kafka (two scripts that run the
same Kafka 4.1.1 jars as the apache/kafka image). Only what cannot work outside Docker is
changed: the host name (localhost for `kafka`), free ports on 127.0.0.1, and paths. Then the
compose healthcheck's command, the kafka-init command and each service's credentials are
used as compose gives them: the passwords the broker's SCRAM users were formatted with are the
ones the services log in with, and kafka-init's ACLs let each see its own topics only.
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
from kokeilu.kafka import acls
from tests.support import ROOT, free_port, wait_until
from tests.test_compose import COMPOSE_FILE, compose_default, load_yaml

pytestmark = pytest.mark.kafka

SECURE_SH = ROOT / "deploy" / "kafka" / "secure.sh"
LIBS = Path(os.environ.get("KAFKA_LIBS_DIR", ROOT / ".local" / "kafka" / "libs"))


def resolved(environment: dict) -> dict[str, str]:
    return {key: compose_default(value) for key, value in environment.items()}


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ComposeBroker:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.compose = load_yaml(COMPOSE_FILE)
        self.home = tmp / "opt-kafka"
        self.port, self.controller_port = free_port(), free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.ca = tmp / "kafka-ca" / "ca.pem"
        self.proc: subprocess.Popen | None = None

    def java(self, main: str, *extra: str) -> str:
        return (f'exec java -Xms128m -Xmx512m -Dlog4j2.configurationFile={ROOT}/deploy/kafka/log4j2.properties '
                f'-Dkafka.logs.dir={self.tmp}/logs {" ".join(extra)} -cp "{LIBS}/*" {main} "$@"\n')

    def start(self) -> None:
        assert (LIBS / "kafka_2.13-4.1.1.jar").exists(), f"Kafka jars not in {LIBS} (run deploy/kafka.sh start once)"
        (self.home / "bin").mkdir(parents=True)
        (self.home / "config").mkdir()
        for name, main in (("kafka-storage.sh", "kafka.tools.StorageTool"), ("kafka-server-start.sh", "kafka.Kafka")):
            script = self.home / "bin" / name
            script.write_text("#!/usr/bin/env bash\n" + self.java(main))
            script.chmod(0o755)
        # kafka-certs, with the stand-in host name.
        subprocess.run(["bash", str(SECURE_SH), "certs", str(self.tmp / "kafka-secrets"), str(self.ca.parent),
                        "localhost", "127.0.0.1"], check=True, capture_output=True, timeout=120)
        env = resolved(self.compose["services"]["kafka"]["environment"])
        env.update(PATH=os.environ["PATH"], KAFKA_HOME=str(self.home), KAFKA_SECRETS_DIR=str(self.tmp / "kafka-secrets"),
                   KAFKA_DATA_DIR=str(self.tmp / "kafka-data"), KAFKA_HOST="localhost", KAFKA_BIND_HOST="127.0.0.1",
                   KAFKA_PORT=str(self.port), KAFKA_CONTROLLER_PORT=str(self.controller_port),
                   KAFKA_OFFSETS_PARTITIONS="4")
        (self.tmp / "kafka-data" / "data").mkdir(parents=True)
        self.log = open(self.tmp / "container.log", "ab")
        self.proc = subprocess.Popen(["bash", str(SECURE_SH), "container"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self._alive() and port_open(self.port), timeout=120, interval=0.5,
                   what=f"the compose broker to listen ({self.tmp / 'container.log'})")

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("broker exited:\n" + (self.tmp / "container.log").read_text()[-3000:])
        return True

    def healthcheck(self) -> subprocess.CompletedProcess:
        """The compose healthcheck's kafka-broker-api-versions.sh, with the same --command-config."""
        command = self.compose["services"]["kafka"]["healthcheck"]["test"][1]
        assert "--command-config /opt/kafka/config/admin-client.properties" in command
        return subprocess.run(
            ["java", "-Xmx256m", "-cp", f"{LIBS}/*", "org.apache.kafka.tools.BrokerApiVersionsCommand",
             "--bootstrap-server", f"localhost:{self.port}",
             "--command-config", str(self.home / "config" / "admin-client.properties")],
            capture_output=True, text=True, timeout=120)

    def client_env(self, service: str) -> dict[str, str]:
        env = resolved(self.compose["services"][service]["environment"])
        env.update(KAFKA_BOOTSTRAP_SERVERS=f"localhost:{self.port}", KAFKA_SSL_CAFILE=str(self.ca))
        return env

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc is not None:
            self.log.close()


@pytest.fixture(scope="module")
def compose_broker(tmp_path_factory):
    broker = ComposeBroker(tmp_path_factory.mktemp("compose-kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


def test_the_compose_healthcheck_logs_in_as_admin_over_sasl_ssl(compose_broker):
    result = wait_until(lambda: (r := compose_broker.healthcheck()).returncode == 0 and r, timeout=90, interval=1,
                        what="the healthcheck command to succeed")
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
    applied = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=180)
    assert applied.returncode == 0, applied.stderr
    assert "SCRAM credentials set for" in applied.stdout

    for service, access in acls.SERVICES.items():
        settings = Settings(**{k.lower(): v for k, v in compose_broker.client_env(service).items()
                               if k.startswith("KAFKA_")})
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
