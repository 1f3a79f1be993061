from django.urls import path

from web import views

urlpatterns = [
    path("", views.home, name="web-home"),
    path("stats/", views.stats, name="web-stats"),
    path("search/", views.search, name="web-search"),
    path("project/<str:name>/", views.project, name="web-project"),
    path("project/<str:name>/json/", views.project_json, name="web-project-json"),
    path("logs/<int:build_id>/", views.build_log, name="web-log"),
    path("failures/", views.failures_overview, name="web-failures"),
    path("logs/<int:build_id>/whole.log.gz", views.whole_log, name="web-whole-log"),
]
