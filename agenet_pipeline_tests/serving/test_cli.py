import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest

from agenet_pipeline.serving.cli import main, tracking_uri

AGENET = Path(sys.executable).parent / "agenet"


def predict(registry, *args: str) -> int:
    return main(["predict", "--tracking-uri", registry.uri, *args])


def test_a_row_per_face_and_one_per_file_without_a_face(registry, photos, tmp_path, capsys):
    output = tmp_path / "ages.csv"
    assert predict(registry, str(photos), "--output", str(output)) == 0
    table = pl.read_csv(output)
    per_file = dict(table.group_by("file").agg(pl.col("status")).iter_rows())
    assert per_file == {
        str(photos / "empty.png"): ["no_face"],
        str(photos / "group.jpg"): ["ok"] * 3,
        str(photos / "nested" / "one.jpg"): ["ok"],
        str(photos / "notes.txt"): ["unreadable"],
    }
    assert table.columns[:3] == ["file", "status", "detail"] and "p_60+" in table.columns
    faces = table.filter(pl.col("status") == "ok")
    assert faces["age"].is_between(0, 120).all() and faces["face"].to_list() == [0, 1, 2, 0]
    assert "4 files: 4 faces, 1 files without a face, rejected: 1 unreadable" in capsys.readouterr().err


def test_annotate_draws_each_face_of_each_photo_with_a_face(registry, photos, tmp_path, capsys):
    from agenet_pipeline.serving.drawing import BOX_COLOUR

    drawn = tmp_path / "drawn"
    assert predict(registry, str(photos), "--output", str(tmp_path / "ages.csv"), "--annotate", str(drawn)) == 0
    assert sorted(p.name for p in drawn.iterdir()) == ["group.jpg", "one.jpg"]  # no face, no copy
    group = cv2.imread(str(drawn / "group.jpg"))
    original = cv2.imread(str(photos / "group.jpg"))
    assert group.shape == original.shape
    boxes = np.abs(group.astype(int) - BOX_COLOUR).sum(axis=-1) < 60
    for third in range(3):  # a box in each person's third of the photo
        assert boxes[:, third * 200 : (third + 1) * 200].sum() > 100
    assert "2 annotated photos written to" in capsys.readouterr().err


def test_aligned_gives_one_row_per_file(registry, photos, tmp_path):
    output = tmp_path / "ages.parquet"
    assert (
        predict(registry, str(photos / "group.jpg"), str(photos / "empty.png"), "--aligned", "--output", str(output))
        == 0
    )
    table = pl.read_parquet(output)
    assert table["status"].to_list() == ["ok", "ok"] and table["detector_score"].is_null().all()


def test_real_face_crops_aligned_one_row_each(registry, utkface_part1, tmp_path):
    chips = sorted((utkface_part1 / "UTKFace").glob("*.jpg"))[::500]
    folder = tmp_path / "chips"
    folder.mkdir()
    for chip in chips:
        shutil.copy(chip, folder / chip.name)
    (folder / "damaged.jpg").write_bytes(chips[0].read_bytes()[:2000])
    output = tmp_path / "ages.json"
    assert predict(registry, str(folder), "--aligned", "--batch-size", "8", "--output", str(output)) == 0
    table = pl.read_json(output)
    assert table.height == len(chips) + 1 and table["file"].n_unique() == table.height
    assert table.filter(pl.col("status") != "ok")["file"].to_list() == [str(folder / "damaged.jpg")]


def test_the_output_is_csv_on_stdout_by_default(registry, photos, capsys):
    assert predict(registry, str(photos / "nested" / "one.jpg")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("file,status,detail,face,box_x") and len(lines) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere.jpg"], "nowhere.jpg: no such file or folder"),
        (["--output", "ages.xlsx", "."], "--output must end in .csv, .json, .parquet"),
        (["--model", "models:/agenet@nobody", "."], "cannot load models:/agenet@nobody"),
    ],
)
def test_mistakes_are_one_clear_line(registry, photos, monkeypatch, capsys, args, message):
    monkeypatch.chdir(photos)
    assert predict(registry, *args) == 1
    assert message in capsys.readouterr().err


def test_a_missing_store_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AGENET_HOME", str(tmp_path / "home"))
    assert tracking_uri(None) == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert main(["predict", str(tmp_path)]) == 1
    assert "no MLflow store at" in capsys.readouterr().err and not (tmp_path / "home").exists()


def test_models_lists_versions_aliases_and_scores_without_dagster_or_tensorflow(registry):
    done = subprocess.run(
        [str(AGENET), "models", "--tracking-uri", registry.uri],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    columns = ["version", "aliases", "created", "test_mae_years", "test_exact_accuracy", "synthetic", "run_id"]
    assert header.split() == columns
    assert row.split()[:2] == [registry.version, "champion"] and "12.500" in row and "0.250" in row
    assert "unknown" in row.split()  # a version registered without the data.synthetic tag
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, agenet_pipeline.serving.cli; print(sorted({'dagster', 'tensorflow'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


def test_a_model_trained_on_synthetic_faces_is_said_to_be_so(registry, photos, capsys):
    import mlflow

    client = mlflow.MlflowClient(registry.uri)
    client.set_model_version_tag("agenet", registry.version, "data.synthetic", "true")
    try:
        assert predict(registry, str(photos / "nested" / "one.jpg")) == 0
        assert "was trained on synthetic demo faces" in capsys.readouterr().err
        assert main(["models", "--tracking-uri", registry.uri]) == 0
        assert f"version(s) {registry.version} was trained on synthetic" in capsys.readouterr().err
        client.set_model_version_tag("agenet", registry.version, "data.synthetic", "false")
        assert predict(registry, str(photos / "nested" / "one.jpg")) == 0
        assert "synthetic" not in capsys.readouterr().err
    finally:
        client.delete_model_version_tag("agenet", registry.version, "data.synthetic")


def test_models_prints_the_model_card_headline_of_each_evaluated_version(registry, capsys):
    import mlflow

    from agenet_pipeline.tracking.registry import CARD_HEADLINE_TAG

    client = mlflow.MlflowClient(registry.uri)
    client.set_tag(registry.run_id, CARD_HEADLINE_TAG, f"version {registry.version}: test MAE 9.00 years")
    try:
        assert main(["models", "--tracking-uri", registry.uri]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == f"version {registry.version}: test MAE 9.00 years"
    finally:
        client.delete_tag(registry.run_id, CARD_HEADLINE_TAG)
