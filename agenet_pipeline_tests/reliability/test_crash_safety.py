"""Crash safety of every file the pipeline writes: a writer stopped at any point leaves, under each real file name,
a whole version (the last or the new one) or nothing, never a part of one, and the re-run writes it whole. A face
shard may be left newer than its checksum: the next run finds it damaged and redoes it. A writer of several files
(the TFRecord shards of a split, a checkpoint's weights and epoch) may leave some of each version, each whole.

WRITERS has one entry per kind of file: it writes the file where the pipeline does, through the pipeline's own
writing code, with content that says which version it is, and reads it back as the next run would (an error when a
file is not whole). Each writer is stopped three ways: at each of its renames (everything written, not yet
published), by a real SIGKILL at a random moment of a loop of writes, and watched for any file that appears
under its real name other than by a rename.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np
import polars as pl
import pytest
import tensorflow as tf

from agenet_pipeline.core.files import write_bytes, write_parquet
from agenet_pipeline.core.home import Home
from agenet_pipeline.datasets.utkface import read_utkface
from agenet_pipeline.demo.writers import demo_dataset
from agenet_pipeline.evaluation.figures import confusion_figure
from agenet_pipeline.evaluation.model_report import score_file
from agenet_pipeline.faces.preview import preview_grid
from agenet_pipeline.faces.storage import CorruptShardError, shard_path, verify_shard, write_shard
from agenet_pipeline.model.records import feature_spec, shard_files, write_shards
from agenet_pipeline.model.training import EpochBackup, resumed_epoch, save_model
from agenet_pipeline.serving.photos import write_table
from agenet_pipeline.tracking.runs import ModelRecord

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGE = REPOSITORY / "agenet_pipeline"
ROWS = 100_000  # about 1 MB a table: a write lasts long enough for a kill to land inside it


class Killed(BaseException):
    """The writer stopping where it stands: no `except Exception` in the code under test catches it."""


class NotWhole(AssertionError):
    """A file under its real name that is not a whole version."""


@dataclass(frozen=True)
class Writer:
    name: str
    write: Callable[[Home, int], object]  # version 1, 2, ... of its files
    read: Callable[[Home], set[int]]  # the versions found, as the next run reads them; raises if a file is not whole
    prepare: Callable[[Home], object] = lambda home: None  # its inputs, written before it runs
    rewrites: bool = True  # False: written once, then reused (the demo datasets)

    def __repr__(self) -> str:
        return self.name


# Content that says its version


def table(version: int) -> pl.DataFrame:
    noise = np.random.default_rng(version).random(ROWS)
    return pl.DataFrame({"version": np.full(ROWS, version), "noise": noise})


def table_versions(frame: pl.DataFrame) -> set[int]:
    if frame.height != ROWS:
        raise NotWhole(f"{frame.height} rows of {ROWS}")
    return set(frame["version"].unique().to_list())


def parquet_versions(path: Path) -> set[int]:
    return table_versions(pl.read_parquet(path)) if path.exists() else set()


def csv_versions(path: Path) -> set[int]:
    return table_versions(pl.read_csv(path)) if path.exists() else set()


def parquet_writer(name: str, path: Callable[[Home], Path]) -> Writer:
    return Writer(name, lambda home, v: write_parquet(table(v), path(home)), lambda home: parquet_versions(path(home)))


def bytes_writer(name: str, path: Callable[[Home], Path], content: Callable[[int], bytes]) -> Writer:
    """A file written with core.files.write_bytes; read back as the version whose bytes it holds."""

    def read(home: Home) -> set[int]:
        if not path(home).exists():
            return set()
        found = path(home).read_bytes()
        versions = {v for v in range(1, 4) if content(v) == found}
        if not versions:
            raise NotWhole(f"{path(home)} holds {len(found)} bytes of no version")
        return versions

    return Writer(name, lambda home, v: write_bytes(path(home), content(v)), read)


def markdown(version: int) -> bytes:
    return f"# Report version {version}\n\n".encode() + b"| a | b |\n| --- | --- |\n| 1 | 2 |\n" * 20_000


def confusion_png(version: int) -> bytes:
    return confusion_figure(np.full((10, 10), version), [str(b) for b in range(10)], f"version {version}")


def preview_png(version: int) -> bytes:
    jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 40 * version, np.uint8))[1].tobytes()
    return preview_grid([jpeg] * 16, [str(version)] * 16)


def scores_json(version: int) -> bytes:
    return json.dumps({"version": version, "test": {"mae": 9.5, "exact": 0.4}}, indent=2).encode()


# Face shards and their checksums


def shard(home: Home) -> Path:
    return shard_path(home.faces_folder("utkface"), 0)


def read_shard(home: Home) -> set[int]:
    """As the face stage's re-run: a shard whose bytes differ from its checksum is damaged, to be rebuilt."""
    if not shard(home).exists():
        return set()
    verify_shard(shard(home))
    return parquet_versions(shard(home))


