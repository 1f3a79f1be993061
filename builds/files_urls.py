"""/files/: wheels and their core metadata files (PEP 658)."""
from django.urls import re_path

from builds import files_views

urlpatterns = [
    re_path(
        r"^(?P<name>[^/]+)/(?P<filename>[^/]+\.whl)\.metadata$",
        files_views.metadata,
        name="files-metadata",
    ),
    re_path(r"^(?P<name>[^/]+)/(?P<filename>[^/]+)$", files_views.wheel, name="files-wheel"),
]
