"""/simple/: the package index (Simple Repository API, PEPs 503/691)."""
from django.urls import path, re_path

from index import views

urlpatterns = [
    path("", views.root, name="simple-root"),
    # Without the slash too: the view redirects to the normalised name with one.
    re_path(r"^(?P<name>[^/]+)/?$", views.detail, name="simple-detail"),
]
