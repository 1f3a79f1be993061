from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from api import views

urlpatterns = [
    path("v1/claim/", views.Claim.as_view(), name="api-claim"),
    path("v1/packages/", views.Packages.as_view(), name="api-packages"),
    path("v1/builds/<int:build_id>/heartbeat/", views.Heartbeat.as_view(), name="api-heartbeat"),
    path("v1/builds/<int:build_id>/files/<str:filename>", views.UploadFile.as_view(),
         name="api-upload"),
    path("v1/builds/<int:build_id>/finish/", views.Finish.as_view(), name="api-finish"),
    path("v1/builds/<int:build_id>/release/", views.Release.as_view(), name="api-release"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
]
