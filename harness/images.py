"""Image files: atomic PNG writes and loads that name the file when it is corrupt."""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from harness.errors import InputError
from harness.fileio import atomic_write_bytes
from harness.hashing import hash_bytes


def image_format(data: bytes) -> tuple[str, str] | None:
    """(file extension, MIME type) of PNG, JPEG or WebP bytes, as APIs return them; None otherwise."""
    if data.startswith(b"\x89PNG"):
        return "png", "image/png"
    if data.startswith(b"\xff\xd8"):
        return "jpg", "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp"
    return None


def save_png(image: Image.Image, path: str | Path) -> str:
    """Write ``image`` as PNG atomically and return the file's content hash.

    PNG is lossless and PIL writes no timestamp, so equal pixels give equal bytes and equal hashes.
    """
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return hash_bytes(data)


def load_image(path: str | Path) -> Image.Image:
    """Open an image fully (EXIF orientation applied, RGB), or raise InputError naming the file."""
    try:
        with Image.open(path) as handle:
            handle.load()
            return ImageOps.exif_transpose(handle).convert("RGB")
    except FileNotFoundError:
        raise InputError("image file not found", path) from None
    except Image.DecompressionBombError as exc:  # PIL's guard: more than 2 x MAX_IMAGE_PIXELS pixels
        raise InputError(f"image too large to open safely ({exc}); PIL refuses images over "
                         f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels", path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"corrupt or unreadable image ({exc})", path) from None
