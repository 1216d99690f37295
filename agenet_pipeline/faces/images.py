"""Photo decoding: any common format and mode to 8-bit RGB, EXIF orientation applied, oversized images refused."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from agenet_pipeline.core.status import TOO_LARGE, UNREADABLE

DEFAULT_MAX_PIXELS = 64_000_000


class ImageRejected(Exception):
    """An image that cannot be used; `reason` is the status recorded for its row."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _check_header(data: bytes, max_pixels: int) -> None:
    if not data:
        raise ImageRejected(UNREADABLE, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                width, height, kind = header.width, header.height, header.format
    except UnidentifiedImageError as error:
        raise ImageRejected(UNREADABLE, "not an image in a format the decoder knows") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageRejected(UNREADABLE, f"damaged image header ({error})") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(TOO_LARGE, str(error)) from error
    if width * height > max_pixels:
        raise ImageRejected(TOO_LARGE, f"{width}x{height} pixels is over the limit of {max_pixels:,}")
    if kind == "JPEG" and b"\xff\xd9" not in data[-4096:]:
        raise ImageRejected(UNREADABLE, "truncated JPEG (no end-of-image marker)")


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """8-bit RGB pixels of an encoded image, EXIF orientation applied.

    The size is read from the header first, so an image too large to decode safely is refused before
    any pixel memory is allocated. Grey, RGBA, CMYK and 16-bit images come out as 8-bit RGB.
    """
    _check_header(data, max_pixels)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageRejected(UNREADABLE, "the decoder could not read the pixels")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
