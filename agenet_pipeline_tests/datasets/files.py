"""Files in the datasets' real formats, for the reader tests."""

import zlib
from pathlib import Path

import cv2
import numpy as np


def write_jpeg(path: Path) -> Path:
    """A tiny JPEG whose pixels, and so whose content hash, differ from one path to another."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(zlib.crc32(str(path).encode())).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    path.write_bytes(data.tobytes())
    return path
