"""The paper's IMDB cleaning: drop an image when a preliminary model gives its labelled bin and the two
adjacent bins less than a threshold of probability together (0.40 in the paper)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from agenet_pipeline.core.ages import in_bins
from agenet_pipeline.core.files import write_parquet
from agenet_pipeline.core.home import Home
from agenet_pipeline.model.batch_prediction import predict_files
from agenet_pipeline.model.records import remove_shards, shard_files, shard_name, write_shards


def neighbourhood_mass(probabilities: np.ndarray, labelled_bins: np.ndarray) -> np.ndarray:
    """Probability of the labelled bin plus its neighbours (one neighbour at either end of the scale), from a
    network's output over the paper's bins or over years."""
    probabilities = in_bins(probabilities)
    labelled_bins = np.asarray(labelled_bins)
    padded = np.pad(probabilities, ((0, 0), (1, 1)))
    rows = np.arange(len(labelled_bins))
    return padded[rows, labelled_bins] + padded[rows, labelled_bins + 1] + padded[rows, labelled_bins + 2]


def keep(probabilities: np.ndarray, labelled_bins: np.ndarray, threshold: float = 0.40) -> np.ndarray:
    return neighbourhood_mass(probabilities, labelled_bins) >= threshold


CLEANED_SPLITS = ("train", "validation")
JUDGED_SCHEMA = {
    "dataset": pl.String,
    "row": pl.Int64,
    "bin": pl.Int64,
    "age": pl.Float64,
    "split": pl.String,
    "neighbourhood_mass": pl.Float64,
    "kept": pl.Boolean,
    "probabilities": pl.List(pl.Float64),
    "crop_bytes": pl.Int64,
    "image_path": pl.String,
}


@dataclass(frozen=True)
class Cleaning:
    judged: pl.DataFrame  # a row per IMDB training and validation face: its split, probabilities and `kept`
    note: str | None = None  # why no row was judged, when none was

    def kept_per_split(self) -> dict[str, tuple[int, int]]:
        """(kept, judged) per split."""
        return {
            split: (int(rows["kept"].sum()), rows.height)
            for (split,), rows in sorted(self.judged.partition_by("split", as_dict=True).items())
        }


def _judged(home: Home, splits: pl.DataFrame, threshold: float) -> pl.DataFrame:
    import keras

    model = keras.models.load_model(home.model_path("preliminary_model"))
    judged = []
    for split in CLEANED_SPLITS:
        files = shard_files(home.shards_folder, shard_name(split, "imdb_wiki"))
        keys, output = predict_files(model, [str(f) for f in files])
        probabilities, labelled = in_bins(output), keys["bin"].to_numpy()
        judged.append(
            keys.with_columns(
                pl.lit(split).alias("split"),
                pl.Series("neighbourhood_mass", neighbourhood_mass(probabilities, labelled)),
                pl.Series("kept", keep(probabilities, labelled, threshold)),
                pl.Series("probabilities", probabilities.tolist()),
            )
        )
    return pl.concat(judged).join(splits.select("dataset", "row", "crop_bytes", "image_path"), on=["dataset", "row"])


def clean_imdb(home: Home, threshold: float = 0.40) -> Cleaning:
    """Judge the IMDB training and validation faces with the preliminary model; write the judged table and the
    kept faces as new shards. The test split is left as it is, so that the test scores are not flattered.

    Without IMDB rows there is nothing to clean; without a preliminary model (no rows with trusted labels to train
    it on) every IMDB row is kept as it is. The note says which.
    """
    splits = pl.read_parquet(home.splits_path)
    imdb = splits.filter((pl.col("dataset") == "imdb_wiki") & pl.col("split").is_in(CLEANED_SPLITS))
    note = None
    if imdb.is_empty():
        table, note = pl.DataFrame(schema=JUDGED_SCHEMA), "no IMDB-WIKI training or validation rows: nothing to clean"
    elif not home.model_path("preliminary_model").is_file():
        table = imdb.with_columns(pl.lit(True).alias("kept")).select(
            *(pl.col(c) if c in imdb.columns or c == "kept" else pl.lit(None).alias(c) for c in JUDGED_SCHEMA)
        )
        table = table.cast(JUDGED_SCHEMA)
        note = (
            "no preliminary model (no APPA-REAL, UTKFace or labels-table rows to train it on): every IMDB-WIKI row kept"
        )
    else:
        table = _judged(home, splits, threshold)
    write_parquet(table, home.imdb_cleaned_path)
    for split in CLEANED_SPLITS:
        kept = table.filter((pl.col("split") == split) & pl.col("kept"))
        name = shard_name(split, "imdb_wiki")
        if kept.is_empty():
            remove_shards(home.cleaned_shards_folder, name)
        else:
            write_shards(kept, "imdb_wiki", home.faces_folder("imdb_wiki"), home.cleaned_shards_folder, name)
    return Cleaning(table, note)


def why_no_preliminary_model(splits: pl.DataFrame, trains_on: tuple[str, ...]) -> str | None:
    """Why the preliminary model is not trained (nothing to clean, or nothing to train it on), or None."""
    imdb = splits.filter((pl.col("dataset") == "imdb_wiki") & pl.col("split").is_in(CLEANED_SPLITS))
    if imdb.is_empty():
        return "no IMDB-WIKI training or validation rows: nothing to clean, so no preliminary model"
    if splits.filter((pl.col("split") == "train") & pl.col("dataset").is_in(list(trains_on))).is_empty():
        return f"no training rows of {', '.join(trains_on)} to train it on: IMDB-WIKI is kept uncleaned"
    return None
