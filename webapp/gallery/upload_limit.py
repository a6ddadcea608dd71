"""Who may send a request larger than the normal upload limit: staff, to the gallery upload endpoint.

Checked from the request's headers before its body is read (webapp/errors.py's size-limit middleware, placed
after Django's authentication middleware), so an anonymous client can never make the server spool a large body."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

UPLOAD_PATHS = frozenset({"/api/v1/images/"})


def request_limit(request: HttpRequest) -> int:
    """The largest body this request may have."""
    if request.method == "POST" and request.path in UPLOAD_PATHS and _is_staff(request):
        return settings.MAX_IMPORT_REQUEST_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _is_staff(request: HttpRequest) -> bool:
    """The API's own rule: a token (DRF's TokenAuthentication, from the header) or else the session's user."""
    try:
        found = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return False
    user = found[0] if found else request.user
    return bool(user.is_active and user.is_staff)
