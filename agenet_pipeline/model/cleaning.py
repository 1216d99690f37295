"""The paper's IMDB cleaning: drop an image when a preliminary model gives its labelled bin and the two
adjacent bins less than a threshold of probability together (0.40 in the paper)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from agenet_pipeline.core.files import write_parquet
from agenet_pipeline.core.home import Home
from agenet_pipeline.model.batch_prediction import predict_files
from agenet_pipeline.model.records import shard_files, shard_name, write_shards


def neighbourhood_mass(probabilities: np.ndarray, labelled_bins: np.ndarray) -> np.ndarray:
    """Probability of the labelled bin plus its neighbours (one neighbour at either end of the scale)."""
    probabilities = np.asarray(probabilities)
    labelled_bins = np.asarray(labelled_bins)
    padded = np.pad(probabilities, ((0, 0), (1, 1)))
    rows = np.arange(len(labelled_bins))
    return padded[rows, labelled_bins] + padded[rows, labelled_bins + 1] + padded[rows, labelled_bins + 2]


def keep(probabilities: np.ndarray, labelled_bins: np.ndarray, threshold: float = 0.40) -> np.ndarray:
    return neighbourhood_mass(probabilities, labelled_bins) >= threshold


@dataclass(frozen=True)
class Cleaning:
    judged: pl.DataFrame  # a row per IMDB training and validation face: its split, probabilities and `kept`

    def kept_per_split(self) -> dict[str, tuple[int, int]]:
        """(kept, judged) per split."""
        return {
            split: (int(rows["kept"].sum()), rows.height)
            for (split,), rows in sorted(self.judged.partition_by("split", as_dict=True).items())
        }


def clean_imdb(home: Home, threshold: float = 0.40) -> Cleaning:
    """Judge the IMDB training and validation faces with the preliminary model; write the judged table and the
    kept faces as new shards. The test split is left as it is, so that the test scores are not flattered."""
    import keras

    model = keras.models.load_model(home.model_path("preliminary_model"))
    splits = pl.read_parquet(home.splits_path)
    judged = []
    for split in ("train", "validation"):
        files = shard_files(home.shards_folder, shard_name(split, "imdb_wiki"))
        keys, probabilities = predict_files(model, [str(f) for f in files])
        labelled = keys["bin"].to_numpy()
        judged.append(
            keys.with_columns(
                pl.lit(split).alias("split"),
                pl.Series("neighbourhood_mass", neighbourhood_mass(probabilities, labelled)),
                pl.Series("kept", keep(probabilities, labelled, threshold)),
                pl.Series("probabilities", probabilities.tolist()),
            )
        )
    table = pl.concat(judged).join(splits.select("dataset", "row", "crop_bytes", "image_path"), on=["dataset", "row"])
    write_parquet(table, home.imdb_cleaned_path)
    for split in ("train", "validation"):
        kept = table.filter((pl.col("split") == split) & pl.col("kept"))
        name = shard_name(split, "imdb_wiki")
        write_shards(kept, "imdb_wiki", home.faces_folder("imdb_wiki"), home.cleaned_shards_folder, name)
    return Cleaning(table)
