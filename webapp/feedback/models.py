"""What users were shown (impressions), what they said about it (judgements) and the triplets derived."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from webapp.gallery.models import Image, ModelVersion


class Impression(models.Model):
    """One results page as shown: the query, the ranked image ids, the model, and who asked."""

    query = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="impressions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="impressions")
    index_version = models.PositiveIntegerField()
    shown = models.JSONField(help_text="Image ids in rank order, starting at rank offset + 1.")
    offset = models.PositiveIntegerField(default=0)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"impression {self.pk} of query {self.query_id}"

    def rank_of(self, image_id: int) -> int | None:
        """1-based rank of an image on this page, or None if it was not shown."""
        try:
            return self.offset + self.shown.index(image_id) + 1
        except ValueError:
            return None


class Judgement(models.Model):
    """A click or an explicit verdict on one shown result. At most one live click and one live verdict per
    result; a changed or undone verdict is kept, marked retracted (its triplets too: TripletRetraction)."""

    class Kind(models.TextChoices):
        CLICK = "click", "Click"
        SIMILAR = "similar", "Similar"
        DISSIMILAR = "dissimilar", "Not similar"

    impression = models.ForeignKey(Impression, on_delete=models.PROTECT, related_name="judgements")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="judgements")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    explicit = models.BooleanField(help_text="similar/dissimilar (one verdict per result) vs click")
    rank = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    retracted_at = models.DateTimeField(null=True, blank=True, help_text="When the user changed or undid it.")
    derived = models.BooleanField(default=False, help_text="Its triplets are appended (webapp/feedback/triplets.py).")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["impression", "image", "explicit"], name="one_live_judgement_per_kind",
                                    condition=Q(retracted_at__isnull=True)),
        ]
        indexes = [models.Index(fields=["id"], condition=Q(derived=False), name="judgement_not_derived")]

    def __str__(self) -> str:
        return f"{self.kind} on image {self.image_id} (impression {self.impression_id})"

    @property
    def positive(self) -> bool:
        return self.kind != self.Kind.DISSIMILAR


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Triplets are append-only.")

    def delete(self):
        raise TypeError("Triplets are append-only.")


class Triplet(models.Model):
    """(anchor, positive, negative): the anchor is more similar to the positive than to the negative.

    Append-only; the primary key is the order consumers read in (see webapp/feedback/consumer.py).
    """

    class Source(models.TextChoices):
        CLICK = "click", "Click (skip-above)"
        EXPLICIT = "explicit", "Explicit verdict"
        TRANSITIVE = "transitive", "Transitive"
        LABEL = "label", "Labels"

    anchor = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    positive = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    negative = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices, db_index=True)
    judgement = models.ForeignKey(Judgement, null=True, blank=True, on_delete=models.PROTECT, related_name="triplets")
    generation = models.PositiveSmallIntegerField(
        default=0, help_text="How many earlier copies of this triplet were retracted (a verdict given again).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["anchor", "positive", "negative", "generation"], name="unique_triplet"),
            models.CheckConstraint(
                condition=~Q(positive=F("negative")) & ~Q(anchor=F("positive")) & ~Q(anchor=F("negative")),
                name="triplet_members_differ",
            ),
        ]

    def __str__(self) -> str:
        return f"({self.anchor_id}, +{self.positive_id}, -{self.negative_id}) from {self.source}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise TypeError("Triplets are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Triplets are append-only.")


class TripletRetraction(models.Model):
    """A triplet no learner may use any more: the verdict it came from was changed or undone.

    Append-only like triplets; `webapp.feedback.usable.usable_triplets` leaves retracted triplets out.
    """

    triplet = models.OneToOneField(Triplet, primary_key=True, on_delete=models.PROTECT, related_name="retraction")
    judgement = models.ForeignKey(Judgement, on_delete=models.PROTECT, related_name="retractions",
                                  help_text="The retracted judgement that caused it.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"triplet {self.triplet_id} retracted (judgement {self.judgement_id})"


class TripletLog(models.Model):
    """A single row locked while triplets are inserted, so ids are assigned in commit order."""

    name = models.CharField(max_length=20, unique=True, default="triplets")


class ConsumerCursor(models.Model):
    """How far a triplet consumer (a learner) has got, and the state artifact that includes it."""

    name = models.CharField(max_length=100, unique=True)
    watermark = models.BigIntegerField(default=0, help_text="Last triplet id consumed into `artifact`.")
    artifact = models.CharField(max_length=500, blank=True, help_text="Name in the artifact storage.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at triplet {self.watermark}"


class EvaluationSplit(models.Model):
    """How the labelled gallery was last split (membership is stored on each image: Image.split)."""

    seed = models.IntegerField()
    feedback_fraction = models.FloatField()
    feedback_count = models.PositiveIntegerField()
    heldout_count = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class ClickOffset(models.Model):
    """Click memory: how far judgements have moved one gallery image in one feature space (retrieval/click_memory.py).

    `vector` is float32 bytes in the space of L2-normalised features of `space` (a backbone name);
    `judgement` is the last judgement that moved it (what processes reload after: webapp/feedback/memory.py).
    """

    space = models.CharField(max_length=500)
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    vector = models.BinaryField()
    judgement = models.BigIntegerField(db_index=True, help_text="Id of the last judgement applied to it.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "image"], name="one_offset_per_space_image")]
        indexes = [models.Index(fields=["space", "judgement"])]

    def __str__(self) -> str:
        return f"offset of image {self.image_id} in {self.space}"
