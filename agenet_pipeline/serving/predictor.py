"""Ages for photos: decode, find the faces, crop them as the training crops were made, run the network.

This module and the ones it imports travel with the served model (see `packaging.py`): it may import only
`core.ages`, `core.mirroring`, `core.status` and `faces.images`, `faces.crop`, `faces.detector`, `faces.settings`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agenet_pipeline.core.ages import AgeBins, answered_age, predicted_bins
from agenet_pipeline.core.mirroring import output_both_ways
from agenet_pipeline.core.status import OUTSIDE_ROOT, TOO_LARGE, UNREADABLE
from agenet_pipeline.faces.crop import decode_crop, encode_crop, square_crop
from agenet_pipeline.faces.detector import FaceDetector
from agenet_pipeline.faces.images import MAX_SIDE, ImageRejected, decode_rgb, read_image_file
from agenet_pipeline.faces.settings import FaceSettings

# N x S x S x 3 float32 pixels 0-255 -> N x bins probabilities. For a Keras model, its `predict_on_batch`: Keras
# compiles it into one graph on the first call, so a call costs about as little as a tf.function of the model,
# and far less than an eager `model(x)` (see benchmarks/inference.py).
Network = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height in the photo's pixels
    detector_score: float | None  # None when the photo was taken as an aligned crop
    pixels: np.ndarray  # the network's input: S x S x 3 RGB uint8


def photo_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files named and every file under the folders named (recursively, hidden ones left out), in order.

    Every entry that is not a folder counts, so that each gets a row: a device, a pipe or a dangling symlink is
    refused by the model with a reason (it checks with stat, which does not block, before it opens a file).
    """
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = (f for f in path.rglob("*") if not f.is_dir())
            files += sorted(f for f in found if not any(part.startswith(".") for part in f.relative_to(path).parts))
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def read_photo(item, max_pixels: int, root: Path | None = None) -> np.ndarray:
    """RGB pixels of one input: encoded bytes, a file (an os.PathLike; inside `root` when one is given) or an RGB
    uint8 array. Raises ImageRejected."""
    if isinstance(item, bytes | bytearray | memoryview):
        return decode_rgb(bytes(item), max_pixels)
    if isinstance(item, os.PathLike):
        return decode_rgb(_read_file(Path(item), max_pixels, root), max_pixels)
    if isinstance(item, np.ndarray):
        return _checked_array(item, max_pixels)
    raise ImageRejected(UNREADABLE, f"expected encoded image bytes, a path or an RGB array, not {type(item).__name__}")


def inside(root: Path, path: Path) -> Path:
    """`path` (relative to `root` unless absolute) with its symlinks resolved, if it stays inside `root` (itself
    resolved). The rejection is the same whether the file exists or not: it tells nothing of what lies outside."""
    try:
        real = (root / path).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        real = None
    if real is None or not real.is_relative_to(root):
        raise ImageRejected(OUTSIDE_ROOT, f"{path}: not inside the folder photos are read from")
    return real


def _read_file(path: Path, max_pixels: int, root: Path | None) -> bytes:
    real = path if root is None else inside(root, path)
    try:
        return read_image_file(real, max_pixels)
    except ImageRejected as rejection:
        raise ImageRejected(rejection.reason, f"{path}: {rejection.detail}") from rejection


def _checked_array(pixels: np.ndarray, max_pixels: int) -> np.ndarray:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageRejected(UNREADABLE, f"an array must be H x W x 3 uint8 RGB, not {pixels.shape} {pixels.dtype}")
    if pixels.shape[0] * pixels.shape[1] > max_pixels:
        raise ImageRejected(
            TOO_LARGE, f"{pixels.shape[1]}x{pixels.shape[0]} pixels is over the limit of {max_pixels:,}"
        )
    if max(pixels.shape[:2]) > MAX_SIDE:  # the detector would abort the process
        raise ImageRejected(
            TOO_LARGE, f"{pixels.shape[1]}x{pixels.shape[0]} pixels: a side is over the limit of {MAX_SIDE:,}"
        )
    return pixels


class AgePredictor:
    """One network, one detector (reused for every photo) and the age bins the network was trained on."""

    def __init__(
        self,
        network: Network,
        input_size: int,
        detector: FaceDetector,
        bins: AgeBins,
        settings: FaceSettings,
        batch_size: int = 64,
    ):
        self.network, self.input_size, self.detector = network, input_size, detector
        self.bins, self.settings, self.batch_size = bins, settings, batch_size
        output_both_ways(network, np.zeros((1, input_size, input_size, 3), np.float32))  # trace now, not on a photo

    def faces(self, rgb: np.ndarray, aligned: bool = False) -> list[Face]:
        """Every face confident and large enough, most confident first; `aligned`: the photo is one face crop."""
        if aligned:
            whole = (0, 0, rgb.shape[1], rgb.shape[0])
            return [Face(whole, None, self._network_input(rgb, whole, 0.0))]
        return [
            Face(d.box, d.score, self._network_input(rgb, d.box, self.settings.margin))
            for d in self.settings.usable_faces(self.detector.detect(rgb))
        ]

    def _network_input(self, rgb: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
        """The face as the network saw faces in training: the face stage's square crop stored as its JPEG, then
        decoded and sized as the training input decodes it."""
        settings = self.settings
        jpeg = encode_crop(square_crop(rgb, box, margin, settings.crop_size, settings.context), settings.jpeg_quality)
        return decode_crop(jpeg, settings.crop_size, self.input_size)

    def probabilities(self, faces: Sequence[Face]) -> np.ndarray:
        """The network's output for each face (faces x outputs: `core.mirroring`), in batches."""
        if not faces:
            return np.zeros((0, len(self.bins)), np.float32)
        pixels = np.stack([face.pixels for face in faces]).astype(np.float32)
        return np.concatenate(
            [
                output_both_ways(self.network, pixels[i : i + self.batch_size])
                for i in range(0, len(pixels), self.batch_size)
            ]
        )

    def close(self) -> None:
        self.detector.close()


def face_answer(probabilities: np.ndarray, bins: AgeBins) -> dict:
    """What the model says of one face, from the network's output for it (over `bins` or over years): its bin
    (`core.ages.predicted_bins`) and its age (`core.ages.answered_age`)."""
    best = int(predicted_bins(probabilities, bins))
    return {"bin": best, "bin_label": bins.labels[best], "age": float(answered_age(probabilities))}
