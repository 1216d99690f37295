from dagster import AssetSelection, Definitions, define_asset_job, multiprocess_executor

from agenet_pipeline.assets import evaluation, faces, labels, manifests, training
from agenet_pipeline.automation import dataset_change_sensor, retraining_schedule
from agenet_pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource, MLflowResource
from agenet_pipeline.sweep import sweep_job

data = AssetSelection.groups(manifests.GROUP, faces.GROUP, labels.GROUP)
data_job = define_asset_job(
    "data_job",
    selection=data,
    description="Raw datasets to training-ready TFRecord shards: manifests, faces, labels, splits.",
)
training_job = define_asset_job(
    "training_job",
    selection=AssetSelection.groups(training.GROUP, evaluation.GROUP),
    description="The preliminary model, the cleaned IMDB subset, the registered age model and its evaluation.",
)
full_job = define_asset_job(
    "full_job",
    selection=data | AssetSelection.groups(training.GROUP, evaluation.GROUP),
    description="Everything: the data assets, then training, registration, evaluation and the champion gate.",
)

DATA_ASSETS = [
    manifests.utkface_manifest,
    manifests.appa_real_manifest,
    manifests.imdb_wiki_manifest,
    manifests.adience_manifest,
    *faces.face_assets,
    labels.age_labels,
    labels.data_splits,
    labels.training_shards,
]
DATA_CHECKS = [
    *faces.face_checks,
    labels.labels_in_range,
    labels.no_split_leakage,
    labels.every_bin_present,
    labels.rows_reconcile,
]
TRAINING_ASSETS = [training.preliminary_model, training.imdb_cleaned, training.age_model]
EVALUATION_ASSETS = [evaluation.age_model_evaluation, evaluation.adience_benchmark, evaluation.champion_gate]

defs = Definitions(
    assets=[*DATA_ASSETS, *TRAINING_ASSETS, *EVALUATION_ASSETS],
    asset_checks=DATA_CHECKS,
    jobs=[data_job, training_job, full_job, sweep_job],
    schedules=[retraining_schedule],
    sensors=[dataset_change_sensor],
    resources={
        "home": AgeNetHome(),
        "dataset_roots": DatasetRoots(),
        "face_detector": FaceDetectorResource(),
        "mlflow": MLflowResource(),
    },
    executor=multiprocess_executor,
)
