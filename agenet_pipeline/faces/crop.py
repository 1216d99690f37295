"""The paper's face crop: the detected box grown by a margin, made square, padded where it leaves the photo; and,
beyond the face's surroundings, black whatever the photo shows."""

from __future__ import annotations

import math

import cv2
import numpy as np


def square_crop(
    rgb: np.ndarray, box: tuple[int, int, int, int], margin: float, size: int, context: float | None = None
) -> np.ndarray:
    """A size x size crop centred on `box` whose side is the box's longer side plus `margin` of it on each side.

    Parts of the square outside the photo are black, and so is all outside a square of `context` times the box's
    longer side around the box (None: nothing): aligned face chips show nothing there, so that a face from a full
    photo is seen as a face from a chip was.
    """
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    left, top = x + w / 2 - side / 2, y + h / 2 - side / 2
    height, width = rgb.shape[:2]
    x0, y0 = max(math.floor(left), 0), max(math.floor(top), 0)
    x1, y1 = min(math.ceil(left + side), width), min(math.ceil(top + side), height)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((size, size, 3), np.uint8)
    region, left, top = rgb[y0:y1, x0:x1], left - x0, top - y0
    scale = size / side
    shrink_x = shrink_y = 1.0
    if scale < 0.5:  # shrink by area first: the affine resampling alone would alias
        factor = int(1 / scale)
        small = (max(region.shape[1] // factor, 1), max(region.shape[0] // factor, 1))
        shrink_x, shrink_y = small[0] / region.shape[1], small[1] / region.shape[0]
        region = cv2.resize(region, small, interpolation=cv2.INTER_AREA)
    matrix = np.float32([[scale / shrink_x, 0, -left * scale], [0, scale / shrink_y, -top * scale]])
    crop = cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    border = context_border(size, margin, context)
    if border > 0:
        crop[:border], crop[size - border :], crop[:, :border], crop[:, size - border :] = 0, 0, 0, 0
    return crop


def context_border(size: int, margin: float, context: float | None) -> int:
    """Pixels on each side of a `size` crop that lie beyond `context` box sides around the box (made black)."""
    if not context:
        return 0
    return max(round(size * (1 - context / (1 + 2 * margin)) / 2), 0)


def encode_crop(crop: np.ndarray, quality: int) -> bytes:
    """An RGB crop as the face stage stores it: a JPEG of the given quality."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding of a face crop failed")
    return encoded.tobytes()


# libjpeg decodes at 1/2, 1/4 or 1/8 of the size for a fraction of the work (the DCT scaling that training uses).
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_crop(jpeg: bytes, crop_size: int, input_size: int) -> np.ndarray:
    """A stored crop (`crop_size` a side) as the network sees it in training (`model.input`): decoded at the
    coarsest DCT scale that keeps `input_size` pixels a side, then resized to `input_size` if it is not that size."""
    ratio = max((r for r in (1, 2, 4, 8) if crop_size // r >= input_size), default=1)
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), _REDUCED.get(ratio, cv2.IMREAD_COLOR))
    if bgr is None:
        raise ValueError("a face crop could not be decoded")
    if bgr.shape[:2] != (input_size, input_size):
        bgr = cv2.resize(bgr, (input_size, input_size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
