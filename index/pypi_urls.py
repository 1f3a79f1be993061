"""/pypi/<name>/json: PyPI's JSON API of a project, for mirrors (bandersnatch)."""
from django.urls import re_path

from index import views

urlpatterns = [
    re_path(r"^(?P<name>[^/]+)/json/?$", views.pypi_json, name="pypi-json"),
]
