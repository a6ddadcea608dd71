"""Training-run parameters: one typed object owning their defaults (from settings), validation, the queue a
run goes to, the dashboard form's fields and initial values, and the API's request serializer.

The dashboard, the API and the `retrain` command all parse requests with `RunParameters.parse`; the run
code reads `TrainingRun.parameters`. A value not given takes its default when the run is created (the
process that creates it reads REFIND_BATCH_LOSS and TRAINING_DEVICE), and is stored with the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework import serializers

from training.losses.registry import REGISTRY
from webapp import dispatch

MODES = ("oahu", "batch")  # TrainingRun.Mode's values
DEVICES = ("auto", "cpu", "cuda")
DATA = {"both": "triplets, else labels", "triplets": "triplets", "labels": "labels",
        "clicks": "every click: click-graph components + every-click triplets"}


@dataclass(frozen=True)
class Spec:
    """One parameter: its type, default, bounds or choices, and what the form says about it."""

    name: str
    kind: type
    default: Callable[[], Any]
    choices: Callable[[], Mapping[str, str]] | None = None
    minimum: float | None = None
    maximum: float | None = None
    label: str = ""
    help: str = ""


def _losses() -> dict[str, str]:
    return {name: name for name in sorted(REGISTRY)}


SPECS: tuple[Spec, ...] = (
    Spec("mode", str, lambda: "batch", lambda: {"oahu": "Online (OAHU)", "batch": "Batch fine-tuning"}),
    Spec("loss", str, lambda: settings.BATCH_DEFAULT_LOSS, _losses,
         help="batch mode; default REFIND_BATCH_LOSS"),
    Spec("epochs", int, lambda: 5, minimum=1, maximum=1000),
    Spec("batch_size", int, lambda: 64, minimum=4, maximum=4096),
    Spec("lr", float, lambda: 1e-4, minimum=1e-7, maximum=1.0, label="Learning rate"),
    Spec("device", str, lambda: settings.TRAINING_DEVICE, lambda: {d: d for d in DEVICES},
         help="default TRAINING_DEVICE; cuda runs go to a GPU worker"),
    Spec("backbone", bool, lambda: False, label="Fine-tune the backbone too",
         help="batch mode; re-extracts the gallery — meant for a GPU worker"),
    Spec("data", str, lambda: "both", lambda: DATA),
    Spec("seed", int, lambda: 0, minimum=0, maximum=2**31 - 1, label="Random seed"),
)
BATCH_ONLY = ("loss", "epochs", "batch_size", "lr", "device", "backbone", "data", "seed")


class InvalidParameters(ValueError):
    """`errors` maps each bad field to its messages; str() is the first of them."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {field: [str(m) for m in messages] for field, messages in errors.items()}
        field, messages = next(iter(self.errors.items()))
        super().__init__(messages[0] if field in ("non_field_errors", "detail") else f"{field}: {messages[0]}")


@dataclass(frozen=True)
class RunParameters:
    """What a training run does. Build with `parse` (requests) or `of` (code); both validate."""

    mode: str
    loss: str
    epochs: int
    batch_size: int
    lr: float
    device: str
    backbone: bool
    data: str
    seed: int
    trigger: str = "manual"  # who asked: manual, feedback (not a request parameter)

    @classmethod
    def defaults(cls, mode: str = "batch") -> RunParameters:
        """Every parameter at its default (settings as they are now)."""
        return cls(**{spec.name: spec.default() for spec in SPECS if spec.name != "mode"}, mode=mode)

    @classmethod
    def parse(cls, data: Any, trigger: str = "manual") -> RunParameters:
        """Validate request data (a dict or a form's QueryDict); raises InvalidParameters."""
        serializer = RunParametersSerializer(data=data)
        if not serializer.is_valid():
            raise InvalidParameters(serializer.errors)
        given = serializer.validated_data
        return cls(**{spec.name: given.get(spec.name, spec.default()) for spec in SPECS}, trigger=trigger)

    @classmethod
    def of(cls, mode: str, trigger: str = "manual", **values: Any) -> RunParameters:
        return cls.parse({"mode": mode, **values}, trigger=trigger)

    @classmethod
    def from_stored(cls, mode: str, stored: Mapping[str, Any]) -> RunParameters:
        """The parameters a run was created with (TrainingRun.params); absent ones at their defaults."""
        names = {field.name for field in fields(cls)}
        return cls(**{**asdict(cls.defaults(mode)), **{k: v for k, v in stored.items() if k in names},
                      "mode": mode})

    def stored(self) -> dict[str, Any]:
        """What TrainingRun.params keeps: the trigger, and for batch runs every batch parameter."""
        values = asdict(self)
        del values["mode"]
        if self.mode != "batch":
            return {"trigger": self.trigger}
        return values

    @property
    def queue(self) -> str:
        return dispatch.run_queue(self.mode, self.device)


def check_settings() -> None:
    """Startup check of the settings that give defaults: REFIND_BATCH_LOSS must name a registry loss."""
    if settings.BATCH_DEFAULT_LOSS not in REGISTRY:
        raise ImproperlyConfigured(f"REFIND_BATCH_LOSS: {settings.BATCH_DEFAULT_LOSS!r} is not a loss; "
                                   f"choose one of {', '.join(sorted(REGISTRY))}.")


def _serializer_field(spec: Spec) -> serializers.Field:
    options: dict[str, Any] = {"required": spec.name == "mode", "help_text": spec.help or None}
    if spec.choices is not None:
        return serializers.ChoiceField(choices=list(spec.choices()), **options)
    if spec.kind is bool:
        return serializers.BooleanField(**options)
    kind = serializers.IntegerField if spec.kind is int else serializers.FloatField
    return kind(min_value=spec.minimum, max_value=spec.maximum, **options)


def _form_field(spec: Spec) -> forms.Field:
    options: dict[str, Any] = {"required": spec.name == "mode", "label": spec.label or None,
                               "help_text": spec.help}
    if spec.choices is not None:
        return forms.ChoiceField(choices=list(spec.choices().items()), **options)
    if spec.kind is bool:
        return forms.BooleanField(**options)
    kind = forms.IntegerField if spec.kind is int else forms.FloatField
    return kind(min_value=spec.minimum, max_value=spec.maximum, **options)


RunParametersSerializer = type("RunParametersSerializer", (serializers.Serializer,), {
    "__doc__": "A training-run request: `mode` and any parameter (absent ones take their defaults).",
    **{spec.name: _serializer_field(spec) for spec in SPECS},
})


class RetrainForm(forms.Form):
    """The dashboard's retrain form (rendering only: requests are parsed by RunParameters.parse); its
    initial values are the defaults as the settings give them now."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        defaults = RunParameters.defaults()
        for spec in SPECS:
            self.fields[spec.name] = _form_field(spec)
            self.fields[spec.name].initial = getattr(defaults, spec.name)
