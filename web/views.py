"""Pages for people: the home page, a project's builds, logs, search and statistics.

Thin function views: each looks something up through web.pages and renders it.
"""
import hashlib

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.cache import get_conditional_response
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers
from packaging.utils import canonicalize_name

from web import badge, failures, pages, search

# The project page shows the newest versions; ?all=1 shows every one (the JSON has all).
VERSIONS_SHOWN = 50


@require_safe
def home(request):
    return render(request, "web/home.html", {
        "totals": pages.home_totals(),
        "index_url": request.build_absolute_uri("/simple/"),
    })


@require_safe
def project(request, name):
    normalized = canonicalize_name(name)
    if name != normalized:
        return redirect("web-project", normalized, permanent=True)
    data = pages.project_page(normalized, request.build_absolute_uri("/simple/"))
    if data is None:
        return render(request, "web/project_404.html", {
            "name": name, "suggestions": search.suggestions(name),
        }, status=404)
    versions = data["versions"]
    if request.GET.get("all") != "1":
        versions = versions[:VERSIONS_SHOWN]
    return render(request, "web/project.html", {
        "project": data, "versions": versions, "hidden": len(data["versions"]) - len(versions),
    })


@require_safe
def project_json(request, name):
    normalized = canonicalize_name(name)
    if name != normalized:
        return redirect("web-project-json", normalized, permanent=True)
    data = pages.project_page(normalized, request.build_absolute_uri("/simple/"))
    if data is None:
        return JsonResponse({
            "detail": f"no project named {name!r}",
            "suggestions": search.suggestions(name),
        }, status=404)
    return JsonResponse(data)


@require_safe
@vary_on_headers("Accept")
def build_log(request, build_id):
    """A browser gets a page (what failed, why, the fix, the lines around the first
    error, then the whole log); scripts and curl get the log as text, as before."""
    if request.get_preferred_type(["text/plain", "text/html"]) == "text/html":
        data = failures.log_page(build_id)
        if data is None:
            raise Http404(f"build {build_id} has no log")
        return render(request, "web/log.html", {"log": data})
    row = pages.build_log(build_id)
    if row is None:
        raise Http404(f"build {build_id} has no log")
    output, truncated = row  # a cut log carries its one note where it was cut
    return HttpResponse(output, content_type="text/plain; charset=utf-8")


@require_safe
def failures_overview(request):
    return render(request, "web/failures.html", {"data": failures.failures_page()})


def whole_log(request, build_id):
    """The whole log of a build, as the farm keeps it: gzip-compressed."""
    path = pages.whole_log_path(build_id)
    if path is None:
        raise Http404(f"build {build_id} has no whole log kept")
    return FileResponse(open(path, "rb"), as_attachment=True,
                        filename=f"build-{build_id}.log.gz", content_type="application/gzip")


def _search(request):
    query = request.GET.get("q", "")[:search.MAX_QUERY].replace("\x00", "")
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        page = 1
    return search.search(query, page)


@require_safe
def search_page(request):
    found = _search(request)
    return render(request, "web/search.html", {
        "query": found["query"], "found": found, "results": found["results"],
        "popular": search.popular() if not found["query"].strip() else [],
    })


@require_safe
def search_json(request):
    """The same search, ranked the same, as JSON: {"query", "page", "has_next", "results"}."""
    return JsonResponse(_search(request))


@require_safe
@cache_control(max_age=10)
def stats(request):
    return render(request, "web/stats.html", {
        "stats": pages.slow_stats(),
        "builders": pages.builders_online(),
    })


@require_safe
def project_badge(request, name):
    """The README badge of a project's newest version, cached as the index pages are:
    Cache-Control with the index's max-age, an ETag of the picture, 304 when it matches."""
    normalized = canonicalize_name(name)
    found = badge.newest_state(normalized)
    version, state = found if found is not None else ("", "unknown")
    content = badge.svg(version, state)
    etag = '"' + hashlib.sha256(content.encode()).hexdigest()[:32] + '"'
    response = get_conditional_response(request, etag=etag)
    if response is None:
        response = HttpResponse(content, content_type="image/svg+xml; charset=utf-8",
                                status=200 if found is not None else 404)
    response["ETag"] = etag
    response["Cache-Control"] = (
        f"max-age={settings.PIWHEELS_INDEX_MAX_AGE}, public, must-revalidate")
    return response
