"""Decoding validates by content and turns every supported mode into RGB."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from retrieval.images import ImageRejected, decode_image, make_thumbnail
from tests.imagefactory import bomb_png, image_bytes, truncated_jpeg, two_tone_jpeg, with_exif_orientation

LIMIT = 20 * 1024 * 1024


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_supported_format_decodes_to_rgb(fmt: str) -> None:
    decoded = decode_image(image_bytes(fmt), max_bytes=LIMIT)
    assert decoded.rgb.mode == "RGB"
    assert decoded.rgb.size == (96, 96)
    assert len(decoded.sha256) == 64


@pytest.mark.parametrize(
    ("mode", "colour", "fmt"),
    [("P", 3, "PNG"), ("RGBA", (255, 0, 0, 0), "PNG"), ("LA", (80, 255), "PNG"), ("CMYK", (0, 255, 255, 0), "JPEG"),
     ("I;16", 40000, "PNG"), ("L", 128, "PNG"), ("1", 1, "BMP")],
)
def test_modes_become_rgb(mode: str, colour, fmt: str) -> None:
    decoded = decode_image(image_bytes(fmt, mode=mode, colour=colour), max_bytes=LIMIT)
    assert decoded.rgb.mode == "RGB"


def test_transparent_pixels_composite_on_white() -> None:
    decoded = decode_image(image_bytes("PNG", mode="RGBA", colour=(255, 0, 0, 0)), max_bytes=LIMIT)
    assert decoded.rgb.getpixel((5, 5)) == (255, 255, 255)


def test_cmyk_red_stays_red() -> None:
    cmyk = image_bytes("JPEG", mode="CMYK", colour=(0, 255, 255, 0))
    red, green, blue = decode_image(cmyk, max_bytes=LIMIT).rgb.getpixel((5, 5))
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_gradient_keeps_its_range() -> None:
    gradient = Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1)))
    assert gradient.mode == "I;16"
    out = io.BytesIO()
    gradient.save(out, format="PNG")
    rgb = np.asarray(decode_image(out.getvalue(), max_bytes=LIMIT).rgb)
    assert rgb[..., 0].min() == 0 and rgb[..., 0].max() == 255


def test_exif_orientation_is_applied() -> None:
    rotated = decode_image(with_exif_orientation(two_tone_jpeg((120, 80)), 6), max_bytes=LIMIT)
    assert rotated.rgb.size == (80, 120)  # orientation 6 = rotate 90° clockwise for display
    top_red, _, top_blue = rotated.rgb.getpixel((40, 10))
    assert top_red > 200 and top_blue < 60  # the left (red) half is now on top


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image at all", "not an image"),
        (truncated_jpeg(), "damaged or truncated"),
        (bomb_png(), "pixels"),
        (image_bytes("PNG", (20, 200)), "at least 32"),
    ],
    ids=["zero-bytes", "not-an-image", "truncated", "decompression-bomb", "too-small"],
)
def test_bad_input_is_rejected_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(ImageRejected, match=message):
        decode_image(data, max_bytes=LIMIT)


def test_files_over_the_limit_are_rejected_before_decoding() -> None:
    with pytest.raises(ImageRejected, match="the limit is 10 bytes"):
        decode_image(image_bytes("PNG"), max_bytes=10)


def test_unsupported_mode_is_rejected() -> None:
    out = io.BytesIO()
    Image.new("F", (64, 64)).save(out, format="TIFF")
    assert decode_image(out.getvalue(), max_bytes=LIMIT).rgb.mode == "RGB"  # float greyscale is supported
    lab = io.BytesIO()
    Image.new("LAB", (64, 64)).save(lab, format="TIFF")
    with pytest.raises(ImageRejected, match="Unsupported colour mode LAB"):
        decode_image(lab.getvalue(), max_bytes=LIMIT)


def test_thumbnail_is_a_small_jpeg() -> None:
    decoded = decode_image(image_bytes("PNG", (800, 400)), max_bytes=LIMIT)
    thumb = Image.open(io.BytesIO(make_thumbnail(decoded.rgb, 256)))
    assert thumb.format == "JPEG" and thumb.size == (256, 128)
