from pathlib import Path

import cv2
import numpy as np
import pytest

from agenet_pipeline.demo import synthetic_faces
from agenet_pipeline.demo.synthetic_faces import draw_face

DETECTOR_MODEL = Path(synthetic_faces.__file__).parents[1] / "faces" / "models" / "face_detection_short_range.tflite"


@pytest.fixture(scope="module")
def face_detector():
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_path=str(DETECTOR_MODEL)),
        running_mode=vision.RunningMode.IMAGE,
        min_detection_confidence=0.5,
    )
    detector = vision.FaceDetector.create_from_options(options)

    def detect(rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        result = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        return [
            (
                (
                    d.bounding_box.origin_x,
                    d.bounding_box.origin_y,
                    d.bounding_box.origin_x + d.bounding_box.width,
                    d.bounding_box.origin_y + d.bounding_box.height,
                ),
                d.categories[0].score,
            )
            for d in result.detections
        ]

    yield detect
    detector.close()


def _iou(a, b) -> float:
    overlap = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / area


@pytest.mark.parametrize("size", [256, 200, 64])
def test_draws_an_rgb_image_of_the_requested_size(size):
    image = draw_face(40.0, np.random.default_rng(0), size)
    assert image.shape == (size, size, 3)
    assert image.dtype == np.uint8


def test_is_deterministic_for_a_seeded_generator():
    first = draw_face(30.0, np.random.default_rng(7))
    again = draw_face(30.0, np.random.default_rng(7))
    other = draw_face(30.0, np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 10


@pytest.mark.parametrize("size", [256, 200, 128])
def test_blazeface_finds_exactly_the_drawn_face(face_detector, size):
    found = []
    for seed, age in enumerate(np.linspace(0, 100, 200)):
        image, head_box = synthetic_faces._draw_face_with_box(age, np.random.default_rng(seed), size)
        detections = face_detector(image)
        found.append(len(detections) == 1 and detections[0][1] >= 0.5 and _iou(detections[0][0], head_box) > 0.3)
    assert np.mean(found) >= 0.98


def _head_pixels(image: np.ndarray, head_box, side: int = 16) -> np.ndarray:
    """The head, hair included, cut out and shrunk to side x side: what a face crop would give an age model."""
    x0, y0, x1, y1 = head_box
    y0 -= 0.1 * (y1 - y0)
    head = image[max(0, int(y0)) : int(np.ceil(y1)), max(0, int(x0)) : int(np.ceil(x1))]
    return cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA).ravel() / 255.0


def test_age_is_recoverable_from_the_pixels():
    rng = np.random.default_rng(1000)
    ages = rng.uniform(0, 100, 300)
    features = np.array([_head_pixels(*synthetic_faces._draw_face_with_box(age, rng, 64)) for age in ages])
    features = np.hstack([features, np.ones((len(ages), 1))])
    train, test = slice(0, 200), slice(200, 300)

    gram = features[train].T @ features[train] + np.eye(features.shape[1])
    weights = np.linalg.solve(gram, features[train].T @ ages[train])
    ridge_mae = np.abs(features[test] @ weights - ages[test]).mean()
    mean_mae = np.abs(ages[train].mean() - ages[test]).mean()

    assert ridge_mae < 0.7 * mean_mae
