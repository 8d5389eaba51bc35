"""The fakes keep the transaction semantics the handler tests rely on, and the stores' contract."""

import inspect
import re

import pytest

from kokeilu.contracts import catalog as types
from services.catalogue import store as catalogue_store
from services.evaluation import store as evaluation_store
from services.notifications import store as notifications_store
from services.proposals import store as proposals_store
from services.proposals.domain import Proposal
from tests.builders import WHEN, a_proposal_submitted, a_submission, an_event
from tests.unit import fakes
from tests.unit.fakes import FakeProposalsUnitOfWork


def test_work_left_without_commit_is_rolled_back():
    uow = FakeProposalsUnitOfWork()
    event = an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted())
    with uow:
        uow.proposals.add(Proposal.submit("p-1", a_submission(), WHEN, "http"))
        uow.publish(event)
        assert uow.first_time("c", event)
    assert uow.proposals.get("p-1") is None
    assert uow.published == []
    with uow:
        assert uow.first_time("c", event), "the inbox record was rolled back too"


def test_work_is_rolled_back_when_the_block_raises():
    uow = FakeProposalsUnitOfWork()
    with pytest.raises(RuntimeError), uow:
        uow.proposals.add(Proposal.submit("p-1", a_submission(), WHEN, "http"))
        uow.commit()
        raise RuntimeError("boom")
    assert uow.proposals.get("p-1") is None


def test_committed_work_stays_and_the_inbox_remembers_source_and_id():
    uow = FakeProposalsUnitOfWork()
    event = an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted(), source="a", event_id="1")
    with uow:
        uow.proposals.add(Proposal.submit("p-1", a_submission(), WHEN, "http"))
        uow.publish(event)
        assert uow.first_time("c", event)
        uow.commit()
    assert uow.proposals.get("p-1") is not None
    assert [p.topic for p in uow.outbox] == [types.PROPOSAL_SUBMITTED.topic]
    assert uow.outbox[0].key == event.subject
    with uow:
        assert not uow.first_time("c", event)
        assert uow.first_time("other-consumer", event)
        assert uow.first_time("c", event.model_copy(update={"source": "b"}))


# the fakes keep the real stores' contract --------------------------------------------------
REAL_AND_FAKE = [
    (
        proposals_store.ProposalsUnitOfWork,
        fakes.FakeProposalsUnitOfWork,
        {
            "proposals": (proposals_store.ProposalRepository, fakes.FakeProposalRepository),
            "measurements": (proposals_store.MeasurementRepository, fakes.FakeMeasurementRepository),
            "idempotency": (proposals_store.IdempotencyRepository, fakes.FakeIdempotencyRepository),
        },
    ),
    (
        evaluation_store.EvaluationUnitOfWork,
        fakes.FakeEvaluationUnitOfWork,
        {
            "screenings": (evaluation_store.ScreeningRepository, fakes.FakeScreeningRepository),
            "known": (evaluation_store.KnownProposalRepository, fakes.FakeKnownProposalRepository),
            "evaluations": (evaluation_store.EvaluationRepository, fakes.FakeEvaluationRepository),
        },
    ),
    (
        catalogue_store.CatalogueUnitOfWork,
        fakes.FakeCatalogueUnitOfWork,
        {"entries": (catalogue_store.EntryRepository, fakes.FakeEntryRepository)},
    ),
    (
        notifications_store.NotificationsUnitOfWork,
        fakes.FakeNotificationsUnitOfWork,
        {
            "subscriptions": (notifications_store.SubscriptionRepository, fakes.FakeSubscriptionRepository),
            "deliveries": (notifications_store.DeliveryRepository, fakes.FakeDeliveryRepository),
            "digests": (notifications_store.DigestRepository, fakes.FakeDigestRepository),
        },
    ),
]


def _public_methods(cls) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(cls).items() if callable(fn) and not name.startswith("_")}


@pytest.mark.parametrize("real_uow, fake_uow, repos", REAL_AND_FAKE, ids=lambda v: getattr(v, "__name__", ""))
def test_every_fake_unit_of_work_has_the_real_ones_repositories(real_uow, fake_uow, repos):
    source = inspect.getsource(real_uow.bind)
    bound = set(re.findall(r"self\.(\w+)\s*=", source))
    assert bound == set(repos) == set(fake_uow.repositories)
    fake = fake_uow()
    for name, (_, fake_repo) in repos.items():
        assert isinstance(getattr(fake, name), fake_repo)


@pytest.mark.parametrize(
    "real, fake", [pair for _, _, repos in REAL_AND_FAKE for pair in repos.values()], ids=lambda v: v.__name__
)
def test_every_fake_repository_has_the_real_ones_methods_and_parameters(real, fake):
    real_methods, fake_methods = _public_methods(real), _public_methods(fake)
    assert set(real_methods) <= set(fake_methods), f"{fake.__name__} lacks {set(real_methods) - set(fake_methods)}"
    for name, signature in real_methods.items():
        real_params = [(p.name, p.default is p.empty) for p in signature.parameters.values()]
        fake_params = [(p.name, p.default is p.empty) for p in fake_methods[name].parameters.values()]
        assert fake_params == real_params, f"{fake.__name__}.{name}"
