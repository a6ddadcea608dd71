"""Repeated failed admin logins from one client lock it out (django-axes), also through a trusted proxy where
each client is told apart by X-Forwarded-For; a forged X-Forwarded-For does not escape the lockout
(issue 11, item 11)."""

from __future__ import annotations

import ipaddress

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db
PASSWORD = "pw-boss-12345-right"


@pytest.fixture
def boss():
    return get_user_model().objects.create_user("boss", password=PASSWORD, is_staff=True)


def _login(client: Client, password: str, **meta) -> int:
    response = client.post("/admin/login/?next=/admin/", {"username": "boss", "password": password}, **meta)
    return response.status_code


def test_five_failures_lock_the_client_out_even_with_the_right_password(boss) -> None:
    client = Client()
    meta = {"REMOTE_ADDR": "203.0.113.7"}
    assert [_login(client, f"wrong-{i}", **meta) for i in range(settings.AXES_FAILURE_LIMIT - 1)] == [200] * 4
    assert _login(client, "wrong-last", **meta) == 429
    assert _login(client, PASSWORD, **meta) == 429  # locked out: the right password does not help now
    for i in range(3):  # forging X-Forwarded-For does not make a new client
        assert _login(client, PASSWORD, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}", **meta) == 429
    assert _login(Client(), PASSWORD, REMOTE_ADDR="203.0.113.8") == 302  # another client logs in


def test_behind_a_trusted_proxy_the_lockout_is_per_client(boss, settings) -> None:
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.2")]
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for i in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), f"wrong-{i}", HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy)
    assert _login(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy) == 429
    assert _login(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy) == 302
