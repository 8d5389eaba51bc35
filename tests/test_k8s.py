"""The Kubernetes manifests (deploy/k8s) build, follow the Kubernetes API schemas, and say what
the services really are: their commands, ports, health paths, settings and secrets.

Offline: `kubectl kustomize` renders each build, kubernetes-validate (pinned in
requirements.txt; it bundles the OpenAPI schemas of Kubernetes 1.25-1.37) checks every object
strictly (no unknown field) against the versions in K8S_VERSIONS. There is no cluster here;
nothing is applied. Custom resources (the Prometheus Operator's ServiceMonitor) are not in those
schemas: they are named in CUSTOM_KINDS, and their fields are checked by hand below.

Each property is a function that returns the problems it finds, so that the last tests can show
it finds them in a broken copy of the manifests.
"""

from __future__ import annotations

import ast
import copy
import functools
import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kokeilu.config import Settings
from kokeilu.kafka import acls
from services.catalogue.settings import CatalogueSettings
from tests.support import SERVICE_CLASSES

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
BUILDS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
K8S_VERSIONS = ("1.30", "1.34")
CUSTOM_KINDS = {"ServiceMonitor"}
NAMESPACE = "kokeilu"
SERVICE_PORTS = {"proposals": 8001, "evaluation": 8002, "notifications": 8003, "catalogue": 8004}
# Highest RSS measured per service under load (bench and chaos runs: 109-121 MiB).
MEASURED_RSS_MIB = 121
# StoreExtension.setup retries the database for up to 120 s before it migrates; the startup
# probe must wait at least that long before liveness may restart the pod.
STORE_RETRY_SECONDS = 120
# Settings read elsewhere than a pydantic settings class (nameko's config.yaml, the Dockerfile).
OTHER_ENV = {"SERVICE", "WEB_SERVER_ADDRESS", "LOG_LEVEL"}
SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|DATABASE_URL|KEY", re.IGNORECASE)


