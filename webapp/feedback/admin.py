from django.contrib import admin

from webapp.feedback.models import ConsumerCursor, EvaluationSplit, Impression, Judgement, Triplet


@admin.register(Impression)
class ImpressionAdmin(admin.ModelAdmin):
    list_display = ("id", "query", "model_version", "index_version", "offset", "user", "session_key", "created_at")
    list_filter = ("model_version",)
    raw_id_fields = ("query", "user")


@admin.register(Judgement)
class JudgementAdmin(admin.ModelAdmin):
    list_display = ("id", "impression", "image", "kind", "rank", "created_at")
    list_filter = ("kind",)
    raw_id_fields = ("impression", "image")


@admin.register(Triplet)
class TripletAdmin(admin.ModelAdmin):
    """Read-only: triplets are append-only."""

    list_display = ("id", "anchor", "positive", "negative", "source", "created_at")
    list_filter = ("source",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


admin.site.register(ConsumerCursor)
admin.site.register(EvaluationSplit)
