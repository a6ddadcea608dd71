"""Images, model versions (backbone + metric head) and the index versions built from them."""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q

TUNED = "@"  # "<base backbone>@<weights artifact>": a backbone fine-tuned by a batch run


def base_backbone_name(name: str) -> str:
    """The pretrained backbone a (possibly tuned) backbone name starts from."""
    return name.partition(TUNED)[0]


class Image(models.Model):
    """An image Refind has stored: a gallery item, or a query someone uploaded."""

    class Role(models.TextChoices):
        GALLERY = "gallery", "Gallery"
        QUERY = "query", "Query"
        REMOVED = "removed", "Removed"  # files and features deleted; the row stays for append-only triplets

    sha256 = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.GALLERY, db_index=True)
    file = models.FileField(upload_to="originals/", max_length=255)
    thumbnail = models.FileField(upload_to="thumbnails/", max_length=255)
    class Split(models.TextChoices):
        NONE = "", "Not split"
        FEEDBACK = "feedback", "Feedback half"
        HELDOUT = "heldout", "Held-out half"

    label = models.CharField(max_length=200, blank=True, db_index=True)
    split = models.CharField(max_length=10, choices=Split.choices, blank=True, default="", db_index=True,
                             help_text="Evaluation split of a labelled gallery (see split_gallery).")
    original_name = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=16)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    source = models.CharField(max_length=1000, blank=True, default="",
                              help_text="Path the image was imported from (watched folders withdraw by it).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    removed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role} image {self.pk} ({self.original_name or self.sha256[:12]})"


class QueryOwner(models.Model):
    """Who uploaded a query image: a user, or an anonymous session. Only they (and staff) may see it
    (webapp/gallery/privacy.py); the name is the file name *they* gave it."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="owners")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    original_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "user"], condition=Q(user__isnull=False), name="one_owner_user"),
            models.UniqueConstraint(fields=["image", "session_key"], condition=Q(user__isnull=True),
                                    name="one_owner_session"),
        ]

    def __str__(self) -> str:
        return f"query {self.image_id} of {self.user_id or 'session ' + self.session_key[:8]}"


class ModelVersion(models.Model):
    """A metric: the backbone whose cached features it reads plus the head applied to them."""

    class Promotion(models.TextChoices):
        NONE = "", "Not evaluated for promotion"
        PROMOTED = "promoted", "Promoted"
        REJECTED = "rejected", "Rejected by the promotion guard"

    backbone = models.CharField(max_length=255, help_text="Backbone name; '<base>@<artifact>' for tuned weights.")
    head_kind = models.CharField(max_length=50, default="identity")
    head_file = models.CharField(max_length=500, blank=True, help_text="Name in the artifact storage.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    config = models.JSONField(default=dict, blank=True)
    triplet_watermark = models.BigIntegerField(default=0, help_text="Last triplet id this version learned from.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Evaluation report (Recall@K, NMI, MAP@R).")
    promotion = models.CharField(max_length=10, choices=Promotion.choices, blank=True, default="")
    promotion_note = models.TextField(blank=True)
    duration_seconds = models.FloatField(null=True, blank=True, help_text="Training time.")
    is_active = models.BooleanField(default=False)
    pruned_at = models.DateTimeField(null=True, blank=True,
                                     help_text="When retention deleted its artifacts: it can no longer be served.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_model")
        ]

    def __str__(self) -> str:
        return f"v{self.pk} {self.backbone}/{self.head_kind}"

    @classmethod
    def active(cls) -> ModelVersion:
        """The active model; on a new installation, the configured one."""
        version = cls.objects.filter(is_active=True).first()
        return version if version is not None else cls.configured()

    @classmethod
    def configured(cls) -> ModelVersion:
        """The pretrained model (identity head) over the configured features (``REFIND_BACKBONE`` +
        ``REFIND_POOLING``)."""
        # Not get_or_create: two workers starting on a new installation may both create it; the oldest row wins
        # (get_or_create's get() would then fail for ever with MultipleObjectsReturned, stalling every import).
        fields = {"backbone": settings.BACKBONE, "head_kind": "identity", "parent": None}
        version = cls.objects.filter(**fields).order_by("id").first()
        return version or cls.objects.create(**fields, config={"note": "pretrained backbone features"})

    @classmethod
    def serving(cls) -> ModelVersion:
        """What the served index should use: the active model, unless its features are outdated (the pooling
        or the network setting changed), then the pretrained model over the configured features."""
        active = cls.active()
        return cls.configured() if active.features_outdated() else active

    def features_outdated(self) -> bool:
        """True when this version runs on other features than configured: another network or pooling.

        A backbone a run fine-tuned from the configured one (``<configured>@<weights>``) is not outdated.
        """
        return base_backbone_name(self.backbone) != settings.BACKBONE


class IndexVersion(models.Model):
    """A FAISS index file built for one model version over the gallery at one moment."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="indexes")
    path = models.CharField(max_length=500, help_text="Name in the artifact storage.")
    factory = models.CharField(max_length=200)
    dim = models.PositiveIntegerField()
    ntotal = models.PositiveIntegerField()
    is_active = models.BooleanField(default=False)
    load_error = models.TextField(blank=True, help_text="Why a web process could not load this index.")
    gallery_as_of = models.DateTimeField(
        null=True, blank=True, help_text="When the gallery was read: images removed since are filtered at search.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_index")
        ]

    def __str__(self) -> str:
        return f"index {self.pk} ({self.ntotal} vectors, {self.factory})"

    def activate(self) -> None:
        """Make this the index every process serves (and its model the active model)."""
        with transaction.atomic():
            IndexVersion.objects.filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
            ModelVersion.objects.filter(is_active=True).exclude(pk=self.model_version_id).update(is_active=False)
            ModelVersion.objects.filter(pk=self.model_version_id).update(is_active=True)
            IndexVersion.objects.filter(pk=self.pk).update(is_active=True)
        self.is_active = True


class ImportJob(models.Model):
    """One import (a folder, an upload, a watched-folder scan), split into chunks any worker can take."""

    class Status(models.TextChoices):
        RUNNING = "running", "Importing"
        INDEXING = "indexing", "Building the index"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        FOLDER = "folder", "Folder on the server"
        UPLOAD = "upload", "Upload"
        WATCHED = "watched", "Watched folder"

    source = models.CharField(max_length=10, choices=Source.choices)
    root = models.CharField(max_length=1000, help_text="Folder, or the staging prefix in the media storage.")
    build_index = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING, db_index=True)
    total = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=300, blank=True)
    index_version = models.PositiveIntegerField(null=True, blank=True)
    watched_folder = models.ForeignKey("WatchedFolder", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    labels_from_dirs = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.source}, {self.status})"


class ImportChunk(models.Model):
    """Up to CHUNK_SIZE files of a job; claimed by one worker at a time, re-claimable when its heartbeat stops."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    items = models.JSONField(help_text="[path or staged name, label, display name] per file.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    processed = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[file, reason] per failed file.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="one_chunk_number_per_job")]


class WatchedFolder(models.Model):
    """A folder beat rescans: new files are imported; with `withdraw_missing`, vanished files are removed."""

    path = models.CharField(max_length=1000, unique=True)
    labels_from_dirs = models.BooleanField(default=False)
    withdraw_missing = models.BooleanField(default=False, help_text="Remove images whose file disappeared.")
    enabled = models.BooleanField(default=True)
    from_settings = models.BooleanField(default=False, help_text="Registered by REFIND_WATCHED_FOLDERS.")
    last_scan_at = models.DateTimeField(null=True, blank=True)
    last_scan = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["path"]

    def __str__(self) -> str:
        return self.path
