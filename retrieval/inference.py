"""How a backbone's forward pass runs on the CPU: the inference paths (docs/benchmarks.md §11).

* ``torch`` — the backbone in PyTorch eager, optimised by `retrieval.backbones.optimize_for_cpu`.
* ``fp32`` — the same network exported to ONNX and run by ONNX Runtime; features equal the eager
  model's to float rounding.
* ``int8`` — that ONNX model with static int8 quantisation (`onnxruntime.quantization`: per-channel
  weights, activations calibrated on fixed crops of photos that ship inside installed packages, so
  every host quantises identically and nothing is downloaded).

Every path takes the same HxWx3 uint8 crops: the exported graph takes them as they are (NHWC uint8)
and does the normalisation itself. It ends at the backbone's last feature map, which the backbone's
own pooling (`retrieval.pooling`, e.g. GeM) pools afterwards, so one export serves every pooling; a
model whose pooling cannot be separated from its network (torchvision models) is exported with its
pooling inside the graph, and the cache key then names the pooling too.

Exported models are files keyed by everything that decides their content (`export_key`: the weights'
hash, the input size and normalisation, the precision and its calibration, the ONNX Runtime and torch
versions); `exported_model` finds one in a cache folder or a published copy, or exports it once.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from retrieval.backbones import Backbone, BackboneUnavailable, optimize_for_cpu
from retrieval.pooling import PoolingLayer

PATHS = ("int8", "fp32", "torch")
DEFAULT_PATH = "int8"  # the fastest path within the quality bound (docs/benchmarks.md §11)
EXPORT_FORMAT = 1  # bump when the exported graph changes, so cached exports are not reused
OPSET = 17
CALIBRATION_IMAGES = 128
CALIBRATION_SEED = 0


class InferenceUnavailable(BackboneUnavailable):
    """A path cannot run here (ONNX Runtime missing, or the model cannot be exported)."""


def check_path(path: str) -> str:
    """`path` if it names an inference path, else ValueError listing them (settings parse strictly)."""
    if path not in PATHS:
        raise ValueError(f"Unknown inference path {path!r}; use one of {', '.join(PATHS)}.")
    return path


# ---------------------------------------------------------------------------------------------- export


class _Exported(nn.Module):
    """NHWC uint8 crops -> normalised NCHW float -> the network up to its last feature map (or pooled)."""

    def __init__(self, body: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("scale", 1.0 / (torch.tensor(std).view(1, 3, 1, 1) * 255.0))
        self.register_buffer("shift", -torch.tensor(mean).view(1, 3, 1, 1) / torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.body(crops.permute(0, 3, 1, 2).float() * self.scale + self.shift)


class _FeatureMap(nn.Module):
    """An EfficientNet-style backbone model without its final pooling: returns the last feature map."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


def pools_outside(backbone: Backbone) -> bool:
    """True when the exported graph ends at the last feature map and `backbone.pooling` pools after it."""
    model = backbone.model
    return isinstance(getattr(model, "pool", None), PoolingLayer) and hasattr(getattr(model, "net", None),
                                                                               "extract_features")


def _export_module(backbone: Backbone) -> nn.Module:
    model = copy.deepcopy(backbone.model).eval()
    body = _FeatureMap(model.net) if pools_outside(backbone) else model
    return _Exported(body, backbone.mean, backbone.std).eval()


@dataclass(frozen=True)
class ExportOptions:
    """What an exported model is: its precision and, for int8, how it is calibrated."""

    precision: str = "fp32"  # "fp32" or "int8"
    calibration_images: int = CALIBRATION_IMAGES
    calibration_method: str = "MinMax"  # onnxruntime.quantization.CalibrationMethod name
    seed: int = CALIBRATION_SEED

    def describe(self) -> str:
        if self.precision == "fp32":
            return "fp32"
        return f"int8-{self.calibration_method.lower()}{self.calibration_images}-s{self.seed}"


def export_key(backbone: Backbone, options: ExportOptions) -> str:
    """A file-name-safe key naming the exported model's content: a changed weight, pooling or option changes it."""
    import onnxruntime

    digest = hashlib.sha256()
    header = (EXPORT_FORMAT, OPSET, torch.__version__, onnxruntime.__version__, backbone.input_size,
              tuple(backbone.mean), tuple(backbone.std), options.describe(),
              "map" if pools_outside(backbone) else backbone.pooling.key, type(backbone.model).__name__)
    digest.update(repr(header).encode())
    for name, tensor in backbone.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    base = backbone.name.split("@", 1)[0].split("+", 1)[0].replace(":", "-").replace("/", "-")
    return f"{base}-{options.describe()}-{digest.hexdigest()[:16]}"


