"""The paper's face crop: the detected box grown by a margin, made square, padded where it leaves the photo."""

from __future__ import annotations

import math

import cv2
import numpy as np


def square_crop(rgb: np.ndarray, box: tuple[int, int, int, int], margin: float, size: int) -> np.ndarray:
    """A size x size crop centred on `box` whose side is the box's longer side plus `margin` of it on each side.

    Parts of the square outside the photo are black.
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
    return cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
