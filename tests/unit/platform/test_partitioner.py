"""The relay's partitioner puts every record where kafka-python's default partitioner (and so
the Java client) puts it: a key's records stay on one partition whoever produces them."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner

from kokeilu.kafka.relay import KeyPartitioner


class Cluster:
    """What a partitioner reads of kafka-python's ClusterMetadata: a topic's partitions and which
    of them have a leader."""

    def __init__(self, topic: str, partitions: int, leaderless: tuple[int, ...] = ()):
        self.topic = topic
        self.all = set(range(partitions))
        self.led = self.all - set(leaderless)

    def topics(self) -> set[str]:
        return {self.topic}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self.all) if topic == self.topic else None

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self.led) if topic == self.topic else None


def cluster(topic: str, partitions: int, leaderless: tuple[int, ...] = ()) -> Cluster:
    return Cluster(topic, partitions, leaderless)


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=64), partitions=st.integers(min_value=1, max_value=24))
def test_a_keyed_record_goes_where_the_default_partitioner_puts_it(key, partitions):
    meta = cluster("t", partitions)
    expected = DefaultPartitioner().partition("t", key, key, b"v", b"v", meta)
    assert KeyPartitioner().partition("t", key, key, b"v", b"v", meta) == expected
    # ... and again, from the hash it remembered
    assert KeyPartitioner().partition("t", key, key, b"v", b"v", meta) == expected


def test_an_unkeyed_record_goes_to_a_partition_with_a_leader():
    meta = cluster("t", 6, leaderless=(0, 1, 2, 3))
    random.seed(7)
    assert {KeyPartitioner().partition("t", None, None, b"v", b"v", meta) for _ in range(50)} == {4, 5}


def test_a_topic_without_metadata_is_an_error_naming_it():
    with pytest.raises(ValueError, match="nowhere"):
        KeyPartitioner().partition("nowhere", b"k", b"k", b"v", b"v", cluster("t", 3))
