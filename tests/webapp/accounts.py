"""Test users shared by the webapp tests."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework.test import APIClient


def staff_api_client() -> APIClient:
    """An API client authenticated as the staff user "boss" (created on first use)."""
    client = APIClient()
    user = get_user_model().objects.filter(username="boss").first() or get_user_model().objects.create_user(
        "boss", password="pw-boss-12345", is_staff=True)
    client.force_authenticate(user)
    return client
