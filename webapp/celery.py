"""The Celery app. Tasks live in each app's tasks.py; settings come from CELERY_* in settings.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("refind")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
