import pytest

from builds.models import Build
from tests.api.conftest import BuilderClient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("token, detail", [
    (None, "Authentication credentials were not provided."),
    ("wrong", "Invalid token."),
])
def test_claim_without_a_valid_token_is_401(job, token, detail):
    response = BuilderClient(token).claim()
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response["WWW-Authenticate"] == "Token"
    job.refresh_from_db()
    assert job.state == "queued"


def test_a_disabled_builder_is_403_with_a_clear_message(api, builder, job):
    builder.enabled = False
    builder.save()
    response = api.claim()
    assert response.status_code == 403
    assert response.json() == {"detail": "This builder is disabled; ask the farm's admins "
                                         "to enable it."}
    assert Build.objects.get().state == "queued"


def test_a_disabled_builder_cannot_finish_its_job(api, builder, held):
    builder.enabled = False
    builder.save()
    assert api.finish(held.id, success=False, output="x").status_code == 403
    held.refresh_from_db()
    assert held.state == "building"


@pytest.mark.parametrize("action", ["heartbeat", "release", "finish", "upload"])
def test_another_builders_job_is_409(held, other_api, action):
    if action == "finish":
        response = other_api.finish(held.id, success=False)
    elif action == "upload":
        response = other_api.upload(held.id, "foo_bar-1.0-cp311-cp311-linux_armv7l.whl", b"x")
    else:
        response = getattr(other_api, action)(held.id)
    assert response.status_code == 409
    assert response.json() == {"detail": f"build {held.id} is no longer yours: "
                                         "stop working on it"}
    held.refresh_from_db()
    assert (held.state, held.builder.name) == ("building", "pi1")


def test_an_unknown_build_is_404(api, data_dir):
    response = api.heartbeat(424242)
    assert response.status_code == 404
    assert response.json() == {"detail": "there is no build 424242"}
