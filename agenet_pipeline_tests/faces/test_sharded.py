import os

import polars as pl
import pytest

from agenet_pipeline.datasets.manifest import number_rows
from agenet_pipeline.datasets.utkface import read_utkface
from agenet_pipeline.demo.writers import demo_dataset
from agenet_pipeline.faces.detector import resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.sharded import count_shards, plan_shards, run_face_stage, write_face_shard
from agenet_pipeline.faces.storage import SETTINGS_FILE, checksum_path, scan_faces, shard_paths


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = demo_dataset(tmp_path_factory.mktemp("demo"), "utkface", count=12)
    return number_rows(read_utkface(root))  # 12 faces + 4 deliberate problems


def test_every_manifest_row_appears_once_in_order(manifest, tmp_path):
    run = run_face_stage(manifest, tmp_path, resolve_model(), FaceSettings(crop_size=64), shard_size=5)
    faces = scan_faces(tmp_path).collect()
    assert run.shards == 4 and len(shard_paths(tmp_path)) == 4 and run.rows_processed == manifest.height
    assert faces["row"].to_list() == manifest["row"].to_list()
    assert faces.filter(pl.col("status") == "ok").height >= 12


def test_rerun_redoes_only_missing_shards(manifest, tmp_path):
    settings = FaceSettings(crop_size=64)
    run_face_stage(manifest, tmp_path, resolve_model(), settings, shard_size=5)
    kept = shard_paths(tmp_path)[0]
    kept_mtime = kept.stat().st_mtime_ns
    shard_paths(tmp_path)[2].unlink()

    run = run_face_stage(manifest, tmp_path, resolve_model(), settings, shard_size=5)

    assert (run.shards_reused, run.rows_processed) == (3, 5)
    assert kept.stat().st_mtime_ns == kept_mtime
    assert scan_faces(tmp_path, ["row"]).collect()["row"].to_list() == manifest["row"].to_list()


def test_changed_settings_or_rows_redo_the_stale_shards(manifest, tmp_path):
    run_face_stage(manifest, tmp_path, resolve_model(), FaceSettings(crop_size=64), shard_size=5)
    assert (
        run_face_stage(manifest, tmp_path, resolve_model(), FaceSettings(crop_size=96), shard_size=5).shards_reused == 0
    )
    shorter = manifest.head(7)
    run = run_face_stage(shorter, tmp_path, resolve_model(), FaceSettings(crop_size=96), shard_size=5)
    assert (run.shards, run.shards_reused) == (2, 1)
    assert len(shard_paths(tmp_path)) == 2  # the shards past the end are gone
    assert scan_faces(tmp_path, ["row"]).collect().height == 7


def test_no_temporary_files_are_left(manifest, tmp_path):
    run_face_stage(manifest, tmp_path, resolve_model(), FaceSettings(crop_size=64), shard_size=5)
    shards = [q.name for p in shard_paths(tmp_path) for q in (p, checksum_path(p))]
    assert sorted(os.listdir(tmp_path)) == sorted([*shards, SETTINGS_FILE])


def test_two_worker_processes_give_the_same_table(manifest, tmp_path):
    settings = FaceSettings(crop_size=64)
    run_face_stage(manifest, tmp_path / "one", resolve_model(), settings, shard_size=4, workers=1)
    run_face_stage(manifest, tmp_path / "two", resolve_model(), settings, shard_size=4, workers=2)
    one, two = (scan_faces(tmp_path / name).collect() for name in ("one", "two"))
    assert one.equals(two)


def test_shards_written_one_by_one_as_cluster_steps_complete_the_table(manifest, tmp_path):
    settings, model = FaceSettings(crop_size=64), resolve_model()
    plan = plan_shards(manifest, tmp_path, model, settings, shard_size=5)
    assert plan.shards == count_shards(manifest, 5) == 4 and [s.index for s in plan.pending] == [0, 1, 2, 3]
    for shard in reversed(plan.pending):  # in any order, as workers finish them
        write_face_shard(manifest, tmp_path, shard, model, settings)
    assert plan_shards(manifest, tmp_path, model, settings, shard_size=5).pending == []
    assert scan_faces(tmp_path, ["row"]).collect()["row"].to_list() == manifest["row"].to_list()


def test_a_damaged_shard_is_pending_only_when_checksums_are_verified(manifest, tmp_path):
    settings, model = FaceSettings(crop_size=64), resolve_model()
    run_face_stage(manifest, tmp_path, model, settings, shard_size=5)
    checksum_path(shard_paths(tmp_path)[1]).write_text("0" * 64)
    assert [s.index for s in plan_shards(manifest, tmp_path, model, settings, 5).pending] == [1]
    assert plan_shards(manifest, tmp_path, model, settings, 5, verify_checksums=False).pending == []
