"""URL map: the search pages, the API under /api/v1/, the schema and docs, and the admin."""

from django.conf import settings
from django.contrib import admin
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views.defaults import page_not_found
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from webapp.artifacts import local_root
from webapp.gallery import privacy


def media(request: HttpRequest, path: str) -> HttpResponse:
    """Media from a local media storage (its folder is read per request); remote storages serve their own
    URLs (`storage.url`). Put a web server or a CDN in front of it at scale."""
    root = local_root(default_storage)
    if root is None:
        raise Http404("Media is served by the media storage, not by this server.")
    if not privacy.media_visible(path, request):  # someone else's query image: as if it did not exist
        raise Http404(privacy.NOT_FOUND)
    return serve(request, path, document_root=root)


urlpatterns = [
    path("", include("webapp.search.urls")),
    path("", include("webapp.feedback.urls")),
    path("", include("webapp.learning.urls")),
    path("", include("webapp.gallery.urls")),
    path("api/v1/", include("webapp.search.api_urls")),
    path("api/v1/", include("webapp.feedback.api_urls")),
    path("api/v1/", include("webapp.learning.api_urls")),
    path("api/v1/", include("webapp.gallery.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (no inline script for the CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("favicon.svg"))),
    path("admin/", admin.site.urls),
    path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", media),
]


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """JSON under /api/ (clients parse it), the normal page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


handler404 = not_found
handler400 = "webapp.errors.bad_request"
handler500 = "webapp.errors.server_error"
