"""One Dagster instance per home, and one run at a time on a home: the repository's dagster.yaml, with the commands
a user runs (`dagster asset materialize`, `dagster job execute`) in processes of their own."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, materialize

from agenet_pipeline.core.home import Home
from agenet_pipeline.core.lock import holding
from agenet_pipeline.pipeline.assets.manifests import utkface_manifest
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots, HomeInstanceMismatch, check_instance_of

REPOSITORY = Path(__file__).resolve().parents[2]
SMALL = {"resources": {"dataset_roots": {"config": {"demo_images": 10}}}}


@pytest.fixture
def dagster_home(tmp_path) -> Path:
    """DAGSTER_HOME as in the README: a folder holding the repository's dagster.yaml."""
    folder = tmp_path / "dagster_home"
    folder.mkdir()
    shutil.copy(REPOSITORY / "dagster.yaml", folder)
    return folder


def dagster(dagster_home: Path, home: Path, log: Path, *arguments: str) -> subprocess.Popen:
    """`dagster <arguments> -m agenet_pipeline` with DAGSTER_HOME and AGENET_HOME set, started from DAGSTER_HOME;
    its output goes to `log`."""
    env = {k: v for k, v in os.environ.items() if k not in ("AGENET_HOME", "DAGSTER_HOME")}
    with open(log, "w") as output:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), *arguments, "-m", "agenet_pipeline"],
            cwd=dagster_home,
            env={**env, "DAGSTER_HOME": str(dagster_home), "AGENET_HOME": str(home), "PYTHONPATH": str(REPOSITORY)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the run's step processes are stopped with it
        )


def instance_of(home: Path, dagster_home: Path, monkeypatch) -> DagsterInstance:
    """The instance that the UI opens for `home` (`AGENET_HOME=<home> DAGSTER_HOME=... dagster dev`)."""
    monkeypatch.setenv("AGENET_HOME", str(home))
    return DagsterInstance.from_config(str(dagster_home))


@pytest.mark.slow
def test_each_home_keeps_its_own_runs_and_materialisations(dagster_home, tmp_path, monkeypatch):
    homes = [tmp_path / "home_a", tmp_path / "home_b"]
    command = ["asset", "materialize", "--select", "utkface_manifest", "--config-json", json.dumps(SMALL)]
    logs = [tmp_path / f"{home.name}.log" for home in homes]
    runs = [dagster(dagster_home, home, log, *command) for home, log in zip(homes, logs)]  # both at once
    for run, log in zip(runs, logs):
        assert run.wait(timeout=600) == 0, log.read_text()[-3000:]

    run_ids = []
    for home in homes:
        with instance_of(home, dagster_home, monkeypatch) as instance:
            assert Path(instance.root_directory) == home / "dagster"
            [run] = instance.get_runs()
            assert run.status == DagsterRunStatus.SUCCESS
            latest = instance.get_latest_materialization_event(utkface_manifest.key)
            assert latest.run_id == run.run_id
            manifest = latest.asset_materialization.metadata["manifest"].value
            assert manifest == str(Home.at(home).manifest_path("utkface"))
            run_ids.append(run.run_id)
    assert run_ids[0] != run_ids[1]
    assert sorted(p.name for p in dagster_home.iterdir()) == ["dagster.yaml"]  # nothing recorded beside the yaml


def test_a_run_on_another_homes_instance_is_refused(dagster_home, tmp_path, monkeypatch):
    other = tmp_path / "other_home"
    with instance_of(tmp_path / "home", dagster_home, monkeypatch) as instance:
        with pytest.raises(Exception) as refused:
            materialize(
                [utkface_manifest],
                instance=instance,
                resources={"home": AgeNetHome(path=str(other)), "dataset_roots": DatasetRoots(demo_images=10)},
            )
        assert not instance.get_latest_materialization_event(utkface_manifest.key)
    mismatch = refused.value.__cause__
    assert isinstance(mismatch, HomeInstanceMismatch), refused.value
    assert f"outside the run's home folder {other}" in str(mismatch) and f"AGENET_HOME={other}" in str(mismatch)
    assert not other.exists()  # refused before anything was written


def test_an_ephemeral_instance_belongs_to_any_home(tmp_path):
    with DagsterInstance.ephemeral() as instance:
        check_instance_of(Home.at(tmp_path), instance)


@pytest.mark.slow
def test_a_second_run_on_the_same_home_fails_at_once_naming_the_first(dagster_home, tmp_path):
    home = Home.at(tmp_path / "home")
    (dagster_home / "small.yaml").write_text(json.dumps(SMALL))
    command = ["job", "execute", "-j", "data_job", "-c", "small.yaml"]
    first = dagster(dagster_home, home.root, tmp_path / "first.log", *command)
    try:
        deadline = time.monotonic() + 300
        while not (home.lock_path.is_file() and home.lock_path.read_text()) and first.poll() is None:
            assert time.monotonic() < deadline, "the first run never took the home's lock"
            time.sleep(0.2)
        holder = home.lock_path.read_text()
        assert holder.startswith("run ") and holder.endswith(" of data_job"), holder

        second = dagster(dagster_home, home.root, tmp_path / "second.log", *command)
        second.wait(timeout=300)
        output = (tmp_path / "second.log").read_text()

        assert second.returncode != 0 and first.poll() is None, output[-3000:]
        assert f"the home folder {home.root} is in use by {holder}" in output, output[-3000:]
        assert "STEP_START" not in output  # refused before any step
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    with holding(home, "a run after the first was killed"):  # a killed run leaves its home free
        pass
