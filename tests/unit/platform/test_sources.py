"""CloudEvents `source`: absolute URIs under KOKEILU_EVENT_SOURCE_BASE for what the platform
publishes; any source accepted on input (city systems, and events from before the base)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from kokeilu.contracts import catalog as types
from kokeilu.contracts import decode
from kokeilu.contracts.sources import DEFAULT_SOURCE_BASE, SOURCE_BASE_VARIABLE, service_source, source_base
from kokeilu.store import UnitOfWork
from services.catalogue import handlers as catalogue
from tests.builders import a_proposal_submitted, a_screening, an_event, redelivery_of
from tests.support import ROOT, SERVICE_CLASSES
from tests.unit.fakes import FakeCatalogueUnitOfWork


def test_the_default_source_is_an_absolute_uri_per_service(monkeypatch):
    monkeypatch.delenv(SOURCE_BASE_VARIABLE, raising=False)
    assert service_source("proposals") == "https://kokeilu.espoo.fi/services/proposals"
    assert DEFAULT_SOURCE_BASE.endswith("/")
    parts = urlsplit(service_source("evaluation"))
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "kokeilu.espoo.fi", "/services/evaluation")


@pytest.mark.parametrize(
    "base", ["https://kokeilu.test.example/", "https://kokeilu.test.example", " https://kokeilu.test.example/ "]
)
def test_the_base_comes_from_the_environment_with_or_without_its_slash(monkeypatch, base):
    monkeypatch.setenv(SOURCE_BASE_VARIABLE, base)
    assert service_source("catalogue") == "https://kokeilu.test.example/services/catalogue"


def test_a_base_with_a_path_keeps_it():
    assert (
        service_source("notifications", "https://city.example/kokeilu")
        == "https://city.example/kokeilu/services/notifications"
    )
    assert service_source("notifications", "urn:kokeilu:espoo/") == "urn:kokeilu:espoo/services/notifications"


@pytest.mark.parametrize(
    "base",
    [
        "kokeilu",
        "kokeilu/",
        "//host/",
        "https://x.example/?a=b",
        "https://x.example/#f",
        "https://x.example/a b",
        "https://x.example/" + "a" * 400,
    ],
)
def test_a_base_that_is_not_an_absolute_uri_is_refused_naming_the_variable(base):
    with pytest.raises(ValueError, match=SOURCE_BASE_VARIABLE):
        source_base(base)


@pytest.mark.parametrize("service", sorted(SERVICE_CLASSES))
def test_every_service_publishes_with_its_absolute_source(service):
    store = importlib.import_module(f"services.{service}.store")
    uow_classes = [
        c for c in vars(store).values() if isinstance(c, type) and issubclass(c, UnitOfWork) and c is not UnitOfWork
    ]
    assert uow_classes and all(c.source == store.SOURCE for c in uow_classes)
    assert store.SOURCE == service_source(service)
    assert urlsplit(store.SOURCE).scheme


def test_a_service_process_takes_the_base_from_its_environment():
    script = "from services.proposals import store; print(store.ProposalsUnitOfWork.source)"
    env = {"PATH": "/usr/bin:/bin", SOURCE_BASE_VARIABLE: "https://kokeilu.staging.example/"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "https://kokeilu.staging.example/services/proposals"


def test_an_invalid_base_stops_a_service_at_start_saying_why():
    script = "from services.proposals import store"
    env = {"PATH": "/usr/bin:/bin", SOURCE_BASE_VARIABLE: "kokeilu/"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and SOURCE_BASE_VARIABLE in out.stderr


def test_what_a_service_publishes_carries_its_source():
    uow, data = FakeCatalogueUnitOfWork(), a_proposal_submitted()
    for event in (
        an_event(types.PROPOSAL_SUBMITTED, data, source=service_source("proposals")),
        an_event(types.SCREENING_COMPLETED, a_screening(data.proposal_id), source=service_source("evaluation")),
    ):
        catalogue.apply(event, decode(event), uow, "contact")
    [published] = uow.published
    assert published.source == service_source("catalogue")


@pytest.mark.parametrize(
    "source", ["kokeilu/proposals", "kokeilu/evaluation", "e-services-portal", "https://other.example/x"]
)
def test_events_from_any_source_are_applied_once(source):
    """Events published before the absolute sources (`kokeilu/<service>`) are still on the
    topics; nothing compares a source: the inbox keys on source + id."""
    uow, data = FakeCatalogueUnitOfWork(), a_proposal_submitted()
    submitted = an_event(types.PROPOSAL_SUBMITTED, data, source=source)
    screened = an_event(types.SCREENING_COMPLETED, a_screening(data.proposal_id), source=source)
    assert catalogue.apply(submitted, decode(submitted), uow, "contact") == "applied"
    assert catalogue.apply(screened, decode(screened), uow, "contact") == "published"
    again = redelivery_of(screened)
    assert catalogue.apply(again, decode(again), uow, "contact") == "duplicate"
    assert len(uow.published) == 1
