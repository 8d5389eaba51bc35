import os

import pytest

from tests.support import Platform, Probe


@pytest.fixture
def platform(tmp_path):
    p = Platform(tmp_path)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def module_platform(tmp_path_factory):
    """Services shared by the tests of one module (each test uses ids and titles of its own)."""
    p = Platform(tmp_path_factory.mktemp("platform"))
    yield p
    p.stop()


@pytest.fixture(scope="session")
def probe():
    p = Probe()
    yield p
    p.close()


@pytest.fixture(scope="session")
def postgres_url():
    url = os.environ.get("KOKEILU_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("KOKEILU_TEST_POSTGRES_URL is not set; run the suite with `make test`, which starts PostgreSQL")
    return url
