"""Operators stop and resume building a project or one version of it."""
from packages.catalogue import writing
from packages.models import Project, Version


def get_project(name):
    project = Project.objects.named(name).first()
    if project is None:
        raise LookupError(f"no project named {name!r}")
    return project


def get_version(project, version):
    found = project.versions.filter(version=version).first()
    if found is None:
        raise LookupError(f"{project.name} has no version {version!r}")
    return found


def skip(name, version=None, reason=""):
    """Stop building a project or one version; returns the ids of the versions touched."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    with writing():
        project = get_project(name)
        if version is None:
            Project.objects.filter(id=project.id).update(skip_reason=reason[:400])
            return list(project.versions.values_list("id", flat=True))
        found = get_version(project, version)
        Version.objects.filter(id=found.id).update(skip_reason=reason[:400])
        return [found.id]


def unskip(name, version=None):
    """Resume building a project or one version; returns the ids of the versions touched.
    (A version without an sdist stays unbuildable: it has nothing to build from.)"""
    with writing():
        project = get_project(name)
        if version is None:
            Project.objects.filter(id=project.id).update(skip_reason="")
            return list(project.versions.values_list("id", flat=True))
        found = get_version(project, version)
        Version.objects.filter(id=found.id).update(skip_reason="")
        return [found.id]
