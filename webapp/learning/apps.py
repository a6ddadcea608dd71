from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "webapp.learning"
    label = "learning"
    verbose_name = "Learning"

    def ready(self) -> None:
        from webapp.learning import heads, signals  # noqa: F401  (register trained heads, hook feedback)
        from webapp.learning.parameters import check_settings

        check_settings()
