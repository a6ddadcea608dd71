"""The Django project: settings, URLs, the Celery app and the apps (gallery, search)."""

from webapp.celery import app as celery_app

__all__ = ["celery_app"]