# TFRecord training shards, from face shards of crops

CROPS = 60


def write_face_crops(home: Home) -> None:
    crops = [np.random.default_rng(row).bytes(20_000) for row in range(CROPS)]
    write_shard(pl.DataFrame({"row": range(CROPS), "crop_jpeg": crops}), shard(home), "crops")


def write_tfrecords(home: Home, version: int) -> None:
    rows = pl.DataFrame({"row": range(CROPS), "bin": [r % 10 for r in range(CROPS)], "age": float(version)})
    rows = rows.with_columns(pl.lit(20_000).alias("crop_bytes"))
    write_shards(rows, "utkface", home.faces_folder("utkface"), home.shards_folder, "train-utkface", 500_000)


def read_tfrecords(home: Home) -> set[int]:
    """Each file parsed to its end (a cut file raises DataLossError); the ages say the version."""
    files = shard_files(home.shards_folder, "train-utkface")
    ages = [
        float(tf.io.parse_single_example(record, feature_spec())["age"])
        for record in tf.data.TFRecordDataset([str(f) for f in files])
    ]
    if files and len(ages) != CROPS:
        raise NotWhole(f"{len(ages)} examples of {CROPS} in {files}")
    return {int(age) for age in ages}


# Models, their records, their checkpoints


def network(version: int) -> keras.Model:
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(2048)])
    model.compile(optimizer="sgd", loss="mse")  # BackupAndRestore restores into a compiled model
    model.set_weights([np.full(w.shape, version, w.dtype) for w in model.get_weights()])
    return model


def read_model(home: Home) -> set[int]:
    path = home.model_path("age_model")
    return {int(keras.models.load_model(path).get_weights()[0].flat[0])} if path.exists() else set()


def record(version: int) -> ModelRecord:
    return ModelRecord(str(version), "sqlite:////tmp/mlflow.db", "models/age_model.keras", "agenet", str(version), [])


def read_record(home: Home) -> set[int]:
    path = home.model_record_path("age_model")
    return {int(ModelRecord.load(path, "age_model").run_id)} if path.exists() else set()


def backup(home: Home) -> Path:
    return home.checkpoint_folder("age_model") / "backup"


def write_checkpoint(home: Home, version: int) -> None:
    """The checkpoint training leaves at the end of epoch `version`, with weights all equal to `version`."""
    callback = EpochBackup(str(backup(home)))
    callback.set_model(network(version))
    callback.on_epoch_end(version - 1)


def read_checkpoint(home: Home) -> set[int]:
    """As a resumed training: the epoch it resumes at and the weights it restores."""
    if not backup(home).exists():
        return set()
    model = network(0)
    callback = EpochBackup(str(backup(home)))
    callback.set_model(model)
    callback.on_train_begin()
    return {resumed_epoch(backup(home)), int(model.get_weights()[0].flat[0])} - {0}


# The demo datasets: written once, whole, then reused

DEMO_IMAGES = 20


def read_demo(home: Home) -> set[int]:
    folder = home.demo_folder / f"utkface-{DEMO_IMAGES}"
    if not folder.exists():
        return set()
    rows = read_utkface(folder).height
    if rows != DEMO_IMAGES + 4:  # the demo's four deliberate problems
        raise NotWhole(f"{folder} holds {rows} images")
    return {1}


