"""The hostile-input suite (issue 20): every input below is answered with a clear 4xx
(JSON under /api/), never a 5xx, and leaves nothing stored. The builder API's fixtures
are tests/api's."""
from tests.api.conftest import BuilderClient, api, held, job  # noqa: F401 (fixtures)
