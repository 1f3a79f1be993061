"""The data of the pages that explain failures: one build's log page (/logs/<id>/) and
the farm's failures by cause (/failures/). Plain dicts for the templates, a fixed number
of queries each."""
from django.urls import reverse

from builds import depwait, failures, logs, storage
from builds.models import Build, BuilderPackages, BuildLog, File

# Lines shown around the line that says why, at the top of a log page.
AROUND = 6


def fix_line(build):
    """One line for people: the cause and the fix, or the builder's reason."""
    if build.cause:
        return failures.summary(build.cause, build.cause_detail, build.apt)
    return build.failure_reason


def first_error(output, detail, around=AROUND):
    """(first line number, lines) around the first line of OUTPUT that holds DETAIL (the
    missing thing, or the error line), or (None, [])."""
    if not detail:
        return None, []
    at = output.find(detail)
    if at < 0:
        return None, []
    line = output.count("\n", 0, at)
    lines = output.split("\n")
    first = max(0, line - around)
    return first + 1, lines[first:line + around + 1]


def log_page(build_id):
    """Everything /logs/<id>/ shows, or None for a build without a log. Three queries:
    the build with its version, project, ABI and builder; its log; the wheels it made."""
    build = (Build.objects.select_related("version__project", "abi", "builder")
             .filter(id=build_id).first())
    if build is None:
        return None
    log = BuildLog.objects.filter(build_id=build_id).values_list("output", "truncated").first()
    if log is None:
        return None
    output, truncated = log
    release = build.os_release
    if not release and build.builder_id:
        release = (BuilderPackages.objects.filter(builder_id=build.builder_id)
                   .values_list("os_release", flat=True).first() or "")
    start, excerpt = first_error(output, build.cause_detail) if build.state == "failed" else (
        None, [])
    project = build.version.project
    wheels = [] if build.state != "succeeded" or project.is_quarantined else [
        {"filename": name, "url": storage.file_url(project.normalized_name, name),
         "superseded_by": superseded_by}
        for name, superseded_by in File.objects.filter(build_id=build.id)
        .order_by("filename").values_list("filename", "superseded_by")
    ]
    return {
        "build_id": build.id,
        "project": project.name,
        "project_url": reverse("web-project", args=[project.normalized_name]),
        "version": build.version.version,
        "abi": build.abi.tag,
        "arch": build.arch,
        "os_release": release,
        "builder": build.builder.name if build.builder else "",
        "started": build.started,
        "duration_seconds": (round(build.duration.total_seconds())
                             if build.duration is not None else None),
        "state": build.state,
        "cause": build.cause,
        "cause_description": failures.DESCRIPTIONS.get(build.cause, ""),
        "fix": fix_line(build) if build.state == "failed" else "",
        "apt": build.apt,
        "waiting_for": build.waiting_for,
        "excerpt_start": start,
        "excerpt": excerpt,
        "output": output,
        "truncated": truncated,
        "wheels": wheels,
        # the whole log as the farm keeps it (gzip), where it is kept apart
        "whole_log_url": (reverse("web-whole-log", args=[build.id])
                          if logs.whole_log_path(build.id).is_file() else ""),
    }


def failures_page():
    """/failures/: failed builds by cause, and the packages to install on the builders,
    sorted by how many builds each would fix."""
    return depwait.overview()
