"""Validation of retraining requests, shared by the dashboard, the API and the retrain command."""

from __future__ import annotations

from django import forms

from training.losses.registry import REGISTRY
from webapp.learning.models import TrainingRun


class RetrainForm(forms.Form):
    mode = forms.ChoiceField(choices=TrainingRun.Mode.choices, initial=TrainingRun.Mode.BATCH)
    loss = forms.ChoiceField(choices=[(name, name) for name in sorted(REGISTRY)], required=False,
                             initial="multi_similarity", help_text="batch mode")
    epochs = forms.IntegerField(min_value=1, max_value=1000, initial=5, required=False)
    batch_size = forms.IntegerField(min_value=4, max_value=4096, initial=64, required=False)
    lr = forms.FloatField(min_value=1e-7, max_value=1.0, initial=1e-4, required=False, label="Learning rate")
    device = forms.ChoiceField(choices=[("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda")], initial="auto",
                               required=False)
    backbone = forms.BooleanField(required=False, initial=False, label="Fine-tune the backbone too",
                                  help_text="batch mode; re-extracts the gallery — meant for a GPU worker")
    data = forms.ChoiceField(choices=[("both", "triplets, else labels"), ("triplets", "triplets"),
                                      ("labels", "labels"),
                                      ("clicks", "every click: components + triplets")], initial="both", required=False)

    def params(self) -> dict:
        """Run parameters (only what the mode uses)."""
        data = self.cleaned_data
        if data["mode"] == TrainingRun.Mode.OAHU:
            return {"trigger": "manual"}
        return {"loss": data.get("loss") or "multi_similarity", "epochs": data.get("epochs") or 5,
                "batch_size": data.get("batch_size") or 64,
                "lr": data.get("lr") or 1e-4, "device": data.get("device") or "auto",
                "data": data.get("data") or "both", "backbone": bool(data.get("backbone"))}