def kustomize(path: Path) -> list[dict]:
    """Render a kustomization; kubectl is required (a missing one fails the tests, never skips them)."""
    result = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, list[dict]]:
    rendered = {name: kustomize(path) for name, path in BUILDS.items()}
    # The optional migration Jobs, used as the README says: a component of an overlay that also
    # sets the image. (kustomize takes only relative paths to other kustomizations.)
    tmp = tmp_path_factory.mktemp("k8s-migrations")
    base = os.path.relpath(K8S / "base", tmp)
    component = os.path.relpath(K8S / "components" / "migration-jobs", tmp)
    (tmp / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [base],
                "components": [component],
                "images": [{"name": "kokeilu", "newName": "registry.example/kokeilu", "newTag": "9.9.9"}],
            }
        )
    )
    rendered["with-migration-jobs"] = kustomize(tmp)
    return rendered


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def deployment_of(objects: list[dict], service: str) -> dict | None:
    found = [d for d in of_kind(objects, "Deployment") if pod_labels(d).get("app.kubernetes.io/name") == service]
    return found[0] if len(found) == 1 else None


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def selects(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels only, as these manifests use) matches these labels."""
    assert set(selector) <= {"matchLabels"}, f"unexpected selector {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def container(workload: dict) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(workload: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(workload).get("env", [])}


def config_maps_of(objects: list[dict], workload: dict) -> list[dict]:
    names = [ref["configMapRef"]["name"] for ref in container(workload).get("envFrom", []) if "configMapRef" in ref]
    return [named(objects, "ConfigMap", name) for name in names]


def effective_env(objects: list[dict], workload: dict) -> dict[str, str]:
    """Plain values a container gets (ConfigMaps through envFrom, then env `value`s)."""
    values = {}
    for config_map in config_maps_of(objects, workload):
        values.update(config_map.get("data", {}))
    values.update({name: e["value"] for name, e in env_of(workload).items() if "value" in e})
    return values


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(quantity))
    return float(match[1]) * units.get(match[2], 1 / 2**20)


def millicores(quantity: str) -> float:
    quantity = str(quantity)
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def served_get_paths() -> set[str]:
    """The GET routes every service has (kokeilu/service_base.py: health and metrics)."""
    tree = ast.parse((ROOT / "kokeilu" / "service_base.py").read_text())
    paths = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "api":
            method, path = (arg.value for arg in node.args[:2])
            if method == "GET":
                paths.add(path)
    return paths


def service_classes_in(service: str) -> set[str]:
    tree = ast.parse((ROOT / "services" / service / "service.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


@functools.lru_cache
def known_settings() -> set[str]:
    """Every environment variable a Kokeilu service reads through a settings class."""
    from kokeilu.http.server import HttpSettings
    from services.notifications.settings import MailSettings, NotificationSettings

    names = set(OTHER_ENV)
    for cls in (Settings, HttpSettings, MailSettings, NotificationSettings, CatalogueSettings):
        prefix = cls.model_config.get("env_prefix", "")
        names |= {(prefix + field).upper() for field in cls.model_fields}
    return names


# --- the properties ------------------------------------------------------------------------


def schema_problems(objects: list[dict]) -> list[str]:
    problems = []
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue  # not in Kubernetes' own schemas: checked field by field below
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problems.append(
                    f"{obj['kind']}/{obj['metadata'].get('name')} (Kubernetes {version}): "
                    f"{'.'.join(map(str, exc.path))}: {exc.message}"
                )
            except kubernetes_validate.utils.SchemaNotFoundError:
                problems.append(
                    f"{obj['kind']} ({obj['apiVersion']}) is not a Kubernetes {version} kind; "
                    f"add it to CUSTOM_KINDS only if it is a custom resource checked by hand"
                )
    return problems


def deployment_problems(objects: list[dict], min_replicas: int) -> list[str]:
    problems = []
    paths = served_get_paths()
    for service, cls in SERVICE_CLASSES.items():
        deployment = deployment_of(objects, service)
        if deployment is None:
            problems.append(f"{service}: no (single) Deployment")
            continue
        spec, c = deployment["spec"], container(deployment)
        if spec.get("replicas", 1) < min_replicas:
            problems.append(f"{service}: {spec.get('replicas', 1)} replicas, want at least {min_replicas}")
        if not selects(spec["selector"], pod_labels(deployment)):
            problems.append(f"{service}: the Deployment's selector does not select its own pods")
        # What the Dockerfile runs for SERVICE=<service>, with the service's class named.
        expected = ["nameko", "run", "--config", f"services/{service}/config.yaml", f"services.{service}.service:{cls}"]
        if c.get("command") != expected:
            problems.append(f"{service}: command {c.get('command')}, want {expected}")
        if cls not in service_classes_in(service):
            problems.append(f"{service}: services/{service}/service.py has no class {cls}")
        if not (ROOT / "services" / service / "config.yaml").is_file():
            problems.append(f"{service}: no services/{service}/config.yaml")
        env = effective_env(objects, deployment)
        port = SERVICE_PORTS[service]
        if env.get("WEB_SERVER_ADDRESS") != f"0.0.0.0:{port}" or env.get("SERVICE") != service:
            problems.append(
                f"{service}: WEB_SERVER_ADDRESS/SERVICE {env.get('WEB_SERVER_ADDRESS')}/{env.get('SERVICE')}"
            )
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if ports.get("http") != port:
            problems.append(f"{service}: container port http is {ports.get('http')}, want {port}")
        # Probes: on the port the service listens on, at paths it serves, with the meaning those
        # paths have (live: the process works; ready: the store answers).
        expected_paths = {
            "startupProbe": "/health/live",
            "livenessProbe": "/health/live",
            "readinessProbe": "/health/ready",
        }
        for probe, path in expected_paths.items():
            get = c.get(probe, {}).get("httpGet")
            if not get:
                problems.append(f"{service}: no {probe} over HTTP")
                continue
            if get["path"] != path or get["path"] not in paths:
                problems.append(f"{service}: {probe} asks {get['path']}, want {path} (served: {sorted(paths)})")
            if get["port"] not in ("http", port):
                problems.append(f"{service}: {probe} asks port {get['port']}, the service listens on {port}")
        startup = c.get("startupProbe", {})
        if startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3) < STORE_RETRY_SECONDS + 60:
            problems.append(f"{service}: the startup probe gives less than {STORE_RETRY_SECONDS + 60}s for migrations")
        for probe in expected_paths:
            timeout = c.get(probe, {}).get("timeoutSeconds", 1)
            if timeout < 2:
                problems.append(f"{service}: {probe} times out after {timeout}s")
        # Resources from the measured RSS.
        resources = c.get("resources", {})
        requests, limits = resources.get("requests", {}), resources.get("limits", {})
        if not {"cpu", "memory"} <= set(requests) or not {"cpu", "memory"} <= set(limits):
            problems.append(f"{service}: cpu and memory requests and limits must all be set: {resources}")
        else:
            if mebibytes(requests["memory"]) < MEASURED_RSS_MIB:
                problems.append(
                    f"{service}: memory request {requests['memory']} is below the measured {MEASURED_RSS_MIB} MiB RSS"
                )
            if mebibytes(limits["memory"]) < 2 * MEASURED_RSS_MIB:
                problems.append(f"{service}: memory limit {limits['memory']} leaves no room above the measured RSS")
            if millicores(requests["cpu"]) > millicores(limits["cpu"]):
                problems.append(f"{service}: cpu request above its limit")
        # Kafka: its own principal, the one the ACL table knows.
        if env_of(deployment).get("KAFKA_SASL_USERNAME", {}).get("value") != service or service not in acls.SERVICES:
            problems.append(f"{service}: KAFKA_SASL_USERNAME must be {service}, its principal in kokeilu/kafka/acls.py")
        # Prometheus finds /metrics on the service's port.
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if (
            annotations.get("prometheus.io/scrape") != "true"
            or annotations.get("prometheus.io/port") != str(port)
            or annotations.get("prometheus.io/path") not in paths
            or annotations.get("prometheus.io/path") != "/metrics"
        ):
            problems.append(f"{service}: Prometheus annotations {annotations}")
    return problems


def security_problems(objects: list[dict]) -> list[str]:
    """Pods meet the restricted Pod Security Standard, with a read-only root file system."""
    problems = []
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        if pod_security.get("runAsNonRoot") is not True or pod_security.get("runAsUser", 0) == 0:
            problems.append(f"{name}: must run as non-root")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: mounts a service account token it never uses")
        c = container(workload)
        security = c.get("securityContext", {})
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allows privilege escalation")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root file system is writable")
        if security.get("capabilities", {}).get("drop") != ["ALL"] or security.get("capabilities", {}).get("add"):
            problems.append(f"{name}: capabilities must drop ALL and add none")
        if security.get("privileged"):
            problems.append(f"{name}: privileged")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            problems.append(f"{name}: /tmp is not a writable emptyDir")
    namespace = named(objects, "Namespace", NAMESPACE)
    if namespace["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
        problems.append("the namespace does not enforce the restricted Pod Security Standard")
    return problems


def service_and_pdb_problems(objects: list[dict]) -> list[str]:
    problems = []
    for service in SERVICE_CLASSES:
        deployment = deployment_of(objects, service)
        if deployment is None:
            problems.append(f"{service}: no Deployment")
            continue
        labels, replicas = pod_labels(deployment), deployment["spec"].get("replicas", 1)
        services = [
            s for s in of_kind(objects, "Service") if all(labels.get(k) == v for k, v in s["spec"]["selector"].items())
        ]
        if len(services) != 1:
            problems.append(f"{service}: {len(services)} Services select its pods")
        else:
            port = services[0]["spec"]["ports"][0]
            if port["targetPort"] not in ("http", SERVICE_PORTS[service]) or port["port"] != SERVICE_PORTS[service]:
                problems.append(f"{service}: the Service does not forward port {SERVICE_PORTS[service]} to http")
        pdbs = [p for p in of_kind(objects, "PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
        if len(pdbs) != 1:
            problems.append(f"{service}: {len(pdbs)} PodDisruptionBudgets select its pods")
        elif not (pdbs[0]["spec"].get("minAvailable") == 1 and replicas > 1):
            problems.append(f"{service}: PodDisruptionBudget {pdbs[0]['spec']} with {replicas} replicas")
    return problems


def secret_problems(objects: list[dict], secrets_in_build: bool) -> list[str]:
    """No secret in a ConfigMap; every secret a pod needs is a secretKeyRef, to a Secret that has it."""
    problems = []
    secrets = {
        s["metadata"]["name"]: {**s.get("stringData", {}), **s.get("data", {})} for s in of_kind(objects, "Secret")
    }
    if not secrets_in_build and secrets:
        problems.append(f"Secrets {sorted(secrets)} are in the build; they are made outside git")
    secret_values = {v for values in secrets.values() for v in values.values() if len(v) > 2}
    for config_map in of_kind(objects, "ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            if SECRET_WORDS.search(key):
                problems.append(f"ConfigMap {config_map['metadata']['name']}: {key} looks secret")
            if re.search(r"://[^/@\s]+:[^/@\s]+@", value) or value in secret_values:
                problems.append(f"ConfigMap {config_map['metadata']['name']}: {key} holds a credential")
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        for env_name, entry in env_of(workload).items():
            if SECRET_WORDS.search(env_name) and "valueFrom" not in entry:
                problems.append(f"{name}: {env_name} is a plain value; it belongs in a Secret")
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and secrets_in_build and not ref.get("optional"):
                if ref["key"] not in secrets.get(ref["name"], {}):
                    problems.append(f"{name}: {env_name} refers to {ref['name']}.{ref['key']}, which no Secret has")
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in volume and secrets_in_build:
                wanted = [item["key"] for item in volume["secret"].get("items", [])]
                if not set(wanted) <= set(secrets.get(volume["secret"]["secretName"], {})):
                    problems.append(
                        f"{name}: volume {volume['name']} needs {wanted} of {volume['secret']['secretName']}"
                    )
    if secrets_in_build:
        for secret, values in secrets.items():
            for key, value in values.items():
                # Placeholders only: nothing real is ever committed.
                if value not in ("", "[]") and "change-me" not in value:
                    problems.append(f"Secret {secret}.{key} holds something other than a placeholder")
    return problems


def setting_problems(objects: list[dict]) -> list[str]:
    """Every variable the manifests set is one a service reads (a typo would be silently ignored)."""
    known = known_settings()
    problems = []
    for config_map in of_kind(objects, "ConfigMap"):
        problems += [
            f"ConfigMap {config_map['metadata']['name']}: no service reads {key}"
            for key in config_map.get("data", {})
            if key not in known
        ]
    for deployment in of_kind(objects, "Deployment"):
        problems += [
            f"Deployment/{deployment['metadata']['name']}: no service reads {name}"
            for name in env_of(deployment)
            if name not in known
        ]
    return problems


def network_policy_problems(objects: list[dict]) -> list[str]:
    problems = []
    policies = of_kind(objects, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
    ]
    for service in SERVICE_CLASSES:
        deployment = deployment_of(objects, service)
        if deployment is None:
            problems.append(f"{service}: no Deployment")
            continue
        labels = pod_labels(deployment)
        if not any(selects(p["spec"]["podSelector"], labels) for p in deny):
            problems.append(f"{service}: no default-deny policy selects its pods")
        own = [p for p in policies if p not in deny and selects(p["spec"]["podSelector"], labels)]
        if len(own) != 1:
            problems.append(f"{service}: {len(own)} NetworkPolicies of its own")
            continue
        spec = own[0]["spec"]
        # Ingress only to the HTTP port (API and /metrics), and only from named peers.
        for rule in spec.get("ingress", []):
            if not rule.get("from") or [p["port"] for p in rule.get("ports", [])] != ["http"]:
                problems.append(f"{service}: ingress rule {rule} is wider than the HTTP port from named peers")
        sources = [
            peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            for rule in spec.get("ingress", [])
            for peer in rule["from"]
        ]
        if {"ingress-nginx", "monitoring"} != set(sources):
            problems.append(f"{service}: ingress from {sources}, want the ingress controller and Prometheus")
        egress_ports = {
            (p.get("protocol", "TCP"), p["port"]) for rule in spec.get("egress", []) for p in rule.get("ports", [])
        }
        for needed in [("UDP", 53), ("TCP", 9093), ("TCP", 5432)]:
            if needed not in egress_ports:
                problems.append(f"{service}: no egress to {needed} (DNS, Kafka, PostgreSQL)")
        anywhere = [
            rule
            for rule in spec.get("egress", [])
            if not rule.get("to") or any("ipBlock" in peer for peer in rule["to"])
        ]
        if service == "notifications":
            if ("TCP", 587) not in egress_ports:
                problems.append("notifications: no egress to the mail relay (587)")
            blocks = [peer["ipBlock"] for rule in anywhere for peer in rule.get("to", []) if "ipBlock" in peer]
            if not any(b["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in b.get("except", []) for b in blocks):
                problems.append("notifications: webhooks must reach public addresses, and only those")
        elif anywhere:
            problems.append(f"{service}: egress to any address: {anywhere}")
    return problems


def service_monitor_problems(objects: list[dict]) -> list[str]:
    """The ServiceMonitor (a custom resource, not schema-checked) by hand: fields and targets."""
    problems = []
    monitors = of_kind(objects, "ServiceMonitor")
    if len(monitors) != 1:
        return [f"{len(monitors)} ServiceMonitors, want 1"]
    monitor = monitors[0]
    if monitor["apiVersion"] != "monitoring.coreos.com/v1":
        problems.append(f"ServiceMonitor apiVersion {monitor['apiVersion']}")
    spec = monitor["spec"]
    unknown = set(spec) - {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels"}
    if unknown:
        problems.append(f"ServiceMonitor: unknown fields {unknown}")
    if NAMESPACE not in spec.get("namespaceSelector", {}).get("matchNames", []):
        problems.append("ServiceMonitor does not look in the kokeilu namespace")
    paths = served_get_paths()
    for endpoint in spec.get("endpoints", []):
        if endpoint.get("path") != "/metrics" or endpoint["path"] not in paths:
            problems.append(f"ServiceMonitor endpoint path {endpoint.get('path')}")
        if not re.fullmatch(r"\d+s", endpoint.get("interval", "")):
            problems.append(f"ServiceMonitor endpoint interval {endpoint.get('interval')}")
    for service in SERVICE_CLASSES:
        matching = [
            s
            for s in of_kind(objects, "Service")
            if selects(spec["selector"], s["metadata"].get("labels", {}))
            and s["spec"]["selector"].get("app.kubernetes.io/name") == service
        ]
        if len(matching) != 1:
            problems.append(f"ServiceMonitor selects {len(matching)} Services of {service}")
            continue
        port_names = {p.get("name") for p in matching[0]["spec"]["ports"]}
        if not all(e.get("port") in port_names for e in spec.get("endpoints", [])):
            problems.append(f"ServiceMonitor scrapes a port {service}'s Service does not name")
    return problems


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("build", [*BUILDS, "with-migration-jobs"])
def test_every_object_follows_the_kubernetes_api_schema(builds, build):
    objects = builds[build]
    assert objects
    assert not schema_problems(objects), "\n".join(schema_problems(objects))
    kinds = {o["kind"] for o in objects}
    assert kinds - CUSTOM_KINDS and (kinds & CUSTOM_KINDS or build != "production")
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("build,min_replicas", [("base", 2), ("production", 3)])
def test_each_service_is_a_deployment_running_its_class_with_true_probes_and_resources(builds, build, min_replicas):
    problems = deployment_problems(builds[build], min_replicas)
    assert not problems, "\n".join(problems)
    assert len(of_kind(builds[build], "Deployment")) == len(SERVICE_CLASSES)


@pytest.mark.parametrize("build", BUILDS)
def test_each_service_has_a_service_and_a_disruption_budget(builds, build):
    problems = service_and_pdb_problems(builds[build])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("build", [*BUILDS, "with-migration-jobs"])
def test_pods_run_unprivileged_on_a_read_only_root(builds, build):
    problems = security_problems(builds[build])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "build,secrets_in_build", [("base", True), ("production", False), ("with-migration-jobs", True)]
)
def test_secrets_are_secrets_and_config_maps_hold_none(builds, build, secrets_in_build):
    problems = secret_problems(builds[build], secrets_in_build)
    assert not problems, "\n".join(problems)


def test_production_secrets_are_documented(builds):
    """Production makes the Secrets outside git: the README names each one the pods use."""
    readme = (K8S / "README.md").read_text()
    for deployment in of_kind(builds["production"], "Deployment"):
        refs = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in env_of(deployment).values()
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        refs |= {v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v}
        for name in refs:
            assert name in readme, f"deploy/k8s/README.md does not say how to make the Secret {name}"


@pytest.mark.parametrize("build", BUILDS)
def test_every_setting_is_one_a_service_reads(builds, build):
    problems = setting_problems(builds[build])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("build", BUILDS)
def test_network_policies_allow_only_what_must_talk(builds, build):
    problems = network_policy_problems(builds[build])
    assert not problems, "\n".join(problems)


def test_production_pins_the_image_replicates_topics_and_is_scraped(builds):
    objects = builds["production"]
    for deployment in of_kind(objects, "Deployment"):
        image = container(deployment)["image"]
        name, _, tag = image.rpartition(":")
        assert name and "/" in name and tag and tag != "latest", image
        env = effective_env(objects, deployment)
        assert env["KOKEILU_TOPIC_REPLICATION"] == "3"
        assert int(env["KOKEILU_TOPIC_PARTITIONS"]) >= deployment["spec"]["replicas"], (
            "more replicas than partitions: the extra consumers would sit idle"
        )
    problems = service_monitor_problems(objects)
    assert not problems, "\n".join(problems)
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        target = named(objects, "Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        partitions = int(effective_env(objects, target)["KOKEILU_TOPIC_PARTITIONS"])
        assert 2 <= hpa["spec"]["minReplicas"] <= target["spec"]["replicas"] <= hpa["spec"]["maxReplicas"] <= partitions


def test_migration_jobs_migrate_each_service_with_the_deployments_image(builds):
    objects = builds["with-migration-jobs"]
    jobs = of_kind(objects, "Job")
    assert len(jobs) == len(SERVICE_CLASSES)
    for service in SERVICE_CLASSES:
        [job] = [j for j in jobs if pod_labels(j).get("app.kubernetes.io/name") == service]
        script = " ".join(container(job)["command"])
        assert f'Path("services/{service}/migrations")' in script and ".migrate()" in script
        assert (ROOT / "services" / service / "migrations" / "env.py").is_file()
        assert env_of(job)["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": f"kokeilu-{service}",
            "key": "DATABASE_URL",
        }
        assert (
            container(job)["image"]
            == container(deployment_of(objects, service))["image"]
            == "registry.example/kokeilu:9.9.9"
        )
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # The service's NetworkPolicies (default deny; DNS and its database) apply to its Job too.
    assert not network_policy_problems(objects)
    for job in jobs:
        policies = [p for p in of_kind(objects, "NetworkPolicy") if selects(p["spec"]["podSelector"], pod_labels(job))]
        assert {p["metadata"]["name"] for p in policies} == {
            "kokeilu-default-deny",
            pod_labels(job)["app.kubernetes.io/name"],
        }


# --- the checks find what they look for ----------------------------------------------------


def broken(objects: list[dict], service: str, change) -> list[dict]:
    objects = copy.deepcopy(objects)
    change(deployment_of(objects, service))
    return objects


def test_the_checks_find_a_broken_manifest(builds):
    base = builds["base"]

    def typo(d):
        d["spec"]["replica"] = d["spec"].pop("replicas")

    assert any(
        "'replica' was unexpected" in p
        for p in schema_problems([deployment_of(broken(base, "catalogue", typo), "catalogue")])
    )

    def wrong_class(d):
        container(d)["command"][-1] = "services.catalogue.service:CatalogService"

    assert any("command" in p for p in deployment_problems(broken(base, "catalogue", wrong_class), 2))

    def wrong_probe(d):
        container(d)["livenessProbe"]["httpGet"]["path"] = "/healthz"

    assert any(
        "livenessProbe asks /healthz" in p for p in deployment_problems(broken(base, "evaluation", wrong_probe), 2)
    )

    def ready_as_live(d):
        container(d)["livenessProbe"]["httpGet"]["path"] = "/health/ready"

    assert any("livenessProbe" in p for p in deployment_problems(broken(base, "evaluation", ready_as_live), 2))

    def one_replica(d):
        d["spec"]["replicas"] = 1

    assert any("1 replicas" in p for p in deployment_problems(broken(base, "proposals", one_replica), 2))
    assert any("PodDisruptionBudget" in p for p in service_and_pdb_problems(broken(base, "proposals", one_replica)))

    def no_limits(d):
        container(d)["resources"].pop("limits")

    assert any("limits" in p for p in deployment_problems(broken(base, "notifications", no_limits), 2))

    def root(d):
        container(d)["securityContext"]["readOnlyRootFilesystem"] = False

    assert any("writable" in p for p in security_problems(broken(base, "notifications", root)))

    def plain_password(d):
        container(d)["env"].append({"name": "KAFKA_SASL_PASSWORD", "value": "hunter2"})

    assert any("plain value" in p for p in secret_problems(broken(base, "proposals", plain_password), True))

    def misspelt_setting(d):
        container(d)["env"].append({"name": "KOKEILU_TOPIC_REPLICATON", "value": "3"})

    assert any("REPLICATON" in p for p in setting_problems(broken(base, "proposals", misspelt_setting)))

    leaky = copy.deepcopy(base)
    next(c for c in of_kind(leaky, "ConfigMap") if c["metadata"]["name"].startswith("kokeilu-config"))["data"][
        "DATABASE_URL"
    ] = "postgresql+psycopg2://proposals:pw@db/proposals"
    assert any("looks secret" in p for p in secret_problems(leaky, True))

    open_egress = copy.deepcopy(base)
    policy = next(p for p in of_kind(open_egress, "NetworkPolicy") if p["metadata"]["name"] == "catalogue")
    policy["spec"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    assert any("catalogue: egress to any address" in p for p in network_policy_problems(open_egress))
    no_policy = [o for o in base if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "evaluation")]
    assert any("evaluation: 0 NetworkPolicies" in p for p in network_policy_problems(no_policy))

    monitor = copy.deepcopy(builds["production"])
    of_kind(monitor, "ServiceMonitor")[0]["spec"]["endpoints"][0]["path"] = "/prometheus"
    assert service_monitor_problems(monitor)
