from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("simple/", include("index.simple_urls")),
    path("files/", include("index.files_urls")),
    path("pypi/", include("index.pypi_urls")),
    path("packages/", include("index.packages_urls")),
    path("", include("web.urls")),
]

# Outside any view (a body too big for a middleware, a bad Host): JSON under /api/.
handler400 = "api.exceptions.bad_request"
handler500 = "api.exceptions.server_error"
