"""The ceiling: a bare consume -> transform -> produce loop with the services' discipline.

Each loop consumes N ~1 KB `proposal.submitted` CloudEvents from a fresh 3-partition topic,
parses each and produces a new event caused by it to another topic, with an idempotent producer
(acks=all), batch by batch: send the poll's records, flush, check every acknowledgement, then
commit the poll's offsets synchronously. No HTTP, no database, no pydantic, one hop.

Three loops, on the same broker in the same run:

- `kafka-python, services' settings`: the consumer and producer options the services use
  (max_poll_records 200, linger_ms 5, default fetch and batch sizes). What e2e.py always measured.
- `kafka-python, tuned`: the best this loop does on this broker (options in TUNED, chosen by
  `python -m bench.ceiling --tune`; see bench/README.md). **The reference for every ratio.**
- `confluent-kafka`: the same loop on librdkafka (Consumer, enable.auto.commit=false;
  Producer, acks=all, enable.idempotence=true; flush, then a synchronous commit), as a second
  reference: what a C client would leave for the services.

Every loop is run `repeats` times over topics of its own; the median counts.

    python -m bench.ceiling -n 5000 --repeats 3
    python -m bench.ceiling --tune -n 5000        # one option at a time around TUNED
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import dataclass, field

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from kokeilu.contracts import new_event, utcnow
from kokeilu.contracts.catalog import PROPOSAL_SUBMITTED
from kokeilu.contracts.proposals import ProposalSubmitted
from kokeilu.contracts.sources import service_source
from tests.builders import submission
from tests.support import BOOTSTRAP

from .common import (
    HEADERS,
    PARTITIONS,
    admin_client,
    clean_up_on_sigterm,
    crc32c_implementation,
    create_topics,
    delete_groups,
    delete_topics,
    fill,
    median_run,
    unique_name,
)

# The services' own options (kokeilu.kafka.consumer and kokeilu.kafka.relay.make_producer; not
# imported: they pull in nameko and eventlet).
SERVICES_CONSUMER = {"max_poll_records": 200}
SERVICES_PRODUCER = {"linger_ms": 5}
# Chosen by measurement (`--tune`, bench/README.md "Tuning the ceiling"): larger polls and
# producer batches amortise kafka-python's per-call costs; a linger longer than the time to send
# a poll's records keeps the sender thread from sending (and taking the GIL for) small batches
# before the flush, which sends each partition's batch whole.
TUNED_CONSUMER = {
    "max_poll_records": 2000,
    "max_partition_fetch_bytes": 4 * 1024 * 1024,
    "fetch_max_bytes": 16 * 1024 * 1024,
    "fetch_min_bytes": 64 * 1024,
    "fetch_max_wait_ms": 100,
}
TUNED_PRODUCER = {"linger_ms": 50, "batch_size": 256 * 1024}
CONFLUENT_BATCH = 2000  # messages per Consumer.consume() call


def proposal_submitted_event() -> bytes:
    """A proposal.submitted CloudEvent as the proposals service publishes it (about 1 KB)."""
    body = submission(title="bench baseline")
    body["proposer"] = {k: v for k, v in body["proposer"].items() if k != "contact_email"}
    proposal_id = str(uuid.uuid4())
    data = ProposalSubmitted.model_validate({**body, "proposal_id": proposal_id, "submitted_at": utcnow()})
    return new_event(
        PROPOSAL_SUBMITTED.name,
        data,
        source=service_source("proposals"),
        subject=proposal_id,
        dataschema=PROPOSAL_SUBMITTED.dataschema,
    ).to_bytes()


def transform(value: bytes) -> bytes:
    """What a consumer does at least: parse the event and publish a new one caused by it."""
    event = json.loads(value)
    out = {
        **event,
        "id": str(uuid.uuid4()),
        "type": "fi.espoo.kokeilu.bench.transformed",
        "time": utcnow().isoformat(),
        "causationid": event["id"],
    }
    return json.dumps(out).encode()


# -- kafka-python ---------------------------------------------------------------------------


def kafka_python_producer(**options) -> KafkaProducer:
    # The rest are the settings of kokeilu.kafka.relay.make_producer.
    return KafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        client_id="kokeilu-bench-loop",
        acks="all",
        enable_idempotence=True,
        retries=2147483647,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=15000,
        delivery_timeout_ms=60000,
        **options,
    )


def kafka_python_loop(
    source: str, sink: str, n: int, group: str, timeout: float, consumer_options: dict, producer_options: dict
) -> float:
    """Seconds to move n records from source to sink, batch by batch: send, flush, commit."""
    consumer = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **consumer_options,
    )
    producer = kafka_python_producer(**producer_options)
    try:
        assignment = [TopicPartition(source, p) for p in range(PARTITIONS)]
        consumer.assign(assignment)
        # Before the clock starts, as the platform's warm-up does: the group coordinator, the
        # starting offsets and the sink's metadata.
        for tp in assignment:
            consumer.position(tp)
        producer.partitions_for(sink)
        produced = 0
        started = time.perf_counter()
        while produced < n:
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"kafka-python loop moved {produced} of {n} records in {timeout}s")
            offsets, futures = {}, []
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    futures.append(producer.send(sink, key=record.key, value=transform(record.value), headers=HEADERS))
                offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
            if offsets:
                producer.flush(timeout=60)
                for future in futures:
                    future.get(timeout=60)
                consumer.commit(offsets=offsets)
                produced += len(futures)
        return time.perf_counter() - started
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=10)


# -- confluent-kafka (librdkafka) -------------------------------------------------------------


def confluent_loop(source: str, sink: str, n: int, group: str, timeout: float, batch: int = CONFLUENT_BATCH) -> float:
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka import TopicPartition as CTopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "client.id": "kokeilu-bench-loop",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    errors: list = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    try:
        assignment = [CTopicPartition(source, p) for p in range(PARTITIONS)]
        consumer.assign(assignment)
        consumer.committed(assignment, timeout=30)  # the coordinator, before the clock
        producer.list_topics(sink, timeout=30)
        produced = 0
        started = time.perf_counter()
        while produced < n:
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"confluent-kafka loop moved {produced} of {n} records in {timeout}s")
            # Never ask for more than is left: consume() waits its whole timeout for a batch it
            # cannot fill, which kafka-python's poll() does not.
            records = consumer.consume(num_messages=min(batch, n - produced), timeout=0.1)
            if not records:
                continue
            offsets: dict[int, int] = {}
            for record in records:
                if record.error():
                    raise KafkaException(record.error())
                while True:
                    try:
                        producer.produce(
                            sink,
                            key=record.key(),
                            value=transform(record.value()),
                            headers=HEADERS,
                            on_delivery=delivered,
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
                offsets[record.partition()] = record.offset() + 1
            left = producer.flush(60)
            if left or errors:
                raise RuntimeError(f"confluent-kafka loop: {left} unacknowledged, errors {errors[:3]}")
            consumer.commit(offsets=[CTopicPartition(source, p, o) for p, o in offsets.items()], asynchronous=False)
            produced += len(records)
        return time.perf_counter() - started
    finally:
        consumer.close()


# -- running them ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    name: str
    client: str  # kafka-python | confluent-kafka
    consumer_options: dict = field(default_factory=dict)
    producer_options: dict = field(default_factory=dict)

    def run(self, source: str, sink: str, n: int, group: str, timeout: float) -> float:
        if self.client == "confluent-kafka":
            return confluent_loop(source, sink, n, group, timeout)
        return kafka_python_loop(source, sink, n, group, timeout, self.consumer_options, self.producer_options)


SERVICES_LOOP = Loop("kafka-python, services' settings", "kafka-python", SERVICES_CONSUMER, SERVICES_PRODUCER)
TUNED_LOOP = Loop("kafka-python, tuned", "kafka-python", TUNED_CONSUMER, TUNED_PRODUCER)
CONFLUENT_LOOP = Loop("confluent-kafka", "confluent-kafka")


def run_once(loop: Loop, n: int, timeout: float, value: bytes | None = None) -> dict:
    name = unique_name("ceiling")
    source, sink = f"{name}.a", f"{name}.b"
    value = value or proposal_submitted_event()
    admin = admin_client()
    try:
        create_topics(admin, [source, sink])
        fill((source, str(uuid.uuid4()).encode(), value) for _ in range(n))
        seconds = loop.run(source, sink, n, group=name, timeout=timeout)
        return {"messages": n, "message_bytes": len(value), "seconds": seconds, "throughput_per_s": n / seconds}
    finally:
        delete_topics(admin, lambda t: t in (source, sink))
        delete_groups(admin, lambda g: g == name)
        admin.close()


def measure(loop: Loop, n: int, repeats: int, timeout: float = 300) -> dict:
    """The median of `repeats` runs of one loop, with every run's figure."""
    runs = [run_once(loop, n, timeout) for _ in range(max(1, repeats))]
    best = median_run(runs)
    return dict(
        best,
        loop=loop.name,
        client=loop.client,
        consumer_options=loop.consumer_options,
        producer_options=loop.producer_options,
        runs_per_s=[round(r["throughput_per_s"]) for r in runs],
    )


