from django.urls import path

from builds import views

urlpatterns = [
    path("", views.home, name="builds-home"),
    path("stats/", views.stats, name="builds-stats"),
    path("search/", views.search, name="builds-search"),
    path("project/<str:name>/", views.project, name="builds-project"),
    path("project/<str:name>/json/", views.project_json, name="builds-project-json"),
    path("logs/<int:build_id>/", views.build_log, name="builds-log"),
]
