"""What the HTTP layer refuses at the door, and the contract bounds that keep every event carriable."""

import json
import math
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import MultiDict

from kokeilu.contracts.bounds import MAX_MAGNITUDE
from kokeilu.contracts.envelope import MAX_EVENT_BYTES, new_event
from kokeilu.contracts.proposals import MAX_KPIS, MAX_PARTNERS, PilotCompleted, ProposalSubmitted, Submission
from kokeilu.contracts.results import MAX_SERIES_TOTAL, Result
from kokeilu.http import ApiError, json_response
from kokeilu.http.entrypoint import Api
from kokeilu.http.inputs import (
    MAX_JSON_DEPTH,
    bad_text,
    check_event_size,
    check_request_text,
    json_depth,
    parse_json_body,
)
from services.catalogue.search import BadCursor, encode_cursor, read_cursor
from services.evaluation.api import ScoresBody
from services.proposals.api import CompletePilotBody, MeasurementBody
from tests.builders import submission

NOW = datetime(2026, 11, 28, 10, tzinfo=UTC)
# The costliest character in a JSON string: a control character is written as \u0001 (6 bytes).
WORST = "\x01"


def refused(call) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def test_json_depth_counts_brackets_outside_strings_only():
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[{{{{\\"]]]"}') == 1
    assert json_depth(b"1") == 0


@pytest.mark.parametrize(
    "raw, status, field",
    [
        (b"[" * 5000 + b"]" * 5000, 400, "(body)"),
        (b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1), 400, "(body)"),
        (b"{nope", 400, "(body)"),
        (b"\xff\xfe", 400, "(body)"),
        (b"[1]", 400, "(body)"),
        (b'{"n": ' + b"9" * 5000 + b"}", 400, "(body)"),
        (b'{"title": "a\\u0000b"}', 422, "title"),
        (b'{"p": ["ok", "\\ud800"]}', 422, "p.1"),
        (b'{"a": {"\\udc00": 1}}', 422, None),
        # Not escaped: a surrogate encoded in UTF-8, NUL or an escape in a UTF-16 or UTF-32 body.
        (b'{"title": "a\xed\xa0\x80b"}', 422, "title"),
        (b'{"t": {"k\xed\xbf\xbf": 1}}', 422, None),
        ('{"title": "a\\u0000b"}'.encode("utf-16-le"), 422, "title"),
        ('{"title": "a\\ud800b"}'.encode("utf-16"), 422, "title"),
        ('{"p": ["\\udfff"]}'.encode("utf-32"), 422, "p.0"),
        ('{"title": "a\udc00b"}'.encode("utf-16-le", "surrogatepass"), 422, "title"),
        (b" " * (1024 * 1024 + 1), 413, "(body)"),
    ],
)
def test_a_body_is_refused_with_the_right_status_naming_the_field(raw, status, field):
    error = refused(lambda: parse_json_body(raw))
    assert error.status == status
    if field:
        assert field in error.fields
    json.dumps(error.fields, allow_nan=False)  # the names are printable JSON


def test_a_json_object_within_the_limits_is_parsed():
    assert parse_json_body(b'{"a": [1, {"b": "[[["}]}') == {"a": [1, {"b": "[[["}]}
    # More brackets than the depth limit, but inside strings: not nested, so accepted.
    text = "[" * (MAX_JSON_DEPTH + 1)
    assert parse_json_body(json.dumps({"a": text}).encode()) == {"a": text}
    # Text outside ASCII, with no escapes, is read as it is.
    assert parse_json_body('{"title": "Leppävaara ☂"}'.encode()) == {"title": "Leppävaara ☂"}


def test_bad_text_names_each_field():
    assert bad_text({"a": "ok", "b": ["x", "y\x00"], "c": {"d": "\udfff"}}) == {
        "b.1": "must not contain NUL characters",
        "c.d": "must not contain lone surrogates",
    }


def test_query_and_path_values_with_nul_or_too_long_are_refused():
    error = refused(lambda: check_request_text(MultiDict([("q", "a\x00")]), {"proposal_id": "x" * 201}))
    assert error.status == 422 and set(error.fields) == {"q", "proposal_id"}
    check_request_text(MultiDict([("q", "ok")]), {"proposal_id": "abc"})


def test_an_event_too_large_for_a_topic_is_a_413_naming_the_largest_field():
    class Big(BaseModel):
        small: str
        huge: str

    error = refused(lambda: check_event_size(Big(small="a", huge="x" * MAX_EVENT_BYTES)))
    assert error.status == 413 and "huge" in error.fields
    check_event_size(Big(small="a", huge="x" * 1000))


def largest_submission() -> dict:
    return submission(
        title=WORST * 200,
        summary=WORST * 5000,
        hypothesis=WORST * 5000,
        proposer={"organisation": WORST * 200, "kind": "company", "contact_email": "a@b.fi"},
        kpis=[{"name": WORST * 200, "unit": WORST * 50, "baseline": -MAX_MAGNITUDE, "target": MAX_MAGNITUDE}]
        * MAX_KPIS,
        partners=[WORST * 200] * MAX_PARTNERS,
        school_name=WORST * 200,
    )


SERIES_POINT = {
    "start": "2026-01-01",
    "end": "2026-12-31",
    "count": 10**12,
    "mean": -MAX_MAGNITUDE / 3,
    "min": -MAX_MAGNITUDE,
    "max": MAX_MAGNITUDE,
    "last": -MAX_MAGNITUDE / 7,
}


def test_the_largest_events_the_bounds_allow_fit_a_topic():
    s = Submission.model_validate(largest_submission())
    data = s.model_dump(exclude={"proposer"})
    submitted = ProposalSubmitted(
        proposal_id="p" * 64,
        proposer={"organisation": s.proposer.organisation, "kind": "company"},
        submitted_at=NOW,
        **data,
    )
    body = CompletePilotBody(
        outcome="scale_up",
        lessons_learned=WORST * 10_000,
        actual_kpis=[{"name": WORST * 200, "actual": MAX_MAGNITUDE}] * MAX_KPIS,
    )
    completed = PilotCompleted(proposal_id="p" * 64, completed_at=NOW, **body.model_dump())
    result = Result(
        result_id="p" * 64,
        proposal_id="p" * 64,
        status="completed",
        proposer_kind="company",
        organisation=WORST * 200,
        contact_unit=WORST * 200,
        lessons_learned=WORST * 10_000,
        decision_rationale=WORST * 10_000,
        published_at=NOW,
        updated_at=NOW,
        kpis=[
            {**k.model_dump(), "actual": 1.0, "series": [SERIES_POINT] * (MAX_SERIES_TOTAL // MAX_KPIS)} for k in s.kpis
        ],
        decision="approved",
        weighted_score=5,
        criterion_averages={f"{WORST * 60}{i:04}": 5.0 for i in range(50)},
        **s.model_dump(
            include={
                "title",
                "summary",
                "focus_area",
                "environment",
                "partners",
                "hypothesis",
                "school_name",
                "budget_eur",
                "duration_weeks",
            }
        ),
    )
    for data in (submitted, completed, result):
        event = new_event(
            "fi.espoo.kokeilu.x",
            data,
            source="kokeilu/" + "s" * 480,
            subject="p" * 200,
            dataschema="https://kokeilu.example/" + "d" * 200,
        )
        assert len(event.to_bytes()) < MAX_EVENT_BYTES // 1.5, type(data).__name__
        check_event_size(data)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, MAX_MAGNITUDE * 10])
def test_numbers_that_become_stored_values_are_finite_and_bounded(value):
    with pytest.raises(ValidationError):
        Submission.model_validate(submission(kpis=[{"name": "k", "unit": "u", "baseline": value, "target": 1}]))
    with pytest.raises(ValidationError):
        MeasurementBody(kpi="k", value=value, measured_at=NOW)
    with pytest.raises(ValidationError):
        CompletePilotBody(outcome="stop", lessons_learned="l", actual_kpis=[{"name": "k", "actual": value}])


def test_every_list_and_string_of_a_submission_is_bounded_item_by_item():
    with pytest.raises(ValidationError) as info:
        Submission.model_validate(
            submission(partners=["ok", "x" * 201], kpis=[{"name": "k", "unit": "u", "baseline": 0, "target": 1}] * 31)
        )
    where = {".".join(map(str, e["loc"])) for e in info.value.errors()}
    assert where == {"partners.1", "kpis"}
    with pytest.raises(ValidationError):
        ScoresBody(scores={str(i): 1 for i in range(21)})
    with pytest.raises(ValidationError):
        ScoresBody(scores={"impact": 10**30})


def test_json_responses_never_carry_nan():
    response = json_response({"a": math.nan, "b": [math.inf, 1.5]})
    assert json.loads(response.get_data(), parse_constant=lambda c: pytest.fail(c)) == {"a": None, "b": [None, 1.5]}


def test_json_responses_are_utf_8_and_write_what_json_has_no_form_for_as_its_text():
    class Odd:
        def __str__(self) -> str:
            return "odd"

    response = json_response({"title": "Kävelyreitti", "odd": Odd()}, 201)
    assert response.status_code == 201 and response.mimetype == "application/json"
    assert response.get_data() == '{"title":"Kävelyreitti","odd":"odd"}'.encode()


def test_a_transient_store_failure_is_a_503_with_retry_after():
    locked = OperationalError("INSERT ...", {}, Exception("database is locked"))
    response = Api("GET", "/x").response_from_exception(locked)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert json.loads(response.get_data())["error"]["code"] == "unavailable"
    assert Api("GET", "/x").response_from_exception(RuntimeError("bug")).status_code == 500


@pytest.mark.parametrize(
    "cursor, order",
    [
        ("garbage!", "newest"),
        (encode_cursor({"o": -1}), "relevance"),
        (encode_cursor({"o": 1.5}), "relevance"),
        (encode_cursor({"p": "yesterday", "id": "x"}), "newest"),
        (encode_cursor({"p": "2026-11-28T10:00:00", "id": "x"}), "newest"),
        (encode_cursor({"t": ["x"], "id": "x"}), "title"),
        (encode_cursor({"t": "x\x00", "id": "x"}), "title"),
        (encode_cursor({"t": "x", "id": "y"}), "newest"),
        ("ää", "newest"),
    ],
)
def test_a_cursor_this_api_did_not_give_out_is_refused(cursor, order):
    with pytest.raises(BadCursor):
        read_cursor(cursor, order)


def test_a_cursor_this_api_gave_out_is_read():
    assert read_cursor(encode_cursor({"p": NOW.isoformat(), "id": "r1"}), "newest").p == NOW
    assert read_cursor(encode_cursor({"o": 50}), "relevance").o == 50


def test_a_routes_signature_check_is_remembered_per_shape_and_a_bad_shape_still_refused(monkeypatch):
    from types import SimpleNamespace

    from nameko.exceptions import IncorrectSignature
    from nameko.extensions import Entrypoint

    class Service:
        def route(self, request, proposal_id, body=None):
            pass

    entry = Api("POST", "/x/<proposal_id>")
    entry.method_name = "route"
    entry.container = SimpleNamespace(service_cls=Service)
    entry._signatures_ok = set()
    calls = []
    real = Entrypoint.check_signature

    def counting(self, args, kwargs):
        calls.append((args, kwargs))
        return real(self, args, kwargs)

    monkeypatch.setattr(Entrypoint, "check_signature", counting)
    entry.check_signature(("req", "p1"), {"body": 1})
    entry.check_signature(("req", "p2"), {"body": 2})
    assert len(calls) == 1
    for _ in range(2):
        with pytest.raises(IncorrectSignature):
            entry.check_signature(("req", "p1", "extra", "more"), {})
    assert len(calls) == 3
