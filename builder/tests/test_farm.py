import hashlib
import logging
import threading
import time

import pytest

from piwheels_builder.farm import (
    Farm,
    LeaseLost,
    Rejected,
    Stopped,
    TokenRefused,
    backoff_delays,
)
from piwheels_builder.identity import Identity

ME = Identity(abi="cp311", platform="linux_armv7l", python_version="3.11.2",
              os="Raspbian GNU/Linux 12 (bookworm)")


def client(farm, **kwargs):
    kwargs.setdefault("retry_base", 0.05)
    kwargs.setdefault("retry_cap", 0.2)
    kwargs.setdefault("refused_pace", 0.2)
    return Farm(farm.url, kwargs.pop("token", farm.token), **kwargs)


def test_backoff_doubles_up_to_the_cap_with_jitter():
    top = [round(d, 3) for _, d in zip(range(6), backoff_delays(1, 8, rand=lambda: 1.0))]
    low = [round(d, 3) for _, d in zip(range(6), backoff_delays(1, 8, rand=lambda: 0.0))]
    assert top == [1, 2, 4, 8, 8, 8]
    assert low == [0.5, 1, 2, 4, 4, 4]


def test_claim_sends_identity_and_returns_the_job(farm):
    build_id = farm.add_job("Foo_Bar", "1.0")
    job = client(farm).claim(ME, wait=0)
    assert job["build_id"] == build_id and job["normalized_name"] == "foo-bar"
    assert farm.claims == [dict(ME.as_claim(), wait=0)]
    assert client(farm).claim(ME, wait=0) is None  # 204: nothing to do


def test_calls_retry_through_server_errors_and_429(farm, caplog):
    farm.add_job("foo")
    farm.fail("POST", "/claim/", 503, times=2)
    farm.fail("POST", "/claim/", 429, times=1)
    with caplog.at_level(logging.WARNING):
        job = client(farm).claim(ME, wait=0)
    assert job["project"] == "foo"
    assert [r[2] for r in farm.requests_to("/claim/")] == [503, 503, 429, 200]
    assert "farm answered 503 (Injected 503.), retrying in" in caplog.text


def test_unreachable_farm_is_retried_until_it_comes_back(farm, caplog):
    farm.add_job("foo")
    farm.stop()
    threading.Timer(0.8, farm.start).start()
    with caplog.at_level(logging.WARNING):
        job = client(farm).claim(ME, wait=0)
    assert job["project"] == "foo"
    assert "farm unreachable (connection refused), retrying in" in caplog.text


def test_refused_token_in_once_mode_raises_one_clear_line(farm):
    with pytest.raises(TokenRefused) as refused:
        client(farm, token="wrong", exit_on_refusal=True).claim(ME, wait=0)
    assert str(refused.value) == "the farm refused the token: Invalid token."
    farm.refuse_status = 403
    with pytest.raises(TokenRefused, match="refused the token: This builder is disabled"):
        client(farm, token="wrong", exit_on_refusal=True).claim(ME, wait=0)


def test_refused_token_is_retried_slowly_until_accepted(farm, caplog):
    farm.add_job("foo")
    good = farm.token
    farm.token = "rotated"  # the operator fixes the farm's side a little later

    def fix():
        farm.token = good

    threading.Timer(0.5, fix).start()
    start = time.monotonic()
    with caplog.at_level(logging.ERROR):
        job = client(farm, token=good, refused_pace=0.2).claim(ME, wait=0)
    assert job["project"] == "foo"
    refusals = [r for r in farm.requests_to("/claim/") if r[2] == 401]
    assert 2 <= len(refusals) <= 4  # at the slow pace, not in a tight loop
    assert time.monotonic() - start >= 0.4
    assert "the farm refused the token: Invalid token.; retrying in" in caplog.text


def test_stop_interrupts_the_waiting(farm):
    farm.stop()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(Stopped):
        client(farm, stop=stop, retry_cap=30, retry_base=30).claim(ME, wait=0)


def test_lost_job_and_rejected_input_are_not_retried(farm):
    build_id = farm.add_job("foo")
    api = client(farm)
    api.claim(ME, wait=0)
    api.heartbeat(build_id)
    farm.take_away(build_id)
    with pytest.raises(LeaseLost, match="not yours"):
        api.heartbeat(build_id)
    with pytest.raises(LeaseLost):
        api.heartbeat(9999)  # 404
    other = farm.add_job("bar")
    api.claim(ME, wait=0)
    with pytest.raises(Rejected, match="was not uploaded"):
        api.finish(other, {"success": True, "files": [
            {"filename": "bar-1.0-py3-none-any.whl", "size": 1, "sha256": "0" * 64}]})
    assert len(farm.requests_to(f"/builds/{other}/finish/")) == 1


def test_upload_cut_midway_is_sent_again_whole(farm, tmp_path):
    build_id = farm.add_job("foo")
    api = client(farm)
    api.claim(ME, wait=0)
    wheel = tmp_path / "foo-1.0-py3-none-any.whl"
    data = bytes(range(256)) * 4096  # 1 MiB
    wheel.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    farm.cut_uploads = 1

    answer = api.upload(build_id, wheel, wheel.name, len(data), digest)

    assert answer == {"filename": wheel.name, "size": len(data), "sha256": digest}
    assert [r[2] for r in farm.requests_to("/files/")] == ["cut", 201]
    assert farm.builds[build_id]["files"] == {wheel.name: data}
    # Sending the same bytes again is harmless: 200.
    api.upload(build_id, wheel, wheel.name, len(data), digest)
    assert [r[2] for r in farm.requests_to("/files/")] == ["cut", 201, 200]
