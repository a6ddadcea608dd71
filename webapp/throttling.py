"""Rate limits on search and feedback: DRF's scoped throttle for the API, the same limits for htmx views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.throttling import ScopedRateThrottle


def throttled(scope: str) -> Callable:
    """Decorate a Django view with the rate of `scope` (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        holder = type("ScopedView", (), {"throttle_scope": scope})()

        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            throttle = ScopedRateThrottle()
            if not throttle.allow_request(request, holder):
                wait = int(throttle.wait() or 1)
                response = render(request, "_too_many.html", {"wait": wait}, status=429)
                response["Retry-After"] = str(wait)
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
