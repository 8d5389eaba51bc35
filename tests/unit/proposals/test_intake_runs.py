"""The intake consumer's runs (kokeilu/kafka/consumer.py, `bulk=`): consecutive records of a
bulk type are applied at once by the service's bulk method, in the order polled with the records
around them; a refused one is dead-lettered alone; a run whose bulk method fails as a whole is
applied again record by record. On the proposals service's real store and handlers; only
nameko's worker (which injects the unit of work) is replaced by a direct call."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from kokeilu.config import Settings
from kokeilu.contracts import catalog as types
from kokeilu.contracts import decode, topics
from kokeilu.contracts.proposals import IntakeMeasurement
from kokeilu.kafka.consumer import EventConsumer
from kokeilu.metrics import metrics_for
from kokeilu.platform import Deferred
from kokeilu.store import OUTBOX
from services.proposals import handlers
from services.proposals.store import ProposalsUnitOfWork
from tests.builders import WHEN, a_submission, an_event
from tests.support import Store
from tests.unit.fakes import FakeProposalsUnitOfWork
from tests.unit.proposals.test_handlers import to_piloting


@pytest.fixture
def store(tmp_path):
    s = Store("sqlite", tmp_path, "proposals", FakeProposalsUnitOfWork, ProposalsUnitOfWork)
    yield s
    s.close()


@pytest.fixture
def db(store):
    return store.db


class Intake:
    """The service's figures, as the batch makes them once it has committed: intake counts."""

    def __init__(self):
        self.counted: list[tuple[str, str]] = []

    def count_intake(self, type_: str, source: str, outcome: str) -> None:
        self.counted.append((type_.rsplit(".", 1)[-1], outcome))

    def count_transition(self, *args, **kwargs) -> None:
        pass

    def observe_time_to_decision(self, *args) -> None:
        pass


def consumer(db, bulk=handlers.on_intake_measurements, bulk_types=(types.INTAKE_MEASUREMENT,)):
    """The proposals intake consumer, as ProposalsService declares it, without nameko: its
    workers get units of work in the batch and the service's figures deferred to the batch's
    commit, as kokeilu.platform's Store and Figures hand them out."""
    c = EventConsumer.__new__(EventConsumer)
    c.topic_names, c.types, c.group, c._stopping = (topics.INTAKE,), None, "kokeilu.proposals", False
    c.bulk = {t.name: "on_measurements" for t in bulk_types}
    c.on_reject = "intake_rejected"
    c.settings = Settings(kokeilu_consumer_batch_seconds=60)
    c.container = SimpleNamespace(service_name="proposals")
    c.store = SimpleNamespace(database=db)
    c.metrics, c.relay = metrics_for("proposals"), SimpleNamespace(wake=lambda: None)
    c.counted, c.figures = [], Intake()

    def committed(batch, counted):
        assert not c.figures.counted, "a figure was counted before its batch committed"
        c.counted.extend(counted)
        EventConsumer._committed(c, batch, counted)

    c._committed = committed

    def run_worker(*args, method=None):
        uow = ProposalsUnitOfWork.joining(db, c.batch.conn, c.batch.outbox, c.batch.record)
        figures = Deferred(c.figures, c.batch.counts)
        if method is None:
            ev, data = args
            if isinstance(data, IntakeMeasurement):
                return handlers.on_intake_measurement(ev, data, uow, figures)
            return handlers.on_intake(ev, data, uow, figures)
        if method == "intake_rejected":
            return handlers.intake_rejected(*args, uow, figures)
        assert method == "on_measurements"
        return bulk(args[0], uow, figures)

    c._run_worker = run_worker
    return c


def records(*events, keyed=False):
    """The events as polled records of one partition: without keys, or (`keyed`) keyed as city
    systems key them, a measurement by its proposal and anything else by its own id."""

    def key(e):
        return (getattr(decode(e), "proposal_id", None) if e.type == types.INTAKE_MEASUREMENT.name else e.id).encode()

    return [
        SimpleNamespace(
            topic=topics.INTAKE, partition=0, offset=i, key=key(e) if keyed else None, value=e.to_bytes(), headers=[]
        )
        for i, e in enumerate(events)
    ]


def measurement(pid, value, event_id=None):
    return an_event(
        types.INTAKE_MEASUREMENT,
        IntakeMeasurement(proposal_id=pid, kpi="daily riders", value=value, measured_at=WHEN),
        source="sensors/kera",
        event_id=event_id,
    )


def proposal(title):
    return an_event(types.INTAKE_PROPOSAL, a_submission(title=title), source="e-services-portal")


def outbox_rows(db):
    with db.transaction() as conn:
        return list(conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id)))


def stream(pid):
    first = measurement(pid, 1, "m-1")
    return [
        first,
        measurement(pid, 2, "m-2"),
        measurement(pid, 2, "m-2"),  # the same event twice in one run
        proposal("Between the runs"),
        measurement("no-such-proposal", 3, "m-3"),
        measurement(pid, 4, "m-4"),
        first,  # a redelivery of an applied one, in the next run
        measurement(pid, 5, "m-5"),
    ]


def applied(db, pid, c, before: int):
    """What a batch did: each record's outcome, the pilot's stored values, and the events it
    recorded, in order per key (what Kafka keeps in order), the pilot's under "pilot"."""
    uow = lambda: ProposalsUnitOfWork(db)  # noqa: E731
    by_key: dict[str, list] = {}
    for r in outbox_rows(db)[before:]:
        key = "pilot" if r.key == pid else r.event_type.rsplit(".", 1)[-1]
        by_key.setdefault(key, []).append(
            (r.event_type.removeprefix("fi.espoo.kokeilu."), json.loads(r.value)["data"].get("value"))
        )
    return (
        [o for _, _, o, _ in c.counted],
        sorted(m["value"] for m in handlers.measurements_of(pid, uow())),
        by_key,
    )


