"""The home folder: where the pipeline keeps everything it writes, and the MLflow store's default place.

Dagster's resources and the `agenet` command both find it here: the folder given, else $AGENET_HOME, else
`.agenet` in the working directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_VARIABLE = "AGENET_HOME"
TRACKING_VARIABLE = "MLFLOW_TRACKING_URI"


def home_folder(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get(HOME_VARIABLE) or ".agenet").expanduser().absolute()


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def at(cls, path: str | Path | None = None) -> Home:
        return cls(home_folder(path))

    def manifest_path(self, dataset: str) -> Path:
        return self.root / "manifests" / f"{dataset}.parquet"

    def provenance_path(self, dataset: str) -> Path:
        return self.root / "manifests" / f"{dataset}.json"

    def faces_folder(self, dataset: str) -> Path:
        return self.root / "faces" / dataset

    @property
    def demo_folder(self) -> Path:
        return self.root / "demo"

    @property
    def labels_path(self) -> Path:
        return self.root / "labels" / "age_labels.parquet"

    @property
    def splits_path(self) -> Path:
        return self.root / "labels" / "data_splits.parquet"

    @property
    def shards_folder(self) -> Path:
        return self.root / "tfrecords"

    @property
    def cleaned_shards_folder(self) -> Path:
        return self.root / "tfrecords_cleaned"

    @property
    def imdb_cleaned_path(self) -> Path:
        return self.root / "labels" / "imdb_cleaned.parquet"

    def model_path(self, name: str) -> Path:
        return self.root / "models" / f"{name}.keras"

    def model_record_path(self, name: str) -> Path:
        """JSON beside the model: its MLflow run, tracking URI and registered version, for the steps after it."""
        return self.root / "models" / f"{name}.json"

    def checkpoint_folder(self, name: str) -> Path:
        return self.root / "checkpoints" / name

    def report_folder(self, model: str, part: str) -> Path:
        return self.root / "evaluation" / model / part

    @property
    def lock_path(self) -> Path:
        """Held by the run that is using the home (see core.lock)."""
        return self.root / "run.lock"

    @property
    def default_store(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def default_artifacts(self) -> Path:
        return self.root / "mlartifacts"


def tracking_uri(configured: str | None, home: Home) -> str:
    """The configured URI, else an absolute sqlite URI under the home (MLflow 3 resolves relative ones against
    the working directory)."""
    return configured or f"sqlite:///{home.default_store}"


def artifact_location(configured_uri: str | None, home: Home) -> str | None:
    """Where a new experiment keeps its artifacts: beside the default store, or the configured server's choice
    (MLflow's own default is ./mlruns in whatever the working directory is)."""
    return None if configured_uri else str(home.default_artifacts)
