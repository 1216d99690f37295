import shutil
import subprocess
import sys
from pathlib import Path

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
    assert header.split() == ["version", "aliases", "created", "test_mae_years", "test_exact_accuracy", "run_id"]
    assert row.split()[:2] == [registry.version, "champion"] and "12.500" in row and "0.250" in row
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
