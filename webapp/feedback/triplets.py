"""Judgements → triplets: the one place the rules live (documented in docs/feedback.md).

Direct triplets, anchor = the impression's query:
- a positive judgement (click or "similar") on p pairs p with every negative of the same impression:
  results marked "not similar", and (strategy ``skip_above``) results shown above p that have no
  positive judgement yet — at most FEEDBACK_MAX_SKIP_ABOVE of them, nearest to p first;
- a "not similar" verdict on n pairs n with every positive of the same impression.
Transitive triplets (OAHU paper), from the relations all stored triplets assert (x~p and x≁n for a
triplet (x, p, n); ~ is symmetric): a~p and p≁m give (a, p, m); a~p and p~q give a~q, hence (a, q, n)
for a's negatives n; a≁n and q~a give (q, a, n). At most FEEDBACK_MAX_TRANSITIVE per judgement.
Positives and negatives are always gallery images; a triplet's three members always differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from webapp.feedback.models import Impression, Judgement, Triplet, TripletLog
from webapp.gallery.models import Image

Key = tuple[int, int, int]


class FeedbackRejected(ValueError):
    """The judgement cannot be recorded; the message says why (HTTP 400)."""


class FeedbackConflict(FeedbackRejected):
    """The result already has the opposite explicit verdict (HTTP 409)."""


@dataclass(frozen=True)
class Recorded:
    judgement: Judgement
    created: bool
    triplets_created: int


def record_judgement(impression: Impression, image_id: int, kind: str) -> Recorded:
    """Store a judgement once and append the triplets it implies, in one transaction."""
    if kind not in Judgement.Kind.values:
        raise FeedbackRejected(f"judgement must be one of {', '.join(Judgement.Kind.values)}.")
    rank = impression.rank_of(image_id)
    if rank is None:
        raise FeedbackRejected(f"Image {image_id} was not shown in impression {impression.pk}.")
    explicit = kind != Judgement.Kind.CLICK
    try:
        with transaction.atomic():
            TripletLog.objects.select_for_update().get_or_create(name="triplets")
            existing = Judgement.objects.filter(impression=impression, image_id=image_id, explicit=explicit).first()
            if existing is not None:
                return _repeat(existing, kind)
            judgement = Judgement.objects.create(
                impression=impression, image_id=image_id, kind=kind, explicit=explicit, rank=rank
            )
            created = _append(judgement, direct_triplets(judgement))
            created += _append(judgement, transitive_triplets(judgement), Triplet.Source.TRANSITIVE)
    except IntegrityError:  # the same judgement arrived twice at once: the first one won
        existing = Judgement.objects.get(impression=impression, image_id=image_id, explicit=explicit)
        return _repeat(existing, kind)
    return Recorded(judgement, True, created)


def _repeat(existing: Judgement, kind: str) -> Recorded:
    if existing.kind != kind:
        raise FeedbackConflict(
            f"Image {existing.image_id} is already marked {existing.get_kind_display().lower()} on this page."
        )
    return Recorded(existing, False, 0)


def direct_triplets(judgement: Judgement) -> dict[Key, str]:
    """Triplets from one impression's judgements, keyed (anchor, positive, negative) → source."""
    impression = judgement.impression
    anchor = impression.query_id
    siblings = list(impression.judgements.all())
    positives = {j.image_id for j in siblings if j.positive}
    explicit_negatives = {j.image_id for j in siblings if j.kind == Judgement.Kind.DISSIMILAR}
    found: dict[Key, str] = {}
    if judgement.positive:
        p = judgement.image_id
        for n in explicit_negatives:
            found[(anchor, p, n)] = Triplet.Source.EXPLICIT
        if settings.FEEDBACK_NEGATIVES == "skip_above":
            above = impression.shown[: judgement.rank - impression.offset - 1]
            skipped = [n for n in reversed(above) if n not in positives][: settings.FEEDBACK_MAX_SKIP_ABOVE]
            source = Triplet.Source.CLICK if judgement.kind == Judgement.Kind.CLICK else Triplet.Source.EXPLICIT
            for n in skipped:
                found.setdefault((anchor, p, n), source)
    else:
        for p in positives:
            found[(anchor, p, judgement.image_id)] = Triplet.Source.EXPLICIT
    return {key: source for key, source in found.items() if _valid(key)}


def transitive_triplets(judgement: Judgement) -> dict[Key, str]:
    """Triplets inferred through stored relations, at most FEEDBACK_MAX_TRANSITIVE of them."""
    limit = settings.FEEDBACK_MAX_TRANSITIVE
    if limit <= 0:
        return {}
    a, x = judgement.impression.query_id, judgement.image_id
    candidates: list[Key] = []
    if judgement.positive:
        candidates += [(a, x, m) for m in _negatives_of(x)]
        a_negatives = _negatives_of(a)
        candidates += [(a, q, n) for q in _similar_to(x) for n in a_negatives]
    else:
        candidates += [(q, a, x) for q in _similar_to(a)]
    existing = _existing(candidates)
    gallery = _gallery_ids({i for _, p, n in candidates for i in (p, n)})
    result: dict[Key, str] = {}
    for key in candidates:
        if len(result) >= limit:
            break
        if key not in existing and _valid(key) and key[1] in gallery and key[2] in gallery:
            result[key] = Triplet.Source.TRANSITIVE
    return result


def _gallery_ids(ids: set[int]) -> set[int]:
    return set(Image.objects.filter(pk__in=ids, role=Image.Role.GALLERY).values_list("id", flat=True))


def _negatives_of(image_id: int) -> list[int]:
    return sorted(set(Triplet.objects.filter(anchor_id=image_id).values_list("negative_id", flat=True)))


def _similar_to(image_id: int) -> list[int]:
    """Images related to `image_id` by ~ (either direction) in stored triplets or positive judgements."""
    forward = Triplet.objects.filter(anchor_id=image_id).values_list("positive_id", flat=True)
    backward = Triplet.objects.filter(positive_id=image_id).values_list("anchor_id", flat=True)
    judged = Judgement.objects.filter(Q(impression__query_id=image_id) & ~Q(kind=Judgement.Kind.DISSIMILAR))
    judged_back = Judgement.objects.filter(Q(image_id=image_id) & ~Q(kind=Judgement.Kind.DISSIMILAR))
    related = {*forward, *backward, *judged.values_list("image_id", flat=True),
               *judged_back.values_list("impression__query_id", flat=True)}
    related.discard(image_id)
    return sorted(related)


def _valid(key: Key) -> bool:
    anchor, positive, negative = key
    return len({anchor, positive, negative}) == 3


def _existing(keys: Iterable[Key]) -> set[Key]:
    keys = list(keys)
    if not keys:
        return set()
    anchors = {k[0] for k in keys}
    rows = Triplet.objects.filter(anchor_id__in=anchors).values_list("anchor_id", "positive_id", "negative_id")
    return set(rows)


def _append(judgement: Judgement, found: dict[Key, str], source: str | None = None) -> int:
    """Insert the new ones (positives and negatives must be gallery images); return how many."""
    if not found:
        return 0
    gallery = _gallery_ids({i for _, p, n in found for i in (p, n)})
    existing = _existing(found)
    new = [
        Triplet(anchor_id=a, positive_id=p, negative_id=n, source=source or kind, judgement=judgement)
        for (a, p, n), kind in found.items()
        if (a, p, n) not in existing and p in gallery and n in gallery
    ]
    Triplet.objects.bulk_create(new)
    return len(new)
