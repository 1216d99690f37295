"""The light runtime (`lite/`) in a fresh virtual environment with only its dependencies: no TensorFlow, and the
same rows, ages and reasons as the full install's `agenet predict` for the same photos.

pip takes the packages from its cache, or from PyPI on a machine that can reach it (about 30 s here). It builds from a
copy of `lite/` and the package, as pip writes build files into the tree it builds.
"""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from agenet_pipeline.serving.cli import main
from agenet_pipeline_tests.conftest import shared_data
from agenet_pipeline_tests.formats import empty_scene, jpeg, png_header_only

LITE = Path(__file__).resolve().parents[2] / "lite"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory) -> Path:
    """A venv with lite[litert] installed from a copy of the sources (pip builds in the source tree)."""
    parent = tmp_path_factory.mktemp("lite")
    for name in ("lite", "agenet_pipeline"):
        shutil.copytree(LITE.parent / name, parent / "src" / name, ignore=shutil.ignore_patterns("__pycache__"))
    folder = parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    source = parent / "src" / "lite"
    installed = subprocess.run([*pip, f"{source}[litert]"], capture_output=True, text=True, timeout=600, check=False)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return folder


def light_predict(venv: Path, bundle: Path, files: list[Path], *options: str) -> list[list[str]]:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    command = [str(venv / "bin" / "agenet"), "predict", "--model", str(bundle), *options, *map(str, files)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return list(csv.reader(completed.stdout.splitlines()))


def full_predict(registry, files: list[Path], capsys) -> list[list[str]]:
    capsys.readouterr()
    assert main(["predict", "--tracking-uri", registry.uri, *map(str, files)]) == 0
    return list(csv.reader(capsys.readouterr().out.splitlines()))


def assert_same_answers(light: list[list[str]], full: list[list[str]], tolerance: float) -> None:
    assert light[0] == full[0] and len(light) == len(full)
    for ours, theirs in zip(light[1:], full[1:]):
        assert ours[:11] == theirs[:11]  # file, status, detail, face, box, detector score, bin, label
        numbers = [np.array([value or "nan" for value in row[11:]], float) for row in (ours, theirs)]
        np.testing.assert_allclose(*numbers, rtol=0, atol=tolerance)  # age and probabilities


def test_the_light_install_has_no_tensorflow_mlflow_or_dagster(light_venv):
    for module in ("tensorflow", "keras", "mlflow", "dagster", "polars", "pandas"):
        found = subprocess.run([str(light_venv / "bin" / "python"), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0 and b"ModuleNotFoundError" in found.stderr, module


def test_bad_photos_are_refused_with_the_reasons_of_the_full_install(light_venv, bundle, registry, tmp_path, capsys):
    files = {
        "notes.txt": b"not a photo",
        "empty.jpg": b"",
        "truncated.jpg": jpeg(empty_scene())[:200],
        "bomb.png": png_header_only(70_000, 70_000),
        "no_face.png": cv2.imencode(".png", empty_scene())[1].tobytes(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    paths = sorted(tmp_path.iterdir())
    light = light_predict(light_venv, bundle, paths)
    assert {row[1] for row in light[1:]} == {"unreadable", "too_large", "no_face"}
    assert_same_answers(light, full_predict(registry, paths, capsys), 0)


@pytest.mark.parametrize("network, tolerance", [("onnx", 1e-4), ("tflite_float32", 1e-4)])
def test_real_photos_get_the_ages_of_the_full_install(light_venv, bundle, registry, capsys, network, tolerance):
    photos = sorted((shared_data("utkface_part1") / "UTKFace").glob("*.jpg"))[::400][:25]
    photos += sorted((shared_data("fgnet") / "images").iterdir())[::100][:10]
    light = light_predict(light_venv, bundle, photos, "--network", network, "--threads", "1")
    assert sum(row[1] == "ok" for row in light) >= 30
    assert_same_answers(light, full_predict(registry, photos, capsys), tolerance)


def test_the_commands_that_need_the_full_install_say_so(light_venv):
    done = subprocess.run([str(light_venv / "bin" / "agenet"), "models"], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "is not installed; the light runtime (agenet-lite) runs only" in done.stderr