def export_model(backbone: Backbone, options: ExportOptions, target: str | os.PathLike) -> Path:
    """Export `backbone` to an ONNX file at `target` (written under a unique name, then renamed into place)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Work beside the target (same file system), so the finished file is renamed into place whole.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
        fp32 = Path(work) / "fp32.onnx"
        _export_fp32(backbone, fp32)
        if options.precision == "int8":
            result = Path(work) / "int8.onnx"
            _quantise(backbone, fp32, result, options)
        elif options.precision == "fp32":
            result = fp32
        else:
            raise ValueError(f"Unknown precision {options.precision!r}.")
        with open(result, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(result, target)
    return target


def _export_fp32(backbone: Backbone, path: Path) -> None:
    module = _export_module(backbone)
    example = torch.zeros(1, backbone.input_size, backbone.input_size, 3, dtype=torch.uint8)
    try:
        torch.onnx.export(
            module, (example,), str(path), input_names=["crops"], output_names=["features"],
            dynamic_axes={"crops": {0: "n"}, "features": {0: "n"}}, opset_version=OPSET, dynamo=False,
        )
    except Exception as exc:
        raise InferenceUnavailable(f"Cannot export {backbone.name} to ONNX: {exc}") from exc


def calibration_crops(size: int, count: int = CALIBRATION_IMAGES, seed: int = CALIBRATION_SEED) -> list[np.ndarray]:
    """`count` HxWx3 uint8 crops of natural photos that ship inside installed packages (matplotlib, scikit-learn).

    Random squares (a quarter to all of the shorter side), resized to `size`, half of them mirrored: the
    same on every host, so int8 exports are identical everywhere, and never any user's images.
    """
    photos = [Image.open(path).convert("RGB") for path in _calibration_photos()]
    rng = np.random.default_rng(seed)
    crops = []
    for k in range(count):
        photo = photos[k % len(photos)]
        width, height = photo.size
        side = int(rng.uniform(0.25, 1.0) * min(width, height))
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crops.append(np.asarray(crop, dtype=np.uint8))
    return crops


def _calibration_photos() -> list[Path]:
    import matplotlib
    import sklearn

    photos = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
              Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg",
              Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg"]
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        raise InferenceUnavailable(f"Calibration photos missing from the installed packages: {', '.join(missing)}")
    return photos


def _quantise(backbone: Backbone, fp32: Path, target: Path, options: ExportOptions) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    crops = calibration_crops(backbone.input_size, options.calibration_images, options.seed)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._crops = iter(crops)

        def get_next(self) -> dict[str, np.ndarray] | None:
            crop = next(self._crops, None)
            return None if crop is None else {"crops": crop[None]}

    prepared = target.with_name("prepared.onnx")
    quant_pre_process(str(fp32), str(prepared))
    quantize_static(
        str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, options.calibration_method),
    )


def exported_model(
    backbone: Backbone, options: ExportOptions, cache_dir: str | os.PathLike,
    published: Callable[[str], Path | None] | None = None,
) -> Path:
    """The ONNX file for `backbone` under `options`: from `cache_dir`, else a published copy, else exported once.

    `published(key)` may return the path of a copy someone else published (e.g. a backbone run beside
    its tuned weights), or None.
    """
    key = export_key(backbone, options)
    cached = Path(cache_dir) / f"{key}.onnx"
    if cached.is_file():
        return cached
    if published is not None:
        found = published(key)
        if found is not None and Path(found).is_file():
            return Path(found)
    return export_model(backbone, options, cached)


# ---------------------------------------------------------------------------------------------- run


class TorchForward:
    """The ``torch`` path: uint8 NHWC crops -> pooled features with the CPU-optimised eager model."""

    path = "torch"

    def __init__(self, backbone: Backbone, optimize: bool = True) -> None:
        self.model = optimize_for_cpu(backbone.model) if optimize else backbone.model
        self._mean = torch.tensor(backbone.mean).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(backbone.std).view(1, 3, 1, 1) * 255.0

    def to_input(self, crops: np.ndarray) -> torch.Tensor:
        """NHWC uint8 -> normalised float NCHW with channels_last strides (NHWC memory, no copy to NCHW)."""
        batch = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
        return ((batch - self._mean) / self._std).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self.model(self.to_input(crops)).numpy()


class OnnxForward:
    """The ``fp32`` and ``int8`` paths: one ONNX Runtime session, single-threaded per call.

    Calls from several threads run side by side (ONNX Runtime sessions are thread-safe and release the
    GIL); with one intra-op thread each call runs on its caller's thread, no barriers between cores.
    """

    def __init__(self, model_path: str | os.PathLike, backbone: Backbone, path: str) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise InferenceUnavailable("The fp32 and int8 paths need onnxruntime (requirements.txt).") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.model_path = Path(model_path)
        self.session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._pool = backbone.pooling.numpy if pools_outside(backbone) else None

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {"crops": np.ascontiguousarray(crops, dtype=np.uint8)})[0]
        return self._pool(out) if self._pool is not None else out.reshape(len(crops), -1)


Forward = TorchForward | OnnxForward


def make_forward(
    backbone: Backbone, path: str, cache_dir: str | os.PathLike | None = None,
    published: Callable[[str], Path | None] | None = None,
) -> Forward:
    """The forward pass of `backbone` on inference path `path` (exports into `cache_dir` when needed)."""
    check_path(path)
    if path == "torch":
        return TorchForward(backbone)
    if cache_dir is None:
        raise ValueError(f"The {path} path needs a cache folder for its exported model.")
    model = exported_model(backbone, ExportOptions(precision=path), cache_dir, published)
    return OnnxForward(model, backbone, path)
