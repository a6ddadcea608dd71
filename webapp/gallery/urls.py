from django.urls import path

from webapp.gallery import views

app_name = "gallery"
urlpatterns = [
    path("dashboard/gallery/", views.gallery, name="manage"),
    path("dashboard/gallery/images/", views.images, name="images"),
    path("dashboard/gallery/imports/", views.import_jobs, name="imports"),
    path("dashboard/gallery/remove/", views.remove, name="remove"),
    path("dashboard/gallery/relabel/", views.relabel, name="relabel"),
    path("dashboard/gallery/<int:image_id>/rename/", views.rename, name="rename"),
    path("dashboard/gallery/folders/", views.add_folder, name="add-folder"),
    path("dashboard/gallery/folders/<int:folder_id>/delete/", views.drop_folder, name="drop-folder"),
]
