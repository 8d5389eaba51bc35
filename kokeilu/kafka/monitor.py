"""What a service knows of Kafka, measured apart from the work: broker reachability and consumer lag.

A loop of its own asks the brokers, with short timeouts, for each consumer group's committed
offsets and each partition's end offset. It never waits on the consumers or the relay, so the
figures keep moving while those are blocked (a broker down or frozen, a record they retry):

- `kokeilu_kafka_connected` is 1 when the last probe got its answers in time, 0 when not;
- `kokeilu_consumer_lag` is end offset minus committed offset, summed over a topic's
  partitions, per consumer group (`group`, its name without the topic prefix) and topic. While the brokers cannot be asked it keeps its last
  value (it is not reset to 0, which would read as "all caught up").
"""

from __future__ import annotations

import logging
import threading

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from nameko.extensions import SharedExtension
from prometheus_client import Gauge

from kokeilu.config import get_settings
from kokeilu.kafka.topics import partitions_of
from kokeilu.metrics import metrics_for

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 5
TIMEOUT_MS = 4000


class KafkaMonitor(SharedExtension):
    def setup(self) -> None:
        self.settings = get_settings()
        self.service = self.container.service_name
        self.metrics = metrics_for(self.service)
        self.groups: dict[str, tuple[str, ...]] = {}  # consumer group -> logical topics
        self.membership: dict[str, str] = {}  # consumer group (logical) -> where this instance's consumer stands
        self._stop = threading.Event()
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None
        self.connected = False
        self.metrics.kafka_connected.labels(service=self.service).set(0)

    def watch(self, group: str, topics: tuple[str, ...]) -> None:
        """A consumer entrypoint registers its group and topics."""
        self.groups[group] = topics
        for topic in topics:
            self._lag(group, topic)
        self.assigned(group, None)

    def _lag(self, group: str, topic: str) -> Gauge:
        """The lag gauge of a (physical) group's topic: labelled with the group's logical name."""
        return self.metrics.consumer_lag.labels(
            service=self.service, group=self.settings.logical_topic(group), topic=topic
        )

    def assigned(self, group: str, partitions: int | None, joining: bool = False) -> None:
        """A consumer says where it stands in its group: `partitions` held once it has joined;
        None while it connects, or (`joining`) while the group rebalances."""
        logical = self.settings.logical_topic(group)
        state = f"{partitions} partitions" if partitions is not None else "joining" if joining else "connecting"
        if self.membership.get(logical) != state:  # an operator (and a failing test) sees the group move
            log.info("consumer group %s: %s", logical, state)
        self.membership[logical] = state
        labels = dict(service=self.service, group=logical)
        self.metrics.consumer_partitions.labels(**labels).set(partitions or 0)
        self.metrics.consumer_joined.labels(**labels).set(partitions is not None)
        assignments = self.metrics.consumer_assignments.labels(**labels)
        if partitions is not None:
            assignments.inc()

    def start(self) -> None:
        self.container.spawn_managed_thread(self._loop)

    def stop(self) -> None:
        self._stop.set()
        self._close()

    kill = stop

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.probe()
                self.connected = True
            except Exception as exc:
                if self.connected:
                    log.warning("Kafka probe failed (%s: %s)", exc.__class__.__name__, exc)
                self.connected = False
                self._close()
            self.metrics.kafka_connected.labels(service=self.service).set(1 if self.connected else 0)
            self._stop.wait(INTERVAL_SECONDS)

    def _clients(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        if self._admin is None:
            options = self.settings.kafka_client_options()
            self._admin = KafkaAdminClient(
                **options, client_id=f"{self.service}-monitor", request_timeout_ms=TIMEOUT_MS
            )
            self._consumer = KafkaConsumer(
                **options,
                client_id=f"{self.service}-monitor",
                group_id=None,
                request_timeout_ms=TIMEOUT_MS,
                fetch_max_wait_ms=100,
                enable_auto_commit=False,
            )
        return self._admin, self._consumer

    def probe(self) -> None:
        """One round: raises when the brokers did not answer in time."""
        admin, consumer = self._clients()
        if not self.groups:
            admin.list_topics()
            return
        committed = admin.list_group_offsets(list(self.groups))
        for group, topics in self.groups.items():
            partitions = [
                TopicPartition(self.settings.physical_topic(t), p)
                for t in topics
                for p in sorted(partitions_of(consumer, self.settings.physical_topic(t), TIMEOUT_MS / 1000))
            ]
            if not partitions:
                continue
            ends = consumer.end_offsets(partitions, timeout_ms=TIMEOUT_MS)
            starts = consumer.beginning_offsets(partitions, timeout_ms=TIMEOUT_MS)
            done = committed.get(group) or {}
            lag = {t: 0 for t in topics}
            for tp in partitions:
                position = done[tp].offset if tp in done and done[tp].offset >= 0 else starts[tp]
                lag[self.settings.logical_topic(tp.topic)] += max(0, ends[tp] - position)
            for topic, value in lag.items():
                self._lag(group, topic).set(value)

    def _close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                try:
                    client.close()
                except Exception:  # a client of an unreachable broker may not close cleanly
                    pass
        self._admin = self._consumer = None
