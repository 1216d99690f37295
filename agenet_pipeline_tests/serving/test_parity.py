"""The served model sees a face exactly as training did: the same face, the same crop, the same decoding.

Real UTKFace photos go through the face stage and the training input pipeline (`model.input.examples`: the
decoded training example, no augmentation) on one side, and through the served model's predictor on the other.

Tolerance: per photo, the mean absolute difference of the two network inputs is at most 0.25 of 255 levels, and
no pixel differs by more than 2. Both decode the crop's JPEG with libjpeg's accurate inverse DCT at the same scale,
so where the crop is 2, 4 or 8 times the input (or the input itself) the two are identical; otherwise both resize
by area averaging (TensorFlow's and OpenCV's), which differ by rounding: at most 1 level, 0.06 on average,
measured on 300 UTKFace photos. The predicted bins of one network on both must agree on at least 99% of the photos.
"""

import dataclasses

import cv2
import numpy as np
import polars as pl
import pytest

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.datasets.manifest import number_rows
from agenet_pipeline.datasets.utkface import read_utkface
from agenet_pipeline.faces.detector import FaceDetector, resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.sharded import run_face_stage
from agenet_pipeline.faces.storage import read_faces
from agenet_pipeline.model.records import write_shards
from agenet_pipeline_tests.conftest import shared_data

PHOTOS_PER_BIN = 20
MEAN_TOLERANCE = 0.25
PIXEL_TOLERANCE = 2


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A real UTKFace manifest: PHOTOS_PER_BIN photos of each age bin."""
    manifest = read_utkface(shared_data("utkface_part1")).filter(pl.col("status") == "ok")
    manifest = manifest.with_columns(pl.Series("bin", SEED_BINS.index(manifest["age"].to_numpy())))
    chosen = manifest.group_by("bin", maintain_order=True).head(PHOTOS_PER_BIN).sort("image_path")
    return number_rows(chosen.drop("bin"))


def training_inputs(photos, settings: FaceSettings, input_size: int, folder) -> dict[int, np.ndarray]:
    """Each usable row's network input as training decodes it: face stage, TFRecord shards, `examples`."""
    from agenet_pipeline.model.input import examples

    run_face_stage(photos, folder / "faces", resolve_model(), settings)
    faces = read_faces(folder / "faces").filter(pl.col("status") == "ok")
    faces = faces.with_columns(pl.Series("bin", SEED_BINS.index(faces["age"].to_numpy())))
    files = write_shards(faces, "utkface", folder / "faces", folder / "shards", "test-utkface")
    inputs = {}
    for batch in examples([str(f.path) for f in files], input_size, 32):
        for row, image in zip(batch["row"].numpy(), batch["image"].numpy()):
            inputs[int(row)] = image
    return inputs, faces


def served_inputs(photos, faces, settings: FaceSettings, input_size: int) -> dict[int, np.ndarray]:
    """Each row's network input as the served model makes it from the photo: the first face it answers for."""
    from agenet_pipeline.serving.predictor import AgePredictor

    with FaceDetector(resolve_model()) as detector:
        predictor = AgePredictor(
            lambda x: np.zeros((len(x), len(SEED_BINS))), input_size, detector, SEED_BINS, settings
        )
        inputs = {}
        paths = dict(photos.select("row", "image_path").iter_rows())
        for row, source in faces.select("row", "face_source").iter_rows():
            rgb = cv2.cvtColor(cv2.imread(paths[row]), cv2.COLOR_BGR2RGB)
            found = predictor.faces(rgb, aligned=source == "whole_image")
            inputs[row] = found[0].pixels
    return inputs


@pytest.mark.parametrize(
    ("input_size", "settings"),
    [
        (64, FaceSettings()),
        (128, FaceSettings(margin=0.25, context=None)),
        (100, FaceSettings(crop_size=200)),
        (96, FaceSettings()),
    ],
    ids=["64px", "128px-margin-0.25-no-context", "100px-crop-200", "96px-resized"],
)
def test_served_inputs_are_the_training_examples(photos, input_size, settings, tmp_path):
    import keras

    from agenet_pipeline.model.architecture import ModelConfig, build_model

    trained, faces = training_inputs(photos, settings, input_size, tmp_path)
    served = served_inputs(photos, faces, settings, input_size)
    assert len(trained) == len(served) == faces.height >= 0.9 * photos.height
    rows = sorted(trained)
    differences = [np.abs(trained[r].astype(np.float32) - served[r].astype(np.float32)) for r in rows]
    means = np.array([d.mean() for d in differences])
    assert means.max() <= MEAN_TOLERANCE, f"mean differences up to {means.max():.2f} levels"
    assert max(d.max() for d in differences) <= PIXEL_TOLERANCE

    keras.utils.set_random_seed(0)
    network = build_model(ModelConfig(input_size=input_size, filters=(8, 16, 32), dense_units=(32,), pooled_layers=3))
    on_trained = network.predict(np.stack([trained[r] for r in rows]).astype(np.float32), verbose=0).argmax(1)
    on_served = network.predict(np.stack([served[r] for r in rows]).astype(np.float32), verbose=0).argmax(1)
    assert np.mean(on_trained == on_served) >= 0.99


def test_a_changed_margin_changes_the_served_crop_as_it_changes_the_trained_one(photos, tmp_path):
    """The served crop follows the settings it is given: with the training crops' margin it matches them, with
    the default margin it does not."""
    narrow = FaceSettings(margin=0.1)
    trained, faces = training_inputs(photos.head(20), narrow, 64, tmp_path)
    matching = served_inputs(photos, faces, narrow, 64)
    default = served_inputs(photos, faces, dataclasses.replace(narrow, margin=FaceSettings().margin), 64)
    detected = [r for r, s in faces.select("row", "face_source").iter_rows() if s == "detector"]
    assert detected
    assert all(np.array_equal(trained[r], matching[r]) for r in detected)
    assert all(np.abs(trained[r].astype(int) - default[r].astype(int)).mean() > 5 for r in detected)
