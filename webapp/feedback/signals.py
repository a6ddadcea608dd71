"""Update the click memory after each committed judgement (webapp/feedback/memory.py)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from webapp.feedback.models import Judgement


@receiver(post_save, sender=Judgement)
def judgement_saved(sender, instance: Judgement, created: bool, **kwargs) -> None:
    if created:
        from webapp.feedback.memory import after_commit

        transaction.on_commit(after_commit)
