"""Raw dataset assets: one manifest table per dataset, read from its configured root or the demo copy."""

import polars as pl
from dagster import Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from agenet_pipeline.core.files import write_parquet
from agenet_pipeline.core.home import Home
from agenet_pipeline.core.status import MISSING_FILE, OK
from agenet_pipeline.datasets.adience import read_adience
from agenet_pipeline.datasets.appa_real import read_appa_real
from agenet_pipeline.datasets.imdb_wiki import read_imdb_wiki, sample_usable
from agenet_pipeline.datasets.manifest import number_rows
from agenet_pipeline.datasets.utkface import read_utkface
from agenet_pipeline.pipeline.assets.metadata import age_histogram, counts_by, markdown_table, status_counts
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots

GROUP = "raw_datasets"


def _materialize(
    home: Home, dataset: str, manifest: pl.DataFrame, root, is_demo: bool, **extra: MetadataValue
) -> MaterializeResult:
    manifest = number_rows(manifest)
    path = write_parquet(manifest, home.manifest_path(dataset))
    counts = status_counts(manifest)
    return MaterializeResult(
        metadata={
            "dagster/row_count": manifest.height,
            "usable rows": counts.get(OK, 0),
            "rejected rows": manifest.height - counts.get(OK, 0),
            "rows by status": markdown_table(counts_by(manifest, "status")),
            "age histogram (usable rows)": age_histogram(manifest.filter(pl.col("status") == OK)["age"]),
            "root": MetadataValue.path(str(root)),
            "synthetic demo data": is_demo,
            "manifest": MetadataValue.path(str(path)),
            **extra,
        }
    )


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def utkface_manifest(home: AgeNetHome, dataset_roots: DatasetRoots) -> MaterializeResult:
    """UTKFace photos with age, gender and race parsed from their file names."""
    root, is_demo = dataset_roots.root("utkface", home.folder)
    return _materialize(home.folder, "utkface", read_utkface(root), root, is_demo)


class AppaRealConfig(Config):
    age_label: str = Field(default="real", description="'real' age or mean 'apparent' age as the label")


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def appa_real_manifest(config: AppaRealConfig, home: AgeNetHome, dataset_roots: DatasetRoots) -> MaterializeResult:
    """APPA-REAL photos with real and apparent age from the gt_avg CSV files."""
    root, is_demo = dataset_roots.root("appa_real", home.folder)
    manifest = read_appa_real(root, config.age_label)
    return _materialize(home.folder, "appa_real", manifest, root, is_demo, **{"age label": config.age_label})


class ImdbWikiConfig(Config):
    sample_size: int | None = Field(default=37_000, description="Usable rows to keep (the paper: 37,000); null: all")
    seed: int = Field(default=0, description="Seed of the sample")


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def imdb_wiki_manifest(config: ImdbWikiConfig, home: AgeNetHome, dataset_roots: DatasetRoots) -> MaterializeResult:
    """IMDB-WIKI rows from the .mat files: rejected rows with their reason plus a seeded sample of usable rows."""
    root, is_demo = dataset_roots.root("imdb_wiki", home.folder)
    manifest, left_out = sample_usable(read_imdb_wiki(root), config.sample_size, config.seed)
    return _materialize(
        home.folder, "imdb_wiki", manifest, root, is_demo, **{"usable rows left out by sampling": left_out}
    )


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def adience_manifest(home: AgeNetHome, dataset_roots: DatasetRoots) -> MaterializeResult:
    """Adience faces from the five fold files, with fold and user; listed faces without a file are counted."""
    root, is_demo = dataset_roots.root("adience", home.folder)
    manifest = read_adience(root)
    per_fold = counts_by(manifest, "fold", "status").pivot("status", index="fold", values="rows").fill_null(0)
    return _materialize(
        home.folder,
        "adience",
        manifest,
        root,
        is_demo,
        **{
            "listed faces without a file": int((manifest["status"] == MISSING_FILE).sum()),
            "rows per fold": markdown_table(per_fold),
        },
    )
