"""Small generated images for tests: every format and mode the decoder must handle, and broken files."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (96, 96), mode: str = "RGB",
                colour: int | tuple = (200, 40, 40), **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format=fmt, **save)
    return out.getvalue()

def two_tone_jpeg(size: tuple[int, int] = (120, 80)) -> bytes:
    """Left half red, right half blue: lets a test see orientation changes."""
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()

def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    image = Image.open(io.BytesIO(jpeg))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), quality=95)
    return out.getvalue()

def truncated_jpeg() -> bytes:
    data = image_bytes("JPEG", (256, 256), colour=(10, 120, 200))
    return data[: len(data) // 2]

def bomb_png(side: int = 20_000) -> bytes:
    """A tiny PNG that claims side x side pixels (a decompression bomb by its header)."""
    small = image_bytes("PNG", (1, 1), mode="L", colour=0)
    header_end = 8 + 8 + 13 + 4
    ihdr = bytearray(small[8 + 8 : 8 + 8 + 13])
    ihdr[0:4] = struct.pack(">I", side)
    ihdr[4:8] = struct.pack(">I", side)

    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    return small[:16] + bytes(ihdr) + crc + small[header_end:]
