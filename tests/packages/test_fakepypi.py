"""The fake upstream answers as PyPI does (other tests rely on its shapes)."""
import xmlrpc.client

import requests


def test_simple_root_json_lists_projects_with_serials(fake_pypi):
    fake_pypi.add_release("Foo_Bar", "1.0", summary="foo")
    fake_pypi.add_release("baz", "2.0")
    r = requests.get(f"{fake_pypi.url}/simple/",
                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert r.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
    data = r.json()
    assert data["meta"]["_last-serial"] == fake_pypi.serial == 6
    assert data["projects"] == [{"name": "Foo_Bar", "_last-serial": 3},
                                {"name": "baz", "_last-serial": 6}]
    html = requests.get(f"{fake_pypi.url}/simple/").text
    assert '<a href="/simple/foo-bar/">Foo_Bar</a>' in html


def test_project_pages_json_and_files(fake_pypi):
    fake_pypi.add_release("foo", "1.0", [("foo-1.0-py3-none-any.whl", b"wheel")],
                          requires_python=">=3.8")
    fake_pypi.yank("foo", "1.0", "broken")
    page = requests.get(f"{fake_pypi.url}/simple/foo/").text
    assert "#sha256=" in page and 'data-requires-python="&gt;=3.8"' in page
    assert 'data-yanked="broken"' in page
    files = requests.get(f"{fake_pypi.url}/simple/foo/?format=application/vnd.pypi.simple.v1+json"
                         ).json()["files"]
    assert files[0]["yanked"] == "broken"
    assert requests.get(files[0]["url"]).content == b"wheel"
    data = requests.get(f"{fake_pypi.url}/pypi/foo/json").json()
    (f,) = data["releases"]["1.0"]
    assert f["packagetype"] == "bdist_wheel" and f["yanked"] and f["yanked_reason"] == "broken"
    assert data["info"]["name"] == "foo" and data["last_serial"] == fake_pypi.serial
    assert requests.get(f"{fake_pypi.url}/pypi/nope/json").status_code == 404


def test_changelog_over_xmlrpc(fake_pypi):
    fake_pypi.add_release("foo", "1.0")
    fake_pypi.add_file("foo", "1.0", "foo-1.0-py3-none-any.whl", b"w")
    fake_pypi.yank("foo", "1.0")
    fake_pypi.unyank("foo", "1.0")
    fake_pypi.remove_release("foo", "1.0")
    fake_pypi.remove_project("foo")
    proxy = xmlrpc.client.ServerProxy(f"{fake_pypi.url}/pypi", allow_none=True)
    rows = proxy.changelog_since_serial(0)
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("foo", None, "create", 1),
        ("foo", "1.0", "new release", 2),
        ("foo", "1.0", "add source file foo-1.0.tar.gz", 3),
        ("foo", "1.0", "add py3 file foo-1.0-py3-none-any.whl", 4),
        ("foo", "1.0", "yank release", 5),
        ("foo", "1.0", "unyank release", 6),
        ("foo", "1.0", "remove release", 7),
        ("foo", None, "remove project", 8),
    ]
    assert proxy.changelog_last_serial() == 8
    assert proxy.changelog_since_serial(7) == [rows[-1]]


def test_faults(fake_pypi):
    fake_pypi.add_release("foo", "1.0")
    fake_pypi.fail("/pypi/foo", 429, times=1, retry_after=3)
    fake_pypi.fail("/pypi/foo", "garbage", times=1)
    url = f"{fake_pypi.url}/pypi/foo/json"
    r = requests.get(url)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert requests.get(url).text == '{"info": {"name": '
    assert requests.get(url).status_code == 200
    fake_pypi.hang_seconds = 5
    fake_pypi.fail("/simple/", "timeout")
    try:
        requests.get(f"{fake_pypi.url}/simple/", timeout=0.2)
    except requests.Timeout:
        pass
    else:
        raise AssertionError("no timeout")
