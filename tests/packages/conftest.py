import pytest


@pytest.fixture(autouse=True)
def fast_sync(settings):
    """Tiny backoff, short timeouts and small batches so faults and batching show fast."""
    settings.PIWHEELS_SYNC_BACKOFF = 0.01
    settings.PIWHEELS_SYNC_RETRIES = 2
    settings.PIWHEELS_SYNC_TIMEOUT = 0.5
    settings.PIWHEELS_SYNC_BATCH = 2
    settings.PIWHEELS_SYNC_EVENTS_BATCH = 3
    settings.PIWHEELS_SYNC_WORKERS = 2
    settings.PIWHEELS_SYNC_RATE = 0  # unpaced; the pacing tests set it
