"""The notifications service: subscriptions, matching, the retry policy and webhook deliveries."""

from __future__ import annotations

import copy
import json
import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kokeilu.contracts import catalog as types
from kokeilu.contracts import decode, topics
from kokeilu.contracts.proposals import FocusArea, ProposalContact, ProposalRevised, ProposalStatusChanged
from kokeilu.contracts.sources import service_source
from services.notifications import handlers
from services.notifications.domain import (
    Caller,
    DeliveryStatus,
    NewSubscription,
    RetryPolicy,
    Subscription,
    SubscriptionFilter,
    verify_signature,
)
from tests.builders import WHEN, a_proposal_submitted, a_screening, an_event, redelivery_of
from tests.unit.fakes import FakeClock, FakeNotificationsUnitOfWork, FakeSender

SUBMITTED = types.PROPOSAL_SUBMITTED.name
SCREENED = types.SCREENING_COMPLETED.name
PUBLISHED = types.RESULT_PUBLISHED.name


def subscription(types_=(), areas=()) -> Subscription:
    return Subscription(
        "s-1",
        "Education department",
        "webhook",
        "https://example.org/hooks",
        SubscriptionFilter(types=list(types_), focus_areas=list(areas)),
        WHEN,
    )


# matching ----------------------------------------------------------------------------------
def test_an_empty_filter_matches_every_event():
    sub = subscription()
    assert sub.matches(SUBMITTED, "learning")
    assert sub.matches(PUBLISHED, None)


def test_a_type_filter_matches_only_its_types():
    sub = subscription(types_=[PUBLISHED, SCREENED])
    assert sub.matches(PUBLISHED, "learning")
    assert sub.matches(SCREENED, None)
    assert not sub.matches(SUBMITTED, "learning")


def test_a_focus_area_filter_matches_only_its_areas():
    sub = subscription(areas=[FocusArea.learning, FocusArea.smart_mobility])
    assert sub.matches(SUBMITTED, "learning")
    assert sub.matches(SUBMITTED, "smart_mobility")
    assert not sub.matches(SUBMITTED, "sustainable_development")


def test_a_focus_area_filter_does_not_match_an_event_whose_area_is_unknown():
    assert not subscription(areas=[FocusArea.learning]).matches(SCREENED, None)


def test_an_event_must_pass_both_filters():
    sub = subscription(types_=[PUBLISHED], areas=[FocusArea.learning])
    assert sub.matches(PUBLISHED, "learning")
    assert not sub.matches(PUBLISHED, "smart_mobility")
    assert not sub.matches(SUBMITTED, "learning")


# new subscriptions -------------------------------------------------------------------------
def new_subscription(**overrides) -> NewSubscription:
    body = {
        "subscriber": "Education department",
        "channel": "webhook",
        "url": "https://example.org/hooks/kokeilu",
        "filter": {"types": [PUBLISHED], "focus_areas": ["learning"]},
    }
    body.update(overrides)
    return NewSubscription.model_validate(body)


def test_the_design_guides_subscription_is_accepted():
    sub = new_subscription()
    assert sub.filter.types == [PUBLISHED]
    assert sub.filter.focus_areas == [FocusArea.learning]


def test_a_subscription_to_an_unknown_event_type_is_refused_naming_it():
    with pytest.raises(ValidationError) as caught:
        new_subscription(filter={"types": ["fi.espoo.kokeilu.proposal.teleported"]})
    assert "fi.espoo.kokeilu.proposal.teleported" in str(caught.value)


def test_a_subscription_to_an_unknown_focus_area_is_refused():
    with pytest.raises(ValidationError):
        new_subscription(filter={"focus_areas": ["space_travel"]})


@pytest.mark.parametrize(
    "url",
    ["ftp://example.org/hooks", "mailto:ops@example.org", "file:///etc/passwd", "example.org/hooks", "not a url", ""],
)
def test_a_subscription_to_a_non_http_url_is_refused(url):
    with pytest.raises(ValidationError) as caught:
        new_subscription(url=url)
    assert "url" in str(caught.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "https://example.org/hooks/kokeilu"])
