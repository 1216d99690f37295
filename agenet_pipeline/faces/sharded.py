"""The face stage over a whole manifest, in shards: parallel over processes, resumable after an interruption.

Each shard of manifest rows becomes one Parquet file, written atomically and stamped with a fingerprint of
its input rows and settings, then a checksum file beside it. A re-run skips the shards whose file carries the
right fingerprint and still matches its checksum, so it redoes only what is missing, failed, stale or damaged.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import polars as pl

from agenet_pipeline.faces.detector import FaceDetector
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.stage import faces_of_rows
from agenet_pipeline.faces.storage import (
    checksum_path,
    checksum_problem,
    fingerprint_of,
    read_faces,
    shard_path,
    shard_paths,
    write_face_settings,
    write_shard,
)
from agenet_pipeline.faces.summary import detection_rate, preview_sample


@dataclass(frozen=True)
class StageRun:
    shards: int
    shards_reused: int
    rows_processed: int
    seconds: float


def _fingerprint(rows: pl.DataFrame, settings: FaceSettings, model_path: Path) -> str:
    digest = hashlib.sha256(f"{settings!r}|{model_path.stat().st_size}".encode())
    for path, status, age in rows.select("image_path", "status", "age").iter_rows():
        digest.update(f"{path}|{status}|{age}\n".encode())
    return digest.hexdigest()


_worker_detector: FaceDetector | None = None


def _one_thread_per_process() -> None:
    # The stage is parallel over processes; OpenCV's own worker threads would only compete with them
    # (measured: 2.7 ms of CPU per photo with its default threads, 2.3 ms with one).
    cv2.setNumThreads(1)


def _start_worker(model_path: Path) -> None:
    global _worker_detector
    _one_thread_per_process()
    _worker_detector = FaceDetector(model_path)


def _write_shard(
    rows: pl.DataFrame, path: Path, fingerprint: str, settings: FaceSettings, detector: FaceDetector | None = None
) -> int:
    write_shard(faces_of_rows(rows, detector or _worker_detector, settings), path, fingerprint)
    return rows.height


@dataclass(frozen=True)
class Shard:
    """Manifest rows [start, start + length) that become the file `shard-<index>`, stamped with `fingerprint`."""

    index: int
    start: int
    length: int
    fingerprint: str

    def rows(self, manifest: pl.DataFrame) -> pl.DataFrame:
        return manifest.slice(self.start, self.length)


@dataclass(frozen=True)
class ShardPlan:
    shards: int
    pending: list[Shard]  # missing, failed, stale or damaged: the ones to (re)write


def count_shards(manifest: pl.DataFrame, shard_size: int) -> int:
    """Shards of `manifest`: an empty manifest still has one (empty) shard, so that its face table exists."""
    return max(math.ceil(manifest.height / shard_size), 1)


def plan_shards(
    manifest: pl.DataFrame,
    folder: Path,
    model_path: Path,
    settings: FaceSettings,
    shard_size: int,
    verify_checksums: bool = True,
) -> ShardPlan:
    """Which shards of `manifest` need writing; removes the files of shards that no longer exist and the temporary
    files of killed writes, so that the folder then holds each manifest row once when the pending ones are done.
    Without `verify_checksums`, a shard file with the right fingerprint counts as done without reading it whole."""
    folder.mkdir(parents=True, exist_ok=True)
    starts = range(0, count_shards(manifest, shard_size) * shard_size, shard_size)
    pending = []
    for index, start in enumerate(starts):
        rows = manifest.slice(start, shard_size)
        path, fingerprint = shard_path(folder, index), _fingerprint(rows, settings, model_path)
        # stale, or damaged since it was written
        if fingerprint_of(path) != fingerprint or (verify_checksums and checksum_problem(path)):
            pending.append(Shard(index, start, rows.height, fingerprint))
    for stale in shard_paths(folder)[len(starts) :]:
        stale.unlink()
        checksum_path(stale).unlink(missing_ok=True)
    for unfinished in folder.glob(".shard-*"):  # the temporary file of a write that was killed
        unfinished.unlink()
    return ShardPlan(len(starts), pending)


def write_face_shard(
    manifest: pl.DataFrame, folder: Path, shard: Shard, model_path: Path, settings: FaceSettings
) -> int:
    """Write one shard's face rows in this process (the unit a cluster worker runs); returns its row count."""
    _one_thread_per_process()
    with FaceDetector(model_path) as detector:
        return _write_shard(
            shard.rows(manifest), shard_path(folder, shard.index), shard.fingerprint, settings, detector
        )


def run_face_stage(
    manifest: pl.DataFrame,
    folder: Path,
    model_path: Path,
    settings: FaceSettings,
    shard_size: int = 2000,
    workers: int = 1,
) -> StageRun:
    """Write the face table of `manifest` as shard files in `folder`, reusing shards that are up to date, with the
    pending shards spread over a pool of `workers` processes on this machine."""
    started = time.perf_counter()
    plan = plan_shards(manifest, folder, model_path, settings, shard_size)
    jobs = [(shard.rows(manifest), shard_path(folder, shard.index), shard.fingerprint) for shard in plan.pending]
    if workers > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), context, _start_worker, (model_path,)) as pool:
            futures = [pool.submit(_write_shard, *job, settings) for job in jobs]
            processed = sum(future.result() for future in futures)
    else:
        _one_thread_per_process()
        with FaceDetector(model_path) as detector:
            processed = sum(_write_shard(*job, settings, detector) for job in jobs)
    write_face_settings(folder, settings)
    return StageRun(plan.shards, plan.shards - len(jobs), processed, time.perf_counter() - started)


SUMMARY_COLUMNS = ["row", "status", "age", "face_source", "faces_found", "detector_score"]


@dataclass(frozen=True)
class FaceTable:
    """A face stage's outcome: what ran, a row per manifest row (crops left out), the detection rate and a few
    crops spread over the ages for a preview."""

    run: StageRun
    faces: pl.DataFrame
    detection_rate: float | None  # None when no photo reached the detector
    preview: pl.DataFrame  # row, age, crop_jpeg


def face_table(manifest: pl.DataFrame, folder: Path, run: StageRun) -> FaceTable:
    """The face table written in `folder` by `run`, checked to hold each manifest row exactly once."""
    faces = read_faces(folder, SUMMARY_COLUMNS)
    if faces.height != manifest.height or not faces["row"].equals(manifest["row"]):
        raise RuntimeError(f"{folder}: the face shards do not line up with the {manifest.height} manifest rows")
    preview = read_faces(folder, ["row", "age", "crop_jpeg"], preview_sample(faces)["row"]).sort("age")
    return FaceTable(run, faces, detection_rate(faces), preview)
