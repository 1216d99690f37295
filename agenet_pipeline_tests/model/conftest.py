from pathlib import Path

import cv2
import numpy as np
import pytest

from agenet_pipeline.datasets.synthetic_faces import draw_face
from agenet_pipeline.model.bins import SEED_BINS


def write_records(path: Path, ages, seed: int, size: int = 48, dataset: str = "utkface", first_row: int = 0) -> Path:
    """A TFRecord file of drawn faces in the training shards' format."""
    import tensorflow as tf

    from agenet_pipeline.faces.tfrecords import _example

    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row, age in enumerate(ages, start=first_row):
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(draw_face(float(age), rng, size), cv2.COLOR_RGB2BGR))[1].tobytes()
            writer.write(_example(jpeg, int(SEED_BINS.index(age)), float(age), dataset, row))
    return path


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> dict[str, list[str]]:
    """Small train and validation TFRecord sets with every bin present."""
    folder = tmp_path_factory.mktemp("records")
    ages = np.array([1, 5, 10, 15, 20, 25, 30, 40, 50, 70] * 6)
    return {
        "train": [
            str(write_records(folder / "train-a.tfrecord", ages[:30], 0)),
            str(write_records(folder / "train-b.tfrecord", ages[30:], 1, first_row=30)),
        ],
        "validation": [str(write_records(folder / "validation.tfrecord", ages[:20], 2, first_row=60))],
    }
