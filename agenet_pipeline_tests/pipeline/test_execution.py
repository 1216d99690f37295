"""How the executor starts a run's steps: forks of a server that has imported the definitions, unless the run
config says otherwise."""

import subprocess
import sys

from dagster import DagsterInstance, validate_run_config
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.executor.init import InitExecutorContext

from agenet_pipeline.pipeline.definitions import defs
from agenet_pipeline.pipeline.execution import home_locking_executor

DEFINITIONS = "agenet_pipeline.pipeline.definitions"


def steps_start_by(execution: dict) -> tuple[str, list[str] | None]:
    job = defs.get_job_def("data_job")
    config = validate_run_config(job, {"execution": {"config": execution}})["execution"]["multiprocess"]
    context = InitExecutorContext(InMemoryJob(job), home_locking_executor, config, DagsterInstance.ephemeral())
    inner = home_locking_executor.executor_creation_fn(context).inner
    return inner._start_method, inner._explicit_forkserver_preload


def test_steps_are_forks_of_a_server_holding_the_definitions():
    assert steps_start_by({}) == ("forkserver", [DEFINITIONS])
    assert steps_start_by({"max_concurrent": 1}) == ("forkserver", [DEFINITIONS])


def test_the_run_config_can_still_choose_spawn():
    assert steps_start_by({"start_method": {"spawn": {}}}) == ("spawn", [])


def test_the_preloaded_definitions_leave_the_gpu_runtimes_and_mediapipe_to_the_steps():
    """What the fork server imports, every step inherits: a runtime that holds a GPU context or its own threads
    must be imported in the step, after the fork."""
    runtimes = {"tensorflow", "keras", "jax", "torch", "mediapipe"}
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {DEFINITIONS}; print(sorted({runtimes!r} & set(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