def test_a_subscription_to_an_http_url_is_accepted(url):
    accepted = new_subscription(url=url).url
    assert accepted.scheme == url.split(":")[0]
    assert str(accepted).startswith(url)


@pytest.mark.parametrize("channel", ["sms", "carrier_pigeon", ""])
def test_a_subscription_to_an_unknown_channel_is_refused(channel):
    with pytest.raises(ValidationError) as caught:
        new_subscription(channel=channel)
    assert "channel" in str(caught.value)


# retry policy ------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [None, 429, 500, 502, 503, 504])
def test_timeouts_throttling_and_server_errors_are_retried(status):
    assert RetryPolicy().retryable(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_client_errors_are_not_retried(status):
    assert not RetryPolicy().retryable(status)


def test_the_wait_grows_with_every_attempt_and_stays_within_the_cap():
    policy = RetryPolicy(max_attempts=12, base_seconds=1.0, cap_seconds=60.0)
    rng = random.Random(1234)
    waits = [(policy.next_attempt(n, WHEN, rng) - WHEN).total_seconds() for n in range(1, 13)]
    ceilings = [min(60.0, 2.0 ** (n - 1)) for n in range(1, 13)]
    for wait, ceiling in zip(waits, ceilings, strict=False):
        assert ceiling / 2 <= wait <= ceiling
    below_cap = waits[:7]  # ceilings 1, 2, 4 ... 64 -> the 7th is capped at 60
    assert below_cap == sorted(below_cap)
    assert waits[0] < waits[5] < waits[-1] <= 60.0


def test_the_same_seed_gives_the_same_schedule():
    policy = RetryPolicy()
    a = [policy.next_attempt(n, WHEN, random.Random(7)) for n in range(1, 7)]
    b = [policy.next_attempt(n, WHEN, random.Random(7)) for n in range(1, 7)]
    assert a == b


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), attempts=st.integers(1, 60), base=st.floats(0.01, 30), cap=st.floats(1, 3600))
def test_the_next_attempt_is_always_in_the_future_and_never_past_the_cap(seed, attempts, base, cap):
    rng = random.Random(seed)
    wait = (RetryPolicy(base_seconds=base, cap_seconds=cap).next_attempt(attempts, WHEN, rng) - WHEN).total_seconds()
    assert 0 < wait <= cap + 1e-6
    assert wait >= min(cap, base * 2 ** (attempts - 1)) / 2 - 1e-6


# on_event ----------------------------------------------------------------------------------
DEPT = Caller("education-dept")
ADMIN = Caller("admin", admin=True, personal_data=True)


@pytest.fixture
def uow():
    return FakeNotificationsUnitOfWork()


def subscribe(uow, types_=(), areas=(), url="https://example.org/hooks"):
    body = NewSubscription(
        subscriber="Dept",
        channel="webhook",
        url=url,
        filter=SubscriptionFilter(types=list(types_), focus_areas=list(areas)),
    )
    return handlers.create_subscription(body, uow, DEPT)


def notify(uow, event):
    return handlers.on_event(event, decode(event), uow)


def queued(uow) -> dict[str, list[str]]:
    """subscription id -> event types queued for it."""
    out: dict[str, list[str]] = {}
    for d in uow.deliveries.list(None, None, 1000):
        out.setdefault(d["subscription_id"], []).append(d["event_type"])
    return out


def test_an_event_is_queued_only_for_the_subscriptions_it_matches(uow):
    everything = subscribe(uow)
    learning = subscribe(uow, areas=[FocusArea.learning])
    mobility = subscribe(uow, areas=[FocusArea.smart_mobility])
    results_only = subscribe(uow, types_=[PUBLISHED])
    event = an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted(focus_area="learning"))
    assert notify(uow, event) == "applied"
    assert queued(uow) == {everything.id: [SUBMITTED], learning.id: [SUBMITTED]}
    assert mobility.id not in queued(uow) and results_only.id not in queued(uow)
    [delivery] = uow.deliveries.list(learning.id, None, 10)
    assert delivery["status"] == "pending"
    assert delivery["event_id"] == event.id
    assert uow.deliveries.rows[delivery["id"]].payload == event.to_bytes()


