"""Dagster resources: where the pipeline keeps its files, where the datasets are, the face detector, MLflow."""

import os
import socket
from pathlib import Path

from dagster import ConfigurableResource, DagsterInstance, DagsterRun, InitResourceContext
from pydantic import Field

from agenet_pipeline.core.code import PACKAGE, code_version
from agenet_pipeline.core.datasets import PIPELINE_DATASETS
from agenet_pipeline.core.home import TRACKING_VARIABLE, Home, artifact_location, tracking_uri
from agenet_pipeline.core.services import require_reachable
from agenet_pipeline.demo.writers import WRITERS, demo_dataset
from agenet_pipeline.faces.detector import BLAZEFACE_SHORT_RANGE_SHA256, resolve_model
from agenet_pipeline.tracking.store import Store


class HomeInstanceMismatch(RuntimeError):
    """A run whose Dagster instance keeps its records outside the run's home folder."""


def check_instance_of(home: Home, instance: DagsterInstance | None) -> None:
    """Refuse a run whose (persistent) instance is not kept under the home: its materialisations would show in
    the UI as the latest state of another home's assets. An ephemeral instance (tests, `materialize`) keeps
    nothing after the run."""
    if instance is None or instance.is_ephemeral:
        return
    folder = Path(instance.root_directory).resolve()
    if not folder.is_relative_to(home.root.resolve()):
        raise HomeInstanceMismatch(
            f"this run's Dagster instance keeps its records in {folder}, outside the run's home folder {home.root}: "
            "each home has its own instance, so that one home's runs never show as another's. Set "
            f"AGENET_HOME={home.root} for the dagster command (with the repository's dagster.yaml, the instance then "
            "lives in <home>/dagster) instead of the home resource's path, or use a dagster.yaml whose storage is "
            "under that folder"
        )


# The code version of the process that launched a run, a tag of every job's runs; each step compares its own.
CODE_TAG = "agenet/code_version"


class CodeVersionMismatch(RuntimeError):
    """A step on a worker that runs other code than the process that launched its run."""


def check_code_of(run: DagsterRun | None) -> None:
    """Refuse a step whose process runs other agenet_pipeline code than the one that launched the run (a Celery
    worker started from another commit, or files changed under a running job): its results would mix versions."""
    launched = run.tags.get(CODE_TAG) if run is not None else None
    if launched and launched != code_version():
        raise CodeVersionMismatch(
            f"run {run.run_id} was launched with agenet_pipeline code {launched}, but this step's process "
            f"({socket.gethostname()}, pid {os.getpid()}) runs code {code_version()} from {PACKAGE}: install the "
            "same version of the project on every worker and restart them, then launch the run again"
        )


class AgeNetHome(ConfigurableResource):
    """The project's home folder: manifests, faces, labels, shards and the demo data live under it. A run refuses
    a home whose Dagster instance is another's (HomeInstanceMismatch), and every step that uses the home refuses to
    run other code than the run was launched with (CodeVersionMismatch)."""

    path: str | None = Field(
        default=None,
        description="Folder for everything the pipeline writes; "
        "default: $AGENET_HOME, else .agenet in the working directory",
    )

    @property
    def folder(self) -> Home:
        return Home.at(self.path)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        check_instance_of(self.folder, context.instance)
        check_code_of(context.dagster_run)


def root_variable(dataset: str) -> str:
    """The environment variable that names a dataset's root when the run config does not: $AGENET_UTKFACE, ..."""
    return f"AGENET_{dataset.upper()}"


class DatasetRoots(ConfigurableResource):
    """Where each dataset is on disk: the run config's value, else $AGENET_<DATASET>. Only the datasets given a
    root are read; the synthetic demo stands in for the paper's four when no root is set at all (or `demo: true`).
    FG-NET and a labels table have no demo copy: they are read only from a root."""

    utkface: str | None = Field(
        default=None, description="Folder holding the UTKFace *.jpg.chip.jpg files (default: $AGENET_UTKFACE)"
    )
    appa_real: str | None = Field(
        default=None,
        description="Folder holding gt_avg_*.csv and train/ valid/ test/ (default: $AGENET_APPA_REAL)",
    )
    imdb_wiki: str | None = Field(
        default=None,
        description="Folder holding imdb.mat or wiki.mat, or one level up (default: $AGENET_IMDB_WIKI)",
    )
    adience: str | None = Field(
        default=None, description="Folder holding fold_*_data.txt and faces/ (default: $AGENET_ADIENCE)"
    )
    labels_table: str | None = Field(
        default=None,
        description="A CSV of path,age[,person,gender] (paths relative to it), or a folder holding labels.csv: "
        "any dataset of your own, trained on (default: $AGENET_LABELS_TABLE)",
    )
    fgnet: str | None = Field(
        default=None,
        description="Folder holding the FG-NET PPPAaa.JPG photos: scored as another source, never trained on "
        "(default: $AGENET_FGNET)",
    )
    demo: bool | None = Field(
        default=None,
        description="true: the synthetic demo for every dataset without a root; false: never; "
        "default: the demo only when no root is set at all",
    )
    demo_images: int | None = Field(default=None, description="Images per demo dataset (default: the demo's own sizes)")

    def configured(self) -> dict[str, Path]:
        """The roots given, by the run config or the environment."""
        roots = {d: getattr(self, d) or os.environ.get(root_variable(d)) for d in PIPELINE_DATASETS}
        return {d: Path(root).expanduser().absolute() for d, root in roots.items() if root}

    def source(self, dataset: str, home: Home) -> tuple[Path | None, bool]:
        """(root folder, whether it is the synthetic demo); no root when the dataset is absent."""
        roots = self.configured()
        if dataset in roots:
            return roots[dataset], False
        if dataset in WRITERS and (self.demo if self.demo is not None else not roots):
            return demo_dataset(home.demo_folder, dataset, self.demo_images), True
        return None, False


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

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # The MLflow client retries an unreachable server for minutes: a step that needs it fails at once instead.
        uri = self.tracking_uri or os.environ.get(TRACKING_VARIABLE, "")
        if uri.startswith(("http://", "https://")):
            require_reachable("the MLflow tracking server", uri)

    def store(self, home: Home) -> Store:
        home.root.mkdir(parents=True, exist_ok=True)
        return Store(tracking_uri(self.tracking_uri, home), self.experiment, artifact_location(self.tracking_uri, home))
