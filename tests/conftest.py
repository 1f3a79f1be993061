import pytest

from tests.fakepypi import FakePyPI


@pytest.fixture
def fake_pypi(settings):
    """A started fake upstream PyPI on a free port; PIWHEELS_PYPI_URL points at it."""
    with FakePyPI() as pypi:
        settings.PIWHEELS_PYPI_URL = pypi.url
        yield pypi


@pytest.fixture
def data_dir(settings, tmp_path):
    """A fresh PIWHEELS_DATA_DIR, files served by Django, empty index caches."""
    from django.core.cache import caches

    settings.PIWHEELS_DATA_DIR = tmp_path / "data"
    settings.PIWHEELS_ACCEL_REDIRECT = ""
    caches["index"].clear()
    yield settings.PIWHEELS_DATA_DIR
    caches["index"].clear()


@pytest.fixture
def builder(db):
    from tests.factories import make_builder

    return make_builder("pi1", abi="cp311")


@pytest.fixture
def other_builder(db):
    from tests.factories import make_builder

    return make_builder("pi2", abi="cp311")


@pytest.fixture(autouse=True)
def fresh_process_state():
    """Each test starts with none of the state a process keeps between requests: download
    counters, the long-poll's probe and its answers, the negotiation memo, the prepared
    statements' texts. So no test sees another's, in any order."""
    from api import longpoll
    from builds import sql
    from index import downloads, views

    downloads.reset()
    views.forget_negotiated()
    sql.forget_prepared()
    yield
    longpoll.close_shared()  # it must not outlive the test database
    downloads.reset()


@pytest.fixture(autouse=True)
def many_jobs_per_builder(settings):
    """Tests claim many jobs with one builder: the limit of jobs a builder holds
    (PIWHEELS_MAX_JOBS_PER_BUILDER, 2 by default) is set where it is tested
    (tests/builds/test_queue_limit.py)."""
    settings.PIWHEELS_MAX_JOBS_PER_BUILDER = 1000