def test_a_screening_outcome_uses_the_focus_area_remembered_from_its_proposal(uow):
    learning = subscribe(uow, types_=[SCREENED], areas=[FocusArea.learning])
    mobility = subscribe(uow, types_=[SCREENED], areas=[FocusArea.smart_mobility])
    proposal = a_proposal_submitted(focus_area="learning")
    notify(uow, an_event(types.PROPOSAL_SUBMITTED, proposal))
    assert queued(uow) == {}
    notify(uow, an_event(types.SCREENING_COMPLETED, a_screening(proposal.proposal_id)))
    assert queued(uow) == {learning.id: [SCREENED]}
    assert mobility.id not in queued(uow)


def a_revision(proposal, **changes) -> ProposalRevised:
    body = proposal.model_dump(exclude={"submitted_at"})
    body.update(revision=2, revised_at=WHEN + timedelta(days=1), **changes)
    return ProposalRevised.model_validate(body)


def test_a_revision_that_moves_the_proposal_to_another_focus_area_moves_its_later_events_too(uow):
    learning = subscribe(uow, types_=[SCREENED], areas=[FocusArea.learning])
    mobility = subscribe(uow, types_=[SCREENED], areas=[FocusArea.smart_mobility])
    proposal = a_proposal_submitted(focus_area="learning")
    notify(uow, an_event(types.PROPOSAL_SUBMITTED, proposal))
    notify(uow, an_event(types.PROPOSAL_REVISED, a_revision(proposal, focus_area="smart_mobility")))
    assert uow.subscriptions.focus_area_of(proposal.proposal_id) == "smart_mobility"
    notify(uow, an_event(types.SCREENING_COMPLETED, a_screening(proposal.proposal_id)))
    assert queued(uow) == {mobility.id: [SCREENED]}
    assert learning.id not in queued(uow)


# the proposer's contact (personal data) ------------------------------------------------------
ADDRESS = "maija.proposer@example.fi"


def contact_of(proposal_id: str, language: str = "sv"):
    data = ProposalContact(proposal_id=proposal_id, contact_email=ADDRESS, language=language, recorded_at=WHEN)
    return an_event(types.PROPOSAL_CONTACT_RECORDED, data, source=service_source("proposals"))


def status_change(proposal_id: str, from_: str, to: str):
    data = ProposalStatusChanged(proposal_id=proposal_id, from_status=from_, to_status=to, changed_at=WHEN)
    return an_event(types.PROPOSAL_STATUS_CHANGED, data, source=service_source("proposals"))


def test_the_contact_event_is_remembered_and_never_forwarded_to_any_subscriber(uow):
    everything = subscribe(uow)
    subscribe(uow, types_=[types.PROPOSAL_CONTACT_RECORDED.name])
    proposal = a_proposal_submitted(focus_area="learning")
    assert notify(uow, contact_of(proposal.proposal_id)) == "applied"
    notify(uow, an_event(types.PROPOSAL_SUBMITTED, proposal))
    assert queued(uow) == {everything.id: [types.PROPOSAL_SUBMITTED.name]}, "the submission only, to everything"
    assert not any(ADDRESS.encode() in d.payload for d in uow.deliveries.rows.values())
    facts = uow.subscriptions.proposal(proposal.proposal_id)
    assert (facts["contact_email"], facts["language"], facts["focus_area"]) == (ADDRESS, "en", "learning")
    notify(uow, an_event(types.PROPOSAL_REVISED, a_revision(proposal)))
    assert uow.subscriptions.proposal(proposal.proposal_id)["contact_email"] == ADDRESS, (
        "a revision (no address) keeps the known address"
    )


