import pytest

from tests.fakepypi import FakePyPI


@pytest.fixture
def fake_pypi(settings):
    """A started fake upstream PyPI on a free port; PIWHEELS_PYPI_URL points at it."""
    with FakePyPI() as pypi:
        settings.PIWHEELS_PYPI_URL = pypi.url
        yield pypi
