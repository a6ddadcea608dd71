from django.apps import AppConfig


class GalleryConfig(AppConfig):
    name = "webapp.gallery"
    label = "gallery"
    verbose_name = "Gallery"
