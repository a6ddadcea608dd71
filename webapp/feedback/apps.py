from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "webapp.feedback"
    label = "feedback"
    verbose_name = "Feedback"

    def ready(self) -> None:
        from webapp.feedback import signals  # noqa: F401  (click memory follows each judgement)
