"""The dataset registry: every dataset the project reads, with its numeric id and the kind of its age labels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    name: str
    id: int  # stored in the TFRecord shards
    title: str  # as people write it
    label_kind: str  # what its ages are: `real`, `apparent` (APPA-REAL can be either), or `range`
    evaluation_only: bool = False  # never trained on
    # Whether the Dagster pipeline has its manifest and face assets and a root in its resources; a dataset without
    # them has a reader only.
    in_pipeline: bool = False


DATASETS = {
    d.name: d
    for d in (
        Dataset("utkface", 0, "UTKFace", "real", in_pipeline=True),
        Dataset("appa_real", 1, "APPA-REAL", "real", in_pipeline=True),
        Dataset("imdb_wiki", 2, "IMDB", "real", in_pipeline=True),
        Dataset("adience", 3, "Adience", "range", evaluation_only=True, in_pipeline=True),
        Dataset("labels_table", 4, "Labels table", "real", in_pipeline=True),
        Dataset("fgnet", 5, "FG-NET", "real", evaluation_only=True, in_pipeline=True),
    )
}
BY_ID = {d.id: d.name for d in DATASETS.values()}
PIPELINE_DATASETS = tuple(name for name, d in DATASETS.items() if d.in_pipeline)
EVALUATION_ONLY = tuple(name for name in PIPELINE_DATASETS if DATASETS[name].evaluation_only)
TRAINED_ON = tuple(name for name in PIPELINE_DATASETS if not DATASETS[name].evaluation_only)
# Never trained on and labelled with real ages in years: scored as photos from another source.
CROSS_SOURCE = tuple(name for name in EVALUATION_ONLY if DATASETS[name].label_kind == "real")