def confluent_available() -> bool:
    try:
        import confluent_kafka  # noqa: F401

        return True
    except ImportError:
        return False


def loops_to_run() -> list[Loop]:
    return [SERVICES_LOOP, TUNED_LOOP] + ([CONFLUENT_LOOP] if confluent_available() else [])


def ceiling_runs(n: int, repeats: int, runs: dict[str, list[dict]] | None = None) -> dict[str, list[dict]]:
    """`repeats` rounds of every loop, interleaved run by run (so each loop sees the same
    stretches of a shared machine), added to `runs`."""
    runs = runs if runs is not None else {}
    value = proposal_submitted_event()
    for _ in range(repeats):
        for loop in loops_to_run():
            print(f"  ceiling: {loop.name}, {n} messages ...", file=sys.stderr)
            runs.setdefault(loop.name, []).append(run_once(loop, n, timeout=300, value=value))
    return runs


def summarise(runs: dict[str, list[dict]]) -> dict:
    """The median run of each loop; `reference` is the tuned kafka-python loop's msg/s."""
    result = {"crc32c": crc32c_implementation(), "loops": {}}
    for loop in loops_to_run():
        if not runs.get(loop.name):
            continue
        result["loops"][loop.name] = dict(
            median_run(runs[loop.name]),
            client=loop.client,
            consumer_options=loop.consumer_options,
            producer_options=loop.producer_options,
            runs_per_s=[round(r["throughput_per_s"]) for r in runs[loop.name]],
        )
    result["reference"] = result["loops"][TUNED_LOOP.name]["throughput_per_s"]
    if CONFLUENT_LOOP.name in result["loops"]:
        result["confluent"] = result["loops"][CONFLUENT_LOOP.name]["throughput_per_s"]
    return result


