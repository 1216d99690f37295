"""Interrupted runs: the face stage killed with SIGKILL, between shards and in the middle of writing one, then re-run.

Nothing is duplicated and nothing lost, and the shards finished before the kill are not redone. (Training killed
mid-epoch and resumed from its checkpoint: agenet_pipeline_tests/model/test_training.py, also a real SIGKILL.)
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import polars as pl
import pyarrow.parquet as pq
import pytest

from agenet_pipeline.datasets.manifest import number_rows
from agenet_pipeline.datasets.utkface import read_utkface
from agenet_pipeline.demo.writers import demo_dataset
from agenet_pipeline.faces.detector import resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.sharded import run_face_stage
from agenet_pipeline.faces.storage import SETTINGS_FILE, checksum_path, scan_faces, shard_paths

SHARD_SIZE = 3
SETTINGS = FaceSettings(crop_size=64)

# Runs the face stage over a manifest. "slow": each shard takes a little longer, so that the test can kill the
# process from outside between shards. "die_writing": the process kills itself half-way through writing shard 2.
STAGE = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    import polars as pl
    from agenet_pipeline.faces import sharded, storage
    from agenet_pipeline.faces.detector import resolve_model
    from agenet_pipeline.faces.settings import FaceSettings

    manifest, folder, mode = sys.argv[1:]
    if mode == "slow":
        faces_of_rows = sharded.faces_of_rows
        def slower(*args):
            time.sleep(0.25)
            return faces_of_rows(*args)
        sharded.faces_of_rows = slower
    else:
        write_table = storage.pq.write_table
        def write_half_then_die(table, where, **options):
            if len(storage.shard_paths(Path(folder))) == 2:
                write_table(table, where, **options)
                Path(where).write_bytes(Path(where).read_bytes()[: Path(where).stat().st_size // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            write_table(table, where, **options)
        storage.pq.write_table = write_half_then_die
    sharded.run_face_stage(pl.read_parquet(manifest), Path(folder), resolve_model(), FaceSettings(crop_size=64),
                           shard_size=int(os.environ["SHARD_SIZE"]), workers=1)
""")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("manifest")
    manifest = number_rows(read_utkface(demo_dataset(folder, "utkface", count=26)))  # 30 rows: 10 shards of 3
    manifest.write_parquet(folder / "manifest.parquet")
    return folder / "manifest.parquet"


def start_stage(manifest, folder, mode) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", STAGE, str(manifest), str(folder), mode],
        env={**os.environ, "SHARD_SIZE": str(SHARD_SIZE)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finished_shards(folder) -> list:
    """Shard files whose checksum is written too: the kill may fall between a shard's file and its checksum, and a
    shard without one is rightly written again."""
    return [path for path in shard_paths(folder) if checksum_path(path).is_file()]


def assert_every_row_once(manifest_path, folder):
    manifest = pl.read_parquet(manifest_path)
    for path in shard_paths(folder):
        pq.read_table(path)  # every file under a shard name is whole
    faces = scan_faces(folder, ["row", "image_path", "status"]).collect()
    assert faces["row"].to_list() == manifest["row"].to_list()  # each row once, in order: none lost or doubled
    assert faces["image_path"].to_list() == manifest["image_path"].to_list()


def test_face_stage_killed_between_shards_resumes_without_loss_or_duplicates(manifest, tmp_path):
    stage = start_stage(manifest, tmp_path, "slow")
    deadline = time.monotonic() + 120
    while len(finished_shards(tmp_path)) < 3 and stage.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(stage.pid, signal.SIGKILL)
    assert stage.wait(timeout=30) == -signal.SIGKILL, stage.stderr.read().decode()[-2000:]
    finished = {path: path.stat().st_mtime_ns for path in finished_shards(tmp_path)}
    total = -(-pl.read_parquet(manifest).height // SHARD_SIZE)
    assert 3 <= len(finished) < total

    run = run_face_stage(pl.read_parquet(manifest), tmp_path, resolve_model(), SETTINGS, shard_size=SHARD_SIZE)

    assert run.shards == total and run.shards_reused >= len(finished)
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())  # not redone
    assert_every_row_once(manifest, tmp_path)


def test_face_stage_killed_while_writing_a_shard_leaves_no_partial_shard(manifest, tmp_path):
    stage = start_stage(manifest, tmp_path, "die_writing")
    assert stage.wait(timeout=120) == -signal.SIGKILL, stage.stderr.read().decode()[-2000:]
    assert [p.name for p in shard_paths(tmp_path)] == ["shard-00000.parquet", "shard-00001.parquet"]
    whole = [q for p in shard_paths(tmp_path) for q in (p, checksum_path(p))]
    [half_written] = [p for p in tmp_path.iterdir() if p not in whole]
    assert half_written.name.startswith(".shard-00002.parquet.") and half_written.suffix == ".tmp"

    run = run_face_stage(pl.read_parquet(manifest), tmp_path, resolve_model(), SETTINGS, shard_size=SHARD_SIZE)

    assert run.shards_reused == 2
    assert_every_row_once(manifest, tmp_path)
    whole = sorted([*(q for p in shard_paths(tmp_path) for q in (p, checksum_path(p))), tmp_path / SETTINGS_FILE])
    assert sorted(tmp_path.iterdir()) == whole  # the killed write's temporary file is gone