def test_the_proposer_is_emailed_about_later_status_changes_but_not_the_step_into_screening(uow, clock):
    proposal = a_proposal_submitted()
    pid = proposal.proposal_id
    notify(uow, contact_of(pid))
    notify(uow, an_event(types.PROPOSAL_SUBMITTED, proposal))
    notify(uow, status_change(pid, "submitted", "screening"))
    assert uow.deliveries.list(None, None, 10, kind="proposer") == []
    notify(uow, status_change(pid, "screening", "in_evaluation"))
    [listed] = uow.deliveries.list(None, None, 10, kind="proposer")
    assert (listed["subscription_id"], listed["channel"]) == (f"proposer:{pid}", "email")
    assert ADDRESS not in json.dumps(listed), "the delivery log never shows the address"
    mails, rendered = [], []

    def mail(to, words, message_id, unsubscribe_url):
        mails.append((to, words, message_id, unsubscribe_url))
        return 250, None

    def render(kind, payload, language, unsubscribe_url):
        rendered.append((kind, payload["event"]["data"]["to_status"], language))
        return "the e-mail's words"

    assert handlers.deliver_due(lambda: uow, FakeSender((500, None)), POLICY, mail=mail, render=render) == 1
    assert [m[0] for m in mails] == [ADDRESS]
    [delivery] = handlers.list_deliveries(uow, None, None, 10, caller=Caller("admin", admin=True))
    assert mails[0][2] == delivery["id"], "the Message-ID is the delivery's, the same on every attempt"
    assert rendered == [("proposer", "in_evaluation", "en")], "in the language of the proposal"
    [(type_, outcome)] = outcomes(uow)
    assert (type_, outcome.subscription_id, outcome.channel) == (
        types.DELIVERY_SUCCEEDED.name,
        f"proposer:{pid}",
        "email",
    )
    assert ADDRESS not in uow.published[0].to_bytes().decode()


def test_without_a_contact_event_no_proposer_email_is_queued(uow):
    proposal = a_proposal_submitted()
    notify(uow, an_event(types.PROPOSAL_SUBMITTED, proposal))
    notify(uow, status_change(proposal.proposal_id, "screening", "in_evaluation"))
    assert uow.deliveries.rows == {}


def test_a_screening_outcome_that_arrives_before_its_proposal_still_reaches_a_focus_area_subscriber(uow):
    # proposal.submitted and screening.completed come from different topics, so either may be
    # consumed first; the screening carries the focus area itself for that reason.
    learning = subscribe(uow, types_=[SCREENED], areas=[FocusArea.learning])
    proposal = a_proposal_submitted(focus_area="learning")
    notify(uow, an_event(types.SCREENING_COMPLETED, a_screening(proposal.proposal_id, focus_area="learning")))
    notify(uow, an_event(types.PROPOSAL_SUBMITTED, proposal))
    assert queued(uow) == {learning.id: [SCREENED]}


def test_a_deleted_subscription_gets_nothing_new(uow):
    sub = subscribe(uow)
    assert handlers.delete_subscription(sub.id, uow, DEPT) is True
    assert handlers.delete_subscription(sub.id, uow, DEPT) is False
    assert handlers.list_subscriptions(uow, DEPT) == []
    notify(uow, an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted()))
    assert queued(uow) == {}


def test_a_redelivered_event_is_queued_once(uow):
    subscribe(uow)
    event = an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted())
    assert notify(uow, event) == "applied"
    assert notify(uow, redelivery_of(event)) == "duplicate"
    assert len(uow.deliveries.rows) == 1


# deliver_due -------------------------------------------------------------------------------
@pytest.fixture
def clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(handlers, "utcnow", clock)
    return clock


POLICY = RetryPolicy(max_attempts=4, base_seconds=1.0, cap_seconds=10.0)


def queue_one(uow, url="https://example.org/hooks"):
    sub = subscribe(uow, url=url)
    event = an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted())
    notify(uow, event)
    [delivery_id] = uow.deliveries.rows
    return sub, event, delivery_id


def run(uow, sender, observed=None):
    return handlers.deliver_due(
        lambda: uow, sender, POLICY, observe=(lambda *a: observed.append(a)) if observed is not None else None
    )


def outcomes(uow):
    return [(e.type, decode(e, topics.NOTIFICATIONS)) for e in uow.published]


