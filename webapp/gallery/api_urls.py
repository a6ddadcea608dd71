from rest_framework.routers import SimpleRouter

from webapp.gallery.api import ImageViewSet

router = SimpleRouter()
router.register("images", ImageViewSet, basename="image")
urlpatterns = router.urls
