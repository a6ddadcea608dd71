from django.urls import path
from rest_framework.routers import SimpleRouter

from webapp.gallery.api import ImageViewSet, ImportJobViewSet, QueryImageView

router = SimpleRouter()
router.register("images", ImageViewSet, basename="image")
router.register("imports", ImportJobViewSet, basename="import")
urlpatterns = [*router.urls, path("queries/<int:image_id>/", QueryImageView.as_view(), name="query-image")]
