"""Backbone fine-tuning on CUB-100 (GPU): does tuning the CNN itself beat a head on frozen features?

Images are the evaluation crops (resize 256, centre crop 224) packed into one .npz of JPEG bytes
(``--pack`` builds it from the dataset; it travels to a GPU machine where the dataset does not).
Protocols as in bench/learning.py: feedback adaptation (held-out half of each species as queries against
the whole gallery) and unseen species (train 0–49, test 50–99). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.clicks import ClickSimulator, split_per_class
from bench.learning import list_dataset
from retrieval.backbones import load_backbone
from retrieval.extraction import open_rgb, preprocess
from training.backbone_tuning import extract_features, fine_tune_backbone
from training.trainer import fine_tune

MEAN = STD = 0.5  # EfficientNet-Lite inputs are scaled to [-1, 1]


def pack(dataset: Path, out: Path, quality: int) -> None:
    """Evaluation crops (retrieval.extraction.preprocess) of every image as JPEG bytes, plus labels."""
    backbone = load_backbone("efficientnet_lite0")
    paths, labels, _ = list_dataset(dataset)
    blobs = []
    for path in paths:
        buffer = io.BytesIO()
        Image.fromarray(preprocess(open_rgb(path), backbone)).save(buffer, "JPEG", quality=quality)
        blobs.append(np.frombuffer(buffer.getvalue(), np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    np.savez(out, data=np.concatenate(blobs), offsets=offsets, labels=np.asarray(labels))


class Crops:
    """Decoded crops as one uint8 tensor; batches normalised, optionally flipped and shifted (training)."""

    def __init__(self, path: Path, every: int = 1) -> None:
        packed = np.load(path)
        data, offsets = packed["data"], packed["offsets"]
        self.labels = packed["labels"].astype(np.int64)[::every]
        self.pixels = torch.stack([
            torch.from_numpy(np.asarray(Image.open(io.BytesIO(data[a:b].tobytes())).convert("RGB")).copy())
            for a, b in list(zip(offsets[:-1], offsets[1:], strict=True))[::every]
        ]).permute(0, 3, 1, 2).contiguous()
        self.generator = torch.Generator().manual_seed(0)

    def subset_loader(self, rows: np.ndarray):
        def load(indices: np.ndarray, train: bool) -> torch.Tensor:
            batch = self.pixels[torch.as_tensor(rows[indices])].float().div_(255)
            if train:
                flip = torch.rand(len(batch), generator=self.generator) < 0.5
                batch[flip] = batch[flip].flip(-1)
                dx, dy = torch.randint(-16, 17, (2,), generator=self.generator).tolist()
                batch = batch.roll((dy, dx), dims=(2, 3))
            return (batch - MEAN) / STD
        return load


def recall_at_1(features: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> float:
    """R@1 (%) of the query rows against every row, self excluded, cosine similarity."""
    x = torch.nn.functional.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)
    x = x.cuda() if torch.cuda.is_available() else x
    sims = x[torch.as_tensor(queries)] @ x.T
    sims[torch.arange(len(queries)), torch.as_tensor(queries)] = -2
    top = sims.argmax(1).cpu().numpy()
    return 100.0 * float((labels[top] == labels[queries]).mean())


def tune(backbone, crops: Crops, rows: np.ndarray, labels=None, triplets=None, **params) -> np.ndarray:
    """Fine-tune on ``rows`` of the crops; return features of every crop under the tuned backbone."""
    start = time.perf_counter()
    result = fine_tune_backbone(backbone, crops.subset_loader(rows), len(rows), labels, triplets, **params)
    print(f"    {result.steps_done} steps in {time.perf_counter() - start:.0f} s, "
          f"loss {np.mean(result.losses[:10]):.3f} -> {np.mean(result.losses[-10:]):.3f}", flush=True)
    return extract_features(result.model, crops.subset_loader(np.arange(len(crops.labels))), len(crops.labels))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crops", type=Path, required=True, help="the packed crops (.npz)")
    parser.add_argument("--pack", type=Path, help="build --crops from this dataset folder first")
    parser.add_argument("--quality", type=int, default=60)
    parser.add_argument("--losses", default="multi_similarity")
    parser.add_argument("--lrs", default="1e-5,3e-5")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--budgets", default="1000,5000", help="click-triplet budgets")
    parser.add_argument("--clicks-only", action="store_true", help="skip the labelled runs")
    parser.add_argument("--every", type=int, default=1, help="keep every n-th image (smoke tests)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.pack:
        pack(args.pack, args.crops, args.quality)
    backbone = load_backbone("efficientnet_lite0").model
    crops = Crops(args.crops, args.every)
    budgets = [int(b) for b in args.budgets.split(",")]
    labels, everything = crops.labels, np.arange(len(crops.labels))
    held_out = split_per_class(labels, seed=0)
    feedback, queries = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    unseen_train, unseen_test = np.flatnonzero(labels < 50), np.flatnonzero(labels >= 50)
    base = extract_features(backbone, crops.subset_loader(everything), len(labels))
    results: dict[str, float] = {
        "feedback: pretrained": recall_at_1(base, labels, queries),
        "unseen: pretrained": recall_at_1(base[unseen_test], labels[unseen_test], np.arange(len(unseen_test))),
    }
    print(json.dumps(results), flush=True)
    head = fine_tune(base[feedback], labels[feedback], loss="multi_similarity", steps=args.steps, lr=1e-4, seed=0)
    results["feedback: linear head, feedback labels"] = recall_at_1(head.head.embed(base), labels, queries)
    clicks = ClickSimulator(labels, feedback, seed=0).triplets(
        lambda rows: base[rows] / np.linalg.norm(base[rows], axis=1, keepdims=True), max(budgets))
    local = {int(row): i for i, row in enumerate(feedback)}
    click_rows = np.vectorize(local.__getitem__)(clicks)
    for loss in args.losses.split(","):
        for lr in (float(v) for v in args.lrs.split(",")):
            tag = f"{loss}, lr {lr:g}"
            print(f"  {tag}", flush=True)
            if not args.clicks_only:
                tuned = tune(backbone, crops, feedback, labels=labels[feedback], loss=loss, lr=lr, steps=args.steps)
                results[f"feedback: backbone, feedback labels, {tag}"] = recall_at_1(tuned, labels, queries)
                tuned = tune(backbone, crops, unseen_train, labels=labels[unseen_train], loss=loss, lr=lr,
                             steps=args.steps)
                results[f"unseen: backbone, species 0-49 labels, {tag}"] = recall_at_1(
                    tuned[unseen_test], labels[unseen_test], np.arange(len(unseen_test)))
            for budget in budgets:
                tuned = tune(backbone, crops, feedback, triplets=click_rows[:budget], loss=loss, lr=lr,
                             steps=args.steps)
                results[f"feedback: backbone, {budget} pretrained-model clicks, {tag}"] = recall_at_1(
                    tuned, labels, queries)
            print(json.dumps(results, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
