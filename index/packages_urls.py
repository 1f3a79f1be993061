"""/packages/<name>/<file>: the wheels of /files/ again, where mirrors look for them
(bandersnatch takes only URLs under /packages/ from a JSON API and keeps that path)."""
from django.urls import re_path

from index import files

urlpatterns = [
    re_path(r"^(?P<name>[^/]+)/(?P<filename>[^/]+\.whl)$", files.wheel, name="packages-wheel"),
]
