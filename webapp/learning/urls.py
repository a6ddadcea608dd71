from django.urls import path

from webapp.learning import views

app_name = "learning"
urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/progress/", views.progress, name="progress"),
    path("dashboard/retrain/", views.retrain, name="retrain"),
    path("dashboard/runs/<int:run_id>/cancel/", views.cancel_run, name="cancel"),
    path("dashboard/versions/<int:version_id>/rollback/", views.rollback_version, name="rollback"),
    path("dashboard/versions/rescore/", views.rescore, name="rescore"),
    path("dashboard/demo/remove/", views.remove_demo, name="remove-demo"),
    path("dashboard/plots/<str:name>.png", views.plot, name="plot"),
]
