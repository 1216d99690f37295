"""An unreachable cluster service fails fast, naming the service and its address: Postgres, Redis, MLflow."""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_init_resource_context

from agenet_pipeline.core.services import ServiceUnreachable
from agenet_pipeline.pipeline.resources import MLflowResource
from agenet_pipeline_tests.conftest import on_ci

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def dead_port() -> int:
    """A loopback port where nothing listens (bound and closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def cluster_packages():
    missing = [name for name in ("dagster_celery", "dagster_postgres") if importlib.util.find_spec(name) is None]
    if missing:
        reason = f"needs {', '.join(missing)}: pip install -e '.[cluster]'"
        pytest.fail(reason) if on_ci() else pytest.skip(reason)


def test_an_unreachable_postgres_fails_loading_the_instance_naming_it(cluster_packages, dead_port, monkeypatch):
    settings = {"HOST": "127.0.0.1", "PORT": str(dead_port), "DB": "dagster", "USER": "agenet", "PASSWORD": "x"}
    for key, value in settings.items():
        monkeypatch.setenv(f"AGENET_PG_{key}", value)
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable, match=f"Postgres .* at 127.0.0.1:{dead_port} is unreachable"):
        DagsterInstance.from_config(str(REPOSITORY / "deploy"))
    assert time.monotonic() - started < 30


def test_an_unreachable_mlflow_server_fails_the_resource_naming_it(dead_port):
    resource = MLflowResource(tracking_uri=f"http://127.0.0.1:{dead_port}")
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable, match=f"MLflow tracking server at 127.0.0.1:{dead_port} is unreachable"):
        resource.setup_for_execution(build_init_resource_context())
    assert time.monotonic() - started < 30


def test_an_unreachable_redis_fails_the_run_within_30_s_naming_it(cluster_packages, dead_port, tmp_path):
    """`dagster job execute` on the Celery executor, with the repository's (sqlite) instance and a dead broker."""
    shutil.copy(REPOSITORY / "dagster.yaml", tmp_path / "dagster.yaml")
    broker = f"redis://127.0.0.1:{dead_port}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AGENET_", "MLFLOW_", "DAGSTER_HOME"))}
    env = {
        **inherited,
        "DAGSTER_HOME": str(tmp_path),
        "AGENET_HOME": str(tmp_path / "home"),
        "AGENET_CELERY_BROKER": f"{broker}/0",
        "AGENET_CELERY_BACKEND": f"{broker}/1",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{dead_port}",
    }
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "agenet_pipeline", "-j", "data_job",
         "-c", str(REPOSITORY / "deploy" / "cluster.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert f"the Celery broker at 127.0.0.1:{dead_port} is unreachable" in output, output[-3000:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENET_HOME", env["AGENET_HOME"])
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            run = instance.get_run_records(limit=1)[0]
    assert run.dagster_run.is_failure
    assert (run.update_timestamp - run.create_timestamp).total_seconds() < 30
