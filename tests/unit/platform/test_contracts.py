"""The event contract: envelope parsing, typed decoding, event creation and the checked-in schemas."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from kokeilu.contracts import EVENT_TYPES, CloudEvent, InvalidEvent, decode, new_event, new_id, parse_envelope, topics
from kokeilu.contracts import catalog as types
from kokeilu.contracts.envelope import MAX_EVENT_BYTES, TYPE_PREFIX, new_event_json
from kokeilu.contracts.evaluation import ScreeningCompleted
from kokeilu.contracts.schemas import SCHEMA_DIR, stale
from tests.builders import WHEN, a_proposal_submitted, a_submission

VALID = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "espoo/e-services",
    "type": types.INTAKE_PROPOSAL.name,
    "time": "2025-03-01T09:30:00Z",
    "datacontenttype": "application/json",
    "data": {"anything": 1},
}


def raw(**changes) -> bytes:
    body = {**VALID, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


# parse_envelope ---------------------------------------------------------------------------
def test_a_well_formed_cloudevent_parses():
    event = parse_envelope(raw())
    assert (event.id, event.source, event.type) == ("evt-1", "espoo/e-services", types.INTAKE_PROPOSAL.name)
    assert event.data == {"anything": 1}


def test_a_tombstone_is_not_an_event():
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(None)
    assert "tombstone" in caught.value.reason


@pytest.mark.parametrize("value", [b"{not json", b"", b"\xff\xfe\x00garbage"])
def test_bytes_that_are_not_json_are_rejected_saying_so(value):
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(value)
    assert caught.value.reason.startswith("not JSON")
    assert caught.value.event is None


@pytest.mark.parametrize("value", [b"[1, 2]", b'"an event"', b"42", b"null"])
def test_json_that_is_not_an_object_is_rejected_saying_so(value):
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(value)
    assert "not an object" in caught.value.reason


def test_an_event_over_the_size_limit_is_rejected_naming_the_limit():
    padding = "x" * MAX_EVENT_BYTES
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(raw(data={"padding": padding}))
    assert "exceeds the limit" in caught.value.reason
    assert str(MAX_EVENT_BYTES) in caught.value.reason


def test_an_event_of_exactly_the_size_limit_is_accepted():
    base = len(raw(data={"padding": ""}))
    value = raw(data={"padding": "x" * (MAX_EVENT_BYTES - base)})
    assert len(value) == MAX_EVENT_BYTES
    assert parse_envelope(value).data["padding"].startswith("x")


@pytest.mark.parametrize("attribute", ["id", "source", "type", "time"])
def test_an_event_missing_a_required_attribute_is_rejected_naming_it(attribute):
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(raw(**{attribute: ...}))
    assert caught.value.reason.startswith("not a valid CloudEvent")
    assert attribute in caught.value.reason


def test_an_event_without_specversion_is_rejected():
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(raw(specversion=...))
    assert "specversion" in caught.value.reason


@pytest.mark.parametrize("version", ["0.3", "2.0", 1.0])
def test_an_event_of_another_specversion_is_rejected_naming_it(version):
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(raw(specversion=version))
    assert "specversion" in caught.value.reason


@pytest.mark.parametrize("attribute", ["id", "source", "type"])
def test_an_empty_required_attribute_is_rejected(attribute):
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(raw(**{attribute: ""}))
    assert attribute in caught.value.reason


def test_a_data_content_type_other_than_json_is_rejected():
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(raw(datacontenttype="application/xml"))
    assert "datacontenttype" in caught.value.reason


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_either_parse_or_fail_with_a_reason(value):
    try:
        event = parse_envelope(value)
    except InvalidEvent as exc:
        assert exc.reason
    else:
        assert isinstance(event, CloudEvent)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(data=JSON_VALUES, extra=st.dictionaries(st.sampled_from(["subject", "partnerid", "tracestate"]), st.text()))
def test_an_event_parses_in_one_pass_to_what_json_and_the_model_give(data, extra):
    """parse_envelope's one-pass parse (pydantic-core's) gives what json.loads and model_validate
    give; a record it refuses goes to them for the reason."""
    value = json.dumps({**VALID, "data": data, **extra}).encode()
    try:
        expected = CloudEvent.model_validate(json.loads(value))
    except ValueError:
        with pytest.raises(InvalidEvent):
            parse_envelope(value)
        return
    assert parse_envelope(value) == expected


# decode ----------------------------------------------------------------------------------
def test_decode_gives_the_typed_data_of_a_known_type():
    event = new_event(types.INTAKE_PROPOSAL.name, a_submission(), source="x", subject="s")
    data = decode(parse_envelope(event.to_bytes()), topics.INTAKE)
    assert data == a_submission()


def test_decode_rejects_an_unknown_type():
    event = parse_envelope(raw(type="fi.espoo.kokeilu.proposal.teleported"))
    with pytest.raises(InvalidEvent) as caught:
        decode(event)
    assert "unknown event type" in caught.value.reason
    assert "fi.espoo.kokeilu.proposal.teleported" in caught.value.reason
    assert caught.value.event is event


def test_decode_rejects_a_type_on_the_wrong_topic():
    event = new_event(types.INTAKE_PROPOSAL.name, a_submission(), source="x", subject="s")
    with pytest.raises(InvalidEvent) as caught:
        decode(event, topics.RESULTS)
    assert "does not belong on topic" in caught.value.reason
    assert topics.RESULTS in caught.value.reason


def test_decode_rejects_data_that_does_not_fit_the_model_naming_the_field():
    body = a_submission().model_dump(mode="json")
    body["budget_eur"] = -5
    event = parse_envelope(raw(data=body))
    with pytest.raises(InvalidEvent) as caught:
        decode(event, topics.INTAKE)
    assert caught.value.reason.startswith(f"invalid data for {types.INTAKE_PROPOSAL.name}")
    assert "budget_eur" in caught.value.reason


def test_decode_names_a_nested_missing_field():
    body = a_submission().model_dump(mode="json")
    del body["proposer"]["contact_email"]
    with pytest.raises(InvalidEvent) as caught:
        decode(parse_envelope(raw(data=body)))
    assert "proposer.contact_email" in caught.value.reason


def test_decode_rejects_fields_the_model_does_not_know():
    body = {**a_submission().model_dump(mode="json"), "secret_field": 1}
    with pytest.raises(InvalidEvent) as caught:
        decode(parse_envelope(raw(data=body)))
    assert "secret_field" in caught.value.reason


# new_event -------------------------------------------------------------------------------
def test_a_new_event_without_a_cause_starts_its_own_correlation():
    event = new_event(types.INTAKE_PROPOSAL.name, a_submission(), source="x", subject="s")
    assert event.correlationid == event.id
    assert event.causationid is None
    assert event.time.tzinfo is not None


def test_a_new_event_with_a_cause_carries_its_correlation_and_names_it_as_the_causation():
    first = new_event(types.INTAKE_PROPOSAL.name, a_submission(), source="x", subject="s", correlationid="corr-1")
    second = new_event(types.PROPOSAL_SUBMITTED.name, a_proposal_submitted(), source="y", subject="s", cause=first)
    third = new_event(
        types.SCREENING_COMPLETED.name,
        ScreeningCompleted(proposal_id="s", passed=True, screened_at=WHEN),
        source="z",
        subject="s",
        cause=second,
    )
    assert second.correlationid == third.correlationid == "corr-1"
    assert second.causationid == first.id
    assert third.causationid == second.id
    assert len({first.id, second.id, third.id}) == 3


def test_a_cause_without_a_correlation_id_lends_its_own_id():
    cause = parse_envelope(raw())  # from outside: no correlationid
    event = new_event(types.PROPOSAL_SUBMITTED.name, a_proposal_submitted(), source="y", subject="s", cause=cause)
    assert event.correlationid == cause.id
    assert event.causationid == cause.id


def test_an_event_survives_the_wire_unchanged():
    event = new_event(
        types.PROPOSAL_SUBMITTED.name,
        a_proposal_submitted(),
        source="y",
        subject="s",
        dataschema=types.PROPOSAL_SUBMITTED.dataschema,
    )
    again = parse_envelope(event.to_bytes())
    assert again == event
    assert decode(again, topics.PROPOSALS) == a_proposal_submitted(proposal_id=again.data["proposal_id"])


# schemas ---------------------------------------------------------------------------------
def test_the_checked_in_schemas_are_not_stale():
    assert stale() == [], "run `make schemas` and commit schemas/"


PID = "7f0c6d9e-0000-4000-8000-000000000001"
SUBMITTED_BODY = a_proposal_submitted(PID, hypothesis=None).model_dump(mode="json")
RESULT_BODY = {
    "result_id": PID,
    "proposal_id": PID,
    "title": "Shuttle",
    "summary": "A shuttle pilot",
    "focus_area": "smart_mobility",
    "environment": "kera",
    "proposer_kind": "company",
    "organisation": "Example Oy",
    "status": "in_evaluation",
    "contact_unit": "City of Espoo",
    "published_at": WHEN,
    "updated_at": WHEN,
    "kpis": [{"name": "daily riders", "unit": "riders/day", "baseline": 0, "target": 200}],
}
OUTCOME_BODY = {"delivery_id": "d", "subscription_id": "s", "channel": "webhook", "event_id": "e", "event_type": "t"}

# One realistic `data` per event type, as JSON; a new event type needs an example here.
EXAMPLES: dict[str, dict] = {
    TYPE_PREFIX + "intake.proposal": a_submission().model_dump(mode="json"),
    TYPE_PREFIX + "intake.measurement": {
        "proposal_id": PID,
        "kpi": "daily riders",
        "value": 140.5,
        "measured_at": WHEN,
    },
    TYPE_PREFIX + "proposal.submitted": SUBMITTED_BODY,
    TYPE_PREFIX + "proposal.revised": {
        **{k: v for k, v in SUBMITTED_BODY.items() if k != "submitted_at"},
        "revision": 2,
        "revised_at": WHEN,
    },
    TYPE_PREFIX + "proposal.status-changed": {
        "proposal_id": PID,
        "from_status": "submitted",
        "to_status": "screening_failed",
        "reason": "budget_cap: over the cap",
        "changed_at": WHEN,
    },
    TYPE_PREFIX + "proposal.contact-recorded": {
        "proposal_id": PID,
        "contact_email": "pilot@example.com",
        "language": "fi",
        "recorded_at": "2025-03-01T09:30:00+00:00",
    },
    TYPE_PREFIX + "proposal.intake-rejected": {
        "intake_source": "espoo/e-services",
        "intake_id": "42",
        "intake_type": TYPE_PREFIX + "intake.proposal",
        "reason": "budget_eur: must be >= 0",
        "rejected_at": WHEN,
    },
    TYPE_PREFIX + "pilot.started": {"proposal_id": PID, "started_at": WHEN},
    TYPE_PREFIX + "pilot.measurement-recorded": {
        "proposal_id": PID,
        "measurement_id": "m-1",
        "kpi": "daily riders",
        "value": 140.5,
        "measured_at": WHEN,
        "source": "espoo/sensors",
    },
    TYPE_PREFIX + "pilot.completed": {
        "proposal_id": PID,
        "outcome": "scale_up",
        "actual_kpis": [{"name": "daily riders", "actual": 230}],
        "lessons_learned": "Residents used the shuttle at peak hours.",
        "completed_at": WHEN,
    },
    TYPE_PREFIX + "screening.completed": {
        "proposal_id": PID,
        "passed": False,
        "screened_at": WHEN,
        "failed_rules": [{"rule": "budget_cap", "reason": "over the cap"}],
    },
    TYPE_PREFIX + "evaluation.opened": {
        "proposal_id": PID,
        "focus_area": "smart_mobility",
        "evaluators": ["e-1", "e-2", "e-3"],
        "opened_at": WHEN,
        "due_at": WHEN,
    },
    TYPE_PREFIX + "evaluation.decided": {
        "proposal_id": PID,
        "decision": "approved",
        "weighted_score": 3.9,
        "threshold": 3.0,
        "criterion_averages": {"impact": 4.0},
        "rationale": "Strong fit with the Espoo Story.",
        "decided_at": WHEN,
    },
    TYPE_PREFIX + "evaluation.overdue": {"proposal_id": PID, "opened_at": WHEN, "due_at": WHEN, "sla_hours": 72},
    TYPE_PREFIX + "result.published": RESULT_BODY,
    TYPE_PREFIX + "result.updated": {
        **RESULT_BODY,
        "status": "completed",
        "outcome": "scale_up",
        "lessons_learned": "Residents used the shuttle at peak hours.",
    },
    TYPE_PREFIX + "result.withdrawn": {
        "result_id": PID,
        "proposal_id": PID,
        "reason": "rejected",
        "withdrawn_at": WHEN,
    },
    TYPE_PREFIX + "delivery.succeeded": {**OUTCOME_BODY, "attempts": 1, "status_code": 204},
    TYPE_PREFIX + "delivery.failed": {**OUTCOME_BODY, "attempts": 6, "error": "timed out after 10s"},
}


def example_data(event_type):
    if event_type.name not in EXAMPLES:
        pytest.fail(f"no example data for {event_type.name}: add one to EXAMPLES in {__name__}")
    return event_type.model.model_validate(EXAMPLES[event_type.name])


def test_every_event_type_has_an_example_that_fits_its_model():
    assert sorted(EXAMPLES) == sorted(t.name for t in EVENT_TYPES)
    for event_type in EVENT_TYPES:
        example_data(event_type)


def schema_of(event_type) -> dict:
    path = SCHEMA_DIR / "events" / f"{event_type.name}.v{event_type.version}.json"
    return json.loads(path.read_text())


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.short)
def test_every_checked_in_event_schema_accepts_a_real_event(event_type):
    schema = schema_of(event_type)
    Draft202012Validator.check_schema(schema)
    cause = new_event(
        types.INTAKE_PROPOSAL.name, a_submission(), source="x", subject="s", traceparent=f"00-{'1' * 32}-{'2' * 16}-01"
    )
    event = new_event(
        event_type.name,
        example_data(event_type),
        source="kokeilu/test",
        subject="s",
        dataschema=event_type.dataschema,
        cause=cause,
    )
    errors = list(Draft202012Validator(schema).iter_errors(event.model_dump(mode="json", exclude={"tracestate"})))
    assert errors == [], [e.message for e in errors]
    # ... and the record value exactly as it goes on the wire
    assert list(Draft202012Validator(schema).iter_errors(json.loads(event.to_bytes()))) == []


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.short)
@pytest.mark.parametrize("caused", [False, True], ids=["new", "caused"])
def test_an_emitted_events_json_is_what_new_event_writes(event_type, caused):
    """new_event_json (how a unit of work's emit writes an event) writes exactly what the
    CloudEvent it parses into (new_event's) writes again, field for field and in order, for
    every event type: a record read back and republished (a redrive) is the same bytes."""
    fields = dict(
        source="kokeilu/test",
        subject="s",
        dataschema=event_type.dataschema,
        correlationid="c-1" if caused else None,
        traceparent=f"00-{'1' * 32}-{'2' * 16}-01" if caused else None,
        causationid="cause-1" if caused else None,
    )
    data = example_data(event_type)
    written = new_event_json(event_type.name, data, **fields)
    parsed = parse_envelope(written)
    made = new_event(event_type.name, data, **fields)
    expected = made.model_copy(update={"id": parsed.id, "time": parsed.time})
    if not caused:  # a new flow's correlation id is the event's own id
        expected = expected.model_copy(update={"correlationid": parsed.id})
    assert written == expected.to_bytes()
    assert list(Draft202012Validator(schema_of(event_type)).iter_errors(json.loads(written))) == []


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.short)
def test_every_checked_in_event_schema_refuses_an_event_of_another_type(event_type):
    schema = schema_of(event_type)
    other = next(t for t in EVENT_TYPES if t.name != event_type.name)
    event = new_event(other.name, example_data(other), source="kokeilu/test", subject="s", dataschema=other.dataschema)
    assert not Draft202012Validator(schema).is_valid(json.loads(event.to_bytes()))


def test_the_checked_in_result_schema_has_no_contact_details():
    text = json.dumps(schema_of(types.RESULT_PUBLISHED))
    assert "email" not in text.lower()
    assert "contact_email" not in json.dumps(schema_of(types.PROPOSAL_SUBMITTED))


def test_only_the_intake_command_and_the_internal_contact_event_may_carry_an_email_address():
    # Everything else (proposal.submitted/revised, every result and delivery event) is free of it.
    carrying = {t.name for t in EVENT_TYPES if "email" in json.dumps(schema_of(t)).lower()}
    assert carrying == {types.INTAKE_PROPOSAL.name, types.PROPOSAL_CONTACT_RECORDED.name}


def test_the_contact_event_is_internal_to_the_proposals_topic():
    assert types.PROPOSAL_CONTACT_RECORDED.topic == topics.PROPOSALS
    assert all("email" not in json.dumps(schema_of(t)).lower() for t in EVENT_TYPES if t.topic == topics.RESULTS)


def test_a_contact_event_with_a_malformed_address_is_refused():
    body = {**EXAMPLES[types.PROPOSAL_CONTACT_RECORDED.name], "contact_email": "not an address"}
    event = new_event(types.INTAKE_PROPOSAL.name, a_submission(), source="x", subject="s")
    event = event.model_copy(update={"type": types.PROPOSAL_CONTACT_RECORDED.name, "data": body})
    with pytest.raises(InvalidEvent) as caught:
        decode(event, topics.PROPOSALS)
    assert "contact_email" in caught.value.reason


def test_example_times_are_rfc3339_with_an_offset():
    # jsonschema does not check "date-time" without an extra package; check the wire form here.
    event = new_event(types.RESULT_PUBLISHED.name, example_data(types.RESULT_PUBLISHED), source="x", subject="s")
    wire = json.loads(event.to_bytes())
    for value in (wire["time"], wire["data"]["published_at"]):
        assert datetime.fromisoformat(value.replace("Z", "+00:00")).utcoffset() is not None


def test_replicated_topics_need_two_replicas_in_sync_and_one_node_topics_set_nothing():
    from kokeilu.config import Settings
    from kokeilu.kafka.topics import topic_specs

    three = topic_specs(Settings(kokeilu_topic_replication=3))
    assert {spec["configs"]["min.insync.replicas"] for spec in three.values()} == {"2"}
    assert {spec["replication_factor"] for spec in three.values()} == {3}
    assert {
        spec["configs"].get("min.insync.replicas")
        for spec in topic_specs(Settings(kokeilu_topic_replication=2)).values()
    } == {"1"}
    assert all("min.insync.replicas" not in spec["configs"] for spec in topic_specs(Settings()).values())


def test_new_ids_are_random_version_4_uuids_as_uuid4_writes_them():
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for made in ids:
        parsed = uuid.UUID(made)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, made)
