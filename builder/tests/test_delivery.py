"""Delivering a finished build: the whole log on its own, shortened only when the farm
says it is too large; a result kept in the spool on any answer that is not the farm's
definitive one (docs/builder-api.md), and sent again later."""
import time

from test_agent import leftovers, make_agent

from piwheels_builder.spool import Spool


def run_once(farm, work_dir, fake_python):
    """One agent run (--once), the work dir let go when it ends for the next one."""
    agent = make_agent(farm, work_dir, fake_python)
    try:
        agent.run(once=True)
    finally:
        agent.close()


def wait_until_due(work_dir, timeout=10):
    """The spooled entry's next try is due (its backoff has passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = Spool(work_dir / "spool").pending()
        if entries and all(e.due() for e in entries):
            return entries
        time.sleep(0.05)
    raise AssertionError("the spooled entry never came due")


def test_the_whole_log_goes_on_its_own_and_finish_carries_none(farm, work_dir, fake_python,
                                                                monkeypatch):
    monkeypatch.setenv("FAKE_BUILD_LINES", "200000")  # ~7 MB of output
    build_id = farm.add_job("loud-one")
    run_once(farm, work_dir, fake_python)
    build = farm.builds[build_id]
    assert build["state"] == "succeeded"
    assert build["result"]["output"] == ""
    lines = build["log"].splitlines()
    assert "compiling part 0 of the loud build" in lines
    assert "compiling part 199999 of the loud build" in lines
    assert [r[2] for r in farm.requests_to("/log/")] == [201]
    assert leftovers(work_dir) == []


def test_a_log_refused_as_too_large_is_sent_shorter_and_the_build_kept(
        farm, work_dir, fake_python, monkeypatch):
    monkeypatch.setenv("FAKE_BUILD_LINES", "100000")  # ~3.6 MB
    farm.max_log = 500_000
    build_id = farm.add_job("loud-one")
    run_once(farm, work_dir, fake_python)
    build = farm.builds[build_id]
    assert build["state"] == "succeeded" and len(build["files"]) == 1
    assert [r[2] for r in farm.requests_to("/log/")] == [413, 413, 201]
    log = build["log"]
    assert len(log) <= 500_000 and log.count("characters of this log left out here") == 1
    assert log.startswith("piwheels-builder: built by pip 99.0 ")
    assert "\nCollecting loud-one\n" in log[:2000]
    assert "Saved " in log.splitlines()[-1]  # the end is kept
    assert leftovers(work_dir) == []


def test_an_older_farm_without_the_log_upload_gets_the_log_inside_finish(
        farm, work_dir, fake_python):
    farm.log_endpoint = False
    build_id = farm.add_job("broken-one")
    run_once(farm, work_dir, fake_python)
    build = farm.builds[build_id]
    assert build["state"] == "failed" and build["log"] is None
    assert "gcc -c src/mod.c" in build["result"]["output"]
    assert [r[2] for r in farm.requests_to("/log/")] == [404]


def test_a_finish_refused_as_too_large_is_sent_with_less_of_the_log(
        farm, work_dir, fake_python, monkeypatch):
    monkeypatch.setenv("FAKE_BUILD_LINES", "20000")
    farm.log_endpoint = False
    farm.max_body = 100_000
    build_id = farm.add_job("loud-one")
    run_once(farm, work_dir, fake_python)
    build = farm.builds[build_id]
    assert build["state"] == "succeeded"
    output = build["result"]["output"]
    assert output.startswith("[piwheels-builder: ") and "Saved " in output
    statuses = [r[2] for r in farm.requests_to("/finish/")]
    assert statuses[-1] == 200 and set(statuses[:-1]) == {413}


def test_an_answer_that_is_not_the_farms_keeps_the_result_spooled_until_it_is_taken(
        farm, work_dir, fake_python):
    # The case: a 400 page (not the farm's JSON) in answer to finish.
    build_id = farm.add_job("foo")
    farm.fail("POST", "/finish/", 400, html=True)
    run_once(farm, work_dir, fake_python)
    assert farm.builds[build_id]["state"] == "building"
    (entry,) = Spool(work_dir / "spool").pending()
    assert entry.build_id == build_id and entry.retry_state()[0] == 1

    wait_until_due(work_dir)
    run_once(farm, work_dir, fake_python)
    build = farm.builds[build_id]
    assert build["state"] == "succeeded" and build["finishes"] == 1
    assert list(build["files"]) == ["foo-1.0-py3-none-any.whl"]  # uploaded again: 200
    assert leftovers(work_dir) == []


def test_a_refusal_of_the_result_that_is_not_about_the_wheel_keeps_it_spooled(
        farm, work_dir, fake_python):
    build_id = farm.add_job("foo")
    farm.fail("POST", "/finish/", 400, times=2)  # the farm's JSON, twice
    farm.fail("PUT", "/files/", 413, html=True)  # a proxy's page about the wheel
    run_once(farm, work_dir, fake_python)
    assert farm.requests_to("/finish/") == []  # the wheel was not refused by the farm
    for _ in range(3):
        wait_until_due(work_dir)
        run_once(farm, work_dir, fake_python)
    build = farm.builds[build_id]
    assert [r[2] for r in farm.requests_to("/finish/")] == [400, 400, 200]
    assert build["state"] == "succeeded" and build["result"]["success"] is True
    assert leftovers(work_dir) == []


def test_a_job_the_farm_says_is_not_ours_is_dropped(farm, work_dir, fake_python):
    build_id = farm.add_job("foo")
    farm.fail("POST", "/finish/", 409)
    run_once(farm, work_dir, fake_python)
    assert farm.builds[build_id]["finishes"] == 0
    assert leftovers(work_dir) == []
