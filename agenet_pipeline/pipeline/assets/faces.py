"""Face assets, one per dataset: the detected, cropped faces of every manifest row, in resumable shards."""

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetIn,
    Backoff,
    Config,
    ConfigMapping,
    DynamicOut,
    DynamicOutput,
    In,
    MetadataValue,
    Nothing,
    Out,
    Output,
    RetryPolicy,
    asset_check,
    graph_asset,
    op,
)
from pydantic import Field

from agenet_pipeline.core.datasets import DATASETS, PIPELINE_DATASETS
from agenet_pipeline.core.status import OK
from agenet_pipeline.datasets.reconciliation import reconcile_faces
from agenet_pipeline.faces.preview import preview_grid
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.sharded import (
    FaceTable,
    Shard,
    StageRun,
    count_shards,
    face_table,
    plan_shards,
    write_face_shard,
)
from agenet_pipeline.faces.storage import read_faces, write_face_settings
from agenet_pipeline.faces.summary import outcome_counts, several_faces
from agenet_pipeline.pipeline.assets.metadata import markdown_table, png_metadata, reconciliation_result, status_counts
from agenet_pipeline.pipeline.queues import CPU_QUEUE
from agenet_pipeline.pipeline.resources import AgeNetHome, FaceDetectorResource

GROUP = "faces"
# Bad photos never raise (they become rows with a reason), so a raise is the machine's: a full or network disk, a
# lost worker. A retry redoes only the shards that are missing.
RETRY_POLICY = RetryPolicy(max_retries=2, delay=10, backoff=Backoff.EXPONENTIAL)
DETECTION_CHECK = "detection_rate_above_floor"


DEFAULT = FaceSettings()


class FaceStageConfig(Config):
    margin: float = Field(default=DEFAULT.margin, description="Margin added on each side of the detected box")
    context: float | None = Field(
        default=DEFAULT.context,
        description="Photo kept around the face, in sides of the detected box; the rest of the crop is black, as in "
        "aligned face chips (null: all the margin shows)",
    )
    crop_size: int = Field(default=DEFAULT.crop_size, description="Side of the square RGB crop in pixels")
    min_score: float = Field(default=DEFAULT.min_score, description="Lowest detector score accepted as a face")
    min_face_size: int = Field(default=DEFAULT.min_face_size, description="Smallest face side in source pixels")
    fallback_whole_image: bool = Field(
        default=DEFAULT.fallback_whole_image,
        description="Use the whole photo when no face is found (for datasets of aligned face crops)",
    )
    min_detection_rate: float = Field(default=0.8, description="Floor of the detection rate asset check")
    shard_size: int = Field(
        default=2000, description="Photos per shard file: the unit of resumption, and of work for one step"
    )

    def settings(self) -> FaceSettings:
        return FaceSettings(
            margin=self.margin,
            context=self.context,
            crop_size=self.crop_size,
            min_score=self.min_score,
            min_face_size=self.min_face_size,
            fallback_whole_image=self.fallback_whole_image,
        )


@dataclass(frozen=True)
class ShardDone:
    rows: int
    seconds: float
    process: str  # host:pid of the process that wrote it
    shards: int = 1


def _face_ops(dataset: str):
    """The face stage of one dataset as three ops: plan the shards, write each pending shard in a step of its own
    (so that a cluster spreads them over workers, and a re-execution from a failure redoes only the failed ones),
    then summarise the table and check it."""

    @op(name=f"plan_faces_{dataset}", ins={"manifest": In(Nothing)}, out=DynamicOut(Shard), tags=CPU_QUEUE)
    def plan(config: FaceStageConfig, home: AgeNetHome, face_detector: FaceDetectorResource):
        manifest = pl.read_parquet(home.folder.manifest_path(dataset))
        shard_plan = plan_shards(
            manifest, home.folder.faces_folder(dataset), face_detector.model(), config.settings(), config.shard_size
        )
        for shard in shard_plan.pending:
            yield DynamicOutput(shard, mapping_key=f"shard_{shard.index:05d}")

    @op(name=f"face_shard_{dataset}", tags=CPU_QUEUE, retry_policy=RETRY_POLICY)
    def write(
        context, config: FaceStageConfig, home: AgeNetHome, face_detector: FaceDetectorResource, shard: Shard
    ) -> ShardDone:
        started = time.perf_counter()
        manifest = pl.read_parquet(home.folder.manifest_path(dataset))
        folder = home.folder.faces_folder(dataset)
        rows = write_face_shard(manifest, folder, shard, face_detector.model(), config.settings())
        done = ShardDone(rows, time.perf_counter() - started, f"{socket.gethostname()}:{os.getpid()}")
        context.add_output_metadata({"rows": rows, "seconds": round(done.seconds, 2), "process": done.process})
        return done

    @op(name=f"summarise_faces_{dataset}", out={"result": Out(), "check": Out(is_required=False)}, tags=CPU_QUEUE)
    def summarise(config: FaceStageConfig, home: AgeNetHome, face_detector: FaceDetectorResource, shards: list):
        manifest = pl.read_parquet(home.folder.manifest_path(dataset))
        folder = home.folder.faces_folder(dataset)
        shards = shards + _write_shards_left(manifest, folder, face_detector.model(), config)
        write_face_settings(folder, config.settings())
        shard_count = count_shards(manifest, config.shard_size)
        seconds = sum(done.seconds for done in shards)
        written = sum(done.shards for done in shards)
        run = StageRun(shard_count, shard_count - written, sum(done.rows for done in shards), seconds)
        table = face_table(manifest, folder, run)
        yield Output(None, "result", metadata=_face_metadata(table, folder, dataset, shards))
        yield _detection_check(table, manifest, config.min_detection_rate, dataset)

    return plan, write, summarise


