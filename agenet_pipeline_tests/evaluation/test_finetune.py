"""The Adience protocol with a real (tiny) network: on drawn faces in two folds, and on the real Adience sample."""

import keras
import polars as pl
import pytest

from agenet_pipeline.datasets.adience import read_adience
from agenet_pipeline.datasets.labels import binned_labels
from agenet_pipeline.datasets.manifest import number_rows
from agenet_pipeline.datasets.splits import EVALUATION, assign_splits
from agenet_pipeline.evaluation.adience import benchmark
from agenet_pipeline.evaluation.finetune import FineTuning, fine_tuned_predictions, split_by_fold
from agenet_pipeline.faces.detector import resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.sharded import run_face_stage
from agenet_pipeline.faces.storage import scan_faces
from agenet_pipeline.model.architecture import ModelConfig, build_model
from agenet_pipeline.model.batch_prediction import predict_sets
from agenet_pipeline.model.records import shard_files, write_shards
from agenet_pipeline_tests.formats import write_records

SETTINGS = FineTuning(epochs=1, batch_size=8)
FACES = {"row": pl.Int64, "fold": pl.Int64, "user_id": pl.String}


@pytest.fixture(scope="module", params=["bins", "years"])
def model_path(tmp_path_factory, request):
    path = tmp_path_factory.mktemp("model") / "age_model.keras"
    model = build_model(ModelConfig(input_size=32, filters=(8, 16), dense_units=(16,), head=request.param))
    model.compile(loss="categorical_crossentropy")
    model.save(path)
    return path


def test_each_fold_is_tested_by_a_model_fine_tuned_on_the_others(tmp_path, model_path):
    files = [str(write_records(tmp_path / "evaluation-adience.tfrecord", [5, 28, 40, 60] * 4, 0, dataset="adience"))]
    faces = pl.DataFrame({"row": range(16), "fold": [0] * 8 + [3] * 8, "user_id": [f"u{i // 4}" for i in range(16)]})
    work = tmp_path / "work"
    work.mkdir()
    tuned, skipped = fine_tuned_predictions(model_path, files, faces, SETTINGS, work)
    assert skipped == {}
    assert sorted(tuned.keys["row"].to_list()) == list(range(16))
    result = benchmark(tuned, faces, skipped)
    assert result.folds["fold"].unique().sort().to_list() == [0, 3]
    assert result.summary["folds"].to_list() == [2, 2]
    assert [note.split(":")[0] for note in result.notes] == ["fold 1", "fold 2", "fold 4"]


def test_fine_tuning_refuses_folds_that_share_a_person(tmp_path, model_path):
    files = [str(write_records(tmp_path / "evaluation-adience.tfrecord", [28, 40], 0, dataset="adience"))]
    faces = pl.DataFrame({"row": [0, 1], "fold": [0, 1], "user_id": ["same", "same"]})
    with pytest.raises(ValueError, match="faces in several folds"):
        fine_tuned_predictions(model_path, files, faces, SETTINGS, tmp_path)


def test_a_record_without_a_fold_is_an_error(tmp_path):
    files = [str(write_records(tmp_path / "evaluation-adience.tfrecord", [28, 40], 0, dataset="adience"))]
    with pytest.raises(ValueError, match="row 1 .* has no fold"):
        split_by_fold(files, {0: 0}, tmp_path)


def test_the_whole_protocol_runs_on_the_real_adience_sample(adience_sample, tmp_path, model_path):
    """19 real faces, all 25-32, all in fold 0: one fold scored, four skipped with a note, and the fine-tuned
    variant skipped for want of other folds, with no division by zero anywhere."""
    faces_folder, shards = tmp_path / "faces", tmp_path / "tfrecords"
    settings = FaceSettings(crop_size=64, fallback_whole_image=True)
    manifest = number_rows(read_adience(adience_sample))
    run_face_stage(manifest, faces_folder, resolve_model(), settings, workers=1)
    splits = assign_splits(binned_labels([scan_faces(faces_folder).drop("crop_jpeg", "box").collect()]))
    evaluated = splits.filter(pl.col("split") == EVALUATION)
    assert evaluated.height == 19
    write_shards(evaluated, "adience", faces_folder, shards, "evaluation-adience")
    files = [str(f) for f in shard_files(shards, "evaluation-adience")]

    result = benchmark(predict_sets(keras.models.load_model(model_path), {(EVALUATION, "adience"): files}), evaluated)
    assert result.folds["fold"].unique().to_list() == [0] and result.folds["faces"].unique().to_list() == [19]
    assert result.folds["guess_exact"].unique().to_list() == [1.0]  # every face is 25-32
    assert [note.split(":")[0] for note in result.notes] == ["fold 1", "fold 2", "fold 3", "fold 4"]
    assert result.summary["exact_std"].null_count() == 2

    tuned, skipped = fine_tuned_predictions(model_path, files, evaluated, SETTINGS, tmp_path)
    fine_tuned = benchmark(tuned, evaluated, skipped)
    assert len(tuned) == 0 and fine_tuned.folds.is_empty() and fine_tuned.mean("bin mass", "exact") is None
    assert fine_tuned.notes[0] == "fold 0: no faces in the other folds to fine-tune on, skipped"


def test_no_adience_shards_means_nothing_to_fine_tune(tmp_path, model_path):
    tuned, skipped = fine_tuned_predictions(model_path, [], pl.DataFrame(schema=FACES), SETTINGS, tmp_path)
    assert len(tuned) == 0 and skipped == {}
    assert len(benchmark(tuned, pl.DataFrame(schema=FACES), skipped).notes) == 5
