"""`agenet export`: the bundle of the champion in every format, checked at load, and each network against Keras.

Parity needs a network that decides: the registry's network is untrained, its two most probable bins a few
thousandths apart, so that an int8 rounding flips its top bin on about one photo in seven (measured: 86% on 298
UTKFace photos) whatever the converter does. Each parity test trains a copy for a few seconds on network inputs
made by the served model's path, exports it, and compares the exports with it on other photos.
The champion exported by the command is conftest's `bundle`.
"""

import csv
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest

from agenet_pipeline.core.ages import SEED_BINS, answered_age, in_bins, network_bins
from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline.faces.crop import context_border, decode_crop
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.serving.bundle import MANIFEST, Bundle, BundleError
from agenet_pipeline.serving.cli import main
from agenet_pipeline.serving.exports import NotAnAgeNetModel, ServingParts, export_bundle, serving_parts
from agenet_pipeline.serving.predictor import read_photo
from agenet_pipeline_tests.conftest import shared_data
from agenet_pipeline_tests.formats import jpeg

FLOAT_NETWORKS = ("saved_model", "onnx", "tflite_float32")


def drawn_photos(folder: Path, count: int, seed: int) -> list[tuple[Path, float]]:
    """`count` drawn faces (no real person) of ages spread over 1-80, as JPEG files, with their ages."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = []
    for index, age in enumerate(rng.uniform(1, 80, count)):
        path = folder / f"{index:03d}_{age:.0f}.jpg"
        path.write_bytes(jpeg(draw_face(float(age), rng, 160)))
        photos.append((path, float(age)))
    return photos


def utkface_photos(step: int, offset: int, count: int) -> list[tuple[Path, float]]:
    files = sorted((shared_data("utkface_part1") / "UTKFace").glob("*.jpg"))[offset::step][:count]
    return [(path, float(path.name.split("_")[0])) for path in files]


@pytest.fixture(scope="module")
def champion(registry) -> ServingParts:
    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    return serving_parts("models:/agenet@champion")


def test_export_writes_every_format_with_its_contract_and_logs_it(registry, bundle):
    manifest = Bundle.open(bundle).manifest
    assert set(manifest["networks"]) == {"tflite_float32", "tflite_float16", "tflite_int8", "onnx", "saved_model"}
    assert manifest["source"] == {"model_uri": "models:/agenet@champion", "version": registry.version,
                                  "run_id": registry.run_id}  # fmt: skip
    assert manifest["input"]["shape"] == [None, 32, 32, 3] and manifest["bins"]["labels"] == list(SEED_BINS.labels)
    assert manifest["face_settings"]["margin"] == 0.4
    assert (
        "saved_model/saved_model.pb" in manifest["files"] and "face_detection_short_range.tflite" in manifest["files"]
    )
    assert "float32, shape (N, 32, 32, 3)" in (bundle / "README.md").read_text()
    import onnx

    assert {o.domain: o.version for o in onnx.load(bundle / "agenet.onnx").opset_import}[""] == 18
    logged = mlflow.MlflowClient(registry.uri).list_artifacts(registry.run_id, "exports/bundle")
    assert {Path(item.path).name for item in logged} >= {MANIFEST, "agenet.onnx", "agenet_int8.tflite", "saved_model"}


def test_saved_model_serves_the_keras_network_through_its_signature(champion, bundle):
    import tensorflow as tf

    pixels = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    signature = tf.saved_model.load(str(bundle / "saved_model")).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["image"]
    np.testing.assert_allclose(saved_model_answer(bundle, pixels), champion.network.predict_on_batch(pixels), atol=1e-4)


@pytest.mark.parametrize("damage", ["alter", "remove"])
@pytest.mark.parametrize("name", ["agenet.onnx", "face_detection_short_range.tflite", "saved_model/saved_model.pb"])
def test_a_missing_or_altered_file_is_refused_at_load_by_name(bundle, tmp_path, damage, name):
    copy = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    if damage == "alter":
        with (copy / name).open("ab") as file:
            file.write(b"\0")
    else:
        (copy / name).unlink()
    with pytest.raises(BundleError, match=rf"{copy / name}: {'altered' if damage == 'alter' else 'missing'}"):
        Bundle.open(copy)


def test_a_folder_without_manifest_is_not_a_bundle(tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path), str(tmp_path)]) == 1
    assert f"{tmp_path / MANIFEST}: missing" in capsys.readouterr().err


class Plain(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def test_exporting_a_model_that_is_not_agenet_names_what_it_lacks(registry, tmp_path, capsys):
    mlflow.set_tracking_uri(registry.uri)
    with mlflow.start_run():
        uri = mlflow.pyfunc.log_model(name="plain", python_model=Plain()).model_uri
    with pytest.raises(NotAnAgeNetModel, match="lacks config 'bins', .*artifact 'keras_model', artifact 'face_det"):
        serving_parts(uri)
    assert main(["export", "--tracking-uri", registry.uri, "--model", uri, "--output", str(tmp_path / "b")]) == 1
    assert "is not an AgeNet serving model" in capsys.readouterr().err and not (tmp_path / "b").exists()
    assert main(["export", "--tracking-uri", registry.uri, "--model", "models:/agenet/99", "--output", "b"]) == 1
    assert "cannot export models:/agenet/99 from sqlite:" in capsys.readouterr().err


def test_a_bundle_answers_as_the_served_model(registry, bundle, photos, capsys):
    """`agenet predict` on the bundle (ONNX Runtime) and on the registered model: the same rows and reasons."""
    assert main(["predict", "--tracking-uri", registry.uri, str(photos)]) == 0
    served = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert main(["predict", "--model", str(bundle), str(photos)]) == 0
    exported = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert exported[0] == served[0] and len(exported) == len(served)
    assert {row[1] for row in served} == {"status", "ok", "no_face", "unreadable"}
    for ours, reference in zip(exported[1:], served[1:]):
        assert ours[:11] == reference[:11]  # file, status, detail, face, box, score, bin, label
        numbers = [np.array([value or "nan" for value in row[11:]], float) for row in (ours, reference)]
        np.testing.assert_allclose(*numbers, rtol=0, atol=1e-4)  # age and probabilities


def network_inputs(parts: ServingParts, photos: list[tuple[Path, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The first face of each photo as the served model feeds it to the network, with the photo's age."""
    from agenet_pipeline.faces.detector import FaceDetector
    from agenet_pipeline.serving.predictor import AgePredictor

    inputs, ages = [], []
    with FaceDetector(parts.detector) as detector:
        predictor = AgePredictor(lambda x: x, parts.input_size, detector, parts.bins, parts.settings)
        for path, age in photos:
            faces = predictor.faces(read_photo(path, parts.settings.max_pixels))
            inputs += [faces[0].pixels] if faces else []
            ages += [age] if faces else []
    return np.stack(inputs).astype(np.float32), np.array(ages)