def _write_shards_left(manifest: pl.DataFrame, folder: Path, model: Path, config: FaceStageConfig) -> list[ShardDone]:
    """Shards still missing once the shard steps are done, written here. Dagster's re-execution from a failure
    reruns the shard steps that failed or were cut off, but not those the failed run never started."""
    started = time.perf_counter()
    left = plan_shards(manifest, folder, model, config.settings(), config.shard_size, verify_checksums=False).pending
    rows = sum(write_face_shard(manifest, folder, shard, model, config.settings()) for shard in left)
    process = f"{socket.gethostname()}:{os.getpid()}"
    return [ShardDone(rows, time.perf_counter() - started, process, len(left))] if left else []


def _face_metadata(table: FaceTable, folder: Path, dataset: str, shards: list[ShardDone]) -> dict:
    faces, rate, run = table.faces, table.detection_rate, table.run
    metadata = {
        "dagster/row_count": faces.height,
        "usable faces": status_counts(faces).get(OK, 0),
        "detection rate": MetadataValue.float(rate if rate is not None else float("nan")),
        "rows by outcome": markdown_table(outcome_counts(faces)),
        "photos with several faces (most confident kept)": several_faces(faces),
        "shards": run.shards,
        "shards reused from an earlier run": run.shards_reused,
        "photos processed": run.rows_processed,
        "seconds": round(run.seconds, 2),  # in the shard steps, added up
        "photos per second": round(run.rows_processed / run.seconds, 1) if run.rows_processed else 0.0,
        "shard processes": MetadataValue.json(sorted({done.process for done in shards})),
        "faces folder": MetadataValue.path(str(folder)),
    }
    if not table.preview.is_empty():
        png = preview_grid(table.preview["crop_jpeg"].to_list(), [f"{age:g}" for age in table.preview["age"]])
        metadata |= png_metadata(png, folder.parent / f"{dataset}_preview.png", "preview")
    return metadata


def _detection_check(table: FaceTable, manifest: pl.DataFrame, floor: float, dataset: str) -> AssetCheckResult:
    rate = table.detection_rate
    # A dataset that is not configured has no photos, and nothing to detect: the floor does not apply.
    passed = rate >= floor if rate is not None else manifest.is_empty()
    return AssetCheckResult(
        asset_key=f"faces_{dataset}",
        check_name=DETECTION_CHECK,
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={"detection rate": rate if rate is not None else float("nan"), "floor": floor},
    )


def _faces_asset(dataset: str):
    check = AssetCheckSpec(
        DETECTION_CHECK,
        asset=f"faces_{dataset}",
        description="Share of decodable photos with a detected face is at least the configured floor",
        blocking=True,
    )
    plan, write, summarise = _face_ops(dataset)
    # `ops: faces_<dataset>: config:` sets all three ops at once, as it set the one op before the stage fanned out.
    config = ConfigMapping(
        config_fn=lambda values: {op_def.name: {"config": values} for op_def in (plan, write, summarise)},
        config_schema=FaceStageConfig.to_config_schema(),
    )

    @graph_asset(
        name=f"faces_{dataset}",
        description=f"{DATASETS[dataset].title}: the most confident face of each manifest row, detected and cropped "
        "(or the reason there is none), in resumable Parquet shards, one step per shard",
        group_name=GROUP,
        ins={"manifest": AssetIn(f"{dataset}_manifest", dagster_type=Nothing)},
        check_specs=[check],
        kinds={"mediapipe", "parquet"},
        config=config,
    )
    def faces(manifest):
        result, detection = summarise(plan(manifest).map(write).collect())
        return {"result": result, check.get_python_identifier(): detection}

    return faces


def _rows_reconcile(dataset: str):
    @asset_check(
        asset=f"faces_{dataset}",
        name="rows_reconcile",
        description="Manifest rows = face rows (ok + each rejection reason): none lost, none duplicated",
        blocking=True,
    )
    def rows_reconcile(home: AgeNetHome) -> AssetCheckResult:
        manifest = pl.read_parquet(home.folder.manifest_path(dataset), columns=["row", "status"])
        result = reconcile_faces(manifest, read_faces(home.folder.faces_folder(dataset), ["row", "status"]))
        return reconciliation_result(result, "rows by outcome")

    return rows_reconcile


face_assets = [_faces_asset(dataset) for dataset in PIPELINE_DATASETS]
face_checks = [_rows_reconcile(dataset) for dataset in PIPELINE_DATASETS]
