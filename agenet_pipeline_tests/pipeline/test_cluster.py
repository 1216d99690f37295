"""full_job on a loopback cluster: Postgres-backed Dagster, Celery workers on a `cpu` and a `gpu` queue through
Redis, and the MLflow server, all started by deploy/loopback.py as the README's "Scale out" block starts them."""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, ReexecutionOptions, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository
from mlflow import MlflowClient

from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline_tests.conftest import on_ci

REPOSITORY = Path(__file__).resolve().parents[2]
DEPLOY = REPOSITORY / "deploy"
# configs/demo.yaml, made smaller so that the whole job runs in about two minutes: four face shards per dataset, a
# narrow network at 32x32 for two epochs.
SMALLER = """
resources:
  dataset_roots:
    config:
      demo_images: 200
ops:
  faces_utkface: {config: {shard_size: 60}}
  faces_appa_real: {config: {shard_size: 60}}
  faces_imdb_wiki: {config: {shard_size: 60}}
  faces_adience: {config: {shard_size: 60}}
  preliminary_model:
    config: &small
      recipe: recommended
      input_size: 32
      filters: [8, 16]
      dense_units: [16]
      max_epochs: 2
  age_model:
    config: *small
"""
SHARDS_OF_TEN = """
resources:
  dataset_roots:
    config:
      demo_images: 200
ops:
  faces_utkface: {config: {shard_size: 10}}
"""


