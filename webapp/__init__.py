"""The Django project: settings, URLs, the Celery app, the runtime object and the apps (gallery, search,
feedback, learning)."""

from webapp.celery import app as celery_app

__all__ = ["celery_app"]
