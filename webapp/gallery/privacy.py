"""Query images are private: only whoever uploaded one (a user, or an anonymous session) and staff may see it,
on every page, API and media URL. Everyone else gets the same 404 as for an id that does not exist.

Views use `can_view(image, request)` / `visible_or_404(request, image_id)`; uploads call `record_upload`.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest

from webapp.gallery.models import Image, QueryOwner

NOT_FOUND = "No image with this id."


def requester(request: HttpRequest, *, create: bool = False) -> tuple[object | None, str]:
    """(user, session key) of whoever is asking. An anonymous visitor gets a session only when `create`
    (they are about to own something: a search); merely asking never writes a session row."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user, ""
    session = getattr(request, "session", None)
    if session is None:
        return None, ""
    if create and not session.session_key:
        session.save()
    return None, session.session_key or ""


def owners_filter(request: HttpRequest, prefix: str = "") -> Q | None:
    """A filter on rows owned by this requester (`prefix` leads to the user / session_key fields), or None
    when the requester can own nothing (anonymous without a session)."""
    user, session_key = requester(request)
    if user is not None:
        return Q(**{f"{prefix}user": user})
    if session_key:
        return Q(**{f"{prefix}user": None, f"{prefix}session_key": session_key})
    return None


def is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


def can_view(image: Image, request: HttpRequest) -> bool:
    """Gallery images are public; a query image only to its uploaders and staff."""
    if image.role == Image.Role.GALLERY or is_staff(request):
        return True
    mine = _query_of(request)
    return mine is not None and Image.objects.filter(mine, pk=image.pk).exists()


def owns_query(request: HttpRequest, image_id: int) -> bool:
    """Whether this requester uploaded (or searched with) the query image `image_id`; staff own none."""
    mine = _query_of(request)
    return mine is not None and Image.objects.filter(mine, pk=image_id, role=Image.Role.QUERY).exists()


def _query_of(request: HttpRequest) -> Q | None:
    """Images this requester uploaded, or was shown results for (impressions from before owners were recorded
    count: only an image's uploaders can search with it)."""
    uploaded, shown = owners_filter(request, "owners__"), owners_filter(request, "impressions__")
    return None if uploaded is None else uploaded | shown


def visible(request: HttpRequest) -> QuerySet[Image]:
    """The images this requester may see."""
    if is_staff(request):
        return Image.objects.all()
    mine = _query_of(request)
    gallery = Q(role=Image.Role.GALLERY)
    return Image.objects.filter(gallery | mine).distinct() if mine is not None else Image.objects.filter(gallery)


def visible_or_404(request: HttpRequest, image_id: int) -> Image:
    """The image, as this requester may see it (a query shows the requester's own file name), or Http404 —
    the same answer for an image that does not exist and one that is not theirs."""
    image = Image.objects.filter(pk=image_id).first()
    if image is None or not can_view(image, request):
        raise Http404(NOT_FOUND)
    return for_viewer(image, request)


def for_viewer(image: Image, request: HttpRequest) -> Image:
    """A query image carries the file name *this* uploader gave it (another uploader's name stays theirs)."""
    if image.role == Image.Role.QUERY and not is_staff(request):
        mine = owners_filter(request)
        own = QueryOwner.objects.filter(mine, image=image).order_by("-id").first() if mine is not None else None
        image.original_name = own.original_name if own is not None else ""
    return image


def record_upload(image: Image, request: HttpRequest, original_name: str = "") -> None:
    """The requester uploaded `image` as a query: they may see it from now on."""
    if image.role != Image.Role.QUERY:
        return  # the same bytes are in the gallery: public anyway
    user, session_key = requester(request, create=True)
    if user is None and not session_key:
        return
    QueryOwner.objects.get_or_create(image=image, user=user, session_key=session_key,
                                     defaults={"original_name": original_name[:255]})
    for_viewer(image, request)


def media_visible(name: str, request: HttpRequest) -> bool:
    """May this requester fetch the stored file `name` (originals/…, thumbnails/…)? Files are named by the
    SHA-256 of the original, so the image they belong to is found from the name."""
    sha256 = name.rsplit("/", 1)[-1].split(".", 1)[0]
    image = Image.objects.filter(sha256=sha256).first() if len(sha256) == 64 else None
    return image is None or can_view(image, request)
