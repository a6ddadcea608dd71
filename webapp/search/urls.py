from django.urls import path

from webapp.search import views

app_name = "search"
urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search_upload, name="upload"),
    path("images/<int:image_id>/", views.image_detail, name="image"),
    path("images/<int:image_id>/similar/", views.search_similar, name="similar"),
]
