"""A weekly retraining schedule and a sensor that rebuilds what a changed dataset folder affects.

Both start `full_job` (or a part of it) with the run config in the file that $AGENET_RUN_CONFIG names, e.g.
configs/real_datasets.yaml: the dataset roots the sensor watches are the ones those runs read, with the roots
that $AGENET_<DATASET> sets. Without any root, runs use the synthetic demo, which the sensor does not watch.
"""

import json
import os
from pathlib import Path

import yaml
from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)

from agenet_pipeline.datasets.changes import changed_datasets, folder_fingerprint
from agenet_pipeline.pipeline.jobs import FULL_JOB_ASSETS
from agenet_pipeline.pipeline.resources import DatasetRoots

JOB = "full_job"
RUN_CONFIG_VARIABLE = "AGENET_RUN_CONFIG"
# Read when the definitions load: the daemon keeps the schedule it loaded.
RETRAIN_CRON = os.environ.get("AGENET_RETRAIN_CRON", "0 3 * * 1")  # Mondays at 03:00
SCAN_INTERVAL_SECONDS = 600


def run_config() -> dict:
    """The run config file named by $AGENET_RUN_CONFIG, or none."""
    path = os.environ.get(RUN_CONFIG_VARIABLE)
    if not path:
        return {}
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise FileNotFoundError(f"${RUN_CONFIG_VARIABLE} names {path}, which cannot be read: {error}") from error


def _resolved(value):
    """A run config value, or the environment variable it names (`{env: NAME}`)."""
    return os.environ.get(value["env"]) if isinstance(value, dict) and set(value) == {"env"} else value


def watched_roots(config: dict) -> dict[str, Path]:
    """The dataset roots set in a run config or by $AGENET_<DATASET>; the demo data is not watched."""
    fields = ((config.get("resources") or {}).get("dataset_roots") or {}).get("config") or {}
    return DatasetRoots(**{name: _resolved(value) for name, value in fields.items()}).configured()


@schedule(cron_schedule=RETRAIN_CRON, job_name=JOB, description=f"Retrain everything ({RETRAIN_CRON}, UTC)")
def retraining_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(run_config=run_config())


@sensor(
    job_name=JOB,
    minimum_interval_seconds=SCAN_INTERVAL_SECONDS,
    description="New, changed or removed files under a configured dataset root: rebuild that dataset "
    "and everything downstream of it, retraining included",
)
def dataset_change_sensor(context: SensorEvaluationContext):
    config = run_config()
    roots = watched_roots(config)
    if not roots:
        return SkipReason(
            f"no dataset root in ${RUN_CONFIG_VARIABLE} or $AGENET_<DATASET>: the demo data is not watched"
        )
    current = {dataset: folder_fingerprint(root) for dataset, root in roots.items()}
    previous = json.loads(context.cursor) if context.cursor else None
    context.update_cursor(json.dumps(current, sort_keys=True))
    if previous is None:
        return SkipReason(f"first look: fingerprints of {', '.join(current)} recorded")
    changed = changed_datasets(previous, current)
    if not changed:
        return SkipReason("no dataset folder changed")
    changed_manifests = AssetSelection.assets(*(f"{dataset}_manifest" for dataset in changed))
    selection = changed_manifests.downstream() & AssetSelection.assets(*FULL_JOB_ASSETS)
    return RunRequest(
        run_key=",".join(f"{dataset}:{current[dataset]}" for dataset in changed),
        run_config=config,
        asset_selection=sorted(selection.resolve(context.repository_def.asset_graph)),
        tags={"agenet/changed_datasets": ",".join(changed)},
    )
