"""A hostile image costs a bounded amount of memory: the worst shapes within the upload limits, sent to a
real gunicorn worker, raise its peak resident memory by at most 300 MB over the warmed-up idle process;
shapes we refuse get a 400 that says why (issue 11, item 1)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from retrieval.images import WORK_SIDE, ImageRejected, decode_image
from tests.imagefactory import image_bytes
from tests.security.server import memory_kib, sqlite_site, worker_pid

BUDGET_MB = 300
LIMIT = 20 * 1024 * 1024


def _png(image: Image.Image, **save) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, **save)
    return out.getvalue()


def _gradient(width: int, height: int, dtype, top: float) -> np.ndarray:
    """A staircase gradient of 64 steps (compresses well, but is not a single value a decoder could shortcut)."""
    row = (np.arange(width) * 64 // width * (top / 63)).astype(dtype)
    return np.ascontiguousarray(np.broadcast_to(row, (height, width)))


def _animated(fmt: str, frames: int, size: tuple[int, int]) -> bytes:
    images = [Image.new("RGB", size, (i % 256, (7 * i) % 256, 90)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format=fmt, save_all=True, append_images=images[1:], duration=20, loop=0,
                   **({"lossless": False, "quality": 10, "method": 0} if fmt == "WEBP" else {}))
    return out.getvalue()


def _float_tiff(side: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(_gradient(side, side, np.float32, 1e6)).save(out, format="TIFF", compression="tiff_adobe_deflate")
    return out.getvalue()


def _progressive_jpeg(side: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(_gradient(side, side, np.uint8, 255)).convert("RGB").save(
        out, format="JPEG", progressive=True, quality=30)
    return out.getvalue()


def _accepted_shapes() -> dict[str, bytes]:
    """The most expensive images the limits allow: just under 128 MB to decode, 20:1, <= 20 MB."""
    shapes = {
        "rgb-20-to-1": _png(Image.fromarray(_gradient(25_800, 1_290, np.uint8, 255)).convert("RGB"), compress_level=1),
        "rgba-5700x5700": _png(Image.new("RGBA", (5700, 5700), (10, 200, 30, 128)), compress_level=1),
        "16-bit-7000x7000": _png(Image.fromarray(_gradient(7000, 7000, np.uint16, 65535)), compress_level=1),
        "palette-7000x7000": _png(Image.new("P", (7000, 7000), 3), transparency=3),
        "float32-5700x5700-tiff": _float_tiff(5700),
        "progressive-jpeg-6600x6600": _progressive_jpeg(6600),
        "baseline-jpeg-7000x7000": image_bytes("JPEG", (7000, 7000), quality=30),
        "gif-200-frames": _animated("GIF", 200, (600, 600)),
        "apng-200-frames": _animated("PNG", 200, (600, 600)),
        "webp-200-frames": _animated("WEBP", 200, (600, 600)),
    }
    for name, data in shapes.items():
        assert len(data) <= LIMIT, (name, len(data))
    return shapes


REFUSED = {
    "200000x32": (lambda: image_bytes("PNG", (200_000, 32), mode="L", colour=9), "aspect ratio"),
    "32x200000": (lambda: image_bytes("PNG", (32, 200_000), mode="L", colour=9), "aspect ratio"),
    "over-the-pixel-limit": (lambda: image_bytes("PNG", (8000, 8000), mode="L", colour=9), "pixels"),
    "rgba-7000x7000": (lambda: _png(Image.new("RGBA", (7000, 7000), (1, 2, 3, 4)), compress_level=1),
                       "memory to decode"),
    "float32-7000x7000-tiff": (lambda: _float_tiff(7000), "memory to decode"),
    "progressive-jpeg-7000x7000": (lambda: _progressive_jpeg(7000), "memory to decode"),
}


def test_decoding_reduces_to_a_working_size_and_keeps_the_original_dimensions() -> None:
    decoded = decode_image(image_bytes("PNG", (6000, 3000), colour=(9, 9, 9)), max_bytes=LIMIT)
    assert (decoded.width, decoded.height) == (6000, 3000)
    assert min(decoded.rgb.size) >= WORK_SIDE and decoded.rgb.size == (1200, 600)
    with pytest.raises(ImageRejected, match="aspect ratio"):
        decode_image(image_bytes("PNG", (2100, 100), mode="L", colour=9), max_bytes=LIMIT)


@pytest.mark.services
def test_the_worst_shapes_cost_at_most_300_mb_and_refusals_say_why(tmp_path: Path) -> None:
    shapes = _accepted_shapes()
    with sqlite_site(tmp_path, REFIND_THROTTLE_SEARCH="10000/min") as (server, _env):
        pid = worker_pid(server)
        for _ in range(3):  # warm up: model loaded, index loaded, first allocations made
            warm = requests.post(f"{server.url}/api/v1/search/", timeout=120,
                                 files={"image": ("warm.jpg", image_bytes("JPEG", (640, 480)))})
            assert warm.status_code == 200, warm.text
        idle = memory_kib(pid, "VmRSS")
        peaks = {"warm-up": memory_kib(pid, "VmHWM")}  # the running peak after each request, for the message
        for name, (make, reason) in REFUSED.items():
            response = requests.post(f"{server.url}/api/v1/search/", files={"image": (f"{name}.png", make())},
                                     timeout=120)
            peaks[name] = memory_kib(pid, "VmHWM")
            assert response.status_code == 400 and reason in response.json()["detail"], (name, response.text)
        for name, data in shapes.items():
            response = requests.post(f"{server.url}/api/v1/search/", files={"image": (name, data)}, timeout=120)
            peaks[name] = memory_kib(pid, "VmHWM")
            assert response.status_code == 200, (name, response.text[:300])
        peak = memory_kib(pid, "VmHWM")
        assert worker_pid(server) == pid  # the worker was never killed and replaced
    extra_mb = (peak - idle) / 1024
    running = {name: round((kib - idle) / 1024) for name, kib in peaks.items()}
    assert extra_mb <= BUDGET_MB, f"peak {extra_mb:.0f} MB above idle; running peak after each request: {running}"
