"""Row accounting between stages: every row that goes in comes out exactly once, usable or with its reason.

manifest rows = face rows (ok + each rejection reason), and per dataset
face rows = train + validation + test + evaluation + held_out + rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from agenet_pipeline.core.status import OK
from agenet_pipeline.datasets.splits import EVALUATION, HELD_OUT, REJECTED, SPLITS

SPLIT_COLUMNS = (*SPLITS, EVALUATION, HELD_OUT, REJECTED)


@dataclass(frozen=True)
class Reconciliation:
    statement: str  # the equation, with the numbers
    table: pl.DataFrame  # counts per dataset, or per outcome
    problems: list[str]  # what does not add up; empty when everything does

    @property
    def passed(self) -> bool:
        return not self.problems


def _key_problems(before: pl.DataFrame, after: pl.DataFrame, keys: list[str], where: str) -> list[str]:
    lost = before.select(keys).join(after.select(keys), on=keys, how="anti").height
    added = after.select(keys).join(before.select(keys), on=keys, how="anti").height
    duplicated = after.height - after.select(keys).n_unique()
    return [
        f"{where}: {n} rows {what}"
        for n, what in ((lost, "lost"), (added, "not in the input"), (duplicated, "duplicated"))
        if n
    ]


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return dict(frame.group_by(column).len().sort(column).iter_rows())


def reconcile_faces(manifest: pl.DataFrame, faces: pl.DataFrame) -> Reconciliation:
    """Manifest rows against the face rows of one dataset (both with `row` and `status`)."""
    problems = _key_problems(manifest, faces, ["row"], "faces")
    earlier = manifest.filter(pl.col("status") != OK).select("row", "status")
    relabelled = earlier.join(faces.select("row", "status"), on="row", suffix="_face").filter(
        pl.col("status") != pl.col("status_face")
    )
    if relabelled.height:
        problems.append(f"faces: {relabelled.height} rows rejected by the reader lost their reason")
    outcomes = _counts(faces, "status")
    usable = outcomes.pop(OK, 0)
    terms = " + ".join([f"{usable:,} ok", *(f"{n:,} {reason}" for reason, n in outcomes.items())])
    table = pl.DataFrame(
        [(OK, usable), *outcomes.items()],
        schema=["outcome", "rows"],
        orient="row",
        schema_overrides={"rows": pl.Int64},
    )
    statement = f"{manifest.height:,} manifest rows = {faces.height:,} face rows = {terms}"
    return Reconciliation(statement, table, problems)


def reconcile_splits(faces: pl.DataFrame, splits: pl.DataFrame) -> Reconciliation:
    """Face rows of every dataset (`dataset`, `row`, `status`) against the split table."""
    problems = _key_problems(faces, splits, ["dataset", "row"], "splits")
    unknown = set(splits["split"].unique().to_list()) - set(SPLIT_COLUMNS)
    if unknown:
        problems.append(f"splits: unknown split(s) {', '.join(sorted(map(str, unknown)))}")
    misplaced = faces.join(splits.select("dataset", "row", "split"), on=["dataset", "row"]).filter(
        (pl.col("status") == OK) == (pl.col("split") == REJECTED)
    )
    if misplaced.height:
        problems.append(f"splits: {misplaced.height} rows placed against their status (usable rejected or the reverse)")
    per_split = (
        splits.group_by("dataset", "split")
        .len()
        .pivot("split", index="dataset", values="len")
        .select("dataset", *(pl.col(s) if s in splits["split"] else pl.lit(0).alias(s) for s in SPLIT_COLUMNS))
        .fill_null(0)
    )
    table = (
        faces.group_by("dataset")
        .len("faces")
        .join(per_split, on="dataset", how="left")
        .fill_null(0)
        .with_columns(pl.sum_horizontal(SPLIT_COLUMNS).alias("sum"))
        .sort("dataset")
    )
    for dataset, expected, total in table.select("dataset", "faces", "sum").iter_rows():
        if expected != total:
            problems.append(f"{dataset}: {expected} face rows but {total} rows in the splits")
    statement = "; ".join(
        f"{row['dataset']}: {row['faces']:,} faces = " + " + ".join(f"{row[s]:,} {s}" for s in SPLIT_COLUMNS if row[s])
        for row in table.iter_rows(named=True)
    )
    return Reconciliation(statement, table, problems)