def test_a_2xx_answer_marks_the_delivery_succeeded_and_says_so(uow, clock):
    sub, event, delivery_id = queue_one(uow)
    sender, observed = FakeSender((204, None)), []
    assert run(uow, sender, observed) == 1
    [(url, body, headers)] = sender.calls
    assert url == sub.url
    assert body == event.to_bytes()
    assert headers["Idempotency-Key"] == headers["Kokeilu-Delivery-Id"] == delivery_id
    assert headers["Kokeilu-Event-Id"] == event.id
    assert headers["Content-Type"] == "application/cloudevents+json"
    stamp = int(headers["Kokeilu-Timestamp"])
    assert headers["Kokeilu-Signature"].startswith(f"t={stamp},v1=")
    assert verify_signature(sub.secret, headers["Kokeilu-Signature"], body, stamp)
    assert not verify_signature("another secret", headers["Kokeilu-Signature"], body, stamp)
    [d] = uow.deliveries.list(None, None, 10)
    assert d["status"] == "succeeded"
    assert [(a["attempt"], a["status_code"], a["error"]) for a in d["attempts"]] == [(1, 204, None)]
    [(type_, outcome)] = outcomes(uow)
    assert type_ == types.DELIVERY_SUCCEEDED.name
    assert (outcome.delivery_id, outcome.subscription_id, outcome.event_id) == (delivery_id, sub.id, event.id)
    assert (outcome.attempts, outcome.status_code, outcome.error) == (1, 204, None)
    assert [o[1] for o in observed] == ["succeeded"]
    assert run(uow, sender) == 0, "a delivered notification is not sent again"


def test_a_5xx_answer_retries_later_until_the_last_attempt_then_fails(uow, clock):
    sub, event, delivery_id = queue_one(uow)
    sender, observed = FakeSender((500, None)), []
    for attempt in range(1, POLICY.max_attempts):
        assert run(uow, sender, observed) == 1
        d = uow.deliveries.rows[delivery_id]
        assert d.status == "pending"
        assert d.attempts == attempt
        assert clock.now < d.next_attempt_at <= clock.now + timedelta(seconds=POLICY.cap_seconds)
        assert uow.published == []
        assert run(uow, sender) == 0, "not due before its next attempt"
        clock.advance(POLICY.cap_seconds)
    assert run(uow, sender, observed) == 1
    [d] = uow.deliveries.list(None, None, 10)
    assert d["status"] == "failed"
    assert d["next_attempt_at"] is None
    assert [(a["attempt"], a["status_code"], a["error"]) for a in d["attempts"]] == [
        (n, 500, "HTTP 500") for n in range(1, POLICY.max_attempts + 1)
    ]
    assert len(sender.calls) == POLICY.max_attempts
    [(type_, outcome)] = outcomes(uow)
    assert type_ == types.DELIVERY_FAILED.name
    assert (outcome.attempts, outcome.status_code, outcome.error) == (POLICY.max_attempts, 500, "HTTP 500")
    assert [o[1] for o in observed] == ["retrying"] * (POLICY.max_attempts - 1) + ["dead_lettered"]
    clock.advance(3600)
    assert run(uow, sender) == 0, "a failed delivery is not sent again"


def test_a_retry_that_succeeds_ends_the_delivery(uow, clock):
    _, _, delivery_id = queue_one(uow)
    sender = FakeSender((None, "timed out after 10s"), (503, None), (200, None))
    for _ in range(3):
        run(uow, sender)
        clock.advance(POLICY.cap_seconds)
    d = uow.deliveries.rows[delivery_id]
    assert d.status == "succeeded"
    assert [(t["status_code"], t["error"]) for t in d.tries] == [
        (None, "timed out after 10s"),
        (503, "HTTP 503"),
        (200, None),
    ]
    [(type_, outcome)] = outcomes(uow)
    assert (type_, outcome.attempts) == (types.DELIVERY_SUCCEEDED.name, 3)


@pytest.mark.parametrize("status", [400, 404, 410])
def test_a_client_error_fails_at_once_without_a_retry(uow, clock, status):
    _, _, delivery_id = queue_one(uow)
    sender = FakeSender((status, None))
    run(uow, sender)
    clock.advance(3600)
    assert run(uow, sender) == 0
    assert len(sender.calls) == 1
    d = uow.deliveries.rows[delivery_id]
    assert (d.status, d.attempts, d.last_status_code) == ("failed", 1, status)
    [(type_, outcome)] = outcomes(uow)
    assert (type_, outcome.attempts, outcome.status_code) == (types.DELIVERY_FAILED.name, 1, status)


