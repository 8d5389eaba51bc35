"""A consumer's place in its group: what it tells the monitor, and how long it waits on a join
before it starts over as a new member (kokeilu/kafka/consumer.py, _Membership and _poll_once)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kokeilu.config import Settings
from kokeilu.kafka.consumer import EventConsumer, _Membership


class Monitor:
    def __init__(self):
        self.states: list[int | str] = []

    def assigned(self, group, partitions, joining=False):
        self.states.append(partitions if partitions is not None else "joining" if joining else "connecting")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_member_is_joining_from_its_subscription_until_it_is_given_partitions():
    monitor, clock = Monitor(), Clock()
    member = _Membership(monitor, "g", clock)
    clock.now += 12
    assert member.joining_for() == 12
    member.on_partitions_assigned({1, 2, 3})
    clock.now += 100
    assert member.joining_for() == 0
    member.on_partitions_revoked({1, 2, 3})
    clock.now += 5
    member.on_partitions_revoked(set())  # a second round of the same rebalance: still since the first
    clock.now += 5
    assert member.joining_for() == 10
    member.on_partitions_assigned(set())  # given none (more members than partitions): joined all the same
    assert member.joining_for() == 0
    assert monitor.states == ["joining", 3, "joining", "joining", 0]


def poller(rejoin_seconds: float, joining_for: float) -> EventConsumer:
    c = EventConsumer.__new__(EventConsumer)
    c.group, c._stopping = "kokeilu.catalogue", False
    c.settings = Settings(kokeilu_consumer_rejoin_seconds=rejoin_seconds)
    clock = Clock()
    c.membership = _Membership(Monitor(), c.group, clock)
    clock.now += joining_for
    return c


def test_a_consumer_joining_for_longer_than_its_limit_starts_over():
    polled = SimpleNamespace(poll=lambda timeout_ms: {})
    with pytest.raises(TimeoutError, match="joining group kokeilu.catalogue for 61 s without partitions"):
        poller(60, 61)._poll_once(polled)
    poller(60, 59)._poll_once(polled)  # within its limit: polls on
