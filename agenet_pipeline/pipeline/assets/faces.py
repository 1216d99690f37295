"""Face assets, one per dataset: the detected, cropped faces of every manifest row, in resumable shards."""

import os

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    Backoff,
    Config,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    asset_check,
)
from pydantic import Field

from agenet_pipeline.core.datasets import DATASETS, PIPELINE_DATASETS
from agenet_pipeline.core.status import OK
from agenet_pipeline.datasets.reconciliation import reconcile_faces
from agenet_pipeline.faces.preview import preview_grid
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.sharded import face_table
from agenet_pipeline.faces.storage import read_faces
from agenet_pipeline.faces.summary import outcome_counts, several_faces
from agenet_pipeline.pipeline.assets.metadata import markdown_table, png_metadata, reconciliation_result, status_counts
from agenet_pipeline.pipeline.resources import AgeNetHome, FaceDetectorResource

GROUP = "faces"
# Bad photos never raise (they become rows with a reason), so a raise is the machine's: a full or network disk, a
# lost worker. A retry redoes only the shards that are missing.
RETRY_POLICY = RetryPolicy(max_retries=2, delay=10, backoff=Backoff.EXPONENTIAL)


DEFAULT = FaceSettings()


class FaceStageConfig(Config):
    margin: float = Field(default=DEFAULT.margin, description="Margin added on each side of the detected box")
    crop_size: int = Field(default=DEFAULT.crop_size, description="Side of the square RGB crop in pixels")
    min_score: float = Field(default=DEFAULT.min_score, description="Lowest detector score accepted as a face")
    min_face_size: int = Field(default=DEFAULT.min_face_size, description="Smallest face side in source pixels")
    fallback_whole_image: bool = Field(
        default=DEFAULT.fallback_whole_image,
        description="Use the whole photo when no face is found (for datasets of aligned face crops)",
    )
    min_detection_rate: float = Field(default=0.8, description="Floor of the detection rate asset check")
    shard_size: int = Field(default=2000, description="Photos per shard file (the unit of resumption)")
    workers: int = Field(default=0, description="Processes for the shards; 0: one per CPU core")

    def settings(self) -> FaceSettings:
        return FaceSettings(
            margin=self.margin,
            crop_size=self.crop_size,
            min_score=self.min_score,
            min_face_size=self.min_face_size,
            fallback_whole_image=self.fallback_whole_image,
        )


def _faces_asset(dataset: str):
    check = AssetCheckSpec(
        "detection_rate_above_floor",
        asset=f"faces_{dataset}",
        description="Share of decodable photos with a detected face is at least the configured floor",
        blocking=True,
    )

    @asset(
        name=f"faces_{dataset}",
        description=f"{DATASETS[dataset].title}: the most confident face of each manifest row, detected and cropped "
        "(or the reason there is none), in resumable Parquet shards",
        group_name=GROUP,
        deps=[AssetKey(f"{dataset}_manifest")],
        check_specs=[check],
        kinds={"mediapipe", "parquet"},
        retry_policy=RETRY_POLICY,
    )
    def faces(config: FaceStageConfig, home: AgeNetHome, face_detector: FaceDetectorResource) -> MaterializeResult:
        manifest = pl.read_parquet(home.folder.manifest_path(dataset))
        folder = home.folder.faces_folder(dataset)
        workers = config.workers or os.cpu_count() or 1
        table = face_table(manifest, folder, face_detector.model(), config.settings(), config.shard_size, workers)
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
            "seconds": round(run.seconds, 2),
            "photos per second": round(run.rows_processed / run.seconds, 1) if run.rows_processed else 0.0,
            "faces folder": MetadataValue.path(str(folder)),
        }
        if not table.preview.is_empty():
            png = preview_grid(table.preview["crop_jpeg"].to_list(), [f"{age:g}" for age in table.preview["age"]])
            metadata |= png_metadata(png, folder.parent / f"{dataset}_preview.png", "preview")
        # A dataset that is not configured has no photos, and nothing to detect: the floor does not apply.
        passed = rate >= config.min_detection_rate if rate is not None else manifest.is_empty()
        check = {"detection rate": rate if rate is not None else float("nan"), "floor": config.min_detection_rate}
        return MaterializeResult(
            metadata=metadata,
            check_results=[AssetCheckResult(passed=passed, severity=AssetCheckSeverity.ERROR, metadata=check)],
        )

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
