"""Leakage-free, deterministic train / validation / test splits.

Rows that share a person (`split_group`) or an identical crop (`crop_sha256`, duplicates across datasets happen)
form one component, and a whole component goes to one split, chosen by a seeded hash of the component. Datasets
kept for evaluation only (Adience, FG-NET) go to `evaluation`; a training row tied to one of them is `held_out`.
"""

from __future__ import annotations

import hashlib

import polars as pl

from agenet_pipeline.core.datasets import EVALUATION_ONLY
from agenet_pipeline.core.status import OK

SPLITS = ("train", "validation", "test")
EVALUATION = "evaluation"
HELD_OUT = "held_out"
REJECTED = "rejected"


def _components(rows: int, key_columns: list[list[str | None]]) -> list[int]:
    """Connected components of rows that share any non-null key (union-find)."""
    parent = list(range(rows))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for column in key_columns:
        first: dict[str, int] = {}
        for i, key in enumerate(column):
            if key is not None:
                j = first.setdefault(key, i)
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(parent))]


def _draw(name: str, seed: int) -> float:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big") / 2**64


def assign_splits(
    labels: pl.DataFrame,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    seed: int = 0,
    evaluation_datasets: tuple[str, ...] = EVALUATION_ONLY,
) -> pl.DataFrame:
    """`labels` with a `split` column. The paper's 80/20 train/test; validation is a share of the 80."""
    if not (0 < test_fraction < 1 and 0 <= validation_fraction < 1):
        raise ValueError(f"split fractions out of range: test {test_fraction}, validation {validation_fraction}")
    usable = labels.filter(pl.col("status") == OK)
    component = _components(usable.height, [usable["split_group"].to_list(), usable["crop_sha256"].to_list()])
    members = usable.select(
        "dataset",
        "row",
        pl.Series("component", component),
        pl.coalesce("split_group", "crop_sha256", pl.format("{}:{}", "dataset", "row")).alias("key"),
        pl.col("dataset").is_in(evaluation_datasets).alias("evaluation"),
    )
    per_component = members.group_by("component").agg(pl.col("key").min(), pl.col("evaluation").any().alias("tied"))
    draws = {c: _draw(k, seed) for c, k in per_component.select("component", "key").iter_rows()}
    tied = dict(per_component.select("component", "tied").iter_rows())

    def split_of(component: int, evaluation: bool) -> str:
        if evaluation:
            return EVALUATION
        if tied[component]:
            return HELD_OUT
        u = draws[component]
        return (
            "test"
            if u < test_fraction
            else "validation"
            if u < test_fraction + validation_fraction * (1 - test_fraction)
            else "train"
        )

    split = [split_of(c, e) for c, e in members.select("component", "evaluation").iter_rows()]
    assigned = members.select("dataset", "row").with_columns(pl.Series("split", split))
    return labels.join(assigned, on=["dataset", "row"], how="left", maintain_order="left").with_columns(
        pl.col("split").fill_null(REJECTED)
    )


def leaks(splits: pl.DataFrame) -> pl.DataFrame:
    """Person groups or crop hashes found in more than one of train, validation, test and evaluation."""
    placed = splits.filter(pl.col("split").is_in((*SPLITS, EVALUATION)))
    found = [
        placed.filter(pl.col(key).is_not_null())
        .group_by(pl.col(key).alias("value"))
        .agg(pl.col("split").unique().sort().alias("splits"))
        .filter(pl.col("splits").list.len() > 1)
        .with_columns(pl.lit(key).alias("key"))
        for key in ("split_group", "crop_sha256")
    ]
    return pl.concat(found).select("key", "value", pl.col("splits").list.join(", "))


def content_hash(rows: pl.DataFrame) -> str:
    """A short hash of which faces, with which labels, a set of rows holds (for lineage in training runs)."""
    keys = rows.select("dataset", "row", "crop_sha256", "bin").sort("dataset", "row")
    return hashlib.sha256(keys.write_csv().encode()).hexdigest()[:16]