def test_deliveries_not_yet_due_are_left_alone(uow, clock):
    queue_one(uow)
    sender = FakeSender((500, None))
    run(uow, sender)
    assert run(uow, sender) == 0
    assert len(sender.calls) == 1
    assert DeliveryStatus(uow.deliveries.rows[next(iter(uow.deliveries.rows))].status) is DeliveryStatus.pending


def test_the_delivery_list_shows_every_attempt_of_one_subscription(uow, clock):
    sub, _, _ = queue_one(uow)
    other = subscribe(uow, types_=[PUBLISHED])
    run(uow, FakeSender((500, None)))
    listed = handlers.list_deliveries(uow, sub.id, "pending", 10, caller=DEPT)
    assert [len(d["attempts"]) for d in listed] == [1]
    assert handlers.list_deliveries(uow, other.id, None, 10, caller=DEPT) == []
    assert handlers.list_deliveries(uow, None, "succeeded", 10, caller=DEPT) == []
    assert json.dumps(listed)  # the API returns it as it is


def test_an_evaluation_opened_event_with_a_plain_focus_area_is_matched(uow):
    learning = subscribe(uow, types_=[types.EVALUATION_OPENED.name], areas=[FocusArea.learning])
    opened = types.EVALUATION_OPENED.model(
        proposal_id="p-1", focus_area="learning", evaluators=["eva"], opened_at=WHEN, due_at=WHEN
    )
    assert notify(uow, an_event(types.EVALUATION_OPENED, opened)) == "applied"
    assert queued(uow) == {learning.id: [types.EVALUATION_OPENED.name]}


def test_attempts_that_end_while_others_are_recorded_are_recorded_together(uow, clock):
    subs = [subscribe(uow, url=f"https://example.org/hooks/{i}") for i in range(5)]
    notify(uow, an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted()))
    assert len(uow.deliveries.rows) == len(subs)
    record, pool = uow.deliveries.record_attempt, []

    def recording(*args):
        # While the first attempt is being recorded, the others (in the pool) end.
        while pool:
            pool.pop(0)()
        return record(*args)

    uow.deliveries.record_attempt = recording

    def run_all(fn, items):
        pool.extend(lambda d=d: fn(d) for d in items[1:])
        fn(items[0])

    commits = uow.commits
    assert handlers.deliver_due(lambda: uow, FakeSender(*[(204, None)] * 5), POLICY, run_all=run_all) == 5
    assert uow.commits - commits == 1 + 2, "the claim, the first attempt, then the four that ended meanwhile"
    assert {d["status"] for d in uow.deliveries.list(None, None, 10)} == {"succeeded"}
    assert sorted(o.subscription_id for _t, o in outcomes(uow)) == sorted(s.id for s in subs)


def test_an_attempt_whose_recording_failed_is_sent_again_once_its_lease_ends(uow, clock):
    _sub, _event, delivery_id = queue_one(uow)
    sender = FakeSender((204, None), (204, None))
    record = uow.deliveries.record_attempt

    def failing(*args):
        raise ConnectionError("the store went away")

    uow.deliveries.record_attempt = failing
    with pytest.raises(ConnectionError):
        run(uow, sender)
    uow.deliveries.record_attempt = record
    assert run(uow, sender) == 0, "leased: not sent again at once"
    clock.advance(handlers.LEASE.total_seconds() + 1)
    assert run(uow, sender) == 1
    headers = [h for _url, _body, h in sender.calls]
    assert [h["Kokeilu-Delivery-Id"] for h in headers] == [delivery_id, delivery_id], (
        "the same id: the receiver dedupes"
    )
    [d] = uow.deliveries.list(None, None, 10)
    assert d["status"] == "succeeded" and [a["attempt"] for a in d["attempts"]] == [1]


