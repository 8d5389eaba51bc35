"""Waits on the brokers that kafka-python leaves unbounded are bounded by the platform's own."""

from __future__ import annotations

import eventlet
import pytest

from kokeilu.kafka.topics import partitions_of


class Consumer:
    """Answers partitions_for_topic after `delay` seconds (a green wait, as under nameko)."""

    def __init__(self, delay: float, partitions: set[int] | None):
        self.delay, self.partitions = delay, partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        eventlet.sleep(self.delay)
        return self.partitions


def test_a_metadata_answer_that_never_comes_does_not_hold_the_caller():
    with pytest.raises(TimeoutError, match="no metadata for kokeilu.proposals.v1 after 0.2 s"):
        partitions_of(Consumer(3600, {0}), "kokeilu.proposals.v1", 0.2)


@pytest.mark.parametrize(("answer", "expected"), [({0, 1, 2}, {0, 1, 2}), (None, set())])
def test_an_answer_in_time_is_the_topics_partitions(answer, expected):
    assert partitions_of(Consumer(0.01, answer), "kokeilu.proposals.v1", 5) == expected