def saved_model_answer(bundle: Path, pixels: np.ndarray) -> np.ndarray:
    """The SavedModel's answer through its serving signature, as TF Serving calls it."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(bundle / "saved_model")).signatures["serving_default"]
    (answer,) = signature(image=tf.constant(pixels)).values()
    return answer.numpy()


def exported_parity(champion: ServingParts, train, test, folder: Path) -> dict[str, dict[str, float]]:
    """A copy of the champion trained on `train`, exported with int8 calibrated on those training inputs, and each
    export's agreement with it on `test`: largest probability difference, top-bin agreement, MAE in years."""
    import keras

    network = keras.models.clone_model(champion.network)
    network.set_weights(champion.network.get_weights())
    network.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    pixels, ages = network_inputs(champion, train)
    keras.utils.set_random_seed(0)
    network.fit(pixels, network_bins(network.output_shape[-1]).index(ages), epochs=60, batch_size=32, verbose=0)
    parts = ServingParts(network, champion.detector, champion.detector_sha256, champion.bins, champion.settings)
    bundle = Bundle(folder, export_bundle(parts, folder, calibration=pixels))
    pixels, ages = network_inputs(champion, test)
    keras_answer = network.predict_on_batch(pixels)
    keras_mae = np.abs(answered_age(keras_answer) - ages).mean()
    found = {}
    for name in ("saved_model", "onnx", "tflite_float32", "tflite_float16", "tflite_int8"):
        answer = saved_model_answer(folder, pixels) if name == "saved_model" else bundle.network(name, 1)(pixels)
        found[name] = {
            "difference": float(np.abs(answer - keras_answer).max()),
            "same_bin": float((in_bins(answer).argmax(1) == in_bins(keras_answer).argmax(1)).mean()),
            "mae_gap": float(abs(np.abs(answered_age(answer) - ages).mean() - keras_mae)),
        }
    return found


