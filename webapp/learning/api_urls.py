from rest_framework.routers import SimpleRouter

from webapp.learning.api import ModelVersionViewSet, ReportViewSet, TrainingRunViewSet

router = SimpleRouter()
router.register("training-runs", TrainingRunViewSet, basename="training-run")
router.register("model-versions", ModelVersionViewSet, basename="model-version")
router.register("reports", ReportViewSet, basename="report")
urlpatterns = router.urls
