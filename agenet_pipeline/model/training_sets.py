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


def split_ages(splits: pl.DataFrame, split: str, datasets: Sequence[str]) -> np.ndarray:
    return splits.filter((pl.col("split") == split) & pl.col("dataset").is_in(list(datasets)))["age"].to_numpy()


def splits_and_files(home: Home) -> tuple[pl.DataFrame, dict[str, list[Path]]]:
    """The splits table and the TFRecord files of each of its (split, dataset) pairs, by shard name."""
    splits = pl.read_parquet(home.splits_path)
    pairs = splits.select("split", "dataset").unique().iter_rows()
    return splits, {shard_name(s, d): shard_files(home.shards_folder, shard_name(s, d)) for s, d in pairs}


def without_dropped_imdb(home: Home, splits: pl.DataFrame, files: dict[str, list[Path]]):
    """The splits and files with the IMDB rows the cleaning dropped left out, and IMDB read from its cleaned
    shards."""
    dropped = pl.read_parquet(home.imdb_cleaned_path).filter(~pl.col("kept")).select("dataset", "row")
    files = dict(files)
    for split in ("train", "validation"):
        name = shard_name(split, "imdb_wiki")
        files[name] = shard_files(home.cleaned_shards_folder, name)
    return splits.join(dropped, on=["dataset", "row"], how="anti"), files


def training_data(
    splits: pl.DataFrame, files: Mapping[str, list[Path]], datasets: Sequence[str], inputs: Sequence[str]
) -> TrainingData:
    """The shard files of `datasets` per split, checked to be trainable, with the lineage MLflow records:
    rows and a content hash per split and dataset."""
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
    return TrainingData(
        train_files,
        validation_files,
        test_files,
        lineage,
        tuple(datasets),
        tuple(inputs),
        split_ages(splits, "train", datasets),
        split_ages(splits, "test", datasets),
    )