# Counted once the batch committed, the refused one's rejection too.
EXPECTED_FIGURES = [
    ("measurement", "rejected"),
    ("measurement", "accepted"),
    ("measurement", "accepted"),
    ("measurement", "duplicate"),
    ("proposal", "accepted"),
    ("measurement", "accepted"),
    ("measurement", "duplicate"),
    ("measurement", "accepted"),
]
EXPECTED_OUTCOMES = ["applied", "applied", "duplicate", "applied", "dead_lettered", "applied", "duplicate", "applied"]
# The events the batch recorded: the pilot's measurements in the order polled, the intake
# proposal's three (keyed by the new proposal), the refused measurement's dead letter and the
# rejection its source is told.
EXPECTED_EVENTS = {
    "pilot": [("pilot.measurement-recorded", v) for v in (1.0, 2.0, 4.0, 5.0)],
    "contact-recorded": [("proposal.contact-recorded", None)],
    "submitted": [("proposal.submitted", None)],
    "status-changed": [("proposal.status-changed", None)],
    "deadletter": [("deadletter", 3.0)],
    "intake-rejected": [("proposal.intake-rejected", None)],
}


def test_runs_are_applied_at_once_in_the_order_polled_and_a_refused_record_alone(db, store):
    pid = to_piloting(store)
    c, before = consumer(db), len(outbox_rows(db))
    assert c._try_batch(records(*stream(pid))) == 8
    outcomes, values, events = applied(db, pid, c, before)
    assert outcomes == EXPECTED_OUTCOMES
    assert values == [1, 2, 4, 5]
    assert events == EXPECTED_EVENTS
    assert sorted(c.figures.counted) == sorted(EXPECTED_FIGURES)


def test_a_run_whose_bulk_method_fails_is_applied_record_by_record_with_the_same_effects(db, store):
    pid = to_piloting(store)
    calls = []

    def broken(items, uow, figures):
        calls.append(len(items))
        figures.count_intake("fi.espoo.kokeilu.intake.measurement", "sensors/kera", "accepted")  # undone with it
        with uow:
            uow.measurements.add_many([{"id": "half-done"}])  # fails in the store, after a write
        raise AssertionError("not reached")

    c, before = consumer(db, bulk=broken), len(outbox_rows(db))
    assert c._try_batch(records(*stream(pid))) == 8
    assert calls == [3, 4]  # both runs were tried at once first
    outcomes, values, events = applied(db, pid, c, before)
    assert outcomes == EXPECTED_OUTCOMES
    assert values == [1, 2, 4, 5]
    assert events == EXPECTED_EVENTS
    assert sorted(c.figures.counted) == sorted(EXPECTED_FIGURES)


def test_records_of_other_keys_do_not_break_a_run_and_each_keys_order_is_kept(db, store):
    # Keyed as city systems key them, the intake proposal and the refused measurement (keys of
    # their own) are applied while the pilot's measurements go on collecting: one run of seven.
    pid = to_piloting(store)
    calls = []

    def counting(items, uow, figures):
        calls.append(len(items))
        return handlers.on_intake_measurements(items, uow, figures)

    c, before = consumer(db, bulk=counting), len(outbox_rows(db))
    assert c._try_batch(records(*stream(pid), keyed=True)) == 8
    assert calls == [7]
    outcomes, values, events = applied(db, pid, c, before)
    assert sorted(outcomes) == sorted(EXPECTED_OUTCOMES) and values == [1, 2, 4, 5]
    assert events == EXPECTED_EVENTS  # in order per key
    # A record with the key of a waiting measurement is applied after the run.
    c, calls[:] = consumer(db, bulk=counting), []
    later = [measurement(pid, 6), measurement(pid, 7)]
    withdraw = an_event(types.INTAKE_PROPOSAL, a_submission(title="Keyed like the pilot"), source="portal")
    polled = records(later[0], withdraw, later[1], keyed=True)
    polled[1].key = pid.encode()
    assert c._try_batch(polled) == 3
    assert calls == [1, 1]


def test_a_bulk_method_that_answers_for_fewer_records_than_it_got_is_not_trusted(db, store):
    pid = to_piloting(store)
    c, before = (
        consumer(db, bulk=lambda items, uow, figures: handlers.on_intake_measurements(items, uow)[:-1]),
        len(outbox_rows(db)),
    )
    assert c._try_batch(records(*stream(pid))) == 8
    outcomes, values, events = applied(db, pid, c, before)
    assert outcomes == EXPECTED_OUTCOMES and values == [1, 2, 4, 5]
    assert events == EXPECTED_EVENTS
    assert sorted(c.figures.counted) == sorted(EXPECTED_FIGURES)


def test_the_services_runs_take_intake_proposals_and_measurements_together(db, store):
    # As ProposalsService declares it: both intake types go to handlers.on_intake_run, so the
    # whole stream is one run, with the same outcomes, events, dead letter and rejection.
    pid = to_piloting(store)
    calls = []

    def counting(items, uow, figures):
        calls.append(len(items))
        return handlers.on_intake_run(items, uow, figures)

    c = consumer(db, bulk=counting, bulk_types=(types.INTAKE_MEASUREMENT, types.INTAKE_PROPOSAL))
    before = len(outbox_rows(db))
    assert c._try_batch(records(*stream(pid))) == 8
    assert calls == [8]
    outcomes, values, events = applied(db, pid, c, before)
    assert outcomes == EXPECTED_OUTCOMES and values == [1, 2, 4, 5]
    assert events == EXPECTED_EVENTS
    assert sorted(c.figures.counted) == sorted(EXPECTED_FIGURES)
