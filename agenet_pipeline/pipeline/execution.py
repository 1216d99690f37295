"""The executor: Dagster's multiprocess executor, holding the home folder's lock for the whole run.

Why the executor: it is the one piece of a run that lives as long as the run, in one process, however the run
was started. `dagster job execute` runs it in its own process and the UI, the schedule and the sensor in the run
worker, while the steps (and the resources they set up) come and go in processes of their own, several at once.
A lock taken by a resource would be taken by each step and fall free between steps; Dagster's run queue limits
runs only where the daemon launches them, never `dagster job execute`. The queue still has its use: with
`max_concurrent_runs: 1` in dagster.yaml (an instance belongs to one home), a run started from the UI waits for
the one running instead of failing on the lock.

Steps start as forks of a server process that has imported the definitions once (multiprocessing's
`forkserver`), not as fresh interpreters that each import them again (`spawn`, Dagster's default): `data_job`
on the demo takes a third of the time (benchmarks/step_start.py). A run config's own `start_method` still wins.
"""

import multiprocessing
from collections.abc import Iterator

from dagster import Executor, ExecutorDefinition, Field, Shape, multiprocess_executor, validate_run_config
from dagster._core.execution.retries import RetryMode

from agenet_pipeline.core.lock import holding
from agenet_pipeline.pipeline.cluster import CELERY_SETTINGS, celery_executor
from agenet_pipeline.pipeline.resources import AgeNetHome, check_instance_of


class HomeLockingExecutor(Executor):
    """Runs `inner` while holding the lock of the run's home (core.lock): a second run on the same home fails at
    once with a message naming the run that holds it. A run whose instance is another home's is refused first."""

    def __init__(self, inner: Executor):
        self.inner = inner

    def execute(self, plan_context, execution_plan) -> Iterator:
        home = run_home(plan_context).folder
        check_instance_of(home, plan_context.instance)
        run = plan_context.dagster_run
        with holding(home, f"run {run.run_id} of {run.job_name}"):
            yield from self.inner.execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self.inner.retries

    def __getattr__(self, name: str):
        # The Celery executor's loop reads its own settings (`app_args`) back from the run's executor.
        return getattr(self.inner, name)

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config


def run_home(plan_context) -> AgeNetHome:
    """The `home` resource as the run configured it (its path, else $AGENET_HOME or `.agenet`)."""
    config = validate_run_config(plan_context.job.get_definition(), plan_context.run_config)
    return AgeNetHome(**config["resources"]["home"]["config"])


def inner_executor(init_context) -> Executor:
    """Dagster's multiprocess executor, or the Celery executor when the run config has a `celery` section."""
    celery = init_context.executor_config.get("celery")
    if celery is None:
        config = {"start_method": default_start_method(), **init_context.executor_config}
        return multiprocess_executor.executor_creation_fn(init_context._replace(executor_config=config))
    return celery_executor(celery, RetryMode.from_config(init_context.executor_config["retries"]))


def default_start_method() -> dict:
    """A fork server with the definitions imported, where the platform has one (not on Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return {"spawn": {}}
    # The definitions import neither TensorFlow nor JAX nor MediaPipe (test_execution.py checks it): a GPU
    # context and a runtime's threads do not survive a fork, so the steps that need them import them after it.
    return {"forkserver": {"preload_modules": ["agenet_pipeline.pipeline.definitions"]}}


EXECUTOR_CONFIG = Shape(
    {
        **multiprocess_executor.config_schema.config_type.fields,
        "celery": Field(
            CELERY_SETTINGS,
            is_required=False,
            description="Run the steps on Celery workers (deploy/celery.yaml); the multiprocess settings then "
            "do not apply",
        ),
    }
)

home_locking_executor = ExecutorDefinition(
    name=multiprocess_executor.name,
    config_schema=EXECUTOR_CONFIG,
    requirements=multiprocess_executor.get_requirements,
    executor_creation_fn=lambda init_context: HomeLockingExecutor(inner_executor(init_context)),
    description="The multiprocess executor (or, configured, the Celery executor), holding the home folder's lock "
    "for the whole run.",
)
