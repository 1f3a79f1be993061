from django.urls import path

from web import feeds, views

urlpatterns = [
    path("", views.home, name="web-home"),
    path("stats/", views.stats, name="web-stats"),
    path("search/", views.search_page, name="web-search"),
    path("search/json/", views.search_json, name="web-search-json"),
    path("project/<str:name>/", views.project, name="web-project"),
    path("project/<str:name>/json/", views.project_json, name="web-project-json"),
    path("project/<str:name>/badge.svg", views.project_badge, name="web-project-badge"),
    path("project/<str:name>/feed/", feeds.ProjectFeed(), name="web-project-feed"),
    path("feed/", feeds.NewWheelsFeed(), name="web-feed"),
    path("logs/<int:build_id>/", views.build_log, name="web-log"),
    path("failures/", views.failures_overview, name="web-failures"),
    path("logs/<int:build_id>/whole.log.gz", views.whole_log, name="web-whole-log"),
]
