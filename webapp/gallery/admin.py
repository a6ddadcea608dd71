from django.contrib import admin
from django.utils.html import format_html

from webapp.gallery.models import Image, IndexVersion, ModelVersion


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("id", "preview", "role", "label", "original_name", "width", "height", "created_at")
    list_filter = ("role", "label")
    search_fields = ("label", "original_name", "sha256")
    readonly_fields = ("sha256", "file", "thumbnail", "format", "width", "height", "created_at")

    @admin.display(description="Image")
    def preview(self, image: Image) -> str:
        return format_html('<img src="{}" style="height:48px">', image.thumbnail.url)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "backbone", "head_kind", "parent", "is_active", "created_at")


@admin.register(IndexVersion)
class IndexVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "model_version", "factory", "ntotal", "dim", "is_active", "created_at")
