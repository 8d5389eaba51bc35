"""Helpers shared by every benchmark: run metadata, topics, filling a topic, scraping /metrics,
reading a process's memory, and writing the JSON report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import kafka
import requests
from kafka.admin import KafkaAdminClient, NewTopic

from tests.support import BOOTSTRAP, ROOT

OUT_DIR = ROOT / ".local" / "bench"
HEADERS = [("content-type", b"application/cloudevents+json")]
PARTITIONS = 3  # what tests.support.Platform gives the services' topics


# -- run metadata ---------------------------------------------------------------------------


def git_revision() -> str:
    """The commit measured, with "+dirty" when the working tree has changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD") or "unknown"
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict:
    """What the figures depend on: CPUs, load (1, 5, 15 min) and the client libraries."""
    meta = {
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "kafka_python": kafka.__version__,
        "bootstrap": BOOTSTRAP,
        "kafka_python_crc32c": crc32c_implementation(),
    }
    try:
        import confluent_kafka

        meta["confluent_kafka"] = getattr(confluent_kafka, "__version__", None) or str(confluent_kafka.version())
        meta["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        meta["confluent_kafka"] = None
    return meta


def crc32c_implementation() -> str:
    """Which CRC32C kafka-python checks and writes record batches with."""
    from kafka.record import util

    if util.crc32c_c is not None:
        return f"C ({util.crc32c_c.__module__ or 'crc32c'} package)"
    return "pure Python (kafka.record._crc32c): install the crc32c package"


def clean_up_on_sigterm() -> None:
    """SIGTERM (e.g. from `timeout`) ends the run through the finally blocks, which stop the
    services and delete the run's topics, instead of leaving them on a shared broker."""
    import signal

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


# -- topics ---------------------------------------------------------------------------------


def admin_client() -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="kokeilu-bench")


def create_topics(
    admin: KafkaAdminClient, names: list[str], partitions: int = PARTITIONS, configs: dict[str, dict] | None = None
) -> None:
    configs = configs or {}
    admin.create_topics(
        [NewTopic(t, partitions, 1, topic_configs=configs.get(t, {})) for t in names], wait_for_metadata=True
    )


def create_platform_topics(prefix: str) -> None:
    """Every topic of the platform under `prefix`, as the services would create them under
    tests.support.Platform (3 partitions, the results topic compacted), so they can be filled
    before a service starts."""
    from kokeilu.contracts import topics

    names = [prefix + t for t in topics.ALL]
    admin = admin_client()
    try:
        create_topics(admin, names, configs={prefix + t: {"cleanup.policy": "compact"} for t in topics.COMPACTED})
    finally:
        admin.close()


def delete_topics(admin: KafkaAdminClient, which) -> None:
    try:
        names = [t for t in admin.list_topics() if which(t)]
        if names:
            admin.delete_topics(names)
    except Exception as exc:  # leftovers are harmless; say so and carry on
        print(f"warning: could not delete topics: {exc!r}", file=sys.stderr)


def delete_groups(admin: KafkaAdminClient, which) -> None:
    """Consumer groups the run made (they must be empty: their members stopped)."""
    try:
        names = [g["group_id"] for g in admin.list_groups() if which(g["group_id"])]
        if names:
            admin.delete_groups(names)
    except Exception as exc:  # an empty group expires by itself; say so and carry on
        print(f"warning: could not delete consumer groups: {exc!r}", file=sys.stderr)


def delete_prefixed_topics(prefix: str) -> None:
    """The topics and consumer groups of a run, named with its prefix."""
    try:
        admin = admin_client()
    except Exception as exc:
        print(f"warning: topics {prefix}* left on the broker: {exc!r}", file=sys.stderr)
        return
    try:
        delete_topics(admin, lambda t: t.startswith(prefix))
        delete_groups(admin, lambda g: g.startswith(prefix))
    finally:
        admin.close()


def unique_name(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:10]}"


# -- filling topics -------------------------------------------------------------------------


