"""Ask for an online update after each committed judgement that appended triplets."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from webapp.feedback.models import Judgement
from webapp.learning.scheduling import request_online_update


@receiver(post_save, sender=Judgement)
def judgement_saved(sender, instance: Judgement, created: bool, **kwargs) -> None:
    if created:
        transaction.on_commit(request_online_update)
