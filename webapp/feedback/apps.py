from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "webapp.feedback"
    label = "feedback"
    verbose_name = "Feedback"
