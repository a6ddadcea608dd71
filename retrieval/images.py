"""Decode and validate image bytes: every input path (upload, API, import) goes through here.

Memory and CPU per image are bounded for any input within the limits (docs/security.md): the header is
checked (format, pixel count, aspect ratio) before anything is decoded; only the first frame of an
animated file is decoded; a JPEG is decoded at a reduced scale (`draft`) when it is much larger than we
need; the decoded image is converted to RGB in horizontal bands and reduced to a *working size* (the
shorter side at least `WORK_SIDE`) band by band, so the only full-size buffer is the decoder's own
(at most `max_pixels` x 4 bytes); 16-bit and float images are scaled to 8 bits per band in float32.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
# Modes we know how to turn into RGB. Anything else (e.g. LAB, HSV, multi-band floats) is rejected.
CONVERTIBLE_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
     "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
)
HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
MIN_SIDE = 32
MAX_PIXELS = 50_000_000
# Longer side / shorter side. A 200000x32 strip passes the pixel limit but would be scaled up to a
# 1.6-megapixel-wide strip by the resize to the backbone's input; 20:1 covers real panoramas.
MAX_ASPECT_RATIO = 20
# The decoded RGB image keeps its shorter side at least this long (integer reduction only): enough for
# the backbone's resize (256 for EfficientNet-Lite0) and the 256-pixel thumbnail; retrieval.extraction's
# open_rgb decodes files at the same scale.
WORK_SIDE = 512
# What the decoder itself may hold: the full-size buffer Pillow decodes into (PNG, WebP, TIFF, BMP and GIF
# cannot decode at a reduced scale) or a progressive JPEG's coefficients. 128 MiB is a 32-megapixel RGB
# PNG or a 50-megapixel greyscale one; a baseline JPEG decodes at a reduced scale and costs little.
MAX_DECODE_BYTES = 128 * 2**20
_BAND_PIXELS = 1 << 20  # converted and reduced a band of about this many pixels at a time
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}  # others: 4

Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageRejected(ValueError):
    """The bytes are not an image Refind can use; the message says why, for the user."""


@dataclass(frozen=True)
class DecodedImage:
    """A validated image converted to RGB at working size (`rgb`), with the facts we store about its
    original: `width` and `height` are the original's, after EXIF orientation."""

    rgb: Image.Image
    sha256: str
    format: str
    width: int
    height: int


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def byte_size(count: int) -> str:
    """A size for people: "2,000 bytes", "48.8 KB", "20.0 MB" (KB and MB of 1024)."""
    if count < 10 * 1024:
        return f"{count:,} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / 2**20:.1f} MB"


def size_message(size: int, limit: int, what: str = "file") -> str:
    """"The file is 21.3 MB; the limit is 20.0 MB." — exact byte counts when the rounded sizes would read
    the same (never "the file is 20.0 MB; the limit is 20.0 MB")."""
    shown, allowed = byte_size(size), byte_size(limit)
    if shown == allowed:
        shown, allowed = f"{size:,} bytes", f"{limit:,} bytes"
    return f"The {what} is {shown}; the limit is {allowed}."


