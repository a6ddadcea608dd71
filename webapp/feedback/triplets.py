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

A later verdict on the same result replaces the earlier one and undo removes it: the earlier judgement is
marked retracted and every triplet derived from it gets a TripletRetraction row (triplets stay
append-only; `webapp.feedback.usable.usable_triplets` leaves them out for every learner).

Storing and deriving are separate steps, so that a click costs a fraction of a search (docs/feedback.md):
the web request only stores the judgement (`store_judgement`: one insert, no global lock unless it
replaces a verdict) and asks a worker to derive (`webapp.feedback.tasks.derive_triplets`); `derive_pending`
derives every judgement not yet derived in id order, under the `TripletLog` row lock, and marks it
derived in the same transaction: triplet ids stay in commit order and each judgement is derived exactly
once. A judgement sees the sibling judgements and relations stored before it (lower ids), as if each had
been derived when it was stored. `record_judgement` does both at once (scripts, tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass

import django.dispatch
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from webapp.feedback.models import Impression, Judgement, Triplet, TripletLog, TripletRetraction
from webapp.feedback.usable import usable_triplets
from webapp.gallery.models import Image

Key = tuple[int, int, int]
DERIVE_BATCH = 100  # judgements derived per transaction (the lock is released in between)

# Sent after the commit of a derivation that appended triplets (the online learner listens).
triplets_appended = django.dispatch.Signal()


class FeedbackRejected(ValueError):
    """The judgement cannot be recorded; the message says why (HTTP 400)."""


@dataclass(frozen=True)
class Recorded:
    judgement: Judgement
    created: bool
    triplets_created: int
    triplets_retracted: int = 0


def record_judgement(impression: Impression, image_id: int, kind: str) -> Recorded:
    """Store a judgement and derive its triplets now (after any judgement still waiting to be derived)."""
    recorded = store_judgement(impression, image_id, kind)
    if not recorded.created:
        return recorded
    derive_pending()
    made = Triplet.objects.filter(judgement=recorded.judgement).count()
    return Recorded(recorded.judgement, True, made, recorded.triplets_retracted)


def store_judgement(impression: Impression, image_id: int, kind: str) -> Recorded:
    """Store a judgement once, not yet derived (`derive_pending` appends its triplets). A verdict opposite
    to the result's live one replaces it (the old one and its triplets are retracted, under the lock)."""
    if kind not in Judgement.Kind.values:
        raise FeedbackRejected(f"judgement must be one of {', '.join(Judgement.Kind.values)}.")
    rank = impression.rank_of(image_id)
    if rank is None:
        raise FeedbackRejected(f"Image {image_id} was not shown in impression {impression.pk}.")
    explicit = kind != Judgement.Kind.CLICK
    if not explicit:  # a click has one kind: a live one already there is a repeat, which the unique constraint reports
        return _insert_once(impression, image_id, kind, rank)
    try:
        with transaction.atomic():
            existing = _live(impression, image_id, explicit).first()
            retracted = 0
            if existing is not None:
                TripletLog.objects.select_for_update().get_or_create(name="triplets")
                existing = _live(impression, image_id, explicit).first()  # again, under the lock
            if existing is not None and existing.kind == kind:
                return Recorded(existing, False, 0)
            if existing is not None:
                retracted = _retract(existing)
            judgement = Judgement.objects.create(
                impression=impression, image_id=image_id, kind=kind, explicit=explicit, rank=rank
            )
    except IntegrityError:  # the same judgement arrived twice at once: the first one won
        existing = _live(impression, image_id, explicit).get()
        return Recorded(existing, False, 0)
    return Recorded(judgement, True, 0, retracted)


def _insert_once(impression: Impression, image_id: int, kind: str, rank: int) -> Recorded:
    """Insert a click, or find the one already there. A single INSERT needs no transaction of its own: outside
    one it commits by itself (no BEGIN and COMMIT round trips on the click's path); inside one a savepoint
    keeps the surrounding transaction usable when the unique constraint refuses it."""
    in_transaction = transaction.get_connection().in_atomic_block
    try:
        with transaction.atomic() if in_transaction else nullcontext():
            judgement = Judgement.objects.create(
                impression=impression, image_id=image_id, kind=kind, explicit=False, rank=rank
            )
    except IntegrityError:  # clicked before, or the same click arrived twice at once: the first one won
        return Recorded(_live(impression, image_id, explicit=False).get(), False, 0)
    return Recorded(judgement, True, 0)


def derive_pending(batch: int = DERIVE_BATCH) -> int:
    """Append the triplets of every judgement not derived yet, in id order, each exactly once; how many."""
    total = 0
    while True:
        with transaction.atomic():
            TripletLog.objects.select_for_update().get_or_create(name="triplets")
            pending = list(Judgement.objects.filter(derived=False).select_related("impression").order_by("id")[:batch])
            if not pending:
                break
            made = 0
            for judgement in pending:
                if judgement.retracted_at is None:  # a replaced verdict that was never derived gives nothing
                    made += _append(judgement, direct_triplets(judgement))
                    made += _append(judgement, transitive_triplets(judgement), Triplet.Source.TRANSITIVE)
            Judgement.objects.filter(pk__in=[j.pk for j in pending]).update(derived=True)
            if made:
                transaction.on_commit(lambda count=made: triplets_appended.send(sender=Triplet, count=count))
        total += made
    return total


def undo_verdict(impression: Impression, image_id: int) -> int | None:
    """Remove the result's live similar / not-similar verdict; the number of triplets retracted, or None if
    it had none."""
    with transaction.atomic():
        TripletLog.objects.select_for_update().get_or_create(name="triplets")
        existing = _live(impression, image_id, explicit=True).first()
        return None if existing is None else _retract(existing)


def live_verdicts(impression: Impression) -> dict[int, str]:
    """image id → its live explicit verdict on this results page."""
    return dict(_live_judgements(impression).filter(explicit=True).values_list("image_id", "kind"))


def _live_judgements(impression: Impression):
    return impression.judgements.filter(retracted_at__isnull=True)


def _live(impression: Impression, image_id: int, explicit: bool):
    return _live_judgements(impression).filter(image_id=image_id, explicit=explicit)


def _retract(judgement: Judgement) -> int:
    """Mark `judgement` retracted and retract every usable triplet whose derivation needed it: its own, and on
    the same page the ones that paired it with another verdict (a "not similar" n gave (a, p, n) to each
    positive p; a positive p gave (a, p, n) to each "not similar" n unless p stays positive by a click)."""
    judgement.retracted_at = timezone.now()
    judgement.save(update_fields=["retracted_at"])
    impression = judgement.impression
    paired = Q(judgement=judgement)
    siblings = Q(judgement__impression=impression, anchor_id=impression.query_id)
    if not judgement.positive:
        paired |= siblings & Q(negative_id=judgement.image_id, source=Triplet.Source.EXPLICIT)
    elif not _live(impression, judgement.image_id, explicit=False).exists():
        paired |= siblings & Q(positive_id=judgement.image_id, judgement__kind=Judgement.Kind.DISSIMILAR)
    ids = list(usable_triplets(Triplet.objects.filter(paired)).values_list("id", flat=True))
    TripletRetraction.objects.bulk_create(TripletRetraction(triplet_id=i, judgement=judgement) for i in ids)
    return len(ids)


def direct_triplets(judgement: Judgement) -> dict[Key, str]:
    """Triplets from one impression's judgements, keyed (anchor, positive, negative) → source."""
    impression = judgement.impression
    anchor = impression.query_id
    siblings = list(_live_judgements(impression).filter(id__lt=judgement.id))
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
        candidates += [(a, q, n) for q in _similar_to(x, judgement.id) for n in a_negatives]
    else:
        candidates += [(q, a, x) for q in _similar_to(a, judgement.id)]
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
    rows = usable_triplets(Triplet.objects.filter(anchor_id=image_id))
    return sorted(set(rows.values_list("negative_id", flat=True)))


def _similar_to(image_id: int, before: int) -> list[int]:
    """Images related to `image_id` by ~ (either direction) in stored triplets or in positive judgements
    stored up to judgement `before` (later ones are derived later)."""
    forward = usable_triplets(Triplet.objects.filter(anchor_id=image_id)).values_list("positive_id", flat=True)
    backward = usable_triplets(Triplet.objects.filter(positive_id=image_id)).values_list("anchor_id", flat=True)
    live = Judgement.objects.filter(retracted_at__isnull=True, id__lte=before).exclude(kind=Judgement.Kind.DISSIMILAR)
    judged = live.filter(impression__query_id=image_id)
    judged_back = live.filter(image_id=image_id)
    related = {*forward, *backward, *judged.values_list("image_id", flat=True),
               *judged_back.values_list("impression__query_id", flat=True)}
    related.discard(image_id)
    return sorted(related)


def _valid(key: Key) -> bool:
    anchor, positive, negative = key
    return len({anchor, positive, negative}) == 3


def _existing(keys: Iterable[Key]) -> set[Key]:
    """The keys among `keys` that a usable triplet already has."""
    keys = list(keys)
    if not keys:
        return set()
    anchors = {k[0] for k in keys}
    rows = usable_triplets(Triplet.objects.filter(anchor_id__in=anchors))
    return set(rows.values_list("anchor_id", "positive_id", "negative_id"))


def _generations(keys: Iterable[Key]) -> dict[Key, int]:
    """How many (retracted) copies of each key exist: the generation a new copy gets."""
    anchors = {k[0] for k in keys}
    rows = (Triplet.objects.filter(anchor_id__in=anchors).values("anchor_id", "positive_id", "negative_id")
            .annotate(copies=Count("id")).values_list("anchor_id", "positive_id", "negative_id", "copies"))
    return {(a, p, n): copies for a, p, n, copies in rows}


def _append(judgement: Judgement, found: dict[Key, str], source: str | None = None) -> int:
    """Insert the new ones (positives and negatives must be gallery images); return how many."""
    if not found:
        return 0
    gallery = _gallery_ids({i for _, p, n in found for i in (p, n)})
    existing = _existing(found)
    generations = _generations(found)
    new = [
        Triplet(anchor_id=a, positive_id=p, negative_id=n, source=source or kind, judgement=judgement,
                generation=generations.get((a, p, n), 0))
        for (a, p, n), kind in found.items()
        if (a, p, n) not in existing and p in gallery and n in gallery
    ]
    Triplet.objects.bulk_create(new)
    return len(new)
