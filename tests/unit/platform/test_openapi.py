"""The OpenAPI documents: valid OpenAPI 3.1, generated from the route tables (every `@api` route
documented, with its scope, body and examples), and checked in (tests/unit/platform/test_contracts.py
fails when schemas/openapi/ is stale)."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from kokeilu.contracts.schemas import SCHEMA_DIR
from kokeilu.http import api
from kokeilu.http.openapi import SERVICES, build, document, openapi_path, routes, service_class
from kokeilu.service_base import PlatformService
from services.proposals.api import ProposalView
from tests.builders import submission

ALL = sorted(SERVICES)


@pytest.fixture(scope="module", params=ALL)
def service(request):
    return request.param


def operations(doc):
    return {(method.upper(), path): op for path, item in doc["paths"].items() for method, op in item.items()}


def test_each_generated_document_is_valid_openapi_3_1(service):
    doc = document(service)
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on anything invalid


def test_the_validator_does_refuse_a_broken_document():
    doc = document("proposals")
    doc["paths"]["/v1/proposals"]["post"]["responses"]["201"] = {"content": "nonsense"}
    with pytest.raises(OpenAPIValidationError):
        validate(doc)


def test_the_checked_in_documents_are_the_generated_ones(service):
    assert json.loads((SCHEMA_DIR / "openapi" / f"{service}.json").read_text()) == document(service)


def test_every_route_of_the_service_class_is_documented_with_its_scope(service):
    ops = operations(document(service))
    found = routes(service_class(service))
    assert len(ops) == len(found)
    for name, ep in found:
        op = ops[(ep.method, openapi_path(ep.url))]
        assert op["operationId"] == name
        if ep.public:
            assert op["security"] == []
        else:
            assert op["security"] == [{"bearer": [ep.scope] if ep.scope else []}]
            assert f"`{ep.scope}`" in op["description"]
            assert {"401", "403"} <= set(op["responses"])
        if ep.body_model is not None:
            body = op["requestBody"]["content"]["application/json"]
            assert body["schema"] == {"$ref": f"#/components/schemas/{ep.body_model.__name__}"}
            assert "example" in body, f"{ep.method} {ep.url} has no request body example"
            ep.body_model.model_validate(body["example"])  # each example is a valid body
            assert {"413", "422"} <= set(op["responses"])
        assert str(ep.doc.status) in op["responses"]


def test_paths_use_openapi_parameters():
    assert openapi_path("/v1/proposals/<proposal_id>/pilot/start") == "/v1/proposals/{proposal_id}/pilot/start"
    assert openapi_path("/a/<int:n>/<path:rest>") == "/a/{n}/{rest}"
    op = operations(document("proposals"))[("GET", "/v1/proposals/{proposal_id}")]
    assert op["parameters"][0] == {
        "name": "proposal_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    }
    assert "404" in op["responses"]


def test_the_proposals_posts_honour_idempotency_key_and_say_so():
    ops = operations(document("proposals"))
    posts = [key for key in ops if key[0] == "POST"]
    assert len(posts) == 6
    for key in posts:
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in ops[key]["parameters"], key
        success = next(r for s, r in ops[key]["responses"].items() if s.startswith("2"))
        assert "Idempotent-Replayed" in success["headers"]
    for service in ("evaluation", "notifications", "catalogue"):
        assert "IdempotencyKey" not in json.dumps(document(service))


def test_the_submission_example_is_the_tests_submission():
    op = operations(document("proposals"))[("POST", "/v1/proposals")]
    assert op["requestBody"]["content"]["application/json"]["example"] == submission()


def test_a_created_proposal_links_to_the_operations_on_it():
    created = operations(document("proposals"))[("POST", "/v1/proposals")]["responses"]["201"]
    links = created["links"]
    assert links["get"] == {"operationId": "get", "parameters": {"proposal_id": "$response.body#/id"}}
    assert {"withdraw", "start_pilot", "record_measurement", "measurements"} <= set(links)


def test_errors_are_the_platforms_error_body(service):
    doc = document(service)
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    for _name, response in doc["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert set(response["content"]["application/json"]["example"]["error"]) >= {"code", "message", "fields"}


def test_query_models_become_query_parameters():
    op = operations(document("catalogue"))[("GET", "/v1/results")]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"q", "focus_area", "environment", "outcome", "status", "year", "sort", "limit", "cursor"}
    assert params["year"]["schema"]["items"] == {"type": "integer", "minimum": 1, "maximum": 9999}
    assert params["limit"]["schema"]["maximum"] == 200 and not params["limit"]["required"]
    assert "anyOf" not in params["q"]["schema"]  # optional, not nullable


def test_a_new_route_is_picked_up_without_more_description():
    class Extra(PlatformService):
        name = "extra"

        @api("GET", "/v1/extras/<extra_id>", scope="catalogue:read")
        def extra(self, request, extra_id):
            """One extra."""

    doc = build(Extra, "extra")
    validate(doc)
    op = doc["paths"]["/v1/extras/{extra_id}"]["get"]
    assert op["summary"] == "One extra."
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "object"
    assert {"400", "401", "403", "404", "422", "503"} == set(op["responses"]) - {"200"}
    assert "/openapi.json" in doc["paths"] and "/health/ready" in doc["paths"]


def test_a_proposal_answer_fits_the_documented_proposal():
    from kokeilu.contracts import utcnow
    from kokeilu.contracts.evaluation import Decision
    from kokeilu.contracts.proposals import Submission
    from services.proposals.api import proposal_json
    from services.proposals.domain import DecisionRecord, Proposal

    now = utcnow()
    screening = Proposal.submit("p-1", Submission.model_validate(submission()), now, "http").start_screening(now)
    piloting = (
        screening.record_screening(True, [], now)
        .record_decision(DecisionRecord(Decision.approved, 4.0, "fine", False, now), now)
        .start_pilot(now, None)
    )
    for proposal in (screening, piloting):
        body = proposal_json(proposal)
        # Every documented field is answered and nothing undocumented (the model forbids extras).
        assert set(body) == set(ProposalView.model_fields)
        view = ProposalView.model_validate(body)
        assert (view.id, view.status.value, view.revision) == ("p-1", proposal.status.value, 1)
    assert body["decision"]["decision"] == "approved" and body["pilot"] is not None
