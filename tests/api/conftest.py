import hashlib

import pytest
from django.test import Client

from builds.models import Build
from tests.factories import make_build, make_project, make_version


class BuilderClient:
    """The Django test client speaking the builder API with one builder's token."""

    def __init__(self, token):
        self.client = Client()
        self.auth = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}

    def post(self, url, data=None):
        return self.client.post(url, data or {}, content_type="application/json", **self.auth)

    def claim(self, abi="cp311", wait=0, **facts):
        return self.post("/api/v1/claim/", {"abi": abi, "wait": wait, **facts})

    def heartbeat(self, build_id):
        return self.post(f"/api/v1/builds/{build_id}/heartbeat/")

    def release(self, build_id):
        return self.post(f"/api/v1/builds/{build_id}/release/")

    def finish(self, build_id, **result):
        return self.post(f"/api/v1/builds/{build_id}/finish/", result)

    def upload(self, build_id, filename, data, sha256=None, **headers):
        sha256 = hashlib.sha256(data).hexdigest() if sha256 is None else sha256
        return self.client.put(
            f"/api/v1/builds/{build_id}/files/{filename}", data,
            content_type="application/octet-stream", HTTP_X_SHA256=sha256,
            **self.auth, **headers,
        )


@pytest.fixture
def api(builder):
    return BuilderClient(builder.token)


@pytest.fixture
def other_api(other_builder):
    return BuilderClient(other_builder.token)


@pytest.fixture
def job(db):
    """A queued cp311 job of Foo_Bar 1.0."""
    return make_build(make_version(make_project("Foo_Bar"), "1.0"), state=Build.State.QUEUED)


@pytest.fixture
def held(api, job, data_dir):
    """The job, claimed by `builder` through the API."""
    assert api.claim().status_code == 200
    job.refresh_from_db()
    return job
