"""Test users shared by the webapp tests."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient


def _boss():
    """The staff user "boss" (created on first use)."""
    return get_user_model().objects.filter(username="boss").first() or get_user_model().objects.create_user(
        "boss", password="pw-boss-12345", is_staff=True)


def staff_api_client() -> APIClient:
    """An API client authenticated as the staff user "boss"."""
    client = APIClient()
    client.force_authenticate(_boss())
    return client


def staff_client() -> Client:
    """A browser-like client logged in as the staff user "boss"."""
    client = Client()
    client.force_login(_boss())
    return client
