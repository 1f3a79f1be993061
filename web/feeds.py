"""Atom feeds of new wheels: the whole farm's, and one per project (a maintainer follows
their project in a feed reader). Newest first by publication (File ids grow with it)."""
from django.contrib.syndication.views import Feed
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from builds import storage
from builds.models import File
from packages.models import Project

ENTRIES = 50


def _files():
    return (File.objects.select_related("build__version__project", "build__abi")
            .filter(build__version__removed=False)
            .exclude(build__version__project__upstream_status="quarantined")
            .order_by("-id"))


class NewWheelsFeed(Feed):
    feed_type = Atom1Feed
    title = "piwheels: new wheels"
    subtitle = "Wheels for the Raspberry Pi, newest first, as the farm publishes them."

    def link(self):
        return reverse("web-home")

    def items(self):
        return _files()[:ENTRIES]

    def item_title(self, f):
        version = f.build.version
        return f"{version.project.name} {version.version} ({f.build.abi.tag})"

    def item_description(self, f):
        where = f" on {f.os_release}" if f.os_release else ""
        return f"{f.filename}: built for {f.build.abi.tag}{where}, {f.size:,} bytes."

    def item_link(self, f):
        version = f.build.version
        return (reverse("web-project", args=[version.project.normalized_name])
                + f"#v-{version.version}")

    def item_guid(self, f):
        # the file's URL: one name, one file, for ever
        return storage.file_url(f.build.version.project.normalized_name, f.filename)

    item_guid_is_permalink = False

    def item_pubdate(self, f):
        return f.uploaded

    def item_updateddate(self, f):
        return f.uploaded


class ProjectFeed(NewWheelsFeed):
    def get_object(self, request, name):
        return get_object_or_404(Project, normalized_name=name)

    def title(self, project):
        return f"piwheels: new wheels of {project.name}"

    def subtitle(self, project):
        return f"Wheels of {project.name} for the Raspberry Pi, newest first."

    def link(self, project):
        return reverse("web-project", args=[project.normalized_name])

    def items(self, project):
        return _files().filter(build__version__project=project)[:ENTRIES]
