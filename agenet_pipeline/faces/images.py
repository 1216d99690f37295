"""Photo decoding: any common format and mode to 8-bit RGB, EXIF orientation applied, oversized images refused.

Oversized means over a pixel limit (read from the header, before any pixels are decoded) or over a byte limit
(read from the file's size, before the file is read).
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from agenet_pipeline.core.status import TOO_LARGE, UNREADABLE

DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_BYTES = 64_000_000


class ImageRejected(Exception):
    """An image that cannot be used; `reason` is the status recorded for its row."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _check_bytes(size: int, max_bytes: int) -> None:
    if size == 0:
        raise ImageRejected(UNREADABLE, "empty file")
    if size > max_bytes:
        raise ImageRejected(TOO_LARGE, f"{size:,} bytes is over the limit of {max_bytes:,} bytes")


def _check_header(source: BinaryIO, max_pixels: int) -> str:
    """The image's format, from its header alone (PIL reads only the first bytes of `source`)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as header:
                width, height, kind = header.width, header.height, header.format
    except UnidentifiedImageError as error:
        raise ImageRejected(UNREADABLE, "not an image in a format the decoder knows") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageRejected(UNREADABLE, f"damaged image header ({error})") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(TOO_LARGE, str(error)) from error
    if width * height > max_pixels:
        raise ImageRejected(TOO_LARGE, f"{width}x{height} pixels is over the limit of {max_pixels:,}")
    return kind


def read_image_file(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of an image file, read whole only once its size and header are within the limits.

    Raises ImageRejected: `too_large` over a limit, `unreadable` for a file that cannot be opened, is not a
    regular file (a device or a pipe could be read forever) or whose header is not an image's.
    """
    try:
        # Non-blocking, so that opening a pipe with no writer returns (and is refused below) instead of waiting.
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ImageRejected(UNREADABLE, "not a regular file")
            _check_bytes(info.st_size, max_bytes)
            _check_header(file, max_pixels)
            file.seek(0)
            data = file.read(max_bytes + 1)  # the file may have grown since
    except (OSError, ValueError) as error:  # ValueError: a null byte in the path
        raise ImageRejected(UNREADABLE, getattr(error, "strerror", None) or str(error)) from error
    _check_bytes(len(data), max_bytes)
    return data


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """8-bit RGB pixels of an encoded image, EXIF orientation applied.

    The size is read from the header first, so an image too large to decode safely is refused before
    any pixel memory is allocated. Grey, RGBA, CMYK and 16-bit images come out as 8-bit RGB.
    """
    _check_bytes(len(data), max_bytes)
    if _check_header(io.BytesIO(data), max_pixels) == "JPEG" and b"\xff\xd9" not in data[-4096:]:
        raise ImageRejected(UNREADABLE, "truncated JPEG (no end-of-image marker)")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageRejected(UNREADABLE, "the decoder could not read the pixels")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
