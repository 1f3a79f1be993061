"""deploy/nginx/piwheels.conf without nginx: its Accept map decides only what the farm's
own negotiation would decide the same way (nginx's map matches exact strings first,
then the regular expressions in order; these are plain PCRE that Python's re reads alike)."""
import re
from pathlib import Path

import pytest

from index import rendering
from index.views import preferred_type

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "piwheels.conf"
PAGES = {"json": rendering.JSON_TYPE, "html": rendering.TEXT_HTML_TYPE}

PIP = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
       "text/html; q=0.01")
UV = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
      "text/html;q=0.01")
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CHROME = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
          "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7")
SAFARI = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def accept_map():
    """(exact {header: page}, [(compiled regex, page)]) of the map on $http_accept."""
    body = re.search(r"map \$http_accept \$piwheels_page \{(.*?)\n\}", CONF.read_text(), re.S)
    exact, regexes = {}, []
    for line in body.group(1).splitlines():
        line = line.split("#")[0].strip() if not line.strip().startswith('"~') else line.strip()
        found = re.fullmatch(r'"(.*)"\s+(\w*|"");', line) if line else None
        if not found:
            assert not line or line.startswith("default"), line
            continue
        key, page = found.groups()
        if key.startswith("~*"):
            regexes.append((re.compile(key[2:], re.IGNORECASE), page))
        else:
            exact[key] = page
    return exact, regexes


def nginx_decides(header):
    exact, regexes = accept_map()
    if header in exact:
        return exact[header]
    return next((page for regex, page in regexes if regex.search(header)), "")


@pytest.mark.parametrize("header", [PIP, UV, FIREFOX, CHROME, SAFARI, "*/*", "text/html",
                                    rendering.JSON_TYPE])
def test_what_pip_uv_browsers_and_curl_send_is_decided_by_nginx(header):
    assert PAGES[nginx_decides(header)] == preferred_type(header)


@pytest.mark.parametrize("header", [
    "", "image/png", rendering.HTML_TYPE, "text/html;q=0.5",
    f"{rendering.JSON_TYPE};q=0.5, text/html;q=0.6",
    f"{rendering.JSON_TYPE}, text/html",  # a tie: text/html wins it
    f"text/html, {rendering.JSON_TYPE}", "TEXT/HTML", "text/html;level=1",
    f"text/html, {rendering.JSON_TYPE};foo=bar", f"{rendering.JSON_TYPE}, */*;q=0.5",
    f"{rendering.JSON_TYPE};q=0.9, text/html;q=0.01", f"{rendering.JSON_TYPE}, text/*",
    "text/html, */*;q=0", f"{rendering.JSON_TYPE}, {rendering.HTML_TYPE};q=1.0",
    "text/*, application/*;q=0.2",
])
def test_what_nginx_decides_the_farm_decides_alike(header):
    page = nginx_decides(header)
    if page:
        assert PAGES[page] == preferred_type(header), header