def report(home: Home, name: str) -> Path:
    return home.report_folder("age_model", "report") / name


def adience(home: Home, name: str) -> Path:
    return home.report_folder("age_model", "adience") / name


WRITERS = [
    parquet_writer("manifest", lambda home: home.manifest_path("utkface")),
    Writer("face shard", lambda home, v: write_shard(table(v), shard(home), f"fingerprint {v}"), read_shard),
    parquet_writer("labels", lambda home: home.labels_path),
    parquet_writer("splits", lambda home: home.splits_path),
    Writer("tfrecords", write_tfrecords, read_tfrecords, prepare=write_face_crops),
    parquet_writer("imdb cleaned", lambda home: home.imdb_cleaned_path),
    Writer("model", lambda home, v: save_model(network(v), home.model_path("age_model")), read_model),
    Writer("model record", lambda home, v: record(v).save(home.model_record_path("age_model")), read_record),
    Writer("checkpoint", write_checkpoint, read_checkpoint),
    bytes_writer("report markdown", lambda home: report(home, "report.md"), markdown),
    bytes_writer("report figure", lambda home: report(home, "confusion_matrix.png"), confusion_png),
    parquet_writer("report predictions", lambda home: report(home, "predictions.parquet")),
    bytes_writer("scores", score_file, scores_json),
    bytes_writer("adience report", lambda home: adience(home, "adience.md"), markdown),
    parquet_writer("adience folds", lambda home: adience(home, "folds.parquet")),
    bytes_writer("face preview", lambda home: home.root / "previews" / "faces_utkface.png", preview_png),
    Writer(
        "demo dataset",
        lambda home, v: demo_dataset(home.demo_folder, "utkface", DEMO_IMAGES),
        read_demo,
        rewrites=False,
    ),
    Writer(
        "predictions csv",
        lambda home, v: write_table(table(v), home.root / "ages.csv"),
        lambda home: (
            table_versions(pl.read_csv(home.root / "ages.csv")) if (home.root / "ages.csv").exists() else set()
        ),
    ),
]


def found_after_a_stop(writer: Writer, home: Home) -> set[int]:
    """What the next run reads: versions, or nothing when the writer's own check finds the damage and redoes it."""
    try:
        return writer.read(home)
    except CorruptShardError:
        return set()


@contextmanager
def renames(monkeypatch, stop: int | None = None):
    """The destinations of the renames (os.replace, os.rename) made in the block; with `stop`, the process stops
    (Killed) in place of that rename: every byte written, nothing published."""
    destinations: list[Path] = []
    for name in ("replace", "rename"):
        real = getattr(os, name)

        def renaming(source, destination, *args, real=real, **kwargs):
            destinations.append(Path(destination).absolute())
            if len(destinations) == stop:
                raise Killed
            return real(source, destination, *args, **kwargs)

        monkeypatch.setattr(os, name, renaming)
    try:
        yield destinations
    finally:
        monkeypatch.undo()