def decode_image(
    data: bytes, *, max_bytes: int, min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS,
    max_aspect_ratio: float = MAX_ASPECT_RATIO, work_side: int = WORK_SIDE, max_decode_bytes: int = MAX_DECODE_BYTES,
) -> DecodedImage:
    """Validate by decoding (never by extension or content type) and return an RGB image at working size."""
    if not data:
        raise ImageRejected("The file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageRejected(size_message(len(data), max_bytes))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format or ""
            if fmt not in ACCEPTED_FORMATS:
                raise ImageRejected(
                    f"Unsupported image format {fmt or 'unknown'}; use JPEG, PNG, WebP, GIF, BMP or TIFF."
                )
            _check_shape(probe.size, min_side=min_side, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
            probe.verify()
            image = Image.open(io.BytesIO(data))
            if image.mode not in CONVERTIBLE_MODES:
                raise ImageRejected(f"Unsupported colour mode {image.mode}.")
            width, height = image.size
            factor = max(1, min(width, height) // work_side)
            if factor > 1 and fmt in {"JPEG", "MPO"}:
                # decode at 1/2, 1/4 or 1/8 scale straight from the DCT (never smaller than asked)
                image.draft("RGB" if image.mode in {"RGB", "YCbCr"} else None, (width // factor, height // factor))
            _check_decode_cost(image, (width, height), max_decode_bytes)
            image.load()  # the first frame only
            orientation = image.getexif().get(0x0112)  # after load: PNG's getexif() would load it unchecked
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"The image is too large to decode safely ({exc}).") from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("The file is not an image Refind can read.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"The image is damaged or truncated ({exc}).") from exc
    if image.mode not in CONVERTIBLE_MODES:
        raise ImageRejected(f"Unsupported colour mode {image.mode}.")
    factor = max(1, min(image.size) // work_side)  # what is left after a JPEG draft
    rgb = _to_rgb_reduced(image, factor)
    del image
    if orientation in _EXIF_TRANSPOSE:
        rgb = rgb.transpose(_EXIF_TRANSPOSE[orientation])
        if orientation >= 5:
            width, height = height, width
    return DecodedImage(rgb=rgb, sha256=sha256_of(data), format=fmt, width=width, height=height)


def _check_shape(size: tuple[int, int], *, min_side: int, max_pixels: int, max_aspect_ratio: float) -> None:
    """Refuse from the header alone: too small, too many pixels, too elongated."""
    width, height = size
    if min(width, height) < min_side:
        raise ImageRejected(f"The image is {width}x{height}; both sides must be at least {min_side} pixels.")
    if width * height > max_pixels:
        raise ImageRejected(f"The image has {width}x{height} pixels, over the limit of {max_pixels:,} pixels.")
    if max(width, height) > max_aspect_ratio * min(width, height):
        raise ImageRejected(
            f"The image is {width}x{height}: one side is more than {max_aspect_ratio:g} times the other "
            f"(the limit on the aspect ratio)."
        )


def decode_cost(image: Image.Image, header_size: tuple[int, int]) -> int:
    """Bytes the decoder holds at once for an opened (and possibly drafted) image: the decoded buffer, plus
    the coefficients of the whole image (`header_size`) that a progressive JPEG keeps until its last scan."""
    cost = image.width * image.height * _BYTES_PER_PIXEL.get(image.mode, 4)
    if image.format in {"JPEG", "MPO"} and image.info.get("progressive"):
        layers = getattr(image, "layer", None) or [(0, 1, 1, 0)]
        max_h = max(layer[1] for layer in layers)
        max_v = max(layer[2] for layer in layers)
        for _, h_sampling, v_sampling, _ in layers:
            blocks_x = -(-header_size[0] * h_sampling // (max_h * 8))
            blocks_y = -(-header_size[1] * v_sampling // (max_v * 8))
            cost += blocks_x * blocks_y * 64 * 2
    return cost


def _check_decode_cost(image: Image.Image, header_size: tuple[int, int], max_decode_bytes: int) -> None:
    cost = decode_cost(image, header_size)
    if cost > max_decode_bytes:
        kind = "progressive JPEG" if image.info.get("progressive") else f"{image.format} ({image.mode})"
        raise ImageRejected(
            f"The image needs {cost / 2**20:.0f} MB of memory to decode ({header_size[0]}x{header_size[1]} "
            f"{kind}); the limit is {max_decode_bytes / 2**20:.0f} MB. Save it with fewer pixels, or as a "
            f"baseline JPEG."
        )


def _to_rgb_reduced(image: Image.Image, factor: int) -> Image.Image:
    """RGB reduced by the integer `factor`, converted band by band so no second full-size copy exists."""
    if factor == 1 and image.width * image.height <= _BAND_PIXELS:
        return to_rgb(image)
    out = Image.new("RGB", (max(1, image.width // factor), max(1, image.height // factor)))
    band_rows = max(factor, (_BAND_PIXELS // max(1, image.width)) // factor * factor)
    low_high = _value_range(image) if image.mode in HIGH_DEPTH_MODES else None
    for out_top, top in enumerate(range(0, out.height * factor, band_rows)):
        bottom = min(top + band_rows, out.height * factor)
        band = image.crop((0, top, out.width * factor, bottom))
        band = _high_depth_to_rgb(band, low_high) if low_high is not None else to_rgb(band)
        if factor > 1:
            band = band.reduce(factor)
        out.paste(band, (0, out_top * (band_rows // factor)))
    return out


def to_rgb(image: Image.Image) -> Image.Image:
    """Palette, alpha (composited on white), CMYK, 16-bit and float images become 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(image, _value_range(image))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in {"LA", "La", "PA", "RGBa"}:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def _value_range(image: Image.Image) -> tuple[float, float]:
    """(min, max) of a 16/32-bit or float greyscale image, without copying it (NaN and inf ignored)."""
    if image.mode == "F":
        low, high = image.getextrema()
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
        finite = [b for b in _bands_as_float(image) if b.size]
        lows = [float(np.nanmin(np.where(np.isfinite(b), b, np.nan), initial=np.inf)) for b in finite]
        highs = [float(np.nanmax(np.where(np.isfinite(b), b, np.nan), initial=-np.inf)) for b in finite]
        low, high = min(lows, default=0.0), max(highs, default=0.0)
        return (low, high) if np.isfinite(low) and np.isfinite(high) else (0.0, 0.0)
    low, high = image.getextrema()
    return float(low), float(high)


def _bands_as_float(image: Image.Image):
    """float32 arrays of horizontal bands of a single-channel image."""
    rows = max(1, _BAND_PIXELS // max(1, image.width))
    for top in range(0, image.height, rows):
        yield np.asarray(image.crop((0, top, image.width, min(top + rows, image.height))), dtype=np.float32)


def _high_depth_to_rgb(image: Image.Image, low_high: tuple[float, float]) -> Image.Image:
    """Scale a 16/32-bit or float greyscale image into 8 bits by the given value range (float32, no copy of
    a float64 array)."""
    low, high = low_high
    scale = 255.0 / (high - low) if high > low else 0.0
    array = np.asarray(image, dtype=np.float32)
    array = np.nan_to_num(array, nan=low, posinf=high, neginf=low)
    array -= np.float32(low)
    array *= np.float32(scale)
    grey = array.clip(0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def return_large_blocks_to_the_os(threshold: int = 1 << 20) -> bool:
    """Make glibc serve allocations of `threshold` bytes or more with their own mappings, unmapped on free.

    By default glibc raises that threshold (up to 32 MB) each time a large block is freed, so the 16 MB
    blocks Pillow decodes into and the decoders' buffers come from per-thread heaps that keep freed memory:
    a threaded web process would then grow by each decode's peak on top of the previous ones'. With a fixed
    threshold each decode's memory is returned when it ends. Returns False where there is no glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3
    return bool(mallopt(m_mmap_threshold, threshold))


def make_thumbnail(rgb: Image.Image, size: int = 256) -> bytes:
    """A JPEG thumbnail whose longer side is `size` pixels."""
    thumb = rgb.copy()
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()
