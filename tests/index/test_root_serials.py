"""Global index serials (ProjectQuerySet.touch_index) and the root's `_last-serial`s: a
mirror that stores the highest serial the root listed must never miss a change."""
import json
import threading

import pytest
from django.db import connection, transaction

from index import pages, rendering
from packages.models import Project, index_serial_high
from tests.factories import make_project, make_version, wheel_archive
from tests.index.factories import publish

pytestmark = pytest.mark.django_db(transaction=True)


def root_serials():
    return {p["name"]: p["_last-serial"]
            for p in json.loads(pages.root_file("json").read_bytes())["projects"]}


def serial_of(name):
    return Project.objects.get(normalized_name=name).index_serial


def test_each_change_takes_the_next_global_serial(data_dir):
    foo, bar = make_project("foo"), make_project("bar")

    Project.objects.filter(id=foo.id).touch_index()
    Project.objects.filter(id=bar.id).touch_index()
    Project.objects.filter(id=foo.id).touch_index()

    assert serial_of("bar") > 0 and serial_of("foo") > serial_of("bar")
    assert index_serial_high() == serial_of("foo")
    # Several projects in one statement: a serial each, all above the ones before.
    high = index_serial_high()
    assert Project.objects.filter(id__in=[foo.id, bar.id]).touch_index() == 2
    assert sorted([serial_of("foo"), serial_of("bar")]) == [high + 1, high + 2]
    # The page files render the serial they were written for: none lags.
    assert not Project.objects.filter(index_file_serial__lt=serial_of("foo"), id=foo.id).exists()


def test_a_serial_only_change_reaches_the_root_at_the_next_repair(data_dir):
    foo = make_project("foo")
    publish(make_version(foo, "1.0"), wheel_archive("foo", "1.0"))  # on the root: written
    first = serial_of("foo")
    assert root_serials() == {"foo": first}

    Project.objects.filter(id=foo.id).touch_index()  # e.g. a new file: no new project
    assert root_serials() == {"foo": first}  # not rewritten at the commit

    pages.repair()

    assert root_serials() == {"foo": serial_of("foo")} and serial_of("foo") > first
    assert pages.root_stamp() == (pages.root_stamp()[0], index_serial_high())
    assert pages.write_root() is None  # nothing moved since


def test_the_root_waits_for_a_change_whose_serial_is_not_committed(data_dir, monkeypatch):
    """A publisher takes serial N, a second one takes N+1 and commits first: a root read
    then would list N+1 without N's change, and a mirror storing N+1 would never fetch
    N's project. The root's snapshot waits until N is committed."""
    for name in ("early", "late"):
        publish(make_version(make_project(name), "1.0"), wheel_archive(name, "1.0"))
    holding, release = threading.Event(), threading.Event()

    def slow_publisher():
        try:
            with transaction.atomic():
                Project.objects.filter(normalized_name="early").touch_index()
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    monkeypatch.setattr(rendering, "BARRIER_WAIT", 0.3)
    thread = threading.Thread(target=slow_publisher)
    thread.start()
    try:
        assert holding.wait(30)
        Project.objects.filter(normalized_name="late").touch_index()  # commits at once
        with pytest.raises(rendering.RootBusy), rendering.root_snapshot():
            pass
        assert pages.repair() == 0  # logged; the root stays as it was
    finally:
        release.set()
        thread.join()

    with rendering.root_snapshot() as (high, projects):
        listed = dict(projects)
    assert serial_of("early") < serial_of("late") <= high
    assert listed == {"early": serial_of("early"), "late": serial_of("late")}


def test_publishers_do_not_wait_for_the_root_to_be_rendered(data_dir):
    publish(make_version(make_project("foo"), "1.0"), wheel_archive("foo", "1.0"))
    bar = make_project("bar")

    def publisher():
        try:
            Project.objects.filter(id=bar.id).touch_index()
        finally:
            connection.close()

    with rendering.root_snapshot() as (high, projects):
        thread = threading.Thread(target=publisher)
        thread.start()
        thread.join(10)
        assert not thread.is_alive()  # done while the root is still being read
        assert dict(projects) == {"foo": serial_of("foo")}  # the snapshot's
    assert serial_of("bar") > high
