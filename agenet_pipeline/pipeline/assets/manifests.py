"""Raw dataset assets: one manifest table per dataset, read from the root the user configured.

A dataset without a root is absent (an empty manifest) when any root is set; the synthetic demo stands in for
the paper's four datasets only when none is set, or when `dataset_roots: demo: true` asks for it.
"""

from collections.abc import Callable
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from agenet_pipeline.core.datasets import DATASETS
from agenet_pipeline.core.status import MISSING_FILE, OK
from agenet_pipeline.datasets.adience import read_adience
from agenet_pipeline.datasets.appa_real import read_appa_real
from agenet_pipeline.datasets.fgnet import read_fgnet
from agenet_pipeline.datasets.imdb_wiki import read_imdb_wiki, sample_usable
from agenet_pipeline.datasets.labels_table import read_labels_table
from agenet_pipeline.datasets.provenance import NoUsableExamples, empty_manifest, store_manifest
from agenet_pipeline.datasets.utkface import read_utkface
from agenet_pipeline.pipeline.assets.metadata import age_histogram, counts_by, markdown_table, status_counts
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots, root_variable

GROUP = "raw_datasets"


def _materialize(
    context: AssetExecutionContext,
    home: AgeNetHome,
    dataset_roots: DatasetRoots,
    dataset: str,
    read: Callable[[Path], tuple[pl.DataFrame, dict]],
) -> MaterializeResult:
    """`read`: the dataset's manifest from its root, and metadata of its own."""
    root, synthetic = dataset_roots.source(dataset, home.folder)
    manifest, extra = read(root) if root else (empty_manifest(), {})
    try:
        found = store_manifest(home.folder, dataset, root, synthetic, manifest)
    except NoUsableExamples as error:
        raise Failure(str(error), allow_retries=False) from error
    if synthetic:
        context.log.warning(
            f"{dataset}: the SYNTHETIC demo copy (drawn faces, no real person) under {root}. Models trained on it "
            f"are for trying the pipeline only: set ${root_variable(dataset)} (or the dataset_roots resource) to "
            "your copy of the dataset."
        )
    if not found.configured:
        return MaterializeResult(
            metadata={
                "dagster/row_count": 0,
                "configured": False,
                "note": f"{DATASETS[dataset].title} is not configured (set ${root_variable(dataset)} or the "
                "dataset_roots resource): no rows",
            }
        )
    counts = status_counts(manifest)
    return MaterializeResult(
        metadata={
            "dagster/row_count": manifest.height,
            "configured": True,
            "usable rows": counts.get(OK, 0),
            "rejected rows": manifest.height - counts.get(OK, 0),
            "rows by status": markdown_table(counts_by(manifest, "status")),
            "age histogram (usable rows)": age_histogram(manifest.filter(pl.col("status") == OK)["age"]),
            "root": MetadataValue.path(str(root)),
            "synthetic demo data": synthetic,
            "manifest": MetadataValue.path(str(home.folder.manifest_path(dataset))),
            **extra,
        }
    )


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def utkface_manifest(
    context: AssetExecutionContext, home: AgeNetHome, dataset_roots: DatasetRoots
) -> MaterializeResult:
    """UTKFace photos with age, gender and race parsed from their file names."""
    return _materialize(context, home, dataset_roots, "utkface", lambda root: (read_utkface(root), {}))


class AppaRealConfig(Config):
    age_label: str = Field(default="real", description="'real' age or mean 'apparent' age as the label")


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def appa_real_manifest(
    context: AssetExecutionContext, config: AppaRealConfig, home: AgeNetHome, dataset_roots: DatasetRoots
) -> MaterializeResult:
    """APPA-REAL photos with real and apparent age from the gt_avg CSV files."""
    return _materialize(
        context,
        home,
        dataset_roots,
        "appa_real",
        lambda root: (read_appa_real(root, config.age_label), {"age label": config.age_label}),
    )


class ImdbWikiConfig(Config):
    sample_size: int | None = Field(default=37_000, description="Usable rows to keep (the paper: 37,000); null: all")
    seed: int = Field(default=0, description="Seed of the sample")


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def imdb_wiki_manifest(
    context: AssetExecutionContext, config: ImdbWikiConfig, home: AgeNetHome, dataset_roots: DatasetRoots
) -> MaterializeResult:
    """IMDB-WIKI rows from the .mat files: rejected rows with their reason plus a seeded sample of usable rows."""

    def read(root: Path) -> tuple[pl.DataFrame, dict]:
        manifest, left_out = sample_usable(read_imdb_wiki(root), config.sample_size, config.seed)
        return manifest, {"usable rows left out by sampling": left_out}

    return _materialize(context, home, dataset_roots, "imdb_wiki", read)


def _read_adience(root: Path) -> tuple[pl.DataFrame, dict]:
    manifest = read_adience(root)
    per_fold = counts_by(manifest, "fold", "status").pivot("status", index="fold", values="rows").fill_null(0)
    return manifest, {
        "listed faces without a file": int((manifest["status"] == MISSING_FILE).sum()),
        "rows per fold": markdown_table(per_fold),
    }


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def adience_manifest(
    context: AssetExecutionContext, home: AgeNetHome, dataset_roots: DatasetRoots
) -> MaterializeResult:
    """Adience faces from the five fold files, with fold and user; listed faces without a file are counted."""
    return _materialize(context, home, dataset_roots, "adience", _read_adience)


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def labels_table_manifest(
    context: AssetExecutionContext, home: AgeNetHome, dataset_roots: DatasetRoots
) -> MaterializeResult:
    """A dataset of your own (AgeDB, MegaAge, your photos) from a CSV of path,age and optional person,gender;
    trained on beside the others."""
    return _materialize(context, home, dataset_roots, "labels_table", lambda root: (read_labels_table(root), {}))


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def fgnet_manifest(context: AssetExecutionContext, home: AgeNetHome, dataset_roots: DatasetRoots) -> MaterializeResult:
    """FG-NET photos with person and age from their PPPAaa.JPG names: another source, scored and never trained on."""
    return _materialize(context, home, dataset_roots, "fgnet", lambda root: (read_fgnet(root), {}))
