import uuid

import pytest

from tests.servers import redis_or_skip


@pytest.fixture
def redis_url():
    """A Redis that answers (REDIS_TEST_URL, default the local one: .ci/run starts it)."""
    return redis_or_skip()


@pytest.fixture
def cluster_name():
    """A django-q cluster name of this test's own: its Redis queue is then its own too,
    whoever else uses that Redis."""
    return f"piwheels-test-{uuid.uuid4().hex[:12]}"
