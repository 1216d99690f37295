"""The dataset registry: every dataset the pipeline reads, with its numeric id and the kind of its age labels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    name: str
    id: int  # stored in the TFRecord shards
    title: str  # as people write it
    label_kind: str  # what its ages are: `real`, `apparent` (APPA-REAL can be either), or `range`
    evaluation_only: bool = False  # never trained on


DATASETS = {
    d.name: d
    for d in (
        Dataset("utkface", 0, "UTKFace", "real"),
        Dataset("appa_real", 1, "APPA-REAL", "real"),
        Dataset("imdb_wiki", 2, "IMDB", "real"),
        Dataset("adience", 3, "Adience", "range", evaluation_only=True),
    )
}
BY_ID = {d.id: d.name for d in DATASETS.values()}
