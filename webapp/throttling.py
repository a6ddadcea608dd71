"""Rate limits on search and feedback: DRF's scoped throttle for the API, the same limits for htmx views,
keyed on the client's address as `client_ip` finds it (X-Forwarded-For only from REFIND_TRUSTED_PROXIES)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.throttling import ScopedRateThrottle


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def client_ip(request: HttpRequest) -> str:
    """The socket address, unless it is a trusted proxy: then the nearest address in X-Forwarded-For that is
    not a trusted proxy (read from the right: entries further left were written by the client itself)."""
    remote = request.META.get("REMOTE_ADDR", "")
    if not _trusted(remote):
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if not _trusted(address):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return remote  # garbage from the proxy's client: key on the proxy rather than on the garbage
    return forwarded[0] if forwarded else remote


class ClientThrottle(ScopedRateThrottle):
    """DRF's scoped throttle keyed on `client_ip` (DRF's own would believe any X-Forwarded-For)."""

    def get_ident(self, request) -> str:
        return client_ip(request)


def throttled(scope: str) -> Callable:
    """Decorate a Django view with the rate of `scope` (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        holder = type("ScopedView", (), {"throttle_scope": scope})()

        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            throttle = ClientThrottle()
            if not throttle.allow_request(request, holder):
                wait = int(throttle.wait() or 1)
                response = render(request, "_too_many.html", {"wait": wait}, status=429)
                response["Retry-After"] = str(wait)
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
