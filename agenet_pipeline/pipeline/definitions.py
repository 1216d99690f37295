"""The Dagster definitions: every asset, check, job, schedule, sensor and resource of the pipeline."""

from dagster import Definitions

from agenet_pipeline.pipeline.assets import faces, labels
from agenet_pipeline.pipeline.automation import dataset_change_sensor, retraining_schedule
from agenet_pipeline.pipeline.execution import home_locking_executor
from agenet_pipeline.pipeline.jobs import EXPORT_ASSETS, FULL_JOB_ASSETS, JOBS
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource, MLflowResource

DATA_CHECKS = [
    *faces.face_checks,
    labels.labels_in_range,
    labels.no_split_leakage,
    labels.every_bin_present,
    labels.rows_reconcile,
]

defs = Definitions(
    assets=[*FULL_JOB_ASSETS, *EXPORT_ASSETS],
    asset_checks=DATA_CHECKS,
    jobs=JOBS,
    schedules=[retraining_schedule],
    sensors=[dataset_change_sensor],
    resources={
        "home": AgeNetHome(),
        "dataset_roots": DatasetRoots(),
        "face_detector": FaceDetectorResource(),
        "mlflow": MLflowResource(),
    },
    executor=home_locking_executor,
)