def assert_parity(found: dict[str, dict[str, float]]) -> None:
    for name in FLOAT_NETWORKS:
        assert found[name]["difference"] <= 1e-4, (name, found[name])
    assert found["tflite_float16"]["same_bin"] >= 0.99, found["tflite_float16"]
    assert found["tflite_int8"]["same_bin"] >= 0.97, found["tflite_int8"]
    assert found["tflite_int8"]["mae_gap"] <= 0.3, found["tflite_int8"]


def test_exports_agree_with_keras_on_drawn_faces(champion, tmp_path):
    train = drawn_photos(tmp_path / "train", 400, seed=1)
    test = drawn_photos(tmp_path / "test", 300, seed=2)
    assert_parity(exported_parity(champion, train, test, tmp_path / "bundle"))


def test_exports_agree_with_keras_on_real_photos(champion, tmp_path):
    """400 UTKFace photos to train on, 300 others to compare on."""
    found = exported_parity(champion, utkface_photos(20, 1, 400), utkface_photos(30, 0, 300), tmp_path / "bundle")
    assert_parity(found)


def test_the_bundle_readme_describes_the_crop_the_network_was_trained_on(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text())
    readme = (bundle / "README.md").read_text()
    assert f"JPEG quality {manifest['face_settings']['jpeg_quality']}" in readme
    assert f"plus {manifest['face_settings']['margin']} of it on each" in readme
    faces = manifest["face_settings"]
    assert faces["context"] == FaceSettings().context
    assert f"the outer {context_border(faces['crop_size'], faces['margin'], faces['context'])} pixels" in readme
    # The champion's head is a year each: its output, and how the paper's bins are read from it.
    assert manifest["output"]["shape"] == [None, 101] and manifest["output"]["bins"]["name"] == "years"
    assert "shape (N, 101): probabilities of the years of life 0, 1, ..., 100+" in readme
    assert "Run the network on the face and on its mirror image" in readme
    assert "the age is k - 0.5 + (0.5 - C) / p." in readme
    assert "The bin is the one that holds year k (the bins are 0-2, 3-6," in readme


def test_int8_calibrates_on_the_usable_training_crops_of_the_versions_datasets(tmp_path):
    """What `agenet export` calibrates on by default: the training split's face crops in the home, decoded as
    training decodes them; test rows and rows without a face are left out."""
    from agenet_pipeline.core.files import write_parquet
    from agenet_pipeline.core.home import Home
    from agenet_pipeline.faces.settings import FaceSettings
    from agenet_pipeline.faces.storage import shard_path, write_shard
    from agenet_pipeline.serving.exports import training_crops

    home = Home.at(tmp_path)
    rng = np.random.default_rng(0)
    crops = [jpeg(draw_face(float(age), rng, 256)) for age in (10, 30, 50, 70)]
    faces = pl.DataFrame({"row": [0, 1, 2, 3], "status": ["ok", "ok", "no_face", "ok"], "crop_jpeg": crops})
    write_shard(faces, shard_path(home.faces_folder("utkface"), 0), "test")
    splits = pl.DataFrame({"dataset": "utkface", "row": [0, 1, 2, 3], "split": ["train", "test", "train", "train"]})
    write_parquet(splits, home.splits_path)
    found = training_crops(home, ["utkface"], FaceSettings(), 32)
    expected = [decode_crop(crops[row], 256, 32) for row in (0, 3)]
    np.testing.assert_array_equal(found, np.stack(expected).astype(np.float32))
    with pytest.raises(FileNotFoundError, match="no face shards"):
        training_crops(home, ["appa_real"], FaceSettings(), 32)
