from django.urls import path

from webapp.feedback import views

app_name = "feedback"
urlpatterns = [
    path("feedback/", views.judge, name="judge"),
    path("feedback/viewer/", views.viewer, name="viewer"),
]
