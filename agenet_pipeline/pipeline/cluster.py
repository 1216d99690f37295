"""Steps on Celery workers: the `celery` section of the executor's run config (deploy/celery.yaml), read the same
way by the run that sends the steps and by the workers that run them (agenet_pipeline.pipeline.celery_worker).

dagster-celery is in the `cluster` extra, so it is imported only when a run or a worker asks for Celery.
"""

from pathlib import Path

import yaml
from dagster import Field, Permissive, Shape, StringSource
from dagster._config import process_config

from agenet_pipeline.core.services import require_reachable

CELERY_SETTINGS = Shape(
    {
        "broker": Field(StringSource, description="Broker URL, e.g. redis://127.0.0.1:6379/0 ({env: ...})"),
        "backend": Field(StringSource, description="Result backend URL, e.g. redis://127.0.0.1:6379/1 ({env: ...})"),
        "config_source": Field(Permissive(), is_required=False, description="Celery settings (lowercase names)"),
    }
)


def celery_settings(value: dict, source: str) -> dict:
    """The `celery` section with its environment variables resolved; `source` names where it came from."""
    result = process_config(CELERY_SETTINGS, value)
    if not result.success:
        problems = "; ".join(error.message for error in result.errors or [])
        raise ValueError(f"{source}: the celery executor settings are not valid: {problems}")
    return result.value


def settings_in_run_config(path: Path) -> dict:
    """The `execution: config: celery:` section of a run config file, resolved."""
    config = yaml.safe_load(path.read_text()) or {}
    section = ((config.get("execution") or {}).get("config") or {}).get("celery")
    if section is None:
        raise ValueError(f"{path}: no `execution: config: celery:` section")
    return celery_settings(section, str(path))


def celery_executor(settings: dict, retries):
    """dagster-celery's executor with these settings (a run's steps go to the queues their tags name). A run fails at
    its start when the broker or the result backend does not answer, instead of waiting on Celery's retries."""
    try:
        from dagster_celery.executor import CeleryExecutor
    except ImportError as error:
        raise RuntimeError(
            'the celery executor needs the cluster packages: pip install -e ".[cluster]" (dagster-celery)'
        ) from error

    class CheckedCeleryExecutor(CeleryExecutor):
        def execute(self, plan_context, execution_plan):
            require_reachable("the Celery broker", settings["broker"])
            require_reachable("the Celery result backend", settings["backend"])
            yield from super().execute(plan_context, execution_plan)

    return CheckedCeleryExecutor(
        broker=settings["broker"],
        backend=settings["backend"],
        config_source=settings.get("config_source"),
        retries=retries,
    )
