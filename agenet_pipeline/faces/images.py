"""Photo decoding: any common format and mode to 8-bit RGB, EXIF orientation applied, oversized images refused.

Oversized means over a pixel limit (read from the header, before any pixels are decoded) or over a byte limit
(read from the file's size, before the file is read).
"""

from __future__ import annotations

import functools
import io
import os
import stat
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from agenet_pipeline.core.status import TOO_LARGE, UNREADABLE

DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_BYTES = 64_000_000
# The longest side the face detector takes: MediaPipe's OpenCV asserts a side under SHRT_MAX (32,767), and the failed
# assertion aborts the whole process (found by fuzzing: a JPEG header claiming 65535 x 30 pixels).
MAX_SIDE = 32_766


class ImageRejected(Exception):
    """An image that cannot be used; `reason` is the status recorded for its row."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _header_size(source: BinaryIO) -> tuple[int, int, str | None]:
    """Width, height and format from the header alone.

    Pillow's own decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`) is not the one that applies here, so that a
    too-large image is refused with our limit and its size: past Pillow's warning the header is read anyway, and
    past twice its limit, where `Image.open` refuses, the format's plugin reads the header as `Image.open` does.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            source.seek(0)
            with Image.open(source) as header:
                return header.width, header.height, header.format
        except Image.DecompressionBombError:
            source.seek(0)
            prefix = source.read(16)
            for kind in Image.ID:  # Image.open has already registered the plugin that accepted the data
                factory, accept = Image.OPEN[kind]
                accepted = not accept or accept(prefix)
                if accepted and not isinstance(accepted, str):
                    try:
                        source.seek(0)
                        with factory(source, "") as header:
                            return header.width, header.height, header.format
                    except (SyntaxError, IndexError, TypeError, struct.error):
                        continue
            raise


def _check_bytes(size: int, max_bytes: int) -> None:
    if size == 0:
        raise ImageRejected(UNREADABLE, "empty file")
    if size > max_bytes:
        raise ImageRejected(TOO_LARGE, f"{size:,} bytes is over the limit of {max_bytes:,} bytes")


def _check_header(source: BinaryIO, max_pixels: int) -> tuple[int, int, str | None]:
    """Width, height and format of an image that may be decoded, from its header alone (only the first bytes of
    `source` are read); raises ImageRejected."""
    try:
        width, height, kind = _header_size(source)
    except UnidentifiedImageError as error:
        raise ImageRejected(UNREADABLE, "not an image in a format the decoder knows") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageRejected(UNREADABLE, f"damaged image header ({error})") from error
    except Image.DecompressionBombError as error:  # no plugin read the header again: no size to name
        raise ImageRejected(TOO_LARGE, f"over the limit of {max_pixels:,} pixels") from error
    if width * height > max_pixels:
        raise ImageRejected(TOO_LARGE, f"{width}x{height} pixels is over the limit of {max_pixels:,}")
    if max(width, height) > MAX_SIDE:
        raise ImageRejected(TOO_LARGE, f"{width}x{height} pixels: a side is over the limit of {MAX_SIDE:,}")
    return width, height, kind


def _check_jpeg_ends(data: bytes) -> None:
    # Every complete JPEG ends its scans with an end-of-image marker (data appended after it is no matter). A file
    # cut short and padded, as a download written into a preallocated file, has none, yet may decode to the end,
    # the padding taken for image data.
    if data.find(b"\xff\xd9", _first_scan(data)) < 0:
        raise ImageRejected(UNREADABLE, "truncated JPEG (no end-of-image marker after the image data)")


def _first_scan(data: bytes) -> int:
    """Offset of a JPEG's first start-of-scan marker, found by walking the segments before it, whose lengths skip
    an embedded thumbnail's own markers; 0 when the walk goes astray (libjpeg skips stray bytes, this does not)."""
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xDA:
            return position
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            position += 2
        else:
            position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return 0


@functools.cache
def _opencv_decodes_truncated_jpegs() -> bool:
    """Whether this OpenCV returns pixels for a JPEG whose data ends early, the rest filled with grey after a
    warning on stderr (OpenCV 4 did), rather than failing (OpenCV 5 does)."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", noise)[1]
    return cv2.imdecode(jpeg[: len(jpeg) // 2], cv2.IMREAD_COLOR) is not None


def _check_jpeg_complete(data: bytes, width: int, height: int) -> None:
    """Refuses a JPEG whose data ends before its image does, judged by decoding it (libjpeg in Pillow, which says
    so), not by where an end marker sits: phones and editors append data after it.

    The entropy-coded data of every scan is decoded, at 1/8 scale (libjpeg's DCT scaling): a fraction of the cost
    of a full decode, and 1/64 of its pixels. Other decoding errors are left to OpenCV, which has the last word on
    what it can read.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()
    except Exception as error:  # other errors than truncation are for OpenCV to judge: it has the last word
        if isinstance(error, OSError) and str(error).startswith("image file is truncated"):  # LOAD_TRUNCATED_IMAGES off
            raise ImageRejected(UNREADABLE, "truncated JPEG (the data ends before the image does)") from error


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
    any pixel memory is allocated. Grey, RGBA, CMYK and 16-bit images come out as 8-bit RGB. A truncated JPEG is
    refused as such: when OpenCV fails on a JPEG, a low-cost decode tells whether it was cut short, and an OpenCV
    that fills a truncated JPEG with grey has every JPEG checked so.
    """
    _check_bytes(len(data), max_bytes)
    width, height, kind = _check_header(io.BytesIO(data), max_pixels)
    if kind == "JPEG":
        _check_jpeg_ends(data)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if kind == "JPEG" and (bgr is None or _opencv_decodes_truncated_jpegs()):
        _check_jpeg_complete(data, width, height)
    if bgr is None:
        raise ImageRejected(UNREADABLE, "the decoder could not read the pixels")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
