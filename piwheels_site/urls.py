from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("simple/", include("builds.simple_urls")),
    path("files/", include("builds.files_urls")),
    path("", include("builds.urls")),
]
