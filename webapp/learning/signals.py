"""Ask for an online update after each committed derivation that appended triplets."""

from __future__ import annotations

from django.dispatch import receiver

from webapp.feedback.models import Triplet
from webapp.feedback.triplets import triplets_appended


@receiver(triplets_appended, sender=Triplet)
def triplets_were_appended(sender, count: int, **kwargs) -> None:
    from webapp.learning.scheduling import request_online_update

    request_online_update()
