"""Decode and validate image bytes: every input path (upload, API, import) goes through here."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
# Modes we know how to turn into RGB. Anything else (e.g. LAB, HSV, multi-band floats) is rejected.
CONVERTIBLE_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
     "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
)
MIN_SIDE = 32
MAX_PIXELS = 50_000_000

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageRejected(ValueError):
    """The bytes are not an image Refind can use; the message says why, for the user."""


@dataclass(frozen=True)
class DecodedImage:
    """A validated image, converted to RGB, with the facts we store about its original."""

    rgb: Image.Image
    sha256: str
    format: str
    width: int
    height: int


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(
    data: bytes, *, max_bytes: int, min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS
) -> DecodedImage:
    """Validate by decoding (never by extension or content type) and return an RGB image."""
    if not data:
        raise ImageRejected("The file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format or ""
            if fmt not in ACCEPTED_FORMATS:
                raise ImageRejected(
                    f"Unsupported image format {fmt or 'unknown'}; use JPEG, PNG, WebP, GIF, BMP or TIFF."
                )
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"The image has {width}x{height} pixels, over the limit of {max_pixels:,} pixels."
                )
            probe.verify()
            image = Image.open(io.BytesIO(data))
            image.load()
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
    rgb = to_rgb(ImageOps.exif_transpose(image))
    if min(rgb.size) < min_side:
        raise ImageRejected(
            f"The image is {rgb.width}x{rgb.height}; both sides must be at least {min_side} pixels."
        )
    return DecodedImage(rgb=rgb, sha256=sha256_of(data), format=fmt, width=rgb.width, height=rgb.height)


def to_rgb(image: Image.Image) -> Image.Image:
    """Palette, alpha (composited on white), CMYK, 16-bit and float images become 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}:
        return _high_depth_to_rgb(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in {"LA", "La", "PA", "RGBa"}:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale a 16/32-bit or float greyscale image into 8 bits by its own value range."""
    import numpy as np

    array = np.asarray(image, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    grey = ((array - low) * scale).clip(0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def make_thumbnail(rgb: Image.Image, size: int = 256) -> bytes:
    """A JPEG thumbnail whose longer side is `size` pixels."""
    thumb = rgb.copy()
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()
