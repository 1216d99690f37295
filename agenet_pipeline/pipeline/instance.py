"""The Dagster instance's storage, kept under the home folder, so that each home has an instance of its own.

dagster.yaml names these classes with a folder relative to the home: the runs, materialisations and logs of a
run on one home are recorded beside that home's files, and the UI started for a home shows that home's assets
only. The home is found as the `home` resource finds it ($AGENET_HOME, else `.agenet` in the working directory),
in each process that loads the instance. dagster.yaml cannot say this with `{env: AGENET_HOME}`: a StringSource
fails when the variable is unset, and the default home is no variable at all.
"""

from pathlib import Path

from dagster import StringSource
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

from agenet_pipeline.core.home import Home

FOLDER = {"folder": StringSource}


def under_home(config: dict) -> str:
    folder = Path(config["folder"])
    if folder.is_absolute():
        raise ValueError(f"dagster.yaml: the instance folder {folder} must be relative to the home folder")
    return str(Home.at().root / folder)


class UnderHome:
    """Config of a folder relative to the home, for a Dagster instance class opened on that folder."""

    @classmethod
    def config_type(cls):
        return FOLDER

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.open(under_home(config_value), inst_data)

    @classmethod
    def open(cls, folder: str, inst_data):
        return cls(folder, inst_data=inst_data)


class HomeStorage(UnderHome, DagsterSqliteStorage):
    """Dagster's sqlite run, event and schedule storage in `<home>/<folder>`."""

    @classmethod
    def open(cls, folder: str, inst_data):
        return cls.from_local(folder, inst_data=inst_data)


class HomeArtifactStorage(UnderHome, LocalArtifactStorage):
    """Dagster's local artifacts (op outputs, schedule files) in `<home>/<folder>`."""


class HomeComputeLogs(UnderHome, LocalComputeLogManager):
    """The steps' captured stdout and stderr in `<home>/<folder>`."""
