import os
import time

import pytest

from tests.support import Platform, Probe

STARTED = pytest.StashKey[float]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[STARTED] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that ran services shows the end of their logs (a CI run keeps no files):
    every platform with a log written since the test began."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        began = item.stash.get(STARTED, 0.0)
        for platform in list(Platform.launched):
            if platform.wrote_since(began):
                report.sections.append((f"service logs ({platform.prefix})", platform.log_tails()))


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
