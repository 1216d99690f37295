"""Dagster resources: where the pipeline keeps its files, where the datasets are, the face detector, MLflow."""

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from agenet_pipeline.datasets.demo import demo_dataset
from agenet_pipeline.faces.detector import BLAZEFACE_SHORT_RANGE_SHA256, resolve_model

DATASETS = ("utkface", "appa_real", "imdb_wiki", "adience")


class AgeNetHome(ConfigurableResource):
    """The project's home folder: manifests, faces, labels, shards and the demo data live under it."""

    path: str | None = Field(
        default=None,
        description="Folder for everything the pipeline writes; "
        "default: $AGENET_HOME, else .agenet in the working directory",
    )

    @property
    def root(self) -> Path:
        return Path(self.path or os.environ.get("AGENET_HOME") or ".agenet").expanduser().absolute()

    def manifest_path(self, dataset: str) -> Path:
        return self.root / "manifests" / f"{dataset}.parquet"

    def faces_folder(self, dataset: str) -> Path:
        return self.root / "faces" / dataset

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
        """JSON beside the model: its MLflow run, tracking URI and registered version, for the assets after it."""
        return self.root / "models" / f"{name}.json"

    def checkpoint_folder(self, name: str) -> Path:
        return self.root / "checkpoints" / name


class DatasetRoots(ConfigurableResource):
    """Where each dataset is on disk. A dataset without a root uses the synthetic demo copy."""

    utkface: str | None = Field(default=None, description="Folder holding the UTKFace *.jpg.chip.jpg files")
    appa_real: str | None = Field(default=None, description="Folder holding gt_avg_*.csv and train/ valid/ test/")
    imdb_wiki: str | None = Field(default=None, description="Folder holding imdb.mat or wiki.mat (or one level up)")
    adience: str | None = Field(default=None, description="Folder holding fold_*_data.txt and faces/")
    demo_images: int | None = Field(default=None, description="Images per demo dataset (default: the demo's own sizes)")

    def root(self, dataset: str, home: AgeNetHome) -> tuple[Path, bool]:
        """(root folder, whether it is the synthetic demo)."""
        configured = getattr(self, dataset)
        if configured:
            return Path(configured).expanduser().absolute(), False
        return demo_dataset(home.root / "demo", dataset, self.demo_images), True


class FaceDetectorResource(ConfigurableResource):
    """The BlazeFace short-range model for MediaPipe's FaceDetector."""

    model_path: str | None = Field(default=None, description="A .tflite to use instead of the bundled model")
    model_sha256: str | None = Field(
        default=BLAZEFACE_SHORT_RANGE_SHA256, description="Expected SHA-256 of the model; empty to skip the check"
    )

    def model(self) -> Path:
        return resolve_model(self.model_path, self.model_sha256)


class MLflowResource(ConfigurableResource):
    """The MLflow tracking and registry store: a sqlite file under the home by default, any URI by configuration."""

    tracking_uri: str | None = Field(
        default=None,
        description="Tracking and registry URI (a server, Postgres, ...); default: sqlite:///<home>/mlflow.db",
    )
    experiment: str = Field(default="agenet", description="Experiment that holds the training runs")
    registered_model: str = Field(default="agenet", description="Registered model that receives each age model")

    def uri(self, home: AgeNetHome) -> str:
        """The configured URI, else an absolute sqlite URI (MLflow 3 resolves relative ones against the cwd)."""
        if self.tracking_uri:
            return self.tracking_uri
        home.root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{home.root / 'mlflow.db'}"

    def artifact_location(self, home: AgeNetHome) -> str | None:
        """Where a new experiment keeps its artifacts: beside the default store, or the configured server's choice
        (MLflow's own default is ./mlruns in whatever the working directory is)."""
        return None if self.tracking_uri else str(home.root / "mlartifacts")
