"""Pages for people: the home page, a project's builds, logs, search and statistics.

Thin function views: each looks something up through web.pages and renders it.
"""
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers
from packaging.utils import canonicalize_name

from web import failures, pages

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
    data = pages.project_page(normalized)
    if data is None:
        return render(request, "web/project_404.html", {
            "name": name, "suggestions": pages.suggestions(name),
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
    data = pages.project_page(normalized)
    if data is None:
        return JsonResponse({
            "detail": f"no project named {name!r}",
            "suggestions": pages.suggestions(name),
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


@require_safe
def search(request):
    query = request.GET.get("q", "")[:200]
    return render(request, "web/search.html", {
        "query": query,
        "results": pages.search(query) if query.strip() else [],
        "limit": pages.SEARCH_LIMIT,
    })


@require_safe
@cache_control(max_age=60)
def stats(request):
    return render(request, "web/stats.html", {
        "stats": pages.slow_stats(),
        "builders": pages.builders_online(),
    })
