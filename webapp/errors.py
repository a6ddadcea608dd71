"""Clean error answers: 503 while the database is unreachable, 413 for oversized requests, JSON under /api/,
never a traceback. Pages are rendered without the request context (which would query the database).

`ANSWERS` maps the exceptions that are answers to a request (not faults) to their HTTP status, once for every
view: API views let them propagate to `api_exception_handler` (the project's DRF handler); page views catch
`ANSWERED` and render `status_of(exc)` their own way."""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.defaults import bad_request as django_bad_request
from django.views.defaults import server_error as django_server_error
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from retrieval.images import ImageRejected, size_message
from webapp.dispatch import NoConsumer
from webapp.gallery.upload_limit import request_limit
from webapp.learning.claims import TrainingBusy
from webapp.learning.parameters import InvalidParameters
from webapp.learning.runs import NotCancellable
from webapp.search.service import SearchUnavailable

logger = logging.getLogger(__name__)
DATABASE_ERRORS = (OperationalError, InterfaceError)
UNAVAILABLE = "The database is unavailable at the moment; please try again in a few seconds."
RETRY_AFTER_SECONDS = 5
REQUEST_LIMITS = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)
ANSWERS: dict[type[Exception], int] = {
    ImageRejected: 400,  # not a usable image; nothing was stored
    InvalidParameters: 400,
    TrainingBusy: 409,  # another run holds the claim
    NoConsumer: 409,  # no worker serves the run's queue (e.g. device=cuda without a GPU worker)
    NotCancellable: 409,  # the run has finished
    SearchUnavailable: 503,  # no index yet, or it cannot be loaded
}
ANSWERED = tuple(ANSWERS)


def status_of(exc: Exception) -> int:
    return next(status for kind, status in ANSWERS.items() if isinstance(exc, kind))


def error_response(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    """JSON `{"detail": message}` under /api/, an htmx fragment or a small standalone page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    fragment = request.headers.get("HX-Request") == "true"
    html = render_to_string("error.html", {"title": title, "message": message, "fragment": fragment})
    return HttpResponse(html, status=status)


def unavailable(request: HttpRequest) -> HttpResponse:
    response = error_response(request, 503, "Refind is briefly unavailable", UNAVAILABLE)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def too_large(request: HttpRequest, size: int) -> HttpResponse:
    message = size_message(size, settings.DATA_UPLOAD_MAX_MEMORY_SIZE, what="request")
    return error_response(request, 413, "Too large", message)


class DatabaseUnavailableMiddleware:
    """A view that loses the database (down, restarting, connection dropped) answers 503, not a 500 page."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        logger.error("Database unavailable during %s %s: %s", request.method, request.path, exception)
        return unavailable(request)


class RequestSizeLimitMiddleware:
    """Refuse a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE (the upload limit plus form fields) from its
    Content-Length with 413, before any of it is read or spooled to disk (staff uploads to the gallery
    may be up to REFIND_MAX_IMPORT_REQUEST_BYTES: webapp/gallery/upload_limit.py)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        if size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE and size > request_limit(request):  # staff gallery uploads
            return too_large(request, size)
        return self.get_response(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400 (Django's request limits and other suspicious requests): JSON under /api/."""
    if request.path.startswith("/api/"):
        detail = str(exception) if isinstance(exception, REQUEST_LIMITS) else "Bad request."
        return JsonResponse({"detail": detail}, status=400)
    return django_bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: database errors outside views (e.g. saving the session) are a 503 too; JSON under /api/."""
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        return unavailable(request)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return django_server_error(request)


def _first_message(errors) -> str:
    if isinstance(errors, dict):
        field, value = next(iter(errors.items()))
        message = _first_message(value)
        return message if field in ("non_field_errors", "detail") else f"{field}: {message}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def api_exception_handler(exc, context):
    """DRF's handler, plus `ANSWERS` as `{"detail": ...}` and validation errors with one readable `detail`
    (and the field `errors`)."""
    if isinstance(exc, ANSWERED):
        body = {"detail": str(exc)}
        if isinstance(exc, InvalidParameters):
            body["errors"] = exc.errors
        return Response(body, status=status_of(exc))
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        response.data = {"detail": _first_message(exc.detail), "errors": exc.detail}
    return response
