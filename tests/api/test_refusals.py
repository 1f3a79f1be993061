"""Every refusal of /api/ is JSON {"detail": "<one sentence>"} with its status, over real
HTTP, and changes nothing: bad paths, methods, media types, bodies and numbers.

The cases of a kind share one live server and database (a test each would spend most of
its time setting up and flushing the database)."""
import pytest
import requests

from builds.models import Build, BuildLog
from tests.factories import make_build, make_builder, make_project, make_version

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session(live_server):
    builder = make_builder("pi1")
    make_build(make_version(make_project("Foo_Bar"), "1.0"), state=Build.State.QUEUED)
    with requests.Session() as session:
        session.headers["Authorization"] = f"Token {builder.token}"
        session.base = live_server.url
        yield session


@pytest.fixture
def held(session):
    response = session.post(f"{session.base}/api/v1/claim/", json={"abi": "cp311", "wait": 0})
    assert response.status_code == 200
    return response.json()["build_id"]


def assert_refused(response, status, detail, case=""):
    assert response.status_code == status, (case, response.text[:300])
    assert response.headers["Content-Type"] == "application/json", case
    body = response.json()
    assert list(body) == ["detail"] and detail in body["detail"], (case, body)
    assert "\n" not in body["detail"], case


PATHS = [
    ("POST", "/api/v1/builds/abc/finish/", 404, "no API endpoint at /api/v1/builds/abc/finish/"),
    ("POST", "/api/v1/builds/-1/heartbeat/", 404, "no API endpoint"),
    ("POST", "/api/v1/builds/99999999999999999999/finish/", 404, "no API endpoint"),
    ("POST", "/api/v1/builds/424242/finish/", 400, "success: This field is required"),
    ("POST", "/api/v1/builds/424242/heartbeat/", 404, "there is no build 424242"),
    ("PUT", "/api/v1/builds/1%00/log/", 404, "no API endpoint"),
    ("POST", "/api/v1/claim", 404, "no API endpoint at /api/v1/claim"),  # no redirect
    ("GET", "/api/v1/nothing/here/", 404, "no API endpoint"),
    ("GET", "/api/v1/claim/", 405, 'Method "GET" not allowed'),
    ("DELETE", "/api/v1/builds/1/finish/", 405, 'Method "DELETE" not allowed'),
]


def test_paths_and_methods_that_name_no_action_are_refused_in_json(session):
    for method, path, status, detail in PATHS:
        response = session.request(method, session.base + path)
        assert_refused(response, status, detail, f"{method} {path}")


WHL = "x-1.0-py3-none-any.whl"
FINISH_BODIES = [
    ({"success": False, "duration": 1e15}, "duration: Ensure this value is less than or equal"),
    ({"success": False, "duration": -1}, "duration: Ensure this value is greater than or equal"),
    ('{"success": false, "duration": NaN}', "JSON parse error"),
    ('{"success": false, "duration": Infinity}', "JSON parse error"),
    ('{"success": false, "duration": 1e400}', "duration: A valid number is required"),
    ('{"success": false, "output": "\\ud800"}', "not valid Unicode"),
    ('{"success": tru', "JSON parse error"),
    ({"success": True, "files": [{"filename": "", "size": 1, "sha256": "0" * 64}]},
     "files[0].filename: This field may not be blank"),
    ({"success": True, "files": [{"filename": WHL, "size": 2**64, "sha256": "0" * 64}]},
     "files[0].size: Ensure this value is less than or equal to 9223372036854775807"),
    ({"success": True, "files": [{"filename": WHL, "size": 1, "sha256": "0" * 64}]},
     WHL),
    ({"success": True, "files": [{"filename": "x.whl", "size": 1, "sha256": "0" * 64}]},
     "files[0].filename: 'x.whl' is not a wheel filename as packaging writes it"),
    (["success"], "Invalid data"),
    ({"success": "true"}, "success: Must be a valid boolean"),
    ({"success": False, "duration": "5"}, "duration: A valid number is required"),
    ({"success": True, "files": [{"filename": WHL, "size": "1", "sha256": "0" * 64}]},
     "files[0].size: A valid integer is required"),
]


def test_a_bad_finish_body_is_a_400_in_one_sentence_and_changes_nothing(session, held):
    url = f"{session.base}/api/v1/builds/{held}/finish/"
    for body, detail in FINISH_BODIES:
        if isinstance(body, str):
            response = session.post(url, data=body.encode(),
                                    headers={"Content-Type": "application/json"})
        else:
            response = session.post(url, json=body)
        assert_refused(response, 400, detail, body)
    assert Build.objects.get(id=held).state == "building"
    assert not BuildLog.objects.exists()


CLAIMS = [
    (b"abi=cp311", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     'Unsupported media type "application/x-www-form-urlencoded"'),
    (b'{"abi": ""}', {"Content-Type": "application/json"}, 400, "abi: This field may not be"),
    (b'{"abi": "cp311", "wait": 1e9}', {"Content-Type": "application/json"}, 400,
     "wait: Ensure this value is less than or equal to 60"),
    (b'{"abi": 311}', {"Content-Type": "application/json"}, 400, "abi: Not a valid string"),
]


def test_a_bad_claim_is_refused_in_json(session):
    for body, headers, status, detail in CLAIMS:
        response = session.post(f"{session.base}/api/v1/claim/", data=body, headers=headers)
        assert_refused(response, status, detail, body)
    assert Build.objects.get().state == "queued"


def test_a_body_over_djangos_memory_limit_is_a_413_in_json(session, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = session.post(f"{session.base}/api/v1/claim/",
                            json={"abi": "cp311", "os": "x" * 5000, "wait": 0})
    assert_refused(response, 413, "the body is too large for the farm to read")
    assert Build.objects.get().state == "queued"


def test_an_upload_with_an_empty_sha256_is_a_400_in_json(session, held):
    response = session.put(
        f"{session.base}/api/v1/builds/{held}/files/foo_bar-1.0-cp311-cp311-linux_armv7l.whl",
        data=b"PK", headers={"X-Sha256": ""})
    assert_refused(response, 400, "X-Sha256 must be the hex sha256 of the body")
