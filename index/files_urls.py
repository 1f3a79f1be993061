"""/files/: wheels and their core metadata files (PEP 658)."""
from django.urls import re_path

from index import files

urlpatterns = [
    re_path(
        r"^(?P<name>[^/]+)/(?P<filename>[^/]+\.whl)\.metadata$",
        files.metadata,
        name="files-metadata",
    ),
    re_path(r"^(?P<name>[^/]+)/(?P<filename>[^/]+)$", files.wheel, name="files-wheel"),
]