def measure_ceiling(n: int, repeats: int) -> dict:
    return summarise(ceiling_runs(n, max(1, repeats)))


# -- tuning ---------------------------------------------------------------------------------


def tuning_grid() -> list[Loop]:
    """One option at a time around TUNED (and the services' settings as the start)."""
    loops = [SERVICES_LOOP, TUNED_LOOP]
    for records in (200, 500, 1000, 5000):
        loops.append(
            Loop(
                f"max_poll_records={records}",
                "kafka-python",
                {**TUNED_CONSUMER, "max_poll_records": records},
                TUNED_PRODUCER,
            )
        )
    for linger in (0, 5, 20, 200):
        loops.append(
            Loop(f"linger_ms={linger}", "kafka-python", TUNED_CONSUMER, {**TUNED_PRODUCER, "linger_ms": linger})
        )
    for size in (16 * 1024, 64 * 1024, 1024 * 1024):
        loops.append(
            Loop(f"batch_size={size // 1024}K", "kafka-python", TUNED_CONSUMER, {**TUNED_PRODUCER, "batch_size": size})
        )
    loops.append(
        Loop(
            "default fetch sizes (1M/partition, 50M)",
            "kafka-python",
            {k: v for k, v in TUNED_CONSUMER.items() if not k.endswith("fetch_bytes")},
            TUNED_PRODUCER,
        )
    )
    loops.append(
        Loop(
            "fetch_min_bytes=1, fetch_max_wait_ms=500 (defaults)",
            "kafka-python",
            {**TUNED_CONSUMER, "fetch_min_bytes": 1, "fetch_max_wait_ms": 500},
            TUNED_PRODUCER,
        )
    )
    return loops


def tune(n: int, repeats: int) -> list[dict]:
    value = proposal_submitted_event()
    rows = []
    for loop in tuning_grid():
        figures = sorted(n / run_once(loop, n, 300, value)["seconds"] for _ in range(repeats))
        rows.append({"loop": loop.name, "median_per_s": figures[len(figures) // 2], "runs_per_s": figures})
        print(
            f"{loop.name:<48}{figures[len(figures) // 2]:>8.0f} msg/s   runs {', '.join(f'{f:.0f}' for f in figures)}",
            flush=True,
        )
    return rows


def print_ceiling(result: dict) -> None:
    print(f"kafka-python CRC32C: {result['crc32c']}")
    ref = result["reference"]
    conf = result.get("confluent")
    for name, loop in result["loops"].items():
        ratio = f"{loop['throughput_per_s'] / ref:.3f}"
        ratio_c = f"{loop['throughput_per_s'] / conf:.3f}" if conf else "-"
        print(
            f"  {name:<36}{loop['throughput_per_s']:>8.0f} msg/s  x{ratio} tuned  x{ratio_c} confluent   "
            f"runs {loop['runs_per_s']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=5000, help="messages per run (default 5000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per loop; the median counts (default 3)")
    parser.add_argument("--tune", action="store_true", help="sweep the kafka-python options one at a time")
    args = parser.parse_args(argv)
    clean_up_on_sigterm()
    if args.tune:
        tune(args.messages, args.repeats)
        return 0
    print_ceiling(measure_ceiling(args.messages, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
