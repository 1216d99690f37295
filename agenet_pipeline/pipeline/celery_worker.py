"""The Celery app of a cluster worker:

    celery -A agenet_pipeline.pipeline.celery_worker worker -Q cpu

It reads the same run config file as the runs it serves ($AGENET_CELERY_CONFIG, default deploy/celery.yaml),
with the broker and backend from the environment variables that file names.
"""

import os
from pathlib import Path

from dagster._core.execution.retries import RetryMode
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from agenet_pipeline.pipeline.cluster import celery_executor, settings_in_run_config

CONFIG = Path(os.environ.get("AGENET_CELERY_CONFIG", "deploy/celery.yaml"))

app = make_app(celery_executor(settings_in_run_config(CONFIG), RetryMode.DISABLED).app_args())
execute_plan = create_task(app)
