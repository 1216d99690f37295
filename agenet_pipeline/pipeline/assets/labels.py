"""Labels, splits and training shards, with the checks that guard them."""

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from agenet_pipeline.core.ages import MAX_AGE, MIN_AGE, SEED_BINS
from agenet_pipeline.core.datasets import EVALUATION_ONLY, PIPELINE_DATASETS
from agenet_pipeline.core.files import write_parquet
from agenet_pipeline.core.status import OK
from agenet_pipeline.datasets.labels import binned_labels
from agenet_pipeline.datasets.reconciliation import reconcile_splits
from agenet_pipeline.datasets.splits import EVALUATION, SPLITS, assign_splits, leaks
from agenet_pipeline.faces.storage import read_faces
from agenet_pipeline.model.records import DEFAULT_FILE_BYTES, shard_name, write_shards
from agenet_pipeline.pipeline.assets.metadata import age_histogram, counts_by, markdown_table, reconciliation_result
from agenet_pipeline.pipeline.resources import AgeNetHome

GROUP = "labels"
SHARDED_SPLITS = (*SPLITS, EVALUATION)


@asset(group_name=GROUP, deps=[AssetKey(f"faces_{d}") for d in PIPELINE_DATASETS], kinds={"polars", "parquet"})
def age_labels(home: AgeNetHome) -> MaterializeResult:
    """Every face row of every dataset with its age bin (the paper's ten) and Adience bin; crops left out."""
    tables = [read_faces(home.folder.faces_folder(d)).drop("crop_jpeg", "box") for d in PIPELINE_DATASETS]
    labels = binned_labels(tables)
    write_parquet(labels, home.folder.labels_path)
    usable = labels.filter(pl.col("status") == OK)
    per_bin = counts_by(usable, "dataset", "bin").pivot("dataset", index="bin", values="rows").fill_null(0).sort("bin")
    per_bin = per_bin.with_columns(pl.col("bin").replace_strict(range(len(SEED_BINS)), SEED_BINS.labels).alias("bin"))
    return MaterializeResult(
        metadata={
            "dagster/row_count": labels.height,
            "usable rows": usable.height,
            "usable rows per bin and dataset": markdown_table(per_bin),
            "age histogram": age_histogram(usable["age"]),
            "labels": MetadataValue.path(str(home.folder.labels_path)),
        }
    )


@asset_check(
    asset=age_labels, description="Every usable row has an age in range and a bin of both schemes", blocking=True
)
def labels_in_range(home: AgeNetHome) -> AssetCheckResult:
    usable = pl.read_parquet(home.folder.labels_path).filter(pl.col("status") == OK)
    bad = usable.filter(
        ~pl.col("age").is_between(MIN_AGE, MAX_AGE)
        | pl.col("age").is_null()
        | pl.col("bin").is_null()
        | pl.col("adience_bin").is_null()
    )
    return AssetCheckResult(
        passed=bad.is_empty(),
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows out of range": bad.height, "rows checked": usable.height},
    )


class SplitConfig(Config):
    test_fraction: float = Field(default=0.2, description="Share of the training datasets kept for test (paper: 0.2)")
    validation_fraction: float = Field(default=0.2, description="Share of the remainder kept for validation")
    seed: int = Field(default=0, description="Seed of the split assignment")
    evaluation_datasets: list[str] = Field(
        default=list(EVALUATION_ONLY), description="Datasets used only for evaluation, never trained on"
    )


@asset(group_name=GROUP, deps=[age_labels], kinds={"polars", "parquet"})
def data_splits(config: SplitConfig, home: AgeNetHome) -> MaterializeResult:
    """Train / validation / test assignment that keeps a person or an identical crop on one side."""
    splits = assign_splits(
        pl.read_parquet(home.folder.labels_path),
        config.test_fraction,
        config.validation_fraction,
        config.seed,
        tuple(config.evaluation_datasets),
    )
    write_parquet(splits, home.folder.splits_path)
    table = counts_by(splits, "dataset", "split").pivot("split", index="dataset", values="rows").fill_null(0)
    return MaterializeResult(
        metadata={
            "dagster/row_count": splits.height,
            "rows per dataset and split": markdown_table(table),
            **{f"{split} rows": int((splits["split"] == split).sum()) for split in SPLITS},
            "splits": MetadataValue.path(str(home.folder.splits_path)),
        }
    )


@asset_check(asset=data_splits, description="No person group or crop hash appears in two splits", blocking=True)
def no_split_leakage(home: AgeNetHome) -> AssetCheckResult:
    found = leaks(pl.read_parquet(home.folder.splits_path))
    return AssetCheckResult(
        passed=found.is_empty(),
        severity=AssetCheckSeverity.ERROR,
        metadata={"leaking keys": found.height, "examples": markdown_table(found.head(10))},
    )


@asset_check(
    asset=data_splits,
    description="Per dataset, face rows = train + validation + test + evaluation + held_out + rejected",
    blocking=True,
)
def rows_reconcile(home: AgeNetHome) -> AssetCheckResult:
    faces = pl.concat(
        read_faces(home.folder.faces_folder(d), ["row", "status"]).with_columns(dataset=pl.lit(d))
        for d in PIPELINE_DATASETS
    )
    result = reconcile_splits(
        faces, pl.read_parquet(home.folder.splits_path, columns=["dataset", "row", "status", "split"])
    )
    return reconciliation_result(result, "rows per dataset and split")


@asset_check(asset=data_splits, description="Every age bin has rows in train, validation and test", blocking=True)
def every_bin_present(home: AgeNetHome) -> AssetCheckResult:
    splits = pl.read_parquet(home.folder.splits_path).filter(pl.col("split").is_in(SPLITS))
    present = counts_by(splits, "split", "bin")
    missing = [
        f"{split}: {label}"
        for split in SPLITS
        for index, label in enumerate(SEED_BINS.labels)
        if present.filter((pl.col("split") == split) & (pl.col("bin") == index)).is_empty()
    ]
    return AssetCheckResult(
        passed=not missing, severity=AssetCheckSeverity.ERROR, metadata={"missing bins": ", ".join(missing) or "none"}
    )


class ShardConfig(Config):
    file_megabytes: int = Field(default=DEFAULT_FILE_BYTES // 2**20, description="Largest TFRecord file size")


@asset(group_name=GROUP, deps=[data_splits], kinds={"tensorflow"})
def training_shards(context: AssetExecutionContext, config: ShardConfig, home: AgeNetHome) -> MaterializeResult:
    """TFRecord files per split and dataset of (JPEG crop, bin, age, dataset id), for tf.data to stream."""
    splits = pl.read_parquet(home.folder.splits_path)
    written = []
    for (split, dataset), rows in sorted(
        splits.filter(pl.col("split").is_in(SHARDED_SPLITS)).partition_by("split", "dataset", as_dict=True).items()
    ):
        written += write_shards(
            rows,
            dataset,
            home.folder.faces_folder(dataset),
            home.folder.shards_folder,
            shard_name(split, dataset),
            config.file_megabytes * 2**20,
        )
        context.log.info(f"{split}-{dataset}: {rows.height} examples")
    for stale in set(home.folder.shards_folder.glob("*.tfrecord")) - {f.path for f in written}:
        stale.unlink()
    table = pl.DataFrame(
        [(f.path.name, f.examples, f.path.stat().st_size) for f in written],
        schema=["file", "examples", "bytes"],
        orient="row",
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": int(table["examples"].sum()),
            "files": markdown_table(table),
            "folder": MetadataValue.path(str(home.folder.shards_folder)),
        }
    )
