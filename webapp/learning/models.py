"""Training runs, the one-run-at-a-time claim, and OAHU's depth weights over time."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.gallery.models import ModelVersion
from webapp.learning.parameters import RunParameters


class TrainingRun(models.Model):
    """One online update or batch retraining, from trigger to promoted / rejected / failed."""

    class Mode(models.TextChoices):
        OAHU = "oahu", "Online (OAHU)"
        BATCH = "batch", "Batch fine-tuning"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PROMOTED = "promoted", "Promoted"
        REJECTED = "rejected", "Rejected by the promotion guard"
        UNCHANGED = "unchanged", "Nothing new to learn"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.PROMOTED, Status.REJECTED, Status.UNCHANGED, Status.FAILED, Status.CANCELLED)

    mode = models.CharField(max_length=10, choices=Mode.choices)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    candidate = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="training_runs")
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.mode}, {self.status})"

    @property
    def parameters(self) -> RunParameters:
        return RunParameters.from_stored(self.mode, self.params)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return (end - self.started_at).total_seconds()


class TrainingLock(models.Model):
    """A single row; `run` is set by a compare-and-swap claim while a run trains."""

    name = models.CharField(max_length=20, unique=True, default="training")
    run = models.OneToOneField(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    claimed_at = models.DateTimeField(null=True, blank=True)


class OnlineSchedule(models.Model):
    """Debounce for online learning: `pending` is set (compare-and-swap) when an update is enqueued."""

    name = models.CharField(max_length=20, unique=True, default="oahu")
    pending = models.BooleanField(default=False)
    requested_at = models.DateTimeField(null=True, blank=True)


class Housekeeping(models.Model):
    """When a worker last ran beat's housekeeping task (webapp/learning/silence.py)."""

    name = models.CharField(max_length=20, unique=True, default="housekeeping")
    ran_at = models.DateTimeField()


class AlphaSnapshot(models.Model):
    """OAHU's depth weights α after some number of triplets (the paper's Figures 7b/8b)."""

    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.CASCADE)
    triplets_seen = models.PositiveIntegerField()
    alpha = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["triplets_seen", "id"]
