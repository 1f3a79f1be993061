"""What the farm answers to hostile or proxied requests, through real HTTP to gunicorn
serving piwheels_site.wsgi as production does (DEBUG off, behind one proxy): a NUL in any
URL, HSTS and CSP behind TLS, and the admin login's lockout (django-axes)."""
import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User

from tests.factories import make_project
from tests.servers import Gunicorn, farm_env

FAILURES = 3  # PIWHEELS_LOGIN_FAILURES of the farm under test
HSTS_SECONDS = 3600


@pytest.fixture(scope="module")
def farm(django_db_setup, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardening")
    server = Gunicorn(
        farm_env(tmp, SECURE_HSTS_SECONDS=HSTS_SECONDS, PIWHEELS_PROXY_COUNT=1,
                 PIWHEELS_LOGIN_FAILURES=FAILURES, PIWHEELS_LOGIN_COOLOFF=30),
        tmp / "gunicorn.log", threads=4,
    ).start()
    yield server
    server.stop()


# The paths the issue found answering 500, and their neighbours: the index's WSGI fast
# path (a canonical name) and Django's detail view, pages, logs, files, the API.
NUL_URLS = [
    ("GET", "/simple/%00/"),
    ("GET", "/simple/a%00b/"),
    ("GET", "/simple/A%00/"),
    ("GET", "/simple/?format=%00"),
    ("GET", "/project/%00/"),
    ("GET", "/project/%00/json/"),
    ("GET", "/search/?q=%00"),
    ("GET", "/search/?q=six%00"),
    ("GET", "/files/foo/foo-1.0-py3-none-any%00.txt"),
    ("GET", "/files/%00/x.whl.metadata"),
    ("GET", "/logs/%00/"),
    ("GET", "/logs/1%00/"),
    ("POST", "/api/v1/builds/%00/finish/"),
    ("GET", "/admin/login/?next=/admin/%00"),
]


def test_a_nul_in_the_url_gets_400(farm):
    """Refused before any view or query: no database needed, none touched."""
    for method, path in NUL_URLS:
        response = farm.session.request(method, farm.url + path, timeout=10,
                                        allow_redirects=False)
        assert response.status_code == 400, (path, response.text[:500])
        if path.startswith("/api/"):
            assert response.json() == {"detail": "The URL contains a NUL character."}
        else:
            assert response.text == "Bad Request: the URL contains a NUL character.\n"
    assert "Traceback" not in farm.log()


def test_hsts_only_on_requests_that_came_over_https(transactional_db, farm):
    make_project("foo", versions=["1.0"])
    # /simple/foo/ is the index's WSGI fast path (here a 404: foo has no files yet),
    # /simple/Foo/ a redirect from Django's view, / a page.
    for path in ("/simple/foo/", "/simple/Foo/", "/"):
        secure = farm.get(path, headers={"X-Forwarded-Proto": "https"})
        assert secure.status_code in (200, 301, 404), path
        assert secure.headers["Strict-Transport-Security"] == f"max-age={HSTS_SECONDS}", path
        plain = farm.get(path)
        assert "Strict-Transport-Security" not in plain.headers, path


def test_pages_carry_a_csp_that_allows_only_their_own_files(transactional_db, farm):
    make_project("foo", versions=["1.0"])
    for path in ("/", "/project/foo/", "/stats/", "/search/?q=fo", "/admin/login/"):
        response = farm.get(path)
        assert response.status_code == 200, path
        policy = dict(
            d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";")
        )
        assert policy["default-src"] == "'self'"
        assert policy["img-src"] == "'self' data:"  # the empty data: favicon
        assert policy["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        # What makes that policy enough: nothing inline for it to block.
        if not path.startswith("/admin/"):
            assert not re.search(r"<script|<style|\sstyle=|\son\w+=", response.text), path


def make_admin(username, password):
    """A superuser whose password hash takes 1,000 PBKDF2 iterations, not Django's
    million, so that each login the server checks is quick (the server upgrades the hash
    at the first successful login, as it would after a Django upgrade)."""
    encoded = PBKDF2PasswordHasher().encode(password, "saltsaltsalt", iterations=1000)
    user = User.objects.create_superuser(username, f"{username}@example.org")
    User.objects.filter(id=user.id).update(password=encoded)
    return user


def _login(farm, username, password, address):
    """POST the admin login form from ADDRESS (as the proxy reports it); the answer."""
    session = type(farm.session)()
    headers = {"X-Forwarded-For": address}
    form = session.get(farm.url + "/admin/login/", headers=headers, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    return session.post(
        farm.url + "/admin/login/?next=/admin/", headers=headers, allow_redirects=False,
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        timeout=10,
    )


def test_failed_logins_lock_out_that_user_from_that_address(transactional_db, farm):
    make_admin("alice", "right-password")
    attacker, alice_at_home = "203.0.113.7", "198.51.100.20"
    for _ in range(FAILURES - 1):
        response = _login(farm, "alice", "wrong", attacker)
        assert response.status_code == 200
        assert "Please enter the correct username and password" in response.text
    response = _login(farm, "alice", "wrong", attacker)
    assert response.status_code == 429
    # The right password from the locked-out address is refused for the cool-off, with
    # a message saying so; no session is opened.
    response = _login(farm, "alice", "right-password", attacker)
    assert response.status_code == 429
    assert "Too many failed logins" in response.text
    assert "try again in 30 minutes" in response.text
    assert "sessionid" not in response.cookies
    attempt = AccessAttempt.objects.get(username="alice", ip_address=attacker)
    assert attempt.failures_since_start >= FAILURES
    # The same user from another address is not locked out (the lock is per pair).
    response = _login(farm, "alice", "right-password", alice_at_home)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert "sessionid" in response.cookies
    # Once the cool-off has passed (the attempts aged past it) the attacker's address
    # may try again, and the right password works.
    AccessAttempt.objects.filter(ip_address=attacker).update(
        attempt_time=attempt.attempt_time - timedelta(minutes=31)
    )
    response = _login(farm, "alice", "right-password", attacker)
    assert response.status_code == 302


def test_an_address_sent_by_the_client_does_not_dodge_the_lockout(transactional_db, farm):
    """X-Forwarded-For entries left of the one the proxy added are the client's own
    words: varying them does not make a new address."""
    make_admin("bob", "right-password")
    for n in range(FAILURES):
        _login(farm, "bob", "wrong", f"10.0.0.{n}, 203.0.113.9")
    response = _login(farm, "bob", "right-password", "10.9.9.9, 203.0.113.9")
    assert response.status_code == 429
    assert AccessAttempt.objects.filter(username="bob").count() == 1