def fill(records, timeout: float = 120) -> int:
    """Produce (topic, key, value) records with acks=all and wait for every acknowledgement.

    Uses librdkafka (confluent-kafka) when installed: filling is not measured, and it takes the
    least CPU from a shared machine; kafka-python otherwise."""
    count = 0
    try:
        from confluent_kafka import Producer
    except ImportError:
        Producer = None
    if Producer is not None:
        errors: list = []
        producer = Producer(
            {"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 20, "enable.idempotence": True}
        )

        def delivered(err, _msg):
            if err is not None:
                errors.append(err)

        for topic, key, value in records:
            while True:
                try:
                    producer.produce(topic, value=value, key=key, headers=HEADERS, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            count += 1
        left = producer.flush(timeout)
        if left or errors:
            raise RuntimeError(f"filling: {left} records unacknowledged after {timeout}s, errors {errors[:3]}")
        return count
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=20, batch_size=256 * 1024)
    try:
        futures = []
        for topic, key, value in records:
            futures.append(producer.send(topic, key=key, value=value, headers=HEADERS))
            count += 1
        producer.flush(timeout=timeout)
        for f in futures:
            f.get(timeout=timeout)
    finally:
        producer.close(timeout=10)
    return count


# -- a service's own view: /metrics and memory ------------------------------------------------

SAMPLE_LINE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict:
    by_outcome: dict[str, int] = {}
    by_topic: dict[str, dict[str, int]] = {}
    by_type: dict[str, dict[str, int]] = {}
    backlog = None
    processing = {"sum": 0.0, "count": 0.0}
    dead_by_reason: dict[str, int] = {}
    retries: dict[str, int] = {}
    for line in text.splitlines():
        match = SAMPLE_LINE.match(line)
        if not match:
            continue
        name, value = match["name"], float(match["value"])
        if name == "kokeilu_events_consumed_total":
            labels = dict(LABEL.findall(match["labels"] or ""))
            outcome = labels.get("outcome", "unknown")
            by_outcome[outcome] = by_outcome.get(outcome, 0) + int(value)
            per = by_topic.setdefault(labels.get("topic", "unknown"), {})
            per[outcome] = per.get(outcome, 0) + int(value)
            per = by_type.setdefault(labels.get("type", "unknown").removeprefix("fi.espoo.kokeilu."), {})
            per[outcome] = per.get(outcome, 0) + int(value)
        elif name == "kokeilu_outbox_backlog":
            backlog = int(value)
        elif name in ("kokeilu_event_processing_seconds_sum", "kokeilu_event_processing_seconds_count"):
            processing[name.rsplit("_", 1)[-1]] += value
        elif name == "kokeilu_transient_retries_total":
            stage = dict(LABEL.findall(match["labels"] or "")).get("stage", "unknown")
            retries[stage] = retries.get(stage, 0) + int(value)
        elif name == "kokeilu_dead_lettered_total":
            reason = dict(LABEL.findall(match["labels"] or "")).get("reason", "unknown")
            dead_by_reason[reason] = dead_by_reason.get(reason, 0) + int(value)
    mean_ms = 1000 * processing["sum"] / processing["count"] if processing["count"] else None
    return {
        "events_consumed_total": sum(by_outcome.values()),
        "by_outcome": by_outcome,
        "by_topic": by_topic,
        "by_type": by_type,
        "outbox_backlog": backlog,
        "mean_processing_ms": mean_ms,
        "dead_lettered_by_reason": {k: v for k, v in dead_by_reason.items() if v},
        "retries_by_stage": {k: v for k, v in retries.items() if v},
    }


def scrape_url(url: str, timeout: float = 10) -> dict:
    return parse_metrics(requests.get(url, timeout=timeout).text)


def scrape(platform, service: str) -> dict:
    return scrape_url(platform.url(service, "/metrics"))


def scrape_or_error(platform, service: str) -> dict:
    try:
        return scrape(platform, service)
    except requests.RequestException as exc:
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (from /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# -- statistics and output ------------------------------------------------------------------


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def median_run(runs: list[dict], key: str = "throughput_per_s") -> dict:
    """The median run (of an even number, the lower of the middle two: the cautious ceiling)."""
    ordered = sorted(runs, key=lambda r: r[key])
    return ordered[(len(ordered) - 1) // 2]


def write_json(report: dict, name: str) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / name
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path
