"""/simple/: the package index (Simple Repository API, PEPs 503/691)."""
from django.urls import path, re_path

from builds import simple_views

urlpatterns = [
    path("", simple_views.root, name="simple-root"),
    # Without the slash too: the view redirects to the normalised name with one.
    re_path(r"^(?P<name>[^/]+)/?$", simple_views.detail, name="simple-detail"),
]
