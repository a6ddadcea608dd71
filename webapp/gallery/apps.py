from django.apps import AppConfig


class GalleryConfig(AppConfig):
    name = "webapp.gallery"
    label = "gallery"
    verbose_name = "Gallery"

    def ready(self) -> None:
        from retrieval.images import return_large_blocks_to_the_os

        return_large_blocks_to_the_os()  # decode memory is given back after each image (docs/security.md)
