"""The face detector: MediaPipe Tasks FaceDetector running the BlazeFace short-range network.

MediaPipe 1.x ships no model file. The network this project uses is the one inside the mediapipe 0.10.21
wheel (`mediapipe/modules/face_detection/face_detection_short_range.tflite`, Apache-2.0); a copy ships in
this package under `faces/models/` and is checked against its published SHA-256 before use.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

BLAZEFACE_SHORT_RANGE_SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
BUNDLED_MODEL = Path(__file__).parent / "models" / "face_detection_short_range.tflite"
# The detector reports candidates down to this score; the face stage decides what is good enough.
CANDIDATE_SCORE = 0.25

HOW_TO_SUPPLY = (
    "Supply the BlazeFace short-range model: set the face_detector resource's model_path to a copy of "
    "mediapipe/modules/face_detection/face_detection_short_range.tflite from the mediapipe 0.10.21 wheel "
    "(pip download mediapipe==0.10.21 --no-deps, then unzip), or reinstall agenet-pipeline, which ships it."
)


class DetectorModelError(RuntimeError):
    pass


def resolve_model(model_path: str | None = None, sha256: str | None = BLAZEFACE_SHORT_RANGE_SHA256) -> Path:
    """The detector model to load: `model_path` when given, else the bundled copy; verified when `sha256` is set."""
    path = Path(model_path).expanduser() if model_path else BUNDLED_MODEL
    if not path.is_file():
        raise DetectorModelError(f"face detector model {path} not found. {HOW_TO_SUPPLY}")
    if sha256:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != sha256:
            raise DetectorModelError(
                f"face detector model {path} has SHA-256 {actual}, expected {sha256}. {HOW_TO_SUPPLY}"
            )
    return path.absolute()


@dataclass(frozen=True)
class Detection:
    box: tuple[int, int, int, int]  # x, y, width, height in source pixels
    score: float


def _mediapipe_tasks():
    """MediaPipe's task API, imported without TensorFlow: where TensorFlow is installed, MediaPipe imports it only
    for documentation decorators and a file opener it falls back from: 3.7 s of import in place of 0.45 s."""
    if "tensorflow" in sys.modules:
        from mediapipe.tasks.python import BaseOptions, vision
    else:
        sys.modules["tensorflow"] = None  # an import of it now fails as if it were not installed
        try:
            from mediapipe.tasks.python import BaseOptions, vision
        finally:
            del sys.modules["tensorflow"]  # so that whoever needs TensorFlow later still imports it
    return BaseOptions, vision


class FaceDetector:
    """Finds faces in RGB images; use as a context manager so that the native graph is closed."""

    def __init__(self, model_path: Path):
        BaseOptions, vision = _mediapipe_tasks()
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=CANDIDATE_SCORE,
        )
        self._detector = vision.FaceDetector.create_from_options(options)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image, most confident first."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        found = [
            Detection(
                box=(d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width, d.bounding_box.height),
                score=float(d.categories[0].score),
            )
            for d in self._detector.detect(image).detections
        ]
        return sorted(found, key=lambda d: d.score, reverse=True)

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
