"""Who may send a request larger than the normal upload limit: staff, to the gallery upload endpoint.

Checked from the request's headers before its body is read (webapp/errors.py's size-limit middleware),
so an anonymous client can never make the server spool a large body."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.utils.module_loading import import_string

UPLOAD_PATHS = frozenset({"/api/v1/images/"})


def request_limit(request: HttpRequest) -> int:
    """The largest body this request may have."""
    if request.method == "POST" and request.path in UPLOAD_PATHS and _staff_user_id(request) is not None:
        return settings.MAX_IMPORT_REQUEST_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _staff_user_id(request: HttpRequest) -> int | None:
    user_id = None
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.startswith("Token "):
        from rest_framework.authtoken.models import Token

        user_id = Token.objects.filter(key=header[6:].strip()).values_list("user_id", flat=True).first()
    elif key := request.COOKIES.get(settings.SESSION_COOKIE_NAME):
        store: SessionBase = import_string(f"{settings.SESSION_ENGINE}.SessionStore")(key)
        user_id = store.get("_auth_user_id")
    if user_id is None:
        return None
    return get_user_model().objects.filter(pk=user_id, is_staff=True, is_active=True).values_list(
        "pk", flat=True).first()