# on_events: the consumer's bulk method ----------------------------------------------------------
def a_stream():
    """Two proposals' histories as notifications reads them, with a redelivery in the middle."""
    events = []
    for area in ("learning", "smart_mobility"):
        proposal = a_proposal_submitted(focus_area=area)
        pid = proposal.proposal_id
        events += [
            contact_of(pid, "en"),
            an_event(types.PROPOSAL_SUBMITTED, proposal),
            status_change(pid, "submitted", "screening"),
            an_event(types.SCREENING_COMPLETED, a_screening(pid, focus_area=area)),
            status_change(pid, "screening", "in_evaluation"),
        ]
    events.insert(6, redelivery_of(events[3]))
    events.append(status_change(pid, "in_evaluation", "approved"))
    return events


def with_every_kind_of_subscription(uow):
    subscribe(uow)  # a webhook, without the personal-data scope: redacted
    subscribe(uow, areas=[FocusArea.learning])
    for mode, caller in (("immediate", ADMIN), ("daily_digest", DEPT), ("immediate", DEPT)):
        body = NewSubscription(subscriber="Dept", channel="email", email="dept@espoo.example", mode=mode)
        handlers.create_subscription(body, uow, caller)
    return uow


def stored(uow):
    """What the events left in the store, but the delivery ids (random)."""
    deliveries = sorted(
        (d.subscription_id, d.event_id, d.event_type, d.payload, d.kind, d.channel, d.recipient, d.language)
        + (d.correlation_id, d.traceparent, d.status, d.next_attempt_at)
        for d in uow.deliveries.rows.values()
    )
    items = sorted(tuple(sorted(i.items())) for i in uow.digests.items.values())
    return deliveries, items, uow.subscriptions.proposals, uow.inbox, uow.commits


@pytest.mark.parametrize("runs", [[100], [1] * 20, [3, 1, 5, 2, 100], [6, 100]])
def test_a_run_applied_at_once_leaves_what_its_events_applied_one_by_one_leave(clock, runs):
    one_by_one = with_every_kind_of_subscription(FakeNotificationsUnitOfWork())
    at_once = copy.deepcopy(one_by_one)  # the same subscriptions
    commits = at_once.commits
    stream = a_stream()
    expected = [notify(one_by_one, e) for e in stream]
    assert expected.count("duplicate") == 1
    outcomes, rest, applied = [], list(stream), 0
    while rest:
        size, runs = runs[0], runs[1:]
        run_, rest = rest[:size], rest[size:]
        outcomes += handlers.on_events([(e, decode(e)) for e in run_], at_once)
        applied += 1
    assert outcomes == expected
    mine, theirs = stored(at_once), stored(one_by_one)
    assert mine[:4] == theirs[:4]
    assert len(mine[0]) > 10 and mine[1], "deliveries of every kind and digest items were queued"
    assert {d[4] for d in mine[0]} == {"event", "proposer"}
    assert at_once.commits - commits == applied, "one transaction a run"


def test_a_run_with_an_event_applied_before_applies_it_no_more(uow, clock):
    subscribe(uow)
    event = an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted())
    assert notify(uow, event) == "applied"
    other = an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted())
    items = [(e, decode(e)) for e in (event, other, redelivery_of(other))]
    assert handlers.on_events(items, uow) == ["duplicate", "applied", "duplicate"]
    assert sorted(queued(uow).values()) == [[SUBMITTED, SUBMITTED]]


def test_an_emails_payload_is_the_event_as_it_is_written_and_the_proposals_title():
    proposal = a_proposal_submitted(title="Pyöräparkki – ääni")
    event = an_event(types.PROPOSAL_SUBMITTED, proposal)
    facts = {"title": proposal.title, "resident_name": None}
    assert json.loads(handlers._email_payload(event, facts)) == {
        "event": json.loads(event.to_bytes()),
        "proposal": {"proposal_id": event.subject, "title": "Pyöräparkki – ääni"},
    }
    hidden = json.loads(handlers._email_payload(event, {"title": "Penkit, Maija Meikäläinen"}, ("Maija Meikäläinen",)))
    assert "Maija" not in hidden["proposal"]["title"]
