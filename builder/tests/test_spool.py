from piwheels_builder.spool import Spool


def test_put_keeps_wheels_and_result_until_removed(tmp_path):
    built = tmp_path / "foo-1.0-py3-none-any.whl"
    built.write_bytes(b"wheel bytes")
    spool = Spool(tmp_path / "spool")
    job = {"build_id": 7, "project": "foo", "version": "1.0"}
    result = {"success": True, "files": [{"filename": built.name}]}

    spool.put(job, result, [built])

    assert not built.exists()  # moved, not copied
    (entry,) = Spool(tmp_path / "spool").pending()  # as a restarted agent sees it
    assert (entry.build_id, entry.job, entry.result) == (7, job, result)
    assert entry.wheel_path(built.name).read_bytes() == b"wheel bytes"
    entry.remove()
    assert spool.pending() == []


def test_pending_lists_builds_in_order_and_drops_incomplete_entries(tmp_path):
    spool = Spool(tmp_path)
    for build_id in (12, 3):
        spool.put({"build_id": build_id}, {"success": False, "files": []}, [])
    half_written = tmp_path / "40"
    half_written.mkdir()
    (half_written / "result.json.tmp").write_text("{")

    assert [e.build_id for e in spool.pending()] == [3, 12]
    assert not half_written.exists()
