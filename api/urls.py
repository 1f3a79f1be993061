from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView

from api import views
from api.exceptions import not_found


class BuildIdConverter:
    """A build id: digits that fit the database's bigint; anything else matches no
    endpoint (a JSON 404 from not_found)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        return str(value)


register_converter(BuildIdConverter, "build_id")

urlpatterns = [
    path("v1/claim/", views.Claim.as_view(), name="api-claim"),
    path("v1/packages/", views.Packages.as_view(), name="api-packages"),
    path("v1/builds/<build_id:build_id>/heartbeat/", views.Heartbeat.as_view(),
         name="api-heartbeat"),
    path("v1/builds/<build_id:build_id>/files/<str:filename>", views.UploadFile.as_view(),
         name="api-upload"),
    path("v1/builds/<build_id:build_id>/log/", views.UploadLog.as_view(), name="api-log"),
    path("v1/builds/<build_id:build_id>/finish/", views.Finish.as_view(), name="api-finish"),
    path("v1/builds/<build_id:build_id>/release/", views.Release.as_view(), name="api-release"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Last: every other /api/ path is a JSON 404, not an HTML page or a slash redirect.
    re_path(r"^.*$", not_found, name="api-not-found"),
]
