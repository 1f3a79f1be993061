"""The build queue, as the catalogue sees it.

A catalogue change (a new release, a skip, a removal) must reach the build queue in the same
command or task; but packages sits below builds, which imports it, so it cannot import builds.
It calls the module named by settings.PIWHEELS_JOBS (builds.catalogue) instead, explicitly and
synchronously, rather than through signals. That module provides:

  refresh(version_ids, priority) -> (queued, dropped); priority "backlog", "new-release" or
      "requested"
  served_filenames(project_id, version=None) -> [filename]
  delete_files(normalized_name, filenames)
  delete_project_dirs(normalized_names)
  delete_builds_of_removed(version_ids) -> number of files deleted
"""
from importlib import import_module

from django.conf import settings


def queue():
    return import_module(settings.PIWHEELS_JOBS)