def stamps(folder: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def named_files(folder: Path) -> set[Path]:
    """The files under their real names (a temporary file's name starts with a dot)."""
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("writer", WRITERS, ids=repr)
def test_every_file_appears_under_its_name_by_a_rename(writer, tmp_path, monkeypatch):
    home = Home.at(tmp_path)
    writer.prepare(home)
    before = stamps(tmp_path)
    with renames(monkeypatch) as destinations:
        writer.write(home, 1)
    written = [p for p, stamp in stamps(tmp_path).items() if before.get(p) != stamp]
    assert written and writer.read(home) == {1}
    in_place = [p for p in written if not {p, *p.parents} & set(destinations)]
    assert not in_place, f"{writer.name} wrote {in_place} in place, not by a rename"


@pytest.mark.parametrize("writer", WRITERS, ids=repr)
def test_a_writer_stopped_at_each_rename_leaves_whole_files_and_the_rerun_completes(writer, tmp_path, monkeypatch):
    def as_before_the_write(folder: Path) -> Home:
        home = Home.at(folder)
        writer.prepare(home)
        if writer.rewrites:
            writer.write(home, 1)
        return home

    counting = as_before_the_write(tmp_path / "counting")
    with renames(monkeypatch) as destinations:
        writer.write(counting, 2)
    assert destinations, f"{writer.name} published nothing by a rename"
    for stop in range(1, len(destinations) + 1):
        home = as_before_the_write(tmp_path / f"stop-{stop}")
        with pytest.raises(Killed), renames(monkeypatch, stop):
            writer.write(home, 2)

        assert found_after_a_stop(writer, home) <= ({1, 2} if writer.rewrites else set()), f"stopped at rename {stop}"
        writer.write(home, 2)
        assert writer.read(home) == ({2} if writer.rewrites else {1})
        assert named_files(home.root) == named_files(counting.root)


# A real kill: the child writes versions 1, 2, 1, 2 ... of one writer until it is killed.
WRITE_FOREVER = textwrap.dedent("""
    import itertools, sys, time
    from agenet_pipeline.core.home import Home
    from agenet_pipeline_tests.reliability.test_crash_safety import WRITERS

    [writer] = [w for w in WRITERS if w.name == sys.argv[1]]
    home = Home.at(sys.argv[2])
    writer.prepare(home)
    for version in itertools.cycle([1, 2]):
        started = time.monotonic()
        writer.write(home, version)
        print(time.monotonic() - started, flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("writer", [w for w in WRITERS if w.rewrites], ids=repr)
def test_a_writer_killed_at_a_random_moment_leaves_whole_files(writer, tmp_path):
    seed = random.randrange(2**32)
    home = Home.at(tmp_path / "home")
    child = subprocess.Popen(
        [sys.executable, "-c", WRITE_FOREVER, writer.name, str(home.root)],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        durations = [float(child.stdout.readline()) for _ in range(2)]  # each version written once
        time.sleep(random.Random(seed).uniform(0, 2 * max(durations)))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    assert found_after_a_stop(writer, home) <= {1, 2}, f"seed {seed}"
    writer.write(home, 2)
    assert writer.read(home) == {2}, f"seed {seed}"
    clean = Home.at(tmp_path / "clean")
    writer.prepare(clean)
    writer.write(clean, 2)
    assert named_files(home.root) == named_files(clean.root), f"seed {seed}"  # a killed write left no real name


# Writes that are not atomic on purpose, by file and call, and why; any other write in the package fails below.
IN_PLACE_ON_PURPOSE = {
    "core/files.py": "the atomic writes themselves, into their temporary file",
    "core/lock.py": "the lock file: a lock belongs to one file, a renamed one would be unlocked",
    "demo/writers.py": "the demo datasets, written into a staging folder that is renamed whole",
    "evaluation/figures.py": "savefig into an in-memory buffer",
    "evaluation/finetune.py": "TFRecords in a temporary folder, deleted after the benchmark",
    "serving/packaging.py": "the served model's files, in a temporary folder logged to MLflow",
    "serving/exports.py": "an export bundle's files, written into a staging folder that is renamed whole",
    "serving/cli.py": "the predictions table on standard output",
    "serving/webcam.py": "the annotated video, into the temporary file of an atomic_path opened in `run`",
}
WRITE_CALL = re.compile(
    r"\.write_(text|bytes|csv|json|parquet)\((?!\))|\bopen\([^)]*['\"][wax]|model\.save\(|\.savefig\(|TFRecordWriter\(|"
    r"\.save_weights\(|imwrite\(|savemat\(|np\.save|json\.dump\(|shutil\.copy|VideoWriter\(|pq\.write_table\("
)


def test_every_write_in_the_package_goes_through_an_atomic_path():
    """A write call outside IN_PLACE_ON_PURPOSE must be inside an `atomic_path` block (its target is `tmp`)."""
    in_place = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in IN_PLACE_ON_PURPOSE:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if WRITE_CALL.search(line) and not re.search(r"\btmp\b", line):
                in_place.append(f"{module}:{number}: {line.strip()}")
    assert not in_place, "writes outside core.files' atomic writes:\n" + "\n".join(in_place)
