"""What a training run trains on: the shard files of chosen datasets per split, checked, with their lineage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.core.home import Home
from agenet_pipeline.datasets.splits import SPLITS, content_hash
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.model.records import shard_files, shard_name
from agenet_pipeline.model.training import check_training_set


@dataclass(frozen=True)
class TrainingData:
    train_files: Sequence[str]
    validation_files: Sequence[str]
    test_files: Sequence[str]
    lineage: Mapping[str, str]
    datasets: Sequence[str] = ()
    inputs: Sequence[str] = ()  # the Dagster asset keys the files come from
    train_ages: np.ndarray = field(default_factory=lambda: np.zeros(0))  # for the constant baselines
    test_ages: np.ndarray = field(default_factory=lambda: np.zeros(0))
    faces: FaceSettings | None = None  # how its crops were made (the settings of its largest dataset)
    synthetic: bool = False  # whether any of it is the synthetic demo
    dataset_rows: Mapping[str, int] = field(default_factory=dict)  # rows of each dataset in the three splits

    @property
    def provenance_tags(self) -> dict[str, str]:
        """What a run and a registered version say about their data: `data.synthetic` and the datasets' rows."""
        return {
            "data.synthetic": str(self.synthetic).lower(),
            "data.datasets": ",".join(f"{d}={n}" for d, n in self.dataset_rows.items()),
        }


def split_ages(splits: pl.DataFrame, split: str, datasets: Sequence[str]) -> np.ndarray:
    return splits.filter((pl.col("split") == split) & pl.col("dataset").is_in(list(datasets)))["age"].to_numpy()


def splits_and_files(home: Home) -> tuple[pl.DataFrame, dict[str, list[Path]]]:
    """The splits table and the TFRecord files of each of its (split, dataset) pairs, by shard name."""
    splits = pl.read_parquet(home.splits_path)
    pairs = splits.select("split", "dataset").unique().iter_rows()
    return splits, {shard_name(s, d): shard_files(home.shards_folder, shard_name(s, d)) for s, d in pairs}


def without_dropped_imdb(home: Home, splits: pl.DataFrame) -> pl.DataFrame:
    """The splits with the IMDB rows the cleaning dropped left out."""
    dropped = pl.read_parquet(home.imdb_cleaned_path).filter(~pl.col("kept")).select("dataset", "row")
    return splits.join(dropped, on=["dataset", "row"], how="anti")


def with_cleaned_imdb(home: Home, files: Mapping[str, list[Path]]) -> dict[str, list[Path]]:
    """The shard files with IMDB's training and validation shards read from the cleaned ones."""
    cleaned = {
        name: shard_files(home.cleaned_shards_folder, name)
        for name in (shard_name(split, "imdb_wiki") for split in ("train", "validation"))
    }
    return {**files, **cleaned}


def training_data(
    splits: pl.DataFrame,
    files: Mapping[str, list[Path]],
    datasets: Sequence[str],
    inputs: Sequence[str],
    synthetic: Mapping[str, bool] | None = None,
    faces: Mapping[str, FaceSettings | None] | None = None,
) -> TrainingData:
    """The shard files of `datasets` per split, checked to be trainable, with the lineage MLflow records:
    rows and a content hash per split and dataset, whether any of them is synthetic (`synthetic`, by dataset),
    and how the crops were made (`faces`, by dataset: the served model crops as the largest dataset's were)."""
    train = splits.filter((pl.col("split") == "train") & pl.col("dataset").is_in(list(datasets)))
    check_training_set(dict(train.group_by("bin").len().iter_rows()), len(SEED_BINS))
    present = {split: [d for d in datasets if files.get(shard_name(split, d))] for split in SPLITS}
    lineage = {}
    for split, names in present.items():
        for name in names:
            rows = splits.filter((pl.col("split") == split) & (pl.col("dataset") == name))
            lineage[f"data.{split}.{name}.rows"] = str(rows.height)
            lineage[f"data.{split}.{name}.hash"] = content_hash(rows)
    train_files, validation_files, test_files = (
        [str(f) for name in present[split] for f in files[shard_name(split, name)]] for split in SPLITS
    )
    placed = splits.filter(pl.col("split").is_in(SPLITS) & pl.col("dataset").is_in(list(datasets)))
    rows = dict(sorted(placed.group_by("dataset").len().iter_rows()))
    return TrainingData(
        train_files,
        validation_files,
        test_files,
        lineage,
        tuple(datasets),
        tuple(inputs),
        split_ages(splits, "train", datasets),
        split_ages(splits, "test", datasets),
        (faces or {}).get(max(rows, key=rows.get)) if rows else None,
        any((synthetic or {}).get(d, False) for d in rows),
        rows,
    )