def loopback_module():
    spec = importlib.util.spec_from_file_location("loopback", DEPLOY / "loopback.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_cluster_parts() -> None:
    missing = [name for name in ("dagster_celery", "dagster_postgres") if importlib.util.find_spec(name) is None]
    missing += [tool for tool in ("psql",) if shutil.which(tool) is None]
    missing += [] if (loopback_module().POSTGRES_BIN / "postgres").exists() else ["PostgreSQL 15"]
    if missing:
        reason = f"the cluster test needs {', '.join(missing)} (pip install -e '.[cluster]'; PostgreSQL)"
        pytest.fail(reason) if on_ci() else pytest.skip(reason)


def dagster(cluster, home: Path, arguments: list[str], *configs: Path, wait: bool = True):
    """A `dagster` command on the cluster, for runs on `home`; the process when not `wait`."""
    command = [str(Path(sys.executable).parent / "dagster"), *arguments, "-m", "agenet_pipeline"]
    command += [arg for config in configs for arg in ("-c", str(config))]
    env = {**os.environ, **cluster.env}
    if not wait:
        return subprocess.Popen(command, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=home, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The loopback cluster and its home (the workers' and every run's), stopped and checked stopped after the
    module's tests."""
    require_cluster_parts()
    home = tmp_path_factory.mktemp("cluster-home")
    # In /tmp itself: PostgreSQL runs as `nobody`, who cannot enter pytest's own temporary folders.
    services = Path(tempfile.mkdtemp(prefix="agenet-cluster-test-"))
    try:
        with loopback_module().loopback_cluster(services, home) as started:
            processes = list(started.processes)
            yield started
    finally:
        shutil.rmtree(services, ignore_errors=True)
    assert all(process.poll() is not None for _, process in processes), "a service of the cluster is still running"


@pytest.fixture(scope="module")
def cluster_instance(cluster):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in cluster.env.items():
            patch.setenv(name, value)
        instance = DagsterInstance.from_config(str(DEPLOY))
    yield instance
    instance.dispose()


@pytest.fixture(scope="module")
def cluster_run(cluster, cluster_instance):
    """One run of full_job on the cluster: (cluster, home, completed process, instance)."""
    home = cluster.home
    (home / "smaller.yaml").write_text(SMALLER)
    configs = (REPOSITORY / "configs/demo.yaml", home / "smaller.yaml", DEPLOY / "cluster.yaml")
    run = dagster(cluster, home, ["job", "execute", "-j", "full_job"], *configs)
    return cluster, home, run, cluster_instance


def latest_run(instance: DagsterInstance):
    return instance.get_runs(limit=1)[0]


def worker_of_steps(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the Celery worker (`<queue>@<host>`) that ran it, from the workers' own engine events."""
    workers = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.event_specific_data.metadata
        if "Celery worker" in metadata:
            workers[entry.step_key] = metadata["Celery worker"].value
    return workers


@pytest.mark.slow
def test_the_run_succeeds_with_its_records_in_postgres_and_no_sqlite_file(cluster_run):
    cluster, home, run, instance = cluster_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    record = latest_run(instance)
    assert record.job_name == "full_job" and record.status == DagsterRunStatus.SUCCESS
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    count = subprocess.run(
        ["psql", "-h", cluster.env["AGENET_PG_HOST"], "-p", cluster.env["AGENET_PG_PORT"], "-U", "agenet", "-d",
         "dagster", "-tAc", f"SELECT count(*) FROM event_logs WHERE run_id = '{record.run_id}'"],
        env={**os.environ, "PGPASSWORD": cluster.env["AGENET_PG_PASSWORD"]}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(count.stdout) > 100
    sqlite = [p for folder in (home, DEPLOY) for p in folder.rglob("*") if p.suffix in (".db", ".sqlite")]
    assert sqlite == []


@pytest.mark.slow
def test_face_shards_spread_over_worker_processes_and_training_runs_on_the_gpu_worker(cluster_run):
    _, _, _, instance = cluster_run
    processes = {}
    for dataset in ("utkface", "appa_real", "imdb_wiki", "adience"):
        event = instance.get_latest_materialization_event(AssetKey(f"faces_{dataset}"))
        metadata = event.asset_materialization.metadata
        assert metadata["shards"].value == 4 and metadata["shards reused from an earlier run"].value == 0
        processes[dataset] = metadata["shard processes"].value
    assert max(len(p) for p in processes.values()) > 1, processes
    workers = worker_of_steps(instance, latest_run(instance).run_id)
    shard_steps = [step for step in workers if step.startswith("faces_utkface.face_shard_utkface")]
    assert len(shard_steps) == 4 and {workers[step].split("@")[0] for step in shard_steps} == {"cpu"}
    for step in ("preliminary_model", "imdb_cleaned", "age_model", "age_model_evaluation", "adience_benchmark"):
        assert workers[step].startswith("gpu@"), (step, workers.get(step))
    assert workers["utkface_manifest"].startswith("cpu@") and workers["champion_gate"].startswith("cpu@")


@pytest.mark.slow
def test_the_model_is_registered_on_the_server_and_agenet_loads_the_champion_through_it(cluster_run, tmp_path):
    cluster, _, _, _ = cluster_run
    server = cluster.env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=server, registry_uri=server)
    versions = client.search_model_versions("name = 'agenet'")
    assert len(versions) == 1
    champion = client.get_model_version_by_alias("agenet", "champion")
    assert champion.version == versions[0].version
    assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")

    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), draw_face(30.0, np.random.default_rng(0), 256))
    env = {**os.environ, "MLFLOW_TRACKING_URI": server, "AGENET_HOME": str(tmp_path / "elsewhere")}
    agenet = [sys.executable, "-m", "agenet_pipeline.serving.cli"]
    models = subprocess.run([*agenet, "models"], env=env, capture_output=True, text=True, timeout=120)
    assert models.returncode == 0 and "champion" in models.stdout, models.stderr[-2000:]
    output = tmp_path / "ages.json"
    predict = subprocess.run([*agenet, "predict", str(photo), "--output", str(output)], env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert predict.returncode == 0, predict.stderr[-2000:]
    rows = json.loads(output.read_text())
    rows = rows.get("predictions", rows) if isinstance(rows, dict) else rows
    assert rows[0]["status"] == "ok" and 0 <= rows[0]["age"] <= 120
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()  # through the server, not a local store


def started_shard_steps(instance: DagsterInstance, run_id: str) -> set[str]:
    return {
        entry.step_key
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        if ".face_shard_" in entry.step_key
    }


def succeeded_shard_steps(instance: DagsterInstance, run_id: str) -> set[str]:
    return {
        entry.step_key
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)
        if ".face_shard_" in entry.step_key
    }


def kill_pool_processes(worker: subprocess.Popen) -> list[int]:
    """SIGKILL the processes of a Celery worker's pool (the ones running steps); the worker itself stays."""
    children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
    for pid in map(int, children):
        os.kill(pid, signal.SIGKILL)
    return list(map(int, children))


@pytest.mark.slow
def test_a_killed_worker_fails_its_step_and_a_reexecution_from_the_failure_redoes_only_unfinished_shards(
    cluster, cluster_instance
):
    home, instance = cluster.home, cluster_instance
    # UTKFace's faces alone, in shards of 10 (other bounds than the full job's: every shard is new): 20 shard steps.
    (home / "shards.yaml").write_text(SHARDS_OF_TEN)
    runs_before = {run.run_id for run in instance.get_runs()}
    selection = ["asset", "materialize", "--select", "utkface_manifest,faces_utkface"]
    job = dagster(cluster, home, selection, home / "shards.yaml", DEPLOY / "cluster.yaml", wait=False)
    try:
        deadline = time.monotonic() + 240
        run_id = None
        while time.monotonic() < deadline:
            new = [run.run_id for run in instance.get_runs() if run.run_id not in runs_before]
            run_id = run_id or (new[0] if new else None)
            # Some shards finished and some running: the moment to lose the worker's processes.
            if run_id and len(succeeded_shard_steps(instance, run_id)) >= 2:
                running = started_shard_steps(instance, run_id) - succeeded_shard_steps(instance, run_id)
                if running:
                    assert kill_pool_processes(cluster.worker("worker-cpu"))
                    break
            time.sleep(0.2)
        else:
            pytest.fail("no face shard was running within 240 s")
        try:
            output, _ = job.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not end after its worker lost {running}:\n" + cluster.log_tail("worker-cpu", 40))
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    failed = instance.get_run_by_id(run_id)
    assert failed.status == DagsterRunStatus.FAILURE
    named = [step for step in running if f"[{step}]: billiard.exceptions.WorkerLostError" in output]
    assert named and "WorkerLostError" in output, output[-3000:]
    finished = succeeded_shard_steps(instance, run_id)
    # A named step may have recorded its success just before its process died: only the others are lost.
    lost = set(named) - finished
    folder = home / "faces" / "utkface"
    written = {step: (folder / f"shard-{int(step[-6:-1]):05d}.parquet").stat().st_mtime_ns for step in finished}

    with pytest.MonkeyPatch.context() as patch:
        for name, value in cluster.env.items():
            patch.setenv(name, value)
        job_def = ReconstructableRepository.for_module(
            "agenet_pipeline.pipeline.definitions", "defs", str(REPOSITORY)
        ).get_reconstructable_job(failed.job_name)
        from_failure = ReexecutionOptions.from_failure(run_id, instance)
        result = execute_job(job_def, instance, run_config=failed.run_config, reexecution_options=from_failure)
    assert result.success  # with the reconciliation check: every manifest row once
    assert lost <= started_shard_steps(instance, result.run_id)
    assert not started_shard_steps(instance, result.run_id) & finished
    assert all(
        (folder / f"shard-{int(step[-6:-1]):05d}.parquet").stat().st_mtime_ns == t for step, t in written.items()
    )


def listening_addresses(pids: set[int]) -> list[str]:
    """Local addresses of the TCP sockets that the processes `pids` listen on (from `ss`)."""
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    found = []
    for line in lines:
        owners = {int(pid) for pid in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            found.append(line.split()[3])
    return found


@pytest.mark.slow
def test_every_service_listens_on_loopback_only(cluster_run):
    cluster, *_ = cluster_run
    pids = set()
    for _, process in cluster.processes:
        group = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
        pids |= set(map(int, group))
    addresses = listening_addresses(pids)
    ports = {cluster.env[name] for name in ("AGENET_PG_PORT",)} | {
        cluster.env[name].rsplit(":", 1)[1].split("/")[0] for name in ("AGENET_CELERY_BROKER", "MLFLOW_TRACKING_URI")
    }
    assert ports <= {address.rsplit(":", 1)[1] for address in addresses}  # Postgres, Redis and MLflow listen
    assert all(address.startswith("127.0.0.1:") for address in addresses), addresses
