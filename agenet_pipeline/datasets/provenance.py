"""Where a dataset's manifest came from: the root it was read from, whether it is the synthetic demo, its rows.

Written beside the manifest, so that training can say what a model was trained on (`data.synthetic`, the datasets
and their rows) without reading the manifests again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from agenet_pipeline.core.files import write_bytes, write_parquet
from agenet_pipeline.core.home import Home
from agenet_pipeline.core.status import OK
from agenet_pipeline.datasets.manifest import manifest_frame, number_rows


@dataclass(frozen=True)
class Provenance:
    dataset: str
    root: str | None  # None: the dataset is not configured, and its manifest is empty
    synthetic: bool
    rows: int
    usable: int

    @classmethod
    def of(cls, dataset: str, root: Path | None, synthetic: bool, manifest: pl.DataFrame) -> Provenance:
        usable = int((manifest["status"] == OK).sum()) if manifest.height else 0
        return cls(dataset, str(root) if root else None, synthetic, manifest.height, usable)

    @property
    def configured(self) -> bool:
        return self.root is not None

    def save(self, home: Home) -> Path:
        return write_bytes(home.provenance_path(self.dataset), json.dumps(asdict(self), indent=2))


def provenance(home: Home, dataset: str) -> Provenance:
    path = home.provenance_path(dataset)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: materialise {dataset}_manifest first")
    return Provenance(**json.loads(path.read_text()))


class NoUsableExamples(ValueError):
    """A configured dataset root that holds no usable example: the run stops at its manifest."""


def store_manifest(home: Home, dataset: str, root: Path | None, synthetic: bool, manifest: pl.DataFrame) -> Provenance:
    """Write the manifest (numbered rows) and its provenance. A configured root without one usable row is an error
    that names the dataset and the root, before any other work."""
    found = Provenance.of(dataset, root, synthetic, manifest)
    if found.configured and found.usable == 0:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(manifest.group_by("status").len().iter_rows())) or "no rows"
        raise NoUsableExamples(
            f"{dataset}: the dataset root {root} holds no usable example ({statuses}); check the path and the "
            "dataset's layout (README, Use real datasets)"
        )
    write_parquet(number_rows(manifest), home.manifest_path(dataset))
    found.save(home)
    return found


def empty_manifest() -> pl.DataFrame:
    """The manifest of a dataset that is not configured: no rows."""
    return manifest_frame([], {})
